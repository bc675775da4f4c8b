//! A pinhole camera over a flat road, for tests: gives exact ground <-> image maps.
//!
//! World frame: X along the road away from the camera, Y across it (to the right), Z up, metres;
//! the camera stands at (0, 0, height_m).

use crate::detect::BBox;
use crate::test_rng::Rng;
use nalgebra::{Matrix3, Rotation3, Vector3};

/// Camera pose and intrinsics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Camera {
    pub focal_px: f64,
    pub cx_px: f64,
    pub cy_px: f64,
    pub height_m: f64,
    /// Downward tilt of the optical axis.
    pub pitch_deg: f64,
    /// Turn of the optical axis to the right of the road direction.
    pub yaw_deg: f64,
    pub roll_deg: f64,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            focal_px: 2000.0,
            cx_px: 960.0,
            cy_px: 540.0,
            height_m: 8.0,
            pitch_deg: 24.0,
            yaw_deg: 0.0,
            roll_deg: 0.0,
        }
    }
}

impl Camera {
    pub(crate) fn width_px(&self) -> f64 {
        2.0 * self.cx_px
    }

    pub(crate) fn height_px(&self) -> f64 {
        2.0 * self.cy_px
    }

    /// Image row of the horizon at the image centre column (exact without roll).
    pub(crate) fn horizon_y_px(&self) -> f64 {
        self.cy_px - self.focal_px * self.pitch_deg.to_radians().tan()
    }

    /// World -> camera rotation.
    fn rotation(&self) -> Matrix3<f64> {
        // Base camera axes: x right (= world Y), y down (= -world Z), z forward (= world X).
        let base = Matrix3::new(0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0);
        let yaw = Rotation3::from_axis_angle(&Vector3::z_axis(), -self.yaw_deg.to_radians());
        let pitch = Rotation3::from_axis_angle(&Vector3::x_axis(), self.pitch_deg.to_radians());
        let roll = Rotation3::from_axis_angle(&Vector3::z_axis(), self.roll_deg.to_radians());
        roll.matrix() * pitch.matrix() * base * yaw.matrix()
    }

    /// Image size, px.
    pub(crate) fn image_size(&self) -> (f64, f64) {
        (self.width_px(), self.height_px())
    }

    /// Projects a world point (Z up) into the image; None behind the camera.
    pub(crate) fn project_3d(&self, p_m: [f64; 3]) -> Option<[f64; 2]> {
        let r = self.rotation();
        let c = r * Vector3::new(p_m[0], p_m[1], p_m[2]) - self.height_m * r.column(2);
        (c[2] > 0.0).then(|| {
            [
                self.focal_px * c[0] / c[2] + self.cx_px,
                self.focal_px * c[1] / c[2] + self.cy_px,
            ]
        })
    }

    /// Ground (X, Y, 1) -> homogeneous image point; the third component is the depth in metres.
    pub(crate) fn ground_to_image(&self) -> Matrix3<f64> {
        let r = self.rotation();
        let k = Matrix3::new(
            self.focal_px,
            0.0,
            self.cx_px,
            0.0,
            self.focal_px,
            self.cy_px,
            0.0,
            0.0,
            1.0,
        );
        let mut g = Matrix3::zeros();
        g.set_column(0, &r.column(0));
        g.set_column(1, &r.column(1));
        g.set_column(2, &(-self.height_m * r.column(2)));
        k * g
    }

    /// Projects a ground point into the image; None behind the camera.
    pub(crate) fn project(&self, w_m: [f64; 2]) -> Option<[f64; 2]> {
        let v = self.ground_to_image() * Vector3::new(w_m[0], w_m[1], 1.0);
        (v[2] > 1e-9).then(|| [v[0] / v[2], v[1] / v[2]])
    }

    /// Distance in front of the camera (along its axis) of a ground point, m.
    pub(crate) fn depth_m(&self, w_m: [f64; 2]) -> f64 {
        (self.ground_to_image() * Vector3::new(w_m[0], w_m[1], 1.0))[2]
    }

    /// The ground point seen at an image point; None above the horizon.
    pub(crate) fn unproject(&self, p_px: [f64; 2]) -> Option<[f64; 2]> {
        let inv = self.ground_to_image().try_inverse()?;
        let v = inv * Vector3::new(p_px[0], p_px[1], 1.0);
        (v[2] > 1e-12).then(|| [v[0] / v[2], v[1] / v[2]])
    }

    /// Four ground points seen in the lower part of the image (a survey this camera can see).
    pub(crate) fn visible_ground_quad(&self) -> Vec<[f64; 2]> {
        let (w, h) = (self.width_px(), self.height_px());
        [[0.2, 0.75], [0.8, 0.75], [0.8, 0.95], [0.2, 0.95]]
            .iter()
            .map(|&[fx, fy]| {
                self.unproject([fx * w, fy * h])
                    .expect("lower image rows see the ground")
            })
            .collect()
    }
}

#[test]
fn camera_sees_the_road_ahead() {
    let cam = Camera::default();
    let near = cam.project([10.0, 0.0]).unwrap();
    let far = cam.project([40.0, 0.0]).unwrap();
    assert!((near[0] - cam.cx_px).abs() < 1e-9 && (far[0] - cam.cx_px).abs() < 1e-9);
    assert!(near[1] > far[1] && far[1] > cam.horizon_y_px());
    assert!(near[1] < cam.height_px());
    let back = cam.unproject(far).unwrap();
    assert!((back[0] - 40.0).abs() < 1e-9 && back[1].abs() < 1e-9);
    assert!(cam.project([-5.0, 0.0]).is_none());
}

/// The detector's box for a car (1.8 m wide, 1.5 m tall) touching the road at `ground_m`, each
/// edge perturbed by Gaussian noise of `noise_px`.
pub(crate) fn car_box(cam: &Camera, ground_m: [f64; 2], noise_px: f64, rng: &mut Rng) -> BBox {
    let p = cam.project(ground_m).unwrap();
    let depth_m = cam.depth_m(ground_m);
    let w = cam.focal_px * 1.8 / depth_m;
    let h = cam.focal_px * 1.5 / depth_m;
    let mut e = || noise_px * rng.gauss();
    BBox {
        x1: (p[0] - w / 2.0 + e()) as f32,
        y1: (p[1] - h + e()) as f32,
        x2: (p[0] + w / 2.0 + e()) as f32,
        y2: (p[1] + e()) as f32,
    }
}
