//! MQTT publishing of what the store recorded: events, thumbnails, status, camera state, stats.
//!
//! Why it is built around the sled outbox: rumqttc keeps requests made while disconnected only
//! in memory and drops unacknowledged in-flight publishes when the broker has no session, so
//! nothing that matters may live only in rumqttc. Events and their messages are written to the
//! [`Store`] first (flushed); this module reads the outbox in key order, keeps a bounded window
//! of publishes in flight, maps each PUBACK back to its outbox key and only then deletes the
//! entry. On every (re)connect it forgets what was in flight and resends every pending entry:
//! delivery is at least once and consumers dedupe by event id. rumqttc's request channel is
//! bounded and never holds more than the window, so a long outage grows sled, not memory.
//!
//! The pipeline never waits on the broker: [`Publisher::notify`] only wakes the MQTT task, which
//! runs on the given tokio runtime and retries an unreachable broker forever with jittered
//! exponential backoff, logging the outage once a minute rather than per attempt.
//!
//! Retained latest-value state (camera `state`, and with `home_assistant_discovery` the
//! per-camera `summary` and the Home Assistant discovery configs, see [`home_assistant`]) never
//! goes through the outbox: only the latest payload per topic is kept in memory and re-sent after
//! every reconnect, so it can neither block nor delay events.

pub mod home_assistant;
mod session;
mod task;
pub mod tls;
mod topics;
mod window;

pub use crate::backoff::{Backoff, LogLimiter};
pub use speedcam_core::config::mqtt::Secret;
pub use speedcam_core::config::mqtt::{
    check_topic_level, check_topic_prefix, MqttConfig, MqttConfigError, TlsFiles, DEFAULT_PORT,
    DEFAULT_TLS_PORT,
};
pub use tls::MqttTls;
pub use topics::Topics;

use crate::event::Event;
use crate::store::{CameraTally, Store};
use home_assistant::Discovery;
use session::Live;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Publishes allowed in flight (sent, not yet acknowledged) at once.
pub const WINDOW: usize = 32;

/// Largest MQTT packet this client sends (thumbnails are the big ones), bytes.
pub const MAX_PACKET_BYTES: usize = 8 * 1024 * 1024;

/// Failure to start publishing or to build a message.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A setting of `[mqtt]` cannot be used (URL, topic levels).
    #[error(transparent)]
    Config(#[from] MqttConfigError),
    /// The TLS material named by the config cannot be loaded.
    #[error(transparent)]
    Tls(#[from] tls::SecurityFileError),
    /// An event could not be encoded (printed in the message, so not chained as `source()`).
    #[error("cannot encode the event as JSON: {0}; this is a bug, please report it")]
    Encode(serde_json::Error),
}

/// Live figures of the publisher (for the `stats` topic, STATUS= and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherStats {
    /// Whether a broker connection is up.
    pub connected: bool,
    /// Entries waiting in the sled outbox.
    pub outbox_depth: usize,
    /// Outbox publishes handed to the network (resends included).
    pub published: u64,
    /// Outbox entries acknowledged by the broker and removed.
    pub acked: u64,
    /// Successful connections after the first one.
    pub reconnects: u64,
}

/// State shared between the [`Publisher`] handle and its task.
struct Shared {
    store: Store,
    wake: tokio::sync::Notify,
    /// Counters, retained and stats payloads, last error: what the session reads and reports.
    live: Arc<Live>,
    /// Home Assistant discovery and summaries, when enabled.
    ha: Option<HomeAssistant>,
}

impl Shared {
    /// Replaces the retained payload of `topic` (sent once per change and after every reconnect).
    fn set_retained(&self, topic: String, payload: Vec<u8>) {
        self.live.set_retained(topic, payload);
    }
}

/// Home Assistant discovery configs and the per-camera summaries behind its sensors.
struct HomeAssistant {
    discovery: Discovery,
    topics: Topics,
    state: Mutex<HaState>,
}

/// What [`HomeAssistant`] knows; summaries are published only once `counted`.
#[derive(Default)]
struct HaState {
    /// Cameras whose discovery configs are in the retained map.
    cameras: BTreeSet<String>,
    /// Per-camera tallies: before `counted` only the verdicts accepted since start.
    tallies: BTreeMap<String, CameraTally>,
    /// Whether the store's tallies have been merged in.
    counted: bool,
}

impl HomeAssistant {
    /// Registers `camera` (discovery configs, once) and counts `event`; queues the summary when
    /// the store has been counted. Returns whether anything new was queued.
    fn update(&self, shared: &Shared, camera: &str, event: Option<&Event>) -> bool {
        let mut st = lock(&self.state);
        let mut changed = false;
        if !st.cameras.contains(camera) {
            st.cameras.insert(camera.to_string());
            match self.discovery.messages(camera) {
                Ok(msgs) => {
                    for (topic, payload) in msgs {
                        shared.set_retained(topic, payload);
                    }
                    changed = true;
                }
                Err(e) => tracing::error!(camera, "Home Assistant discovery config: {e}"),
            }
        }
        if let Some(event) = event {
            st.tallies.entry(camera.to_string()).or_default().add(event);
        }
        if st.counted && (changed || event.is_some()) {
            changed |= self.queue_summary(shared, &st, camera);
        }
        changed
    }

    /// Merges the store's tallies (`None`: they could not be read) under the verdicts counted
    /// since start and queues every registered camera's summary.
    fn counted(&self, shared: &Shared, stored: Option<BTreeMap<String, CameraTally>>) {
        let mut st = lock(&self.state);
        let mut tallies = stored.unwrap_or_default();
        for (camera, live) in &st.tallies {
            tallies.entry(camera.clone()).or_default().absorb(live);
        }
        st.tallies = tallies;
        st.counted = true;
        for camera in &st.cameras {
            self.queue_summary(shared, &st, camera);
        }
    }

    fn queue_summary(&self, shared: &Shared, st: &HaState, camera: &str) -> bool {
        let empty = CameraTally::default();
        let tally = st.tallies.get(camera).unwrap_or(&empty);
        match home_assistant::summary_payload(camera, tally) {
            Ok(payload) => {
                shared.set_retained(self.topics.summary(camera), payload);
                true
            }
            Err(e) => {
                tracing::error!(camera, "summary: {e}");
                false
            }
        }
    }
}

/// Handle to the MQTT task. Dropping it without [`Publisher::shutdown`] cuts the connection
/// without DISCONNECT, so the broker publishes the last will (`offline`); the outbox keeps
/// whatever was not acknowledged.
pub struct Publisher {
    shared: Arc<Shared>,
    topics: Topics,
    shutdown_tx: Option<tokio::sync::oneshot::Sender<task::ShutdownRequest>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Publisher {
    /// Starts the MQTT task on `rt` and returns at once; connecting happens in the background.
    pub fn spawn(
        cfg: MqttConfig,
        store: Store,
        rt: &tokio::runtime::Handle,
    ) -> Result<Publisher, PublishError> {
        let topics = Topics::new(&cfg.base_topic, &cfg.device_id)?;
        let (host, port) = cfg.host_port()?;
        let ha = if cfg.home_assistant_discovery {
            Some(HomeAssistant {
                discovery: Discovery::new(
                    &cfg.home_assistant_prefix,
                    &cfg.device_id,
                    topics.clone(),
                )?,
                topics: topics.clone(),
                state: Mutex::new(HaState::default()),
            })
        } else {
            None
        };
        let mut opts = rumqttc::MqttOptions::new(cfg.effective_client_id(), host, port);
        opts.set_keep_alive(Duration::from_secs(cfg.keepalive_s))
            .set_clean_session(true)
            .set_inflight(u16::try_from(WINDOW * 8).unwrap_or(u16::MAX))
            .set_max_packet_size(64 * 1024, MAX_PACKET_BYTES)
            .set_last_will(rumqttc::LastWill::new(
                topics.status(),
                "offline",
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
        // TLS whenever the URL asks for it: rumqttc then never opens a plain TCP session.
        match (&cfg.tls, cfg.url_wants_tls()) {
            (Some(files), true) => {
                opts.set_transport(MqttTls::from_files(files)?.transport());
            }
            (None, false) => {}
            _ => {
                return Err(MqttConfigError::BadUrl {
                    url: crate::source::redact_uri(&cfg.url),
                    why: "the TLS settings do not match the URL scheme (mqtts:// needs them, mqtt:// must not have them); load the config through config::load".into(),
                }
                .into())
            }
        }
        if cfg.username.is_some() && cfg.tls.is_none() {
            tracing::warn!("mqtt.username and password are sent unencrypted over mqtt://; use mqtts:// (TLS) so they cannot be read on the network");
        }
        if let Some(user) = &cfg.username {
            let password = cfg.password.as_ref().map(|p| p.expose()).unwrap_or("");
            opts.set_credentials(user.clone(), password);
        }
        let shared = Arc::new(Shared {
            store,
            wake: tokio::sync::Notify::new(),
            live: Arc::new(Live::default()),
            ha,
        });
        if shared.ha.is_some() {
            count_stored_verdicts(shared.clone());
        }
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let task = task::Task::new(opts, topics.clone(), shared.clone(), shutdown_rx);
        let handle = rt.spawn(task.run());
        Ok(Publisher {
            shared,
            topics,
            shutdown_tx: Some(shutdown_tx),
            task: Some(handle),
        })
    }

    /// Topic names this publisher uses.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// New outbox entries were written: wake the task (never blocks).
    pub fn notify(&self) {
        self.shared.wake.notify_one();
    }

    /// Sets a camera's retained `state` payload (`streaming`, `reconnecting: ...`); only the
    /// latest per camera is kept and it is re-sent after every reconnect.
    /// With Home Assistant discovery this also registers the camera (see
    /// [`Publisher::register_camera`]).
    pub fn set_camera_state(&self, camera: &str, payload: &[u8]) {
        self.shared
            .set_retained(self.topics.state(camera), payload.to_vec());
        if let Some(ha) = &self.shared.ha {
            ha.update(&self.shared, camera, None);
        }
        self.notify();
    }

    /// With `home_assistant_discovery`: queues `camera`'s discovery configs (once; re-sent
    /// after every reconnect) and, once the store has been counted, its summary. Cameras also
    /// register on their first [`Publisher::set_camera_state`] or
    /// [`Publisher::record_verdict`]; calling this at start announces cameras that have
    /// reported neither yet. A no-op without discovery.
    pub fn register_camera(&self, camera: &str) {
        if let Some(ha) = &self.shared.ha {
            if ha.update(&self.shared, camera, None) {
                self.notify();
            }
        }
    }

    /// A verdict was stored: with `home_assistant_discovery`, counts it and queues the camera's
    /// retained `summary` (latest value wins; never blocks, never touches the outbox). A no-op
    /// without discovery.
    pub fn record_verdict(&self, event: &Event) {
        if let Some(ha) = &self.shared.ha {
            if ha.update(&self.shared, &event.camera, Some(event)) {
                self.notify();
            }
        }
    }

    /// Queues a `stats` payload (QoS 0); replaces one not yet sent, dropped while disconnected.
    pub fn publish_stats(&self, payload: &[u8]) {
        *lock(&self.shared.live.stats) = Some(payload.to_vec());
        self.notify();
    }

    /// Current figures.
    pub fn stats(&self) -> PublisherStats {
        let s = &self.shared.live;
        PublisherStats {
            connected: s.connected.load(Ordering::SeqCst),
            outbox_depth: self.shared.store.outbox_len(),
            published: s.published.load(Ordering::SeqCst),
            acked: s.acked.load(Ordering::SeqCst),
            reconnects: s.reconnects.load(Ordering::SeqCst),
        }
    }

    /// Why the broker connection is down, in words (a TLS handshake failure or a refused login
    /// is named as such); `None` while connected or before the first attempt failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.live.last_error).clone()
    }

    /// Drains the outbox for up to `drain_timeout`, then publishes the retained `offline`
    /// status and disconnects cleanly. Returns whether the outbox was emptied; if not, the
    /// connection is dropped and the broker publishes the last will (`offline`) instead.
    pub async fn shutdown(mut self, drain_timeout: Duration) -> bool {
        let Some(reply) = self.request_shutdown(drain_timeout) else {
            return false;
        };
        let drained = reply.await.unwrap_or(false);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        drained
    }

    /// [`Publisher::shutdown`] for synchronous code; must not be called from inside the runtime.
    pub fn shutdown_blocking(mut self, drain_timeout: Duration) -> bool {
        let Some(reply) = self.request_shutdown(drain_timeout) else {
            return false;
        };
        let drained = reply.blocking_recv().unwrap_or(false);
        // The task ends right after replying; it is not awaited here (no runtime context).
        self.task.take();
        drained
    }

    fn request_shutdown(
        &mut self,
        drain_timeout: Duration,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let request = task::ShutdownRequest {
            deadline: tokio::time::Instant::now() + drain_timeout,
            reply: reply_tx,
        };
        self.shutdown_tx.take()?.send(request).ok()?;
        Some(reply_rx)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Counts the verdicts already stored, per camera, on a thread of its own (a large store takes a
/// while: see [`Store::camera_tallies`]), then merges them under those accepted meanwhile and
/// queues the summaries. Only events created before now are counted; later ones arrive through
/// [`Publisher::record_verdict`].
fn count_stored_verdicts(shared: Arc<Shared>) {
    let before = time::OffsetDateTime::now_utc();
    let worker = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("speedcam-tally".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let stored = match worker.store.camera_tallies(Some(before)) {
                Ok(t) => {
                    tracing::info!(
                        cameras = t.len(),
                        "counted stored verdicts for the summaries in {:.2} s",
                        start.elapsed().as_secs_f64()
                    );
                    Some(t)
                }
                Err(e) => {
                    tracing::error!("cannot count stored verdicts: {e}; summaries count from now");
                    None
                }
            };
            if let Some(ha) = &worker.ha {
                ha.counted(&worker, stored);
            }
            worker.wake.notify_one();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start counting stored verdicts: {e}; summaries count from now");
        if let Some(ha) = &shared.ha {
            ha.counted(&shared, None);
        }
    }
}

/// Locks a mutex, recovering the data when another thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            base_topic: "speedcam".into(),
            device_id: "dev1".into(),
            client_id: None,
            keepalive_s: 30,
            publish_measurements: false,
            home_assistant_discovery: false,
            home_assistant_prefix: home_assistant::DEFAULT_PREFIX.into(),
            tls: None,
            username: None,
            password: None,
        }
    }

    #[test]
    fn urls_parse_to_host_and_port() {
        assert_eq!(
            cfg("mqtt://localhost:1884").host_port().unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(
            cfg("mqtt://broker.lan").host_port().unwrap(),
            ("broker.lan".into(), 1883)
        );
        assert_eq!(
            cfg("tcp://10.0.0.1:1883/").host_port().unwrap(),
            ("10.0.0.1".into(), 1883)
        );
        assert_eq!(
            cfg("mqtt://[::1]:1999").host_port().unwrap(),
            ("::1".into(), 1999)
        );
        assert_eq!(
            cfg("mqtt://[::1]").host_port().unwrap(),
            ("::1".into(), 1883)
        );
        for bad in [
            "localhost:1883",
            "mqtt://:1883",
            "mqtt://h:99999",
            "http://h",
            "mqtt://[::1",
        ] {
            assert!(cfg(bad).host_port().is_err(), "{bad}");
        }
        assert_eq!(
            cfg("mqtts://broker.lan").host_port().unwrap(),
            ("broker.lan".into(), 8883)
        );
        assert_eq!(
            cfg("ssl://127.0.0.1:9883").host_port().unwrap(),
            ("127.0.0.1".into(), 9883)
        );
        assert!(cfg("mqtts://h").url_wants_tls() && !cfg("mqtt://h").url_wants_tls());
        let userinfo = cfg("mqtt://bob:hunter2@h:1883")
            .host_port()
            .unwrap_err()
            .to_string();
        assert!(!userinfo.contains("hunter2"), "{userinfo}");
        assert!(userinfo.contains("password_file"), "{userinfo}");
    }

    #[test]
    fn publish_errors_print_their_cause_once() {
        use speedcam_core::error_chain::assert_cause_printed_once;
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let tls = PublishError::from(speedcam_core::config::mqtt::read_file(&missing).unwrap_err());
        let shown = assert_cause_printed_once(&tls);
        assert!(shown.contains("ca.pem"), "{shown}");
        let encode = PublishError::Encode(serde_json::from_str::<u8>("x").unwrap_err());
        assert_cause_printed_once(&encode);
    }

    #[test]
    fn debug_hides_the_password() {
        let mut c = cfg("mqtt://h");
        c.username = Some("bob".into());
        c.password = Some(Secret::new("hunter2"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("bob"),
            "{shown}"
        );
    }

    #[test]
    fn client_id_defaults_to_device() {
        assert_eq!(cfg("mqtt://h").effective_client_id(), "speedcamd-dev1");
    }
}
