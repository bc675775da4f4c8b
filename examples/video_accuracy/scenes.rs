//! The rendered scenes of the video accuracy benchmark: seeded cameras, roads and traffic for
//! the pixel renderer (`speedcam_synth::render`), one family per set of ranges.

use speedcam_synth::camera::{Camera, CameraSpec};
use speedcam_synth::scene::{lane_centre_y_m, make_actor, mix64};
use speedcam_synth::sprite::SpriteSet;
use speedcam_synth::truth::{calibration_points, GroundZone};
use speedcam_synth::{Direction, SceneSpec, VehicleClass, VehicleSpec};

/// Which scenes: the benchmark's two families and the one the box correction is fit on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Benchmark scenes on the training ranges (other seeds than `Fit`).
    Standard,
    /// Other cameras (sizes, heights, tilts, yaws, focal lengths, lanes) and seeds: never tune
    /// or fit on it.
    Heldout,
    /// Scenes the ground-contact box correction is learnt from: the standard ranges, own seeds.
    Fit,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Standard => "standard",
            Family::Heldout => "heldout",
            Family::Fit => "fit",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "standard" => Some(Family::Standard),
            "heldout" => Some(Family::Heldout),
            "fit" => Some(Family::Fit),
            _ => None,
        }
    }

    fn seed_base(self) -> u64 {
        match self {
            Family::Standard => 0x5eed_0001,
            Family::Heldout => 0x4e1d_0002,
            Family::Fit => 0xf17_0003,
        }
    }

    fn ranges(self) -> Ranges {
        match self {
            Family::Standard | Family::Fit => Ranges {
                sizes: &[(1280, 720), (1920, 1080)],
                fps: &[25.0, 30.0],
                lanes: (2, 3),
                side_m: (1.0, 12.0),
                height_m: (5.0, 10.0),
                yaw_deg: (45.0, 90.0),
                tilt_deg: (10.0, 28.0),
                focal_per_width: (0.7, 1.3),
                zone_m: (10.0, 40.0),
            },
            Family::Heldout => Ranges {
                sizes: &[(1600, 900), (1280, 720), (1920, 1080)],
                fps: &[25.0, 30.0],
                lanes: (2, 4),
                side_m: (3.0, 18.0),
                height_m: (9.0, 15.0),
                yaw_deg: (28.0, 55.0),
                tilt_deg: (22.0, 40.0),
                focal_per_width: (1.0, 1.8),
                zone_m: (12.0, 35.0),
            },
        }
    }
}

/// Uniform ranges a family's cameras and roads are drawn from.
struct Ranges {
    sizes: &'static [(u32, u32)],
    fps: &'static [f64],
    lanes: (u32, u32),
    /// Camera distance beyond the road edge, m.
    side_m: (f64, f64),
    height_m: (f64, f64),
    /// Angle between road and viewing direction (mirrored half of the time), deg.
    yaw_deg: (f64, f64),
    tilt_deg: (f64, f64),
    focal_per_width: (f64, f64),
    zone_m: (f64, f64),
}

/// SplitMix64 stream.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, (a, b): (f64, f64)) -> f64 {
        a + (b - a) * self.unit()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n
    }
}

/// A vehicle kind the renderer may draw: class and sprite (a name, or a set selector that
/// the renderer resolves by class).
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub class: VehicleClass,
    pub sprite: &'static str,
    /// Relative share of the traffic.
    pub share: f64,
}

/// The traffic mix the box correction was fitted on (`fit` family): the photo cars and the
/// pickup. Kept as it was so that the correction file's command reproduces it.
const FIT_KINDS: [Kind; 3] = [
    Kind {
        class: VehicleClass::Car,
        sprite: "car_left",
        share: 0.35,
    },
    Kind {
        class: VehicleClass::Car,
        sprite: "car_right",
        share: 0.35,
    },
    Kind {
        class: VehicleClass::Truck,
        sprite: "pickup_right",
        share: 0.3,
    },
];

/// The traffic mix of a benchmark family: cars, vans, lorries and buses from the sprite set
/// (`crates/speedcam-synth/sprites/`): the training set for `standard`, the held-out set
/// (other designs, never fitted on) for `heldout`.
fn kinds(family: Family) -> Vec<Kind> {
    let set = match family {
        Family::Fit => return FIT_KINDS.to_vec(),
        Family::Standard => SpriteSet::Training,
        Family::Heldout => SpriteSet::HeldOut,
    };
    [
        (VehicleClass::Car, 0.55),
        (VehicleClass::Van, 0.15),
        (VehicleClass::Truck, 0.15),
        (VehicleClass::Bus, 0.15),
    ]
    .into_iter()
    .map(|(class, share)| Kind {
        class,
        sprite: set.selector(),
        share,
    })
    .collect()
}

/// One generated scene, and the vehicles dropped because the renderer cannot draw them.
pub struct Generated {
    pub spec: SceneSpec,
    pub skipped: Vec<(VehicleClass, String)>,
}

/// Scene `index` of `family`: a camera, road and zone that pass the renderer's checks, with
/// cars big enough for a 416 px detector input, and traffic in every lane for `duration_s`.
pub fn scene(family: Family, index: u32, duration_s: f64) -> Option<Generated> {
    let mut rng = Rng::new(family.seed_base() ^ (u64::from(index) << 20));
    for _ in 0..500 {
        if let Some(spec) = try_geometry(&family.ranges(), &mut rng, duration_s) {
            return Some(traffic(spec, family, &mut rng));
        }
    }
    None
}

/// Billboard box `[l, t, r, b]` of a vehicle of `class` standing at ground point `g`.
fn billboard(cam: &Camera, class: VehicleClass, g: [f64; 2]) -> Option<[f64; 4]> {
    let p = cam.project_ground(g)?;
    let depth = cam.depth_m([g[0], g[1], 0.0]);
    if depth <= 0.5 {
        return None;
    }
    let s = cam.spec.focal_px / depth;
    let (l, h) = class.dimensions_m();
    Some([p[0] - l * s / 2.0, p[1] - h * s, p[0] + l * s / 2.0, p[1]])
}

fn try_geometry(r: &Ranges, rng: &mut Rng, duration_s: f64) -> Option<SceneSpec> {
    let (width_px, height_px) = r.sizes[rng.below(r.sizes.len())];
    let fps = r.fps[rng.below(r.fps.len())];
    let lanes = r.lanes.0 + rng.below((r.lanes.1 - r.lanes.0 + 1) as usize) as u32;
    let mut yaw_deg = rng.range(r.yaw_deg);
    if rng.unit() < 0.5 {
        yaw_deg = 180.0 - yaw_deg;
    }
    let camera = CameraSpec {
        x_m: 0.0,
        y_m: -(speedcam_synth::scene::road_half_width_m(lanes) + rng.range(r.side_m)),
        height_m: rng.range(r.height_m),
        yaw_deg,
        tilt_deg: rng.range(r.tilt_deg),
        focal_px: f64::from(width_px) * rng.range(r.focal_per_width),
    };
    let spec = SceneSpec {
        width_px,
        height_px,
        fps,
        duration_s,
        camera,
        lanes,
        zone_length_m: rng.range(r.zone_m),
        vehicles: Vec::new(),
        seed: rng.next() >> 16,
        jitter_ms: rng.range((0.0, 2.0)),
    };
    let cam = Camera::new(camera, width_px, height_px);
    let (zone, _) = GroundZone::for_scene(&spec, &cam).ok()?;
    calibration_points(&spec, &cam, &zone).ok()?;
    // Every lane: a car and a truck fully in the image at both zone edges (a box cut by the
    // image edge is not a detector offset), a car at least 14 px tall in the model's 416 px
    // input, and no vehicle wider than 45% of the image.
    let (w, h) = (f64::from(width_px), f64::from(height_px));
    let min_h = 14.0 * w.max(h) / 416.0;
    for lane in 0..lanes {
        let y = lane_centre_y_m(lanes, lane);
        for x in [zone.x0_m, zone.x1_m] {
            for class in [VehicleClass::Car, VehicleClass::Truck] {
                let b = billboard(&cam, class, [x, y])?;
                let inside = b[0] >= 2.0 && b[1] >= 2.0 && b[2] <= w - 2.0 && b[3] <= h - 2.0;
                if !inside || b[2] - b[0] > 0.45 * w {
                    return None;
                }
                if class == VehicleClass::Car && b[3] - b[1] < min_h {
                    return None;
                }
            }
        }
        // The renderer needs each lane to leave the view upstream (no vanishing point in view).
        let probe = VehicleSpec {
            id: 0,
            class: VehicleClass::Car,
            sprite: "car_left".into(),
            lane,
            direction: Direction::PlusX,
            speed_kmh: 50.0,
            accel_mps2: 0.0,
            t_start_s: 0.0,
            size_m: None,
        };
        make_actor(&spec, &cam, &probe).ok()?;
        let probe = VehicleSpec {
            direction: Direction::MinusX,
            ..probe
        };
        make_actor(&spec, &cam, &probe).ok()?;
    }
    Some(spec)
}

/// Fills every lane with vehicles one after another (the next appears once the previous has
/// left the view, so vehicles in one lane never overlap), near lanes towards +x, far lanes
/// towards -x; 30-130 km/h, a quarter braking or accelerating at 0.5-2.5 m/s^2.
fn traffic(mut spec: SceneSpec, family: Family, rng: &mut Rng) -> Generated {
    let kinds = kinds(family);
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    let total: f64 = kinds.iter().map(|k| k.share).sum();
    let mut skipped = Vec::new();
    let mut id = 1;
    for lane in 0..spec.lanes {
        let direction = if lane < spec.lanes.div_ceil(2) {
            Direction::PlusX
        } else {
            Direction::MinusX
        };
        let mut t = rng.range((0.0, 1.5));
        while t < spec.duration_s - 1.5 {
            let mut pick = rng.unit() * total;
            let kind = kinds
                .iter()
                .find(|k| {
                    pick -= k.share;
                    pick < 0.0 && k.share > 0.0
                })
                .unwrap_or(&kinds[0]);
            let speed_kmh = rng.range((30.0, 130.0));
            let mut accel_mps2 = 0.0;
            if rng.unit() < 0.25 {
                accel_mps2 = rng.range((0.5, 2.5)) * if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                // Never slower than 2 m/s before the video ends (the renderer's limit is 1).
                let end_s = spec.duration_s - t;
                accel_mps2 = accel_mps2.max(-(speed_kmh / 3.6 - 2.0) / end_s);
            }
            let v = VehicleSpec {
                id,
                class: kind.class,
                sprite: kind.sprite.into(),
                lane,
                direction,
                speed_kmh,
                accel_mps2,
                t_start_s: t,
                size_m: None,
            };
            id += 1;
            match make_actor(&spec, &cam, &v) {
                Ok(actor) => {
                    // When its box has left the view on the far side.
                    let leave = leave_time_s(&cam, &actor).unwrap_or(spec.duration_s);
                    spec.vehicles.push(v);
                    t = leave + rng.range((0.1, 1.2));
                }
                Err(_) => {
                    skipped.push((v.class, v.sprite));
                    t += 1.0;
                }
            }
        }
    }
    Generated { spec, skipped }
}

/// First time after it appeared that an actor's box is out of the image again.
fn leave_time_s(cam: &Camera, actor: &speedcam_synth::scene::Actor) -> Option<f64> {
    let (w, h) = (f64::from(cam.width_px), f64::from(cam.height_px));
    let mut seen = false;
    let mut t = actor.spec.t_start_s;
    for _ in 0..6000 {
        t += 0.02;
        let inside = actor.pose(cam, t).is_some_and(|p| {
            p.bbox_px[2] > 0.0 && p.bbox_px[0] < w && p.bbox_px[3] > 0.0 && p.bbox_px[1] < h
        });
        if inside {
            seen = true;
        } else if seen {
            return Some(t);
        }
    }
    None
}
