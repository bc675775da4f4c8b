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

mod task;
mod topics;
mod window;

pub use crate::backoff::{Backoff, LogLimiter};
pub use topics::{check_topic_level, Topics};

use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default MQTT port for `mqtt://host` URLs.
pub const DEFAULT_PORT: u16 = 1883;

/// Publishes allowed in flight (sent, not yet acknowledged) at once.
pub const WINDOW: usize = 32;

/// Largest MQTT packet this client sends (thumbnails are the big ones), bytes.
pub const MAX_PACKET_BYTES: usize = 8 * 1024 * 1024;

/// Connection settings (`[mqtt]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Broker URL, `mqtt://host:port` (port defaults to 1883).
    pub url: String,
    /// First topic level(s), default `speedcam`.
    pub base_topic: String,
    /// This device's id, the second topic level.
    pub device_id: String,
    /// MQTT client id; defaults to `speedcamd-<device_id>`.
    pub client_id: Option<String>,
    /// Keep-alive interval, s (>= 1; 0 disables pings).
    pub keepalive_s: u64,
    /// Whether measurement records go to `<camera>/measurements` (else only speeding events).
    pub publish_measurements: bool,
}

impl MqttConfig {
    /// Host and port from [`MqttConfig::url`]; only plain `mqtt://`/`tcp://` for now.
    pub fn host_port(&self) -> Result<(String, u16), PublishError> {
        let bad = |why: &str| PublishError::BadUrl {
            url: self.url.clone(),
            why: why.to_string(),
        };
        let rest = if let Some(rest) = self.url.strip_prefix("mqtt://") {
            rest
        } else if let Some(rest) = self.url.strip_prefix("tcp://") {
            rest
        } else if self.url.starts_with("mqtts://") || self.url.starts_with("ssl://") {
            return Err(bad("TLS is not supported by this build yet; use mqtt://"));
        } else {
            return Err(bad("expected mqtt://host:port"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (h, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' around an IPv6 host"))?;
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port is not a number 1-65535"))?,
            None => DEFAULT_PORT,
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("missing or malformed host"));
        }
        Ok((host.to_string(), port))
    }

    /// The client id used on the broker.
    pub fn effective_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("speedcamd-{}", self.device_id))
    }
}

/// Failure to start publishing or to build a message.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker URL cannot be used.
    #[error("invalid mqtt.url {url:?}: {why}")]
    BadUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// An id that becomes a topic level contains a separator or wildcard.
    #[error(
        "{what} {value:?} cannot be used in MQTT topics; use a non-empty name without '/', '+', \
         '#' or NUL"
    )]
    BadTopicLevel {
        /// Config key.
        what: String,
        /// Offending value.
        value: String,
    },
    /// An event could not be encoded.
    #[error("cannot encode the event as JSON: {0}; this is a bug, please report it")]
    Encode(#[source] serde_json::Error),
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
    connected: AtomicBool,
    published: AtomicU64,
    acked: AtomicU64,
    reconnects: AtomicU64,
    /// Latest retained payload per topic (camera state), resent after every reconnect.
    retained: Mutex<BTreeMap<String, (Vec<u8>, bool)>>,
    /// Latest stats payload not yet sent (QoS 0: dropped while disconnected).
    stats: Mutex<Option<Vec<u8>>>,
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
        let shared = Arc::new(Shared {
            store,
            wake: tokio::sync::Notify::new(),
            connected: AtomicBool::new(false),
            published: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            retained: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(None),
        });
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
    pub fn set_camera_state(&self, camera: &str, payload: &[u8]) {
        let mut map = lock(&self.shared.retained);
        map.insert(self.topics.state(camera), (payload.to_vec(), true));
        drop(map);
        self.notify();
    }

    /// Queues a `stats` payload (QoS 0); replaces one not yet sent, dropped while disconnected.
    pub fn publish_stats(&self, payload: &[u8]) {
        *lock(&self.shared.stats) = Some(payload.to_vec());
        self.notify();
    }

    /// Current figures.
    pub fn stats(&self) -> PublisherStats {
        let s = &self.shared;
        PublisherStats {
            connected: s.connected.load(Ordering::SeqCst),
            outbox_depth: s.store.outbox_len(),
            published: s.published.load(Ordering::SeqCst),
            acked: s.acked.load(Ordering::SeqCst),
            reconnects: s.reconnects.load(Ordering::SeqCst),
        }
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
        let tls = cfg("mqtts://h:8883").host_port().unwrap_err().to_string();
        assert!(tls.contains("TLS"), "{tls}");
    }

    #[test]
    fn client_id_defaults_to_device() {
        assert_eq!(cfg("mqtt://h").effective_client_id(), "speedcamd-dev1");
    }
}
