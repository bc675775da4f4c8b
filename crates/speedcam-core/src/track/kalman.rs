//! Constant-velocity Kalman filter on a box (centre x, centre y, width, height + velocities).
//!
//! Time steps come from frame timestamps, not frame counts: frames may be skipped (the detector
//! runs on every n-th frame) and capture times jitter. The process noise is the continuous
//! white-noise-acceleration model integrated over `dt_s`, so two predictions of `dt_s / 2` give
//! the same covariance as one of `dt_s`, and a skipped frame widens the uncertainty exactly as much
//! as the elapsed time warrants. Noise levels scale with the box size (a near vehicle is large and
//! moves many pixels; a far one is small and moves few), as in ByteTrack/DeepSORT.
//!
//! A `dt_s <= 0` (timestamps going backwards, or a repeated frame) is treated as 0: the state is
//! left unchanged, and the filter clock never runs backwards.

use nalgebra::{SMatrix, SVector};

use crate::detect::BBox;

type Vec8 = SVector<f64, 8>;
type Mat8 = SMatrix<f64, 8, 8>;
type Vec4 = SVector<f64, 4>;
type Mat4 = SMatrix<f64, 4, 4>;
type Mat48 = SMatrix<f64, 4, 8>;

/// Acceleration noise density of the centre, as a fraction of the box size per s^1.5.
/// Matches ByteTrack's per-frame velocity noise (size / 160 per frame at 30 fps).
const CENTRE_ACCEL_PER_SIZE: f64 = 1.0;
/// Acceleration noise density of width and height, fraction of the size per s^1.5.
const SIZE_ACCEL_PER_SIZE: f64 = 0.5;
/// Measurement noise std of a detector box edge position, fraction of the box size (ByteTrack: 1/20).
const MEAS_STD_PER_SIZE: f64 = 0.05;
/// Initial velocity std of the centre for a new track, box sizes per second.
const INIT_VEL_STD_PER_SIZE: f64 = 2.0;
/// Smallest box dimension used for noise scaling, px (keeps covariances positive for tiny boxes).
const MIN_SIZE_PX: f64 = 1.0;

/// Kalman filter of one box; state `[cx, cy, w, h, vx, vy, vw, vh]` in px and px/s.
#[derive(Debug, Clone)]
pub struct BoxKalman {
    x: Vec8,
    p: Mat8,
    t_s: f64,
}

impl BoxKalman {
    /// Starts a filter at `t_s` from a measured box, velocity zero with a wide uncertainty.
    pub fn new(t_s: f64, bbox: &BBox) -> Self {
        let z = measure(bbox);
        let mut x = Vec8::zeros();
        x.fixed_rows_mut::<4>(0).copy_from(&z);
        let (sw, sh) = (z[2].max(MIN_SIZE_PX), z[3].max(MIN_SIZE_PX));
        let pos_std = [sw, sh, sw, sh].map(|s| 2.0 * MEAS_STD_PER_SIZE * s);
        let vel_std = [
            INIT_VEL_STD_PER_SIZE * sw,
            INIT_VEL_STD_PER_SIZE * sh,
            0.5 * sw,
            0.5 * sh,
        ];
        let mut p = Mat8::zeros();
        for i in 0..4 {
            p[(i, i)] = pos_std[i] * pos_std[i];
            p[(i + 4, i + 4)] = vel_std[i] * vel_std[i];
        }
        Self { x, p, t_s }
    }

    /// Time of the current estimate, seconds (the latest time predicted to; never decreases).
    pub fn t_s(&self) -> f64 {
        self.t_s
    }

    /// Predicts the state forward to `t_s`. Times at or before the current one change nothing.
    pub fn predict_to(&mut self, t_s: f64) {
        let dt_s = t_s - self.t_s;
        if !dt_s.is_finite() || dt_s <= 0.0 {
            return;
        }
        let mut f = Mat8::identity();
        for i in 0..4 {
            f[(i, i + 4)] = dt_s;
        }
        let w = self.x[2].max(MIN_SIZE_PX);
        let h = self.x[3].max(MIN_SIZE_PX);
        let accel = [
            CENTRE_ACCEL_PER_SIZE * w,
            CENTRE_ACCEL_PER_SIZE * h,
            SIZE_ACCEL_PER_SIZE * w,
            SIZE_ACCEL_PER_SIZE * h,
        ];
        let mut q = Mat8::zeros();
        for (i, a) in accel.iter().enumerate() {
            let qd = a * a;
            q[(i, i)] = qd * dt_s.powi(3) / 3.0;
            q[(i, i + 4)] = qd * dt_s.powi(2) / 2.0;
            q[(i + 4, i)] = q[(i, i + 4)];
            q[(i + 4, i + 4)] = qd * dt_s;
        }
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + q;
        self.t_s = t_s;
    }

    /// Corrects the state with a measured box (at the filter's current time).
    /// Returns false (and leaves the state alone) if the innovation covariance is singular.
    pub fn update(&mut self, bbox: &BBox) -> bool {
        let z = measure(bbox);
        let hm = observation();
        let w = self.x[2].max(MIN_SIZE_PX);
        let h = self.x[3].max(MIN_SIZE_PX);
        let std = [w, h, w, h].map(|s| MEAS_STD_PER_SIZE * s);
        let r = Mat4::from_diagonal(&Vec4::from(std.map(|s| s * s)));
        let innovation = z - hm * self.x;
        let s = hm * self.p * hm.transpose() + r;
        let Some(chol) = s.cholesky() else {
            return false;
        };
        // K = P H^T S^-1, computed as (S^-1 H P)^T since S and P are symmetric.
        let k = chol.solve(&(hm * self.p)).transpose();
        self.x += k * innovation;
        // Joseph form keeps P symmetric positive semi-definite under rounding.
        let ikh = Mat8::identity() - k * hm;
        self.p = ikh * self.p * ikh.transpose() + k * r * k.transpose();
        true
    }

    /// The filtered box (width and height kept at least 1 px).
    pub fn bbox(&self) -> BBox {
        let w = self.x[2].max(MIN_SIZE_PX);
        let h = self.x[3].max(MIN_SIZE_PX);
        BBox {
            x1: (self.x[0] - w / 2.0) as f32,
            y1: (self.x[1] - h / 2.0) as f32,
            x2: (self.x[0] + w / 2.0) as f32,
            y2: (self.x[1] + h / 2.0) as f32,
        }
    }

    /// Centre velocity estimate, px/s.
    pub fn velocity_px_s(&self) -> (f64, f64) {
        (self.x[4], self.x[5])
    }

    /// Centre estimate, px.
    #[cfg(test)]
    fn centre_px(&self) -> (f64, f64) {
        (self.x[0], self.x[1])
    }
}

/// Measurement vector `[cx, cy, w, h]` of a box.
fn measure(b: &BBox) -> Vec4 {
    let (x1, y1, x2, y2) = (b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64);
    Vec4::new((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1)
}

/// Observation matrix: the measurement is the first four state entries.
fn observation() -> Mat48 {
    let mut hm = Mat48::zeros();
    for i in 0..4 {
        hm[(i, i)] = 1.0;
    }
    hm
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn box_at(cx: f64, cy: f64, w: f64, h: f64) -> BBox {
        BBox {
            x1: (cx - w / 2.0) as f32,
            y1: (cy - h / 2.0) as f32,
            x2: (cx + w / 2.0) as f32,
            y2: (cy + h / 2.0) as f32,
        }
    }

    #[test]
    fn backwards_or_zero_dt_changes_nothing() {
        let mut kf = BoxKalman::new(1.0, &box_at(100.0, 100.0, 40.0, 30.0));
        kf.update(&box_at(100.0, 100.0, 40.0, 30.0));
        kf.predict_to(2.0);
        let before = (kf.bbox(), kf.t_s(), kf.p);
        kf.predict_to(1.5);
        kf.predict_to(2.0);
        kf.predict_to(f64::NAN);
        assert_eq!((kf.bbox(), kf.t_s(), kf.p), before);
    }

    #[test]
    fn split_prediction_equals_single_prediction() {
        let b = box_at(100.0, 200.0, 60.0, 40.0);
        let mut a = BoxKalman::new(0.0, &b);
        let mut c = a.clone();
        a.predict_to(0.1);
        c.predict_to(0.05);
        c.predict_to(0.1);
        // Noise is scaled by the (unchanged, zero-velocity) size, so the two must agree.
        assert!((a.p - c.p).abs().max() < 1e-9 * a.p.abs().max());
    }

    proptest! {
        /// A constant-velocity target observed with noise at irregular intervals (1 to 4 frame
        /// periods plus jitter) is tracked with bounded position and velocity error.
        #[test]
        fn tracks_constant_velocity_with_irregular_dt(
            vx in -400.0f64..400.0,
            vy in -200.0f64..200.0,
            steps in proptest::collection::vec((1u32..=4, -0.005f64..0.005), 40..80),
            noise in proptest::collection::vec((-1.0f64..1.0, -1.0f64..1.0), 80),
        ) {
            let (w, h) = (80.0, 60.0);
            let (x0, y0) = (500.0, 400.0);
            let mut t = 0.0;
            let mut kf = BoxKalman::new(t, &box_at(x0, y0, w, h));
            let noise_px = 2.0;
            for (i, (frames, jitter)) in steps.iter().enumerate() {
                t += *frames as f64 / 30.0 + jitter;
                kf.predict_to(t);
                let (nx, ny) = noise[i];
                let z = box_at(x0 + vx * t + noise_px * nx, y0 + vy * t + noise_px * ny, w, h);
                prop_assert!(kf.update(&z));
                if i >= 20 {
                    let (cx, cy) = kf.centre_px();
                    let err = ((cx - x0 - vx * t).powi(2) + (cy - y0 - vy * t).powi(2)).sqrt();
                    prop_assert!(err < 4.0 * noise_px, "step {i}: position error {err:.2} px");
                    let (evx, evy) = kf.velocity_px_s();
                    let verr = ((evx - vx).powi(2) + (evy - vy).powi(2)).sqrt();
                    prop_assert!(verr < 60.0, "step {i}: velocity error {verr:.1} px/s");
                }
            }
        }
    }
}
