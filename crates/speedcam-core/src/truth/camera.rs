//! Pinhole camera above a flat ground plane: exact forward projection and ground back-projection.
//!
//! World frame: x/y on the ground in metres, z up (the ground is z = 0). Camera frame: x right,
//! y down, z forward (optical axis), so image coordinates are `u = cx + f * x / z`,
//! `v = cy + f * y / z` with the principal point at the image centre and square pixels.

use serde::{Deserialize, Serialize};

/// Where the camera stands and how it looks, in world units (metres, degrees) and pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CameraSpec {
    /// Camera position on the ground plane, x (m).
    pub x_m: f64,
    /// Camera position on the ground plane, y (m).
    pub y_m: f64,
    /// Height of the optical centre above the ground (m).
    pub height_m: f64,
    /// Viewing direction on the ground, counter-clockwise from +x (degrees).
    pub yaw_deg: f64,
    /// How far the optical axis points below the horizontal (degrees, 0..90).
    pub tilt_deg: f64,
    /// Focal length in pixels (same for both axes).
    pub focal_px: f64,
}

/// A [`CameraSpec`] prepared for projection at a given image size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// The spec this camera was built from.
    pub spec: CameraSpec,
    /// Image width (px).
    pub width_px: u32,
    /// Image height (px).
    pub height_px: u32,
    centre: [f64; 3],
    right: [f64; 3],
    down: [f64; 3],
    forward: [f64; 3],
    cx_px: f64,
    cy_px: f64,
}

/// Points closer than this in front of the camera (m) are not projected.
const MIN_DEPTH_M: f64 = 1e-6;

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

impl Camera {
    /// Builds the camera basis for an image of `width_px x height_px` pixels.
    pub fn new(spec: CameraSpec, width_px: u32, height_px: u32) -> Self {
        let (yaw, tilt) = (spec.yaw_deg.to_radians(), spec.tilt_deg.to_radians());
        let forward = [tilt.cos() * yaw.cos(), tilt.cos() * yaw.sin(), -tilt.sin()];
        let right = [yaw.sin(), -yaw.cos(), 0.0];
        let down = [
            -tilt.sin() * yaw.cos(),
            -tilt.sin() * yaw.sin(),
            -tilt.cos(),
        ];
        Self {
            spec,
            width_px,
            height_px,
            centre: [spec.x_m, spec.y_m, spec.height_m],
            right,
            down,
            forward,
            cx_px: f64::from(width_px) / 2.0,
            cy_px: f64::from(height_px) / 2.0,
        }
    }

    /// World point -> camera frame `[x right, y down, z depth]` (m).
    pub fn to_camera(&self, world: [f64; 3]) -> [f64; 3] {
        let d = [
            world[0] - self.centre[0],
            world[1] - self.centre[1],
            world[2] - self.centre[2],
        ];
        [dot(self.right, d), dot(self.down, d), dot(self.forward, d)]
    }

    /// Depth of a world point along the optical axis (m); positive in front of the camera.
    pub fn depth_m(&self, world: [f64; 3]) -> f64 {
        self.to_camera(world)[2]
    }

    /// Projects a world point to pixel coordinates; `None` when it is not in front of the camera.
    /// The result may lie outside the image.
    pub fn project(&self, world: [f64; 3]) -> Option<[f64; 2]> {
        let [x, y, z] = self.to_camera(world);
        (z > MIN_DEPTH_M).then(|| {
            [
                self.cx_px + self.spec.focal_px * x / z,
                self.cy_px + self.spec.focal_px * y / z,
            ]
        })
    }

    /// Projects a ground point `[x, y]` (z = 0).
    pub fn project_ground(&self, ground: [f64; 2]) -> Option<[f64; 2]> {
        self.project([ground[0], ground[1], 0.0])
    }

    /// Viewing ray through a pixel, in world coordinates (not normalised).
    pub(crate) fn ray(&self, px: [f64; 2]) -> [f64; 3] {
        let a = (px[0] - self.cx_px) / self.spec.focal_px;
        let b = (px[1] - self.cy_px) / self.spec.focal_px;
        std::array::from_fn(|i| self.right[i] * a + self.down[i] * b + self.forward[i])
    }

    /// Back-projects a pixel onto the ground plane; `None` at or above the horizon.
    pub fn unproject_ground(&self, px: [f64; 2]) -> Option<[f64; 2]> {
        let r = self.ray(px);
        if r[2] >= -1e-12 {
            return None;
        }
        let s = -self.centre[2] / r[2];
        Some([self.centre[0] + s * r[0], self.centre[1] + s * r[1]])
    }

    /// Image row of the horizon (px): rays through it are horizontal. The camera has no roll, so
    /// the horizon is a horizontal line; `None` for a camera looking straight down.
    pub fn horizon_v_px(&self) -> Option<f64> {
        // ray_z = right_z * a + down_z * b + forward_z, and right_z = 0.
        (self.down[2].abs() > 1e-12)
            .then(|| self.cy_px - self.spec.focal_px * self.forward[2] / self.down[2])
    }

    /// Whether a pixel position lies inside the image.
    pub fn in_image(&self, px: [f64; 2]) -> bool {
        px[0] >= 0.0
            && px[1] >= 0.0
            && px[0] <= f64::from(self.width_px)
            && px[1] <= f64::from(self.height_px)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(yaw_deg: f64, tilt_deg: f64, height_m: f64, focal_px: f64) -> CameraSpec {
        CameraSpec {
            x_m: 1.5,
            y_m: -20.0,
            height_m,
            yaw_deg,
            tilt_deg,
            focal_px,
        }
    }

    #[test]
    fn optical_axis_hits_the_ground_at_the_image_centre() {
        let cam = Camera::new(spec(90.0, 30.0, 6.0, 1000.0), 1280, 720);
        let g = cam.unproject_ground([640.0, 360.0]).expect("below horizon");
        let dist_m = 6.0 / 30f64.to_radians().tan();
        assert!((g[0] - 1.5).abs() < 1e-9, "{g:?}");
        assert!((g[1] - (-20.0 + dist_m)).abs() < 1e-9, "{g:?}");
    }

    #[test]
    fn points_behind_the_camera_do_not_project() {
        let cam = Camera::new(spec(90.0, 20.0, 7.0, 1000.0), 1280, 720);
        assert!(cam.project_ground([1.5, -40.0]).is_none());
    }

    #[test]
    fn horizon_row_separates_ground_from_sky() {
        let cam = Camera::new(spec(70.0, 16.0, 7.0, 1000.0), 1280, 720);
        let hv = cam.horizon_v_px().expect("tilted camera has a horizon");
        let expected = 360.0 - 1000.0 * 16f64.to_radians().tan();
        assert!((hv - expected).abs() < 1e-9);
        assert!(cam.unproject_ground([100.0, hv - 1.0]).is_none());
        assert!(cam.unproject_ground([100.0, hv + 1.0]).is_some());
    }

    proptest! {
        #[test]
        fn ground_round_trip(
            yaw in -180.0f64..180.0, tilt in 5.0f64..60.0, h in 2.0f64..15.0, f in 300.0f64..2000.0,
            u in 0.0f64..1280.0, v in 0.0f64..720.0,
        ) {
            let cam = Camera::new(spec(yaw, tilt, h, f), 1280, 720);
            if let Some(g) = cam.unproject_ground([u, v]) {
                let p = cam.project_ground(g).expect("ground point in front of camera");
                prop_assert!((p[0] - u).abs() < 1e-6 && (p[1] - v).abs() < 1e-6, "{p:?} vs {u},{v}");
            }
        }

        #[test]
        fn world_round_trip(
            yaw in -180.0f64..180.0, tilt in 5.0f64..60.0, h in 2.0f64..15.0,
            dx in -30.0f64..30.0, dist in 5.0f64..80.0,
        ) {
            let cam = Camera::new(spec(yaw, tilt, h, 1000.0), 1280, 720);
            // A ground point in the viewing direction, offset sideways.
            let y = yaw.to_radians();
            let g = [1.5 + dist * y.cos() - dx * y.sin(), -20.0 + dist * y.sin() + dx * y.cos()];
            let p = cam.project_ground(g).expect("point ahead of the camera");
            let back = cam.unproject_ground(p).expect("projected ground point is below the horizon");
            prop_assert!((back[0] - g[0]).abs() < 1e-6 * dist && (back[1] - g[1]).abs() < 1e-6 * dist);
        }
    }
}
