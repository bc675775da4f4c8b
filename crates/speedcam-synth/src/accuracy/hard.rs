//! The hard benchmark families: the traffic and detector effects that the standard family leaves
//! out and that field tests found the pipeline failing on (issue 20).
//!
//! What differs from the standard family (the parent module's doc):
//!
//! - classes: cars, vans, rigid lorries (class `truck`) and buses, each vehicle with its own
//!   length, width and height drawn from its class's range ([`ClassSpec`]);
//! - boxes: the bounding rectangle of the projected 3-D cuboid of the vehicle (footprint centred
//!   on its reference point, oriented along the road), not a billboard: the box's bottom edge is
//!   the nearest lower corner and its bottom centre is a ground point that slides along the
//!   vehicle as the perspective changes, by metres for a bus. A vehicle with a corner behind or
//!   within 1 m of the camera is not visible. Truth stays the reference point's mean speed over
//!   the zone;
//! - box noise grows with the box: each edge `max(box_sigma_px, box_rel_sigma x height)`;
//! - detector: heavy vehicles score lower than cars; class flicker (a bus reported as truck, a
//!   truck as bus, a van as car or truck); a second box of the other class on the same heavy
//!   vehicle now and then, slightly displaced and scoring about the same (what per-class NMS
//!   leaves); a vehicle whose box is covered by nearer vehicles' boxes ([`DetectorSpec::occlusion_cover`])
//!   is missed or reported with a low score ([`DetectorSpec`]);
//! - motion: constant speed, constant acceleration (braking or accelerating, as the standard
//!   family), and queues: a vehicle brakes to a stop at a random point inside the zone, stands,
//!   then drives off ([`MotionSpec`]). Vehicles in one lane never drive through each other: a
//!   follower appears late enough to stay at least [`MotionSpec::min_gap_m`] behind every
//!   vehicle ahead of it in its lane at all times (so it waits out a queue rather than joining
//!   it). Truth records each vehicle's [`MotionProfile`], size, the time it stood in the zone and,
//!   for a queue, where and how it stopped;
//! - conditions: every frame, every 3rd frame with 5 ms jitter, adaptive skipping at 10 Hz; at 25
//!   or 30 fps.
//!
//! [`super::Family::Heldout`] draws the same kinds of traffic from other ranges: other camera
//! heights, tilts, yaws, focal lengths and image sizes, other vehicle sizes and class shares,
//! other noise and detector numbers, other frame rates and its own seed. It exists to check that
//! a change which helps the hard family is not fitted to it: **never tune anything on the
//! held-out family**; look at its numbers only to confirm a change made for other reasons.

use super::{
    box_fully_in, capture_frames, false_positive_rows, name_hash, place_zone, visible,
    AccuracyCase, BenchConfig, BenchError, Condition, Geometry, MotBox, NoiseSpec, Rng,
    TruthVehicle,
};
use crate::camera::{Camera, CameraSpec};
use crate::scene::{lane_centre_y_m, road_half_width_m};
use crate::{occluded_fraction, Direction, SceneSpec, VehicleClass};
use serde::Serialize;

/// Ranges the camera, image and road of a case are drawn from (uniformly).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeometryRanges {
    /// Image sizes (width, height), px; one is picked at random.
    pub image_sizes_px: Vec<(u32, u32)>,
    /// Lanes, inclusive range.
    pub lanes: (u32, u32),
    /// Camera distance beyond the road's edge, m.
    pub side_m: (f64, f64),
    /// Angle between the road and the viewing direction, deg (90: straight across); mirrored
    /// to look towards -x half of the time.
    pub yaw_deg: (f64, f64),
    /// Camera height, m.
    pub height_m: (f64, f64),
    /// Tilt below the horizontal, deg.
    pub tilt_deg: (f64, f64),
    /// Focal length as a multiple of the image width.
    pub focal_per_width: (f64, f64),
    /// Zone length before it is shortened to fit, m.
    pub zone_length_m: (f64, f64),
}

/// One vehicle class of a family: its share of the traffic, size ranges and detector scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSpec {
    /// The class.
    pub class: VehicleClass,
    /// Share of the vehicles, 0..1 (the shares of a family sum to 1).
    pub share: f64,
    /// Length, m.
    pub length_m: (f64, f64),
    /// Width, m.
    pub width_m: (f64, f64),
    /// Height, m.
    pub height_m: (f64, f64),
    /// Fastest speed drawn for it, km/h.
    pub max_speed_kmh: f64,
    /// Detector score of an unoccluded box.
    pub score: (f64, f64),
}

/// How the vehicles of a family move and arrive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotionSpec {
    /// Speed range of the vehicles that do not queue, km/h (capped per class).
    pub speed_kmh: (f64, f64),
    /// Share of the vehicles (not queueing) that accelerate or brake.
    pub accel_share: f64,
    /// Magnitude of that acceleration, m/s^2 (reduced where the speed would leave `speed_kmh`
    /// on the visible path, as in the standard family).
    pub accel_mps2: (f64, f64),
    /// Share of the vehicles that stop in the zone.
    pub queue_share: f64,
    /// Speed of a queueing vehicle before it brakes, km/h.
    pub queue_approach_kmh: (f64, f64),
    /// Its deceleration to the stop, m/s^2.
    pub queue_decel_mps2: (f64, f64),
    /// How long it stands, s.
    pub queue_stand_s: (f64, f64),
    /// Its acceleration when it drives off, m/s^2.
    pub queue_accel_mps2: (f64, f64),
    /// The speed it drives off to, km/h.
    pub queue_leave_kmh: (f64, f64),
    /// Least bumper-to-bumper gap between vehicles in one lane, m.
    pub min_gap_m: f64,
    /// Mean time between arrivals (exponential), s.
    pub mean_headway_s: f64,
}

/// What the simulated detector does besides box noise and random misses ([`NoiseSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorSpec {
    /// Share of a bus's detections labelled "truck".
    pub bus_as_truck: f64,
    /// Share of a lorry's detections labelled "bus".
    pub truck_as_bus: f64,
    /// Share of vans whose usual label is "truck" (the others': "car").
    pub van_usually_truck: f64,
    /// Share of a van's detections with the other of the two labels.
    pub van_flip: f64,
    /// Share of a heavy vehicle's (van, lorry, bus) unoccluded detections that come with a
    /// second box of the other label.
    pub duplicate_share: f64,
    /// Standard deviation of the second box's extra edge displacement, share of the box's width
    /// (left, right) or height (top, bottom).
    pub duplicate_rel_sigma: f64,
    /// The second box scores this much less than the first.
    pub duplicate_score_drop: (f64, f64),
    /// A vehicle whose box is covered at least this much by nearer vehicles' boxes (share of its
    /// area in the image) is occluded.
    pub occlusion_cover: f64,
    /// Share of occluded detections that are missed; the others get `occluded_score`.
    pub occluded_miss_share: f64,
    /// Score of an occluded detection that is reported.
    pub occluded_score: (f64, f64),
}

/// Everything a hard family draws besides noise and conditions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardSpec {
    /// Cameras and roads.
    pub geometry: GeometryRanges,
    /// Vehicle classes.
    pub classes: Vec<ClassSpec>,
    /// Motion and arrivals.
    pub motion: MotionSpec,
    /// Detector behaviour.
    pub detector: DetectorSpec,
}

impl HardSpec {
    /// The hard family: the standard family's cameras, new traffic and detector effects.
    pub fn hard() -> Self {
        Self {
            geometry: GeometryRanges {
                image_sizes_px: vec![(1280, 720), (1920, 1080), (1600, 900), (1024, 768)],
                lanes: (1, 4),
                side_m: (1.0, 25.0),
                yaw_deg: (12.0, 90.0),
                height_m: (4.0, 15.0),
                tilt_deg: (8.0, 40.0),
                focal_per_width: (0.6, 1.6),
                zone_length_m: (15.0, 40.0),
            },
            classes: vec![
                class(
                    VehicleClass::Car,
                    0.55,
                    [(4.2, 4.9), (1.75, 1.85), (1.4, 1.55)],
                ),
                class(
                    VehicleClass::Van,
                    0.15,
                    [(5.0, 5.6), (1.95, 2.05), (2.1, 2.5)],
                ),
                class(
                    VehicleClass::Truck,
                    0.15,
                    [(7.0, 10.0), (2.4, 2.55), (3.0, 3.6)],
                ),
                class(
                    VehicleClass::Bus,
                    0.15,
                    [(11.5, 12.5), (2.5, 2.55), (3.0, 3.3)],
                ),
            ],
            motion: MotionSpec {
                speed_kmh: (5.0, 130.0),
                accel_share: 0.35,
                accel_mps2: (0.5, 3.0),
                queue_share: 0.2,
                queue_approach_kmh: (20.0, 60.0),
                queue_decel_mps2: (1.5, 3.0),
                queue_stand_s: (2.0, 20.0),
                queue_accel_mps2: (1.0, 2.5),
                queue_leave_kmh: (30.0, 60.0),
                min_gap_m: 2.0,
                mean_headway_s: 1.5,
            },
            detector: DetectorSpec {
                bus_as_truck: 0.3,
                truck_as_bus: 0.15,
                van_usually_truck: 0.3,
                van_flip: 0.2,
                duplicate_share: 0.2,
                duplicate_rel_sigma: 0.015,
                duplicate_score_drop: (0.0, 0.03),
                occlusion_cover: 0.6,
                occluded_miss_share: 0.5,
                occluded_score: (0.15, 0.3),
            },
        }
    }

    /// The held-out family: other cameras, image sizes, vehicle sizes, shares and detector
    /// numbers (never tune on it; see the module doc).
    pub fn heldout() -> Self {
        let mut car = class(
            VehicleClass::Car,
            0.5,
            [(3.9, 5.1), (1.7, 1.9), (1.35, 1.6)],
        );
        car.score = (0.45, 0.95);
        let mut spec = Self {
            geometry: GeometryRanges {
                image_sizes_px: vec![(1920, 1080), (1280, 720)],
                lanes: (2, 4),
                side_m: (2.0, 20.0),
                yaw_deg: (20.0, 85.0),
                height_m: (5.0, 18.0),
                tilt_deg: (10.0, 45.0),
                focal_per_width: (0.7, 2.0),
                zone_length_m: (12.0, 35.0),
            },
            classes: vec![
                car,
                class(VehicleClass::Van, 0.2, [(4.8, 6.0), (1.9, 2.1), (1.9, 2.7)]),
                class(
                    VehicleClass::Truck,
                    0.15,
                    [(6.0, 12.0), (2.3, 2.55), (2.8, 3.9)],
                ),
                class(
                    VehicleClass::Bus,
                    0.15,
                    [(10.5, 13.5), (2.45, 2.55), (2.9, 3.4)],
                ),
            ],
            ..Self::hard()
        };
        for c in spec.classes.iter_mut().skip(1) {
            c.score = (0.28, 0.65);
        }
        spec.motion.queue_share = 0.25;
        spec.motion.queue_stand_s = (1.0, 25.0);
        spec.motion.queue_decel_mps2 = (1.2, 3.5);
        spec.motion.mean_headway_s = 1.3;
        spec.detector.bus_as_truck = 0.25;
        spec.detector.truck_as_bus = 0.2;
        spec.detector.duplicate_share = 0.25;
        spec.detector.duplicate_rel_sigma = 0.02;
        spec.detector.occlusion_cover = 0.55;
        spec
    }

    fn class_spec(&self, class: VehicleClass) -> Option<&ClassSpec> {
        self.classes.iter().find(|c| c.class == class)
    }
}

/// A class of the hard family with its sizes `[length, width, height]` ranges, m; heavy classes
/// score 0.3-0.6 and go at most 100 km/h, cars 0.5-0.95 and 130 km/h.
fn class(class: VehicleClass, share: f64, size_m: [(f64, f64); 3]) -> ClassSpec {
    let car = class == VehicleClass::Car;
    ClassSpec {
        class,
        share,
        length_m: size_m[0],
        width_m: size_m[1],
        height_m: size_m[2],
        max_speed_kmh: if car { 130.0 } else { 100.0 },
        score: if car { (0.5, 0.95) } else { (0.3, 0.6) },
    }
}

/// Noise of the hard family: edges `max(1 px, 1.2% of the box height)`, 8% misses.
pub(crate) fn hard_noise() -> NoiseSpec {
    NoiseSpec {
        box_sigma_px: 1.0,
        box_rel_sigma: 0.012,
        ..NoiseSpec::default()
    }
}

/// Noise of the held-out family: edges `max(1.2 px, 1.5% of the box height)`, 10% misses, more
/// false positives and calibration noise.
pub(crate) fn heldout_noise() -> NoiseSpec {
    NoiseSpec {
        box_sigma_px: 1.2,
        box_rel_sigma: 0.015,
        miss_rate: 0.10,
        false_positive_rate: 0.04,
        calibration_sigma_px: 0.6,
        ..NoiseSpec::default()
    }
}

fn at_fps(mut c: Condition, fps: f64) -> Condition {
    c.fps = fps;
    c.name = format!("{}@{fps}fps", c.name);
    c
}

fn conditions(fps: [f64; 3]) -> Vec<Condition> {
    vec![
        at_fps(Condition::new("every-frame", 1, 0.0), fps[0]),
        at_fps(Condition::new("every-3rd+jitter5ms", 3, 5.0), fps[1]),
        at_fps(
            Condition {
                adaptive_max_hz: Some(10.0),
                ..Condition::new("adaptive-10Hz+jitter5ms", 1, 5.0)
            },
            fps[2],
        ),
    ]
}

/// Conditions of the hard family: every frame at 25 fps, every 3rd with 5 ms jitter at 30 fps,
/// adaptive 10 Hz with 5 ms jitter at 25 fps.
pub(crate) fn hard_conditions() -> Vec<Condition> {
    conditions([25.0, 30.0, 25.0])
}

/// Conditions of the held-out family: the hard family's with the frame rates swapped.
pub(crate) fn heldout_conditions() -> Vec<Condition> {
    conditions([30.0, 25.0, 30.0])
}

/// How a vehicle of a hard family moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MotionProfile {
    /// Constant speed.
    Constant,
    /// Constant acceleration or braking ([`TruthVehicle::accel_mps2`]).
    Accel,
    /// Brakes to a stop inside the zone, stands, drives off ([`TruthVehicle::queue`]).
    Queue,
}

impl MotionProfile {
    /// Lower-case name, as in `truth.json`.
    pub fn name(self) -> &'static str {
        match self {
            MotionProfile::Constant => "constant",
            MotionProfile::Accel => "accel",
            MotionProfile::Queue => "queue",
        }
    }
}

/// Where and how a queueing vehicle stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueueStop {
    /// Ground x where its reference point stands, m.
    pub stop_x_m: f64,
    /// When it comes to a standstill, s.
    pub stop_t_s: f64,
    /// How long it stands, s.
    pub stand_s: f64,
    /// Deceleration to the stop, m/s^2 (positive).
    pub decel_mps2: f64,
    /// Acceleration when it drives off, m/s^2.
    pub accel_mps2: f64,
    /// The speed it drives off to, km/h.
    pub leave_kmh: f64,
}

/// Speed below which a vehicle counts as stopped, m/s.
const STOPPED_M_S: f64 = 0.5;

/// Cuboid corners nearer than this to the camera (depth) make the vehicle not visible, m.
const MIN_CORNER_DEPTH_M: f64 = 1.0;

/// Bounding box `[x1, y1, x2, y2]` (px) of the projection of a vehicle's cuboid: footprint
/// `size_m[0]` (along the road, x) by `size_m[1]` (across) centred on ground point `centre_m`,
/// `size_m[2]` tall. None when a corner is behind or within 1 m of the camera.
pub fn cuboid_box(cam: &Camera, centre_m: [f64; 2], size_m: [f64; 3]) -> Option<[f64; 4]> {
    let [l, w, h] = size_m;
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for dx in [-l / 2.0, l / 2.0] {
        for dy in [-w / 2.0, w / 2.0] {
            for z in [0.0, h] {
                let p = [centre_m[0] + dx, centre_m[1] + dy, z];
                if cam.depth_m(p) < MIN_CORNER_DEPTH_M {
                    return None;
                }
                let q = cam.project(p)?;
                b = [
                    b[0].min(q[0]),
                    b[1].min(q[1]),
                    b[2].max(q[0]),
                    b[3].max(q[1]),
                ];
            }
        }
    }
    Some(b)
}

/// One phase of piecewise constant-acceleration motion.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    /// Start time, s.
    t0_s: f64,
    /// Distance travelled at its start, m.
    s0_m: f64,
    /// Speed at its start, m/s.
    v0_m_s: f64,
    /// Acceleration, m/s^2.
    a_m_s2: f64,
}

/// A vehicle's motion along its lane: distance `s(t)` travelled from ground x `x_start_m`
/// (where it appears at `t_start_s`) in direction `sign`, by phases of constant acceleration;
/// the last phase lasts for ever. Before `t_start_s` it is extrapolated at its first speed (only
/// to keep vehicles apart).
#[derive(Debug, Clone, PartialEq)]
struct Trajectory {
    x_start_m: f64,
    sign: f64,
    t_start_s: f64,
    phases: Vec<Phase>,
}

impl Trajectory {
    /// Starts at `t_start_s` with speed `v_m_s`; `steps` are (duration s, acceleration m/s^2),
    /// then it cruises at the speed reached.
    fn new(x_start_m: f64, sign: f64, t_start_s: f64, v_m_s: f64, steps: &[(f64, f64)]) -> Self {
        let mut phases = Vec::with_capacity(steps.len() + 1);
        let (mut t, mut s, mut v) = (t_start_s, 0.0, v_m_s);
        for &(dur, a) in steps {
            phases.push(Phase {
                t0_s: t,
                s0_m: s,
                v0_m_s: v,
                a_m_s2: a,
            });
            s += v * dur + 0.5 * a * dur * dur;
            v = (v + a * dur).max(0.0);
            t += dur;
        }
        phases.push(Phase {
            t0_s: t,
            s0_m: s,
            v0_m_s: v,
            a_m_s2: 0.0,
        });
        Self {
            x_start_m,
            sign,
            t_start_s,
            phases,
        }
    }

    /// The same motion starting `delay_s` later.
    fn delayed(&self, delay_s: f64) -> Self {
        let mut t = self.clone();
        t.t_start_s += delay_s;
        for p in &mut t.phases {
            p.t0_s += delay_s;
        }
        t
    }

    fn v_start_m_s(&self) -> f64 {
        self.phases[0].v0_m_s
    }

    /// Distance travelled (m) and speed (m/s) at `t_s`.
    fn state_at(&self, t_s: f64) -> (f64, f64) {
        if t_s < self.t_start_s {
            return (
                self.v_start_m_s() * (t_s - self.t_start_s),
                self.v_start_m_s(),
            );
        }
        let p = self
            .phases
            .iter()
            .rev()
            .find(|p| p.t0_s <= t_s)
            .unwrap_or(&self.phases[0]);
        let tau = t_s - p.t0_s;
        (
            p.s0_m + p.v0_m_s * tau + 0.5 * p.a_m_s2 * tau * tau,
            (p.v0_m_s + p.a_m_s2 * tau).max(0.0),
        )
    }

    /// Ground x at `t_s`, m.
    fn x_at_m(&self, t_s: f64) -> f64 {
        self.x_start_m + self.sign * self.state_at(t_s).0
    }

    /// When it has first travelled `s_m` (negative: before it appears); None if never.
    fn time_at_s(&self, s_m: f64) -> Option<f64> {
        if s_m < 0.0 {
            let v = self.v_start_m_s();
            return (v > 0.0).then(|| self.t_start_s + s_m / v);
        }
        for (i, p) in self.phases.iter().enumerate() {
            let s_end = self.phases.get(i + 1).map_or(f64::INFINITY, |n| n.s0_m);
            if s_m > s_end {
                continue;
            }
            let d = s_m - p.s0_m;
            if d <= 0.0 {
                return Some(p.t0_s);
            }
            let (v, a) = (p.v0_m_s, p.a_m_s2);
            let disc = v * v + 2.0 * a * d;
            if disc < 0.0 || v + disc.sqrt() <= 0.0 {
                continue;
            }
            return Some(p.t0_s + 2.0 * d / (v + disc.sqrt()));
        }
        None
    }

    /// When its ground x first reaches `x_m`.
    fn time_at_x_s(&self, x_m: f64) -> Option<f64> {
        self.time_at_s(self.sign * (x_m - self.x_start_m))
    }

    /// Time in `[t0_s, t1_s]` with speed under [`STOPPED_M_S`], s.
    fn slow_time_s(&self, t0_s: f64, t1_s: f64) -> f64 {
        let mut total = 0.0;
        for (i, p) in self.phases.iter().enumerate() {
            let end = self.phases.get(i + 1).map_or(f64::INFINITY, |n| n.t0_s);
            let (lo, hi) = (p.t0_s.max(t0_s), end.min(t1_s));
            if hi <= lo {
                continue;
            }
            // v(t) = v0 + a (t - t0) is below the threshold on one side of `tc`.
            let (lo, hi) = if p.a_m_s2 == 0.0 {
                if p.v0_m_s < STOPPED_M_S {
                    (lo, hi)
                } else {
                    continue;
                }
            } else {
                let tc = p.t0_s + (STOPPED_M_S - p.v0_m_s) / p.a_m_s2;
                if p.a_m_s2 > 0.0 {
                    (lo, hi.min(tc))
                } else {
                    (lo.max(tc), hi)
                }
            };
            total += (hi - lo).max(0.0);
        }
        total
    }
}

/// A vehicle of a hard case.
struct Vehicle {
    truth: TruthVehicle,
    traj: Trajectory,
    y_m: f64,
    size_m: [f64; 3],
    /// When it leaves the view, s.
    t_end_s: f64,
    /// The label the detector usually gives it.
    label: VehicleClass,
    score: (f64, f64),
}

/// Walks from ground x `x0` in steps of `step` (m) until a vehicle of `size_m` with its
/// reference point there is no longer visible.
fn visible_limit_x(cam: &Camera, size_m: [f64; 3], y: f64, x0: f64, step: f64) -> f64 {
    let mut x = x0;
    for _ in 0..4000 {
        if !cuboid_box(cam, [x, y], size_m).is_some_and(|b| visible(cam, b)) {
            return x;
        }
        x += step;
    }
    x
}

fn range(rng: &mut Rng, r: (f64, f64)) -> f64 {
    rng.range(r.0, r.1)
}

fn draw_geometry(rng: &mut Rng, spec: &HardSpec, noise: &NoiseSpec) -> Option<Geometry> {
    let r = &spec.geometry;
    let sizes = &r.image_sizes_px;
    let (width_px, height_px) = *sizes.get(rng.below(sizes.len() as u32) as usize)?;
    let lanes = r.lanes.0 + rng.below(r.lanes.1.saturating_sub(r.lanes.0) + 1);
    let side_m = road_half_width_m(lanes) + range(rng, r.side_m);
    let mut yaw_deg = range(rng, r.yaw_deg);
    if rng.unit() < 0.5 {
        yaw_deg = 180.0 - yaw_deg;
    }
    let camera = CameraSpec {
        x_m: 0.0,
        y_m: -side_m,
        height_m: range(rng, r.height_m),
        yaw_deg,
        tilt_deg: range(rng, r.tilt_deg),
        focal_px: f64::from(width_px) * range(rng, r.focal_per_width),
    };
    let cam = Camera::new(camera, width_px, height_px);
    let mut spec_scene = SceneSpec {
        width_px,
        height_px,
        fps: 30.0,
        duration_s: 60.0,
        camera,
        lanes,
        zone_length_m: range(rng, r.zone_length_m),
        vehicles: Vec::new(),
        seed: 0,
        jitter_ms: 0.0,
    };
    // Wholly in view at both zone edges: the largest vehicle of every class, and the smallest
    // car (the shortest box).
    let mut fit_sizes: Vec<[f64; 3]> = spec
        .classes
        .iter()
        .map(|c| [c.length_m.1, c.width_m.1, c.height_m.1])
        .collect();
    fit_sizes.extend(
        spec.class_spec(VehicleClass::Car)
            .map(|c| [c.length_m.0, c.width_m.0, c.height_m.0]),
    );
    let (zone, zone_px) = place_zone(
        &cam,
        lanes,
        &mut spec_scene.zone_length_m,
        noise.max_zone_m_per_px,
        |g| {
            fit_sizes
                .iter()
                .all(|s| cuboid_box(&cam, g, *s).is_some_and(|b| box_fully_in(&cam, b, 2.0)))
        },
    )?;
    super::surveyed_geometry(&spec_scene, cam, lanes, (zone, zone_px), noise, rng)
}

/// Draws a class by the family's shares.
fn draw_class<'a>(rng: &mut Rng, spec: &'a HardSpec) -> Option<&'a ClassSpec> {
    let total: f64 = spec.classes.iter().map(|c| c.share).sum();
    let mut u = rng.unit() * total;
    for c in &spec.classes {
        if u < c.share {
            return Some(c);
        }
        u -= c.share;
    }
    spec.classes.last()
}

/// The delay (s, >= 0) `follower` needs so that it stays `gap_m` (bumper to bumper, lengths
/// `len_f_m`, `len_l_m`) behind `leader`, which drives ahead of it in the same lane, over the
/// follower's whole visible path of `path_m`.
fn delay_behind(
    follower: &Trajectory,
    len_f_m: f64,
    path_m: f64,
    leader: &Trajectory,
    len_l_m: f64,
    gap_m: f64,
) -> f64 {
    let d_m = (len_f_m + len_l_m) / 2.0 + gap_m;
    let mut delay = 0.0f64;
    let steps = (path_m / 0.5).ceil() as u32;
    for k in 0..=steps {
        let s_f = (f64::from(k) * 0.5).min(path_m);
        let Some(t_f) = follower.time_at_s(s_f) else {
            break;
        };
        let x_f = follower.x_start_m + follower.sign * s_f;
        // Where the leader must be, and when it gets there.
        let s_l = follower.sign * (x_f - leader.x_start_m) + d_m;
        match leader.time_at_s(s_l) {
            Some(t_l) => delay = delay.max(t_l - t_f),
            None => return f64::INFINITY,
        }
    }
    delay
}

fn draw_vehicles(rng: &mut Rng, g: &Geometry, spec: &HardSpec, n: u32) -> Vec<Vehicle> {
    let m = &spec.motion;
    let lanes = g.lanes;
    let one_lane_dir = if rng.unit() < 0.5 {
        Direction::PlusX
    } else {
        Direction::MinusX
    };
    let xc = (g.zone.x0_m + g.zone.x1_m) / 2.0;
    let mut t = 0.3;
    let mut out: Vec<Vehicle> = Vec::new();
    for id in 1..=n {
        t += -m.mean_headway_s * rng.unit().ln();
        let lane = rng.below(lanes);
        let direction = if lanes == 1 {
            one_lane_dir
        } else if lane < lanes.div_ceil(2) {
            Direction::PlusX
        } else {
            Direction::MinusX
        };
        let Some(cs) = draw_class(rng, spec) else {
            break;
        };
        let size_m = [
            range(rng, cs.length_m),
            range(rng, cs.width_m),
            range(rng, cs.height_m),
        ];
        let label = match cs.class {
            VehicleClass::Van if rng.unit() < spec.detector.van_usually_truck => {
                VehicleClass::Truck
            }
            VehicleClass::Van => VehicleClass::Car,
            c => c,
        };
        let y_m = lane_centre_y_m(lanes, lane);
        let sign = direction.sign();
        let x_start_m = visible_limit_x(&g.cam, size_m, y_m, xc, -0.25 * sign);
        let x_end_m = visible_limit_x(&g.cam, size_m, y_m, xc, 0.25 * sign);
        let path_m = (x_end_m - x_start_m).abs();
        let (first, second) = if sign > 0.0 {
            (g.zone.x0_m, g.zone.x1_m)
        } else {
            (g.zone.x1_m, g.zone.x0_m)
        };
        let (v_min, v_max) = (
            m.speed_kmh.0 / 3.6,
            m.speed_kmh.1.min(cs.max_speed_kmh) / 3.6,
        );
        let u = rng.unit();
        let (profile, traj, accel, queue) = if u < m.queue_share {
            // Brake to a stop inside the zone, stand, drive off.
            let v0 = range(rng, m.queue_approach_kmh) / 3.6;
            let decel = range(rng, m.queue_decel_mps2);
            let stand_s = range(rng, m.queue_stand_s);
            let acc = range(rng, m.queue_accel_mps2);
            let v1 = range(rng, m.queue_leave_kmh) / 3.6;
            let stop_x_m = first + (second - first) * rng.range(0.15, 0.85);
            let s_stop = sign * (stop_x_m - x_start_m);
            let brake_m = v0 * v0 / (2.0 * decel);
            let (v_init, mut steps) = if brake_m <= s_stop {
                (v0, vec![((s_stop - brake_m) / v0, 0.0)])
            } else {
                ((2.0 * decel * s_stop).sqrt(), Vec::new())
            };
            steps.extend([
                (v_init.min(v0) / decel, -decel),
                (stand_s, 0.0),
                (v1 / acc, acc),
            ]);
            let traj = Trajectory::new(x_start_m, sign, t, v_init, &steps);
            let queue = QueueStop {
                stop_x_m,
                stop_t_s: traj.phases[steps.len() - 2].t0_s,
                stand_s,
                decel_mps2: decel,
                accel_mps2: acc,
                leave_kmh: v1 * 3.6,
            };
            (MotionProfile::Queue, traj, -decel, Some(queue))
        } else {
            let v0 = rng.range(v_min, v_max);
            let mut a = if rng.unit() < m.accel_share {
                let mag = range(rng, m.accel_mps2);
                if rng.unit() < 0.5 {
                    mag
                } else {
                    -mag
                }
            } else {
                0.0
            };
            // Keep the speed in range over the whole visible path.
            let v_end2 = v0 * v0 + 2.0 * a * path_m;
            if v_end2 < v_min * v_min {
                a = (v_min * v_min - v0 * v0) / (2.0 * path_m);
            } else if v_end2 > v_max * v_max {
                a = (v_max * v_max - v0 * v0) / (2.0 * path_m);
            }
            let (profile, steps) = if a == 0.0 {
                (MotionProfile::Constant, Vec::new())
            } else {
                let v_end = (v0 * v0 + 2.0 * a * path_m).max(0.0).sqrt();
                (MotionProfile::Accel, vec![((v_end - v0) / a, a)])
            };
            let traj = Trajectory::new(x_start_m, sign, t, v0, &steps);
            (profile, traj, a, None)
        };
        // Appear late enough to stay behind every vehicle ahead in the lane.
        let delay = out
            .iter()
            .filter(|o| o.truth.lane == lane)
            .map(|o| delay_behind(&traj, size_m[0], path_m, &o.traj, o.size_m[0], m.min_gap_m))
            .fold(0.0f64, f64::max);
        if !delay.is_finite() {
            continue;
        }
        let traj = if delay > 0.0 {
            traj.delayed(delay + 0.05)
        } else {
            traj
        };
        let queue = queue.map(|q| QueueStop {
            stop_t_s: q.stop_t_s + if delay > 0.0 { delay + 0.05 } else { 0.0 },
            ..q
        });
        let t_end_s = traj.time_at_s(path_m).unwrap_or(traj.t_start_s + 600.0);
        let mut truth = TruthVehicle {
            id,
            class: cs.class,
            lane,
            direction,
            speed_kmh: traj.v_start_m_s() * 3.6,
            accel_mps2: accel,
            profile: Some(profile),
            size_m: Some(size_m),
            stopped_s: Some(0.0),
            queue,
            zone_entry_s: f64::NAN,
            zone_exit_s: f64::NAN,
            zone_speed_kmh: f64::NAN,
            crossed_zone: false,
        };
        if let (Some(t0), Some(t1)) = (traj.time_at_x_s(first), traj.time_at_x_s(second)) {
            truth.zone_entry_s = t0;
            truth.zone_exit_s = t1;
            truth.zone_speed_kmh = g.zone.length_m() / (t1 - t0) * 3.6;
            truth.stopped_s = Some(traj.slow_time_s(t0, t1));
        }
        out.push(Vehicle {
            truth,
            traj,
            y_m,
            size_m,
            t_end_s,
            label,
            score: cs.score,
        });
    }
    out
}

/// The label of one detection of `v`: its usual label, or the other one (class flicker).
fn reported_label(rng: &mut Rng, v: &Vehicle, d: &DetectorSpec) -> VehicleClass {
    let flip = match v.truth.class {
        VehicleClass::Bus => d.bus_as_truck,
        VehicleClass::Truck => d.truck_as_bus,
        VehicleClass::Van => d.van_flip,
        VehicleClass::Car => 0.0,
    };
    if flip > 0.0 && rng.unit() < flip {
        other_label(v.truth.class, v.label)
    } else {
        v.label
    }
}

/// The other label a detector may give a vehicle of `class` labelled `label`.
fn other_label(class: VehicleClass, label: VehicleClass) -> VehicleClass {
    match (class, label) {
        (VehicleClass::Van, VehicleClass::Car) => VehicleClass::Truck,
        (VehicleClass::Van, _) => VehicleClass::Car,
        (_, VehicleClass::Bus) => VehicleClass::Truck,
        (_, VehicleClass::Truck) => VehicleClass::Bus,
        (_, l) => l,
    }
}

/// Case `index` of a hard family under `condition` (see [`super::generate_case`]).
pub(crate) fn generate_case(
    cfg: &BenchConfig,
    condition: &Condition,
    index: u32,
) -> Result<AccuracyCase, BenchError> {
    let name = format!("case-{index:03}/{}", condition.name);
    let family = name_hash(cfg.family.name());
    let mut rng = Rng::new(&[cfg.seed, u64::from(index), family]);
    let g = (0..500)
        .find_map(|_| draw_geometry(&mut rng, &cfg.hard, &cfg.noise))
        .ok_or_else(|| BenchError::NoCamera(name.clone()))?;
    let vehicles = draw_vehicles(&mut rng, &g, &cfg.hard, cfg.vehicles_per_case);
    let mut rng = Rng::new(&[
        cfg.seed,
        u64::from(index),
        family,
        name_hash(&condition.name),
    ]);
    let end_s = vehicles.iter().map(|v| v.t_end_s).fold(0.0, f64::max) + 0.5;
    let (frame_times_s, detected) = capture_frames(&mut rng, condition, end_s);

    let (w, h) = (f64::from(g.cam.width_px), f64::from(g.cam.height_px));
    let clip = |b: [f64; 4]| [b[0].max(0.0), b[1].max(0.0), b[2].min(w), b[3].min(h)];
    let d = &cfg.hard.detector;
    let noise = &cfg.noise;
    let mut false_positives: Vec<([f64; 4], u32)> = Vec::new();
    let mut detections = Vec::with_capacity(frame_times_s.len());
    for (&t, &det) in frame_times_s.iter().zip(&detected) {
        let mut rows = Vec::new();
        if det {
            // Exact boxes of the vehicles in view, with the depth of their reference point.
            let views: Vec<(&Vehicle, [f64; 2], [f64; 4], f64)> = vehicles
                .iter()
                .filter(|v| t >= v.traj.t_start_s && t <= v.t_end_s)
                .filter_map(|v| {
                    let ground = [v.traj.x_at_m(t), v.y_m];
                    let b = cuboid_box(&g.cam, ground, v.size_m)?;
                    visible(&g.cam, b)
                        .then(|| (v, ground, b, g.cam.depth_m([ground[0], ground[1], 0.0])))
                })
                .collect();
            for &(v, ground, b, depth) in &views {
                let nearer: Vec<[f64; 4]> = views
                    .iter()
                    .filter(|o| o.3 < depth)
                    .map(|o| clip(o.2))
                    .collect();
                let occluded = occluded_fraction(clip(b), &nearer) >= d.occlusion_cover;
                if rng.unit() < noise.miss_rate {
                    continue;
                }
                let score = if occluded {
                    if rng.unit() < d.occluded_miss_share {
                        continue;
                    }
                    range(&mut rng, d.occluded_score)
                } else {
                    range(&mut rng, v.score)
                };
                let label = reported_label(&mut rng, v, d);
                let sigma = noise.box_sigma_px.max(noise.box_rel_sigma * (b[3] - b[1]));
                let noisy = clip(std::array::from_fn(|k| b[k] + sigma * rng.gauss()));
                if noisy[2] - noisy[0] < 4.0 || noisy[3] - noisy[1] < 4.0 {
                    continue;
                }
                rows.push(MotBox {
                    bbox_px: noisy,
                    score,
                    vehicle_id: Some(v.truth.id),
                    class: label,
                    truth_ground_m: Some(ground),
                });
                let heavy = v.truth.class != VehicleClass::Car;
                if heavy && !occluded && rng.unit() < d.duplicate_share {
                    let (bw, bh) = (noisy[2] - noisy[0], noisy[3] - noisy[1]);
                    let s = d.duplicate_rel_sigma;
                    let second = clip([
                        noisy[0] + s * bw * rng.gauss(),
                        noisy[1] + s * bh * rng.gauss(),
                        noisy[2] + s * bw * rng.gauss(),
                        noisy[3] + s * bh * rng.gauss(),
                    ]);
                    let score2 = (score - range(&mut rng, d.duplicate_score_drop)).max(0.05);
                    if second[2] - second[0] >= 4.0 && second[3] - second[1] >= 4.0 {
                        rows.push(MotBox {
                            bbox_px: second,
                            score: score2,
                            vehicle_id: Some(v.truth.id),
                            class: other_label(v.truth.class, label),
                            truth_ground_m: Some(ground),
                        });
                    }
                }
            }
            false_positive_rows(
                &mut rng,
                noise.false_positive_rate,
                (w, h),
                &mut false_positives,
                &mut rows,
            );
        }
        detections.push(rows);
    }

    let vehicles = super::mark_crossed(vehicles.into_iter().map(|v| v.truth), &frame_times_s);
    Ok(AccuracyCase {
        name,
        condition: condition.clone(),
        camera: g.cam.spec,
        width_px: g.cam.width_px,
        height_px: g.cam.height_px,
        lanes: g.lanes,
        zone_world_m: g.zone.corners_m().to_vec(),
        zone_polygon_px: g.zone_px.clone(),
        calibration_image_px: g.cal_image_px.clone(),
        calibration_world_m: g.cal_world_m.clone(),
        frame_times_s,
        detected,
        detections,
        vehicles,
    })
}

#[cfg(test)]
#[path = "hard_tests.rs"]
mod tests;
