//! End to end: `speedcamd analyze --mot` on detections written from the bundled scene's ground
//! truth (the exact boxes of every vehicle, at every frame and at every 2nd frame), with the real binary and
//! the demo config. Checks the speeds against truth, that every measurement carries its interval,
//! and that strict mode raises speeding only when the interval's low end is over the threshold.

use crate::util::{repo, speed_of, speedcamd, Rng};
use speedcam::event::{Event, EventType};
use speedcam::truth::{load_truth, match_measurements, SceneTruth};
use std::path::{Path, PathBuf};

fn truth() -> SceneTruth {
    load_truth(&repo().join("media/demo/truth.json")).expect("media/demo/truth.json")
}

/// Box-edge noise of the written detections, px.
const NOISE_PX: f64 = 1.0;

/// Writes `det.txt` (MOTChallenge, every `every`-th frame, mostly visible boxes, each edge with
/// [`NOISE_PX`] Gaussian noise, seeded, so the boxes look like a detector's) and `ts.txt` (one capture time per frame) for the scene.
fn write_mot(truth: &SceneTruth, dir: &Path, every: u32) -> (PathBuf, PathBuf) {
    let mut rows: Vec<(u32, String)> = Vec::new();
    let mut noise = Rng(0x9e37_79b9_7f4a_7c15);
    for v in &truth.vehicles {
        for s in &v.samples {
            if s.frame % every != 0 || s.occluded > 0.5 {
                continue;
            }
            let [l, t, r, b] = s.bbox_px.map(|x| x + noise.gauss(NOISE_PX));
            rows.push((
                s.frame + 1,
                format!(
                    "{},-1,{l:.3},{t:.3},{:.3},{:.3},0.9,-1,-1,-1\n",
                    s.frame + 1,
                    r - l,
                    b - t
                ),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    let det = dir.join("det.txt");
    std::fs::write(&det, rows.into_iter().map(|r| r.1).collect::<String>()).unwrap();
    let ts = dir.join("ts.txt");
    let times: String = truth
        .frame_times_s
        .iter()
        .map(|t| format!("{t}\n"))
        .collect();
    std::fs::write(&ts, times).unwrap();
    (det, ts)
}

fn analyze(config: &Path, det: &Path, ts: &Path) -> Vec<Event> {
    let out = speedcamd()
        .args(["analyze", "--json", "--config"])
        .arg(config)
        .arg("--mot")
        .arg(det)
        .arg("--timestamps")
        .arg(ts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn measurements(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.kind == EventType::Measurement)
        .cloned()
        .collect()
}

#[test]
fn analyze_measures_truth_boxes_at_full_and_half_rate() {
    let truth = truth();
    let dir = tempfile::tempdir().unwrap();
    let config = repo().join("config/demo.toml");
    for (every, bound_kmh) in [(1, 1.0), (2, 1.5)] {
        let (det, ts) = write_mot(&truth, dir.path(), every);
        let events = analyze(&config, &det, &ts);
        let measured = measurements(&events);
        let (matches, spurious) = match_measurements(&truth, &measured);
        assert!(spurious.is_empty(), "every {every}: spurious {spurious:?}");
        for m in &matches {
            let v = m.true_kmh;
            let e = m
                .measured
                .as_ref()
                .unwrap_or_else(|| panic!("every {every}: vehicle {} not measured", m.vehicle_id));
            let speed = speed_of(e);
            assert!(
                (speed - v).abs() < bound_kmh,
                "every {every}: vehicle {} {v} measured {speed}",
                m.vehicle_id,
            );
            let [lo, hi] = e.speed_ci95_kmh.expect("interval on every measurement");
            assert!(lo <= speed && speed <= hi && hi - lo < 5.0, "{e:?}");
            assert_eq!(e.method, "fit");
            assert!(e.samples >= 5, "{e:?}");
        }
    }
}

#[test]
fn strict_mode_raises_speeding_only_above_the_interval() {
    let truth = truth();
    let dir = tempfile::tempdir().unwrap();
    let (det, ts) = write_mot(&truth, dir.path(), 1);
    let demo = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let demo = demo.replace("../", &format!("{}/", repo().display()));
    let write = |name: &str, tolerance_kmh: f64, strict: bool| {
        let text = demo.replace(
            "tolerance_kmh = 3.0",
            &format!("tolerance_kmh = {tolerance_kmh}\nstrict = {strict}"),
        );
        let config = dir.path().join(name);
        std::fs::write(&config, text).unwrap();
        config
    };
    // Put the threshold between the fastest vehicle's interval low end and its speed: speeding
    // by value, not by the interval.
    let base = measurements(&analyze(&write("base.toml", 3.0, false), &det, &ts));
    let fastest = base
        .iter()
        .max_by(|a, b| speed_of(a).total_cmp(&speed_of(b)))
        .expect("measurements");
    let [lo, _] = fastest.speed_ci95_kmh.unwrap();
    let threshold_kmh = (lo + speed_of(fastest)) / 2.0;
    let tolerance_kmh = threshold_kmh - fastest.limit_kmh;
    let mut raised_count = Vec::new();
    for strict in [false, true] {
        let config = write(&format!("strict-{strict}.toml"), tolerance_kmh, strict);
        let events = analyze(&config, &det, &ts);
        let speeding: Vec<&Event> = events
            .iter()
            .filter(|e| e.kind == EventType::Speeding)
            .collect();
        for m in measurements(&events) {
            let [lo, _] = m.speed_ci95_kmh.unwrap();
            let judged = if strict { lo } else { speed_of(&m) };
            let raised = speeding
                .iter()
                .any(|s| s.measurement_id == Some(m.event_id.clone()));
            assert_eq!(raised, judged > threshold_kmh, "strict {strict}: {m:?}");
            assert_eq!(m.strict, strict);
        }
        raised_count.push(speeding.len());
    }
    assert!(
        raised_count[0] > raised_count[1],
        "the fastest vehicle is speeding by value but not by its interval: {raised_count:?}"
    );
}

#[test]
fn analyze_rejects_bad_input_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let det = dir.path().join("det.txt");
    std::fs::write(&det, "1,-1,10,10,50,40,0.9\n2,-1,10,10,50\n").unwrap();
    // `analyze` on the demo config and `det`, with `times` naming the frame times: its stderr.
    let failure = |times: &[&str]| {
        let out = speedcamd()
            .arg("analyze")
            .args(times)
            .arg("--config")
            .arg(repo().join("config/demo.toml"))
            .arg("--mot")
            .arg(&det)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = failure(&["--fps", "30"]);
    assert!(
        err.contains("det.txt:2") && err.contains("frame,id,x,y,w,h,conf"),
        "{err}"
    );

    let err = failure(&[]);
    assert!(
        err.contains("--fps") && err.contains("--timestamps"),
        "{err}"
    );
}

#[test]
fn lines_method_times_vehicles_between_two_lines() {
    let truth = truth();
    let dir = tempfile::tempdir().unwrap();
    let (det, ts) = write_mot(&truth, dir.path(), 1);
    let demo_path = repo().join("config/demo.toml");
    let cfg = speedcam::config::load(&demo_path).expect("demo config");
    let h = &cfg.cameras[0].homography;
    // Two lines across the road (constant ground x), inside the zone with a 2 m margin.
    let xs: Vec<f64> = truth.zone_world_m.iter().map(|p| p[0]).collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::INFINITY, f64::min) + 2.0,
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - 2.0,
    );
    let line = |x: f64| {
        let a = h.world_to_image([x, -3.0]).unwrap();
        let b = h.world_to_image([x, 3.0]).unwrap();
        format!("[[{}, {}], [{}, {}]]", a[0], a[1], b[0], b[1])
    };
    let demo = std::fs::read_to_string(&demo_path).unwrap();
    let text = demo
        .replace("../", &format!("{}/", repo().display()))
        .replace(
            "tolerance_kmh = 3.0",
            "tolerance_kmh = 3.0\nmethod = \"lines\"",
        )
        + &format!(
            "\n[cameras.lines]\nfirst = {}\nsecond = {}\ndistance_m = {}\n",
            line(x0),
            line(x1),
            x1 - x0
        );
    let config = dir.path().join("lines.toml");
    std::fs::write(&config, text).unwrap();
    let measured = measurements(&analyze(&config, &det, &ts));
    let (matches, spurious) = match_measurements(&truth, &measured);
    assert!(spurious.is_empty(), "spurious {spurious:?}");
    let mut n = 0;
    for m in &matches {
        let Some(e) = &m.measured else { continue };
        n += 1;
        assert_eq!(e.method, "lines");
        assert!((e.distance_m - (x1 - x0)).abs() < 1e-3, "{e:?}");
        // Crossing instants between noisy boxes: about 1% of speed.
        let bound_kmh = 0.5 + 0.03 * m.true_kmh;
        let speed = speed_of(e);
        assert!(
            (speed - m.true_kmh).abs() < bound_kmh,
            "vehicle {} {} measured {speed}",
            m.vehicle_id,
            m.true_kmh,
        );
        let [lo, hi] = e.speed_ci95_kmh.unwrap();
        assert!(lo < speed && speed < hi, "{e:?}");
    }
    assert!(n >= matches.len() - 1, "measured {n} of {}", matches.len());
}
