//! Matches measured vehicles to a scene's ground truth: how the demo and the end-to-end tests
//! score speed accuracy.

use super::SceneTruth;
use crate::event::Event;
use std::path::Path;

/// One truth vehicle that crossed the zone and the measurement matched to it, if any.
#[derive(Debug, Clone)]
pub struct Match {
    /// Vehicle id in the truth.
    pub vehicle_id: u32,
    /// True mean speed over the zone, km/h.
    pub true_kmh: f64,
    /// The matched measurement.
    pub measured: Option<Event>,
}

impl Match {
    /// Measured minus true speed, km/h.
    pub(crate) fn error_kmh(&self) -> Option<f64> {
        self.measured
            .as_ref()
            .and_then(|m| m.speed_kmh)
            .map(|v| v - self.true_kmh)
    }
}

/// Reads a scene's `truth.json`.
pub fn load_truth(path: &Path) -> Result<SceneTruth, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// How well a measurement's zone interval `[t0, t1]` fits a true crossing interval `[a, b]`:
/// their intersection over their union (0 when they do not overlap). Unlike the bare overlap
/// it does not let a slow vehicle's long crossing claim the verdict of a fast vehicle that
/// crossed in another lane meanwhile.
fn interval_iou(a: f64, b: f64, t0: f64, t1: f64) -> f64 {
    let inter = b.min(t1) - a.max(t0);
    if inter <= 0.0 {
        return 0.0;
    }
    inter / (b.max(t1) - a.min(t0)).max(1e-9)
}

/// Pairs each vehicle that fully crossed the zone with the measurement whose zone interval
/// `[t_enter_s, t_exit_s]` fits its true crossing interval best (one-to-one, greedy by the
/// intervals' intersection over union). Measurements that overlap no vehicle are returned as
/// unmatched.
pub fn match_measurements(truth: &SceneTruth, measured: &[Event]) -> (Vec<Match>, Vec<Event>) {
    let crossed: Vec<_> = truth
        .vehicles
        .iter()
        .filter_map(|v| {
            match (
                v.crossed_zone,
                v.zone_entry_s,
                v.zone_exit_s,
                v.zone_speed_kmh,
            ) {
                (true, Some(a), Some(b), Some(s)) => Some((v.id, a.min(b), a.max(b), s)),
                _ => None,
            }
        })
        .collect();
    let mut pairs = Vec::new();
    for (vi, &(_, a, b, _)) in crossed.iter().enumerate() {
        for (mi, m) in measured.iter().enumerate() {
            let fit = interval_iou(a, b, m.t_enter_s, m.t_exit_s);
            if fit > 0.0 {
                pairs.push((fit, vi, mi));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut vehicle_of = vec![None; crossed.len()];
    let mut used = vec![false; measured.len()];
    for (_, vi, mi) in pairs {
        if vehicle_of[vi].is_none() && !used[mi] {
            vehicle_of[vi] = Some(mi);
            used[mi] = true;
        }
    }
    let matches = crossed
        .iter()
        .zip(&vehicle_of)
        .map(|(&(id, _, _, s), mi)| Match {
            vehicle_id: id,
            true_kmh: s,
            measured: mi.map(|i| measured[i].clone()),
        })
        .collect();
    let unmatched = measured
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(m, _)| m.clone())
        .collect();
    (matches, unmatched)
}

/// For each measurement, the id of the truth vehicle that crossed the zone whose crossing
/// interval its zone interval fits best (intersection over union, as [`match_measurements`];
/// None: it overlaps none). Unlike
/// [`match_measurements`] this is many-to-one, so it counts how many verdicts each vehicle got
/// (a vehicle split into two tracks gets two).
pub fn verdict_vehicles(truth: &SceneTruth, measured: &[Event]) -> Vec<Option<u32>> {
    let crossed: Vec<(u32, f64, f64)> = truth
        .vehicles
        .iter()
        .filter_map(|v| match (v.crossed_zone, v.zone_entry_s, v.zone_exit_s) {
            (true, Some(a), Some(b)) => Some((v.id, a.min(b), a.max(b))),
            _ => None,
        })
        .collect();
    measured
        .iter()
        .map(|m| {
            crossed
                .iter()
                .map(|&(id, a, b)| (interval_iou(a, b, m.t_enter_s, m.t_exit_s), id))
                .filter(|(fit, _)| *fit > 0.0)
                .max_by(|x, y| x.0.total_cmp(&y.0))
                .map(|(_, id)| id)
        })
        .collect()
}

/// A human-readable table of true vs measured speeds with the mean absolute error.
pub fn compare_table(truth: &SceneTruth, measured: &[Event]) -> String {
    let (matches, unmatched) = match_measurements(truth, measured);
    let mut s = format!(
        "{:<8} {:>10} {:>10} {:>9}  {}\n",
        "vehicle", "true km/h", "measured", "error", "95% interval"
    );
    let mut errs = Vec::new();
    let mut covered = 0;
    for m in &matches {
        match m.error_kmh() {
            Some(e) => {
                errs.push(e.abs());
                let ci = m.measured.as_ref().and_then(|e| e.speed_ci95_kmh);
                let inside = ci.is_some_and(|[lo, hi]| (lo..=hi).contains(&m.true_kmh));
                covered += usize::from(inside);
                s += &format!(
                    "{:<8} {:>10.1} {:>10.1} {:>+9.2}  {}\n",
                    m.vehicle_id,
                    m.true_kmh,
                    m.true_kmh + e,
                    e,
                    ci.map(|[lo, hi]| format!(
                        "{lo:.1}-{hi:.1}{}",
                        if inside { "" } else { " (truth outside)" }
                    ))
                    .unwrap_or_default()
                );
            }
            None => {
                let what = match &m.measured {
                    Some(e) => format!("no speed ({})", e.reason.as_deref().unwrap_or("?")),
                    None => "missed".to_string(),
                };
                s += &format!(
                    "{:<8} {:>10.1} {:>10} {:>9}\n",
                    m.vehicle_id, m.true_kmh, what, "-"
                )
            }
        }
    }
    if !errs.is_empty() {
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        let max = errs.iter().cloned().fold(0.0, f64::max);
        s += &format!(
            "{} of {} vehicles that crossed the zone measured; mean |error| {:.2} km/h, max {:.2} km/h; truth inside the 95% interval for {covered}\n",
            errs.len(),
            matches.len(),
            mean,
            max
        );
    }
    if !unmatched.is_empty() {
        s += &format!("{} measurement(s) matched no vehicle\n", unmatched.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::{camera::CameraSpec, Direction, SceneSpec, VehicleClass, VehicleTruth};

    fn vehicle(id: u32, entry: f64, exit: f64, crossed: bool) -> VehicleTruth {
        VehicleTruth {
            id,
            class: VehicleClass::Car,
            lane: 0,
            direction: Direction::PlusX,
            speed_kmh: 50.0,
            accel_mps2: 0.0,
            zone_entry_s: Some(entry),
            zone_exit_s: Some(exit),
            crossed_zone: crossed,
            zone_speed_kmh: Some(50.0),
            samples: Vec::new(),
        }
    }

    fn truth(vehicles: Vec<VehicleTruth>) -> SceneTruth {
        SceneTruth {
            spec: SceneSpec {
                width_px: 64,
                height_px: 64,
                fps: 30.0,
                duration_s: 10.0,
                camera: CameraSpec {
                    x_m: 0.0,
                    y_m: -10.0,
                    height_m: 5.0,
                    yaw_deg: 70.0,
                    tilt_deg: 15.0,
                    focal_px: 100.0,
                },
                lanes: 2,
                zone_length_m: 10.0,
                vehicles: Vec::new(),
                seed: 0,
                jitter_ms: 0.0,
            },
            frames: 300,
            frame_times_s: Vec::new(),
            zone_world_m: Vec::new(),
            zone_polygon_px: Vec::new(),
            calibration_image_px: Vec::new(),
            calibration_world_m: Vec::new(),
            vehicles,
        }
    }

    fn verdict(t0: f64, t1: f64) -> Event {
        let mut e = crate::event::test_event("e".into(), "synth", 1);
        e.t_enter_s = t0;
        e.t_exit_s = t1;
        e
    }

    #[test]
    fn a_slow_vehicles_long_crossing_does_not_take_a_fast_ones_verdict() {
        // Vehicle 1 crosses slowly over 0-4 s; vehicle 2 (another lane) quickly over 1.5-2 s.
        // The fast one's verdict lies wholly inside both crossings: it is vehicle 2's.
        let t = truth(vec![vehicle(1, 0.0, 4.0, true), vehicle(2, 1.5, 2.0, true)]);
        let measured = [verdict(1.52, 1.98), verdict(0.05, 3.9)];
        let (matches, unmatched) = match_measurements(&t, &measured);
        assert!(unmatched.is_empty());
        let t_enter = |i: usize| matches[i].measured.as_ref().map(|e| e.t_enter_s);
        assert_eq!((t_enter(0), t_enter(1)), (Some(0.05), Some(1.52)));
        assert_eq!(verdict_vehicles(&t, &measured), vec![Some(2), Some(1)]);
    }

    #[test]
    fn verdicts_go_to_the_crossed_vehicle_they_fit_best() {
        // Vehicle 2 (exit before entry: travelling towards -x) fits the second verdict
        // better than vehicle 1 does; vehicle 3 did not cross, so the last verdict has no vehicle.
        let t = truth(vec![
            vehicle(1, 1.0, 3.0, true),
            vehicle(2, 4.0, 2.5, true),
            vehicle(3, 6.0, 8.0, false),
        ]);
        let got = verdict_vehicles(
            &t,
            &[
                verdict(1.1, 2.9),
                verdict(2.6, 3.9),
                verdict(1.2, 1.8),
                verdict(6.5, 7.5),
            ],
        );
        assert_eq!(got, vec![Some(1), Some(2), Some(1), None]);
    }
}
