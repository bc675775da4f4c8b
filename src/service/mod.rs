//! Wires the pipeline together: sources, the shared detector, per-camera pipelines, the sink.
//!
//! Decoding runs on its own thread per camera and hands frames over a bounded channel
//! (capacity 2), so decode overlaps inference; the detector is shared by all cameras behind a
//! mutex. `replay` runs one file as fast as possible; `run` is the daemon.

pub mod analyze;
pub mod camera;
pub mod sink;
pub mod snapshot;

use crate::config::{CameraConfig, Config};
use crate::detect::Detector;
use crate::frame::Frame;
use crate::publish::{Publisher, Topics};
use crate::source::{DefaultOpener, Opener, Source, SourceError};
use crate::stats::{Stage, StageTimes};
use crate::store::Store;
use anyhow::{bail, Context};
pub use camera::{CameraPipeline, Verdict};
pub use sink::EventSink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
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
    /// Measurement records produced.
    pub measurements: u64,
    /// Speeding records produced.
    pub speeding: u64,
    /// Verdicts the store refused (disk full, ...): logged, counted.
    pub store_errors: u64,
    /// Detector failures: logged, counted, the frame is tracked as skipped.
    pub detect_errors: u64,
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

/// Runs one camera's frames through detection, tracking, speed and the sink until the source
/// ends or `stop` is set. Verdicts are stored, then passed to `on_verdict`.
pub fn camera_loop(
    cam: &CameraConfig,
    cfg: &Config,
    source: Box<dyn Source>,
    detector: &SharedDetector,
    sink: &EventSink,
    stop: &AtomicBool,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    let model_id = lock(detector).model_id().to_string();
    let mut pipe = CameraPipeline::new(cam.clone(), cfg.tracker.clone(), &cfg.device_id, &model_id);
    let mut sum = RunSummary::default();
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Result<(Frame, f64), SourceError>>(2);
    let describe = source.describe();
    let decoder = std::thread::Builder::new()
        .name(format!("decode-{}", cam.id))
        .spawn(move || decode_thread(source, tx))
        .context("spawning decode thread")?;
    let mut first_t: Option<f64> = None;
    let mut last_t = 0.0;
    let mut result = Ok(());
    for item in rx.iter() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (frame, decode_ms) = match item {
            Ok(x) => x,
            Err(e) => {
                result = Err(anyhow::Error::new(e).context(format!("reading {describe}")));
                break;
            }
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
    }
    drop(rx);
    let _ = decoder.join();
    deliver(pipe.finish(), sink, &mut sum, on_verdict);
    sum.wall_s = started.elapsed().as_secs_f64();
    sum.video_s = first_t.map(|f| last_t - f).unwrap_or(0.0);
    result.map(|_| sum)
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

fn decode_thread(
    mut source: Box<dyn Source>,
    tx: mpsc::SyncSender<Result<(Frame, f64), SourceError>>,
) {
    loop {
        let start = Instant::now();
        match source.next_frame() {
            Ok(Some(f)) => {
                let ms = start.elapsed().as_secs_f64() * 1e3;
                if tx.send(Ok((f, ms))).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
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
    let source = DefaultOpener
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

/// One camera's life in the daemon: open, process, and on failure retry with backoff.
fn camera_thread(
    cam: &CameraConfig,
    cfg: &Config,
    detector: &SharedDetector,
    sink: &EventSink,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_secs(1);
    let is_file = !cam.source.contains("://");
    while !stop.load(Ordering::Relaxed) {
        let opened = DefaultOpener.open(&cam.source, cam.id.as_str().into());
        let outcome = opened
            .map_err(anyhow::Error::new)
            .and_then(|src| camera_loop(cam, cfg, src, detector, sink, stop, &mut |v| {
                tracing::info!(camera = %v.event.camera, kind = ?v.event.kind, speed_kmh = v.event.speed_kmh, track = v.event.track_id, "verdict");
            }));
        match outcome {
            Ok(sum) if is_file => {
                tracing::info!(camera = %cam.id, frames = sum.frames, measurements = sum.measurements, "file source ended; camera stopped");
                return;
            }
            Ok(_) => {
                tracing::warn!(camera = %cam.id, "source ended; reconnecting");
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                tracing::error!(camera = %cam.id, "source failed: {e:#}; retrying in {:.0} s", backoff.as_secs_f64());
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
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
