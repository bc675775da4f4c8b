//! `speedcamd bench`: one camera's whole pipeline over a video as fast as possible, with a
//! per-stage timing table.
//!
//! The benchmark runs the same code as `replay` and the daemon ([`run_source`]: the detector
//! from the config, the scheduler, tracker, speed stage and store), so its figures are the
//! daemon's. Two things differ, both so that a benchmark can run on a production device without
//! side effects:
//! - the store lives in a fresh temporary directory that is removed afterwards: the operator's
//!   `data_dir` is never opened (a running daemon holds its lock) nor written;
//! - with `[mqtt]` configured, events are published (so the publish stage is timed) under the
//!   device id `<device_id>-bench` and client id `<client id>-bench`: the benchmark neither takes
//!   over the daemon's MQTT session nor publishes into its topics.
//!
//! `--frames N` wraps the source in `FrameLimit`, which ends the stream after N frames.

use crate::config::{CameraConfig, Config};
use crate::frame::Frame;
use crate::service::{
    open_detector, pick_camera, run_source, start_sink, LoopEnd, LoopEnv, LoopOptions, RunSummary,
    SharedDetector,
};
use crate::source::{is_live_uri, DefaultOpener, Opener, Source, SourceCounters, SourceError};
use crate::stats::{Stage, StageSummary};
use crate::store::Store;
use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Time one camera's whole pipeline over a video as fast as possible: per-stage table
/// (count, min / median / p99 ms), frames/s and real-time factor. The store is a temporary
/// directory (data_dir is not touched); with [mqtt] events are published as <device_id>-bench.
// This doc is the help text: `[mqtt]` is the config table, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file.
    #[arg(long, default_value = super::SYSTEM_CONFIG)]
    pub config: PathBuf,
    /// Camera whose pipeline runs (default: the first).
    #[arg(long)]
    pub camera: Option<String>,
    /// The video (default: the camera's configured source).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Stop after this many frames (default: the whole video; required for live sources).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Print one JSON object with the same figures instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the per-stage timing report, as text or one JSON object, on stdout; fails when
/// events could not be stored in the temporary store.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = BenchOptions {
        camera: args.camera,
        video: args.video,
        max_frames: args.frames,
    };
    opts.validate()?;
    let cfg = super::load(&args.config)?;
    let report = bench(&cfg, &opts)?;
    let text = if args.json {
        format!("{}\n", report.to_json())
    } else {
        report.to_text()
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if report.summary.store_errors > 0 {
        eprintln!(
            "error: {} event(s) could not be stored in the temporary store",
            report.summary.store_errors
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// How long the benchmark waits at the end for the MQTT outbox to drain (only with `[mqtt]`).
/// Whatever is still queued then is discarded with the temporary store.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Suffix appended to the MQTT device id and client id while benchmarking.
pub(crate) const MQTT_ID_SUFFIX: &str = "-bench";

/// The per-frame cost excluding inference and decode that the pipeline aims for at 1280x720,
/// ms/frame (issue 5): the rest of the frame budget belongs to the detector.
pub(crate) const NON_INFERENCE_TARGET_MS_PER_FRAME: f64 = 2.0;

/// What `speedcamd bench` runs.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Camera whose pipeline (calibration, zone, source) is benchmarked; None: the first.
    pub camera: Option<String>,
    /// The video; None uses the camera's configured source.
    pub video: Option<PathBuf>,
    /// Stop after this many frames; None: the whole video. Required for live sources.
    pub max_frames: Option<u64>,
}

impl BenchOptions {
    /// Checks the options that need no config: `--frames` must be at least 1.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_frames == Some(0) {
            bail!(
                "--frames 0 is not allowed: give the number of frames to process, 1 or more, \
                 or leave --frames out to process the whole video"
            );
        }
        Ok(())
    }
}

/// A [`Source`] that ends the stream after `max_frames` frames (for `bench --frames`), so the
/// pipeline loop needs no frame limit of its own.
pub(crate) struct FrameLimit {
    inner: Box<dyn Source>,
    remaining: u64,
}

impl FrameLimit {
    /// Hands out at most `max_frames` frames of `inner`, then end of stream.
    pub(crate) fn new(inner: Box<dyn Source>, max_frames: u64) -> Self {
        FrameLimit {
            inner,
            remaining: max_frames,
        }
    }
}

impl Source for FrameLimit {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let frame = self.inner.next_frame()?;
        if frame.is_some() {
            self.remaining -= 1;
        }
        Ok(frame)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn counters(&self) -> SourceCounters {
        self.inner.counters()
    }
}

/// The figures of one benchmark run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Camera whose pipeline ran.
    pub camera: String,
    /// The video (or live source) that was read, as given.
    pub source: String,
    /// The detector's model id (file name and content hash), as stored with events.
    pub model_id: String,
    /// The backend and execution provider that ran, e.g. `tract-cpu`, `onnxruntime-cpu`.
    pub backend: String,
    /// The `--frames` limit, if any.
    pub max_frames: Option<u64>,
    /// The MQTT device id events were published as (`<device_id>-bench`), None without
    /// `[mqtt]`: then the publish stage did not run.
    pub mqtt_device_id: Option<String>,
    /// Counts and per-stage timings of the run.
    pub summary: RunSummary,
    /// Remarks for the reader (the video was shorter than `--frames`, the outbox did not drain).
    pub notes: Vec<String>,
}

impl BenchReport {
    /// The timing summary of `stage`; None when it did not run: no samples (e.g. store and
    /// publish when no vehicle finished), or publish without `[mqtt]`.
    pub fn stage(&self, stage: Stage) -> Option<StageSummary> {
        if stage == Stage::Publish && self.mqtt_device_id.is_none() {
            return None;
        }
        self.summary.times.summary(stage)
    }

    /// Seconds of video the frames cover: the span of their timestamps plus one mean frame
    /// interval (N frames at 30 fps cover N/30 s); 0 with fewer than two frames.
    pub(crate) fn video_covered_s(&self) -> f64 {
        let n = self.summary.frames;
        if n < 2 {
            return 0.0;
        }
        self.summary.video_s * n as f64 / (n - 1) as f64
    }

    /// Frames processed per wall-clock second, end to end (decode to store).
    pub fn fps(&self) -> f64 {
        self.summary.fps()
    }

    /// Video seconds processed per wall-clock second: above 1 keeps up with the camera.
    pub fn realtime_factor(&self) -> f64 {
        if self.summary.wall_s > 0.0 {
            self.video_covered_s() / self.summary.wall_s
        } else {
            0.0
        }
    }

    /// The stages counted in [`BenchReport::non_inference_ms_per_frame`]: every pipeline stage
    /// but decode (its own thread) and inference (the model), and not the latency figure.
    pub(crate) fn non_inference_stages() -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| !matches!(s, Stage::Decode | Stage::Inference | Stage::Latency))
            .collect()
    }

    /// Per-frame cost of the pipeline outside inference and decode, ms/frame: for each of
    /// `BenchReport::non_inference_stages` its total time over the run (the sum of
    /// its samples), added up and divided by the frames in. None
    /// without frames.
    pub fn non_inference_ms_per_frame(&self) -> Option<f64> {
        if self.summary.frames == 0 {
            return None;
        }
        let total_ms: f64 = Self::non_inference_stages()
            .into_iter()
            .filter_map(|s| self.stage(s))
            .map(|x| x.total_ms)
            .sum();
        Some(total_ms / self.summary.frames as f64)
    }

    /// The human-readable report: header, stage table, counts, throughput, derived cost.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "bench: camera {}, {}, model {} ({} backend){}\n",
            self.camera,
            self.source,
            self.model_id,
            self.backend,
            match &self.mqtt_device_id {
                Some(d) => format!(", publishing over MQTT as device {d}"),
                None => String::new(),
            }
        );
        out += &format!(
            "{:<12} {:>8} {:>9} {:>9} {:>9}\n",
            "stage", "count", "min ms", "median ms", "p99 ms"
        );
        for stage in Stage::ALL {
            out += &match self.stage(stage) {
                Some(x) => format!(
                    "{:<12} {:>8} {:>9.3} {:>9.3} {:>9.3}\n",
                    stage.name(),
                    x.count,
                    x.min_ms,
                    x.median_ms,
                    x.p99_ms
                ),
                None => format!(
                    "{:<12} {:>8} {:>9} {:>9} {:>9}\n",
                    stage.name(),
                    "-",
                    "-",
                    "-",
                    "-"
                ),
            };
        }
        out += &format!(
            "frames in {}, detected {}, skipped {}, dropped {}, detector errors {}; {} measurement(s), {} speeding\n",
            s.frames, s.detected, s.skipped, s.dropped, s.detect_errors, s.measurements, s.speeding
        );
        if let Some(t) = s.first_detection_s {
            out += &format!("first detection of anything at frame time {t:.3} s\n");
        }
        out += &format!(
            "{:.2} s of video in {:.2} s: {:.2} frames/s end to end, real-time factor {:.2}\n",
            self.video_covered_s(),
            s.wall_s,
            self.fps(),
            self.realtime_factor()
        );
        if let Some(ms) = self.non_inference_ms_per_frame() {
            let names: Vec<&str> = Self::non_inference_stages()
                .into_iter()
                .filter(|&st| self.stage(st).is_some())
                .map(Stage::name)
                .collect();
            out += &format!(
                "per-frame cost excluding inference and decode: {ms:.3} ms/frame ({}: summed stage time / frames in; target <= {NON_INFERENCE_TARGET_MS_PER_FRAME} ms at 1280x720)\n",
                names.join(" + ")
            );
        }
        for n in &self.notes {
            out += &format!("note: {n}\n");
        }
        out
    }

    /// The same figures as one JSON object: `stages` maps every stage name to
    /// `{count, min_ms, median_ms, p99_ms}` or null when it did not run.
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.summary;
        let stages: serde_json::Map<String, serde_json::Value> = Stage::ALL
            .into_iter()
            .map(|st| (st.name().to_string(), serde_json::json!(self.stage(st))))
            .collect();
        serde_json::json!({
            "camera": self.camera,
            "source": self.source,
            "model": self.model_id,
            "backend": self.backend,
            "max_frames": self.max_frames,
            "mqtt_device_id": self.mqtt_device_id,
            "frames": s.frames,
            "detected": s.detected,
            "skipped": s.skipped,
            "first_detection_s": s.first_detection_s,
            "dropped": s.dropped,
            "detect_errors": s.detect_errors,
            "measurements": s.measurements,
            "speeding": s.speeding,
            "store_errors": s.store_errors,
            "wall_s": s.wall_s,
            "video_s": self.video_covered_s(),
            "fps": self.fps(),
            "realtime_factor": self.realtime_factor(),
            "non_inference_ms_per_frame": self.non_inference_ms_per_frame(),
            "stages": stages,
            "notes": self.notes,
        })
    }
}

/// Runs the benchmark: loads the detector, opens the video (`opts.video`, else the camera's
/// source), runs it through the camera's pipeline with a temporary store and returns the
/// figures. The operator's `data_dir` is never touched.
pub fn bench(cfg: &Config, opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    opts.validate()?;
    let cam = pick_camera(cfg, opts.camera.as_deref())?;
    let uri = match &opts.video {
        Some(v) => v.display().to_string(),
        None => cam.source.clone(),
    };
    check_source(cfg, cam, &uri, opts)?;
    let detector = open_detector(cfg)?;
    let source = DefaultOpener::for_camera(cam)
        .open(&uri, cam.id.as_str().into())
        .with_context(|| format!("opening video {uri} for camera {}", cam.id))?;
    run_bench(cfg, cam, &uri, source, &detector, opts)
}

/// Refuses, before the model is loaded, a video that does not exist and a live source
/// without `--frames` (it would never end).
fn check_source(
    cfg: &Config,
    cam: &CameraConfig,
    uri: &str,
    opts: &BenchOptions,
) -> anyhow::Result<()> {
    if is_live_uri(uri) {
        if opts.max_frames.is_none() {
            bail!(
                "{} is a live source, which never ends: pass --frames N to stop after N frames, \
                 or --video with a recorded file",
                crate::source::redact_uri(uri)
            );
        }
        return Ok(());
    }
    if uri.contains("://") && !uri.starts_with("file://") {
        return Ok(()); // an unknown scheme: the opener names the supported ones
    }
    let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    if !path.is_file() {
        match &opts.video {
            Some(_) => bail!(
                "video {} not found: pass --video an existing video file",
                path.display()
            ),
            None => bail!(
                "video {} (source of camera {} in {}) not found: pass --video an existing video file or fix the camera's source",
                path.display(),
                cam.id,
                cfg.path.display()
            ),
        }
    }
    Ok(())
}

/// The benchmark proper, once the detector and the source are open: a temporary store, the
/// publisher when configured, the pipeline loop, the drain; the temporary store is removed
/// before returning.
fn run_bench(
    cfg: &Config,
    cam: &CameraConfig,
    uri: &str,
    source: Box<dyn Source>,
    detector: &SharedDetector,
    opts: &BenchOptions,
) -> anyhow::Result<BenchReport> {
    let tmp = TempDataDir::create()?;
    let cfg = bench_config(cfg, tmp.path());
    // Everything that holds the store (sink, publisher task, runtime) ends inside `run_in`, so
    // the directory is no longer in use when `tmp` removes it.
    let result = run_in(&cfg, cam, uri, source, detector, opts);
    drop(tmp);
    result
}

/// `cfg` with its store in `data_dir` and its MQTT identity suffixed with [`MQTT_ID_SUFFIX`].
fn bench_config(cfg: &Config, data_dir: &Path) -> Config {
    let mut cfg = cfg.clone();
    cfg.data_dir = data_dir.to_path_buf();
    if let Some(m) = &mut cfg.mqtt {
        m.client_id = Some(format!("{}{MQTT_ID_SUFFIX}", m.effective_client_id()));
        m.device_id = format!("{}{MQTT_ID_SUFFIX}", m.device_id);
        // The bench device must not appear in Home Assistant.
        m.home_assistant_discovery = false;
    }
    cfg
}

fn run_in(
    cfg: &Config,
    cam: &CameraConfig,
    uri: &str,
    source: Box<dyn Source>,
    detector: &SharedDetector,
    opts: &BenchOptions,
) -> anyhow::Result<BenchReport> {
    let live = is_live_uri(uri);
    let source: Box<dyn Source> = match opts.max_frames {
        Some(n) => Box::new(FrameLimit::new(source, n)),
        None => source,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = Store::open(&cfg.data_dir).with_context(|| {
        format!(
            "opening the benchmark's temporary store in {}",
            cfg.data_dir.display()
        )
    })?;
    let mut sink = start_sink(cfg, &store, rt.handle())?;
    let stop = AtomicBool::new(false);
    let env = LoopEnv {
        cam,
        cfg,
        detector,
        sink: &sink,
        stop: &stop,
        clock: &crate::clock::RealClock::default(),
        // Files: every frame, as replay. Live sources: latest frame wins, as the daemon.
        opts: LoopOptions::for_source(live, cam.reconnect.stall_timeout),
    };
    let (mut summary, end) = run_source(&env, source, &mut |_| {});
    match end {
        LoopEnd::EndOfStream | LoopEnd::Stopped => {}
        LoopEnd::Stalled { after_s } => bail!(
            "{} delivered no frame for {after_s:.1} s: check that the camera is streaming",
            crate::source::redact_uri(uri)
        ),
        LoopEnd::Failed(e) => return Err(e.into()),
    }
    let mut notes = Vec::new();
    if let Some(n) = opts.max_frames {
        if summary.frames < n {
            notes.push(format!(
                "--frames {n} is more than the video has: processed the whole video ({} frames)",
                summary.frames
            ));
        }
    }
    summary.drained = match sink.take_publisher() {
        Some(p) => {
            let start = Instant::now();
            let drained = p.shutdown_blocking(DRAIN_TIMEOUT);
            if !drained {
                notes.push(format!(
                    "the MQTT outbox did not drain within {:.0} s; the rest is discarded with the temporary store",
                    start.elapsed().as_secs_f64()
                ));
            }
            drained
        }
        None => true,
    };
    let model_id = model_id(detector);
    drop(sink);
    drop(store);
    drop(rt);
    Ok(BenchReport {
        camera: cam.id.clone(),
        source: crate::source::redact_uri(uri),
        model_id,
        // The execution provider that actually ran (e.g. onnxruntime-cpu after a TensorRT
        // fallback), not just the configured backend.
        backend: detector.lock(false).provider(),
        max_frames: opts.max_frames,
        mqtt_device_id: cfg.mqtt.as_ref().map(|m| m.device_id.clone()),
        summary,
        notes,
    })
}

/// The shared detector's model id; the gate is held only to read it.
fn model_id(detector: &SharedDetector) -> String {
    detector.lock(false).model_id().to_string()
}

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
struct TempDataDir(PathBuf);

impl TempDataDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("speedcam-bench-{}", ulid::Ulid::new()));
        std::fs::create_dir(&path).with_context(|| {
            format!(
                "creating the benchmark's temporary store {}: set TMPDIR to a writable directory",
                path.display()
            )
        })?;
        Ok(TempDataDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(
                target: "speedcam::service::bench",
                err = %e,
                "cannot remove the benchmark's temporary store {}",
                self.0.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::tests::{fixture_config, null_detector, TestFrames};

    fn frames(n: u64) -> Box<dyn Source> {
        Box::new(TestFrames::ending(n))
    }

    #[test]
    fn frame_limit_ends_the_stream_after_n_frames() {
        let mut src = FrameLimit::new(frames(10), 3);
        let mut seqs = Vec::new();
        while let Some(f) = src.next_frame().unwrap() {
            seqs.push(f.seq);
        }
        assert_eq!(seqs, [0, 1, 2]);
        assert!(src.next_frame().unwrap().is_none());
        // A limit beyond the video: the whole video.
        let mut src = FrameLimit::new(frames(2), 5);
        let mut n = 0;
        while src.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(src.describe(), "test frames");
    }

    #[test]
    fn zero_frames_is_refused_with_the_fix() {
        let opts = BenchOptions {
            max_frames: Some(0),
            ..Default::default()
        };
        let msg = opts.validate().unwrap_err().to_string();
        assert!(
            msg.contains("--frames 0") && msg.contains("1 or more"),
            "{msg}"
        );
        assert!(BenchOptions::default().validate().is_ok());
    }

    #[test]
    fn live_source_needs_a_frame_limit_and_missing_files_are_named() {
        let (cfg, _dir) = fixture_config("rtsp://cam/x");
        let cam = &cfg.cameras[0];
        let opts = BenchOptions::default();
        let msg = check_source(&cfg, cam, "rtsp://u:pw@cam/x", &opts)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--frames") && !msg.contains("pw"), "{msg}");
        let limited = BenchOptions {
            max_frames: Some(5),
            ..Default::default()
        };
        assert!(check_source(&cfg, cam, "rtsp://cam/x", &limited).is_ok());
        let msg = check_source(&cfg, cam, "/nonexistent/x.mp4", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/nonexistent/x.mp4") && msg.contains("--video"),
            "{msg}"
        );
    }

    #[test]
    fn bench_runs_the_pipeline_in_a_temporary_store_and_reports_every_stage() {
        let (cfg, dir) = fixture_config("synthetic.mp4");
        let opts = BenchOptions {
            max_frames: Some(12),
            ..Default::default()
        };
        let report = run_bench(
            &cfg,
            &cfg.cameras[0],
            "synthetic.mp4",
            frames(30),
            &null_detector(),
            &opts,
        )
        .unwrap();
        assert!(!cfg.data_dir.exists(), "the config's data_dir was created");
        assert!(dir.path().read_dir().unwrap().next().is_none());
        let s = &report.summary;
        assert_eq!((s.frames, s.detected + s.skipped), (12, 12));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!(report.model_id, "null");
        // 12 frames at 30 fps cover 0.4 s.
        assert!((report.video_covered_s() - 0.4).abs() < 1e-9);
        assert!(report.fps() > 0.0 && report.realtime_factor() > 0.0);
        assert!(report.stage(Stage::Track).is_some());
        assert!(report.stage(Stage::Publish).is_none(), "no [mqtt]");
        let json = report.to_json();
        let stages = json["stages"].as_object().unwrap();
        assert_eq!(stages.len(), Stage::ALL.len());
        assert!(stages["publish"].is_null());
        assert!(stages["track"]["median_ms"].as_f64().is_some());
        assert_eq!(json["frames"], 12);
        assert!(json["non_inference_ms_per_frame"].as_f64().unwrap() >= 0.0);
        let text = report.to_text();
        assert!(text.contains("publish"), "{text}");
        assert!(text.contains("frames in 12, detected"), "{text}");
    }

    #[test]
    fn a_limit_beyond_the_video_runs_it_all_and_says_so() {
        let (cfg, _dir) = fixture_config("synthetic.mp4");
        let opts = BenchOptions {
            max_frames: Some(100),
            ..Default::default()
        };
        let report = run_bench(
            &cfg,
            &cfg.cameras[0],
            "synthetic.mp4",
            frames(5),
            &null_detector(),
            &opts,
        )
        .unwrap();
        assert_eq!(report.summary.frames, 5);
        assert_eq!(report.notes.len(), 1);
        assert!(report.notes[0].contains("whole video (5 frames)"));
        assert!(report.to_text().contains("note: --frames 100"));
    }

    #[test]
    fn non_inference_cost_adds_the_other_stages_per_frame_in() {
        let mut summary = RunSummary {
            frames: 4,
            ..Default::default()
        };
        for _ in 0..4 {
            summary.times.record(Stage::Decode, 5.0);
            summary.times.record(Stage::Inference, 80.0);
            summary.times.record(Stage::Latency, 90.0);
            summary.times.record(Stage::Preprocess, 1.0);
            summary.times.record(Stage::Track, 0.25);
            summary.times.record(Stage::Publish, 7.0);
        }
        // One stored event in four frames.
        summary.times.record(Stage::Store, 2.0);
        let mut report = BenchReport {
            camera: "c".into(),
            source: "v.mp4".into(),
            model_id: "m".into(),
            backend: "tract".into(),
            max_frames: None,
            mqtt_device_id: None,
            summary,
            notes: Vec::new(),
        };
        // (4 x 1.0 + 4 x 0.25 + 1 x 2.0) / 4; publish does not run without [mqtt].
        assert_eq!(report.non_inference_ms_per_frame(), Some(1.75));
        report.mqtt_device_id = Some("dev1-bench".into());
        assert_eq!(report.non_inference_ms_per_frame(), Some(8.75));
    }

    #[test]
    fn bench_config_keeps_the_daemon_mqtt_identity_free() {
        let (mut cfg, _dir) = fixture_config("synthetic.mp4");
        cfg.mqtt = Some(crate::publish::MqttConfig {
            url: "mqtt://127.0.0.1:1".into(),
            base_topic: "speedcam".into(),
            device_id: "dev1".into(),
            client_id: None,
            keepalive_s: 5,
            publish_measurements: true,
            home_assistant_discovery: true,
            home_assistant_prefix: "homeassistant".into(),
            tls: None,
            username: None,
            password: None,
        });
        let b = bench_config(&cfg, Path::new("/tmp/x"));
        let m = b.mqtt.unwrap();
        assert_eq!(
            (m.device_id.as_str(), m.effective_client_id().as_str()),
            ("dev1-bench", "speedcamd-dev1-bench")
        );
        assert_eq!(b.data_dir, Path::new("/tmp/x"));
        assert!(!m.home_assistant_discovery);
    }
}
