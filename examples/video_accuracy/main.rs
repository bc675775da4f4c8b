//! Rendered-video speed accuracy benchmark (issue 20): synthetic scenes rendered to H.264 by
//! `speedcam-synth`, replayed through the daemon's real pipeline (`replay`: decode, the tract
//! detector on every frame, tracker, speed stage, events) and scored against the truth, per
//! family, condition and true class. With `--fit FILE` it instead learns the detector's box
//! correction (`src/detect/box_correction.rs`) from the `fit` family and writes it to FILE.
//!
//! ```sh
//! cargo run --release --example video_accuracy -- [--family standard|heldout|all] [--scenes N]
//!     [--duration S] [--adaptive] [--box-correction auto|off|PATH] [--model PATH]
//!     [--work DIR] [--per-vehicle]
//! cargo run --release --example video_accuracy -- --fit models/nanodet-g-416.onnx.contact.toml
//!     [--model models/nanodet-g-416.onnx] [--scenes N] [--backend tract|onnxruntime]
//! ```
//!
//! Scenes are rendered into `--work DIR` (default: a temporary directory) and reused when the
//! directory already holds the same scene, so a second run (e.g. with `--box-correction off`)
//! only replays. The `heldout` family has other cameras and seeds: never tune or fit on it.

mod fit;
mod report;
mod scenes;

use report::{Outcome, Stats};
use scenes::Family;
use speedcam::cmds::replay::{replay_with, ReplayOptions};
use speedcam::event::{Event, EventType};
use speedcam::service::{open_detector, SharedDetector, Verdict};
use speedcam_synth::{SceneTruth, VehicleClass};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USAGE: &str = "video_accuracy [--family standard|heldout|all] [--scenes N] [--duration S] \
[--adaptive] [--box-correction auto|off|PATH] [--model PATH] [--backend tract|onnxruntime] \
[--ort-library PATH] [--work DIR] [--per-vehicle] [--fit OUT.toml] [--demo]";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Args {
    families: Vec<Family>,
    scenes: u32,
    duration_s: f64,
    adaptive: bool,
    box_correction: String,
    model: PathBuf,
    backend: String,
    ort_library: Option<PathBuf>,
    work: Option<PathBuf>,
    per_vehicle: bool,
    fit: Option<PathBuf>,
    demo: bool,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        families: vec![Family::Standard, Family::Heldout],
        scenes: 0,
        duration_s: 8.0,
        adaptive: false,
        box_correction: "auto".into(),
        model: repo().join("models/nanodet-g-416.onnx"),
        backend: "tract".into(),
        ort_library: None,
        work: None,
        per_vehicle: false,
        fit: None,
        demo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || {
            it.next()
                .ok_or(format!("{k} needs a value; usage: {USAGE}"))
        };
        match k.as_str() {
            "--family" => {
                let v = val()?;
                a.families = match v.as_str() {
                    "all" => vec![Family::Standard, Family::Heldout],
                    s => vec![Family::parse(s).ok_or(format!("unknown family {s}: {USAGE}"))?],
                }
            }
            "--scenes" => a.scenes = val()?.parse().map_err(|e| format!("--scenes: {e}"))?,
            "--duration" => {
                a.duration_s = val()?.parse().map_err(|e| format!("--duration: {e}"))?
            }
            "--adaptive" => a.adaptive = true,
            "--box-correction" => a.box_correction = val()?,
            "--model" => a.model = PathBuf::from(val()?),
            "--backend" => a.backend = val()?,
            "--ort-library" => a.ort_library = Some(PathBuf::from(val()?)),
            "--work" => a.work = Some(PathBuf::from(val()?)),
            "--per-vehicle" => a.per_vehicle = true,
            "--fit" => a.fit = Some(PathBuf::from(val()?)),
            "--demo" => a.demo = true,
            "--bench" => {} // cargo bench passes it
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}; usage: {USAGE}")),
        }
    }
    if a.scenes == 0 {
        a.scenes = if a.fit.is_some() { 16 } else { 10 };
    }
    a.model = std::fs::canonicalize(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    Ok(a)
}

/// The daemon config of one rendered scene: the detector as asked, the scene's camera table,
/// every frame (or the adaptive scheduler), and a fresh store.
fn scene_config(args: &Args, dir: &Path, adaptive: bool, correction: &str) -> String {
    let camera = std::fs::read_to_string(dir.join("camera.toml")).unwrap_or_default();
    let library = match &args.ort_library {
        Some(l) => format!(
            "[detector.onnxruntime]\nproviders = [\"cpu\"]\nlibrary = \"{}\"\nwarmup_runs = 1\n",
            l.display()
        ),
        None if args.backend == "onnxruntime" => {
            "[detector.onnxruntime]\nproviders = [\"cpu\"]\nwarmup_runs = 1\n".into()
        }
        None => String::new(),
    };
    let schedule = if adaptive {
        "\n[cameras.schedule]\nadaptive = true\nmax_detect_hz = 10.0\n"
    } else {
        "\n[cameras.schedule]\nadaptive = false\n"
    };
    format!(
        "device_id = \"bench\"\ndata_dir = \"data\"\n\n[detector]\nmodel = \"{model}\"\n\
         family = \"nanodet\"\nbackend = \"{backend}\"\nscore_threshold = 0.35\n\
         box_correction = \"{correction}\"\n{library}\n{camera}{schedule}",
        model = args.model.display(),
        backend = args.backend,
    )
}

/// A rendered scene ready to replay.
struct Rendered {
    family: Family,
    index: u32,
    dir: PathBuf,
    truth: SceneTruth,
    skipped: Vec<(VehicleClass, String)>,
    render_s: f64,
}

/// Renders (or reuses) scene `index` of `family` under `root`.
fn render(root: &Path, family: Family, index: u32, duration_s: f64) -> Result<Rendered, String> {
    let start = Instant::now();
    let gen = scenes::scene(family, index, duration_s).ok_or(format!(
        "{} scene {index}: no camera passed the checks",
        family.name()
    ))?;
    let dir = root.join(format!("{}-{index:03}", family.name()));
    // The spec as rendered, compared as text (a float parsed back from truth.json may differ
    // in its last bit).
    let spec_json = serde_json::to_string(&gen.spec).map_err(|e| e.to_string())?;
    let same = std::fs::read_to_string(dir.join("spec.json")).is_ok_and(|s| s == spec_json);
    if let (true, Ok(old)) = (same, speedcam_synth::load_truth(&dir.join("truth.json"))) {
        if dir.join("scene.mp4").is_file() {
            return Ok(Rendered {
                family,
                index,
                dir,
                truth: old,
                skipped: gen.skipped,
                render_s: 0.0,
            });
        }
    }
    let _ = std::fs::remove_file(dir.join("spec.json"));
    let truth =
        speedcam_synth::render(&gen.spec, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("spec.json"), spec_json).map_err(|e| e.to_string())?;
    Ok(Rendered {
        family,
        index,
        dir,
        truth,
        skipped: gen.skipped,
        render_s: start.elapsed().as_secs_f64(),
    })
}

/// Renders `jobs` on a thread of its own, one scene ahead of the consumer.
fn render_ahead(
    root: PathBuf,
    jobs: Vec<(Family, u32)>,
    duration_s: f64,
) -> mpsc::Receiver<Result<Rendered, String>> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for (f, i) in jobs {
            if tx.send(render(&root, f, i, duration_s)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Replays one rendered scene with `detector` under one condition; returns the measurements.
fn replay_scene(
    args: &Args,
    r: &Rendered,
    detector: &SharedDetector,
    adaptive: bool,
) -> Result<(Vec<Event>, u64, u64), String> {
    let tag = if adaptive { "adaptive" } else { "every" };
    let cfg_path = r.dir.join(format!("speedcam-{tag}.toml"));
    let text = scene_config(args, &r.dir, adaptive, &args.box_correction)
        .replace("data_dir = \"data\"", &format!("data_dir = \"data-{tag}\""));
    std::fs::write(&cfg_path, text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(r.dir.join(format!("data-{tag}")));
    let cfg = speedcam::config::load(&cfg_path).map_err(|e| format!("{e}"))?;
    let opts = ReplayOptions {
        camera: None,
        video: None,
        drain_timeout: Duration::ZERO,
        realtime: false,
    };
    let mut measured = Vec::new();
    let sum = replay_with(&cfg, &opts, detector, &mut |v: &Verdict| {
        if v.event.kind == EventType::Measurement {
            measured.push(v.event.clone());
        }
    })
    .map_err(|e| format!("{}: {e:#}", cfg_path.display()))?;
    Ok((measured, sum.frames, sum.detected))
}

fn open_bench_detector(
    args: &Args,
    dir: &Path,
    correction: &str,
) -> Result<SharedDetector, String> {
    let cfg_path = dir.join("detector.toml");
    std::fs::write(&cfg_path, scene_config(args, dir, false, correction))
        .map_err(|e| e.to_string())?;
    let cfg = speedcam::config::load(&cfg_path).map_err(|e| format!("{e}"))?;
    open_detector(&cfg).map_err(|e| format!("{e:#}"))
}

/// `--demo`: the bundled demo (config/demo.toml, media/demo) through the same replay as
/// `speedcamd demo`, with the detector and box correction asked for, and its truth table.
fn demo(args: &Args, root: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(repo().join("config/demo.toml")).map_err(|e| e.to_string())?;
    let text = text
        .replace(
            "../models/nanodet-g-416.onnx",
            &args.model.display().to_string(),
        )
        .replace(
            "../media/demo/scene.mp4",
            &repo().join("media/demo/scene.mp4").display().to_string(),
        )
        .replace("../data/demo", "data-demo")
        .replace(
            "backend = \"tract\"",
            &format!(
                "backend = \"tract\"\nbox_correction = \"{}\"",
                args.box_correction
            ),
        );
    let cfg_path = root.join("demo.toml");
    std::fs::write(&cfg_path, text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(root.join("data-demo"));
    let cfg = speedcam::config::load(&cfg_path).map_err(|e| format!("{e}"))?;
    let detector = open_detector(&cfg).map_err(|e| format!("{e:#}"))?;
    let opts = ReplayOptions {
        camera: None,
        video: None,
        drain_timeout: Duration::ZERO,
        realtime: false,
    };
    let mut measured = Vec::new();
    replay_with(&cfg, &opts, &detector, &mut |v: &Verdict| {
        if v.event.kind == EventType::Measurement {
            measured.push(v.event.clone());
        }
    })
    .map_err(|e| format!("{e:#}"))?;
    let truth = speedcam::truth::load_truth(&repo().join("media/demo/truth.json"))?;
    println!(
        "demo with {} (box correction {}):\n{}",
        detector.lock(false).model_id(),
        args.box_correction,
        speedcam::truth::compare_table(&truth, &measured)
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        speedcam::cmds::init_logging();
    }
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let tmp;
    let root = match &args.work {
        Some(w) => {
            std::fs::create_dir_all(w).map_err(|e| e.to_string())?;
            w.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let start = Instant::now();
    if let Some(out) = &args.fit {
        return fit::run(args, &root, out);
    }
    if args.demo {
        return demo(args, &root);
    }
    println!(
        "video accuracy: {} scene(s) of {:.0} s per family, model {}, backend {}, box correction {}",
        args.scenes,
        args.duration_s,
        args.model.display(),
        args.backend,
        args.box_correction
    );
    let jobs: Vec<(Family, u32)> = args
        .families
        .iter()
        .flat_map(|&f| (0..args.scenes).map(move |i| (f, i)))
        .collect();
    let rx = render_ahead(root.clone(), jobs, args.duration_s);
    let mut detector: Option<SharedDetector> = None;
    let conditions: &[bool] = if args.adaptive {
        &[false, true]
    } else {
        &[false]
    };
    let mut stats: Vec<Stats> = Vec::new();
    let (mut render_s, mut replay_s, mut frames) = (0.0, 0.0, 0u64);
    for r in rx {
        let r = r?;
        render_s += r.render_s;
        if detector.is_none() {
            let d = open_bench_detector(args, &r.dir, &args.box_correction)?;
            let g = d.lock(false);
            println!("detector {} ({})", g.model_id(), g.provider());
            drop(g);
            detector = Some(d);
        }
        let det = detector.as_ref().expect("opened above");
        for &adaptive in conditions {
            let t = Instant::now();
            let (measured, n, detected) = replay_scene(args, &r, det, adaptive)?;
            replay_s += t.elapsed().as_secs_f64();
            frames += n;
            let cond = if adaptive {
                "adaptive 10 Hz"
            } else {
                "every frame"
            };
            let key = (r.family, cond);
            let s = match stats.iter_mut().find(|s| (s.family, s.condition) == key) {
                Some(s) => s,
                None => {
                    stats.push(Stats::new(r.family, cond));
                    stats.last_mut().expect("pushed")
                }
            };
            s.scenes += 1;
            s.frames += n;
            s.detected += detected;
            s.skipped.extend(r.skipped.iter().map(|(c, _)| *c));
            let outcome = Outcome::score(&r.truth, &measured);
            if args.per_vehicle {
                print!("{}", outcome.per_vehicle_text(r.family, r.index, cond));
            }
            s.add(outcome);
        }
        eprintln!(
            "  {} scene {:>3}: {}x{} {:.0} fps, {} lanes, zone {:.1} m, {} vehicles",
            r.family.name(),
            r.index,
            r.truth.spec.width_px,
            r.truth.spec.height_px,
            r.truth.spec.fps,
            r.truth.spec.lanes,
            r.truth.spec.zone_length_m,
            r.truth.vehicles.len()
        );
    }
    for s in &stats {
        print!("\n{}", s.table());
    }
    println!(
        "\ntimings: total {:.0} s; rendering {:.0} s (on its own thread, overlapping replay); \
         replay {:.0} s for {frames} frames ({:.1} frames/s)",
        start.elapsed().as_secs_f64(),
        render_s,
        replay_s,
        frames as f64 / replay_s.max(1e-9)
    );
    Ok(())
}
