//! The road scene: background rendered once by back-projecting every pixel onto the ground,
//! vehicles moved along their lanes and composited as billboards, far ones first.

use super::camera::Camera;
use super::sprite::{self, Sprite};
use super::{SceneSpec, SynthError, VehicleSpec};

/// Lane width (m).
pub const LANE_WIDTH_M: f64 = 3.5;
/// Length of one lane-divider dash (m).
pub const DASH_LENGTH_M: f64 = 3.0;
/// Dash period along the road (m): dashes cover `[k * period, k * period + DASH_LENGTH_M]`.
pub const DASH_PERIOD_M: f64 = 9.0;
/// Width of painted lines (m).
pub const MARKING_WIDTH_M: f64 = 0.15;
/// Kerb width beyond the road edge (m).
const KERB_WIDTH_M: f64 = 0.3;
/// Distance of the solid edge lines' centre inside the road edge (m).
const EDGE_LINE_INSET_M: f64 = 0.3;

/// Deterministic 64-bit hash (SplitMix64 finaliser) for noise and jitter.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform value in `[0, 1)` from a hash of `(a, b, seed)`.
pub fn unit_hash(a: i64, b: i64, seed: u64) -> f64 {
    let h = mix64(mix64(mix64(seed) ^ a as u64) ^ b as u64);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Smooth value noise in `[0, 1)` on a grid of `cell_m` metres.
fn value_noise(x: f64, y: f64, cell_m: f64, seed: u64) -> f64 {
    let (gx, gy) = (x / cell_m, y / cell_m);
    let (fx, fy) = (gx.floor(), gy.floor());
    let (tx, ty) = (gx - fx, gy - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (fx as i64, fy as i64);
    let v00 = unit_hash(ix, iy, seed);
    let v10 = unit_hash(ix + 1, iy, seed);
    let v01 = unit_hash(ix, iy + 1, seed);
    let v11 = unit_hash(ix + 1, iy + 1, seed);
    let a = v00 + (v10 - v00) * sx;
    let b = v01 + (v11 - v01) * sx;
    a + (b - a) * sy
}

/// Half the paved width (m) for `lanes` lanes.
pub fn road_half_width_m(lanes: u32) -> f64 {
    f64::from(lanes) * LANE_WIDTH_M / 2.0
}

/// Ground y of a lane's centre line (m). Lane 0 has the lowest y (nearest a camera placed at
/// negative y); the road's centre line is y = 0 and it runs along x.
pub fn lane_centre_y_m(lanes: u32, lane: u32) -> f64 {
    (f64::from(lane) + 0.5) * LANE_WIDTH_M - road_half_width_m(lanes)
}

/// Ground y of the lane dividers' centre lines (m), between lane i and i + 1.
pub fn divider_ys_m(lanes: u32) -> Vec<f64> {
    (1..lanes)
        .map(|i| f64::from(i) * LANE_WIDTH_M - road_half_width_m(lanes))
        .collect()
}

/// Colour of the ground at world `(x, y)` seen from `dist_m` away.
fn ground_rgb(x: f64, y: f64, lanes: u32, seed: u64, dist_m: f64) -> [f64; 3] {
    let half = road_half_width_m(lanes);
    let ay = y.abs();
    // Fine texture fades with distance, where it would only alias.
    let detail = (1.0 - dist_m / 120.0).clamp(0.0, 1.0);
    let coarse = value_noise(x, y, 2.5, seed) - 0.5;
    let fine = value_noise(x, y, 0.12, seed ^ 0x55) - 0.5;
    let rgb = if ay <= half {
        let mut c = 92.0 + 14.0 * coarse + 18.0 * fine * detail;
        let mut tint = [0.0, 0.0, 4.0];
        let edge = (ay - (half - EDGE_LINE_INSET_M)).abs() <= MARKING_WIDTH_M / 2.0;
        let dash = divider_ys_m(lanes)
            .iter()
            .any(|&d| (y - d).abs() <= MARKING_WIDTH_M / 2.0)
            && x.rem_euclid(DASH_PERIOD_M) <= DASH_LENGTH_M;
        if edge || dash {
            c = 222.0 + 10.0 * fine * detail;
            tint = [0.0, 0.0, 0.0];
        }
        [c + tint[0], c + tint[1], c + tint[2]]
    } else if ay <= half + KERB_WIDTH_M {
        let c = 170.0 + 12.0 * fine * detail;
        [c, c, c - 4.0]
    } else {
        let g = value_noise(x, y, 4.0, seed ^ 0xaa) - 0.5;
        [
            70.0 + 25.0 * g + 20.0 * fine * detail,
            112.0 + 30.0 * g + 25.0 * fine * detail,
            52.0 + 15.0 * g,
        ]
    };
    // Aerial haze towards the horizon.
    let haze = 1.0 - (-dist_m / 600.0).exp();
    let h = [196.0, 208.0, 220.0];
    std::array::from_fn(|i| rgb[i] + (h[i] - rgb[i]) * haze)
}

/// Sky colour at image row `v_px` given the horizon row.
fn sky_rgb(v_px: f64, horizon_v_px: f64, height_px: f64) -> [f64; 3] {
    let t = (1.0 - (horizon_v_px - v_px) / (0.15 * height_px)).clamp(0.0, 1.0);
    let top = [105.0, 155.0, 215.0];
    let low = [200.0, 218.0, 236.0];
    std::array::from_fn(|i| top[i] + (low[i] - top[i]) * t)
}

/// Renders the static background (2x2 supersampled): ground by back-projection, sky above the
/// horizon. Returns packed RGB.
pub fn render_background(cam: &Camera, lanes: u32, seed: u64) -> Vec<u8> {
    let (w, h) = (cam.width_px as usize, cam.height_px as usize);
    let horizon = cam.horizon_v_px().unwrap_or(f64::NEG_INFINITY);
    let mut out = vec![0u8; w * h * 3];
    let cam_xy = [cam.spec.x_m, cam.spec.y_m];
    for v in 0..h {
        for u in 0..w {
            let mut acc = [0.0; 3];
            for (du, dv) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let px = [u as f64 + du, v as f64 + dv];
                let c = match cam.unproject_ground(px) {
                    Some(g) => {
                        let dist = (g[0] - cam_xy[0]).hypot(g[1] - cam_xy[1]);
                        ground_rgb(g[0], g[1], lanes, seed, dist)
                    }
                    None => sky_rgb(px[1], horizon, h as f64),
                };
                for i in 0..3 {
                    acc[i] += c[i] / 4.0;
                }
            }
            let o = (v * w + u) * 3;
            for i in 0..3 {
                out[o + i] = acc[i].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// A vehicle ready to animate: spec, size, sprite and where it starts.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The vehicle's spec.
    pub spec: VehicleSpec,
    /// Footprint length along the road (m) = billboard width.
    pub length_m: f64,
    /// Height (m) = billboard height.
    pub height_m: f64,
    /// Ground y of its lane centre (m).
    pub y_m: f64,
    /// Ground x of its reference point at `t_start_s` (m), chosen just out of view.
    pub x_start_m: f64,
    /// Sprite image.
    pub sprite: Sprite,
    /// Draw the sprite mirrored (its facing differs from its on-screen motion).
    pub mirror: bool,
}

/// Where an actor is at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Ground position of the footprint centre (m).
    pub ground_m: [f64; 2],
    /// Depth of the reference point along the optical axis (m).
    pub depth_m: f64,
    /// Billboard box `[left, top, right, bottom]` (px); its bottom-centre is the projected
    /// reference point.
    pub bbox_px: [f64; 4],
}

impl Actor {
    /// Signed distance travelled along the road after `t_s` (m), 0 before the start.
    pub(crate) fn travelled_m(&self, t_s: f64) -> f64 {
        let tau = (t_s - self.spec.t_start_s).max(0.0);
        self.spec.speed_kmh / 3.6 * tau + 0.5 * self.spec.accel_mps2 * tau * tau
    }

    /// Ground x of the reference point at `t_s` (m).
    pub fn x_at_m(&self, t_s: f64) -> f64 {
        self.x_start_m + self.spec.direction.sign() * self.travelled_m(t_s)
    }

    /// First time (s) the reference point reaches ground x `x_m`, if it ever does.
    pub fn time_at_x_s(&self, x_m: f64) -> Option<f64> {
        let d = self.spec.direction.sign() * (x_m - self.x_start_m);
        if d < 0.0 {
            return None;
        }
        let (v, a) = (self.spec.speed_kmh / 3.6, self.spec.accel_mps2);
        let tau = if a.abs() < 1e-12 {
            d / v
        } else {
            let disc = v * v + 2.0 * a * d;
            if disc < 0.0 {
                return None;
            }
            // Numerically stable form of (-v + sqrt(disc)) / a.
            2.0 * d / (v + disc.sqrt())
        };
        Some(self.spec.t_start_s + tau)
    }

    /// Billboard pose at ground x `x_m`; `None` when behind the camera.
    pub fn pose_at_x(&self, cam: &Camera, x_m: f64) -> Option<Pose> {
        let g = [x_m, self.y_m];
        let p = cam.project_ground(g)?;
        let depth = cam.depth_m([g[0], g[1], 0.0]);
        let scale = cam.spec.focal_px / depth;
        let (w, h) = (self.length_m * scale, self.height_m * scale);
        Some(Pose {
            ground_m: g,
            depth_m: depth,
            bbox_px: [p[0] - w / 2.0, p[1] - h, p[0] + w / 2.0, p[1]],
        })
    }

    /// Pose at time `t_s`; `None` before its start or when not in front of the camera.
    pub fn pose(&self, cam: &Camera, t_s: f64) -> Option<Pose> {
        (t_s >= self.spec.t_start_s)
            .then(|| self.pose_at_x(cam, self.x_at_m(t_s)))
            .flatten()
    }
}

/// Whether a box overlaps the image at all.
pub(crate) fn box_in_image(cam: &Camera, b: [f64; 4]) -> bool {
    b[2] > 0.0 && b[0] < f64::from(cam.width_px) && b[3] > 0.0 && b[1] < f64::from(cam.height_px)
}

/// Prepares an actor: loads its sprite, finds a start point just out of view.
pub fn make_actor(spec: &SceneSpec, cam: &Camera, v: &VehicleSpec) -> Result<Actor, SynthError> {
    if v.lane >= spec.lanes {
        return Err(SynthError::Spec(format!(
            "vehicle {} is in lane {} but the road has {} lanes (0..{})",
            v.id,
            v.lane,
            spec.lanes,
            spec.lanes - 1
        )));
    }
    if v.speed_kmh.is_nan() || v.speed_kmh <= 0.0 {
        return Err(SynthError::Spec(format!(
            "vehicle {} has speed {} km/h: give a positive speed",
            v.id, v.speed_kmh
        )));
    }
    let end_s = spec.duration_s - v.t_start_s;
    if v.accel_mps2 < 0.0 && v.speed_kmh / 3.6 + v.accel_mps2 * end_s < 1.0 {
        return Err(SynthError::Spec(format!(
            "vehicle {} would slow below 1 m/s before the video ends: reduce its deceleration",
            v.id
        )));
    }
    let name = sprite::resolve(&v.sprite, v.class, sprite_key(spec.seed, v.id));
    let sprite = Sprite::load(name)?;
    let (length_m, height_m) = billboard_m(v, &sprite)?;
    let mut actor = Actor {
        spec: v.clone(),
        length_m,
        height_m,
        y_m: lane_centre_y_m(spec.lanes, v.lane),
        x_start_m: 0.0,
        sprite,
        mirror: false,
    };
    // Walk upstream from the point of the lane nearest the image centre until the billboard is
    // out of view (or behind the camera).
    let x_mid = cam
        .unproject_ground([
            f64::from(cam.width_px) / 2.0,
            f64::from(cam.height_px) / 2.0,
        ])
        .map_or(cam.spec.x_m, |g| g[0]);
    let back = -v.direction.sign();
    let mut s = 0.0;
    loop {
        let x = x_mid + back * s;
        match actor.pose_at_x(cam, x) {
            Some(p) if box_in_image(cam, p.bbox_px) => {}
            _ => {
                actor.x_start_m = x;
                break;
            }
        }
        s += 0.25;
        if s > 2000.0 {
            return Err(SynthError::Spec(format!(
                "lane {} never leaves the view upstream of vehicle {}: the camera sees the road's \
                 vanishing point; turn the camera (yaw) more across the road",
                v.lane, v.id
            )));
        }
    }
    let a = cam.project_ground([x_mid, actor.y_m]);
    let b = cam.project_ground([x_mid + v.direction.sign(), actor.y_m]);
    let moves_right = matches!((a, b), (Some(a), Some(b)) if b[0] > a[0]);
    actor.mirror = actor.sprite.faces_right != moves_right;
    Ok(actor)
}

/// The key that picks a vehicle's sprite from a set: the same for the same scene seed and id.
fn sprite_key(seed: u64, id: u32) -> u64 {
    mix64(seed) ^ u64::from(id)
}

/// Billboard (width, height) in metres: the vehicle's own size when its spec gives one, else the
/// sprite's for a rendered sprite, else its class's. A rendered sprite shows a little roof above
/// the vehicle's height, so its billboard is taller than the vehicle by the same proportion.
fn billboard_m(v: &VehicleSpec, sprite: &Sprite) -> Result<(f64, f64), SynthError> {
    let (length_m, height_m) = match (v.size_m, sprite.size_m) {
        (Some([l, _, h]), _) => (l, h),
        (None, Some(s)) => (s.length_m, s.vehicle_height_m),
        (None, None) => v.class.dimensions_m(),
    };
    if !(length_m > 0.5 && length_m < 30.0 && height_m > 0.5 && height_m < 6.0) {
        return Err(SynthError::Spec(format!(
            "vehicle {} is {length_m} m long and {height_m} m tall: give 0.5..30 m and 0.5..6 m",
            v.id
        )));
    }
    Ok(match (v.size_m, sprite.size_m) {
        (Some(_), Some(s)) => s.billboard_m(length_m, height_m),
        (None, Some(s)) => (s.length_m, s.image_height_m),
        (_, None) => (length_m, height_m),
    })
}

/// Composites all actors visible at `t_s` onto a copy of the background, far first.
/// Returns the frame and each drawn actor's index with its pose.
pub fn compose(
    cam: &Camera,
    background: &[u8],
    actors: &[Actor],
    t_s: f64,
) -> (Vec<u8>, Vec<(usize, Pose)>) {
    let mut frame = background.to_vec();
    let mut drawn: Vec<(usize, Pose)> = actors
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.pose(cam, t_s).map(|p| (i, p)))
        .filter(|(_, p)| box_in_image(cam, p.bbox_px))
        .collect();
    drawn.sort_by(|a, b| b.1.depth_m.total_cmp(&a.1.depth_m));
    for (i, p) in &drawn {
        let b = p.bbox_px;
        draw_shadow(&mut frame, cam.width_px, cam.height_px, b);
        actors[*i].sprite.draw(
            &mut frame,
            cam.width_px,
            cam.height_px,
            b[0],
            b[1],
            b[2] - b[0],
            b[3] - b[1],
            actors[*i].mirror,
        );
    }
    (frame, drawn)
}

/// Darkens a soft ellipse on the road under a vehicle's box, centred just above its bottom edge
/// so the contact line (the box bottom) stays where the tyres are.
fn draw_shadow(frame: &mut [u8], w: u32, h: u32, b: [f64; 4]) {
    let bw = b[2] - b[0];
    let (cu, cv) = ((b[0] + b[2]) / 2.0, b[3] - 0.02 * bw);
    let (ra, rb) = (0.52 * bw, 0.04 * bw);
    let u0 = (cu - ra).floor().max(0.0) as u32;
    let u1 = ((cu + ra).ceil().max(0.0) as u32).min(w);
    let v0 = (cv - rb).floor().max(0.0) as u32;
    let v1 = ((cv + rb).ceil().max(0.0) as u32).min(h);
    for v in v0..v1 {
        for u in u0..u1 {
            let du = (f64::from(u) + 0.5 - cu) / ra;
            let dv = (f64::from(v) + 0.5 - cv) / rb;
            let r2 = du * du + dv * dv;
            if r2 < 1.0 {
                let k = 1.0 - SHADOW_STRENGTH * (1.0 - r2).sqrt();
                let o = ((v * w + u) * 3) as usize;
                for c in &mut frame[o..o + 3] {
                    *c = (f64::from(*c) * k).round() as u8;
                }
            }
        }
    }
}

/// How much a shadow darkens the road at its centre (0..1).
const SHADOW_STRENGTH: f64 = 0.6;
