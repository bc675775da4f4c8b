//! The ONNX Runtime backend on the CPU provider with a real libonnxruntime.so:
//! - the INT8 U8 model finds what the FP32 model finds (>= 90% of FP32 boxes with score >= 0.3
//!   matched at IoU 0.5, same class) on the sample images and on frames of the demo scene;
//! - provider fallback: ["tensorrt", "cpu"] on a CPU-only library runs on the CPU and says so,
//!   ["tensorrt"] alone is an error naming what to install;
//! - a missing or foreign library is an error, not a panic.
//!
//! The library comes from `ORT_DYLIB_PATH` (.ci/run fetches it). Without it the tests print
//! `SKIPPED: ort` and pass, unless `SPEEDCAM_REQUIRE` names `ort` (CI), where they fail (see
//! `util/mod.rs`).
//! `SPEEDCAM_ORT_INT8_MODEL` replaces the INT8 model (e.g. one made by models/make_int8.py).
//! Run with `--nocapture` for the match fractions and the FP32 / INT8 inference times.

use crate::util::{need, repo, Tool};
use speedcam::detect::engine::Engine;
use speedcam::detect::onnxruntime::{OrtEngine, OrtProvider, OrtSettings};
use speedcam::detect::{open, DetectError, Detection, Detector, DetectorConfig};
use speedcam::frame::Frame;
use speedcam::source::open_file;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// This module's tests run one at a time, so the printed timings are not from CPUs shared
/// among them.
static SERIAL: Mutex<()> = Mutex::new(());

/// Detections below this score are not compared.
const COMPARE_SCORE: f32 = 0.3;
/// Fraction of FP32 boxes the INT8 model must find.
const MIN_MATCHED: f64 = 0.9;

/// The ONNX Runtime library, or None after `SKIPPED: ort` (the skip rule).
fn library() -> Option<PathBuf> {
    let found = match std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => Err(format!("ORT_DYLIB_PATH={} is not a file", p.display())),
        None => Err("ORT_DYLIB_PATH is not set".to_string()),
    };
    need(Tool::Ort, found)
}

fn settings(lib: &Path, providers: &[OrtProvider], cache: &Path) -> OrtSettings {
    OrtSettings {
        providers: providers.to_vec(),
        library: Some(lib.to_path_buf()),
        cache_dir: Some(cache.to_path_buf()),
        warmup_runs: 1,
        ..OrtSettings::default()
    }
}

fn int8_model() -> PathBuf {
    std::env::var_os("SPEEDCAM_ORT_INT8_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models/nanodet-g-416.int8-qdq-u8.onnx"))
}

fn detector(lib: &Path, model: PathBuf) -> Box<dyn Detector> {
    let cfg = DetectorConfig {
        model,
        backend: "onnxruntime".into(),
        score_threshold: COMPARE_SCORE,
        onnxruntime: OrtSettings {
            providers: vec![OrtProvider::Cpu],
            library: Some(lib.to_path_buf()),
            warmup_runs: 1,
            ..OrtSettings::default()
        },
        ..DetectorConfig::default()
    };
    open(&cfg).unwrap_or_else(|e| panic!("{}: {e}", cfg.model.display()))
}

fn images() -> Vec<(String, Frame)> {
    let dir = repo().join("tests/data/images");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let img = image::open(dir.join(&n)).unwrap().to_rgb8();
            (n, Frame::from_rgb_image("t".into(), 0, 0, &img))
        })
        .collect()
}

/// Every `step`-th frame of the demo scene (synthetic vehicles on a road), decoded by speedcam's
/// own file source.
fn scene_frames(step: u64) -> Vec<(String, Frame)> {
    let mut src = open_file(&repo().join("media/demo/scene.mp4"), "demo".into()).unwrap();
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        if f.seq % step == 0 {
            out.push((format!("scene.mp4#{}", f.seq), f));
        }
    }
    assert!(out.len() >= 10, "only {} scene frames", out.len());
    out
}

/// FP32 boxes (score >= COMPARE_SCORE) that `int8` found too: (matched, total).
fn matched(fp32: &[Detection], int8: &[Detection]) -> (usize, usize) {
    let reference: Vec<_> = fp32.iter().filter(|d| d.score >= COMPARE_SCORE).collect();
    let hits = reference
        .iter()
        .filter(|r| {
            int8.iter()
                .any(|d| d.class_id == r.class_id && d.bbox.iou(&r.bbox) >= 0.5)
        })
        .count();
    (hits, reference.len())
}

fn compare(
    what: &str,
    frames: &[(String, Frame)],
    fp32: &mut dyn Detector,
    int8: &mut dyn Detector,
) -> (usize, usize) {
    let (mut hits, mut total) = (0, 0);
    for (name, f) in frames {
        let (a, _) = fp32.detect(f).unwrap();
        let (b, _) = int8.detect(f).unwrap();
        let (h, t) = matched(&a, &b);
        if h < t {
            println!("  {name}: INT8 found {h} of {t} FP32 boxes; FP32 {a:?}; INT8 {b:?}");
        }
        hits += h;
        total += t;
    }
    println!(
        "{what}: INT8 matched {hits}/{total} FP32 boxes (score >= {COMPARE_SCORE}, IoU >= 0.5, same class) = {:.1}%",
        100.0 * hits as f64 / total.max(1) as f64
    );
    (hits, total)
}

#[test]
fn int8_u8_model_finds_what_fp32_finds() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lib) = library() else {
        return;
    };
    let mut fp32 = detector(&lib, repo().join("models/nanodet-g-416.onnx"));
    let mut int8 = detector(&lib, int8_model());
    println!("INT8 model: {}", int8_model().display());
    let (hi, ti) = compare("sample images", &images(), fp32.as_mut(), int8.as_mut());
    let (hs, ts) = compare(
        "demo scene frames",
        &scene_frames(12),
        fp32.as_mut(),
        int8.as_mut(),
    );
    assert!(
        ti >= 4,
        "the FP32 model found only {ti} boxes in the sample images"
    );
    assert!(
        ts >= 10,
        "the FP32 model found only {ts} boxes in the scene frames"
    );
    let fraction = (hi + hs) as f64 / (ti + ts) as f64;
    println!(
        "overall: {}/{} = {:.1}%",
        hi + hs,
        ti + ts,
        100.0 * fraction
    );
    assert!(
        fraction >= MIN_MATCHED,
        "INT8 matched {:.1}% of FP32 boxes, want >= {:.0}%",
        100.0 * fraction,
        100.0 * MIN_MATCHED
    );
}

fn median_ms(engine: &mut OrtEngine, input: &[f32], runs: usize) -> f64 {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            engine.run(input, 416).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[runs / 2]
}

#[test]
fn engine_reports_model_info_and_times_fp32_vs_int8() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lib) = library() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let s = settings(&lib, &[OrtProvider::Cpu], cache.path());
    let mut fp32 = OrtEngine::load(&repo().join("models/nanodet-g-416.onnx"), &s, None).unwrap();
    let mut int8 = OrtEngine::load(&int8_model(), &s, None).unwrap();
    for e in [&fp32, &int8] {
        let info = e.info();
        assert_eq!(info.input_name, "data");
        assert_eq!(info.input_shape, [Some(1), Some(3), Some(416), Some(416)]);
        assert_eq!(info.outputs.len(), 1);
        assert_eq!(info.outputs[0].0, "output");
        assert_eq!(info.outputs[0].1, [Some(1), Some(3549), Some(124)]);
        assert_eq!(e.provider(), "onnxruntime-cpu");
    }
    assert!(
        !fp32.info().metadata.is_empty() || !int8.info().metadata.is_empty(),
        "the models carry metadata_props (onnxsim keys)"
    );
    // A wrong input length is an error, not a crash.
    assert!(matches!(
        fp32.run(&[0.0; 10], 416),
        Err(DetectError::InputLength { values: 10, .. })
    ));

    // A real letterboxed picture, so INT8 does real work.
    let (_, frame) = images().remove(0);
    let mut lb = speedcam::detect::letterbox::Letterboxer::new(416);
    let mut input = vec![0.0f32; lb.input_len()];
    lb.run(&frame, &mut input).unwrap();
    let out = fp32.run(&input, 416).unwrap();
    assert_eq!(out[0].shape, [1, 3549, 124]);
    assert_eq!(out[0].data.len(), 3549 * 124);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (a, b) = (
        median_ms(&mut fp32, &input, 21),
        median_ms(&mut int8, &input, 21),
    );
    println!(
        "ONNX Runtime CPU, {threads} threads, 416x416, median of 21 runs: FP32 {a:.1} ms, INT8 U8 {b:.1} ms ({:.2}x)",
        a / b
    );
}

#[test]
fn tensorrt_falls_back_to_cpu_on_a_cpu_only_library() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lib) = library() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let model = repo().join("models/nanodet-g-416.onnx");
    let s = settings(
        &lib,
        &[OrtProvider::TensorRt, OrtProvider::Cpu],
        cache.path(),
    );
    let engine = OrtEngine::load(&model, &s, None).unwrap();
    assert_eq!(engine.provider(), "onnxruntime-cpu");
    // The failed TensorRT attempt leaves no empty engine directory behind.
    let left: Vec<_> = std::fs::read_dir(cache.path().join("tensorrt"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    let s = settings(&lib, &[OrtProvider::TensorRt], cache.path());
    let err = OrtEngine::load(&model, &s, None).unwrap_err();
    let msg = err.to_string();
    println!("[\"tensorrt\"] alone: {msg}");
    assert!(matches!(err, DetectError::Load { .. }), "{msg}");
    assert!(msg.contains("tensorrt"), "{msg}");
    assert!(msg.contains("TensorRT needs"), "{msg}");
    assert!(msg.contains("\"cpu\""), "{msg}");

    let s = settings(&lib, &[OrtProvider::Cuda], cache.path());
    let msg = OrtEngine::load(&model, &s, None).unwrap_err().to_string();
    assert!(msg.contains("CUDA needs"), "{msg}");
}

/// Needs no ONNX Runtime at all: the library is checked before anything is loaded.
#[test]
fn a_missing_or_foreign_library_is_an_error_not_a_panic() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared object").unwrap();
    let model = repo().join("models/nanodet-g-416.onnx");
    for lib in [dir.path().join("missing/libonnxruntime.so"), fake] {
        let s = settings(&lib, &[OrtProvider::Cpu], dir.path());
        let result = std::panic::catch_unwind(|| OrtEngine::load(&model, &s, None));
        let err = match result {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => panic!("{} loaded", lib.display()),
            Err(_) => panic!("loading {} panicked", lib.display()),
        };
        let msg = err.to_string();
        println!("{}: {msg}", lib.display());
        assert!(matches!(err, DetectError::Load { .. }), "{msg}");
        assert!(msg.contains(&lib.display().to_string()), "{msg}");
        assert!(msg.contains("install"), "{msg}");
    }
    // Through the config path too, via detect::open.
    let cfg = DetectorConfig {
        model,
        backend: "onnxruntime".into(),
        onnxruntime: settings(
            Path::new("/nonexistent/libonnxruntime.so"),
            &[OrtProvider::Cpu],
            dir.path(),
        ),
        ..DetectorConfig::default()
    };
    let Err(err) = open(&cfg) else {
        panic!("opened with a missing library")
    };
    assert!(
        err.to_string().contains("/nonexistent/libonnxruntime.so"),
        "{err}"
    );
}
