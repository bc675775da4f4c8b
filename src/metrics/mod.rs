//! Live figures of the running daemon: frames in / detected / skipped / dropped, per-stage
//! latency, source state, outbox depth and MQTT connection, per camera.
//!
//! One [`Metrics`] per daemon holds them (a `prometheus-client` registry: no global state), and
//! renders them three ways from the same counters, so the figures always agree:
//! - [`Metrics::render_prometheus`]: the Prometheus text format, served at `GET /metrics` by
//!   [`serve`] when `[metrics] listen` is set;
//! - [`Metrics::stats_payload`]: the JSON of the MQTT `stats` topic (rates and latency
//!   percentiles over the time since the previous payload);
//! - [`Metrics::status_line`]: one short line for systemd's `STATUS=`.
//!
//! The pipeline feeds a [`CameraMetrics`] handle per camera: counters on each frame, stage
//! times through [`StageTimes`]'s observer (see
//! [`CameraMetrics::observer`]), source state on every state change.

mod http;
mod storage;

pub use http::{serve, MetricsServer};
pub use storage::StorageMetrics;

use crate::stats::{Stage, StageObserver, StageTimes};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Source states a camera reports (the `state` of its retained `<camera>/state` topic). Each
/// camera exports all of them in `speedcam_source_state{state=...}`, 1 for the current one.
pub const SOURCE_STATES: [&str; 5] = [
    "connecting",
    "streaming",
    "reconnecting",
    "stalled",
    "stopped",
];

/// Upper bounds of the stage latency histogram buckets, seconds: 0.1 ms to 2.5 s in 1-2.5-5
/// steps (a decode of a few ms, an inference of tens to hundreds, a stalled store of seconds).
pub(crate) const STAGE_BUCKETS_S: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds of the frame age histogram buckets (`speedcam_frame_age_seconds`), seconds:
/// finer than the stage buckets between 10 ms and 1 s, where a healthy pipeline's p50 and p99
/// fall (one inference of tens to hundreds of ms, shared by the cameras).
pub(crate) const FRAME_AGE_BUCKETS_S: [f64; 24] = [
    0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

/// Samples kept per camera and stage for the `stats` percentiles between two payloads (the
/// newest win when a window holds more: 30 fps for 10 s is 300).
pub(crate) const STATS_WINDOW_SAMPLES: usize = 4096;

pub use speedcam_core::config::metrics::{MetricsConfig, DEFAULT_STATS_INTERVAL_S};

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} for the metrics endpoint: {cause} (change [metrics] listen in the config, e.g. to another port, or remove it to run without the endpoint)")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The socket error (printed in the message).
        cause: std::io::Error,
    },
    /// The HTTP server or its thread could not be started.
    #[error("cannot start the metrics endpoint on {addr}: {message}")]
    Start {
        /// The configured address.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CameraLabels {
    camera: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    camera: String,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    camera: String,
    state: String,
}

fn stage_histogram() -> Histogram {
    Histogram::new(STAGE_BUCKETS_S)
}

fn frame_age_histogram() -> Histogram {
    Histogram::new(FRAME_AGE_BUCKETS_S)
}

/// The metric families, shared (cheap clones of `Arc`s) by the registry and the handles.
#[derive(Debug, Clone)]
struct Families {
    frames: Family<CameraLabels, Counter>,
    detected: Family<CameraLabels, Counter>,
    skipped: Family<CameraLabels, Counter>,
    dropped: Family<CameraLabels, Counter>,
    detect_errors: Family<CameraLabels, Counter>,
    store_errors: Family<CameraLabels, Counter>,
    measurements: Family<CameraLabels, Counter>,
    speeding: Family<CameraLabels, Counter>,
    queue_depth: Family<CameraLabels, Gauge>,
    source_state: Family<StateLabels, Gauge>,
    stage: Family<StageLabels, Histogram, fn() -> Histogram>,
    frame_age: Family<CameraLabels, Histogram, fn() -> Histogram>,
}

/// Totals of one camera at one moment (for rates between two reports).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    frames: u64,
    detected: u64,
    skipped: u64,
    dropped: u64,
    detect_errors: u64,
    store_errors: u64,
    measurements: u64,
    speeding: u64,
}

/// The figures at the previous report: time (s since creation) and each camera's totals.
#[derive(Debug, Default)]
struct Previous {
    at_s: f64,
    totals: Vec<(String, Totals)>,
}

impl Previous {
    fn of(&self, camera: &str) -> Totals {
        self.totals
            .iter()
            .find(|(id, _)| id == camera)
            .map(|(_, t)| *t)
            .unwrap_or_default()
    }
}

/// The daemon's live figures; share it as `Arc<Metrics>` (it is `Send + Sync`). Counters and
/// gauges are atomics; the few locks are held for a push or a copy, never across I/O.
#[derive(Debug)]
pub struct Metrics {
    device_id: String,
    started: Instant,
    registry: Registry,
    families: Families,
    outbox_depth: Gauge,
    publisher_connected: Gauge,
    /// Whether [`Metrics::set_publisher_connected`] was ever called (no MQTT: never).
    publisher_known: AtomicBool,
    cameras: Mutex<Vec<CameraMetrics>>,
    stats_prev: Mutex<Previous>,
    status_prev: Mutex<Previous>,
    /// `speedcam_storage_*`.
    storage: StorageMetrics,
}

/// Locks, recovering from a panic elsewhere: figures are plain data, a poisoned lock still
/// holds usable values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rounds to `decimals` places for compact JSON.
fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

impl Metrics {
    /// Creates the registry for `device_id` (exported as `speedcam_build_info{device_id, version}`);
    /// the uptime counts from now.
    pub fn new(device_id: &str) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("speedcam");
        let families = Families {
            frames: Family::default(),
            detected: Family::default(),
            skipped: Family::default(),
            dropped: Family::default(),
            detect_errors: Family::default(),
            store_errors: Family::default(),
            measurements: Family::default(),
            speeding: Family::default(),
            queue_depth: Family::default(),
            source_state: Family::default(),
            stage: Family::new_with_constructor(stage_histogram),
            frame_age: Family::new_with_constructor(frame_age_histogram),
        };
        let f = &families;
        registry.register(
            "build",
            "This daemon's device id and version",
            Info::new(vec![
                ("device_id".to_string(), device_id.to_string()),
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ]),
        );
        registry.register(
            "frames",
            "Frames received from the camera's source (decoded)",
            f.frames.clone(),
        );
        registry.register(
            "frames_detected",
            "Frames run through the detector",
            f.detected.clone(),
        );
        registry.register(
            "frames_skipped",
            "Frames the scheduler let pass without detection (the tracker predicted across them)",
            f.skipped.clone(),
        );
        registry.register(
            "frames_dropped",
            "Live frames replaced by a newer one before the pipeline took them (latest frame wins)",
            f.dropped.clone(),
        );
        registry.register(
            "detect_errors",
            "Detector failures (the frame is tracked as skipped)",
            f.detect_errors.clone(),
        );
        registry.register(
            "store_errors",
            "Verdicts the store refused (disk full, ...)",
            f.store_errors.clone(),
        );
        registry.register(
            "measurements",
            "Vehicles measured (one verdict per vehicle)",
            f.measurements.clone(),
        );
        registry.register("speeding", "Speeding events", f.speeding.clone());
        registry.register(
            "queue_depth",
            "Frames waiting in the hand-off from decode to detection",
            f.queue_depth.clone(),
        );
        registry.register(
            "source_state",
            "Health of the camera's source: 1 for the current state, 0 for the others",
            f.source_state.clone(),
        );
        registry.register_with_unit(
            "stage_duration",
            "Time spent per frame in each pipeline stage (latency: capture to detection done)",
            Unit::Seconds,
            f.stage.clone(),
        );
        registry.register_with_unit(
            "frame_age",
            "End-to-end latency per frame processed: capture (decoder hand-off, plus decode) to \
             its detections handled (tracker, speed, store and publish done); skipped frames \
             included, dropped ones never counted",
            Unit::Seconds,
            f.frame_age.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Events stored but not yet acknowledged by the MQTT broker",
            outbox_depth.clone(),
        );
        let publisher_connected = Gauge::default();
        registry.register(
            "publisher_connected",
            "1 while the MQTT client is connected to the broker",
            publisher_connected.clone(),
        );
        let storage = StorageMetrics::register(&mut registry);
        Arc::new(Metrics {
            storage,
            device_id: device_id.to_string(),
            started: Instant::now(),
            registry,
            families,
            outbox_depth,
            publisher_connected,
            publisher_known: AtomicBool::new(false),
            cameras: Mutex::new(Vec::new()),
            stats_prev: Mutex::new(Previous::default()),
            status_prev: Mutex::new(Previous::default()),
        })
    }

    /// The handle of camera `camera_id`, created (state `connecting`, every counter 0) on the
    /// first call; later calls return the same counters. Cheap to clone and send to threads.
    pub fn camera(&self, camera_id: &str) -> CameraMetrics {
        let mut cameras = lock(&self.cameras);
        if let Some(c) = cameras.iter().find(|c| c.inner.id == camera_id) {
            return c.clone();
        }
        let f = &self.families;
        let labels = CameraLabels {
            camera: camera_id.to_string(),
        };
        let stages = Stage::ALL
            .iter()
            .map(|s| {
                f.stage.get_or_create_owned(&StageLabels {
                    camera: camera_id.to_string(),
                    stage: s.name(),
                })
            })
            .collect();
        let c = CameraMetrics {
            inner: Arc::new(CameraInner {
                id: camera_id.to_string(),
                frames: f.frames.get_or_create_owned(&labels),
                detected: f.detected.get_or_create_owned(&labels),
                skipped: f.skipped.get_or_create_owned(&labels),
                dropped: f.dropped.get_or_create_owned(&labels),
                detect_errors: f.detect_errors.get_or_create_owned(&labels),
                store_errors: f.store_errors.get_or_create_owned(&labels),
                measurements: f.measurements.get_or_create_owned(&labels),
                speeding: f.speeding.get_or_create_owned(&labels),
                queue_depth: f.queue_depth.get_or_create_owned(&labels),
                stages,
                frame_age: f.frame_age.get_or_create_owned(&labels),
                window: Mutex::new(StageTimes::with_capacity(STATS_WINDOW_SAMPLES)),
                state: Mutex::new(String::new()),
                state_family: f.source_state.clone(),
            }),
        };
        c.set_source_state(SOURCE_STATES[0]);
        cameras.push(c.clone());
        c
    }

    /// The storage figures (`speedcam_storage_*`).
    pub fn storage(&self) -> &StorageMetrics {
        &self.storage
    }

    /// The device id given to [`Metrics::new`].
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Seconds since this `Metrics` was created: the `now_s` to pass to
    /// [`Metrics::stats_payload`] and [`Metrics::status_line`] in the daemon (tests pass their own).
    pub fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Sets the number of events in the outbox (stored, not yet acknowledged by the broker).
    pub fn set_outbox_depth(&self, n: u64) {
        self.outbox_depth.set(saturating_i64(n));
    }

    /// Sets whether the MQTT client is connected. Never called (no `[mqtt]`): the `stats`
    /// JSON says `null` and the status line says nothing about MQTT.
    pub fn set_publisher_connected(&self, up: bool) {
        self.publisher_connected.set(i64::from(up));
        self.publisher_known.store(true, Ordering::Relaxed);
    }

    /// Every metric in the Prometheus text format (version 0.0.4, [`PROMETHEUS_CONTENT_TYPE`]).
    /// Names start with `speedcam_`; per-camera series carry a `camera` label, stage latencies
    /// (`speedcam_stage_duration_seconds`, a histogram) also a `stage` label.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial text.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(err = %e, "encoding metrics failed");
        }
        out
    }

    fn snapshot(&self) -> Vec<CameraMetrics> {
        lock(&self.cameras).clone()
    }

    /// The JSON of the MQTT `stats` topic at `now_s` (seconds since creation, see
    /// [`Metrics::now_s`]). Rates (`fps_*`) and stage percentiles cover the time since the
    /// previous call (the first call: since creation); `interval_s` says how long that was.
    /// Totals count since the daemon started. Calling it starts a new window: call it only to
    /// publish.
    ///
    /// ```json
    /// {"schema": 1, "device_id": "pole-1", "uptime_s": 60.0, "interval_s": 10.0,
    ///  "outbox_depth": 0, "publisher_connected": true,
    ///  "cameras": {"cam1": {"source_state": "streaming", "fps_in": 25.0, "fps_detected": 6.2,
    ///    "fps_skipped": 18.8, "frames": 1500, "detected": 372, "skipped": 1128, "dropped": 0,
    ///    "detect_errors": 0, "store_errors": 0, "measurements": 4, "speeding": 1, "queue_depth": 0,
    ///    "stages": {"inference": {"count": 62, "p50_ms": 41.2, "p99_ms": 55.0}, ...}}}}
    /// ```
    pub fn stats_payload(&self, now_s: f64) -> serde_json::Value {
        let cameras = self.snapshot();
        let mut prev = lock(&self.stats_prev);
        let dt = now_s - prev.at_s;
        let mut cams = serde_json::Map::new();
        let mut next = Vec::with_capacity(cameras.len());
        for c in &cameras {
            let t = c.totals();
            let p = prev.of(&c.inner.id);
            let rate = |now: u64, before: u64| {
                if dt > 0.0 {
                    round(now.saturating_sub(before) as f64 / dt, 2)
                } else {
                    0.0
                }
            };
            let window = std::mem::replace(
                &mut *lock(&c.inner.window),
                StageTimes::with_capacity(STATS_WINDOW_SAMPLES),
            );
            let mut stages = serde_json::Map::new();
            for stage in Stage::ALL {
                if let Some(s) = window.summary(stage) {
                    stages.insert(
                        stage.name().into(),
                        serde_json::json!({
                            "count": s.count,
                            "p50_ms": round(s.median_ms, 3),
                            "p99_ms": round(s.p99_ms, 3),
                        }),
                    );
                }
            }
            cams.insert(
                c.inner.id.clone(),
                serde_json::json!({
                    "source_state": c.source_state(),
                    "fps_in": rate(t.frames, p.frames),
                    "fps_detected": rate(t.detected, p.detected),
                    "fps_skipped": rate(t.skipped, p.skipped),
                    "frames": t.frames,
                    "detected": t.detected,
                    "skipped": t.skipped,
                    "dropped": t.dropped,
                    "detect_errors": t.detect_errors,
                    "store_errors": t.store_errors,
                    "measurements": t.measurements,
                    "speeding": t.speeding,
                    "queue_depth": c.inner.queue_depth.get().max(0),
                    "stages": stages,
                }),
            );
            next.push((c.inner.id.clone(), t));
        }
        *prev = Previous {
            at_s: now_s,
            totals: next,
        };
        let publisher = if self.publisher_known.load(Ordering::Relaxed) {
            serde_json::Value::Bool(self.publisher_connected.get() != 0)
        } else {
            serde_json::Value::Null
        };
        serde_json::json!({
            "schema": 1,
            "device_id": self.device_id,
            "uptime_s": round(now_s, 1),
            "interval_s": round(dt.max(0.0), 3),
            "outbox_depth": self.outbox_depth.get().max(0),
            "publisher_connected": publisher,
            "cameras": cams,
        })
    }

    /// One short line of live figures for systemd's `STATUS=`, e.g.
    /// `2 cameras streaming, 14.9 fps in, 4.1 det/s, 3 speeding, outbox 0`. Rates are over the
    /// time since the previous call at `now_s` (seconds since creation; the first call: since
    /// creation), summed over cameras; `speeding` counts since start. Cameras not streaming are
    /// named with their state, and a disconnected MQTT client is said.
    pub fn status_line(&self, now_s: f64) -> String {
        let cameras = self.snapshot();
        let mut prev = lock(&self.status_prev);
        let dt = now_s - prev.at_s;
        let (mut frames, mut detected, mut speeding) = (0u64, 0u64, 0u64);
        let mut streaming = 0;
        let mut others = Vec::new();
        let mut next = Vec::with_capacity(cameras.len());
        for c in &cameras {
            let t = c.totals();
            let p = prev.of(&c.inner.id);
            frames += t.frames.saturating_sub(p.frames);
            detected += t.detected.saturating_sub(p.detected);
            speeding += t.speeding;
            let state = c.source_state();
            if state == "streaming" {
                streaming += 1;
            } else {
                others.push(format!("{} {state}", c.inner.id));
            }
            next.push((c.inner.id.clone(), t));
        }
        *prev = Previous {
            at_s: now_s,
            totals: next,
        };
        let per_s = |n: u64| if dt > 0.0 { n as f64 / dt } else { 0.0 };
        let n = cameras.len();
        let mut s = if others.is_empty() {
            format!("{n} camera{} streaming", if n == 1 { "" } else { "s" })
        } else {
            format!("{streaming}/{n} cameras streaming ({})", others.join(", "))
        };
        s += &format!(
            ", {:.1} fps in, {:.1} det/s, {speeding} speeding, outbox {}",
            per_s(frames),
            per_s(detected),
            self.outbox_depth.get().max(0)
        );
        if self.publisher_known.load(Ordering::Relaxed) && self.publisher_connected.get() == 0 {
            s += ", MQTT disconnected";
        }
        s
    }
}

/// The `Content-Type` of [`Metrics::render_prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct CameraInner {
    id: String,
    frames: Counter,
    detected: Counter,
    skipped: Counter,
    dropped: Counter,
    detect_errors: Counter,
    store_errors: Counter,
    measurements: Counter,
    speeding: Counter,
    queue_depth: Gauge,
    /// One histogram per [`Stage`], in `Stage::ALL` order (indexed by `stage as usize`).
    stages: Vec<Histogram>,
    /// End-to-end latency of each processed frame (`speedcam_frame_age_seconds`).
    frame_age: Histogram,
    /// Samples since the last `stats` payload, for its percentiles.
    window: Mutex<StageTimes>,
    /// The current source state's name.
    state: Mutex<String>,
    state_family: Family<StateLabels, Gauge>,
}

/// One camera's counters: a cheap `Clone` handle (an `Arc`) for the threads of its pipeline.
/// Every call is a few atomic operations (a short lock for stage times and state changes).
#[derive(Debug, Clone)]
pub struct CameraMetrics {
    inner: Arc<CameraInner>,
}

impl CameraMetrics {
    /// The camera id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A frame arrived from the source (after decode).
    pub fn frame_in(&self) {
        self.inner.frames.inc();
    }

    /// A frame went through the detector.
    pub fn detected(&self) {
        self.inner.detected.inc();
    }

    /// The scheduler let a frame pass without detection.
    pub fn skipped(&self) {
        self.inner.skipped.inc();
    }

    /// `n` more live frames were replaced by newer ones before the pipeline took them. Pass
    /// the increase since the last call (the counter only grows across reconnections).
    pub fn dropped(&self, n: u64) {
        self.inner.dropped.inc_by(n);
    }

    /// The detector failed on a frame.
    pub fn detect_error(&self) {
        self.inner.detect_errors.inc();
    }

    /// The store refused a verdict.
    pub fn store_error(&self) {
        self.inner.store_errors.inc();
    }

    /// A vehicle was measured (one verdict).
    pub fn measurement(&self) {
        self.inner.measurements.inc();
    }

    /// A measurement was speeding.
    pub fn speeding(&self) {
        self.inner.speeding.inc();
    }

    /// One frame's time in `stage`, milliseconds (non-finite values are ignored, negative ones
    /// count as 0). Exported in seconds in the histogram, in ms in the `stats` JSON.
    pub fn stage_ms(&self, stage: Stage, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let ms = ms.max(0.0);
        if let Some(h) = self.inner.stages.get(stage as usize) {
            h.observe(ms / 1e3);
        }
        lock(&self.inner.window).record(stage, ms);
    }

    /// One processed frame's end-to-end latency, milliseconds: from capture to its detections
    /// handled (tracked, measured, stored, published). Non-finite values are ignored.
    pub fn frame_age_ms(&self, ms: f64) {
        if ms.is_finite() {
            self.inner.frame_age.observe(ms.max(0.0) / 1e3);
        }
    }

    /// This handle as the observer of a [`StageTimes`]: every sample recorded there reaches
    /// [`CameraMetrics::stage_ms`] (`times.set_observer(Some(camera_metrics.observer()))`).
    pub fn observer(&self) -> Arc<dyn StageObserver> {
        Arc::new(self.clone())
    }

    /// The source's state, one of [`SOURCE_STATES`] (another name is exported as given).
    pub fn set_source_state(&self, state: &str) {
        let mut current = lock(&self.inner.state);
        if *current == state {
            return;
        }
        let labels = |s: &str| StateLabels {
            camera: self.inner.id.clone(),
            state: s.to_string(),
        };
        for s in SOURCE_STATES {
            self.inner.state_family.get_or_create(&labels(s)).set(0);
        }
        if !current.is_empty() {
            self.inner
                .state_family
                .get_or_create(&labels(&current))
                .set(0);
        }
        self.inner.state_family.get_or_create(&labels(state)).set(1);
        *current = state.to_string();
    }

    /// The current source state's name.
    pub fn source_state(&self) -> String {
        lock(&self.inner.state).clone()
    }

    fn totals(&self) -> Totals {
        let i = &self.inner;
        Totals {
            frames: i.frames.get(),
            detected: i.detected.get(),
            skipped: i.skipped.get(),
            dropped: i.dropped.get(),
            detect_errors: i.detect_errors.get(),
            store_errors: i.store_errors.get(),
            measurements: i.measurements.get(),
            speeding: i.speeding.get(),
        }
    }
}

impl StageObserver for CameraMetrics {
    fn observe(&self, stage: Stage, ms: f64) {
        self.stage_ms(stage, ms);
    }
}

#[cfg(test)]
mod tests;
