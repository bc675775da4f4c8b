//! Vehicle sprites: side views cut from photos in `crates/speedcam-synth/sprites/` (provenance in the README
//! there), embedded in the binary, with a rough silhouette mask, composited as scaled billboards.
//!
//! Each crop's bottom edge is where the tyres touch the ground and its left/right edges are the
//! vehicle's ends, so a sprite drawn with its bottom-centre on a projected ground point puts the
//! vehicle's footprint centre exactly there.

use super::SynthError;

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
}

/// One embedded sprite: name, JPEG bytes, direction, silhouette polygon in sprite pixels.
struct Embedded {
    name: &'static str,
    jpeg: &'static [u8],
    faces_right: bool,
    silhouette_px: &'static [(f32, f32)],
}

/// Names of the embedded sprites, usable as [`super::VehicleSpec::sprite`].
pub const SPRITE_NAMES: [&str; 3] = ["car_left", "car_right", "pickup_right"];

const EMBEDDED: [Embedded; 3] = [
    Embedded {
        name: "car_left",
        jpeg: include_bytes!("../sprites/car_left.jpg"),
        faces_right: false,
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
    Embedded {
        name: "car_right",
        jpeg: include_bytes!("../sprites/car_right.jpg"),
        faces_right: true,
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
    Embedded {
        name: "pickup_right",
        jpeg: include_bytes!("../sprites/pickup_right.jpg"),
        faces_right: true,
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
];

impl Sprite {
    /// Decodes an embedded sprite by name (see [`SPRITE_NAMES`]).
    pub fn load(name: &str) -> Result<Self, SynthError> {
        let e = EMBEDDED
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| SynthError::UnknownSprite(name.to_string()))?;
        let img = image::load_from_memory_with_format(e.jpeg, image::ImageFormat::Jpeg)
            .map_err(|err| SynthError::Sprite(format!("{name}: {err}")))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        let alpha = soften(&rasterise(e.silhouette_px, w, h), w, h);
        Ok(Self {
            width_px: w,
            height_px: h,
            rgb: img.into_raw(),
            alpha,
            faces_right: e.faces_right,
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
    fn all_embedded_sprites_decode_with_a_mostly_covered_silhouette() {
        for name in SPRITE_NAMES {
            let s = Sprite::load(name).expect("embedded sprite decodes");
            assert_eq!(s.rgb.len(), (s.width_px * s.height_px * 3) as usize);
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
