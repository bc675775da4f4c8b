//! Wires the pipeline together: sources, the shared detector, per-camera pipelines, the sink.
//!
//! Decoding runs on its own thread per camera and hands frames over a bounded channel
//! (capacity 2), so decode overlaps inference; the detector is shared by all cameras behind a
//! mutex. `replay` runs one file as fast as possible; `run` is the daemon.

pub mod analyze;
pub mod bench;
pub mod camera;
pub mod handoff;
pub mod sink;
pub mod snapshot;
pub mod supervisor;

use crate::config::{CameraConfig, Config};
use crate::detect::Detector;
use crate::frame::Frame;
use crate::publish::{Publisher, Topics};
use crate::source::{DefaultOpener, Opener, Source, SourceError};
use crate::stats::{Stage, StageTimes};
use crate::store::Store;
use anyhow::{bail, Context};
pub use camera::{CameraPipeline, Verdict};
use handoff::{Handoff, HandoffMode, Received};
pub use sink::EventSink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A detector shared by every camera of the daemon.
pub type SharedDetector = Arc<Mutex<Box<dyn Detector>>>;

/// What a finished camera loop or replay did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Frames decoded.
    pub frames: u64,
    /// Frames the detector ran on.
    pub detected: u64,
    /// Frames the scheduler let pass without detection (the tracker predicted across them).
    pub skipped: u64,
    /// Measurement records produced.
    pub measurements: u64,
    /// Speeding records produced.
    pub speeding: u64,
    /// Verdicts the store refused (disk full, ...): logged, counted.
    pub store_errors: u64,
    /// Detector failures: logged, counted, the frame is tracked as skipped.
    pub detect_errors: u64,
    /// Live frames replaced by a newer one before detection reached them (latest frame wins).
    pub dropped: u64,
    /// Wall time of the loop, s.
    pub wall_s: f64,
    /// Span of frame times processed, s.
    pub video_s: f64,
    /// Per-stage timings.
    pub times: StageTimes,
    /// Whether the outbox was empty when the run ended (always true without MQTT).
    pub drained: bool,
}

impl RunSummary {
    /// Adds another connection's figures (counts, times; wall and video spans add up).
    pub fn add(&mut self, o: &RunSummary) {
        self.frames += o.frames;
        self.detected += o.detected;
        self.skipped += o.skipped;
        self.measurements += o.measurements;
        self.speeding += o.speeding;
        self.store_errors += o.store_errors;
        self.detect_errors += o.detect_errors;
        self.dropped += o.dropped;
        self.wall_s += o.wall_s;
        self.video_s += o.video_s;
        self.times.merge(&o.times);
        self.drained = o.drained;
    }

    /// Frames processed per wall-clock second.
    pub fn fps(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.frames as f64 / self.wall_s
        } else {
            0.0
        }
    }
}

/// Opens the data directory's store.
pub fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(&cfg.data_dir).with_context(|| {
        format!(
            "opening the store in data_dir {} (set data_dir in {})",
            cfg.data_dir.display(),
            cfg.path.display()
        )
    })
}

/// Opens the detector the config names.
pub fn open_detector(cfg: &Config) -> anyhow::Result<SharedDetector> {
    let d = crate::detect::open(&cfg.detector).with_context(|| {
        format!(
            "loading detector.model {} (set in {})",
            cfg.detector.model.display(),
            cfg.path.display()
        )
    })?;
    Ok(Arc::new(Mutex::new(d)))
}

/// Starts the publisher when `[mqtt]` is configured.
pub fn start_publisher(
    cfg: &Config,
    store: &Store,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<Option<(Publisher, Topics)>> {
    let Some(m) = &cfg.mqtt else {
        return Ok(None);
    };
    let p = Publisher::spawn(m.clone(), store.clone(), rt)
        .with_context(|| format!("starting MQTT publisher for {}", m.url))?;
    let topics = p.topics().clone();
    Ok(Some((p, topics)))
}

/// Finds a camera by id, or the first one.
pub fn pick_camera<'a>(cfg: &'a Config, id: Option<&str>) -> anyhow::Result<&'a CameraConfig> {
    match id {
        None => cfg.cameras.first().context("the config has no [[cameras]]"),
        Some(id) => cfg.cameras.iter().find(|c| c.id == id).with_context(|| {
            let ids: Vec<&str> = cfg.cameras.iter().map(|c| c.id.as_str()).collect();
            format!(
                "no camera {id:?} in {}: configured are {ids:?}",
                cfg.path.display()
            )
        }),
    }
}

/// How [`run_source`] hands frames from the decoder to detection, and when it gives up waiting.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    /// Hand-off policy: every frame (files) or latest wins (live cameras).
    pub handoff: HandoffMode,
    /// No frame for this long ends the loop with [`LoopEnd::Stalled`]; None waits forever.
    pub stall_timeout: Option<Duration>,
}

impl LoopOptions {
    /// Files: every frame, no stall limit. Live sources: latest wins, reopened after `stall`.
    pub fn for_source(live: bool, stall: Duration) -> Self {
        if live {
            LoopOptions {
                handoff: HandoffMode::LatestWins,
                stall_timeout: Some(stall),
            }
        } else {
            LoopOptions {
                handoff: HandoffMode::EveryFrame,
                stall_timeout: None,
            }
        }
    }
}

/// Why [`run_source`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopEnd {
    /// The source has no more frames (end of file, or a live stream that ended).
    EndOfStream,
    /// `stop` was set.
    Stopped,
    /// No frame arrived for `after_s` seconds (the source is wedged or silent).
    Stalled {
        /// Seconds waited.
        after_s: f64,
    },
    /// The source failed; the message says why.
    Failed(String),
}

/// Runs one camera's frames through detection, tracking, speed and the sink until the source
/// ends or `stop` is set, and says why it stopped ([`camera_loop`] wraps it for files).
#[allow(clippy::too_many_arguments)]
pub fn run_source(
    cam: &CameraConfig,
    cfg: &Config,
    source: Box<dyn Source>,
    detector: &SharedDetector,
    sink: &EventSink,
    stop: &AtomicBool,
    opts: LoopOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<(RunSummary, LoopEnd)> {
    let model_id = lock(detector).model_id().to_string();
    let mut pipe = CameraPipeline::new(cam.clone(), cfg.tracker.clone(), &cfg.device_id, &model_id);
    let mut sum = RunSummary::default();
    let started = Instant::now();
    let handoff = Arc::new(Handoff::new(opts.handoff));
    let describe = source.describe();
    let decoder = {
        let handoff = handoff.clone();
        std::thread::Builder::new()
            .name(format!("decode-{}", cam.id))
            .spawn(move || decode_thread(source, &handoff))
            .context("spawning decode thread")?
    };
    let mut first_t: Option<f64> = None;
    let mut last_t = 0.0;
    let mut waited = Duration::ZERO;
    const SLICE: Duration = Duration::from_millis(200);
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break LoopEnd::Stopped;
        }
        let (item, handed_at) = match handoff.recv_timeout(SLICE) {
            Received::Item(item, at) => {
                waited = Duration::ZERO;
                (item, at)
            }
            Received::Closed => break LoopEnd::EndOfStream,
            Received::Timeout => {
                waited += SLICE;
                match opts.stall_timeout {
                    Some(limit) if waited >= limit => {
                        break LoopEnd::Stalled {
                            after_s: waited.as_secs_f64(),
                        }
                    }
                    _ => continue,
                }
            }
        };
        let (frame, decode_ms) = match item {
            Ok(x) => x,
            Err(SourceError::Stalled { after_s, .. }) => break LoopEnd::Stalled { after_s },
            Err(e) => break LoopEnd::Failed(format!("reading {describe}: {e}")),
        };
        sum.frames += 1;
        sum.times.record(Stage::Decode, decode_ms);
        first_t.get_or_insert(frame.pts_s());
        last_t = frame.pts_s();
        let detections = {
            let mut d = lock(detector);
            match d.detect(&frame) {
                Ok((dets, t)) => {
                    sum.detected += 1;
                    sum.times.record(Stage::Preprocess, t.preprocess_ms);
                    sum.times.record(Stage::Inference, t.inference_ms);
                    sum.times.record(Stage::Postprocess, t.postprocess_ms);
                    let latency_ms = handed_at.elapsed().as_secs_f64() * 1e3 + decode_ms;
                    sum.times.record(Stage::Latency, latency_ms);
                    Some(dets)
                }
                Err(e) => {
                    sum.detect_errors += 1;
                    tracing::warn!(camera = %cam.id, frame = frame.seq, "detector failed: {e}");
                    None
                }
            }
        };
        let verdicts = pipe.process(&frame, detections.as_deref(), &mut sum.times);
        deliver(verdicts, sink, &mut sum, on_verdict);
    };
    handoff.close_consumer();
    sum.dropped = handoff.dropped();
    if matches!(end, LoopEnd::Stalled { .. }) {
        // The decode thread may be blocked inside the source; it exits on its next hand-off.
        tracing::warn!(camera = %cam.id, "leaving a stalled decode thread for {describe} to finish on its own");
    } else {
        let _ = decoder.join();
    }
    deliver(pipe.finish(), sink, &mut sum, on_verdict);
    sum.wall_s = started.elapsed().as_secs_f64();
    sum.video_s = first_t.map(|f| last_t - f).unwrap_or(0.0);
    Ok((sum, end))
}

/// Runs a file (every frame) through one camera's pipeline; a source error is an error.
pub fn camera_loop(
    cam: &CameraConfig,
    cfg: &Config,
    source: Box<dyn Source>,
    detector: &SharedDetector,
    sink: &EventSink,
    stop: &AtomicBool,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    let opts = LoopOptions::for_source(false, Duration::MAX);
    let (sum, end) = run_source(cam, cfg, source, detector, sink, stop, opts, on_verdict)?;
    match end {
        LoopEnd::Failed(e) => bail!(e),
        _ => Ok(sum),
    }
}

fn deliver(
    verdicts: Vec<Verdict>,
    sink: &EventSink,
    sum: &mut RunSummary,
    on_verdict: &mut dyn FnMut(&Verdict),
) {
    for mut v in verdicts {
        match sink.accept(&mut v, &mut sum.times) {
            Ok(()) => {
                match v.event.kind {
                    crate::event::EventType::Measurement => sum.measurements += 1,
                    crate::event::EventType::Speeding => sum.speeding += 1,
                }
                on_verdict(&v);
            }
            Err(e) => {
                sum.store_errors += 1;
                tracing::error!(event = %v.event.event_id, "cannot store event: {e}");
            }
        }
    }
}

type DecodedItem = Result<(Frame, f64), SourceError>;

fn decode_thread(mut source: Box<dyn Source>, handoff: &Handoff<DecodedItem>) {
    loop {
        let start = Instant::now();
        let item = match source.next_frame() {
            Ok(Some(f)) => Ok((f, start.elapsed().as_secs_f64() * 1e3)),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if !handoff.send(item) || failed {
            break;
        }
    }
    handoff.close_producer();
}

/// Locks the shared detector; a panic in another camera's thread must not stop this one.
fn lock(d: &SharedDetector) -> std::sync::MutexGuard<'_, Box<dyn Detector>> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options of `replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Camera whose calibration and zone apply (default: the first).
    pub camera: Option<String>,
    /// The video; None uses the camera's configured source.
    pub video: Option<std::path::PathBuf>,
    /// How long to wait at the end for the outbox to drain.
    pub drain_timeout: Duration,
}

/// Replays a video through one camera's pipeline as fast as possible, stores every verdict,
/// publishes over MQTT when configured and waits (bounded) for the outbox to drain.
pub fn replay(
    cfg: &Config,
    opts: &ReplayOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    let cam = pick_camera(cfg, opts.camera.as_deref())?;
    let uri = match &opts.video {
        Some(v) => v.display().to_string(),
        None => cam.source.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = open_store(cfg)?;
    let detector = open_detector(cfg)?;
    let source = DefaultOpener::for_camera(cam)
        .open(&uri, cam.id.as_str().into())
        .with_context(|| format!("opening video {uri} for camera {}", cam.id))?;
    let (publisher, topics) = match start_publisher(cfg, &store, rt.handle())? {
        Some((p, t)) => (Some(p), Some(t)),
        None => (None, None),
    };
    let publish_measurements = cfg.mqtt.as_ref().is_some_and(|m| m.publish_measurements);
    let mut sink = EventSink::new(store.clone(), publisher, topics, publish_measurements);
    let stop = AtomicBool::new(false);
    let mut sum = camera_loop(cam, cfg, source, &detector, &sink, &stop, on_verdict)?;
    sum.drained = match sink.take_publisher() {
        Some(p) => {
            let start = Instant::now();
            let drained = p.shutdown_blocking(opts.drain_timeout);
            tracing::info!(
                drained,
                outbox = store.outbox_len(),
                "publisher stopped after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            drained
        }
        None => true,
    };
    store.flush().context("flushing the store")?;
    Ok(sum)
}

/// Checks that a video path exists before handing it to the source (a clearer error).
pub fn check_video(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "video {} not found: pass an existing MP4 file",
            path.display()
        );
    }
    Ok(())
}

/// Runs the daemon: every camera on its own thread sharing one detector, until SIGTERM or
/// Ctrl-C; then drains the outbox (bounded) and exits. A camera whose source fails is retried
/// with exponential backoff; a file source that ends stops its camera only.
pub fn run(cfg: &Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = open_store(cfg)?;
    let detector = open_detector(cfg)?;
    let (publisher, topics) = match start_publisher(cfg, &store, rt.handle())? {
        Some((p, t)) => (Some(p), Some(t)),
        None => (None, None),
    };
    let publish_measurements = cfg.mqtt.as_ref().is_some_and(|m| m.publish_measurements);
    let sink = Arc::new(EventSink::new(
        store.clone(),
        publisher,
        topics,
        publish_measurements,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        rt.spawn(async move {
            wait_for_shutdown_signal().await;
            tracing::info!("shutdown requested");
            stop.store(true, Ordering::Relaxed);
        });
    }
    tracing::info!(cameras = cfg.cameras.len(), "speedcamd running");
    let mut threads = Vec::new();
    for cam in cfg.cameras.clone() {
        let (cfg, detector, sink, stop) =
            (cfg.clone(), detector.clone(), sink.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("camera-{}", cam.id))
                .spawn(move || camera_thread(&cam, &cfg, &detector, &sink, &stop))
                .context("spawning camera thread")?,
        );
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for t in threads {
        let _ = t.join();
    }
    let mut sink =
        Arc::try_unwrap(sink).map_err(|_| anyhow::anyhow!("camera threads still hold the sink"))?;
    if let Some(p) = sink.take_publisher() {
        let drained = p.shutdown_blocking(Duration::from_secs(10));
        tracing::info!(drained, outbox = store.outbox_len(), "publisher stopped");
    }
    store.flush().context("flushing the store")?;
    Ok(())
}

/// One camera's life in the daemon: the supervisor opens, streams and reopens its source
/// until shutdown; state changes are logged and published retained at `<camera>/state`.
fn camera_thread(
    cam: &CameraConfig,
    cfg: &Config,
    detector: &SharedDetector,
    sink: &EventSink,
    stop: &AtomicBool,
) {
    let clock = crate::clock::RealClock::default();
    let opener = DefaultOpener::for_camera(cam);
    let report = |state: &supervisor::CameraState| {
        tracing::info!(camera = %cam.id, state = ?state, "camera state");
        if let Some(p) = sink.publisher() {
            p.set_camera_state(&cam.id, &state.payload(&cam.id));
        }
    };
    let sup = supervisor::Supervisor {
        cam,
        cfg,
        opener: &opener,
        detector,
        sink,
        stop,
        clock: &clock,
        policy: cam.reconnect,
        report: &report,
    };
    let totals = sup.run(&mut |v| {
        tracing::info!(camera = %v.event.camera, kind = ?v.event.kind, speed_kmh = v.event.speed_kmh, track = v.event.track_id, "verdict");
    });
    tracing::info!(camera = %cam.id, connections = totals.connections, failures = totals.failures, frames = totals.sum.frames, dropped = totals.sum.dropped, "camera stopped");
}

/// Resolves on SIGTERM or Ctrl-C.
async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures for pipeline tests that need no model and no video.
    use super::*;
    use crate::detect::{DetectError, DetectTimings, Detection};

    /// A config with one camera (the demo calibration) reading `source`, data in a temp dir.
    pub fn fixture_config(source: &str) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let demo =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
                .expect("config/demo.toml");
        let text = demo
            .replace("\"../media/demo/scene.mp4\"", &format!("{source:?}"))
            .replace(
                "\"../data/demo\"",
                &format!("{:?}", dir.path().join("data")),
            )
            .replace("\"../models/", "\"models/");
        let cfg = crate::config::parse(
            &text,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"),
        )
        .expect("fixture config parses");
        (cfg, dir)
    }

    /// A detector that finds nothing, instantly or after `delay`.
    pub struct NullDetector {
        /// Time each call takes.
        pub delay: Duration,
    }

    impl Detector for NullDetector {
        fn detect(&mut self, _: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            std::thread::sleep(self.delay);
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "null"
        }
    }

    /// A shared [`NullDetector`] without delay.
    pub fn null_detector() -> SharedDetector {
        Arc::new(Mutex::new(Box::new(NullDetector {
            delay: Duration::ZERO,
        })))
    }

    /// A sink storing into the config's data dir, without MQTT.
    pub fn memory_sink(cfg: &Config) -> EventSink {
        EventSink::new(open_store(cfg).expect("store"), None, None, false)
    }

    /// A live camera at `fps`: frame k is "captured" at `origin + k / fps` (the source sleeps
    /// until then, or hands it out late when the consumer held it up).
    pub struct RealTimeSource {
        pub origin: Instant,
        pub fps: f64,
        pub frames: u64,
        pub seq: u64,
    }

    impl Source for RealTimeSource {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.seq == self.frames {
                return Ok(None);
            }
            let due = self.origin + Duration::from_secs_f64(self.seq as f64 / self.fps);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let f = tiny_frame(self.seq, self.seq as f64 / self.fps);
            self.seq += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "real-time test camera".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// A 32x32 black frame at `t_s`.
    pub fn tiny_frame(seq: u64, t_s: f64) -> Frame {
        Frame {
            camera: "cam".into(),
            seq,
            pts_ns: (t_s * 1e9).round() as i64,
            wall: time::OffsetDateTime::UNIX_EPOCH,
            width: 32,
            height: 32,
            format: crate::frame::PixelFormat::Rgb8,
            data: vec![0u8; 32 * 32 * 3].into(),
        }
    }

    /// Takes `delay` per frame and records capture-to-detection latency: now minus the frame's
    /// capture instant (`origin + pts`).
    struct SlowDetector {
        origin: Instant,
        delay: Duration,
        latencies_ms: Arc<Mutex<Vec<f64>>>,
    }

    impl Detector for SlowDetector {
        fn detect(&mut self, f: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            std::thread::sleep(self.delay);
            let captured = self.origin + Duration::from_secs_f64(f.pts_s());
            let ms = Instant::now()
                .saturating_duration_since(captured)
                .as_secs_f64()
                * 1e3;
            self.latencies_ms.lock().unwrap().push(ms);
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "slow"
        }
    }

    /// Runs a 30 fps camera for 3 s into a 100 ms detector; returns the summary and the
    /// capture-to-detection latencies (ms).
    fn slow_run(mode: HandoffMode) -> (RunSummary, Vec<f64>) {
        let (cfg, _dir) = fixture_config("rtsp://cam/x");
        let sink = memory_sink(&cfg);
        let origin = Instant::now();
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let detector: SharedDetector = Arc::new(Mutex::new(Box::new(SlowDetector {
            origin,
            delay: Duration::from_millis(100),
            latencies_ms: latencies.clone(),
        })));
        let source = Box::new(RealTimeSource {
            origin,
            fps: 30.0,
            frames: 60,
            seq: 0,
        });
        let opts = LoopOptions {
            handoff: mode,
            stall_timeout: Some(Duration::from_secs(5)),
        };
        let stop = AtomicBool::new(false);
        let (sum, end) = run_source(
            &cfg.cameras[0],
            &cfg,
            source,
            &detector,
            &sink,
            &stop,
            opts,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(end, LoopEnd::EndOfStream);
        let v = latencies.lock().unwrap().clone();
        (sum, v)
    }

    fn quantile(v: &[f64], q: f64) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn latest_frame_wins_bounds_latency_under_a_slow_detector() {
        let (latest, lat) = slow_run(HandoffMode::LatestWins);
        let (p50, max) = (quantile(&lat, 0.5), quantile(&lat, 1.0));
        println!(
            "latest-wins: 60 frames at 30 fps, 100 ms detector: detected {}, dropped {}, \
             capture-to-detection median {p50:.0} ms, max {max:.0} ms",
            latest.detected, latest.dropped
        );
        // The detector manages ~10 of the 30 frames per second: the rest are dropped, counted.
        assert_eq!(latest.frames + latest.dropped, 60, "{latest:?}");
        assert!(latest.dropped >= 30, "{latest:?}");
        // At most one frame interval of waiting for the detector plus one detection (~133 ms)
        // and scheduling noise; never the backlog of a queue.
        assert!(max < 400.0, "latency {lat:?}");

        let (every, lat) = slow_run(HandoffMode::EveryFrame);
        let max_every = quantile(&lat, 1.0);
        println!(
            "every-frame (file policy) on the same camera: detected {}, dropped {}, max latency {max_every:.0} ms",
            every.detected, every.dropped
        );
        // Queueing every frame of a live camera lets the backlog grow to seconds: the reason
        // live sources use latest-wins.
        assert_eq!((every.detected, every.dropped), (60, 0));
        assert!(max_every > 4.0 * max, "{max_every} vs {max}");
    }

    /// Every camera sees the same car on the same pixels: it drives along the demo road at
    /// 40 km/h in camera `a`'s ground frame.
    struct SamePixelsDetector {
        homography: crate::speed::Homography,
    }

    impl Detector for SamePixelsDetector {
        fn detect(&mut self, f: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            let y_m = -9.0 + 40.0 / 3.6 * f.pts_s();
            let Some([u, v]) = self.homography.world_to_image([4.5, y_m]) else {
                return Ok((Vec::new(), DetectTimings::default()));
            };
            let bbox = crate::detect::BBox {
                x1: (u - 60.0) as f32,
                y1: (v - 70.0) as f32,
                x2: (u + 60.0) as f32,
                y2: v as f32,
            };
            let det = Detection {
                bbox,
                score: 0.9,
                class_id: 2,
                class: "car",
            };
            Ok((vec![det], DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "same-pixels"
        }
    }

    /// Two cameras, one detector: camera `b` is surveyed with every ground distance 1.25x
    /// camera `a`'s, so the same pixel motion must read 1.25x faster there. Mixed-up trackers
    /// or calibrations would show.
    #[test]
    fn cameras_share_the_detector_but_keep_their_own_tracker_and_calibration() {
        let (mut cfg, _dir) = fixture_config("synthetic.mp4");
        let mut b = cfg.cameras[0].clone();
        b.id = "b".into();
        b.world_points = b
            .world_points
            .iter()
            .map(|p| [p[0] * 1.25, p[1] * 1.25])
            .collect();
        let (h, report) = crate::speed::Homography::fit(&b.image_points, &b.world_points).unwrap();
        b.homography = h;
        b.calibration_report = report;
        cfg.cameras[0].id = "a".into();
        cfg.cameras.push(b);
        let detector: SharedDetector = Arc::new(Mutex::new(Box::new(SamePixelsDetector {
            homography: cfg.cameras[0].homography.clone(),
        })));
        let sink = memory_sink(&cfg);
        let stop = AtomicBool::new(false);
        let speeds = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for cam in &cfg.cameras {
                let (cfg, detector, sink, stop, speeds) = (&cfg, &detector, &sink, &stop, &speeds);
                scope.spawn(move || {
                    let source = Box::new(RealTimeSource {
                        origin: Instant::now() - Duration::from_secs(10),
                        fps: 30.0,
                        frames: 60,
                        seq: 0,
                    });
                    let sum = camera_loop(cam, cfg, source, detector, sink, stop, &mut |v| {
                        speeds
                            .lock()
                            .unwrap()
                            .push((v.event.camera.clone(), v.event.speed_kmh));
                    })
                    .unwrap();
                    assert_eq!(sum.detected, 60);
                });
            }
        });
        let mut speeds = speeds.into_inner().unwrap();
        speeds.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(speeds.len(), 2, "one measurement per camera: {speeds:?}");
        assert_eq!(speeds[0].0, "a");
        assert!((speeds[0].1 - 40.0).abs() < 0.5, "{speeds:?}");
        assert_eq!(speeds[1].0, "b");
        assert!((speeds[1].1 - 50.0).abs() < 0.6, "{speeds:?}");
    }
}
