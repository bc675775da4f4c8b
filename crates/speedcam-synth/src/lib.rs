//! Synthetic traffic scenes with exact ground truth, for tests and the demo.
//!
//! No public video comes with measured vehicle speeds, so this generator *is* the ground truth.
//! A scene is a straight road on the flat ground plane z = 0 (running along world x, centre line
//! y = 0, lanes [`scene::LANE_WIDTH_M`] wide), seen by a pinhole camera ([`camera::Camera`]) of
//! known height, yaw, tilt and focal length. Vehicles move along lane centre lines at a constant
//! speed (optionally constant acceleration) and are rendered as *billboards*:
//!
//! - each vehicle's reference point is the centre of its footprint, `(x(t), y_lane, 0)`;
//! - it projects through the camera to pixel `p`; the sprite is drawn with its **bottom-centre
//!   exactly at `p`**, `length_m * f / depth` wide and `height_m * f / depth` tall, where `depth`
//!   is the reference point's distance along the optical axis (a photo sprite at its class's
//!   size, a rendered one at its own or at the vehicle's `size_m`, see [`sprite`]);
//! - every sprite is cropped so its bottom edge is the tyres' ground contact and its sides are the
//!   vehicle's ends;
//! - a vehicle names its sprite, or a sprite set (`"set:training"`, `"set:heldout"`,
//!   [`sprite::SpriteSet`]) from which the renderer picks one of its class: cars, vans, lorries
//!   (class `truck`) and buses each have pictures of their own.
//!
//! Hence the bottom-centre of a box around the drawn vehicle is the image of a ground point, and
//! the inverse ground homography (which the speed stage estimates from `camera.toml`'s
//! calibration points) maps it back to exactly `(x(t), y_lane)`: there is no approximation in the
//! geometry, only in how tightly a detector boxes the sprite. Calibration points and the zone
//! polygon are exact projections of known ground points (lane-marking corners; a ground rectangle
//! across all lanes). Frame times are quantised to the MP4's 90 kHz clock *before* vehicles are
//! placed, so the container's presentation times are the times the vehicles were rendered at,
//! including deliberate jitter. A vehicle's true speed over the zone is the zone length divided
//! by the time between its reference point crossing the two zone edges (the mean speed, which
//! equals the constant speed when it does not accelerate).
//!
//! Output of [`render`]: `scene.mp4` (H.264 Baseline, no B-frames), `truth.json`
//! ([`SceneTruth`]) and `camera.toml` (a `[[cameras]]` table with calibration and zone).

#![warn(unreachable_pub)]

pub mod accuracy;
pub mod mp4out;
pub mod scene;
pub mod sprite;
pub mod truth;

pub use speedcam_core::truth::camera;
pub use speedcam_core::truth::{
    compare, compare_table, load_truth, match_measurements, Direction, SceneSpec, SceneTruth,
    TruthSample, VehicleClass, VehicleSpec, VehicleTruth,
};

use camera::{Camera, CameraSpec};
use std::path::{Path, PathBuf};

/// Errors from building or rendering a scene.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The scene spec is inconsistent; the message says what to change.
    #[error("invalid scene: {0}")]
    Spec(String),
    /// A vehicle names a sprite that is not embedded.
    #[error(
        "unknown sprite {0:?}: use one of {names:?}, or \"set:training\" / \"set:heldout\"",
        names = sprite::SPRITE_NAMES
    )]
    UnknownSprite(String),
    /// An embedded sprite failed to decode (a broken build).
    #[error(
        "embedded sprite does not decode: {0}; restore crates/speedcam-synth/sprites from git"
    )]
    Sprite(String),
    /// H.264 encoding or MP4 muxing failed.
    #[error("video encoding failed: {0}")]
    Encode(String),
    /// Writing an output file failed.
    #[error("cannot write {path}: {source} (check the output directory exists and is writable)")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Frame presentation times in 90 kHz ticks: `i / fps` plus seeded jitter, strictly increasing,
/// starting at 0.
pub fn frame_ticks(spec: &SceneSpec) -> Vec<u64> {
    let n = (spec.duration_s * spec.fps).round().max(1.0) as u64;
    let hz = f64::from(mp4out::TIMESCALE_HZ);
    (0..n)
        .map(|i| {
            let jitter = if i == 0 {
                0.0
            } else {
                (scene::unit_hash(i as i64, 7, spec.seed) * 2.0 - 1.0) * spec.jitter_ms / 1e3
            };
            ((i as f64 / spec.fps + jitter) * hz).round() as u64
        })
        .collect()
}

fn validate(spec: &SceneSpec) -> Result<(), SynthError> {
    let bad = |m: String| Err(SynthError::Spec(m));
    if spec.width_px < 16
        || spec.height_px < 16
        || spec.width_px % 2 == 1
        || spec.height_px % 2 == 1
    {
        return bad(format!(
            "image {}x{}: width and height must be even and at least 16",
            spec.width_px, spec.height_px
        ));
    }
    if !(spec.fps > 0.0 && spec.fps <= 240.0) {
        return bad(format!("fps {}: give 1..240", spec.fps));
    }
    if !(spec.duration_s > 0.0 && spec.duration_s <= 600.0) {
        return bad(format!("duration {} s: give 0..600 s", spec.duration_s));
    }
    if !(2..=4).contains(&spec.lanes) {
        return bad(format!("{} lanes: give 2..4", spec.lanes));
    }
    if !(spec.jitter_ms >= 0.0 && spec.jitter_ms < 400.0 / spec.fps) {
        return bad(format!(
            "jitter {} ms: keep it below 40% of the frame interval ({:.1} ms)",
            spec.jitter_ms,
            400.0 / spec.fps
        ));
    }
    let c = &spec.camera;
    if !(c.height_m > 0.5 && c.tilt_deg > 0.0 && c.tilt_deg < 89.0 && c.focal_px > 10.0) {
        return bad(format!(
            "camera {c:?}: height must exceed 0.5 m, tilt lie in 0..89 deg, focal exceed 10 px"
        ));
    }
    if c.y_m.abs() <= road_clearance_m(spec.lanes) {
        return bad(format!(
            "camera at y = {} m stands on the road: place it beside the road (|y| > {} m)",
            c.y_m,
            road_clearance_m(spec.lanes)
        ));
    }
    let mut ids: Vec<u32> = spec.vehicles.iter().map(|v| v.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return bad("vehicle ids must be unique".into());
    }
    Ok(())
}

/// Distance from the road centre a camera must keep (m).
fn road_clearance_m(lanes: u32) -> f64 {
    scene::road_half_width_m(lanes) + 1.0
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Box area of `b` covered by the boxes in `nearer` (sum of overlaps, capped at 1).
pub(crate) fn occluded_fraction(b: [f64; 4], nearer: &[[f64; 4]]) -> f64 {
    let area = (b[2] - b[0]) * (b[3] - b[1]);
    // fold from +0.0: an empty f64 `sum()` is -0.0.
    let covered = nearer.iter().fold(0.0, |acc, o| {
        let w = (b[2].min(o[2]) - b[0].max(o[0])).max(0.0);
        let h = (b[3].min(o[3]) - b[1].max(o[1])).max(0.0);
        acc + w * h
    });
    (covered / area).min(1.0)
}

/// Renders a scene into `out_dir`: `scene.mp4`, `truth.json`, `camera.toml`.
pub fn render(spec: &SceneSpec, out_dir: &Path) -> Result<SceneTruth, SynthError> {
    validate(spec)?;
    std::fs::create_dir_all(out_dir).map_err(|source| SynthError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    let (zone, zone_px) = truth::GroundZone::for_scene(spec, &cam)?;
    let cal = truth::calibration_points(spec, &cam, &zone)?;
    let actors = spec
        .vehicles
        .iter()
        .map(|v| scene::make_actor(spec, &cam, v))
        .collect::<Result<Vec<_>, _>>()?;
    let background = scene::render_background(&cam, spec.lanes, spec.seed);

    let ticks = frame_ticks(spec);
    let hz = f64::from(mp4out::TIMESCALE_HZ);
    let times_s: Vec<f64> = ticks.iter().map(|&t| t as f64 / hz).collect();
    let nominal_ticks = (hz / spec.fps).round() as u64;
    let mut out = mp4out::Mp4Out::create(
        &out_dir.join("scene.mp4"),
        spec.width_px,
        spec.height_px,
        mp4out::EncodeSettings::for_size(spec.width_px, spec.height_px, spec.fps),
    )?;
    let mut samples: Vec<Vec<TruthSample>> = vec![Vec::new(); actors.len()];
    for (i, &t_s) in times_s.iter().enumerate() {
        let (frame, drawn) = scene::compose(&cam, &background, &actors, t_s);
        // `drawn` is far-to-near: later entries cover earlier ones.
        for (k, (a, pose)) in drawn.iter().enumerate() {
            let nearer: Vec<[f64; 4]> = drawn[k + 1..].iter().map(|(_, p)| p.bbox_px).collect();
            samples[*a].push(TruthSample {
                frame: i as u32,
                t_s,
                ground_m: pose.ground_m,
                bbox_px: pose.bbox_px,
                occluded: occluded_fraction(pose.bbox_px, &nearer),
            });
        }
        let next = ticks
            .get(i + 1)
            .copied()
            .unwrap_or(ticks[i] + nominal_ticks);
        out.push_rgb(&frame, (next - ticks[i]) as u32)?;
    }
    let frames = out.finish()?;

    let (t_first, t_last) = (times_s[0], times_s[times_s.len() - 1]);
    let vehicles = actors
        .iter()
        .zip(samples)
        .map(|(a, samples)| {
            let (entry, exit) = zone.crossing_s(a);
            let zone_speed_kmh = match (entry, exit) {
                (Some(t0), Some(t1)) if t1 > t0 => Some(zone.length_m() / (t1 - t0) * 3.6),
                _ => None,
            };
            VehicleTruth {
                id: a.spec.id,
                class: a.spec.class,
                lane: a.spec.lane,
                direction: a.spec.direction,
                speed_kmh: a.spec.speed_kmh,
                accel_mps2: a.spec.accel_mps2,
                zone_entry_s: entry,
                zone_exit_s: exit,
                crossed_zone: matches!((entry, exit), (Some(t0), Some(t1)) if t0 >= t_first && t1 <= t_last),
                zone_speed_kmh,
                samples,
            }
        })
        .collect();
    let truth = SceneTruth {
        spec: spec.clone(),
        frames,
        frame_times_s: times_s,
        zone_world_m: zone.corners_m().to_vec(),
        zone_polygon_px: zone_px,
        calibration_image_px: cal.image_px,
        calibration_world_m: cal.world_m,
        vehicles,
    };
    let json = serde_json::to_vec_pretty(&truth)
        .map_err(|e| SynthError::Encode(format!("truth.json: {e}")))?;
    write_file(&out_dir.join("truth.json"), &json)?;
    let toml = truth::camera_toml(
        spec,
        &truth.calibration_image_px,
        &truth.calibration_world_m,
        &truth.zone_polygon_px,
    );
    write_file(&out_dir.join("camera.toml"), toml.as_bytes())?;
    Ok(truth)
}

/// The demo camera: 7 m up, 20 m beside the road centre, looking across it at an angle.
pub(crate) fn demo_camera() -> CameraSpec {
    CameraSpec {
        x_m: 0.0,
        y_m: -18.0,
        height_m: 7.0,
        yaw_deg: 70.0,
        tilt_deg: 18.0,
        focal_px: 1000.0,
    }
}

fn vehicle(
    id: u32,
    sprite: &str,
    lane: u32,
    direction: Direction,
    speed_kmh: f64,
    t_start_s: f64,
) -> VehicleSpec {
    VehicleSpec {
        id,
        class: if sprite.starts_with("pickup") {
            VehicleClass::Truck
        } else {
            VehicleClass::Car
        },
        sprite: sprite.to_string(),
        size_m: None,
        lane,
        direction,
        speed_kmh,
        accel_mps2: 0.0,
        t_start_s,
    }
}

/// The demo scene: 12 s of 1280x720 at 30 fps, a 4-lane road, 8 vehicles both ways at
/// 30-90 km/h (three over 53 km/h, one accelerating), 2 ms of frame-time jitter.
pub fn demo_scene() -> SceneSpec {
    use Direction::{MinusX, PlusX};
    let mut vehicles = vec![
        vehicle(1, "car_right", 1, PlusX, 48.0, 0.0),
        vehicle(2, "car_left", 3, MinusX, 72.0, 0.4),
        vehicle(3, "pickup_right", 0, PlusX, 38.0, 2.4),
        vehicle(4, "car_right", 2, MinusX, 31.0, 3.2),
        vehicle(5, "car_left", 1, PlusX, 88.0, 5.2),
        vehicle(6, "car_right", 3, MinusX, 45.0, 6.4),
        vehicle(7, "car_left", 0, PlusX, 60.0, 7.6),
        vehicle(8, "pickup_right", 2, MinusX, 52.0, 8.0),
    ];
    vehicles[6].accel_mps2 = 1.0;
    SceneSpec {
        width_px: 1280,
        height_px: 720,
        fps: 30.0,
        duration_s: 12.0,
        camera: demo_camera(),
        lanes: 4,
        zone_length_m: 16.0,
        vehicles,
        seed: 2026,
        jitter_ms: 2.0,
    }
}

/// Renders [`demo_scene`] into `out_dir` (the `speedcamd synth` command).
pub fn render_demo(out_dir: &Path) -> Result<SceneTruth, SynthError> {
    render(&demo_scene(), out_dir)
}

#[cfg(test)]
mod tests;
