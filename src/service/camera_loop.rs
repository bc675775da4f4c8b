//! One camera's pipeline loop: frames from its source through the scheduler, the shared
//! detector, tracking and speed into the sink, until the source ends, stalls or fails, or
//! `stop` is set.
//!
//! Decoding runs on its own thread and hands frames over ([`HandoffMode`]), so decode overlaps
//! inference; the detector is shared by all cameras. The daemon's supervisor runs one loop per
//! connection of a camera; `replay` and `bench` run one over a file.

use super::handoff::{Handoff, HandoffMode, Received};
use super::{liveness, reload, Accepted, CameraPipeline, EventSink, SharedDetector, Verdict};
use crate::clock::Clock;
use crate::config::{CameraConfig, Config};
use crate::detect::Detection;
use crate::frame::Frame;
use crate::metrics::CameraMetrics;
use crate::schedule::{Decision, Scheduler};
use crate::source::{Source, SourceError};
use crate::stats::{Stage, StageTimes};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished camera loop or replay did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Frames decoded.
    pub frames: u64,
    /// Frames the detector ran on.
    pub detected: u64,
    /// Frames the scheduler let pass without detection (the tracker predicted across them).
    pub skipped: u64,
    /// Frame time of the first frame in which the detector found anything, s (how fast an
    /// idle camera notices the first vehicle).
    pub first_detection_s: Option<f64>,
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
        self.first_detection_s = self.first_detection_s.or(o.first_detection_s);
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

/// How [`run_source`] hands frames from the decoder to detection, and when it gives up waiting.
#[derive(Clone)]
pub struct LoopOptions {
    /// Hand-off policy: every frame (files) or latest wins (live cameras).
    pub handoff: HandoffMode,
    /// No frame for this long ends the loop with [`LoopEnd::Stalled`]; None waits forever.
    pub stall_timeout: Option<Duration>,
    /// The daemon's companions of the loop (watchdog heartbeat, reloads); empty offline.
    pub hooks: LoopHooks,
    /// Events of a recording carry origin keys, so the store refuses a vehicle it already holds:
    /// the daemon restarts a file camera from the start after a crash. Off for `replay` and
    /// `demo`, which process a file again on purpose (the crash-safety of `run` is theirs only).
    pub origin_keys: bool,
}

/// Daemon-only companions of a camera loop; tests and offline commands leave them empty.
#[derive(Clone, Default)]
pub struct LoopHooks {
    /// Beats on every pass of the loop, so the systemd watchdog sees a wedged loop.
    pub heartbeat: Option<liveness::Heartbeat>,
    /// Settings to follow when a SIGHUP reloads the config.
    pub config: Option<Arc<reload::LiveConfig>>,
    /// Live counters and stage latencies for the Prometheus endpoint and the `stats` topic.
    pub metrics: Option<CameraMetrics>,
}

impl LoopHooks {
    fn beat(&self) {
        if let Some(h) = &self.heartbeat {
            h.beat();
        }
    }
}

impl LoopOptions {
    /// Files: every frame, no stall limit. Live sources: latest wins, reopened after `stall`.
    pub fn for_source(live: bool, stall: Duration) -> Self {
        if live {
            LoopOptions {
                handoff: HandoffMode::LatestWins,
                stall_timeout: Some(stall),
                hooks: LoopHooks::default(),
                origin_keys: false,
            }
        } else {
            LoopOptions {
                handoff: HandoffMode::EveryFrame,
                stall_timeout: None,
                hooks: LoopHooks::default(),
                origin_keys: false,
            }
        }
    }
}

/// Samples per stage a daemon camera loop keeps for its own summary. With live metrics every
/// sample also goes to the metrics window, so the loop needs few: the default 20,000 per stage
/// (for `replay` and `bench`, which report percentiles at the end) took a daemon camera about
/// two hours to fill, and RSS grew with it for that long (1.6 MB per camera, per connection).
pub const LIVE_STAGE_SAMPLES: usize = 1024;

/// Why [`run_source`] returned.
#[derive(Debug)]
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
    /// The source failed (or the loop could not start).
    Failed(LoopFailure),
}

/// How a camera loop failed, with the cause kept typed (the supervisor reports it, `replay`
/// and `bench` return it). The message prints the cause, so it is not also `source()`.
#[derive(Debug, thiserror::Error)]
pub enum LoopFailure {
    /// The source returned an error while reading.
    #[error("reading {describe}: {cause}")]
    Source {
        /// The source, credentials redacted.
        describe: String,
        /// What the source reported.
        cause: SourceError,
    },
    /// The decode thread could not be started (out of threads or memory).
    #[error("cannot start the decode thread: {cause}")]
    Spawn {
        /// The operating system's error.
        cause: std::io::Error,
    },
}

/// What a camera loop runs with that stays the same for its whole life (in the daemon, for
/// every connection of the camera): the camera, the config, the shared detector, the sink, the
/// stop flag and the options.
pub struct LoopEnv<'a> {
    /// The camera; after a reload, the reloaded settings of the same camera apply instead.
    pub cam: &'a CameraConfig,
    /// The whole config (tracker settings, device id).
    pub cfg: &'a Config,
    /// The detector shared by all cameras.
    pub detector: &'a SharedDetector,
    /// Where verdicts go.
    pub sink: &'a EventSink,
    /// Set to end the loop.
    pub stop: &'a AtomicBool,
    /// Time for the stall limit and the loop's wall time (the daemon's one clock).
    pub clock: &'a dyn Clock,
    /// Hand-off, stall limit, the daemon's hooks, origin keys.
    pub opts: LoopOptions,
}

/// Runs one camera's frames through detection, tracking, speed and the sink until the source
/// ends or `stop` is set, and says why it stopped (`camera_loop` wraps it for files).
pub fn run_source(
    env: &LoopEnv<'_>,
    source: Box<dyn Source>,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> (RunSummary, LoopEnd) {
    let mut run = CameraRun::new(env);
    let handoff = Arc::new(Handoff::new(env.opts.handoff));
    let describe = source.describe();
    let decoder = match spawn_decoder(&run.cam.id, source, &handoff) {
        Ok(handle) => handle,
        Err(cause) => {
            return (run.sum, LoopEnd::Failed(LoopFailure::Spawn { cause }));
        }
    };
    let end = run.stream(&handoff, &describe, on_verdict);
    run.finish(end, &handoff, decoder, &describe, on_verdict)
}

/// The loop logs under `service`'s target, as it did before it had a module of its own, so
/// log filters and the journal's TARGET field stay the same.
const LOG_TARGET: &str = "speedcam::service";

/// How long one wait for a frame lasts before the loop checks `stop`, reloads and the stall limit.
const SLICE: Duration = Duration::from_millis(200);

/// One run of a camera loop: the camera's pipeline and scheduler, and the figures so far.
struct CameraRun<'e> {
    env: &'e LoopEnv<'e>,
    /// The camera's settings when the loop started (the reloaded ones, after a reload).
    cam: CameraConfig,
    pipe: CameraPipeline,
    sched: Scheduler,
    sum: RunSummary,
    /// The reload generation whose settings are in force.
    generation: u64,
    /// Dropped frames already counted in the metrics.
    dropped_seen: u64,
    /// Frame times of the first and the latest frame, s.
    first_t: Option<f64>,
    last_t: f64,
    /// Clock time at the start.
    started: Duration,
}

impl<'e> CameraRun<'e> {
    /// The camera's pipeline and scheduler, with the settings in force now.
    fn new(env: &'e LoopEnv<'e>) -> Self {
        let model_id = env.detector.lock(false).model_id().to_string();
        // After a reload the camera's settings in force are the reloaded ones, also on a reconnect.
        let reloads = env.opts.hooks.config.as_deref();
        let generation = reloads.map(|l| l.generation()).unwrap_or(0);
        let cam = reloads
            .and_then(|l| l.camera(&env.cam.id))
            .unwrap_or_else(|| env.cam.clone());
        let cfg = env.cfg;
        let pipe = CameraPipeline::new(cam.clone(), cfg.tracker.clone(), &cfg.device_id, &model_id)
            .with_recording(if env.opts.origin_keys {
                recording_of(&cam)
            } else {
                None
            });
        let sched = Scheduler::new(cam.schedule, cam.zone.clone());
        let mut sum = RunSummary::default();
        if let Some(m) = &env.opts.hooks.metrics {
            sum.times = StageTimes::with_capacity(LIVE_STAGE_SAMPLES);
            sum.times.set_observer(Some(m.observer()));
        }
        CameraRun {
            env,
            cam,
            pipe,
            sched,
            sum,
            generation,
            dropped_seen: 0,
            first_t: None,
            last_t: 0.0,
            started: env.clock.now(),
        }
    }

    /// The daemon's live metrics of this camera, if any.
    fn metrics(&self) -> Option<&'e CameraMetrics> {
        let env: &'e LoopEnv<'e> = self.env;
        env.opts.hooks.metrics.as_ref()
    }

    /// Takes frames from the decode thread and processes them until the loop has to end.
    fn stream(
        &mut self,
        handoff: &Handoff<DecodedItem>,
        describe: &str,
        on_verdict: &mut dyn FnMut(&Verdict),
    ) -> LoopEnd {
        // The stall limit counts clock time since the last item, not the number of waits: a
        // wait can end early (spurious wake-up) or late (a busy machine).
        let mut last_item = self.env.clock.now();
        loop {
            self.env.opts.hooks.beat();
            if self.env.stop.load(Ordering::Relaxed) {
                return LoopEnd::Stopped;
            }
            self.apply_reload();
            let (item, handed_at) = match handoff.recv_timeout(SLICE) {
                Received::Item(item, at) => {
                    last_item = self.env.clock.now();
                    (item, at)
                }
                Received::Closed => return LoopEnd::EndOfStream,
                Received::Timeout => {
                    let waited = self.env.clock.now().saturating_sub(last_item);
                    match self.env.opts.stall_timeout {
                        Some(limit) if waited >= limit => {
                            return LoopEnd::Stalled {
                                after_s: waited.as_secs_f64(),
                            }
                        }
                        _ => continue,
                    }
                }
            };
            let (frame, decode_ms) = match item {
                Ok(x) => x,
                Err(SourceError::Stalled { after_s, .. }) => return LoopEnd::Stalled { after_s },
                Err(cause) => {
                    return LoopEnd::Failed(LoopFailure::Source {
                        describe: describe.to_string(),
                        cause,
                    })
                }
            };
            self.process(&frame, decode_ms, handed_at, handoff, on_verdict);
        }
    }

    /// Follows a SIGHUP reload: the camera's new limits, zone and schedule apply from the next
    /// frame on; live tracks are kept.
    fn apply_reload(&mut self) {
        let Some(live) = self.env.opts.hooks.config.as_deref() else {
            return;
        };
        let now = live.generation();
        if now == self.generation {
            return;
        }
        self.generation = now;
        if let Some(c) = live.camera(&self.cam.id) {
            self.pipe.reconfigure(&c);
            self.sched.reconfigure(c.schedule, c.zone.clone());
            tracing::info!(
                target: LOG_TARGET,
                limit_kmh = c.speed_limit_kmh,
                tolerance_kmh = c.tolerance_kmh,
                strict = c.strict,
                "reloaded settings applied; live tracks kept"
            );
        }
    }

    /// One frame: scheduled, detected (or skipped), tracked and measured; verdicts delivered.
    fn process(
        &mut self,
        frame: &Frame,
        decode_ms: f64,
        handed_at: Instant,
        handoff: &Handoff<DecodedItem>,
        on_verdict: &mut dyn FnMut(&Verdict),
    ) {
        let metrics = self.metrics();
        self.sum.frames += 1;
        if let Some(m) = metrics {
            m.frame_in();
            let dropped = handoff.dropped();
            if dropped > self.dropped_seen {
                m.dropped(dropped - self.dropped_seen);
                self.dropped_seen = dropped;
            }
        }
        self.sum.times.record(Stage::Decode, decode_ms);
        self.first_t.get_or_insert(frame.pts_s());
        self.last_t = frame.pts_s();
        let t_sched = Instant::now();
        let decision = self.sched.decide(frame, self.pipe.track_views());
        self.sum.times.lap(Stage::Schedule, t_sched);
        let detections = self.detect(frame, decision, decode_ms, handed_at);
        let verdicts = self
            .pipe
            .process(frame, detections.as_deref(), &mut self.sum.times);
        deliver(verdicts, self.env.sink, &mut self.sum, metrics, on_verdict);
        if let Some(m) = metrics {
            m.frame_age_ms(handed_at.elapsed().as_secs_f64() * 1e3 + decode_ms);
        }
    }

    /// Runs the shared detector when the scheduler asks for it; None when the frame is skipped
    /// or detection failed (the tracker predicts across it).
    fn detect(
        &mut self,
        frame: &Frame,
        decision: Decision,
        decode_ms: f64,
        handed_at: Instant,
    ) -> Option<Vec<Detection>> {
        let metrics = self.metrics();
        let sum = &mut self.sum;
        match decision {
            Decision::Skip => {
                sum.skipped += 1;
                metrics.inspect(|m| m.skipped());
                None
            }
            Decision::Detect(reason) => {
                match self.env.detector.lock(reason.is_urgent()).detect(frame) {
                    Ok((dets, t)) => {
                        self.sched.detected(frame.pts_s(), reason);
                        sum.detected += 1;
                        metrics.inspect(|m| m.detected());
                        if !dets.is_empty() && sum.first_detection_s.is_none() {
                            sum.first_detection_s = Some(frame.pts_s());
                        }
                        sum.times.record(Stage::Preprocess, t.preprocess_ms);
                        sum.times.record(Stage::Inference, t.inference_ms);
                        sum.times.record(Stage::Postprocess, t.postprocess_ms);
                        let latency_ms = handed_at.elapsed().as_secs_f64() * 1e3 + decode_ms;
                        sum.times.record(Stage::Latency, latency_ms);
                        Some(dets)
                    }
                    Err(e) => {
                        sum.detect_errors += 1;
                        metrics.inspect(|m| m.detect_error());
                        tracing::warn!(
                            target: LOG_TARGET,
                            frame = frame.seq,
                            err = %e,
                            "detector failed"
                        );
                        None
                    }
                }
            }
        }
    }

    /// Ends the run: stops the hand-off, waits for the decode thread (unless it is stalled),
    /// delivers the verdicts of the tracks still open and completes the summary.
    fn finish(
        mut self,
        end: LoopEnd,
        handoff: &Handoff<DecodedItem>,
        decoder: JoinHandle<()>,
        describe: &str,
        on_verdict: &mut dyn FnMut(&Verdict),
    ) -> (RunSummary, LoopEnd) {
        let metrics = self.metrics();
        handoff.close_consumer();
        self.sum.dropped = handoff.dropped();
        if let Some(m) = metrics {
            m.dropped(self.sum.dropped.saturating_sub(self.dropped_seen));
        }
        let c = self.sched.counts();
        tracing::debug!(
            target: LOG_TARGET,
            busy = c.busy,
            motion = c.motion,
            idle = c.idle,
            skipped = c.skipped,
            "frame scheduler"
        );
        if matches!(end, LoopEnd::Stalled { .. }) {
            // The decode thread may be blocked inside the source; it exits on its next hand-off.
            tracing::warn!(
                target: LOG_TARGET,
                "leaving a stalled decode thread for {describe} to finish on its own"
            );
        } else {
            let _ = decoder.join();
        }
        deliver(
            self.pipe.finish(),
            self.env.sink,
            &mut self.sum,
            metrics,
            on_verdict,
        );
        self.sum.wall_s = self
            .env
            .clock
            .now()
            .saturating_sub(self.started)
            .as_secs_f64();
        self.sum.video_s = self.first_t.map(|f| self.last_t - f).unwrap_or(0.0);
        (self.sum, end)
    }
}

/// Starts the camera's decode thread, which logs inside the camera's span to the loop's
/// subscriber (a test's scoped one too), like the loop itself.
fn spawn_decoder(
    camera: &str,
    source: Box<dyn Source>,
    handoff: &Arc<Handoff<DecodedItem>>,
) -> std::io::Result<JoinHandle<()>> {
    let handoff = handoff.clone();
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name(format!("decode-{camera}"))
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                span.in_scope(|| decode_thread(source, &handoff))
            })
        })
}

/// The recording a file camera replays (its frames recur when the daemon restarts it, so its
/// events get origin keys); None for live sources and for a file that cannot be read (the
/// source reports that).
fn recording_of(cam: &CameraConfig) -> Option<crate::store::Recording> {
    if crate::source::is_live_uri(&cam.source) {
        return None;
    }
    match crate::store::Recording::of_file(Path::new(&cam.source)) {
        Ok(r) => {
            tracing::debug!(
                target: LOG_TARGET,
                recording = r.fingerprint(),
                "file source: events get origin keys"
            );
            Some(r)
        }
        Err(e) => {
            tracing::debug!(
                target: LOG_TARGET,
                err = %e,
                "cannot fingerprint {}; events get no origin keys",
                cam.source
            );
            None
        }
    }
}

/// Runs `source` through one camera's pipeline until it ends; a source failure is an error
/// (for files: `env.opts` hands over every frame and sets no stall limit).
pub(crate) fn camera_loop(
    env: &LoopEnv<'_>,
    source: Box<dyn Source>,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    let (sum, end) = run_source(env, source, on_verdict);
    match end {
        LoopEnd::Failed(e) => Err(e.into()),
        _ => Ok(sum),
    }
}

/// Hands verdicts to the sink and counts those it accepted (and passes them to `on_verdict`).
fn deliver(
    verdicts: Vec<Verdict>,
    sink: &EventSink,
    sum: &mut RunSummary,
    metrics: Option<&CameraMetrics>,
    on_verdict: &mut dyn FnMut(&Verdict),
) {
    // A measurement recorded before a restart keeps its stored id: its speeding event (next in
    // `verdicts`) must point at that one.
    let mut renamed: Option<(String, String)> = None;
    for mut v in verdicts {
        if let (Some((new, stored)), Some(mid)) = (&renamed, v.event.measurement_id.as_mut()) {
            if mid == new {
                mid.clone_from(stored);
            }
        }
        match sink.accept(&mut v, &mut sum.times) {
            Ok(Accepted::AlreadyRecorded { event_id }) => {
                renamed = Some((v.event.event_id.clone(), event_id));
            }
            Ok(Accepted::Stored | Accepted::Held) => {
                match v.event.kind {
                    crate::event::EventType::Measurement => {
                        sum.measurements += 1;
                        metrics.inspect(|m| m.measurement());
                    }
                    crate::event::EventType::Speeding => {
                        sum.speeding += 1;
                        metrics.inspect(|m| m.speeding());
                    }
                }
                on_verdict(&v);
            }
            Err(e) => {
                sum.store_errors += 1;
                metrics.inspect(|m| m.store_error());
                tracing::error!(
                    target: LOG_TARGET,
                    event = %v.event.event_id,
                    err = %e,
                    "cannot store event"
                );
            }
        }
    }
}

/// A decoded frame and its decode time, ms; or why the source stopped.
type DecodedItem = Result<(Frame, f64), SourceError>;

/// The decode thread: reads the source and hands each frame over until the source ends or
/// fails, or the loop no longer takes frames.
fn decode_thread(mut source: Box<dyn Source>, handoff: &Handoff<DecodedItem>) {
    let mut seen = source.counters();
    loop {
        let start = Instant::now();
        let next = source.next_frame();
        let mut elapsed = start.elapsed();
        // A real-time replay waits inside next_frame to release frames on time (not decode
        // time) and skips frames it fell behind on (dropped, as a live camera's would be).
        let now = source.counters();
        let paced_ns = now.pacing_wait_ns.saturating_sub(seen.pacing_wait_ns);
        elapsed = elapsed.saturating_sub(Duration::from_nanos(paced_ns));
        handoff.count_dropped(now.frames_superseded.saturating_sub(seen.frames_superseded));
        seen = now;
        let item = match next {
            Ok(Some(f)) => Ok((f, elapsed.as_secs_f64() * 1e3)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DetectError, DetectTimings, Detection, Detector};
    use crate::schedule::DetectorGate;
    use crate::service::tests::{
        fixture_config, memory_sink, tiny_frame, FailingDetector, NullDetector, RealTimeSource,
        TestFrames,
    };
    use std::sync::atomic::AtomicU64;
    use std::sync::{mpsc, Mutex};

    /// What a test camera loop runs with: the fixture config (one demo camera), a store in a
    /// temporary directory, a detector and a stop flag. Tests edit `cfg` before building an env.
    struct Fixture {
        cfg: Config,
        sink: EventSink,
        detector: SharedDetector,
        stop: Arc<AtomicBool>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        /// Camera 0 reads `source`; `detector` serves it.
        fn new(source: &str, detector: impl Detector + 'static) -> Self {
            let (cfg, _dir) = fixture_config(source);
            let sink = memory_sink(&cfg);
            Fixture {
                cfg,
                sink,
                detector: Arc::new(DetectorGate::new(Box::new(detector))),
                stop: Arc::new(AtomicBool::new(false)),
                _dir,
            }
        }

        /// The environment of camera 0's loop on `clock` with `opts`.
        fn env<'a>(&'a self, clock: &'a dyn crate::clock::Clock, opts: LoopOptions) -> LoopEnv<'a> {
            LoopEnv {
                cam: &self.cfg.cameras[0],
                cfg: &self.cfg,
                detector: &self.detector,
                sink: &self.sink,
                stop: &self.stop,
                clock,
                opts,
            }
        }
    }

    /// Options of a file camera: every frame, no stall limit.
    fn file_opts() -> LoopOptions {
        LoopOptions::for_source(false, Duration::MAX)
    }

    /// A live camera and a slow detector on one simulated clock: frame k is captured at
    /// k / 30 s, a detection takes `detect_time` of clock time, and the clock moves only while
    /// the detector runs. Which frames are detected, which dropped and how late each detection
    /// is then follow from the hand-off policy alone, not from this machine's speed or load.
    struct SimulatedCamera {
        clock: crate::clock::SimulatedClock,
        frames: u64,
        /// The frame the source was last asked for: every earlier one has been handed over.
        asked: Mutex<u64>,
        /// Signalled when `asked` changes or the clock moves.
        changed: std::sync::Condvar,
    }

    /// How long the simulation's waits may last in real time before a test fails instead of
    /// hanging (they take microseconds).
    const SIM_HANG_GUARD: Duration = Duration::from_secs(60);

    impl SimulatedCamera {
        const FPS: u64 = 30;

        fn new(frames: u64) -> Arc<Self> {
            Arc::new(SimulatedCamera {
                clock: crate::clock::SimulatedClock::default(),
                frames,
                asked: Mutex::new(0),
                changed: std::sync::Condvar::new(),
            })
        }

        /// Capture time of frame `seq` on the clock.
        fn captured_at(seq: u64) -> Duration {
            Duration::from_nanos(seq * 1_000_000_000 / Self::FPS)
        }

        /// The newest frame captured by clock time `t`.
        fn newest_at(&self, t: Duration) -> u64 {
            (0..self.frames)
                .take_while(|&k| Self::captured_at(k) <= t)
                .last()
                .unwrap_or(0)
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
            self.asked.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Waits on `changed` until `done` holds; panics after [`SIM_HANG_GUARD`].
        fn wait_until<'a>(
            &self,
            mut asked: std::sync::MutexGuard<'a, u64>,
            what: &str,
            done: impl Fn(u64) -> bool,
        ) -> std::sync::MutexGuard<'a, u64> {
            let deadline = Instant::now() + SIM_HANG_GUARD;
            while !done(*asked) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "simulated camera: no progress waiting for {what}"
                );
                asked = self
                    .changed
                    .wait_timeout(asked, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            asked
        }
    }

    /// The camera's frames: each one once the clock has reached its capture time.
    struct SimulatedLiveSource {
        cam: Arc<SimulatedCamera>,
        seq: u64,
    }

    impl Source for SimulatedLiveSource {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            let cam = &self.cam;
            let mut asked = cam.lock();
            // Asked for this frame: the decode thread has handed over every earlier one.
            *asked = self.seq;
            cam.changed.notify_all();
            if self.seq == cam.frames {
                return Ok(None);
            }
            let due = SimulatedCamera::captured_at(self.seq);
            drop(cam.wait_until(asked, "the clock", |_| cam.clock.now() >= due));
            let f = tiny_frame(self.seq, due.as_secs_f64());
            self.seq += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "simulated live camera".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// Takes `detect_time` of the camera's clock per frame and records which frame it ran on
    /// and when it started. With `settle`, it returns only once the source has handed over
    /// every frame captured while it ran (the state a real camera would be in): the loop's
    /// next frame is then decided by the hand-off policy, not by thread scheduling.
    struct SimulatedSlowDetector {
        cam: Arc<SimulatedCamera>,
        detect_time: Duration,
        settle: bool,
        runs: Arc<Mutex<Vec<(u64, Duration)>>>,
    }

    impl Detector for SimulatedSlowDetector {
        fn detect(&mut self, f: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            let cam = &self.cam;
            let asked = cam.lock();
            let started = cam.clock.now();
            self.runs.lock().unwrap().push((f.seq, started));
            cam.clock.advance(self.detect_time);
            cam.changed.notify_all();
            if self.settle {
                let captured = cam.newest_at(cam.clock.now()) + 1;
                drop(cam.wait_until(asked, "the hand-over", |asked| asked >= captured));
            }
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "simulated-slow"
        }
    }

    /// Runs the simulated 30 fps camera for 60 frames into a 100 ms detector with the given
    /// hand-off; returns the summary and each detection's frame and start time.
    fn simulated_slow_run(mode: HandoffMode) -> (RunSummary, Vec<(u64, Duration)>) {
        let cam = SimulatedCamera::new(60);
        let runs = Arc::new(Mutex::new(Vec::new()));
        let detector = SimulatedSlowDetector {
            cam: cam.clone(),
            detect_time: SLOW_DETECT,
            // Every-frame hand-off holds the decoder back (two frames queued), so it cannot
            // hand over all captured frames; nor does it need to: it drops none.
            settle: mode == HandoffMode::LatestWins,
            runs: runs.clone(),
        };
        let mut fx = Fixture::new("rtsp://cam/x", detector);
        // The hand-off is under test: the detector must want every frame.
        fx.cfg.cameras[0].schedule.adaptive = false;
        let source = Box::new(SimulatedLiveSource {
            cam: cam.clone(),
            seq: 0,
        });
        let opts = LoopOptions {
            handoff: mode,
            stall_timeout: Some(Duration::from_secs(5)),
            hooks: LoopHooks::default(),
            origin_keys: false,
        };
        let (sum, end) = run_source(&fx.env(&cam.clock, opts), source, &mut |_| {});
        assert!(matches!(end, LoopEnd::EndOfStream), "{end:?}");
        let runs = runs.lock().unwrap().clone();
        (sum, runs)
    }

    /// Clock time one simulated detection takes.
    const SLOW_DETECT: Duration = Duration::from_millis(100);

    /// Capture-to-result latency of each detection, on the simulated clock.
    fn latencies(runs: &[(u64, Duration)]) -> Vec<Duration> {
        runs.iter()
            .map(|&(seq, started)| started + SLOW_DETECT - SimulatedCamera::captured_at(seq))
            .collect()
    }

    /// A live source that delivers no frame until `release` is signalled or dropped (a frozen
    /// camera); then it ends.
    struct FrozenSource {
        release: mpsc::Receiver<()>,
    }

    impl Source for FrozenSource {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            let _ = self.release.recv();
            Ok(None)
        }
        fn describe(&self) -> String {
            "frozen test camera".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// The stall limit is clock time without a frame: an hour of simulated silence ends the loop
    /// as stalled within the moments it takes to simulate it (with the real clock this test
    /// would wait an hour).
    #[test]
    fn a_silent_source_stalls_after_the_limit_in_clock_time() {
        let fx = Fixture::new(
            "rtsp://cam/x",
            NullDetector {
                delay: Duration::ZERO,
            },
        );
        let clock = Arc::new(crate::clock::SimulatedClock::default());
        let (release_tx, release) = mpsc::channel();
        let limit = Duration::from_secs(3600);
        let run = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let env = fx.env(clock.as_ref(), LoopOptions::for_source(true, limit));
                run_source(&env, Box::new(FrozenSource { release }), &mut |_| {})
            })
        };
        // Time passes only here: a simulated minute per poll until the loop gives up.
        wait_until("the loop to stall", || {
            clock.advance(Duration::from_secs(60));
            run.is_finished()
        });
        drop(release_tx);
        let (sum, end) = run.join().expect("camera loop");
        let LoopEnd::Stalled { after_s } = end else {
            panic!("expected a stall, got {end:?}");
        };
        assert!(after_s >= limit.as_secs_f64(), "{after_s}");
        assert_eq!(sum.frames, 0);
        assert!(
            sum.wall_s >= limit.as_secs_f64(),
            "the loop's wall time is clock time too"
        );
    }

    /// 1280x720 grey frames at 30 fps for 6 s; from t = 2 s a white 80x40 box drives in from
    /// the left edge at 400 px/s with its bottom at y = 500 (through the demo zone).
    struct DrivingBoxSource {
        seq: u64,
    }

    const BOX_FROM_S: f64 = 2.0;

    fn box_left_px(t_s: f64) -> Option<f64> {
        (t_s >= BOX_FROM_S).then_some((t_s - BOX_FROM_S) * 400.0)
    }

    impl Source for DrivingBoxSource {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.seq == 180 {
                return Ok(None);
            }
            let t = self.seq as f64 / 30.0;
            let (w, h) = (1280usize, 720usize);
            let mut data = vec![90u8; w * h * 3];
            if let Some(x0) = box_left_px(t) {
                for y in 460..500 {
                    for x in (x0 as usize)..((x0 as usize + 80).min(w)) {
                        data[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(255);
                    }
                }
            }
            let f = Frame {
                camera: "cam".into(),
                seq: self.seq,
                pts_ns: (t * 1e9).round() as i64,
                wall: time::OffsetDateTime::UNIX_EPOCH,
                width: w as u32,
                height: h as u32,
                format: crate::frame::PixelFormat::Rgb8,
                data: data.into(),
            };
            self.seq += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "driving box".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// Finds the white box exactly; records the time of every frame it runs on.
    struct WhiteBoxDetector {
        ran_at_s: Arc<Mutex<Vec<(f64, bool)>>>,
    }

    impl Detector for WhiteBoxDetector {
        fn detect(&mut self, f: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            let (w, h) = (f.width as usize, f.height as usize);
            let (mut x1, mut y1, mut x2, mut y2) = (usize::MAX, usize::MAX, 0, 0);
            for y in 0..h {
                for x in 0..w {
                    if f.data[(y * w + x) * 3] == 255 {
                        (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1));
                    }
                }
            }
            let found = x2 > 0;
            self.ran_at_s.lock().unwrap().push((f.pts_s(), found));
            let dets = if found {
                vec![Detection {
                    bbox: crate::detect::BBox {
                        x1: x1 as f32,
                        y1: y1 as f32,
                        x2: x2 as f32,
                        y2: y2 as f32,
                    },
                    score: 0.9,
                    class_id: 2,
                    class: "car",
                }]
            } else {
                Vec::new()
            };
            Ok((dets, DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "white-box"
        }
    }

    #[test]
    fn camera_logs_carry_the_camera_span_on_both_threads_and_errors_as_fields() {
        use crate::logging::capture::Capture;
        use tracing_subscriber::layer::SubscriberExt;
        let fx = Fixture::new("rtsp://cam/x", FailingDetector);
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let clock = crate::clock::RealClock::default();
        let env = fx.env(&clock, file_opts());
        let (sum, end) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("camera", camera = "cam-log");
            let _entered = span.enter();
            let source = Box::new(TestFrames::disconnecting(
                3,
                speedcam_core::source::link::LinkError::Io {
                    step: "reading the stream",
                    cause: std::io::Error::other("connection reset by peer"),
                },
            ));
            run_source(&env, source, &mut |_| {})
        });
        assert_eq!(sum.frames, 3, "{sum:?}");
        assert!(sum.detect_errors >= 1, "{sum:?}");
        let events = capture.events();
        assert!(!events.is_empty());
        for e in &events {
            assert_eq!(
                e.span_fields.get("camera.camera").map(String::as_str),
                Some("cam-log"),
                "every line names its camera through the span: {e:?}"
            );
            assert!(
                !e.fields.contains_key("camera"),
                "no second camera field: {e:?}"
            );
        }
        let decoded: Vec<_> = events
            .iter()
            .filter(|e| {
                e.fields
                    .get("message")
                    .is_some_and(|m| m == "first frame decoded")
            })
            .collect();
        assert_eq!(decoded.len(), 1, "{events:?}");
        assert!(decoded[0].thread.starts_with("decode-"), "{:?}", decoded[0]);
        let failed: Vec<_> = events
            .iter()
            .filter(|e| {
                e.fields
                    .get("message")
                    .is_some_and(|m| m == "detector failed")
            })
            .collect();
        assert_eq!(failed.len() as u64, sum.detect_errors, "{events:?}");
        assert_eq!(
            failed[0].fields.get("err").map(String::as_str),
            Some("inference failed (running the model): CUDA error 700: illegal address"),
            "the error is a field of its own, not message text: {:?}",
            failed[0]
        );
        // The loop's end keeps the source's error typed, and prints its cause once.
        let LoopEnd::Failed(failure) = end else {
            panic!("expected a failure, got {end:?}");
        };
        assert!(
            matches!(
                &failure,
                LoopFailure::Source {
                    cause: SourceError::Disconnected { .. },
                    ..
                }
            ),
            "{failure:?}"
        );
        let shown = format!("{:#}", anyhow::Error::from(failure));
        assert_eq!(
            shown.matches("connection reset by peer").count(),
            1,
            "{shown}"
        );
    }

    #[test]
    fn adaptive_skipping_idles_on_an_empty_road_and_runs_full_rate_through_the_zone() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let fx = Fixture::new(
            "synthetic.mp4",
            WhiteBoxDetector {
                ran_at_s: ran.clone(),
            },
        );
        let clock = crate::clock::RealClock::default();
        let env = fx.env(&clock, file_opts());
        let (sum, _) = run_source(&env, Box::new(DrivingBoxSource { seq: 0 }), &mut |_| {});
        let ran = ran.lock().unwrap().clone();
        assert_eq!(sum.frames, 180);
        assert_eq!(sum.detected + sum.skipped, 180);
        // Empty road (60 frames before the box): >= 90% skipped.
        let empty_detected = ran.iter().filter(|(t, _)| *t < BOX_FROM_S).count();
        assert!(
            empty_detected <= 6,
            "{empty_detected} of 60 empty frames detected: {ran:?}"
        );
        // The box is found on the first frame it shows (the motion check wakes the camera).
        let first = ran.iter().find(|(_, found)| *found).map(|(t, _)| *t);
        assert_eq!(first, Some(BOX_FROM_S), "{ran:?}");
        // While its ground point is in the zone (bottom centre x in ~210..1101 px), every frame.
        let in_zone: Vec<f64> = (0..180)
            .map(|i| i as f64 / 30.0)
            .filter(|&t| box_left_px(t).is_some_and(|x| (230.0..1080.0).contains(&(x + 40.0))))
            .collect();
        assert!(in_zone.len() > 50);
        for t in &in_zone {
            assert!(
                ran.iter().any(|(r, _)| (r - t).abs() < 1e-6),
                "frame at {t:.3} s in the zone was skipped"
            );
        }
        println!(
            "driving box: {} of 180 frames detected ({} of 60 on the empty road), {} skipped",
            sum.detected, empty_detected, sum.skipped
        );
    }

    /// A 30 fps camera into a detector that takes 100 ms, on a simulated clock: latest-wins
    /// detects the newest frame each time the detector gets free, so latency stays within one
    /// detection plus one frame interval; queueing every frame lets it grow without bound.
    #[test]
    fn latest_frame_wins_bounds_latency_under_a_slow_detector() {
        let (latest, runs) = simulated_slow_run(HandoffMode::LatestWins);
        let newest = SimulatedCamera::new(60);
        for &(seq, started) in &runs {
            assert_eq!(
                seq,
                newest.newest_at(started),
                "frame {seq} detected at {started:?} was not the newest: {runs:?}"
            );
        }
        // Free every 100 ms, it takes frames 0, 3, ..., 57 and then the last one, 59; the two
        // frames captured in each detection's time before the newest are dropped and counted.
        let seqs: Vec<u64> = runs.iter().map(|r| r.0).collect();
        let expected: Vec<u64> = (0..20).map(|i| 3 * i).chain([59]).collect();
        assert_eq!(seqs, expected);
        assert_eq!((latest.frames, latest.detected), (21, 21), "{latest:?}");
        assert_eq!(latest.dropped, 39, "{latest:?}");
        // 1/30 s, rounded up to the nanosecond as capture times are rounded down.
        let frame_interval = Duration::from_nanos(1_000_000_000_u64.div_ceil(SimulatedCamera::FPS));
        let max = latencies(&runs).into_iter().max().unwrap_or_default();
        assert!(max <= SLOW_DETECT + frame_interval, "{max:?}");
        assert!(
            (latest.wall_s - 2.1).abs() < 1e-9,
            "21 detections of 100 ms of clock time: {latest:?}"
        );

        let (every, runs) = simulated_slow_run(HandoffMode::EveryFrame);
        // Queueing every frame of a live camera: frame n waits for the n detections before it,
        // and the backlog grows by 67 ms a frame (4 s by the 60th): the reason live sources
        // use latest-wins.
        assert_eq!((every.detected, every.dropped), (60, 0), "{every:?}");
        let seqs: Vec<u64> = runs.iter().map(|r| r.0).collect();
        assert_eq!(seqs, (0..60).collect::<Vec<_>>());
        let lat = latencies(&runs);
        for (n, l) in lat.iter().enumerate() {
            let n = n as u64;
            let want = SLOW_DETECT * (n as u32 + 1) - SimulatedCamera::captured_at(n);
            assert_eq!(*l, want, "frame {n}");
        }
        let max_every = lat.iter().max().copied().unwrap_or_default();
        assert!(max_every > 4 * max, "{max_every:?} vs {max:?}");
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
        let mut fx = Fixture::new(
            "synthetic.mp4",
            NullDetector {
                delay: Duration::ZERO,
            },
        );
        let cfg = &mut fx.cfg;
        cfg.cameras[0].schedule.adaptive = false;
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
        fx.detector = Arc::new(DetectorGate::new(Box::new(SamePixelsDetector {
            homography: fx.cfg.cameras[0].homography.clone(),
        })));
        let speeds = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for cam in &fx.cfg.cameras {
                let (fx, speeds) = (&fx, &speeds);
                scope.spawn(move || {
                    let source = Box::new(RealTimeSource {
                        origin: Instant::now() - Duration::from_secs(10),
                        fps: 30.0,
                        frames: 60,
                        seq: 0,
                    });
                    let clock = crate::clock::RealClock::default();
                    let env = LoopEnv {
                        cam,
                        ..fx.env(&clock, file_opts())
                    };
                    let sum = camera_loop(&env, source, &mut |v| {
                        speeds.lock().unwrap().push((
                            v.event.camera.clone(),
                            v.event.speed_kmh.unwrap_or(f64::NAN),
                        ));
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

    /// A detector that answers at once (counting calls) until `wedge` is set, then says it
    /// `entered` the wedge and hangs until `release` is signalled or dropped.
    struct WedgingDetector {
        calls: Arc<AtomicU64>,
        wedge: Arc<AtomicBool>,
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    }

    impl Detector for WedgingDetector {
        fn detect(&mut self, _: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            if self.wedge.load(Ordering::Relaxed) {
                let _ = self.entered.send(());
                let _ = self.release.recv();
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "wedging"
        }
    }

    /// Polls `cond` until it holds; the camera loop runs on real threads. The deadline only
    /// turns a hang into a failure.
    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + SIM_HANG_GUARD;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The heartbeat and the watchdog gate on one simulated clock: time moves only when the
    /// test says so, so "wedged for longer than the limit" is exact, whatever the machine's load.
    #[test]
    fn a_wedged_inference_call_stops_the_heartbeat_and_the_watchdog_pings() {
        use liveness::{Liveness, WatchdogAction, WatchdogGate};
        let wedge = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let calls = Arc::new(AtomicU64::new(0));
        let mut fx = Fixture::new(
            "rtsp://cam/x",
            WedgingDetector {
                calls: calls.clone(),
                wedge: wedge.clone(),
                entered: entered_tx,
                release: release_rx,
            },
        );
        fx.cfg.cameras[0].schedule.adaptive = false;
        let clock = Arc::new(crate::clock::SimulatedClock::default());
        let live = Liveness::new(clock.clone());
        let mut opts = LoopOptions::for_source(true, Duration::from_secs(30));
        opts.hooks.heartbeat = Some(live.register("synth"));
        let stop = fx.stop.clone();
        let worker = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let source = Box::new(RealTimeSource {
                    origin: Instant::now(),
                    fps: 30.0,
                    frames: u64::MAX,
                    seq: 0,
                });
                run_source(&fx.env(clock.as_ref(), opts), source, &mut |_| {})
                    .0
                    .detected
            })
        };
        // A 600 ms watchdog: pings every 200 ms, a loop silent for 300 ms is wedged.
        let mut gate = WatchdogGate::new(Some(Duration::from_millis(600)), Duration::ZERO);
        let step = Duration::from_millis(100);
        let mut tick = || {
            clock.advance(step);
            gate.tick(live.now(), live.check(gate.limit()))
        };
        // Healthy: 1 s of clock time, each 100 ms step after a detection (so after a beat).
        let mut pings_healthy = 0;
        for _ in 0..10 {
            let seen = calls.load(Ordering::Relaxed);
            wait_until("a detection", || calls.load(Ordering::Relaxed) > seen);
            match tick() {
                WatchdogAction::Ping => pings_healthy += 1,
                WatchdogAction::Withhold { newly } => {
                    panic!("healthy loop reported wedged: {newly:?}")
                }
                WatchdogAction::Wait => {}
            }
        }
        // Wedged: inference hangs; the loop beats no more.
        wedge.store(true, Ordering::Relaxed);
        entered
            .recv_timeout(SIM_HANG_GUARD)
            .expect("the detector entered the wedge");
        // Up to the limit (300 ms) plus one step the gate may still ping; after it, never.
        for _ in 0..4 {
            tick();
        }
        let mut withheld = 0;
        for _ in 0..10 {
            match tick() {
                WatchdogAction::Ping => {
                    panic!("pinged although the loop was wedged past the limit")
                }
                WatchdogAction::Withhold { .. } => withheld += 1,
                WatchdogAction::Wait => {}
            }
        }
        drop(release);
        stop.store(true, Ordering::Relaxed);
        let detected = worker.join().expect("camera loop");
        assert!(detected >= 10, "the loop ran before the wedge: {detected}");
        assert!(
            pings_healthy >= 4,
            "pinged every 200 ms while healthy: {pings_healthy}"
        );
        assert!(withheld >= 1, "the wedge was reported");
    }
}

/// The store's side of a restarted replay: the pipeline gives each recorded vehicle the same
/// origin key in every run, and the sink stores it once.
#[cfg(test)]
mod restart_tests {
    use crate::event::origin::Recording;
    use crate::event::EventType;
    use crate::service::tests::{fixture_config, memory_sink};
    use crate::stats::StageTimes;
    use speedcam_core::pipeline::camera::testkit::drive_verdicts;

    #[test]
    fn a_restarted_replay_stores_each_vehicle_once_and_keeps_the_speeding_link() {
        let (cfg, _dir) = fixture_config("video.mp4");
        let sink = memory_sink(&cfg);
        let rec = Recording::of_bytes(1234, b"recording");
        let mut sum = super::RunSummary::default();
        let mut seen = 0;
        // First run: killed after its measurement was stored, before its speeding event.
        let first = drive_verdicts(60.0, None, Some(rec.clone()));
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.iter().all(|v| v.origin.is_some()));
        let mut m = first[0].clone();
        assert_eq!(
            sink.accept(&mut m, &mut StageTimes::default()).unwrap(),
            super::Accepted::Stored
        );
        // The restarted replay: the same vehicle, new random ids.
        let second = drive_verdicts(60.0, None, Some(rec.clone()));
        assert_ne!(second[0].event.event_id, first[0].event.event_id);
        super::deliver(second.clone(), &sink, &mut sum, None, &mut |_| seen += 1);
        assert_eq!(sink.already_recorded(), 1);
        assert_eq!(seen, 1, "only the new speeding event counts as a verdict");
        let stored = sink.store().events(None, None).unwrap();
        assert_eq!(stored.len(), 2, "{stored:?}");
        let speeding = stored
            .iter()
            .find(|e| e.kind == EventType::Speeding)
            .expect("speeding stored");
        assert_eq!(speeding.event_id, second[1].event.event_id);
        assert_eq!(
            speeding.measurement_id.as_deref(),
            Some(first[0].event.event_id.as_str()),
            "the speeding event points at the measurement stored before the restart"
        );
        // A third run changes nothing.
        super::deliver(
            drive_verdicts(60.0, None, Some(rec)),
            &sink,
            &mut sum,
            None,
            &mut |_| seen += 1,
        );
        assert_eq!(sink.already_recorded(), 3);
        assert_eq!(sink.store().events(None, None).unwrap().len(), 2);
        // Live frames (no recording) never recur: nothing is deduplicated.
        let live = drive_verdicts(60.0, None, None);
        assert!(live.iter().all(|v| v.origin.is_none()));
        super::deliver(live, &sink, &mut sum, None, &mut |_| seen += 1);
        assert_eq!(sink.store().events(None, None).unwrap().len(), 4);
        assert_eq!(seen, 3);
    }
}
