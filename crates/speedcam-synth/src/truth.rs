//! Ground truth derived from the scene geometry: the measurement zone, calibration points, zone
//! crossing times, and the `camera.toml` fragment the config loader reads.

use super::camera::Camera;
use super::scene::MARKING_WIDTH_M;
use super::scene::{divider_ys_m, road_half_width_m, Actor, DASH_LENGTH_M, DASH_PERIOD_M};
use super::{SceneSpec, SynthError};

/// Inner edge of the solid edge lines, |y| (m), from the road centre.
fn edge_line_inner_m(lanes: u32) -> f64 {
    road_half_width_m(lanes) - 0.3 - MARKING_WIDTH_M / 2.0
}

/// Ground x of the zone centre (m): where the optical axis crosses the road centre line, or the
/// ground point under the image centre when the camera looks along the road.
pub fn zone_centre_x_m(cam: &Camera) -> f64 {
    let yaw = cam.spec.yaw_deg.to_radians();
    if yaw.sin().abs() > 0.2 {
        let s = -cam.spec.y_m / yaw.sin();
        cam.spec.x_m + s * yaw.cos()
    } else {
        cam.unproject_ground([
            f64::from(cam.width_px) / 2.0,
            f64::from(cam.height_px) / 2.0,
        ])
        .map_or(cam.spec.x_m, |g| g[0])
    }
}

/// The measurement zone on the ground: x range (m) along the road, across the whole paved width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundZone {
    /// Upstream edge for +x travel (m).
    pub x0_m: f64,
    /// Downstream edge for +x travel (m).
    pub x1_m: f64,
    /// Half the width across the road (m).
    pub half_width_m: f64,
}

impl GroundZone {
    /// The zone for a scene, checked to be fully visible.
    pub fn for_scene(spec: &SceneSpec, cam: &Camera) -> Result<(Self, Vec<[f64; 2]>), SynthError> {
        let xc = zone_centre_x_m(cam);
        let zone = Self {
            x0_m: xc - spec.zone_length_m / 2.0,
            x1_m: xc + spec.zone_length_m / 2.0,
            half_width_m: road_half_width_m(spec.lanes),
        };
        let mut poly = Vec::with_capacity(4);
        for g in zone.corners_m() {
            match cam.project_ground(g) {
                Some(p) if cam.in_image(p) => poly.push(p),
                _ => {
                    return Err(SynthError::Spec(format!(
                        "zone corner ({:.1}, {:.1}) m is outside the image: shorten \
                         zone_length_m ({}) or move the camera back",
                        g[0], g[1], spec.zone_length_m
                    )))
                }
            }
        }
        Ok((zone, poly))
    }

    /// Corners on the ground (m), in order around the rectangle.
    pub fn corners_m(&self) -> [[f64; 2]; 4] {
        let h = self.half_width_m;
        [
            [self.x0_m, -h],
            [self.x1_m, -h],
            [self.x1_m, h],
            [self.x0_m, h],
        ]
    }

    /// Zone length along the road (m).
    pub fn length_m(&self) -> f64 {
        self.x1_m - self.x0_m
    }

    /// Times (s) an actor's reference point enters and leaves the zone, if it does.
    pub fn crossing_s(&self, actor: &Actor) -> (Option<f64>, Option<f64>) {
        let (first, second) = if actor.spec.direction.sign() > 0.0 {
            (self.x0_m, self.x1_m)
        } else {
            (self.x1_m, self.x0_m)
        };
        (actor.time_at_x_s(first), actor.time_at_x_s(second))
    }
}

/// Matching calibration points: pixels and ground coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationPoints {
    /// Image points (px).
    pub image_px: Vec<[f64; 2]>,
    /// The same points on the ground (m).
    pub world_m: Vec<[f64; 2]>,
}

/// Calibration points: corners of lane-divider dashes near the zone plus the points of the edge
/// lines' inner edges level with the dash ends, exactly projected, all inside the image with a margin.
pub fn calibration_points(
    spec: &SceneSpec,
    cam: &Camera,
    zone: &GroundZone,
) -> Result<CalibrationPoints, SynthError> {
    let margin_px = f64::from(cam.width_px) / 100.0;
    let inside = |p: [f64; 2]| {
        p[0] >= margin_px
            && p[1] >= margin_px
            && p[0] <= f64::from(cam.width_px) - margin_px
            && p[1] <= f64::from(cam.height_px) - margin_px
    };
    let mut world = Vec::new();
    let k0 = ((zone.x0_m - DASH_PERIOD_M) / DASH_PERIOD_M).floor() as i64;
    let k1 = ((zone.x1_m + DASH_PERIOD_M) / DASH_PERIOD_M).ceil() as i64;
    let edge = edge_line_inner_m(spec.lanes);
    let hw = MARKING_WIDTH_M / 2.0;
    for k in k0..=k1 {
        let xs = [
            k as f64 * DASH_PERIOD_M,
            k as f64 * DASH_PERIOD_M + DASH_LENGTH_M,
        ];
        let mut cand = Vec::new();
        for x in xs {
            for &yd in &divider_ys_m(spec.lanes) {
                cand.push([x, yd - hw]);
                cand.push([x, yd + hw]);
            }
            cand.push([x, -edge]);
            cand.push([x, edge]);
        }
        let all_in = cand
            .iter()
            .all(|&g| cam.project_ground(g).is_some_and(inside));
        if all_in {
            world.extend(cand);
        }
    }
    if world.len() < 6 {
        return Err(SynthError::Spec(format!(
            "only {} calibration points are visible: use at least 2 lanes and a camera that \
             sees a full dash period ({DASH_PERIOD_M} m) of road",
            world.len()
        )));
    }
    let image_px = world
        .iter()
        .map(|&g| cam.project_ground(g).unwrap_or([f64::NAN; 2]))
        .collect();
    Ok(CalibrationPoints {
        image_px,
        world_m: world,
    })
}

fn points_toml(points: &[[f64; 2]]) -> String {
    let items: Vec<String> = points
        .iter()
        .map(|p| format!("[{:.6}, {:.6}]", p[0], p[1]))
        .collect();
    format!("[{}]", items.join(", "))
}

/// The `[[cameras]]` table for a rendered scene: source, limit, image size, calibration, zone.
pub fn camera_toml(
    spec: &SceneSpec,
    image_px: &[[f64; 2]],
    world_m: &[[f64; 2]],
    zone_px: &[[f64; 2]],
) -> String {
    format!(
        "# Written by speedcam's scene generator (crates/speedcam-synth). Ground truth: truth.json.\n\
         # Calibration points are lane-marking corners projected exactly through the scene camera:\n\
         # {cam:?}\n\
         [[cameras]]\n\
         id = \"synth\"\n\
         source = \"scene.mp4\"\n\
         speed_limit_kmh = 50.0\n\
         tolerance_kmh = 3.0\n\
         image_width = {w}\n\
         image_height = {h}\n\
         # The scene's vehicles are flat sprites: the box bottom is where they stand.\n\
         ground_contact = \"box_bottom\"\n\
         \n\
         [cameras.calibration]\n\
         image_points = {ip}\n\
         world_points = {wp}\n\
         \n\
         [cameras.zone]\n\
         polygon = {zp}\n",
        cam = spec.camera,
        w = spec.width_px,
        h = spec.height_px,
        ip = points_toml(image_px),
        wp = points_toml(world_m),
        zp = points_toml(zone_px),
    )
}
