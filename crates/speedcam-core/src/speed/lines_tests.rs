//! Tests of the `lines` speed method: crossing interpolation, degenerate tracks, and scenarios on
//! the synthetic camera with noisy boxes.

use super::lines::{
    find_crossing, measure_lines_with, signed_distance_px, NoCrossing, Refine, CHOSEN_REFINE,
};
use super::test_camera::{car_box, Camera};
use super::*;
use crate::detect::BBox;
use crate::test_rng::Rng;
use proptest::prelude::*;

/// Ground x of the two lines, m (10 m apart), inside the zone 12 m..32 m.
const LINE_X_M: [f64; 2] = [15.0, 25.0];
/// Box-edge noise of the synthetic detector, px (as in `tests.rs`).
const NOISE_PX: f64 = 1.5;

fn lines_for(cam: &Camera) -> SpeedLines {
    let line = |x: f64| {
        [
            cam.project([x, -4.0]).unwrap(),
            cam.project([x, 4.0]).unwrap(),
        ]
    };
    SpeedLines {
        first_px: line(LINE_X_M[0]),
        second_px: line(LINE_X_M[1]),
        distance_m: LINE_X_M[1] - LINE_X_M[0],
    }
}

/// An estimator using the `lines` method; zone 12 m..32 m ahead, full road width.
fn estimator(cam: &Camera) -> SpeedEstimator {
    let world = [[10.0, -3.5], [10.0, 3.5], [45.0, 3.5], [45.0, -3.5]];
    let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
    let (h, _) = Homography::fit(&image, &world).unwrap();
    let zone_m = [[12.0, -4.0], [12.0, 4.0], [32.0, 4.0], [32.0, -4.0]];
    let zone = Zone::new(zone_m.iter().map(|&w| cam.project(w).unwrap()).collect()).unwrap();
    let cfg = SpeedConfig {
        method: SpeedMethod::Lines(lines_for(cam)),
        ..SpeedConfig::default()
    };
    SpeedEstimator::new(h, zone, cfg)
}

/// A drive in the lane at y = 1.75 m from x = 10 m to 40 m (or back) on a 30 fps stream, detected
/// every `every_nth` frame, timestamps off by up to `jitter_s`, plus random dropped frames with
/// probability `drop_p`. Returns the frames fed: (reported time s, box).
fn drive(
    cam: &Camera,
    speed_kmh: f64,
    towards_camera: bool,
    every_nth: u32,
    jitter_s: f64,
    drop_p: f64,
    rng: &mut Rng,
) -> Vec<(f64, BBox)> {
    let v_m_s = speed_kmh / 3.6 * if towards_camera { -1.0 } else { 1.0 };
    let x0 = if towards_camera { 40.0 } else { 10.0 };
    let mut out = Vec::new();
    for k in 0.. {
        let t_true = k as f64 / 30.0;
        let x = x0 + v_m_s * t_true;
        if !(10.0..=40.0).contains(&x) {
            break;
        }
        if k % every_nth != 0 || rng.uniform() < drop_p {
            continue;
        }
        let t_s = 100.0 + t_true + jitter_s * (2.0 * rng.uniform() - 1.0);
        out.push((t_s, car_box(cam, [x, 1.75], NOISE_PX, rng)));
    }
    out
}

/// True crossing time of ground x `x_m` for [`drive`], s.
fn true_crossing_s(speed_kmh: f64, towards_camera: bool, x_m: f64) -> f64 {
    let x0 = if towards_camera { 40.0 } else { 10.0 };
    100.0 + (x_m - x0).abs() / (speed_kmh / 3.6)
}

/// Feeds a drive to `est` as track `id`: all measurements from observe and end_track.
fn run(est: &mut SpeedEstimator, frames: &[(f64, BBox)], id: u64) -> Vec<SpeedMeasurement> {
    let mut out: Vec<SpeedMeasurement> = frames
        .iter()
        .filter_map(|(t_s, b)| est.observe(id, "car", *t_s, b).and_then(Passage::measured))
        .collect();
    out.extend(est.end_track(id).and_then(Passage::measured));
    out.extend(est.flush().into_iter().filter_map(Passage::measured));
    out
}

/// Exact linear signed distance `v (t − t0)` at the given times.
fn linear(ts: &[f64], v_px_s: f64, t0_s: f64) -> Vec<f64> {
    ts.iter().map(|t| v_px_s * (t - t0_s)).collect()
}

#[test]
fn crossing_exact_on_noiseless_linear_motion_at_irregular_times() {
    let mut rng = Rng(11);
    for every_nth in 1..=4 {
        // Irregular frame times (jittered 30 fps), keeping every n-th.
        let ts: Vec<f64> = (0..120)
            .map(|k| 50.0 + k as f64 / 30.0 + 0.01 * (rng.uniform() - 0.5))
            .step_by(every_nth)
            .collect();
        for (v_px_s, t0_s) in [(300.0, 51.234_567), (-80.0, 52.0), (1500.0, 50.9)] {
            let d = linear(&ts, v_px_s, t0_s);
            for refine in [Refine::TwoPoint, Refine::LocalFit, Refine::LocalQuadratic] {
                let c = find_crossing(&ts, &d, refine).unwrap();
                assert!(
                    (c.t_s - t0_s).abs() < 1e-9,
                    "every {every_nth}, {refine:?}: {c:?} vs {t0_s}"
                );
                assert!((c.rate_px_s - v_px_s).abs() < 1e-6 * v_px_s.abs(), "{c:?}");
                assert!(c.ssr_px2 < 1e-12 && c.bound_s < 1e-9, "{c:?}");
            }
        }
    }
}

#[test]
fn crossing_on_a_sample_or_between_duplicate_times() {
    let ts = [0.0, 0.1, 0.2, 0.2, 0.3, 0.5, 0.6];
    // Crossing exactly at a sample time.
    let d = linear(&ts, 100.0, 0.3);
    let c = find_crossing(&ts, &d, CHOSEN_REFINE).unwrap();
    assert!((c.t_s - 0.3).abs() < 1e-12, "{c:?}");
    // Crossing between two samples that share a timestamp upstream of it.
    let d = linear(&ts, -100.0, 0.25);
    let c = find_crossing(&ts, &d, CHOSEN_REFINE).unwrap();
    assert!((c.t_s - 0.25).abs() < 1e-12, "{c:?}");
}

#[test]
fn crossing_rejects_one_side_back_and_forth_and_standing_still() {
    let ts: Vec<f64> = (0..30).map(|k| k as f64 * 0.04).collect();
    // Never crosses (stays at positive distance).
    let d: Vec<f64> = ts.iter().map(|t| 50.0 + 100.0 * t).collect();
    assert_eq!(
        find_crossing(&ts, &d, CHOSEN_REFINE),
        Err(NoCrossing::NotCrossed)
    );
    // Crosses, turns, crosses back.
    let d: Vec<f64> = ts.iter().map(|t| 40.0 - 100.0 * (t - 0.6).abs()).collect();
    assert_eq!(
        find_crossing(&ts, &d, CHOSEN_REFINE),
        Err(NoCrossing::BackAndForth)
    );
    // Ends on the line, within the noise band: not a crossing.
    let d: Vec<f64> = ts.iter().map(|t| (-60.0 + 100.0 * t).min(0.5)).collect();
    assert_eq!(
        find_crossing(&ts, &d, CHOSEN_REFINE),
        Err(NoCrossing::NotCrossed)
    );
    assert_eq!(
        find_crossing(&[], &[], CHOSEN_REFINE),
        Err(NoCrossing::NotCrossed)
    );
}

#[test]
fn noise_flicker_at_the_line_is_one_crossing() {
    // Slow motion (60 px/s at 30 fps: 2 px a frame) with 1.5 px noise flips the sign several times
    // near the line; that is still one crossing, found close to the truth.
    let mut rng = Rng(12);
    let mut worst_s: f64 = 0.0;
    for _ in 0..50 {
        let ts: Vec<f64> = (0..60).map(|k| k as f64 / 30.0).collect();
        let d: Vec<f64> = linear(&ts, 60.0, 1.0)
            .iter()
            .map(|v| v + NOISE_PX * rng.gauss())
            .collect();
        let c = find_crossing(&ts, &d, CHOSEN_REFINE).unwrap();
        worst_s = worst_s.max((c.t_s - 1.0).abs());
    }
    // 1.5 px / 60 px/s = 25 ms per sample; the worst of 50 stays within a few of those.
    assert!(worst_s < 0.1, "worst crossing error {worst_s} s");
}

proptest! {
    /// The crossing time of exact linear motion is recovered for arbitrary sample times.
    #[test]
    fn crossing_time_of_linear_motion_is_recovered(
        t_first in -1e4f64..1e4,
        gaps in proptest::collection::vec(0.001f64..0.3, 3..60),
        frac in 0.0f64..1.0,
        v_px_s in prop_oneof![-3000.0f64..-20.0, 20.0f64..3000.0],
    ) {
        let ts: Vec<f64> = gaps.iter().scan(t_first, |t, g| { *t += g; Some(*t) }).collect();
        let (first, last) = (ts[0], ts[ts.len() - 1]);
        let t0_s = first + frac * (last - first);
        // Both ends clear of the 2 px band around the line.
        prop_assume!(v_px_s.abs() * (t0_s - first) > 2.5 && v_px_s.abs() * (last - t0_s) > 2.5);
        let d = linear(&ts, v_px_s, t0_s);
        for refine in [Refine::TwoPoint, Refine::LocalFit, Refine::LocalQuadratic] {
            let c = find_crossing(&ts, &d, refine).unwrap();
            prop_assert!((c.t_s - t0_s).abs() < 1e-7 * (1.0 + t0_s.abs()), "{:?} {:?}", refine, c);
        }
    }
}

#[test]
fn validate_reports_bad_lines() {
    let good = lines_for(&Camera::default());
    assert_eq!(good.validate(), Ok(()));
    let with = |f: &dyn Fn(&mut SpeedLines)| {
        let mut l = good.clone();
        f(&mut l);
        l.validate()
    };
    assert!(matches!(
        with(&|l| l.first_px[0][1] = f64::NAN),
        Err(SpeedLinesError::NotFinite { line: "first" })
    ));
    assert!(matches!(
        with(&|l| l.second_px[1] = l.second_px[0]),
        Err(SpeedLinesError::TooShort { line: "second", .. })
    ));
    for bad in [0.0, -3.0, f64::INFINITY, f64::NAN] {
        assert!(matches!(
            with(&|l| l.distance_m = bad),
            Err(SpeedLinesError::BadDistance { .. })
        ));
    }
    // An X across the road, and a line that reaches across the other's extension.
    assert_eq!(
        with(&|l| l.second_px = [l.first_px[0], [l.first_px[1][0], 0.0]]),
        Err(SpeedLinesError::Crossing)
    );
    assert_eq!(
        with(&|l| l.second_px = [[0.0, 0.0], [1900.0, 1000.0]]),
        Err(SpeedLinesError::Crossing)
    );
    let msg = with(&|l| l.distance_m = 0.0).unwrap_err().to_string();
    assert!(msg.contains("distance_m"), "{msg}");
}

#[test]
fn one_line_crossed_or_line_along_the_road_gives_nothing() {
    let cam = Camera::default();
    let mut rng = Rng(13);
    // Track ends between the lines (at 20 m): only the first line crossed.
    let mut est = estimator(&cam);
    let frames: Vec<(f64, BBox)> = drive(&cam, 50.0, false, 1, 0.0, 0.0, &mut rng)
        .into_iter()
        .filter(|(t_s, _)| *t_s < true_crossing_s(50.0, false, 20.0))
        .collect();
    assert!(run(&mut est, &frames, 1).is_empty());
    assert_eq!(est.held_tracks(), 0);
    // A "line" drawn along the road (parallel to the motion) is never crossed.
    let along = [
        cam.project([12.0, 0.0]).unwrap(),
        cam.project([32.0, 0.0]).unwrap(),
    ];
    let samples: Vec<(f64, [f64; 2])> = drive(&cam, 50.0, false, 1, 0.0, 0.0, &mut rng)
        .iter()
        .map(|(t, b)| (*t, [b.bottom_center().0 as f64, b.bottom_center().1 as f64]))
        .collect();
    let lines = SpeedLines {
        second_px: along,
        ..lines_for(&cam)
    };
    assert_eq!(
        measure_lines_with(&lines, 2, "car".into(), &samples, 250.0, CHOSEN_REFINE),
        None
    );
    let ts: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let d: Vec<f64> = samples
        .iter()
        .map(|s| signed_distance_px(along, s.1))
        .collect();
    assert_eq!(
        find_crossing(&ts, &d, CHOSEN_REFINE),
        Err(NoCrossing::NotCrossed)
    );
}

#[test]
fn reversing_across_a_line_gives_nothing() {
    let cam = Camera::default();
    let mut rng = Rng(14);
    let mut est = estimator(&cam);
    // Drives past both lines, then backs up over the second one.
    let mut frames = Vec::new();
    for k in 0..120 {
        let t_s = k as f64 / 30.0;
        let x = if t_s < 2.5 {
            13.0 + 6.0 * t_s
        } else {
            28.0 - 6.0 * (t_s - 2.5)
        };
        frames.push((t_s, car_box(&cam, [x, 1.75], NOISE_PX, &mut rng)));
    }
    assert!(run(&mut est, &frames, 1).is_empty());
}

/// Error statistics of a batch of `lines` measurements.
#[derive(Debug, Default)]
struct Stats {
    runs: usize,
    measured: usize,
    covered: usize,
    sum_sq_rel: f64,
    max_abs_err_kmh: f64,
    sum_half_width_kmh: f64,
}

impl Stats {
    fn add(&mut self, m: Option<&SpeedMeasurement>, truth_kmh: f64) {
        self.runs += 1;
        let Some(m) = m else { return };
        self.measured += 1;
        let err = m.speed_kmh - truth_kmh;
        self.sum_sq_rel += (err / truth_kmh).powi(2);
        self.max_abs_err_kmh = self.max_abs_err_kmh.max(err.abs());
        self.sum_half_width_kmh += (m.speed_ci95_kmh[1] - m.speed_ci95_kmh[0]) / 2.0;
        if (m.speed_ci95_kmh[0]..=m.speed_ci95_kmh[1]).contains(&truth_kmh) {
            self.covered += 1;
        }
    }
    fn rms_rel_pct(&self) -> f64 {
        100.0 * (self.sum_sq_rel / self.measured.max(1) as f64).sqrt()
    }
    fn coverage(&self) -> f64 {
        self.covered as f64 / self.measured.max(1) as f64
    }
    fn mean_half_width_kmh(&self) -> f64 {
        self.sum_half_width_kmh / self.measured.max(1) as f64
    }
}

/// Bottom-centre samples of a drive, as the estimator would hand them over (in-zone only).
fn zone_samples(est: &SpeedEstimator, frames: &[(f64, BBox)]) -> Vec<(f64, [f64; 2])> {
    frames
        .iter()
        .map(|(t, b)| (*t, [b.bottom_center().0 as f64, b.bottom_center().1 as f64]))
        .filter(|(_, p)| est.zone().contains(*p))
        .collect()
}

/// Scenario through the estimator: 200 seeded drives per case; every measurement within 5% of
/// the truth, the interval covering it in at least 90% of runs per case.
#[test]
fn scenario_speed_and_interval_coverage() {
    let cam = Camera::default();
    let mut est = estimator(&cam);
    let mut id = 0;
    for speed_kmh in [30.0, 60.0, 90.0] {
        for every_nth in 1..=4 {
            let mut stats = Stats::default();
            for seed in 0..200u64 {
                let mut rng = Rng(1000 + seed * 7919 + every_nth as u64);
                id += 1;
                let towards = seed % 2 == 1;
                let frames = drive(&cam, speed_kmh, towards, every_nth, 0.004, 0.0, &mut rng);
                let m = run(&mut est, &frames, id);
                assert!(m.len() <= 1, "{m:?}");
                if let Some(m) = m.first() {
                    assert_eq!(m.method, "lines");
                    assert_eq!(m.distance_m, 10.0);
                    let t1 = true_crossing_s(speed_kmh, towards, LINE_X_M[0]);
                    let t2 = true_crossing_s(speed_kmh, towards, LINE_X_M[1]);
                    let (lo, hi) = (t1.min(t2), t1.max(t2));
                    assert!((m.t_enter_s - lo).abs() < 0.05 && (m.t_exit_s - hi).abs() < 0.05);
                    assert!(
                        m.samples >= 4 && m.samples as usize <= frames.len(),
                        "{m:?}"
                    );
                }
                stats.add(m.first(), speed_kmh);
            }
            println!(
                "lines {speed_kmh} km/h every {every_nth}: measured {}/{}, rms {:.2}%, max |err| \
                 {:.2} km/h, mean ci95 half-width {:.2} km/h, coverage {:.1}%",
                stats.measured,
                stats.runs,
                stats.rms_rel_pct(),
                stats.max_abs_err_kmh,
                stats.mean_half_width_kmh(),
                100.0 * stats.coverage()
            );
            assert_eq!(stats.measured, stats.runs, "every drive is measured");
            assert!(
                stats.max_abs_err_kmh < 0.05 * speed_kmh,
                "{speed_kmh} km/h every {every_nth}: {stats:?}"
            );
            assert!(
                stats.coverage() >= 0.9,
                "{speed_kmh} every {every_nth}: {stats:?}"
            );
        }
    }
    assert_eq!(est.held_tracks(), 0);
}

/// Dropped frames (gaps of several frames) and timestamp jitter: still measured, same bounds.
#[test]
fn scenario_gaps_and_jitter() {
    let cam = Camera::default();
    let mut est = estimator(&cam);
    let mut stats = Stats::default();
    for seed in 0..200u64 {
        let mut rng = Rng(5000 + seed);
        let frames = drive(&cam, 60.0, seed % 2 == 0, 2, 0.008, 0.3, &mut rng);
        stats.add(run(&mut est, &frames, seed + 1).first(), 60.0);
    }
    println!(
        "lines 60 km/h every 2, 30% dropped, 8 ms jitter: {stats:?}, rms {:.2}%, coverage {:.1}%",
        stats.rms_rel_pct(),
        100.0 * stats.coverage()
    );
    // A drop can leave a single sample on one side of a line inside the zone: no measurement then.
    assert!(stats.measured >= 190, "{stats:?}");
    assert!(stats.max_abs_err_kmh < 0.1 * 60.0, "{stats:?}");
    assert!(stats.coverage() >= 0.9, "{stats:?}");
}

/// The kept refinement ([`CHOSEN_REFINE`]) is at least as accurate as the other on the scenarios.
#[test]
fn refinement_choice() {
    let cam = Camera::default();
    let est = estimator(&cam);
    let lines = lines_for(&cam);
    let mut rms = Vec::new();
    for refine in [Refine::TwoPoint, Refine::LocalFit, Refine::LocalQuadratic] {
        let mut all = Stats::default();
        for speed_kmh in [30.0, 90.0] {
            for every_nth in [1, 4] {
                let mut stats = Stats::default();
                for seed in 0..200u64 {
                    let mut rng = Rng(9000 + seed);
                    let frames = drive(
                        &cam,
                        speed_kmh,
                        seed % 2 == 0,
                        every_nth,
                        0.004,
                        0.0,
                        &mut rng,
                    );
                    let samples = zone_samples(&est, &frames);
                    let m = measure_lines_with(&lines, 1, "car".into(), &samples, 250.0, refine);
                    stats.add(m.as_ref(), speed_kmh);
                    all.add(m.as_ref(), speed_kmh);
                }
                println!(
                    "{refine:?} {speed_kmh} km/h every {every_nth}: rms {:.2}%, coverage {:.1}%, \
                     mean half-width {:.2} km/h",
                    stats.rms_rel_pct(),
                    100.0 * stats.coverage(),
                    stats.mean_half_width_kmh()
                );
            }
        }
        rms.push((refine, all.rms_rel_pct()));
    }
    let chosen = rms.iter().find(|r| r.0 == CHOSEN_REFINE).unwrap().1;
    let best = rms.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    assert!(chosen <= best, "{rms:?}");
}
