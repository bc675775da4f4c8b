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
    let ssr: f64 = samples
        .iter()
        .map(|(t, p)| {
            let dt = t - t_mean_s;
            (p[0] - x_mean - vx * dt).powi(2) + (p[1] - y_mean - vy * dt).powi(2)
        })
        .sum();
    let fit = Fit {
        vx_m_s: vx,
        vy_m_s: vy,
        speed_m_s: vx.hypot(vy),
        residual_rms_m: (ssr / samples.len() as f64).sqrt(),
        t_mean_s,
        p_mean_m: [x_mean, y_mean],
        samples: samples.len(),
    };
    let finite = [fit.speed_m_s, fit.residual_rms_m, t_mean_s, x_mean, y_mean]
        .iter()
        .all(|v| v.is_finite());
    finite.then_some(fit)
}

/// One ground sample of a track in the zone, with the ground uncertainty of its box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundSample {
    /// Capture time, s.
    pub t_s: f64,
    /// Ground point (bottom centre of the box mapped through the homography), m.
    pub ground_m: [f64; 2],
    /// Ground covariance caused by one px² of box-edge noise, m² per px², `[[xx, xy], [xy, yy]]`
    /// (from the homography's Jacobian at the box's bottom centre).
    pub cov_m2_per_px2: [[f64; 2]; 2],
}

impl GroundSample {
    /// Offset of the sample from `origin` along the unit vector `d`, m, and the inverse of its
    /// variance along `d` per px² of box noise (`d' C d`), 1/m².
    pub(crate) fn along(&self, origin: [f64; 2], d: [f64; 2]) -> (f64, f64) {
        let c = self.cov_m2_per_px2;
        let var = d[0] * d[0] * c[0][0] + 2.0 * d[0] * d[1] * c[0][1] + d[1] * d[1] * c[1][1];
        let off = (self.ground_m[0] - origin[0]) * d[0] + (self.ground_m[1] - origin[1]) * d[1];
        (off, 1.0 / var.max(1e-300))
    }
}

/// Weighted sum of squared residuals of rows `(t_s, s_m, weight)` about the motion
/// `s(t) = b0 + b1 tau + b2 tau²/2`, `tau = t - tc`.
pub(super) fn motion_wssr(rows: &[(f64, f64, f64)], tc: f64, beta: &[f64; 3]) -> f64 {
    rows.iter()
        .map(|&(t, s, w)| {
            let tau = t - tc;
            let r = s - beta[0] - beta[1] * tau - 0.5 * beta[2] * tau * tau;
            w * r * r
        })
        .sum()
}

/// Settings of [`fit_zone_motion`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionFitOptions {
    /// Prior standard deviation of the along-track acceleration, m/s². 0 fits constant speed;
    /// infinite fits constant acceleration without a prior.
    pub accel_prior_sd_m_s2: f64,
    /// Samples whose standardised residual exceeds this many robust standard deviations are
    /// dropped and the fit repeated (a box from another vehicle, a bad association).
    pub outlier_z: f64,
}

/// Along-track motion fitted over the zone: the mean speed over the zone crossing and its
/// statistical uncertainty.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionFit {
    /// Mean speed between the fitted zone entry and exit (or over the sample span when the zone
    /// is unknown), m/s.
    pub speed_m_s: f64,
    /// Standard error of `speed_m_s` from the fit residuals, m/s (the box noise scale is
    /// estimated from them, so use a Student-t quantile with `dof`).
    pub speed_se_m_s: f64,
    /// Residual degrees of freedom of the noise estimate.
    pub dof: f64,
    /// Fitted along-track acceleration, m/s² (0 for the constant-speed model; the accelerating
    /// model's estimate also when the speed is a model average, see [`fit_zone_motion`]).
    pub accel_m_s2: f64,
    /// Unit direction of travel on the ground.
    pub direction: [f64; 2],
    /// Point on the fitted path (the weighted mean position), m; along-track positions are
    /// measured from it.
    pub origin_m: [f64; 2],
    /// Along-track positions of the zone entry and exit on the fitted path, m.
    pub s_in_out_m: [f64; 2],
    /// Fitted times of the zone entry and exit, s.
    pub t_in_out_s: [f64; 2],
    /// RMS along-track residual of the samples kept, m.
    pub residual_rms_m: f64,
    /// Estimated box-edge noise, px (the residual scale in units of the sample covariances).
    pub noise_px: f64,
    /// The same estimated from the lateral scatter about the fitted path, px. Much larger than
    /// `noise_px` or than the detector's box noise means the track mixed two vehicles.
    pub lateral_noise_px: f64,
    /// Samples kept after outlier rejection.
    pub inliers: usize,
}

/// Solves the 3x3 (or leading 2x2 when `p == 2`) symmetric system; returns the inverse.
fn invert(m: &[[f64; 3]; 3], p: usize) -> Option<[[f64; 3]; 3]> {
    let mut out = [[0.0; 3]; 3];
    if p == 2 {
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() <= 1e-300 || !det.is_finite() {
            return None;
        }
        out[0][0] = m[1][1] / det;
        out[1][1] = m[0][0] / det;
        out[0][1] = -m[0][1] / det;
        out[1][0] = -m[1][0] / det;
        return Some(out);
    }
    let inv = nalgebra::Matrix3::from_fn(|r, c| m[r][c]).try_inverse()?;
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = inv[(r, c)];
        }
    }
    Some(out)
}

/// Weighted fit of `s(t) = b0 + b1 tau + b2 tau²/2`, `tau = t - tc`, with a Gaussian prior of
/// precision `prior_prec` on `b2` (p = 3) or without `b2` (p = 2). Returns (beta, posterior
/// covariance per unit noise variance, effective number of parameters).
pub(super) fn solve_motion(
    rows: &[(f64, f64, f64)],
    tc: f64,
    p: usize,
    prior_prec: f64,
) -> Option<([f64; 3], [[f64; 3]; 3], f64)> {
    let mut a = [[0.0; 3]; 3];
    let mut b = [0.0; 3];
    for &(t, s, w) in rows {
        let tau = t - tc;
        let x = [1.0, tau, 0.5 * tau * tau];
        for r in 0..p {
            for c in 0..p {
                a[r][c] += w * x[r] * x[c];
            }
            b[r] += w * x[r] * s;
        }
    }
    let data = a;
    if p == 3 {
        a[2][2] += prior_prec;
    }
    let inv = invert(&a, p)?;
    let beta: [f64; 3] = std::array::from_fn(|r| (0..p).map(|c| inv[r][c] * b[c]).sum());
    // Effective parameters: tr((X'WX + P)^-1 X'WX).
    let mut edf = 0.0;
    for r in 0..p {
        for c in 0..p {
            edf += inv[r][c] * data[c][r];
        }
    }
    beta.iter()
        .all(|v| v.is_finite())
        .then_some((beta, inv, edf))
}

/// Where the line `origin + s dir` crosses the polygon's edges: the smallest and largest `s`.
pub(super) fn line_polygon_span(
    origin: [f64; 2],
    dir: [f64; 2],
    poly: &[[f64; 2]],
) -> Option<[f64; 2]> {
    let mut hits = Vec::new();
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let e = [b[0] - a[0], b[1] - a[1]];
        let den = dir[0] * e[1] - dir[1] * e[0];
        if den.abs() < 1e-12 {
            continue;
        }
        let d = [a[0] - origin[0], a[1] - origin[1]];
        let s = (d[0] * e[1] - d[1] * e[0]) / den;
        let u = (d[0] * dir[1] - d[1] * dir[0]) / den;
        if (-1e-9..=1.0 + 1e-9).contains(&u) {
            hits.push(s);
        }
    }
    let lo = hits.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = hits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hits.len() >= 2 && hi - lo > 1e-6).then_some([lo, hi])
}

/// Time at which `s(t) = b0 + b1 tau + b2 tau²/2` reaches `s`, the root nearest the
/// constant-speed answer.
pub(super) fn time_at(beta: &[f64; 3], tc: f64, s: f64) -> Option<f64> {
    let lin = (s - beta[0]) / beta[1];
    if !lin.is_finite() {
        return None;
    }
    let (a, b, c) = (0.5 * beta[2], beta[1], beta[0] - s);
    if a.abs() < 1e-12 * b.abs().max(1e-12) {
        return Some(tc + lin);
    }
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return Some(tc + lin);
    }
    let q = -0.5 * (b + b.signum() * disc.sqrt());
    let roots = [q / a, c / q];
    roots
        .iter()
        .copied()
        .filter(|r| r.is_finite())
        .min_by(|x, y| (x - lin).abs().total_cmp(&(y - lin).abs()))
        .map(|r| tc + r)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// An acceleration this many standard errors from zero (fitted without the prior) is taken as
/// real: the acceleration prior is dropped for that track.
const ACCEL_EVIDENT_Z: f64 = 6.0;

/// Prior probability that a vehicle keeps a constant speed through the zone (against an
/// acceleration drawn from the acceleration prior), for the model average of [`fit_zone_motion`].
const CONSTANT_SPEED_PRIOR: f64 = 0.5;

/// Posterior probability of "acceleration ~ N(0, `prior_sd`²)" against "no acceleration", from the
/// free least-squares estimate `a` with standard error `se` (both m/s²): the Bayes factor is the
/// ratio of the densities of `a` under the two, N(a; 0, prior_sd² + se²) / N(a; 0, se²), with
/// [`CONSTANT_SPEED_PRIOR`]. 1 when a value is not finite.
fn accel_model_probability(a: f64, se: f64, prior_sd: f64) -> f64 {
    let (v, t2) = (se * se, prior_sd * prior_sd);
    let log_bf = 0.5 * (v / (v + t2)).ln() + 0.5 * a * a * (1.0 / v - 1.0 / (v + t2));
    let odds = (1.0 - CONSTANT_SPEED_PRIOR) / CONSTANT_SPEED_PRIOR * log_bf.min(700.0).exp();
    let p = odds / (1.0 + odds);
    if p.is_finite() {
        p
    } else {
        1.0
    }
}

/// Fits a track's along-track motion over the zone and returns its mean speed over the zone.
///
/// 1. The direction of travel comes from a weighted straight-line fit of the 2-D ground points;
///    positions are then projected on it, so lateral box jitter does not enter the speed, and each
///    sample is weighted by the inverse of its *along-track* variance (`dir' C dir`, from the box
///    noise pushed through the homography).
/// 2. Along-track position is fitted against time with constant speed plus an acceleration that
///    has a zero-mean Gaussian prior ([`MotionFitOptions::accel_prior_sd_m_s2`]): a vehicle that
///    clearly accelerates gets its acceleration, one that does not is not charged with a noisy
///    one, and the interval still carries the uncertainty of an acceleration the data cannot rule
///    out. (Ignoring acceleration biases the slope towards the speed at the weighted mean time,
///    which with inverse-variance weights lies near the camera, not mid-zone.) That fit is then
///    averaged with the constant-speed fit, weighted by the two models' posterior probabilities
///    (prior [`CONSTANT_SPEED_PRIOR`], Bayes factor from the free acceleration estimate): most
///    vehicles keep their speed, and for them the acceleration term only adds variance, most of all
///    on short, fast passages with few samples. The interval covers both models' spread.
/// 3. Outliers beyond `outlier_z` robust (MAD) standard deviations are dropped and 1-2 refitted.
/// 4. The speed is the mean over the zone crossing: the fitted path is intersected with `zone_m`
///    (the zone polygon on the ground), the fitted motion gives the entry and exit times, and the
///    mean speed is `(s_out - s_in) / (t_out - t_in)`, the velocity at the crossing's mid-time.
///    Without a zone, the sample span is used.
///
/// None with fewer than 3 samples, no time span, or non-finite values.
pub fn fit_zone_motion(
    samples: &[GroundSample],
    zone_m: Option<&[[f64; 2]]>,
    opts: &MotionFitOptions,
) -> Option<MotionFit> {
    let n = samples.len();
    if n < 3 {
        return None;
    }
    let quadratic = opts.accel_prior_sd_m_s2 > 0.0;
    let p = if quadratic { 3 } else { 2 };
    let min_keep = (n * 3 / 5).max(p + 2).min(n);
    let mut keep = vec![true; n];
    let mut result = None;
    for _round in 0..4 {
        let kept: Vec<&GroundSample> = samples
            .iter()
            .zip(&keep)
            .filter_map(|(s, k)| k.then_some(s))
            .collect();
        let pts: Vec<(f64, [f64; 2])> = kept.iter().map(|s| (s.t_s, s.ground_m)).collect();
        let iso: Vec<f64> = kept
            .iter()
            .map(|s| 1.0 / (s.cov_m2_per_px2[0][0] + s.cov_m2_per_px2[1][1]))
            .collect();
        let line = fit_velocity_weighted(&pts, &iso)?;
        let dir = if line.speed_m_s > 0.0 {
            [line.vx_m_s / line.speed_m_s, line.vy_m_s / line.speed_m_s]
        } else {
            [1.0, 0.0]
        };
        let origin = line.p_mean_m;
        let along = |s: &GroundSample| -> (f64, f64, f64) {
            let (pos, w) = s.along(origin, dir);
            (s.t_s, pos, w)
        };
        let perp = [-dir[1], dir[0]];
        // Lateral offset from the fitted path (m) and its weight (1/m² per px²).
        let lateral = |s: &GroundSample| s.along(origin, perp);
        let rows: Vec<(f64, f64, f64)> = kept.iter().map(|s| along(s)).collect();
        let lateral_wssr: f64 = kept
            .iter()
            .map(|s| {
                let (off, w) = lateral(s);
                w * off * off
            })
            .sum();
        let w_sum: f64 = rows.iter().map(|r| r.2).sum();
        let tc = rows.iter().map(|r| r.2 * r.0).sum::<f64>() / w_sum;
        // Noise scale from the constant-speed fit, then the prior's precision in those units.
        let (b_lin, cov_lin, _) = solve_motion(&rows, tc, 2, 0.0)?;
        let wssr = |beta: &[f64; 3]| motion_wssr(&rows, tc, beta);
        let m = rows.len() as f64;
        let mut sigma2 = wssr(&b_lin) / (m - 2.0).max(1.0);
        let (mut beta, mut cov, mut edf) = (b_lin, [[0.0; 3]; 3], 2.0);
        for _ in 0..3 {
            let prior = if quadratic && opts.accel_prior_sd_m_s2.is_finite() {
                sigma2 / opts.accel_prior_sd_m_s2.powi(2)
            } else {
                0.0
            };
            (beta, cov, edf) = solve_motion(&rows, tc, p, prior)?;
            sigma2 = wssr(&beta) / (m - edf).max(1.0);
        }
        // The prior only steadies an acceleration the data cannot pin down. When the data show
        // one clearly (a vehicle braking for the camera), shrinking it would bias the speed by
        // more than its interval admits: then the free fit is used.
        // Posterior probability of the accelerating model against constant speed.
        let mut p_accel = 1.0;
        if quadratic && opts.accel_prior_sd_m_s2.is_finite() && m >= 6.0 {
            let (b_free, cov_free, edf_free) = solve_motion(&rows, tc, 3, 0.0)?;
            let sigma2_free = wssr(&b_free) / (m - edf_free).max(1.0);
            let se_a = (sigma2_free * cov_free[2][2]).sqrt();
            if b_free[2].abs() > ACCEL_EVIDENT_Z * se_a {
                (beta, cov, edf, sigma2) = (b_free, cov_free, edf_free, sigma2_free);
            } else {
                p_accel = accel_model_probability(b_free[2], se_a, opts.accel_prior_sd_m_s2);
            }
        }
        let dof = (m - edf).max(1.0);
        // Zone crossing on the fitted path.
        let span_t = kept
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |a, s| {
                (a.0.min(s.t_s), a.1.max(s.t_s))
            });
        let (s_in_out, t_in_out) = zone_m
            .and_then(|z| line_polygon_span(origin, dir, z))
            .and_then(|[lo, hi]| {
                let (t0, t1) = (time_at(&beta, tc, lo)?, time_at(&beta, tc, hi)?);
                (t1 > t0).then_some(([lo, hi], [t0, t1]))
            })
            .unwrap_or_else(|| {
                let pos = |t: f64| {
                    let tau = t - tc;
                    beta[0] + beta[1] * tau + 0.5 * beta[2] * tau * tau
                };
                ([pos(span_t.0), pos(span_t.1)], [span_t.0, span_t.1])
            });
        let lever = 0.5 * (t_in_out[0] + t_in_out[1]) - tc;
        let g = [0.0, 1.0, lever];
        let mut var = 0.0;
        for r in 0..p {
            for c in 0..p {
                var += g[r] * cov[r][c] * g[c];
            }
        }
        let v_accel = beta[1] + if quadratic { beta[2] * lever } else { 0.0 };
        let var_accel = sigma2 * var;
        // Model average with the constant-speed fit: its speed where the data give no reason to
        // believe in an acceleration, the prior fit's where they do, and the spread of the two
        // in the variance.
        let (v_mean, var_mean) = if p_accel < 1.0 {
            let sigma2_lin = wssr(&b_lin) / (m - 2.0).max(1.0);
            let (v0, var0) = (b_lin[1], sigma2_lin * cov_lin[1][1]);
            let p0 = 1.0 - p_accel;
            let v = p_accel * v_accel + p0 * v0;
            let second = p_accel * (var_accel + v_accel * v_accel) + p0 * (var0 + v0 * v0);
            (v, (second - v * v).max(0.0))
        } else {
            (v_accel, var_accel)
        };
        let ssr_m: f64 = rows
            .iter()
            .map(|&(t, s, _)| {
                let tau = t - tc;
                (s - beta[0] - beta[1] * tau - 0.5 * beta[2] * tau * tau).powi(2)
            })
            .sum();
        let fit = MotionFit {
            speed_m_s: v_mean.abs(),
            speed_se_m_s: var_mean.sqrt(),
            dof,
            accel_m_s2: if quadratic { beta[2] } else { 0.0 },
            direction: dir,
            origin_m: origin,
            s_in_out_m: s_in_out,
            t_in_out_s: t_in_out,
            residual_rms_m: (ssr_m / m).sqrt(),
            noise_px: sigma2.sqrt(),
            lateral_noise_px: (lateral_wssr / (m - 2.0).max(1.0)).sqrt(),
            inliers: rows.len(),
        };
        let finite = fit.speed_m_s.is_finite() && fit.speed_se_m_s.is_finite();
        if !finite {
            return None;
        }
        // Outliers: standardised along-track and lateral residuals of all samples against this
        // fit, each against its robust (MAD) scale. A box of another vehicle (a track that
        // jumped lanes) is far off laterally even when it is level along the road.
        let z: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| {
                let (t, pos, w) = along(s);
                let tau = t - tc;
                let za = (pos - beta[0] - beta[1] * tau - 0.5 * beta[2] * tau * tau) * w.sqrt();
                let (lat, w_lat) = lateral(s);
                (za, lat * w_lat.sqrt())
            })
            .collect();
        let robust_scale = |f: fn(&(f64, f64)) -> f64| {
            1.4826
                * median(
                    z.iter()
                        .zip(&keep)
                        .filter_map(|(z, k)| k.then_some(f(z).abs()))
                        .collect(),
                )
        };
        let (scale_a, scale_l) = (robust_scale(|z| z.0), robust_scale(|z| z.1));
        result = Some(fit);
        if !(scale_a > 1e-12 && scale_l > 1e-12) {
            break;
        }
        let next: Vec<bool> = z
            .iter()
            .map(|z| z.0.abs() <= opts.outlier_z * scale_a && z.1.abs() <= opts.outlier_z * scale_l)
            .collect();
        if next == keep || next.iter().filter(|k| **k).count() < min_keep {
            break;
        }
        keep = next;
    }
    result
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

    /// Samples of `x(t) = x0 + v0 t + a t²/2` along unit direction `dir` at times `ts`.
    fn motion(dir: [f64; 2], v0: f64, a: f64, ts: &[f64]) -> Vec<GroundSample> {
        ts.iter()
            .map(|&t| {
                let s = 5.0 + v0 * t + 0.5 * a * t * t;
                GroundSample {
                    t_s: t,
                    ground_m: [3.0 + s * dir[0], -2.0 + s * dir[1]],
                    cov_m2_per_px2: [[0.01, 0.002], [0.002, 0.02]],
                }
            })
            .collect()
    }

    #[test]
    fn outlier_from_another_vehicle_is_dropped() {
        let ts: Vec<f64> = (0..20).map(|i| f64::from(i) / 30.0).collect();
        let mut samples = motion([1.0, 0.0], 20.0, 0.0, &ts);
        // Small alternating jitter, and one box from the next lane (3.5 m across).
        for (i, s) in samples.iter_mut().enumerate() {
            s.ground_m[0] += if i % 2 == 0 { 0.02 } else { -0.02 };
        }
        samples[7].ground_m[1] += 3.5;
        let opts = MotionFitOptions {
            accel_prior_sd_m_s2: 1.5,
            outlier_z: 4.0,
        };
        let fit = fit_zone_motion(&samples, None, &opts).unwrap();
        assert_eq!(fit.inliers, 19, "{fit:?}");
        assert!((fit.speed_m_s - 20.0).abs() < 0.2, "{fit:?}");
    }

    #[test]
    fn accel_model_probability_follows_the_evidence() {
        // No sign of an acceleration that the data could have seen: constant speed is favoured.
        let p = accel_model_probability(0.0, 0.1, 1.5);
        assert!(p < 0.15, "{p}");
        // Data too poor to tell: about the prior odds.
        let p = accel_model_probability(0.0, 50.0, 1.5);
        assert!((p - (1.0 - CONSTANT_SPEED_PRIOR)).abs() < 0.01, "{p}");
        // A clear acceleration.
        let p = accel_model_probability(2.0, 0.3, 1.5);
        assert!(p > 0.999, "{p}");
        // Degenerate standard error: the accelerating model stands.
        assert_eq!(accel_model_probability(0.0, 0.0, 1.5), 1.0);
    }

    proptest! {
        /// Noiseless constant-acceleration motion: with the acceleration prior, the interval holds
        /// the true mean speed over the zone (zone length / crossing time; a tight prior may shrink
        /// an acceleration few samples cannot pin down, and the interval accounts for it); without
        /// a prior the fit is exact.
        #[test]
        fn mean_zone_speed_on_noiseless_motion(
            heading in -3.1f64..3.1, v0 in 5.0f64..45.0, a in -3.0f64..3.0,
            zone_len in 10.0f64..40.0, dt in 0.02f64..0.15, prior in 0.5f64..3.0,
        ) {
            let dir = [heading.cos(), heading.sin()];
            // Zone from 10 m to 10 + zone_len m along the path (a rectangle across it).
            let perp = [-dir[1], dir[0]];
            let at = |s: f64, l: f64| [3.0 + s * dir[0] + l * perp[0], -2.0 + s * dir[1] + l * perp[1]];
            let zone = [at(10.0, -4.0), at(10.0 + zone_len, -4.0), at(10.0 + zone_len, 4.0), at(10.0, 4.0)];
            // True crossing times of s = 10 and s = 10 + zone_len (x(t) = 5 + v0 t + a t²/2).
            let t_at = |s: f64| {
                let d = s - 5.0;
                2.0 * d / (v0 + (v0 * v0 + 2.0 * a * d).sqrt())
            };
            prop_assume!(v0 * v0 + 2.0 * a * (5.0 + zone_len) > 4.0);
            let (t0, t1) = (t_at(10.0), t_at(10.0 + zone_len));
            let truth = zone_len / (t1 - t0);
            let n = ((t1 - t0) / dt).floor() as usize;
            prop_assume!(n >= 4);
            let ts: Vec<f64> = (0..n).map(|i| t0 + dt * (i as f64 + 0.5)).collect();
            let samples = motion(dir, v0, a, &ts);
            let opts = MotionFitOptions { accel_prior_sd_m_s2: prior, outlier_z: 4.0 };
            let fit = fit_zone_motion(&samples, Some(&zone), &opts).unwrap();
            let half = 1.96 * fit.speed_se_m_s;
            prop_assert!((fit.speed_m_s - truth).abs() <= half + 1e-6 * truth,
                "fit {} truth {} half {}", fit.speed_m_s, truth, half);
            // Without a prior the constant-acceleration fit is exact, crossing times included.
            let free = MotionFitOptions { accel_prior_sd_m_s2: f64::INFINITY, outlier_z: 4.0 };
            let fit = fit_zone_motion(&samples, Some(&zone), &free).unwrap();
            prop_assert!((fit.speed_m_s - truth).abs() < 1e-6 * truth);
            prop_assert!((fit.t_in_out_s[0] - t0).abs() < 1e-6 && (fit.t_in_out_s[1] - t1).abs() < 1e-6);
            prop_assert!((fit.accel_m_s2 - a).abs() < 1e-4);
        }

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
