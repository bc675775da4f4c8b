//! Mean speed over the zone from the times a vehicle crossed the zone's two edges, for passages
//! that no single motion model fits.
//!
//! Why: [`super::fit_zone_motion`] fits one constant-speed-or-acceleration motion to the whole
//! passage. A vehicle that stops in the zone (a queue, a red light) or goes stop-and-go follows no
//! such motion: the fit's residuals look like the scatter of a track mixed between two vehicles
//! and the passage used to be dropped. Its mean speed over the zone is still well defined: zone
//! length / the time between entering and leaving it. Both instants are found where they happen,
//! from a short local fit of the samples around each edge, located with a monotone (isotonic)
//! fit of the whole passage, since vehicles do not reverse. The same monotone fit says how long
//! the vehicle stood still (`stopped_s`).

use super::fit::{line_polygon_span, motion_wssr, solve_motion, time_at};
use super::{GroundSample, MotionFit};

/// Below this mean speed over [`STOP_WINDOW_S`], m/s, a vehicle counts as standing still.
const STOP_SPEED_M_S: f64 = 0.5;
/// Window over which standing still is judged, s (box noise makes shorter windows unreliable).
const STOP_WINDOW_S: f64 = 1.0;
/// Samples within this time of an edge crossing take part in its local fit, s.
const EDGE_WINDOW_S: f64 = 1.5;
/// Prior standard deviation of the acceleration in an edge's local fit, m/s² (a vehicle that
/// starts from a queue accelerates harder than one passing through).
const EDGE_ACCEL_PRIOR_SD_M_S2: f64 = 3.0;
/// Fewest samples in an edge's local fit.
const EDGE_MIN_SAMPLES: usize = 3;
/// The slowest crossing of an edge that gives a usable crossing time, m/s.
const EDGE_MIN_SPEED_M_S: f64 = 0.3;

/// A passage measured from its zone-edge crossing times.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CrossingFit {
    /// The motion summary, in the same terms as [`super::fit_zone_motion`]'s.
    pub fit: MotionFit,
    /// Time the vehicle stood still between the crossings, s.
    pub stopped_s: f64,
}

/// Along-track samples `(t_s, s_m, weight)`, time-sorted, with positions signed so that they
/// increase along the direction of travel; and that sign.
fn along_track(samples: &[GroundSample], dir: [f64; 2], origin: [f64; 2]) -> (Vec<Row>, f64) {
    let mut rows: Vec<Row> = samples
        .iter()
        .map(|s| {
            let (s_m, w) = s.along(origin, dir);
            Row { t_s: s.t_s, s_m, w }
        })
        .collect();
    rows.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let k = rows.len().min(3);
    let head = rows[..k].iter().map(|r| r.s_m).sum::<f64>();
    let tail = rows[rows.len() - k..].iter().map(|r| r.s_m).sum::<f64>();
    let sign = if tail >= head { 1.0 } else { -1.0 };
    for r in &mut rows {
        r.s_m *= sign;
    }
    (rows, sign)
}

#[derive(Debug, Clone, Copy)]
struct Row {
    t_s: f64,
    s_m: f64,
    /// Inverse along-track variance per px² of box noise, 1/m².
    w: f64,
}

/// Weighted isotonic (non-decreasing) regression of `rows`' positions (pool adjacent violators).
fn isotonic(rows: &[Row]) -> Vec<f64> {
    // Blocks of (weighted mean, weight, count).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(rows.len());
    for r in rows {
        blocks.push((r.s_m, r.w, 1));
        while blocks.len() >= 2 {
            let (m2, w2, n2) = blocks[blocks.len() - 1];
            let (m1, w1, n1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.truncate(blocks.len() - 2);
            blocks.push(((m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2));
        }
    }
    blocks
        .into_iter()
        .flat_map(|(m, _, n)| std::iter::repeat_n(m, n))
        .collect()
}

/// Time at which the monotone fit `iso` (values at `rows`' times) reaches `s_m`, interpolated;
/// the first sample's time when it starts beyond `s_m`; None when it never gets there.
fn iso_time_at(rows: &[Row], iso: &[f64], s_m: f64) -> Option<f64> {
    let i = iso.iter().position(|&v| v >= s_m)?;
    if i == 0 {
        return Some(rows[0].t_s);
    }
    let (v0, v1) = (iso[i - 1], iso[i]);
    let f = if v1 > v0 { (s_m - v0) / (v1 - v0) } else { 1.0 };
    Some(rows[i - 1].t_s + f * (rows[i].t_s - rows[i - 1].t_s))
}

/// Time the monotone fit stands still within `[t0, t1]`, s: the time between consecutive
/// samples whose speed (the fit's mean over [`STOP_WINDOW_S`] centred on them) is both below
/// [`STOP_SPEED_M_S`], or across which (at least [`STOP_WINDOW_S`] apart) the vehicle moved
/// slower than that.
fn stopped_time_s(rows: &[Row], iso: &[f64], t0: f64, t1: f64) -> f64 {
    let half = 0.5 * STOP_WINDOW_S;
    let (mut lo, mut hi) = (0, 0);
    let slow: Vec<bool> = (0..rows.len())
        .map(|i| {
            let t = rows[i].t_s;
            while rows[lo].t_s < t - half {
                lo += 1;
            }
            hi = hi.max(i);
            while hi + 1 < rows.len() && rows[hi + 1].t_s <= t + half {
                hi += 1;
            }
            let dt = rows[hi].t_s - rows[lo].t_s;
            dt >= half && iso[hi] - iso[lo] < STOP_SPEED_M_S * dt
        })
        .collect();
    // A gap between samples (the vehicle hidden) counts when it barely moved across it.
    let still_across = |i: usize| {
        let dt = rows[i].t_s - rows[i - 1].t_s;
        dt >= STOP_WINDOW_S && iso[i] - iso[i - 1] < STOP_SPEED_M_S * dt
    };
    (1..rows.len())
        .filter(|&i| (slow[i - 1] && slow[i]) || still_across(i))
        .map(|i| (rows[i].t_s.min(t1) - rows[i - 1].t_s.max(t0)).max(0.0))
        .sum()
}

/// How long the samples' vehicle stood still between `t0_s` and `t1_s`, s, judged along `dir`.
pub(crate) fn stopped_s(
    samples: &[GroundSample],
    dir: [f64; 2],
    origin: [f64; 2],
    t0_s: f64,
    t1_s: f64,
) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let (rows, _) = along_track(samples, dir, origin);
    let iso = isotonic(&rows);
    stopped_time_s(&rows, &iso, t0_s, t1_s)
}

/// One edge's crossing: time, its variance per unit noise variance, and the local fit's weighted
/// squared residuals, samples and effective parameters.
struct Edge {
    t_s: f64,
    var_t_per_sigma2: f64,
    /// Variance of the crossing time from the local model's choice, s².
    model_var_t_s2: f64,
    wssr: f64,
    n: usize,
    edf: f64,
}

/// Crossing of position `edge_m` from the samples around the monotone fit's crossing time.
fn edge_crossing(rows: &[Row], iso: &[f64], edge_m: f64) -> Option<Edge> {
    let t0 = iso_time_at(rows, iso, edge_m)?;
    let local: Vec<(f64, f64, f64)> = rows
        .iter()
        .filter(|r| (r.t_s - t0).abs() <= EDGE_WINDOW_S)
        .map(|r| (r.t_s, r.s_m, r.w))
        .collect();
    if local.len() < EDGE_MIN_SAMPLES {
        return None;
    }
    let wssr = |beta: &[f64; 3]| motion_wssr(&local, t0, beta);
    let m = local.len() as f64;
    let (b_lin, _, _) = solve_motion(&local, t0, 2, 0.0)?;
    let mut sigma2 = wssr(&b_lin) / (m - 2.0).max(1.0);
    let (mut beta, mut cov, mut edf) = (b_lin, [[0.0; 3]; 3], 2.0);
    for _ in 0..3 {
        let prior = sigma2 / EDGE_ACCEL_PRIOR_SD_M_S2.powi(2);
        (beta, cov, edf) = solve_motion(&local, t0, 3, prior.max(1e-12))?;
        sigma2 = wssr(&beta) / (m - edf).max(1.0);
    }
    let t_e = time_at(&beta, t0, edge_m)?;
    let tau = t_e - t0;
    let v = beta[1] + beta[2] * tau;
    if !(v >= EDGE_MIN_SPEED_M_S && tau.abs() <= EDGE_WINDOW_S) {
        return None;
    }
    let g = [1.0, tau, 0.5 * tau * tau];
    let mut var_s = 0.0;
    for r in 0..3 {
        for c in 0..3 {
            var_s += g[r] * cov[r][c] * g[c];
        }
    }
    // Model error: how far the straight-line fit of the same window puts the crossing (the
    // quadratic is a local approximation of a vehicle braking into or starting from a queue).
    let model_var_t_s2 = time_at(&b_lin, t0, edge_m).map_or(0.0, |t_lin| (t_lin - t_e).powi(2));
    Some(Edge {
        t_s: t_e,
        var_t_per_sigma2: var_s / (v * v),
        model_var_t_s2,
        wssr: wssr(&beta),
        n: local.len(),
        edf,
    })
}

/// Measures a passage by its zone-edge crossing times along the path `origin + s dir` (from the
/// whole-passage fit). None when the path misses the zone, the samples do not reach an edge, or
/// an edge has too few samples around it.
pub(crate) fn fit_zone_crossings(
    samples: &[GroundSample],
    zone_m: &[[f64; 2]],
    dir: [f64; 2],
    origin: [f64; 2],
) -> Option<CrossingFit> {
    if samples.len() < 2 * EDGE_MIN_SAMPLES {
        return None;
    }
    let [lo, hi] = line_polygon_span(origin, dir, zone_m)?;
    let (rows, sign) = along_track(samples, dir, origin);
    let (entry_m, exit_m) = if sign > 0.0 { (lo, hi) } else { (-hi, -lo) };
    let iso = isotonic(&rows);
    let (a, b) = (
        edge_crossing(&rows, &iso, entry_m)?,
        edge_crossing(&rows, &iso, exit_m)?,
    );
    let dt_s = b.t_s - a.t_s;
    if dt_s <= 0.0 {
        return None;
    }
    let dof = (a.n + b.n) as f64 - a.edf - b.edf;
    let sigma2 = (a.wssr + b.wssr) / dof.max(1.0);
    let speed_m_s = (exit_m - entry_m) / dt_s;
    let var_t_s2 =
        sigma2 * (a.var_t_per_sigma2 + b.var_t_per_sigma2) + a.model_var_t_s2 + b.model_var_t_s2;
    let se = speed_m_s * var_t_s2.sqrt() / dt_s;
    let perp = [-dir[1], dir[0]];
    let lateral_wssr: f64 = samples
        .iter()
        .map(|s| {
            let (off, w) = s.along(origin, perp);
            w * off * off
        })
        .sum();
    let ssr_m: f64 = rows
        .iter()
        .zip(&iso)
        .map(|(r, f)| (r.s_m - f).powi(2))
        .sum();
    let m = rows.len() as f64;
    let fit = MotionFit {
        speed_m_s,
        speed_se_m_s: se,
        dof: dof.max(1.0),
        accel_m_s2: 0.0,
        direction: dir,
        origin_m: origin,
        s_in_out_m: [lo, hi],
        t_in_out_s: [a.t_s, b.t_s],
        residual_rms_m: (ssr_m / m).sqrt(),
        noise_px: sigma2.sqrt(),
        lateral_noise_px: (lateral_wssr / (m - 2.0).max(1.0)).sqrt(),
        inliers: a.n + b.n,
    };
    let finite = [fit.speed_m_s, fit.speed_se_m_s, fit.noise_px]
        .iter()
        .all(|v| v.is_finite());
    finite.then(|| CrossingFit {
        stopped_s: stopped_time_s(&rows, &iso, a.t_s, b.t_s),
        fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 25 samples/s of the queued vehicle of [`queue_x`]: exact positions plus a deterministic
    /// wobble of up to `noise_m`.
    fn queue(stop_s: f64, noise_m: f64) -> Vec<GroundSample> {
        let mut out = Vec::new();
        let mut k = 0u32;
        let mut t = 0.0;
        while t < 20.0 + stop_s {
            let x = queue_x(t, stop_s);
            let wobble =
                noise_m * if k.is_multiple_of(2) { 1.0 } else { -1.0 } * ((k % 5) as f64 / 4.0);
            out.push(GroundSample {
                t_s: t,
                ground_m: [x + wobble, 1.0],
                cov_m2_per_px2: [[0.01, 0.0], [0.0, 0.01]],
            });
            k += 1;
            t += 1.0 / 25.0;
        }
        out
    }

    /// Position of a queued vehicle, m: from x = -15 m at 10 m/s, it brakes at 2.5 m/s² from
    /// t = 1 s to a stop at x = 15 m (t = 5 s), stands `stop_s`, then accelerates at 2 m/s².
    fn queue_x(t: f64, stop_s: f64) -> f64 {
        let (v0, dec, acc) = (10.0, 2.5, 2.0);
        let x_brake = -15.0 + v0 * 1.0;
        let t_stop = 1.0 + v0 / dec;
        let x_stop = x_brake + v0 * v0 / (2.0 * dec);
        if t < 1.0 {
            -15.0 + v0 * t
        } else if t < t_stop {
            let tau = t - 1.0;
            x_brake + v0 * tau - 0.5 * dec * tau * tau
        } else if t < t_stop + stop_s {
            x_stop
        } else {
            let tau = t - t_stop - stop_s;
            x_stop + 0.5 * acc * tau * tau
        }
    }

    /// Inverse of `queue_x` by bisection.
    fn time_at_x(x: f64, stop_s: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, 40.0 + stop_s);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            // The stop makes x(t) flat: the first time it reaches x.
            if queue_x(mid, stop_s) >= x {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    #[test]
    fn a_queued_vehicle_gets_its_mean_zone_speed_and_its_stop() {
        // Zone from x = 0 to 20 m; the vehicle stops at x = 15 m for 8 s.
        let zone = [[0.0, -5.0], [20.0, -5.0], [20.0, 5.0], [0.0, 5.0]];
        let stop_s = 8.0;
        let samples = queue(stop_s, 0.05);
        let c = fit_zone_crossings(&samples, &zone, [1.0, 0.0], [0.0, 1.0]).expect("a fit");
        let truth_m_s = 20.0 / (time_at_x(20.0, stop_s) - time_at_x(0.0, stop_s));
        let err = (c.fit.speed_m_s - truth_m_s).abs();
        assert!(err < 0.01 * truth_m_s, "{} vs {truth_m_s}", c.fit.speed_m_s);
        // Below 0.5 m/s: the stop plus 0.2 s of braking and 0.25 s of starting.
        let slow_s = stop_s + 0.2 + 0.25;
        assert!(
            (c.stopped_s - slow_s).abs() < 0.5,
            "stopped {} s, truth {slow_s} s",
            c.stopped_s
        );
        // Interval: covers the truth, and is not absurdly wide.
        let half = 2.0 * c.fit.speed_se_m_s;
        assert!(err <= half && half < 0.2 * truth_m_s, "{err} {half}");
    }

    #[test]
    fn a_vehicle_that_keeps_going_has_not_stopped() {
        let samples: Vec<GroundSample> = (0..60)
            .map(|k| GroundSample {
                t_s: k as f64 / 25.0,
                ground_m: [30.0 - 15.0 * k as f64 / 25.0, 0.0],
                cov_m2_per_px2: [[0.01, 0.0], [0.0, 0.01]],
            })
            .collect();
        let zone = [[5.0, -5.0], [25.0, -5.0], [25.0, 5.0], [5.0, 5.0]];
        let c = fit_zone_crossings(&samples, &zone, [1.0, 0.0], [0.0, 0.0]).expect("a fit");
        assert!((c.fit.speed_m_s - 15.0).abs() < 1e-6, "{:?}", c.fit);
        assert_eq!(c.stopped_s, 0.0);
        assert!(c.fit.t_in_out_s[0] < c.fit.t_in_out_s[1]);
    }

    #[test]
    fn isotonic_pools_violators() {
        let rows: Vec<Row> = [0.0, 2.0, 1.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &s)| Row {
                t_s: i as f64,
                s_m: s,
                w: 1.0,
            })
            .collect();
        assert_eq!(isotonic(&rows), vec![0.0, 1.5, 1.5, 3.0]);
    }
}
