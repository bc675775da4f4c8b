//! Per-class report of the benchmark: for each condition, rows for all vehicles, each true class
//! (car, van, truck, bus; vehicles that do not queue), queued vehicles (any class) and braking ones
//! (any class, not queued), counting verdicts per vehicle (one, none, several; with or without a
//! speed) besides the speed errors. The class rows and the queued row add up to `all`.

use super::{CaseEval, Measured, MotionProfile};
use crate::VehicleClass;
use serde::Serialize;
use speedcam_core::event::Event;
use std::fmt::Write as _;

/// The speed an event carries, km/h; None for a verdict without a speed. Every read of an
/// event's speed in the evaluation goes through here.
pub fn event_speed(e: &Event) -> Option<f64> {
    e.speed_kmh
}

/// One vehicle that crossed the zone and what the pipeline said about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleOutcome {
    /// Vehicle id in its case.
    pub id: u32,
    /// True class.
    pub class: VehicleClass,
    /// How it moved (None in the standard family).
    pub profile: Option<MotionProfile>,
    /// Its acceleration, m/s^2 (see [`super::TruthVehicle::accel_mps2`]).
    pub accel_mps2: f64,
    /// True mean speed over the zone, km/h.
    pub zone_speed_kmh: f64,
    /// Time it stood in the zone, s.
    pub stopped_s: f64,
    /// Verdicts matched to it, with or without a speed.
    pub verdicts: u32,
    /// Of those, verdicts with a speed.
    pub verdicts_with_speed: u32,
    /// Its measurement: the verdict with a speed and the most samples.
    pub measured: Option<Measured>,
    /// The speed estimator alone on its true boxes (no tracker): speed and interval, km/h.
    pub est_only_kmh: Option<(f64, [f64; 2])>,
}

impl VehicleOutcome {
    /// Whether it brakes to a stop in the zone.
    pub fn queued(&self) -> bool {
        self.profile == Some(MotionProfile::Queue)
    }
    /// Whether it brakes through the zone (without stopping).
    pub fn braking(&self) -> bool {
        !self.queued() && self.accel_mps2 < 0.0
    }
}

/// A subset of the vehicles a report row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Every vehicle.
    All,
    /// Vehicles of one true class that do not queue.
    Class(VehicleClass),
    /// Vehicles that stop in the zone (any class).
    Queued,
    /// Vehicles that brake through the zone (any class).
    Braking,
}

impl Group {
    /// The rows of a report, in order.
    pub const ROWS: [Group; 7] = [
        Group::All,
        Group::Class(VehicleClass::Car),
        Group::Class(VehicleClass::Van),
        Group::Class(VehicleClass::Truck),
        Group::Class(VehicleClass::Bus),
        Group::Queued,
        Group::Braking,
    ];

    /// Row name.
    pub fn name(self) -> &'static str {
        match self {
            Group::All => "all",
            Group::Class(c) => c.name(),
            Group::Queued => "queued",
            Group::Braking => "braking",
        }
    }

    /// Whether the row covers `v`.
    pub fn covers(self, v: &VehicleOutcome) -> bool {
        match self {
            Group::All => true,
            Group::Class(c) => v.class == c && !v.queued(),
            Group::Queued => v.queued(),
            Group::Braking => v.braking(),
        }
    }
}

/// One row of the per-class report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Condition name.
    pub condition: String,
    /// Row name: all, car, van, truck, bus, queued, braking.
    pub group: String,
    /// Vehicles that crossed the zone.
    pub crossed: usize,
    /// Of those, with exactly one verdict.
    pub one_verdict: usize,
    /// With a verdict that has a speed.
    pub with_speed: usize,
    /// With two or more verdicts.
    pub multiple: usize,
    /// With no verdict at all.
    pub missed: usize,
    /// Mean |measured - true| over the vehicles with a speed, km/h.
    pub mean_abs_error_kmh: f64,
    /// 95th percentile of the same, km/h.
    pub p95_abs_error_kmh: f64,
    /// Mean (measured - true), km/h.
    pub bias_kmh: f64,
    /// Share of those whose true speed lies inside the 95% interval, 0..1.
    pub ci_coverage: f64,
    /// Median width of the 95% interval, km/h.
    pub median_ci_width_kmh: f64,
    /// Vehicles the speed estimator alone measured from their true boxes.
    pub est_only_measured: usize,
    /// Mean |error| of the estimator alone, km/h.
    pub est_only_mean_abs_error_kmh: f64,
    /// Mean (measured - true) of the estimator alone, km/h.
    pub est_only_bias_kmh: f64,
    /// Verdicts matched to no crossing vehicle (row `all` only).
    pub unmatched_verdicts: Option<u32>,
}

/// The report rows ([`Group::ROWS`]) of one condition.
pub fn summarize_groups(condition: &str, cases: &[CaseEval]) -> Vec<GroupSummary> {
    let all: Vec<&VehicleOutcome> = cases.iter().flat_map(|c| &c.outcomes).collect();
    Group::ROWS
        .iter()
        .map(|&g| {
            let vs: Vec<&VehicleOutcome> = all.iter().copied().filter(|v| g.covers(v)).collect();
            let measured: Vec<(&Measured, f64)> = vs
                .iter()
                .filter_map(|v| v.measured.as_ref().map(|m| (m, v.zone_speed_kmh)))
                .collect();
            let errs: Vec<f64> = measured.iter().map(|(m, t)| m.speed_kmh - t).collect();
            let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
            let covered = measured
                .iter()
                .filter(|(m, t)| (m.ci95_kmh[0]..=m.ci95_kmh[1]).contains(t))
                .count();
            let widths: Vec<f64> = measured
                .iter()
                .map(|(m, _)| m.ci95_kmh[1] - m.ci95_kmh[0])
                .collect();
            let est: Vec<f64> = vs
                .iter()
                .filter_map(|v| v.est_only_kmh.map(|(kmh, _)| kmh - v.zone_speed_kmh))
                .collect();
            let est_abs: Vec<f64> = est.iter().map(|e| e.abs()).collect();
            GroupSummary {
                condition: condition.to_string(),
                group: g.name().to_string(),
                crossed: vs.len(),
                one_verdict: vs.iter().filter(|v| v.verdicts == 1).count(),
                with_speed: vs.iter().filter(|v| v.verdicts_with_speed > 0).count(),
                multiple: vs.iter().filter(|v| v.verdicts >= 2).count(),
                missed: vs.iter().filter(|v| v.verdicts == 0).count(),
                mean_abs_error_kmh: super::mean(&abs),
                p95_abs_error_kmh: super::quantile(&abs, 0.95),
                bias_kmh: super::mean(&errs),
                ci_coverage: if measured.is_empty() {
                    f64::NAN
                } else {
                    covered as f64 / measured.len() as f64
                },
                median_ci_width_kmh: super::quantile(&widths, 0.5),
                est_only_measured: est.len(),
                est_only_mean_abs_error_kmh: super::mean(&est_abs),
                est_only_bias_kmh: super::mean(&est),
                unmatched_verdicts: (g == Group::All)
                    .then(|| cases.iter().map(|c| c.unmatched_verdicts).sum()),
            }
        })
        .collect()
}

/// The rows as a fixed-width table: verdict counts (`one`: exactly one verdict, `speed`: a
/// verdict with a speed, `2+`: several verdicts, `none`: no verdict, `one%`: share with exactly
/// one, `unmat`: verdicts of no crossing vehicle), the pipeline's errors over the vehicles with a
/// speed, then the speed estimator alone on the true boxes (`est-only`).
pub fn format_group_table(rows: &[GroupSummary]) -> String {
    let mut s = String::new();
    let header = [
        [
            "condition",
            "group",
            "crossed",
            "one",
            "speed",
            "2+",
            "none",
            "one%",
            "unmat",
        ],
        ["", "", "", "", "", "", "", "%", ""],
    ];
    let errors = [
        [
            "mean|e|", "p95|e|", "bias", "CI cov", "CI wid", "est n", "mean|e|", "bias",
        ],
        ["km/h", "km/h", "km/h", "%", "km/h", "", "km/h", "km/h"],
    ];
    for (h, e) in header.iter().zip(&errors) {
        let _ = writeln!(
            s,
            "{:<30} {:<7} {:>7} {:>5} {:>5} {:>4} {:>5} {:>6} {:>5} | {:>7} {:>7} {:>7} {:>6} {:>6} | {:>5} {:>7} {:>7}",
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], e[0], e[1], e[2], e[3], e[4], e[5],
            e[6], e[7]
        );
    }
    let num = |x: f64, digits: usize| {
        if x.is_finite() {
            format!("{x:.digits$}")
        } else {
            "-".to_string()
        }
    };
    for r in rows {
        let one_pct = 100.0 * r.one_verdict as f64 / r.crossed as f64;
        let _ = writeln!(
            s,
            "{:<30} {:<7} {:>7} {:>5} {:>5} {:>4} {:>5} {:>6} {:>5} | {:>7} {:>7} {:>7} {:>6} {:>6} | {:>5} {:>7} {:>7}",
            r.condition,
            r.group,
            r.crossed,
            r.one_verdict,
            r.with_speed,
            r.multiple,
            r.missed,
            num(one_pct, 1),
            r.unmatched_verdicts.map_or(String::new(), |n| n.to_string()),
            num(r.mean_abs_error_kmh, 3),
            num(r.p95_abs_error_kmh, 3),
            num(r.bias_kmh, 3),
            num(100.0 * r.ci_coverage, 1),
            num(r.median_ci_width_kmh, 2),
            r.est_only_measured,
            num(r.est_only_mean_abs_error_kmh, 3),
            num(r.est_only_bias_kmh, 3),
        );
    }
    s
}
