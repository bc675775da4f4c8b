//! Scoring one replayed scene against its truth, and the per family / condition / class table.

use crate::scenes::Family;
use speedcam::event::Event;
use speedcam::truth::{match_measurements, verdict_vehicles};
use speedcam_synth::{SceneTruth, VehicleClass};

/// One vehicle that crossed the zone, and what the pipeline made of it.
#[derive(Debug, Clone)]
pub struct Scored {
    pub id: u32,
    pub class: VehicleClass,
    pub accel: bool,
    pub true_kmh: f64,
    /// Measurement verdicts attributed to it (many-to-one by zone-time overlap).
    pub verdicts: usize,
    /// The one-to-one matched verdict's speed and 95% interval.
    pub speed_kmh: Option<f64>,
    pub ci_kmh: Option<[f64; 2]>,
}

/// A scene's score.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub vehicles: Vec<Scored>,
    /// Verdicts that overlap no crossing vehicle.
    pub unmatched: usize,
}

impl Outcome {
    /// Matches the scene's measurements to its truth with the demo's matcher
    /// (`speedcam::truth::match_measurements`) and counts verdicts per vehicle.
    pub fn score(truth: &SceneTruth, measured: &[Event]) -> Outcome {
        let (matches, _) = match_measurements(truth, measured);
        let owners = verdict_vehicles(truth, measured);
        let vehicles = matches
            .iter()
            .filter_map(|m| {
                let v = truth.vehicles.iter().find(|v| v.id == m.vehicle_id)?;
                Some(Scored {
                    id: v.id,
                    class: v.class,
                    accel: v.accel_mps2 != 0.0,
                    true_kmh: m.true_kmh,
                    verdicts: owners.iter().filter(|o| **o == Some(v.id)).count(),
                    speed_kmh: m.measured.as_ref().and_then(|e| e.speed_kmh),
                    ci_kmh: m.measured.as_ref().and_then(|e| e.speed_ci95_kmh),
                })
            })
            .collect();
        Outcome {
            vehicles,
            unmatched: owners.iter().filter(|o| o.is_none()).count(),
        }
    }

    pub fn per_vehicle_text(&self, family: Family, scene: u32, cond: &str) -> String {
        let mut s = String::new();
        for v in &self.vehicles {
            s += &format!(
                "{} scene {scene:>3} {cond}: vehicle {:>2} {:<5} true {:>6.2} measured {} verdicts {}\n",
                family.name(),
                v.id,
                v.class.name(),
                v.true_kmh,
                v.speed_kmh
                    .map(|x| format!("{x:>6.2} ({:+.2})", x - v.true_kmh))
                    .unwrap_or_else(|| "     -        ".into()),
                v.verdicts
            );
        }
        s
    }
}

/// Totals of one family and condition.
pub struct Stats {
    pub family: Family,
    pub condition: &'static str,
    pub scenes: u32,
    pub frames: u64,
    pub detected: u64,
    pub skipped: Vec<VehicleClass>,
    vehicles: Vec<Scored>,
    unmatched: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[k]
}

/// One table row over `vs`.
fn row(name: &str, vs: &[&Scored]) -> String {
    let n = vs.len();
    let one = vs.iter().filter(|v| v.verdicts == 1).count();
    let many = vs.iter().filter(|v| v.verdicts > 1).count();
    let none = vs.iter().filter(|v| v.verdicts == 0).count();
    let errs: Vec<f64> = vs
        .iter()
        .filter_map(|v| v.speed_kmh.map(|s| s - v.true_kmh))
        .collect();
    let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let within3 = vs
        .iter()
        .filter(|v| v.verdicts == 1 && v.speed_kmh.is_some_and(|s| (s - v.true_kmh).abs() <= 3.0))
        .count();
    let with_ci: Vec<(&&Scored, [f64; 2])> = vs
        .iter()
        .filter(|v| v.speed_kmh.is_some())
        .filter_map(|v| v.ci_kmh.map(|c| (v, c)))
        .collect();
    let covered = with_ci
        .iter()
        .filter(|(v, [lo, hi])| (*lo..=*hi).contains(&v.true_kmh))
        .count();
    let mut widths: Vec<f64> = with_ci.iter().map(|(_, [lo, hi])| hi - lo).collect();
    widths.sort_by(f64::total_cmp);
    let pct = |k: usize, n: usize| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * k as f64 / n as f64)
        }
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    format!(
        "| {name} | {n} | {} | {many} / {none} | {} | {} ({within3}) | {:.2} / {:.2} | {:+.2} | {} ({covered}/{}) | {:.2} |\n",
        pct(one, n),
        errs.len(),
        pct(within3, n),
        if abs.is_empty() { f64::NAN } else { mean(&abs) },
        percentile(&abs, 0.95),
        if errs.is_empty() { f64::NAN } else { mean(&errs) },
        pct(covered, with_ci.len()),
        with_ci.len(),
        percentile(&widths, 0.5),
    )
}

impl Stats {
    pub fn new(family: Family, condition: &'static str) -> Stats {
        Stats {
            family,
            condition,
            scenes: 0,
            frames: 0,
            detected: 0,
            skipped: Vec::new(),
            vehicles: Vec::new(),
            unmatched: 0,
        }
    }

    pub fn add(&mut self, o: Outcome) {
        self.vehicles.extend(o.vehicles);
        self.unmatched += o.unmatched;
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "family {}, {}: {} scenes, {} frames ({} detected)\n\
             | class | crossed | one verdict | 2+ / none | with speed | one verdict within 3 km/h (n) | mean / p95 |e| km/h | bias km/h | CI coverage (n) | median CI width km/h |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            self.family.name(),
            self.condition,
            self.scenes,
            self.frames,
            self.detected
        );
        let all: Vec<&Scored> = self.vehicles.iter().collect();
        s += &row("all", &all);
        for class in VehicleClass::ALL {
            let vs: Vec<&Scored> = all.iter().copied().filter(|v| v.class == class).collect();
            if !vs.is_empty() {
                s += &row(class.name(), &vs);
            }
        }
        let acc: Vec<&Scored> = all.iter().copied().filter(|v| v.accel).collect();
        if !acc.is_empty() {
            s += &row("braking/accelerating", &acc);
        }
        s += &format!(
            "verdicts matching no crossing vehicle: {}; vehicles skipped (the renderer has no sprite for their class): {}\n",
            self.unmatched,
            if self.skipped.is_empty() {
                "0".to_string()
            } else {
                VehicleClass::ALL
                    .iter()
                    .map(|c| (c, self.skipped.iter().filter(|s| *s == c).count()))
                    .filter(|(_, n)| *n > 0)
                    .map(|(c, n)| format!("{n} {}", c.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        s
    }
}
