//! Least-squares velocity from ground positions against capture time.
//!
//! Speed is the slope of position over *time*, fitted on every sample in the zone: using the
//! timestamps (not a frame count times a nominal fps) keeps it correct when frames are skipped or
//! arrive with jitter, and using all samples (not the first and last) averages out the box noise
//! instead of resting the verdict on two noisy boxes.

/// A straight-line fit `p(t) = p_mean + v (t - t_mean)` of ground positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Velocity along ground x, m/s.
    pub vx_m_s: f64,
    /// Velocity along ground y, m/s.
    pub vy_m_s: f64,
    /// Norm of the velocity, m/s.
    pub speed_m_s: f64,
    /// RMS distance of the samples from the fitted line, m.
    pub residual_rms_m: f64,
    /// Mean sample time, s (the fit's pivot).
    pub t_mean_s: f64,
    /// Fitted position at `t_mean_s`, m.
    pub p_mean_m: [f64; 2],
    /// Samples used.
    pub samples: usize,
    /// Standard error of `speed_m_s` from the fit residuals (the scatter of the samples about
    /// the line, scaled by the weights), m/s. Infinite with two samples (no residual freedom).
    pub speed_se_m_s: f64,
}

impl Fit {
    /// Speed in km/h.
    pub fn speed_kmh(&self) -> f64 {
        self.speed_m_s * 3.6
    }
}

/// Fits x(t) and y(t) separately by least squares; speed = |(vx, vy)|. None with fewer than two
/// samples, when all sample times are equal, or when a value is not finite.
pub fn fit_velocity(samples: &[(f64, [f64; 2])]) -> Option<Fit> {
    fit_velocity_weighted(samples, &vec![1.0; samples.len()])
}

/// Weighted least squares: sample `i` counts with `weights_per_m2[i]` (the inverse variance of its
/// ground position, 1/m²). A pixel of box noise is centimetres on the ground near the camera but
/// decimetres far away, so weighting by the inverse variance keeps the far, noisy end of the zone
/// from dominating the slope. `residual_rms_m` stays the plain (unweighted) RMS in metres.
/// None also when the lengths differ or a weight is negative or not finite.
pub fn fit_velocity_weighted(samples: &[(f64, [f64; 2])], weights_per_m2: &[f64]) -> Option<Fit> {
    if samples.len() < 2
        || weights_per_m2.len() != samples.len()
        || weights_per_m2.iter().any(|w| !w.is_finite() || *w < 0.0)
    {
        return None;
    }
    let w_sum: f64 = weights_per_m2.iter().sum();
    if w_sum.is_nan() || w_sum <= 0.0 {
        return None;
    }
    let (mut t_mean_s, mut x_mean, mut y_mean) = (0.0, 0.0, 0.0);
    for ((t, p), w) in samples.iter().zip(weights_per_m2) {
        t_mean_s += w * t / w_sum;
        x_mean += w * p[0] / w_sum;
        y_mean += w * p[1] / w_sum;
    }
    let (mut stt, mut stx, mut sty) = (0.0, 0.0, 0.0);
    for ((t, p), w) in samples.iter().zip(weights_per_m2) {
        let dt = t - t_mean_s;
        stt += w * dt * dt;
        stx += w * dt * (p[0] - x_mean);
        sty += w * dt * (p[1] - y_mean);
    }
    if stt.is_nan() || stt <= 0.0 {
        return None;
    }
    let (vx, vy) = (stx / stt, sty / stt);
    let (mut ssr, mut wssr_x, mut wssr_y) = (0.0, 0.0, 0.0);
    for ((t, p), w) in samples.iter().zip(weights_per_m2) {
        let dt = t - t_mean_s;
        let (rx, ry) = (p[0] - x_mean - vx * dt, p[1] - y_mean - vy * dt);
        ssr += rx * rx + ry * ry;
        wssr_x += w * rx * rx;
        wssr_y += w * ry * ry;
    }
    let speed_m_s = vx.hypot(vy);
    // Var(v_axis) = s²_axis / Stt with s² estimated from the weighted residuals (weights are
    // relative); the speed's variance is that of the velocity projected on its own direction.
    let dof = samples.len() as f64 - 2.0;
    let speed_se_m_s = if dof <= 0.0 {
        f64::INFINITY
    } else if speed_m_s > 0.0 {
        let (ux, uy) = (vx / speed_m_s, vy / speed_m_s);
        ((ux * ux * wssr_x + uy * uy * wssr_y) / dof / stt).sqrt()
    } else {
        ((wssr_x + wssr_y) / 2.0 / dof / stt).sqrt()
    };
    let fit = Fit {
        vx_m_s: vx,
        vy_m_s: vy,
        speed_m_s,
        residual_rms_m: (ssr / samples.len() as f64).sqrt(),
        t_mean_s,
        p_mean_m: [x_mean, y_mean],
        samples: samples.len(),
        speed_se_m_s,
    };
    let finite = [fit.speed_m_s, fit.residual_rms_m, t_mean_s, x_mean, y_mean]
        .iter()
        .all(|v| v.is_finite());
    finite.then_some(fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn degenerate_inputs() {
        assert_eq!(fit_velocity(&[]), None);
        assert_eq!(fit_velocity(&[(1.0, [0.0, 0.0])]), None);
        assert_eq!(fit_velocity(&[(1.0, [0.0, 0.0]), (1.0, [1.0, 0.0])]), None);
        assert_eq!(
            fit_velocity(&[(0.0, [0.0, 0.0]), (1.0, [f64::NAN, 0.0])]),
            None
        );
        let two = [(0.0, [0.0, 0.0]), (1.0, [1.0, 0.0])];
        assert_eq!(fit_velocity_weighted(&two, &[1.0]), None);
        assert_eq!(fit_velocity_weighted(&two, &[1.0, -1.0]), None);
        assert_eq!(fit_velocity_weighted(&two, &[0.0, 0.0]), None);
    }

    #[test]
    fn weights_pull_towards_trusted_samples() {
        // Three exact samples on x = 2 t and one far-off sample: a tiny weight on the outlier
        // recovers the slope, equal weights do not.
        let samples = [
            (0.0, [0.0, 0.0]),
            (1.0, [2.0, 0.0]),
            (2.0, [4.0, 0.0]),
            (3.0, [9.0, 0.0]),
        ];
        let weighted = fit_velocity_weighted(&samples, &[1.0, 1.0, 1.0, 1e-9]).unwrap();
        assert!((weighted.vx_m_s - 2.0).abs() < 1e-6, "{weighted:?}");
        let plain = fit_velocity(&samples).unwrap();
        assert!((plain.vx_m_s - 2.0).abs() > 0.5, "{plain:?}");
    }

    proptest! {
        /// Exact straight-line motion at irregular times is recovered exactly.
        #[test]
        fn exact_line(
            vx in -50.0f64..50.0, vy in -50.0f64..50.0,
            x0 in -100.0f64..100.0, y0 in -100.0f64..100.0,
            t0 in 0.0f64..1e5,
            gaps in proptest::collection::vec(0.01f64..0.2, 2..40),
        ) {
            let mut t = t0;
            let samples: Vec<(f64, [f64; 2])> = gaps.iter().map(|g| {
                t += g;
                (t, [x0 + vx * (t - t0), y0 + vy * (t - t0)])
            }).collect();
            let fit = fit_velocity(&samples).unwrap();
            prop_assert!((fit.vx_m_s - vx).abs() < 1e-6 && (fit.vy_m_s - vy).abs() < 1e-6);
            prop_assert!((fit.speed_m_s - vx.hypot(vy)).abs() < 1e-6);
            prop_assert!(fit.residual_rms_m < 1e-6);
            prop_assert_eq!(fit.samples, samples.len());
        }
    }
}
