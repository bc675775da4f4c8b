//! Speed method `lines`: the time a vehicle takes between two lines across the road.
//!
//! Why it exists: an installer can paint (or pick) two lines across the road, measure the distance
//! between them with a tape, and click the four end points in a camera frame. That is all the
//! speed figure depends on: no surveyed ground points, no homography, no camera model. It is the
//! method people already trust from timing gates and is easy to audit (one distance, two instants).
//! The speed does not depend on the calibration: the estimator's homography only maps the stored
//! ground points back to the image (an exact round trip for any invertible calibration).
//!
//! How it works: for each in-zone sample, the ground point (bottom centre of the box) is reduced to
//! its signed distance to each line, in px. A line is crossed where that distance changes sign;
//! the crossing instant is found between the frame timestamps of the samples around it, so
//! skipped frames, jitter and gaps only widen the interval that is interpolated over, and nothing
//! divides by a frame rate. speed = `distance_m` / |t₂ − t₁|.
//!
//! Crossing refinement: three candidates were compared on the synthetic camera ([`Refine`], test
//! `lines_tests::refinement_choice`, 200 seeded drives per case, 1.5 px box noise, lines 10 m
//! apart): interpolating between the two samples that straddle the line, and local straight-line
//! or quadratic fits of the signed distance against time over ±3 samples. The signed distance is
//! a projective (not linear) function of time, so the straight-line fit averages noise (0.30% RMS
//! speed error at 30 km/h on every frame, against 0.55%) but its curvature bias grows with the
//! square of the sample spacing (4.2% at 90 km/h, every 4th frame, against 0.85%); the quadratic
//! removes the bias but is noisy on few samples (1.9-2.6% there). The straddling pair is kept
//! ([`CHOSEN_REFINE`]): never worse than 1.1% RMS over all cases, the best worst case.
//!
//! Uncertainty (the 95% interval): per crossing, the box-edge noise in px is estimated from the
//! residuals of a local straight-line fit of the signed distance against time around the crossing
//! (pooled over both lines, Student t quantile on the pooled degrees of freedom) and divided by
//! the image speed across the line (px/s, the slope of that fit) to give a timing error; the
//! worst-case linear-interpolation error from the local curvature is added (it matters when the
//! samples are far apart); the tape distance is taken as good to [`LINES_DISTANCE_TOLERANCE_M`].
//! The interval on the duration maps to `[D/(T+h), D/(T−h)]`: asymmetric, as `D/T` is.
//!
//! Compared with the fit ([`super::SpeedEstimator`] with [`super::SpeedMethod::Fit`]): the fit
//! uses every sample in the zone and the full calibration, so with a good survey it is the more
//! precise (box noise is averaged over the whole zone); `lines` rests on the few samples around two
//! instants, so its interval is wider (the scenario tests give the figures), but it needs only a
//! tape and is insensitive to calibration errors, which dominate a poor survey.
//!
//! Requirements: the zone must contain both lines with some margin (samples are only collected
//! inside the zone, and a few samples are needed on each side of each line); the lines should
//! cross the road, roughly perpendicular to the traffic. A track that crosses only one line, or
//! crosses a line back and forth (beyond box noise), gives no `lines` measurement.

use super::SpeedMeasurement;

/// How well the tape distance between the lines is assumed to be known, m: the 95% bound used in
/// every `lines` interval.
pub const LINES_DISTANCE_TOLERANCE_M: f64 = 0.05;

/// Shortest accepted line, px.
const MIN_LINE_LENGTH_PX: f64 = 1.0;
/// Smallest band around a line inside which a sample is counted on neither side, px.
const MIN_BAND_PX: f64 = 2.0;
/// The band is at least this many robust noise sigmas wide.
const BAND_SIGMAS: f64 = 3.0;
/// Samples taken on each side of a line for the local fit.
const HALF_WINDOW: usize = 3;
/// Box-edge noise assumed when no residual is left to estimate it (two samples per line), px.
const FALLBACK_NOISE_PX: f64 = 2.0;

/// Two lines across the road, in image px, `distance_m` apart on the road.
///
/// Each line is given by two image points (`[[x1, y1], [x2, y2]]`, px). The vehicle's ground point
/// is tested against the infinite line through them, so the points need only span the lanes.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedLines {
    /// The first line's end points, image px.
    pub first_px: [[f64; 2]; 2],
    /// The second line's end points, image px.
    pub second_px: [[f64; 2]; 2],
    /// Distance between the two lines along the road, m (tape measure).
    pub distance_m: f64,
}

/// Why a pair of speed lines was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpeedLinesError {
    /// A coordinate is NaN or infinite.
    #[error("speed line `{line}` has a coordinate that is not finite: give pixel coordinates as plain numbers")]
    NotFinite {
        /// `first` or `second`.
        line: &'static str,
    },
    /// Both end points of a line (nearly) coincide.
    #[error("speed line `{line}` has length {length_px:.2} px: give two distinct end points across the road")]
    TooShort {
        /// `first` or `second`.
        line: &'static str,
        /// Its length, px.
        length_px: f64,
    },
    /// The distance between the lines is not a positive number.
    #[error("speed lines distance_m = {distance_m} must be a positive number of metres")]
    BadDistance {
        /// The configured distance, m.
        distance_m: f64,
    },
    /// One line reaches across the other's extension: they cross or nearly so in the image.
    #[error("speed lines cross each other in the image: each line must lie wholly on one side of the other (two separate lines across the road)")]
    Crossing,
}

impl SpeedLines {
    /// Checks the lines: finite coordinates, each at least 1 px long, `distance_m` finite and > 0,
    /// and each line wholly on one side of the other (extended) line, so that the two do not cross
    /// or touch in the image. The error's text is meant for the installer.
    pub fn validate(&self) -> Result<(), SpeedLinesError> {
        for (line, pts) in [("first", self.first_px), ("second", self.second_px)] {
            if pts.iter().flatten().any(|v| !v.is_finite()) {
                return Err(SpeedLinesError::NotFinite { line });
            }
            let length_px = line_length_px(pts);
            if length_px < MIN_LINE_LENGTH_PX {
                return Err(SpeedLinesError::TooShort { line, length_px });
            }
        }
        if !(self.distance_m.is_finite() && self.distance_m > 0.0) {
            return Err(SpeedLinesError::BadDistance {
                distance_m: self.distance_m,
            });
        }
        let one_side = |line: [[f64; 2]; 2], other: [[f64; 2]; 2]| {
            let (a, b) = (
                signed_distance_px(line, other[0]),
                signed_distance_px(line, other[1]),
            );
            (a > 0.0 && b > 0.0) || (a < 0.0 && b < 0.0)
        };
        if !one_side(self.first_px, self.second_px) || !one_side(self.second_px, self.first_px) {
            return Err(SpeedLinesError::Crossing);
        }
        Ok(())
    }
}

fn line_length_px(line: [[f64; 2]; 2]) -> f64 {
    (line[1][0] - line[0][0]).hypot(line[1][1] - line[0][1])
}

/// Signed distance of `p` from the infinite line through `line`, px (positive to the left of the
/// direction from the first to the second point, in image coordinates with y down).
pub(super) fn signed_distance_px(line: [[f64; 2]; 2], p: [f64; 2]) -> f64 {
    let [a, b] = line;
    ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) / line_length_px(line)
}

/// How a crossing instant is refined from the samples around the line.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the alternatives are kept for the comparison test"
    )
)]
pub(super) enum Refine {
    /// Linear interpolation in time between the two samples that straddle the line.
    TwoPoint,
    /// Root of a least-squares line of signed distance against time over up to
    /// [`HALF_WINDOW`] samples on each side of the line.
    LocalFit,
    /// Root of a least-squares quadratic over the same window: takes out the perspective
    /// curvature of the signed distance. With fewer than five samples in the window, `TwoPoint`.
    LocalQuadratic,
}

/// The refinement in use: the straddling pair, the most robust to sparse samples (module doc,
/// test `lines_tests::refinement_choice`).
pub(super) const CHOSEN_REFINE: Refine = Refine::TwoPoint;

/// Why a line gave no crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NoCrossing {
    /// The samples stay on one side of the line (or within the noise band around it).
    NotCrossed,
    /// The samples cross the line more than once.
    BackAndForth,
    /// The samples around the crossing do not move across the line (no time span, or the local
    /// fit runs the wrong way).
    Degenerate,
}

impl NoCrossing {
    fn reason(self) -> &'static str {
        match self {
            NoCrossing::NotCrossed => "line not crossed",
            NoCrossing::BackAndForth => "line crossed back and forth",
            NoCrossing::Degenerate => "no motion across the line around the crossing",
        }
    }
}

/// One line crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Crossing {
    /// Crossing instant, s (frame-timestamp scale).
    pub t_s: f64,
    /// Variance of `t_s` per px² of noise on the signed distance, s²/px².
    pub var_t_per_px2: f64,
    /// Sum of squared residuals of the local straight-line fit, px².
    pub ssr_px2: f64,
    /// Residual degrees of freedom of that fit.
    pub dof: usize,
    /// Image speed across the line (slope of the local fit), px/s.
    pub rate_px_s: f64,
    /// Bound on the interpolation (curvature) error of `t_s`, s.
    pub bound_s: f64,
    /// Sample index range of the local window, inclusive.
    pub window: (usize, usize),
}

/// A local least-squares polynomial `d ≈ Σ coef[i] τ^i` (τ = t − `t_ref`, degree 1 or 2).
struct Poly {
    t_ref: f64,
    coef: Vec<f64>,
    /// (XᵀX)⁻¹: the coefficients' covariance per unit noise variance.
    cov_unit: nalgebra::DMatrix<f64>,
    ssr_px2: f64,
    dof: usize,
}

impl Poly {
    fn fit(ts: &[f64], d: &[f64], t_ref: f64, degree: usize) -> Option<Poly> {
        let p = degree + 1;
        if ts.len() < p {
            return None;
        }
        let x = nalgebra::DMatrix::from_fn(ts.len(), p, |r, c| (ts[r] - t_ref).powi(c as i32));
        let y = nalgebra::DVector::from_column_slice(d);
        let cov_unit = (x.transpose() * &x).try_inverse()?;
        let coef = &cov_unit * x.transpose() * &y;
        let ssr_px2 = (&x * &coef - y).norm_squared();
        let ok = coef.iter().chain(cov_unit.iter()).all(|v| v.is_finite());
        ok.then(|| Poly {
            t_ref,
            coef: coef.iter().copied().collect(),
            cov_unit,
            ssr_px2,
            dof: ts.len() - p,
        })
    }

    fn basis(&self, t: f64) -> nalgebra::DVector<f64> {
        nalgebra::DVector::from_fn(self.coef.len(), |i, _| (t - self.t_ref).powi(i as i32))
    }

    fn value(&self, t: f64) -> f64 {
        self.basis(t)
            .iter()
            .zip(&self.coef)
            .map(|(x, c)| x * c)
            .sum()
    }

    fn slope(&self, t: f64) -> f64 {
        let tau = t - self.t_ref;
        self.coef[1] + self.coef.get(2).map_or(0.0, |c| 2.0 * c * tau)
    }

    fn curvature(&self) -> f64 {
        self.coef.get(2).copied().unwrap_or(0.0)
    }

    /// Root near `t0` (Newton), and its variance per unit noise variance, s²/px².
    fn root(&self, t0: f64) -> Option<(f64, f64)> {
        let mut t = t0;
        for _ in 0..8 {
            t -= self.value(t) / self.slope(t);
        }
        let x = self.basis(t);
        let var = (x.transpose() * &self.cov_unit * &x)[0] / self.slope(t).powi(2);
        (t.is_finite() && var.is_finite() && self.value(t).abs() < 1e-6 * (1.0 + t0.abs()))
            .then_some((t, var))
    }
}

/// Robust estimate of the noise on `d`, px: median absolute deviation of each sample from the
/// time-interpolation of its two neighbours, scaled for the neighbours' own noise.
fn robust_noise_px(ts: &[f64], d: &[f64]) -> f64 {
    let mut dev: Vec<f64> = (1..ts.len().saturating_sub(1))
        .filter_map(|i| {
            let span = ts[i + 1] - ts[i - 1];
            if span.is_nan() || span <= 0.0 {
                return None;
            }
            let a = (ts[i] - ts[i - 1]) / span;
            let r = d[i] - ((1.0 - a) * d[i - 1] + a * d[i + 1]);
            Some(r.abs() / (1.0 + a * a + (1.0 - a) * (1.0 - a)).sqrt())
        })
        .collect();
    if dev.is_empty() {
        return 0.0;
    }
    dev.sort_by(f64::total_cmp);
    1.4826 * dev[dev.len() / 2]
}

/// Finds the single crossing of the line whose signed distances are `d` at times `ts` (sorted).
pub(super) fn find_crossing(ts: &[f64], d: &[f64], refine: Refine) -> Result<Crossing, NoCrossing> {
    let band_px = MIN_BAND_PX.max(BAND_SIGMAS * robust_noise_px(ts, d));
    // Sides decided outside the noise band; one change of side is one crossing.
    let mut last: Option<(usize, bool)> = None;
    let mut bracket = None;
    for (i, &v) in d.iter().enumerate() {
        if v.abs() <= band_px {
            continue;
        }
        let side = v > 0.0;
        if let Some((j, prev)) = last {
            if prev != side {
                if bracket.is_some() {
                    return Err(NoCrossing::BackAndForth);
                }
                bracket = Some((j, i));
            }
        }
        last = Some((i, side));
    }
    let (i, j) = bracket.ok_or(NoCrossing::NotCrossed)?;
    // Raw sign changes inside the bracket (noise may add an even number more): take the middle one.
    let pairs: Vec<usize> = (i..j)
        .filter(|&k| (d[k] > 0.0) != (d[k + 1] > 0.0))
        .collect();
    let k = *pairs.get(pairs.len() / 2).ok_or(NoCrossing::Degenerate)?;
    let dt = ts[k + 1] - ts[k];
    if dt.is_nan() || dt <= 0.0 {
        return Err(NoCrossing::Degenerate);
    }
    let jump = d[k] - d[k + 1];
    let t_two_point = ts[k] + dt * d[k] / jump;
    let dir = if d[j] > d[i] { 1.0 } else { -1.0 };
    let lo = (k + 1).saturating_sub(HALF_WINDOW);
    let hi = (k + HALF_WINDOW).min(ts.len() - 1);
    let (wt, wd) = (&ts[lo..=hi], &d[lo..=hi]);
    // The local straight line gives the image speed across the line; the local quadratic (when
    // there are enough samples) takes out the perspective curvature, so its residuals are box
    // noise only (a straight line's residuals also hold the curvature when samples are sparse).
    let line = Poly::fit(wt, wd, t_two_point, 1).ok_or(NoCrossing::Degenerate)?;
    let quad = (wt.len() >= 4)
        .then(|| Poly::fit(wt, wd, t_two_point, 2))
        .flatten();
    let rate_px_s = line.slope(t_two_point);
    if (rate_px_s * dir).is_nan() || rate_px_s * dir <= 0.0 {
        return Err(NoCrossing::Degenerate);
    }
    let noise = quad.as_ref().unwrap_or(&line);
    let curvature = quad.as_ref().map_or(0.0, Poly::curvature);
    // The quadratic root needs at least two residual degrees of freedom to beat the straddling
    // pair; with fewer samples it falls back to that.
    let refine = match (refine, &quad) {
        (Refine::LocalQuadratic, Some(q)) if q.dof >= 2 => Refine::LocalQuadratic,
        (Refine::LocalQuadratic, _) => Refine::TwoPoint,
        (other, _) => other,
    };
    let (t_s, var_t_per_px2, bound_s) = match refine {
        Refine::TwoPoint => {
            let var = dt * dt * (d[k] * d[k] + d[k + 1] * d[k + 1]) / jump.powi(4);
            // |c| τ (Δ − τ) ≤ |c| Δ²/4 px between the straddling samples, over the image speed.
            let bound = curvature.abs() * dt * dt / 4.0 / rate_px_s.abs();
            (t_two_point, var, bound)
        }
        Refine::LocalFit => {
            let (t_s, var) = line.root(t_two_point).ok_or(NoCrossing::Degenerate)?;
            // Bias of the fitted line's value at the root from the curvature term.
            let q: Vec<f64> = wt.iter().map(|t| curvature * (t - t_s).powi(2)).collect();
            let bias_px = Poly::fit(wt, &q, t_s, 1).map_or(0.0, |p| p.value(t_s));
            (t_s, var, bias_px.abs() / rate_px_s.abs())
        }
        Refine::LocalQuadratic => {
            let (t_s, var) = noise.root(t_two_point).ok_or(NoCrossing::Degenerate)?;
            (t_s, var, 0.0)
        }
    };
    let crossing = Crossing {
        t_s,
        var_t_per_px2,
        ssr_px2: noise.ssr_px2,
        dof: noise.dof,
        rate_px_s,
        bound_s,
        window: (lo, hi),
    };
    let finite = [t_s, var_t_per_px2, noise.ssr_px2, rate_px_s, bound_s]
        .iter()
        .all(|v| v.is_finite());
    if finite {
        Ok(crossing)
    } else {
        Err(NoCrossing::Degenerate)
    }
}

/// Two-sided 95% quantile of Student's t with `dof` degrees of freedom (`dof` ≥ 1).
fn t_quantile_975(dof: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => TABLE[dof - 1],
        // Cornish-Fisher expansion about the normal quantile; < 0.001 off beyond 30.
        _ => {
            let (z, n) = (1.959_964_f64, dof as f64);
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// The `lines` measurement of one track from its in-zone samples `(capture time s, ground point
/// px)`, in any order. None (logged at debug with the reason) when a line is not crossed exactly
/// once, the crossings coincide, the speed exceeds `max_speed_kmh`, or the interval is unbounded.
pub(super) fn measure_lines(
    lines: &SpeedLines,
    track_id: u64,
    class: String,
    samples_px: &[(f64, [f64; 2])],
    max_speed_kmh: f64,
) -> Option<SpeedMeasurement> {
    measure_lines_with(
        lines,
        track_id,
        class,
        samples_px,
        max_speed_kmh,
        CHOSEN_REFINE,
    )
}

/// [`measure_lines`] with a given crossing refinement.
pub(super) fn measure_lines_with(
    lines: &SpeedLines,
    track_id: u64,
    class: String,
    samples_px: &[(f64, [f64; 2])],
    max_speed_kmh: f64,
    refine: Refine,
) -> Option<SpeedMeasurement> {
    let mut samples: Vec<(f64, [f64; 2])> = samples_px
        .iter()
        .copied()
        .filter(|(t, p)| t.is_finite() && p[0].is_finite() && p[1].is_finite())
        .collect();
    samples.sort_by(|x, y| x.0.total_cmp(&y.0));
    let ts: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut crossings = [None, None];
    for (slot, (name, line)) in crossings
        .iter_mut()
        .zip([("first", lines.first_px), ("second", lines.second_px)])
    {
        let d: Vec<f64> = samples
            .iter()
            .map(|s| signed_distance_px(line, s.1))
            .collect();
        match find_crossing(&ts, &d, refine) {
            Ok(c) => *slot = Some(c),
            Err(e) => {
                tracing::debug!(
                    track_id,
                    line = name,
                    samples = samples.len(),
                    "no lines speed: {}",
                    e.reason()
                );
                return None;
            }
        }
    }
    let [Some(c1), Some(c2)] = crossings else {
        return None;
    };
    let duration_s = (c2.t_s - c1.t_s).abs();
    if duration_s.is_nan() || duration_s <= 0.0 {
        tracing::debug!(
            track_id,
            "no lines speed: both lines crossed at the same time"
        );
        return None;
    }
    let distance_m = lines.distance_m;
    let speed_m_s = distance_m / duration_s;
    let speed_kmh = speed_m_s * 3.6;
    if speed_kmh > max_speed_kmh {
        tracing::debug!(
            track_id,
            speed_kmh,
            max_speed_kmh,
            "no speed: implausible, discarded"
        );
        return None;
    }
    // Pooled box-edge noise on the signed distance, px², and its Student factor.
    let dof = c1.dof + c2.dof;
    let (noise_var_px2, quantile) = if dof > 0 {
        ((c1.ssr_px2 + c2.ssr_px2) / dof as f64, t_quantile_975(dof))
    } else {
        (FALLBACK_NOISE_PX * FALLBACK_NOISE_PX, 1.959_964)
    };
    let noise_sigma_s = (noise_var_px2 * (c1.var_t_per_px2 + c2.var_t_per_px2)).sqrt();
    let half_s =
        ((quantile * noise_sigma_s).powi(2) + c1.bound_s.powi(2) + c2.bound_s.powi(2)).sqrt();
    let rel = (half_s / duration_s).hypot(LINES_DISTANCE_TOLERANCE_M / distance_m);
    if rel.is_nan() || rel >= 1.0 {
        tracing::debug!(
            track_id,
            speed_kmh,
            duration_s,
            half_s,
            "no lines speed: timing uncertainty as large as the time between the lines"
        );
        return None;
    }
    let used = {
        let (a, b) = if c1.window.0 <= c2.window.0 {
            (c1.window, c2.window)
        } else {
            (c2.window, c1.window)
        };
        let overlap = (a.1.min(b.1) + 1).saturating_sub(b.0);
        (a.1 - a.0 + 1) + (b.1 - b.0 + 1) - overlap
    };
    // Box noise expressed along the road: px / (px/s) = s of timing, times m/s.
    let residual_rms_m = noise_var_px2.sqrt()
        * ((1.0 / c1.rate_px_s.powi(2) + 1.0 / c2.rate_px_s.powi(2)) / 2.0).sqrt()
        * speed_m_s;
    Some(SpeedMeasurement {
        track_id,
        class,
        speed_kmh,
        speed_ci95_kmh: [speed_kmh / (1.0 + rel), speed_kmh / (1.0 - rel)],
        samples: u32::try_from(used).unwrap_or(u32::MAX),
        t_enter_s: c1.t_s.min(c2.t_s),
        t_exit_s: c1.t_s.max(c2.t_s),
        distance_m,
        residual_rms_m,
        method: "lines",
        stopped_s: 0.0,
        joined_track_ids: Vec::new(),
    })
}
