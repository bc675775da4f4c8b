//! The two error sources of a speed interval and the statistics to combine them.
//!
//! - Fit error: the scatter of a vehicle's ground samples about its fitted motion (box jitter),
//!   estimated from the residuals, so it is itself uncertain when there are few samples: the
//!   interval uses the Student-t quantile for the fit's residual degrees of freedom
//!   ([`student_t_quantile`]).
//! - Calibration error ([`CalibrationUncertainty`]): the surveyed image points carry pixel error, so
//!   the fitted homography is a little off and every distance measured through it is off by a
//!   factor that is the same for all vehicles on that stretch. It is modelled to first order: the
//!   homography's 8 free parameters are the weighted least-squares estimate from the calibration
//!   pairs (noise on the image points, propagated to the ground through the map's Jacobian at each
//!   point), so their covariance is `sigma_px^2 (sum A_i^T C_i^-1 A_i)^-1`, with `A_i` the
//!   derivative of the ground point of image point `i` with respect to the parameters, `C_i` the
//!   ground covariance of one pixel of image noise there, and `sigma_px^2` estimated from the
//!   calibration residuals (chi-square over `2n - 8` degrees of freedom). The speed's calibration
//!   error is that of the along-track ground distance between where the vehicle entered and left
//!   the zone, pushed through the same derivatives. This uses the points themselves, not only the
//!   residual RMS, because the error of a distance depends on where it lies relative to the
//!   surveyed points: a zone inside a well-spread survey is much better known than one beyond it.

use super::Homography;
use nalgebra::{SMatrix, SVector};

/// Regularised incomplete beta function `I_x(a, b)` (continued fraction, Numerical Recipes
/// `betacf`); accurate to about 1e-12 for the arguments used here.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(x, a, b) / a
    } else {
        1.0 - front * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Student-t cumulative distribution function at `t` for `dof` degrees of freedom (> 0).
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    let x = dof / (dof + t * t);
    let tail = 0.5 * incomplete_beta(x, dof / 2.0, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Quantile of the Student-t distribution: the `t` with `P(T <= t) = p` for `dof` degrees of
/// freedom (e.g. `student_t_quantile(0.975, 4.0)` = 2.776). Found by bisection on
/// [`student_t_cdf`] to 1e-10 relative. NaN when `p` is not in (0, 1) or `dof` is not positive.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && dof > 0.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, dof);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while student_t_cdf(hi, dof) < p && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, dof) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-10 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Image -> ground map of `h` at `p` and its derivatives: ground point, d(ground)/d(9 matrix
/// entries, row-major) and d(ground)/d(pixel).
#[allow(clippy::type_complexity)]
fn map_with_jacobians(
    h: &[[f64; 3]; 3],
    p: [f64; 2],
) -> Option<([f64; 2], [[f64; 9]; 2], [[f64; 2]; 2])> {
    let ph = [p[0], p[1], 1.0];
    let q: [f64; 3] = std::array::from_fn(|r| (0..3).map(|c| h[r][c] * ph[c]).sum());
    if q[2].abs() < 1e-12 {
        return None;
    }
    let g = [q[0] / q[2], q[1] / q[2]];
    let mut dh = [[0.0; 9]; 2];
    for j in 0..3 {
        dh[0][j] = ph[j] / q[2];
        dh[0][6 + j] = -g[0] * ph[j] / q[2];
        dh[1][3 + j] = ph[j] / q[2];
        dh[1][6 + j] = -g[1] * ph[j] / q[2];
    }
    let mut dp = [[0.0; 2]; 2];
    for k in 0..2 {
        for c in 0..2 {
            dp[k][c] = (h[k][c] - g[k] * h[2][c]) / q[2];
        }
    }
    Some((g, dh, dp))
}

/// First-order uncertainty of a fitted calibration (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationUncertainty {
    h: [[f64; 3]; 3],
    /// The matrix entry held fixed (the largest), which fixes the projective scale.
    fixed: usize,
    /// Covariance of the 8 free entries, per px² of image noise.
    cov_per_px2: SMatrix<f64, 8, 8>,
    /// Estimated standard deviation of one calibration image coordinate, px.
    pub sigma_px: f64,
    /// Degrees of freedom of that estimate (`2n - 8`).
    pub dof: usize,
}

impl CalibrationUncertainty {
    /// From the fitted homography and the calibration pairs it was fitted to. None with fewer than
    /// 5 pairs (no residual freedom), mismatched lists, or a degenerate geometry.
    pub fn from_points(
        h: &Homography,
        image_px: &[[f64; 2]],
        world_m: &[[f64; 2]],
    ) -> Option<CalibrationUncertainty> {
        let n = image_px.len();
        if n < 5 || world_m.len() != n {
            return None;
        }
        let m = h.matrix();
        let flat: Vec<f64> = m.iter().flatten().copied().collect();
        let fixed = (0..9).max_by(|&a, &b| flat[a].abs().total_cmp(&flat[b].abs()))?;
        let free: Vec<usize> = (0..9).filter(|&k| k != fixed).collect();
        let mut info = SMatrix::<f64, 8, 8>::zeros();
        let mut chi2 = 0.0;
        for (p, w) in image_px.iter().zip(world_m) {
            let (g, dh, dp) = map_with_jacobians(&m, *p)?;
            // Ground covariance of unit image noise: C = J J^T.
            let c = nalgebra::Matrix2::new(
                dp[0][0] * dp[0][0] + dp[0][1] * dp[0][1],
                dp[0][0] * dp[1][0] + dp[0][1] * dp[1][1],
                dp[1][0] * dp[0][0] + dp[1][1] * dp[0][1],
                dp[1][0] * dp[1][0] + dp[1][1] * dp[1][1],
            );
            let ci = c.try_inverse()?;
            let a = SMatrix::<f64, 2, 8>::from_fn(|r, k| dh[r][free[k]]);
            info += a.transpose() * ci * a;
            let r = nalgebra::Vector2::new(g[0] - w[0], g[1] - w[1]);
            chi2 += (r.transpose() * ci * r)[(0, 0)];
        }
        // Scale the information for a well-conditioned inverse.
        let scale = info.diagonal().iter().cloned().fold(0.0, f64::max);
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        let d = SVector::<f64, 8>::from_fn(|k, _| info[(k, k)].sqrt().max(1e-300));
        let norm = SMatrix::<f64, 8, 8>::from_fn(|r, c| info[(r, c)] / (d[r] * d[c]));
        let inv = norm.try_inverse()?;
        let cov_per_px2 = SMatrix::<f64, 8, 8>::from_fn(|r, c| inv[(r, c)] / (d[r] * d[c]));
        let dof = 2 * n - 8;
        let sigma_px = (chi2 / dof as f64).sqrt();
        sigma_px.is_finite().then_some(CalibrationUncertainty {
            h: m,
            fixed,
            cov_per_px2,
            sigma_px,
            dof,
        })
    }

    /// Standard deviation (m) of the ground distance along unit direction `dir` between the ground
    /// points of image points `a_px` and `b_px`, due to the calibration's error. None at the
    /// horizon.
    pub fn distance_sd_m(&self, a_px: [f64; 2], b_px: [f64; 2], dir: [f64; 2]) -> Option<f64> {
        let (_, da, _) = map_with_jacobians(&self.h, a_px)?;
        let (_, db, _) = map_with_jacobians(&self.h, b_px)?;
        let free: Vec<usize> = (0..9).filter(|&k| k != self.fixed).collect();
        let g = SVector::<f64, 8>::from_fn(|k, _| {
            let j = free[k];
            dir[0] * (db[0][j] - da[0][j]) + dir[1] * (db[1][j] - da[1][j])
        });
        let var = (g.transpose() * self.cov_per_px2 * g)[(0, 0)] * self.sigma_px * self.sigma_px;
        (var.is_finite() && var >= 0.0).then(|| var.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95% values from standard tables.
        for (dof, want) in [
            (1.0, 12.706_205),
            (2.0, 4.302_653),
            (3.0, 3.182_446),
            (5.0, 2.570_582),
            (10.0, 2.228_139),
            (30.0, 2.042_272),
            (1000.0, 1.962_339),
        ] {
            let got = student_t_quantile(0.975, dof);
            assert!((got - want).abs() < 1e-5, "dof {dof}: {got} vs {want}");
        }
        assert!((student_t_quantile(0.95, 4.0) - 2.131_847).abs() < 1e-5);
        assert!(student_t_quantile(1.0, 3.0).is_nan());
        assert!(student_t_quantile(0.5, 0.0).is_nan());
    }

    proptest! {
        /// The quantile inverts the CDF, is odd, and shrinks towards the normal as dof grows.
        #[test]
        fn quantile_inverts_cdf(p in 0.01f64..0.99, dof in 1.0f64..200.0) {
            let t = student_t_quantile(p, dof);
            prop_assert!((student_t_cdf(t, dof) - p).abs() < 1e-8);
            prop_assert!((student_t_quantile(1.0 - p, dof) + t).abs() < 1e-6 * t.abs().max(1.0));
            if p > 0.5 {
                prop_assert!(student_t_quantile(p, dof + 1.0) <= t + 1e-9);
            }
        }
    }

    /// A homography from a pinhole camera looking down a road, and survey points on it.
    fn survey(noise_px: f64, seed: u64) -> (Homography, Vec<[f64; 2]>, Vec<[f64; 2]>) {
        let cam = crate::truth::camera::Camera::new(
            crate::truth::camera::CameraSpec {
                x_m: 0.0,
                y_m: -8.0,
                height_m: 7.0,
                yaw_deg: 60.0,
                tilt_deg: 20.0,
                focal_px: 1000.0,
            },
            1280,
            720,
        );
        let mut rng = crate::test_rng::Rng(seed | 1);
        let mut img = Vec::new();
        let mut world = Vec::new();
        for x in [0.0, 3.0, 9.0, 12.0] {
            for y in [-3.5, 0.0, 3.5] {
                let p = cam.project_ground([x, y]).expect("in front");
                img.push([p[0] + noise_px * rng.gauss(), p[1] + noise_px * rng.gauss()]);
                world.push([x, y]);
            }
        }
        let (h, _) = Homography::fit(&img, &world).expect("fits");
        (h, img, world)
    }

    #[test]
    fn exact_survey_has_no_calibration_error() {
        let (h, img, world) = survey(0.0, 1);
        let u = CalibrationUncertainty::from_points(&h, &img, &world).expect("enough points");
        assert!(u.sigma_px < 1e-6, "{}", u.sigma_px);
        let sd = u
            .distance_sd_m(img[0], img[9], [1.0, 0.0])
            .expect("in view");
        assert!(sd < 1e-6, "{sd}");
    }

    #[test]
    fn predicted_distance_error_matches_monte_carlo() {
        // The spread of a 12 m distance over many noisy surveys agrees with the first-order
        // prediction (within the sampling error of 300 trials, and a model margin).
        let (h0, img0, world) = survey(0.0, 1);
        let (a, b) = (img0[1], img0[10]);
        let truth = h0.image_to_world(b).unwrap()[0] - h0.image_to_world(a).unwrap()[0];
        let (mut sq, mut predicted) = (0.0, 0.0);
        let trials = 300;
        for seed in 0..trials {
            let (h, img, world) = survey(0.5, 7 + 2 * seed);
            let d = h.image_to_world(b).unwrap()[0] - h.image_to_world(a).unwrap()[0];
            sq += (d - truth).powi(2);
            let u = CalibrationUncertainty::from_points(&h, &img, &world).unwrap();
            predicted += u.distance_sd_m(a, b, [1.0, 0.0]).unwrap().powi(2);
        }
        let (actual_sd, predicted_sd) = (
            (sq / trials as f64).sqrt(),
            (predicted / trials as f64).sqrt(),
        );
        assert!(actual_sd > 1e-4, "noise has an effect: {actual_sd}");
        let ratio = predicted_sd / actual_sd;
        assert!(
            (0.75..1.33).contains(&ratio),
            "predicted {predicted_sd} vs actual {actual_sd}"
        );
        let _ = world;
    }
}
