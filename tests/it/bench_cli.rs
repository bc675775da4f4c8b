//! `speedcamd bench` with the real binary, the bundled model and the demo scene: the JSON report's
//! counts and stage timings, that the config's data_dir is never touched, and the error messages.

use crate::util::{copy_demo_toml, repo, speedcamd};
use std::process::Output;

/// Runs `speedcamd ARGS` in the repository root.
fn run(args: &[&str]) -> Output {
    speedcamd()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running speedcamd")
}

/// Runs `bench ... --json` and parses its one JSON object.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = run(&[&["bench", "--json"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("bench --json printed no JSON object ({e}): {stdout}"))
}

#[test]
fn bench_reports_every_stage_of_twenty_demo_frames() {
    let v = bench_json(&["--config", "config/demo.toml", "--frames", "20"]);
    let count = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(count("frames"), 20, "{v}");
    assert_eq!(count("detected") + count("skipped"), 20, "{v}");
    assert!(v["fps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["realtime_factor"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["non_inference_ms_per_frame"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert!(v["model"].as_str().unwrap().contains("nanodet"), "{v}");
    let stages = v["stages"].as_object().unwrap();
    for stage in [
        "decode",
        "preprocess",
        "inference",
        "postprocess",
        "track",
        "speed",
    ] {
        let median = stages[stage]["median_ms"].as_f64();
        assert!(median.is_some_and(|m| m > 0.0), "{stage}: {v}");
    }
    for stage in ["store", "publish", "latency"] {
        assert!(stages.contains_key(stage), "{stage}: {v}");
    }
    // The demo config has no [mqtt]: nothing is published.
    assert!(stages["publish"].is_null(), "{v}");
}

#[test]
fn bench_never_creates_the_configured_store() {
    let dir = tempfile::tempdir().unwrap();
    // config/demo.toml with its data_dir in `dir` and absolute model and video paths.
    let config = copy_demo_toml(
        dir.path(),
        "demo.toml",
        &repo().join("media/demo/scene.mp4"),
        &repo().join("models/nanodet-g-416.onnx"),
        |t| t,
    );
    let config = config.to_str().unwrap();
    let v = bench_json(&["--config", config, "--frames", "3"]);
    assert_eq!(v["frames"], 3, "{v}");
    assert!(
        !dir.path().join("data").exists(),
        "bench created the config's data_dir"
    );
}

#[test]
fn bench_errors_name_the_fix() {
    let err = |args: &[&str]| {
        let out = run(&[&["bench", "--config", "config/demo.toml"], args].concat());
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let msg = err(&["--video", "/nonexistent/clip.mp4"]);
    assert!(
        msg.contains("/nonexistent/clip.mp4") && msg.contains("not found"),
        "{msg}"
    );
    let msg = err(&["--camera", "nope"]);
    assert!(msg.contains("\"nope\"") && msg.contains("synth"), "{msg}");
    let msg = err(&["--frames", "0"]);
    assert!(
        msg.contains("--frames 0") && msg.contains("1 or more"),
        "{msg}"
    );
    let msg = err(&["--video", "rtsp://127.0.0.1:9/x"]);
    assert!(
        msg.contains("live source") && msg.contains("--frames"),
        "{msg}"
    );
}
