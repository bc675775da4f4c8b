//! The daemon (`speedcamd run`): every camera on its own thread sharing one detector, and one
//! control loop that talks to systemd and reacts to signals.
//!
//! - READY=1 once the model is loaded (and warmed up) and every camera has made its first open
//!   attempt (a camera that is down at start does not hold the daemon back: it keeps retrying
//!   and STATUS= says so).
//! - WATCHDOG=1 every third of `WatchdogSec`, but only while every running camera loop beats
//!   ([`super::liveness`]): a loop stuck in inference stops the pings and systemd restarts us.
//! - STATUS= one line of live figures, refreshed every few seconds.
//! - SIGHUP: RELOADING=1, re-read the file ([`super::reload`]), READY=1; a bad file is logged
//!   with its key and line and the running config stays.
//! - SIGTERM / Ctrl-C: STOPPING=1, cameras stop, the outbox drains until a deadline, the store
//!   is flushed. What did not drain stays in the sled outbox and is sent after the next start.

use super::liveness::{Liveness, WatchdogAction, WatchdogGate};
use super::notify::{self, Notify, SystemdNotify};
use super::reload::{self, LiveConfig};
use super::storage::{StorageGuard, StorageWorker};
use super::{
    open_detector, open_store, start_sink, supervisor, warn_achievable_rate, EventSink, LoopHooks,
    SharedDetector,
};
use crate::clock::{Clock, RealClock};
use crate::config::{CameraConfig, Config};
use crate::logging::LogHandle;
use crate::metrics::Metrics;
use crate::source::DefaultOpener;
use anyhow::Context;
use sd_notify::NotifyState;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the outbox may drain at shutdown; stays below the unit's `TimeoutStopSec=30s`.
pub(crate) const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How long camera threads get to finish their current frame at shutdown.
const SHUTDOWN_JOIN: Duration = Duration::from_secs(5);
/// How often STATUS= is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// A camera loop silent this long (beyond announced waits) counts as wedged when systemd set no
/// watchdog (then it is only logged); with a watchdog, half its interval.
const DEFAULT_WEDGE_LIMIT: Duration = Duration::from_secs(15);
/// The control loop's tick.
const TICK: Duration = Duration::from_millis(250);

/// What the daemon needs from its caller besides the config.
pub struct DaemonOptions<'a> {
    /// Where READY/STATUS/WATCHDOG go.
    pub notify: Arc<dyn Notify>,
    /// Changes the log filter when a reload changes `log_level`.
    pub log: Option<&'a LogHandle>,
    /// Time for the camera supervisors' backoff, the heartbeats and the storage worker.
    pub clock: Arc<dyn Clock>,
}

impl Default for DaemonOptions<'_> {
    fn default() -> Self {
        DaemonOptions {
            notify: Arc::new(SystemdNotify),
            log: None,
            clock: Arc::new(RealClock::default()),
        }
    }
}

/// Runs the daemon until SIGTERM or Ctrl-C; then drains the outbox (bounded) and exits. A
/// camera whose source fails is retried with exponential backoff; a file source that ends
/// stops its camera only.
pub fn run(cfg: &Config, opts: DaemonOptions<'_>) -> anyhow::Result<()> {
    let n = opts.notify.clone();
    n.send(&[NotifyState::Status("loading the model")]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = open_store(cfg)?;
    let detector = open_detector(cfg)?;
    let (_, detect_ms) = warn_achievable_rate(cfg, &detector);
    tracing::info!(detect_ms, "detector ready");
    let sink = start_sink(cfg, &store, rt.handle())?;
    let metrics = Metrics::new(&cfg.device_id);
    let storage = StorageGuard::new(&cfg.data_dir, &cfg.storage, metrics.storage().clone());
    let sink = Arc::new(sink.with_storage(storage.clone()));
    let storage_worker = StorageWorker::start(
        sink.clone(),
        storage.clone(),
        store.clone(),
        cfg.storage.prune_interval,
        opts.clock.clone(),
    )
    .context("starting the storage thread")?;
    if let Some(w) = cfg.metrics.exposure_warning() {
        tracing::warn!("{w}");
    }
    if let Some(w) = crate::config::mem_total_bytes().and_then(|m| cfg.storage.memory_warning(m)) {
        tracing::warn!("{w}");
    }
    let _endpoint = match cfg.metrics.listen {
        Some(addr) => {
            let server = crate::metrics::serve(addr, metrics.clone())
                .context("starting the metrics endpoint ([metrics] listen)")?;
            tracing::info!("metrics at http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let live_cfg = LiveConfig::new(cfg.clone());
    let liveness = Liveness::new(opts.clock.clone());
    let board = Arc::new(Board::default());
    n.send(&[NotifyState::Status("opening cameras")]);
    tracing::info!(cameras = cfg.cameras.len(), "speedcamd running");
    let mut threads = Vec::new();
    for cam in cfg.cameras.clone() {
        let ctx = CameraContext {
            cfg: cfg.clone(),
            detector: detector.clone(),
            sink: sink.clone(),
            stop: stop.clone(),
            clock: opts.clock.clone(),
            board: board.clone(),
            hooks: LoopHooks {
                heartbeat: Some(liveness.register(&cam.id)),
                config: Some(live_cfg.clone()),
                metrics: Some(metrics.camera(&cam.id)),
            },
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("camera-{}", cam.id))
                .spawn(move || camera_thread(&cam, ctx))
                .context("spawning camera thread")?,
        );
    }
    let control = Control {
        notify: n.clone(),
        log: opts.log,
        live_cfg,
        liveness,
        board,
        cameras: cfg.cameras.len(),
        store: store.clone(),
        metrics,
        sink: sink.clone(),
        stats_every: cfg.metrics.stats_interval,
        clock: opts.clock.clone(),
    };
    let why = rt.block_on(control.run());
    tracing::info!("{why}: stopping");
    n.send(&[
        NotifyState::Stopping,
        NotifyState::Status(&format!("stopping ({why})")),
    ]);
    stop.store(true, Ordering::Relaxed);
    let joined = join_until(threads, Instant::now() + SHUTDOWN_JOIN);
    // Last retry of verdicts held for a full disk; releases its handle on the sink.
    storage_worker.stop();
    match Arc::try_unwrap(sink) {
        Ok(mut sink) => {
            if let Some(p) = sink.take_publisher() {
                let outbox = store.outbox_len();
                n.send(&[NotifyState::Status(&format!(
                    "stopping: draining {outbox} outbox message(s)"
                ))]);
                let drained = p.shutdown_blocking(SHUTDOWN_DRAIN);
                tracing::info!(drained, outbox = store.outbox_len(), "publisher stopped");
            }
        }
        Err(_) => tracing::error!(
            stuck = joined.1,
            outbox = store.outbox_len(),
            "camera thread(s) did not stop within {} s; exiting without draining (the outbox is kept and sent after the next start)",
            SHUTDOWN_JOIN.as_secs()
        ),
    }
    if let super::storage::StorageState::Failed { error } = storage.state() {
        // A failed sled blocks forever in flush (see `super::storage`): skip it.
        tracing::error!("not flushing the store at exit: it failed earlier ({error})");
        return Ok(());
    }
    store.flush().context("flushing the store")?;
    Ok(())
}

/// Joins the threads that finish before `deadline`; returns (joined, still running).
fn join_until(threads: Vec<std::thread::JoinHandle<()>>, deadline: Instant) -> (usize, usize) {
    let mut pending = threads;
    let mut joined = 0;
    loop {
        let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|t| t.is_finished());
        joined += done.len();
        for t in done {
            let _ = t.join();
        }
        pending = rest;
        if pending.is_empty() || Instant::now() >= deadline {
            return (joined, pending.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cameras that made their first open attempt, for READY.
#[derive(Default)]
struct Board {
    opened: Mutex<BTreeSet<String>>,
}

impl Board {
    fn set(&self, camera: &str, state: &supervisor::CameraState) {
        if !matches!(state, supervisor::CameraState::Connecting { .. }) {
            self.opened
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(camera.to_string());
        }
    }

    /// How many cameras made their first open attempt.
    fn opened(&self) -> usize {
        self.opened.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The control loop: systemd notifications, watchdog, signals.
struct Control<'a> {
    notify: Arc<dyn Notify>,
    log: Option<&'a LogHandle>,
    live_cfg: Arc<LiveConfig>,
    liveness: Arc<Liveness>,
    board: Arc<Board>,
    cameras: usize,
    store: crate::store::Store,
    metrics: Arc<Metrics>,
    sink: Arc<EventSink>,
    /// Period of the MQTT `stats` topic.
    stats_every: Duration,
    /// Time for the STATUS= and `stats` cadence.
    clock: Arc<dyn Clock>,
}

/// "Every `every`" on a clock: due at once, then `every` after the last time it was done.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    every: Duration,
    last: Option<Duration>,
}

impl Cadence {
    fn new(every: Duration) -> Self {
        Cadence { every, last: None }
    }

    /// Records that it was done at `now` (clock time).
    fn done(&mut self, now: Duration) {
        self.last = Some(now);
    }

    /// Whether it is due at `now`; if so, counts it as done.
    fn take(&mut self, now: Duration) -> bool {
        let due = self
            .last
            .is_none_or(|t| now.saturating_sub(t) >= self.every);
        if due {
            self.done(now);
        }
        due
    }
}

impl Control<'_> {
    /// Runs until a stop signal; returns its name.
    async fn run(self) -> &'static str {
        let mut signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(err = %e, "cannot listen for signals");
                return "no signal handling";
            }
        };
        let watchdog = self.notify.watchdog();
        let mut gate = WatchdogGate::new(watchdog, DEFAULT_WEDGE_LIMIT);
        let mut ready = false;
        let mut status_due = Cadence::new(STATUS_EVERY);
        let mut stats_due = Cadence::new(self.stats_every);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = signals.term.recv() => return "SIGTERM",
                _ = signals.int.recv() => return "SIGINT",
                _ = signals.hup.recv() => self.reload(),
                _ = tick.tick() => {}
            }
            if !ready {
                if self.board.opened() < self.cameras {
                    continue;
                }
                ready = true;
                let status = self.status_line(&[]);
                tracing::info!("ready: {status}");
                self.notify
                    .send(&[NotifyState::Ready, NotifyState::Status(&status)]);
                status_due.done(self.clock.now());
            }
            let wedged = self.liveness.check(gate.limit());
            match gate.tick(self.liveness.now(), wedged.clone()) {
                WatchdogAction::Ping => self.notify.send(&[NotifyState::Watchdog]),
                WatchdogAction::Wait => {}
                WatchdogAction::Withhold { newly } => {
                    for w in &newly {
                        tracing::error!(camera = %w.camera, silent_s = w.silent_s, watchdog = watchdog.is_some(), "camera loop makes no progress (inference or source wedged); watchdog pings withheld");
                    }
                }
            }
            let now = self.clock.now();
            if stats_due.take(now) {
                self.publish_stats();
            }
            if status_due.take(now) {
                self.notify
                    .send(&[NotifyState::Status(&self.status_line(&wedged))]);
            }
        }
    }

    /// SIGHUP: RELOADING=1, apply what can change, READY=1.
    fn reload(&self) {
        let path = self.live_cfg.current().path.clone();
        tracing::info!("SIGHUP: reloading {}", path.display());
        notify::reloading(
            self.notify.as_ref(),
            &format!("reloading {}", path.display()),
        );
        let status = match reload::reload(&self.live_cfg) {
            Ok(outcome) => {
                let summary = outcome.summary();
                if outcome.restart_needed.is_empty() {
                    tracing::info!("{summary}");
                } else {
                    tracing::warn!("{summary}");
                }
                if let Some(log) = self.log {
                    let level = self.live_cfg.current().log_level.clone();
                    if let Err(e) = log.apply_config(level.as_deref()) {
                        tracing::warn!(err = %e, "log_level not applied");
                    }
                }
                summary
            }
            Err(e) => {
                tracing::error!(err = %e, "reload rejected, the running config stays");
                let first = e.to_string();
                let first = first.lines().last().unwrap_or_default().trim();
                format!("reload rejected, running config kept: {first}")
            }
        };
        self.notify
            .send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// Refreshes the gauges the camera loops cannot see and sends the `stats` topic.
    fn publish_stats(&self) {
        self.refresh_gauges();
        let mut payload = self.metrics.stats_payload(self.metrics.now_s());
        if let (Some(g), Some(obj)) = (self.sink.storage(), payload.as_object_mut()) {
            let m = self.metrics.storage();
            obj.insert(
                "storage".into(),
                serde_json::json!({
                    "ok": m.ok.get() == 1,
                    "retry_queue": g.queued(),
                    "deferred": m.deferred.get(),
                    "lost": m.lost.get(),
                    "dir_bytes": m.dir_bytes.get().max(0),
                    "free_bytes": m.free_bytes.get().max(0),
                    "pruned_events": m.pruned.get(),
                }),
            );
        }
        if let Some(p) = self.sink.publisher() {
            p.publish_stats(payload.to_string().as_bytes());
        }
    }

    fn refresh_gauges(&self) {
        match self.sink.publisher() {
            Some(p) => {
                let st = p.stats();
                self.metrics.set_outbox_depth(st.outbox_depth as u64);
                self.metrics.set_publisher_connected(st.connected);
            }
            None => self
                .metrics
                .set_outbox_depth(self.store.outbox_len() as u64),
        }
    }

    /// One line of live figures (STATUS=).
    fn status_line(&self, wedged: &[super::liveness::Wedged]) -> String {
        self.refresh_gauges();
        let mut s = self.metrics.status_line(self.metrics.now_s());
        if !wedged.is_empty() {
            let names: Vec<&str> = wedged.iter().map(|w| w.camera.as_str()).collect();
            s.push_str(&format!("; WEDGED: {}", names.join(", ")));
        }
        if let Some(storage) = self.sink.storage().and_then(|g| g.status()) {
            s.push_str(&format!("; {storage}"));
        }
        // Why MQTT is down (a TLS handshake or a refused login is named), so `systemctl status`
        // shows the cause without a trip to the journal.
        if let Some(why) = self
            .sink
            .publisher()
            .filter(|p| !p.stats().connected)
            .and_then(|p| p.last_error())
        {
            s.push_str(&format!("; MQTT: {}", truncate_chars(&why, 160)));
        }
        s
    }
}

/// At most `max` characters of `s`, with "..." when cut (STATUS= is one short line).
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// SIGTERM, SIGINT and SIGHUP as async streams.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What one camera thread shares with the rest of the daemon.
struct CameraContext {
    cfg: Config,
    detector: SharedDetector,
    sink: Arc<EventSink>,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
    board: Arc<Board>,
    hooks: LoopHooks,
}

/// One camera's life in the daemon: the supervisor opens, streams and reopens its source
/// until shutdown; state changes are logged and published retained at `<camera>/state`.
fn camera_thread(cam: &CameraConfig, ctx: CameraContext) {
    // Every line this camera's thread (and its decode thread) logs carries its id:
    // `SPEEDCAM_CAMERA=<id>` in the journal (see README, "Logs").
    let span = tracing::info_span!("camera", camera = %cam.id);
    let _entered = span.enter();
    let opener = DefaultOpener::for_camera(cam).with_replay(cam.live.replay);
    let report = |state: &supervisor::CameraState| {
        tracing::info!(state = ?state, "camera state");
        ctx.board.set(&cam.id, state);
        if let Some(m) = &ctx.hooks.metrics {
            m.set_source_state(state.name());
        }
        if let Some(p) = ctx.sink.publisher() {
            p.set_camera_state(&cam.id, &state.payload(&cam.id));
        }
    };
    let sup = supervisor::Supervisor {
        cam,
        cfg: &ctx.cfg,
        opener: &opener,
        detector: &ctx.detector,
        sink: &ctx.sink,
        stop: &ctx.stop,
        clock: ctx.clock.as_ref(),
        policy: cam.reconnect,
        report: &report,
        hooks: ctx.hooks.clone(),
    };
    let totals = sup.run(&mut |v| {
        tracing::info!(kind = ?v.event.kind, speed_kmh = v.event.speed_kmh, track = v.event.track_id, "verdict");
    });
    tracing::info!(
        connections = totals.connections,
        failures = totals.failures,
        frames = totals.sum.frames,
        dropped = totals.sum.dropped,
        "camera stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisor::CameraState;

    #[test]
    fn status_and_stats_cadence_follow_the_clock() {
        let s = Duration::from_secs;
        let mut c = Cadence::new(s(5));
        assert!(c.take(s(0)), "due at once");
        assert!(!c.take(s(4)));
        assert!(c.take(s(5)));
        assert!(!c.take(s(9)));
        // A READY line counts as a status line: the next is due `every` after it.
        c.done(s(12));
        assert!(!c.take(s(16)));
        assert!(c.take(s(17)));
        // A clock that stood still (or a tick that came early) never makes it due twice.
        assert!(!c.take(s(17)));
    }

    #[test]
    fn status_reasons_are_cut_on_a_char_boundary() {
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("ab\u{e9}cd", 3), "ab\u{e9}...");
    }

    #[test]
    fn board_counts_first_open_attempts_once() {
        let b = Board::default();
        b.set("a", &CameraState::Connecting { source: "x".into() });
        assert_eq!(b.opened(), 0);
        b.set("a", &CameraState::Streaming { source: "x".into() });
        b.set(
            "b",
            &CameraState::Reconnecting {
                reason: "refused".into(),
                attempt: 1,
                retry_in_s: 1.0,
            },
        );
        b.set("a", &CameraState::Stalled { after_s: 10.0 });
        b.set("a", &CameraState::Streaming { source: "x".into() });
        assert_eq!(b.opened(), 2);
    }

    #[test]
    fn join_until_gives_up_on_a_stuck_thread() {
        let (release, stuck_waits) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = stuck_waits.recv();
        });
        let quick = std::thread::spawn(|| {});
        // The quick thread has ended before the deadline starts (polled; the minute only turns
        // a hang into a failure), so the deadline alone decides about the stuck one.
        let hang_guard = Instant::now() + Duration::from_secs(60);
        while !quick.is_finished() {
            assert!(Instant::now() < hang_guard, "the quick thread never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
        let (joined, left) = join_until(
            vec![quick, stuck],
            Instant::now() + Duration::from_millis(100),
        );
        assert_eq!((joined, left), (1, 1));
        drop(release);
    }
}
