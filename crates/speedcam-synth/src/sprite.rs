//! Vehicle sprites, embedded in the binary and composited as scaled billboards. Two kinds (provenance
//! of every file in `crates/speedcam-synth/sprites/README.md`):
//!
//! - side views cut from photos (JPEG) with a rough silhouette polygon as their mask: the demo's
//!   cars and pickup;
//! - side views of vehicle models built and rendered by `sprites/render_sprites.py` (Blender),
//!   RGBA PNGs whose alpha is the mask, each with its metric size: buses, lorries, vans and two
//!   more cars, split into a training set and a held-out set ([`SpriteSet`]).
//!
//! Each sprite's bottom edge is where the tyres touch the ground and its left/right edges are the
//! vehicle's ends, so a sprite drawn with its bottom-centre on a projected ground point puts the
//! vehicle's footprint centre exactly there.

use super::{SynthError, VehicleClass};

/// A decoded sprite: RGB pixels plus a coverage mask, facing one direction.
#[derive(Debug, Clone)]
pub struct Sprite {
    /// Width (px).
    pub width_px: u32,
    /// Height (px).
    pub height_px: u32,
    /// Packed RGB, `width_px * height_px * 3` bytes.
    pub rgb: Vec<u8>,
    /// Coverage 0..=255 per pixel (255 = vehicle, 0 = background to hide).
    pub alpha: Vec<u8>,
    /// Whether the vehicle's front points to the right (+u) in the image.
    pub faces_right: bool,
    /// The real size the picture shows, for rendered sprites; `None` for photos (drawn at their
    /// class's size).
    pub size_m: Option<SpriteSize>,
}

/// What a rendered sprite's picture measures in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpriteSize {
    /// The vehicle's overall length: the picture's width.
    pub length_m: f64,
    /// The vehicle's height above the ground (roof or its highest part).
    pub vehicle_height_m: f64,
    /// The picture's height: a little more than the vehicle's, because it is seen from a few
    /// degrees above and shows some of the roof.
    pub image_height_m: f64,
}

impl SpriteSize {
    /// The billboard (width, height) in metres for a vehicle of `length_m` x `height_m`: the
    /// picture scaled along and up by the ratio of the sizes.
    pub fn billboard_m(&self, length_m: f64, height_m: f64) -> (f64, f64) {
        (
            length_m,
            self.image_height_m * height_m / self.vehicle_height_m,
        )
    }
}

/// How an embedded sprite is stored.
enum Source {
    /// A photo crop and its silhouette polygon in sprite pixels.
    Jpeg {
        bytes: &'static [u8],
        silhouette_px: &'static [(f32, f32)],
    },
    /// A rendered RGBA PNG and what it measures.
    Png {
        bytes: &'static [u8],
        size_m: SpriteSize,
    },
}

/// One embedded sprite.
struct Embedded {
    name: &'static str,
    faces_right: bool,
    source: Source,
}

/// Names of the embedded sprites, usable as [`super::VehicleSpec::sprite`] (besides the set
/// selectors of [`SpriteSet`]).
pub const SPRITE_NAMES: [&str; 10] = [
    "car_left",
    "car_right",
    "pickup_right",
    "bus_city",
    "lorry_box",
    "van_panel",
    "coach",
    "truck_tanker",
    "minibus",
    "car_hatch",
];

/// Which group of sprites a scene draws its vehicles from, by class.
///
/// The training set is what anything may be fitted on (the `hard` family); the held-out set has
/// other vehicle designs and colours, for the `heldout` family only. A vehicle picks from a set by
/// giving [`SpriteSet::selector`] as its sprite name; the renderer then chooses among the set's
/// sprites of the vehicle's class ([`SpriteSet::pick`]), the same one for the same vehicle id and
/// scene seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpriteSet {
    /// The photo cars and the rendered city bus, box lorry and panel van.
    Training,
    /// Rendered coach, tanker lorry, minibus and hatchback (other designs, other colours).
    HeldOut,
}

impl SpriteSet {
    /// Both sets.
    pub const ALL: [SpriteSet; 2] = [SpriteSet::Training, SpriteSet::HeldOut];

    /// The sprite name that asks the renderer to choose from this set by class:
    /// `"set:training"` or `"set:heldout"`.
    pub fn selector(self) -> &'static str {
        match self {
            SpriteSet::Training => "set:training",
            SpriteSet::HeldOut => "set:heldout",
        }
    }

    /// The set a sprite name selects (see [`Self::selector`]), if it is a selector.
    pub fn from_selector(name: &str) -> Option<SpriteSet> {
        Self::ALL.into_iter().find(|s| s.selector() == name)
    }

    /// This set's sprites of `class` (never empty).
    pub fn sprites(self, class: VehicleClass) -> &'static [&'static str] {
        match (self, class) {
            (SpriteSet::Training, VehicleClass::Car) => &["car_left", "car_right"],
            (SpriteSet::Training, VehicleClass::Van) => &["van_panel"],
            (SpriteSet::Training, VehicleClass::Truck) => &["lorry_box"],
            (SpriteSet::Training, VehicleClass::Bus) => &["bus_city"],
            (SpriteSet::HeldOut, VehicleClass::Car) => &["car_hatch"],
            (SpriteSet::HeldOut, VehicleClass::Van) => &["minibus"],
            (SpriteSet::HeldOut, VehicleClass::Truck) => &["truck_tanker"],
            (SpriteSet::HeldOut, VehicleClass::Bus) => &["coach"],
        }
    }

    /// One of this set's sprites of `class`, chosen by `key` (any number; equal keys pick the
    /// same sprite).
    pub fn pick(self, class: VehicleClass, key: u64) -> &'static str {
        let names = self.sprites(class);
        names[(super::scene::mix64(key) % names.len() as u64) as usize]
    }
}

/// Resolves a vehicle's sprite name: a set selector picks by class with `key`; any other name is
/// returned as it is.
pub fn resolve(name: &str, class: VehicleClass, key: u64) -> &str {
    match SpriteSet::from_selector(name) {
        Some(set) => set.pick(class, key),
        None => name,
    }
}

/// Metric size of a rendered sprite, as `render_sprites.py` prints it.
const fn size(length_m: f64, vehicle_height_m: f64, image_height_m: f64) -> SpriteSize {
    SpriteSize {
        length_m,
        vehicle_height_m,
        image_height_m,
    }
}

/// A rendered sprite (all face right: the models' fronts are at +x).
const fn png(name: &'static str, bytes: &'static [u8], size_m: SpriteSize) -> Embedded {
    Embedded {
        name,
        faces_right: true,
        source: Source::Png { bytes, size_m },
    }
}

const EMBEDDED: [Embedded; 10] = [
    Embedded {
        name: "car_left",
        faces_right: false,
        source: Source::Jpeg {
            bytes: include_bytes!("../sprites/car_left.jpg"),
            silhouette_px: &[
                (1.0, 116.1),
                (0.0, 79.6),
                (12.1, 57.8),
                (48.6, 45.7),
                (136.0, 36.9),
                (179.7, 7.8),
                (245.3, 1.0),
                (315.7, 4.4),
                (364.2, 18.9),
                (407.9, 39.8),
                (432.2, 52.9),
                (438.1, 74.8),
                (437.1, 111.2),
                (412.8, 118.5),
                (378.8, 120.9),
                (366.7, 135.0),
                (332.7, 135.0),
                (320.5, 118.5),
                (106.8, 118.5),
                (89.8, 135.0),
                (46.1, 135.0),
                (31.6, 118.5),
            ],
        },
    },
    Embedded {
        name: "car_right",
        faces_right: true,
        source: Source::Jpeg {
            bytes: include_bytes!("../sprites/car_right.jpg"),
            silhouette_px: &[
                (1.9, 107.2),
                (0.0, 80.4),
                (11.4, 40.2),
                (74.6, 19.1),
                (109.1, 7.7),
                (178.0, 1.9),
                (223.9, 3.8),
                (285.2, 30.6),
                (312.0, 42.1),
                (400.0, 53.6),
                (426.8, 61.3),
                (438.3, 80.4),
                (439.5, 101.5),
                (426.8, 114.9),
                (400.0, 118.7),
                (394.3, 139.0),
                (340.7, 139.0),
                (335.0, 118.7),
                (128.2, 118.7),
                (122.5, 139.0),
                (61.2, 139.0),
                (55.5, 111.0),
                (9.5, 111.0),
            ],
        },
    },
    Embedded {
        name: "pickup_right",
        faces_right: true,
        source: Source::Jpeg {
            bytes: include_bytes!("../sprites/pickup_right.jpg"),
            silhouette_px: &[
                (1.0, 71.0),
                (2.0, 36.0),
                (17.0, 8.0),
                (34.0, 1.0),
                (104.0, 13.0),
                (134.0, 18.0),
                (156.0, 22.0),
                (176.0, 39.0),
                (214.0, 50.0),
                (225.0, 66.0),
                (225.0, 84.0),
                (206.0, 88.0),
                (202.0, 94.0),
                (179.0, 94.0),
                (174.0, 86.0),
                (74.0, 78.0),
                (69.0, 85.0),
                (47.0, 85.0),
                (42.0, 74.0),
                (4.0, 74.0),
            ],
        },
    },
    png(
        "bus_city",
        include_bytes!("../sprites/bus_city.png"),
        size(12.0, 3.42, 3.791),
    ),
    png(
        "lorry_box",
        include_bytes!("../sprites/lorry_box.png"),
        size(8.6, 3.5, 3.929),
    ),
    png(
        "van_panel",
        include_bytes!("../sprites/van_panel.png"),
        size(5.3, 2.3, 2.65),
    ),
    png(
        "coach",
        include_bytes!("../sprites/coach.png"),
        size(12.4, 3.6, 4.03),
    ),
    png(
        "truck_tanker",
        include_bytes!("../sprites/truck_tanker.png"),
        size(9.2, 3.05, 3.492),
    ),
    png(
        "minibus",
        include_bytes!("../sprites/minibus.png"),
        size(6.0, 2.55, 2.905),
    ),
    png(
        "car_hatch",
        include_bytes!("../sprites/car_hatch.png"),
        size(4.1, 1.48, 1.78),
    ),
];

impl Sprite {
    /// Decodes an embedded sprite by name (see [`SPRITE_NAMES`]).
    pub fn load(name: &str) -> Result<Self, SynthError> {
        let e = EMBEDDED
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| SynthError::UnknownSprite(name.to_string()))?;
        let bad = |err: String| SynthError::Sprite(format!("{name}: {err}"));
        match &e.source {
            Source::Jpeg {
                bytes,
                silhouette_px,
            } => {
                let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
                    .map_err(|err| bad(err.to_string()))?
                    .to_rgb8();
                let (w, h) = img.dimensions();
                let alpha = soften(&rasterise(silhouette_px, w, h), w, h);
                Ok(Self {
                    width_px: w,
                    height_px: h,
                    rgb: img.into_raw(),
                    alpha,
                    faces_right: e.faces_right,
                    size_m: None,
                })
            }
            Source::Png { bytes, size_m } => {
                Self::from_png(bytes, e.faces_right, Some(*size_m)).map_err(bad)
            }
        }
    }

    /// Decodes a sprite from PNG bytes; the mask is the image's alpha channel (fully covered
    /// where the image has none). Fails on a broken or empty image.
    pub fn from_png(
        bytes: &[u8],
        faces_right: bool,
        size_m: Option<SpriteSize>,
    ) -> Result<Self, String> {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
            .map_err(|e| e.to_string())?
            .to_rgba8();
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err("empty image".into());
        }
        let px = img.into_raw();
        let rgb = px
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        let alpha = px.chunks_exact(4).map(|p| p[3]).collect();
        Ok(Self {
            width_px: w,
            height_px: h,
            rgb,
            alpha,
            faces_right,
            size_m,
        })
    }

    /// Composites the sprite scaled into the rectangle `[left, left + w) x [top, top + h)` (px,
    /// fractional) of an RGB image, mirrored horizontally when `mirror`. Bilinear sampling.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        &self,
        dst: &mut [u8],
        dst_w: u32,
        dst_h: u32,
        left_px: f64,
        top_px: f64,
        w_px: f64,
        h_px: f64,
        mirror: bool,
    ) {
        if w_px <= 0.0 || h_px <= 0.0 {
            return;
        }
        let x0 = left_px.floor().max(0.0) as i64;
        let x1 = ((left_px + w_px).ceil() as i64).min(i64::from(dst_w));
        let y0 = top_px.floor().max(0.0) as i64;
        let y1 = ((top_px + h_px).ceil() as i64).min(i64::from(dst_h));
        let (sw, sh) = (f64::from(self.width_px), f64::from(self.height_px));
        for y in y0..y1 {
            // Source coordinate of the destination pixel centre.
            let fy = ((y as f64 + 0.5 - top_px) / h_px) * sh - 0.5;
            if !(-0.5..sh - 0.5).contains(&fy) {
                continue;
            }
            for x in x0..x1 {
                let mut fx = ((x as f64 + 0.5 - left_px) / w_px) * sw - 0.5;
                if !(-0.5..sw - 0.5).contains(&fx) {
                    continue;
                }
                if mirror {
                    fx = sw - 1.0 - fx;
                }
                let (rgb, a) = self.sample(fx, fy);
                if a <= 0.0 {
                    continue;
                }
                let o = ((y as usize) * dst_w as usize + x as usize) * 3;
                for c in 0..3 {
                    let d = f64::from(dst[o + c]);
                    dst[o + c] = (d + (rgb[c] - d) * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    /// Bilinear sample at fractional source position: (RGB, coverage 0..1).
    fn sample(&self, fx: f64, fy: f64) -> ([f64; 3], f64) {
        let (w, h) = (self.width_px as i64, self.height_px as i64);
        let xf = fx.floor();
        let yf = fy.floor();
        let (tx, ty) = (fx - xf, fy - yf);
        let (xi, yi) = (xf as i64, yf as i64);
        let mut rgb = [0.0; 3];
        let mut a = 0.0;
        for (dy, wy) in [(0, 1.0 - ty), (1, ty)] {
            for (dx, wx) in [(0, 1.0 - tx), (1, tx)] {
                let sx = (xi + dx).clamp(0, w - 1) as usize;
                let sy = (yi + dy).clamp(0, h - 1) as usize;
                let i = sy * self.width_px as usize + sx;
                let wgt = wx * wy * f64::from(self.alpha[i]) / 255.0;
                for (c, v) in rgb.iter_mut().enumerate() {
                    *v += wgt * f64::from(self.rgb[i * 3 + c]);
                }
                a += wgt;
            }
        }
        if a > 0.0 {
            for v in &mut rgb {
                *v /= a;
            }
        }
        (rgb, a)
    }
}

/// Fills a polygon (even-odd rule at pixel centres) into a 0/255 mask.
fn rasterise(poly: &[(f32, f32)], w: u32, h: u32) -> Vec<u8> {
    let mut mask = vec![0u8; (w * h) as usize];
    for y in 0..h {
        let py = y as f32 + 0.5;
        for x in 0..w {
            let px = x as f32 + 0.5;
            let mut inside = false;
            let mut j = poly.len() - 1;
            for i in 0..poly.len() {
                let (xi, yi) = poly[i];
                let (xj, yj) = poly[j];
                if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                    inside = !inside;
                }
                j = i;
            }
            if inside {
                mask[(y * w + x) as usize] = 255;
            }
        }
    }
    mask
}

/// 3x3 box blur of a mask, for a soft one-pixel edge.
fn soften(mask: &[u8], w: u32, h: u32) -> Vec<u8> {
    let (w, h) = (w as i64, h as i64);
    let mut out = vec![0u8; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0u32;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (sx, sy) = ((x + dx).clamp(0, w - 1), (y + dy).clamp(0, h - 1));
                    s += u32::from(mask[(sy * w + sx) as usize]);
                }
            }
            out[(y * w + x) as usize] = (s / 9) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_embedded_sprites_decode_and_photos_have_a_mostly_covered_silhouette() {
        assert_eq!(SPRITE_NAMES.len(), EMBEDDED.len());
        for name in SPRITE_NAMES {
            let s = Sprite::load(name).expect("embedded sprite decodes");
            assert_eq!(s.rgb.len(), (s.width_px * s.height_px * 3) as usize);
            assert_eq!(s.alpha.len(), (s.width_px * s.height_px) as usize);
            if s.size_m.is_some() {
                continue; // rendered: see the next test
            }
            let covered = s.alpha.iter().filter(|&&a| a > 128).count() as f64;
            let frac = covered / s.alpha.len() as f64;
            assert!(frac > 0.5 && frac < 0.95, "{name}: coverage {frac}");
            // The bottom rows carry the tyres: something is covered there.
            let w = s.width_px as usize;
            let last = &s.alpha[(s.height_px as usize - 2) * w..(s.height_px as usize - 1) * w];
            assert!(last.iter().any(|&a| a > 128), "{name}: no tyre contact row");
        }
        assert!(matches!(
            Sprite::load("bus"),
            Err(SynthError::UnknownSprite(_))
        ));
    }

    #[test]
    fn png_sprite_takes_its_mask_from_the_alpha_channel() {
        // 3x2 RGBA: an opaque red, a half-covered green, a transparent blue pixel per row.
        let img = image::RgbaImage::from_fn(3, 2, |x, _| match x {
            0 => image::Rgba([255, 0, 0, 255]),
            1 => image::Rgba([0, 255, 0, 128]),
            _ => image::Rgba([0, 0, 255, 0]),
        });
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encodes");
        let size = SpriteSize {
            length_m: 3.0,
            vehicle_height_m: 1.5,
            image_height_m: 2.0,
        };
        let s = Sprite::from_png(&png, false, Some(size)).expect("decodes");
        assert_eq!((s.width_px, s.height_px, s.faces_right), (3, 2, false));
        assert_eq!(s.alpha, [255, 128, 0, 255, 128, 0]);
        assert_eq!(&s.rgb[..9], &[255, 0, 0, 0, 255, 0, 0, 0, 255]);
        assert_eq!(s.size_m, Some(size));
        // Scaled to a 6 m x 2 m vehicle the picture keeps its extra roof proportion.
        assert_eq!(size.billboard_m(6.0, 2.0), (6.0, 2.0 * 2.0 / 1.5));
        // Drawn over white: the transparent column stays white, the half one is mixed.
        let mut dst = vec![255u8; 3 * 2 * 3];
        s.draw(&mut dst, 3, 2, 0.0, 0.0, 3.0, 2.0, false);
        assert_eq!(&dst[..9], &[255, 0, 0, 127, 255, 127, 255, 255, 255]);
        // An RGB PNG is fully covered; garbage is an error.
        let mut rgb_png = Vec::new();
        image::RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]))
            .write_to(
                &mut std::io::Cursor::new(&mut rgb_png),
                image::ImageFormat::Png,
            )
            .expect("encodes");
        let s = Sprite::from_png(&rgb_png, true, None).expect("decodes");
        assert!(s.alpha.iter().all(|&a| a == 255));
        assert!(Sprite::from_png(b"not a png", true, None).is_err());
    }

    #[test]
    fn rendered_sprites_touch_their_ends_and_the_ground_and_keep_their_aspect() {
        for e in EMBEDDED
            .iter()
            .filter(|e| matches!(e.source, Source::Png { .. }))
        {
            let s = Sprite::load(e.name).expect("embedded sprite decodes");
            let size = s.size_m.expect("rendered sprites know their size");
            let (w, h) = (s.width_px as usize, s.height_px as usize);
            // The picture's aspect is the metric one, to a pixel.
            let h_expected = size.image_height_m / size.length_m * w as f64;
            assert!(
                (h as f64 - h_expected).abs() <= 1.0,
                "{}: {h} px vs {h_expected}",
                e.name
            );
            assert!(size.image_height_m > size.vehicle_height_m, "{}", e.name);
            let col_max = |x: usize| (0..h).map(|y| s.alpha[y * w + x]).max().unwrap_or(0);
            assert!(col_max(0).max(col_max(1)) > 128, "{}: rear end", e.name);
            assert!(
                col_max(w - 1).max(col_max(w - 2)) > 128,
                "{}: front end",
                e.name
            );
            let row_max = |y: usize| s.alpha[y * w..(y + 1) * w].iter().copied().max();
            assert!(row_max(h - 1) >= Some(128), "{}: tyre contact row", e.name);
            assert!(row_max(0) > Some(5), "{}: roof row", e.name);
            // Transparent background around the wheels: the bottom row is mostly empty.
            let bottom = s.alpha[(h - 1) * w..].iter().filter(|&&a| a > 128).count();
            assert!(
                bottom < w / 3,
                "{}: bottom row {bottom} of {w} px covered",
                e.name
            );
        }
    }

    #[test]
    fn every_set_has_sprites_of_every_class_and_the_sets_are_disjoint() {
        for set in SpriteSet::ALL {
            assert_eq!(SpriteSet::from_selector(set.selector()), Some(set));
            for class in VehicleClass::ALL {
                let names = set.sprites(class);
                assert!(!names.is_empty(), "{set:?} {class:?}");
                for name in names {
                    assert!(SPRITE_NAMES.contains(name), "{name}");
                    Sprite::load(name).expect("listed sprite decodes");
                }
                // Picks come from the list, stay the same for a key and use every sprite.
                let picks: Vec<&str> = (0..64).map(|k| set.pick(class, k)).collect();
                assert!(picks.iter().all(|p| names.contains(p)));
                assert_eq!(set.pick(class, 7), set.pick(class, 7));
                assert!(names.iter().all(|n| picks.contains(n)), "{set:?} {class:?}");
                // A set selector resolves by class; a plain name passes through.
                assert!(names.contains(&resolve(set.selector(), class, 3)));
                assert_eq!(resolve("car_left", class, 3), "car_left");
            }
        }
        let all = |set: SpriteSet| -> Vec<&str> {
            VehicleClass::ALL
                .into_iter()
                .flat_map(|c| set.sprites(c).iter().copied())
                .collect()
        };
        let (train, held) = (all(SpriteSet::Training), all(SpriteSet::HeldOut));
        assert!(
            train.iter().all(|n| !held.contains(n)),
            "{train:?} {held:?}"
        );
        // Heavy vehicles are pictures of their own: every bus, lorry and van sprite is a
        // rendered model of that kind with its own size, not a car drawn larger.
        for set in SpriteSet::ALL {
            for class in [VehicleClass::Van, VehicleClass::Truck, VehicleClass::Bus] {
                for name in set.sprites(class) {
                    let s = Sprite::load(name).expect("decodes");
                    let len = s.size_m.expect("rendered").length_m;
                    assert!(len >= 5.0, "{name}: {len} m");
                }
            }
        }
    }

    #[test]
    fn drawing_fills_exactly_the_target_rectangle() {
        let s = Sprite::load("car_right").expect("embedded sprite decodes");
        let (w, h) = (200u32, 100u32);
        let mut dst = vec![0u8; (w * h * 3) as usize];
        s.draw(&mut dst, w, h, 50.0, 20.0, 100.0, 40.0, true);
        let touched = |x: u32, y: u32| {
            let o = ((y * w + x) * 3) as usize;
            dst[o..o + 3].iter().any(|&c| c > 0)
        };
        for y in 0..h {
            for x in 0..w {
                if touched(x, y) {
                    assert!((50..150).contains(&x) && (20..60).contains(&y), "{x},{y}");
                }
            }
        }
        // The tyre rows reach the bottom edge of the rectangle.
        assert!((50..150).any(|x| touched(x, 59)));
    }
}
