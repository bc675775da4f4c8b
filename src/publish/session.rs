//! The MQTT session as an I/O-free state machine: what to publish, when to retry, when to stop.
//!
//! It owns no socket, no runtime and no clock (rumqttc's own `state.rs` pattern): the task in
//! [`super::task`] turns rumqttc events and timers into calls of the `on_*` methods, giving the
//! time as a [`Duration`] since an origin of its choosing, and after each one calls
//! [`Session::poll`], which hands requests to a [`Client`] and says what to wait for next.
//! The outbox is reached through the [`Outbox`] trait and backoff jitter is injected, so tests
//! drive a whole outage, replay and shutdown with simulated time and an in-memory outbox.
//!
//! Why requests go to a [`Client`] instead of an action list: whether rumqttc's request queue
//! took a request decides what happens next (the outbox cursor, a camera state's dirty flag,
//! the shutdown stage), so the answer is needed at once.

use super::window::{InFlight, Tag};
use super::{lock, Topics, MAX_PACKET_BYTES, WINDOW};
use crate::backoff::{Backoff, LogLimiter};
use crate::store::{OutboxKey, OutboxMessage, Store, StoreError};
use rumqttc::QoS;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First reconnect delay (nominal; jitter takes it down to half).
const RETRY_INITIAL: Duration = Duration::from_millis(250);
/// Longest reconnect delay (nominal).
const RETRY_MAX: Duration = Duration::from_secs(30);
/// At most one "broker unreachable" warning per this interval.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The durable queue of messages to deliver at least once (the sled outbox in the daemon).
pub(super) trait Outbox {
    /// Why the outbox cannot be read or changed.
    type Error: std::fmt::Display;
    /// Up to `n` entries with keys after `after` (from the first with `None`), in key order.
    fn pending(
        &self,
        after: Option<OutboxKey>,
        n: usize,
    ) -> Result<Vec<(OutboxKey, OutboxMessage)>, Self::Error>;
    /// Entries waiting.
    fn len(&self) -> usize;
    /// Removes an entry the broker acknowledged (a no-op when it is already gone).
    fn ack(&mut self, key: OutboxKey) -> Result<(), Self::Error>;
}

impl Outbox for Store {
    type Error = StoreError;

    fn pending(
        &self,
        after: Option<OutboxKey>,
        n: usize,
    ) -> Result<Vec<(OutboxKey, OutboxMessage)>, StoreError> {
        self.outbox_pending(after, n)
    }

    fn len(&self) -> usize {
        self.outbox_len()
    }

    fn ack(&mut self, key: OutboxKey) -> Result<(), StoreError> {
        self.outbox_ack(key)
    }
}

/// A publish request for the MQTT client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Publish {
    /// Full topic.
    pub(super) topic: String,
    /// QoS 0 or 1 (QoS 2 outbox entries are sent as 1: acks are tracked on PUBACK only).
    pub(super) qos: QoS,
    /// Retain flag.
    pub(super) retain: bool,
    /// Payload bytes.
    pub(super) payload: Vec<u8>,
}

/// The MQTT client refused a request without blocking (its queue is full or closed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Refused(pub(super) String);

/// Where the session hands its requests: rumqttc's `AsyncClient` in the task, a recorder in
/// tests. Both calls must return at once.
pub(super) trait Client {
    /// Queues a publish; it is reported back through [`Session::on_sent`] once written.
    fn publish(&mut self, msg: Publish) -> Result<(), Refused>;
    /// Queues a DISCONNECT; reported back through [`Session::on_disconnect_written`].
    fn disconnect(&mut self) -> Result<(), Refused>;
}

/// What the `Publisher` handle and the session share: latest-value payloads to send and the
/// figures shown by `Publisher::stats` and `Publisher::last_error`. Plain atomics and mutexes,
/// so a test builds one without a store or runtime.
#[derive(Debug, Default)]
pub(super) struct Live {
    /// Whether a broker connection is up.
    pub(super) connected: AtomicBool,
    /// Outbox publishes handed to the network (resends included).
    pub(super) published: AtomicU64,
    /// Outbox entries acknowledged by the broker and removed.
    pub(super) acked: AtomicU64,
    /// Successful connections after the first one.
    pub(super) reconnects: AtomicU64,
    /// Latest retained payload per topic and whether it still has to be sent; all are marked
    /// again after every reconnect.
    pub(super) retained: Mutex<BTreeMap<String, (Vec<u8>, bool)>>,
    /// Latest stats payload not yet sent (QoS 0: dropped while disconnected).
    pub(super) stats: Mutex<Option<Vec<u8>>>,
    /// Why the last connection attempt failed; cleared on connect.
    pub(super) last_error: Mutex<Option<String>>,
}

impl Live {
    /// Replaces the retained payload of `topic` (sent once per change and after every reconnect).
    pub(super) fn set_retained(&self, topic: String, payload: Vec<u8>) {
        lock(&self.retained).insert(topic, (payload, true));
    }
}

/// What the task does after [`Session::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Stop: shutdown finished or its deadline passed; `drained` says whether the outbox is
    /// empty.
    Stopped {
        /// Whether the outbox was emptied.
        drained: bool,
    },
    /// Wait for the next input, then call [`Session::poll`] again.
    Wait {
        /// When to call [`Session::on_timeout`] (reconnect delay over, or drain deadline).
        until: Option<Duration>,
        /// Whether to drive the connection (off while a reconnect delay runs).
        network: bool,
        /// Whether new outbox entries, camera states or stats are worth waking up for (only
        /// while connected: a wake-up must not restart a slow connection attempt).
        wake: bool,
    },
}

/// Where shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the outbox to empty.
    Draining,
    /// `offline` handed over, waiting for its PUBACK.
    OfflineSent,
    /// DISCONNECT handed over, waiting for it to be written.
    Disconnecting,
}

/// A shutdown in progress.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    stage: Stage,
    /// When to give up draining (time since the task's origin).
    deadline: Duration,
}

/// The publisher's connection state; see the module doc.
pub(super) struct Session<O: Outbox> {
    outbox: O,
    live: Arc<Live>,
    topics: Topics,
    /// Uniform random numbers in [0, 1) for the reconnect jitter.
    jitter: Box<dyn FnMut() -> f64 + Send>,
    connected: bool,
    ever_connected: bool,
    /// A ConnAck arrived: `online` is due at the next poll.
    online_due: bool,
    /// The `offline` PUBACK arrived: DISCONNECT is due at the next poll.
    disconnect_due: bool,
    /// Last outbox key handed over on this connection.
    cursor: Option<OutboxKey>,
    inflight: InFlight,
    backoff: Backoff,
    /// When the next connection attempt may start.
    retry_at: Option<Duration>,
    /// Failed connection attempts since the last success.
    failures: u64,
    log_limit: LogLimiter,
    stopping: Option<Stopping>,
    /// Set once the session has stopped: whether the outbox was drained.
    stopped: Option<bool>,
}

impl<O: Outbox> Session<O> {
    /// A session not yet connected; `jitter` returns uniform numbers in [0, 1).
    pub(super) fn new(
        outbox: O,
        live: Arc<Live>,
        topics: Topics,
        jitter: Box<dyn FnMut() -> f64 + Send>,
    ) -> Session<O> {
        Session {
            outbox,
            live,
            topics,
            jitter,
            connected: false,
            ever_connected: false,
            online_due: false,
            disconnect_due: false,
            cursor: None,
            inflight: InFlight::default(),
            backoff: Backoff::new(RETRY_INITIAL, RETRY_MAX),
            retry_at: None,
            failures: 0,
            log_limit: LogLimiter::new(UNREACHABLE_LOG_INTERVAL),
            stopping: None,
            stopped: None,
        }
    }

    /// The broker accepted the connection (clean session).
    pub(super) fn on_connack(&mut self) {
        if self.ever_connected {
            self.live.reconnects.fetch_add(1, Ordering::SeqCst);
        }
        if self.failures > 0 {
            tracing::info!(
                failed_attempts = self.failures,
                "MQTT broker reachable again"
            );
        } else {
            tracing::info!("connected to the MQTT broker");
        }
        self.ever_connected = true;
        self.connected = true;
        self.live.connected.store(true, Ordering::SeqCst);
        *lock(&self.live.last_error) = None;
        self.failures = 0;
        self.backoff.reset();
        self.log_limit.reset();
        // Clean session: rumqttc dropped whatever was in flight, so start over from the oldest
        // pending entry; the broker may deliver some twice (consumers dedupe by event id).
        self.inflight.clear();
        self.cursor = None;
        for (_, dirty) in lock(&self.live.retained).values_mut() {
            *dirty = true;
        }
        self.online_due = true;
    }

    /// rumqttc wrote a publish with packet id `pkid` (0 for QoS 0).
    pub(super) fn on_sent(&mut self, pkid: u16) {
        if let Some(Tag::Outbox(key, _)) = self.inflight.sent(pkid) {
            self.live.published.fetch_add(1, Ordering::SeqCst);
            if pkid == 0 {
                self.ack_outbox(key); // QoS 0 entry: sent is all there is
            }
        }
    }

    /// rumqttc held the next publish back: packet id `pkid` is still in flight.
    pub(super) fn on_collision(&mut self, pkid: u16) {
        tracing::debug!(pkid, "MQTT packet id collision; waiting for its ack");
        self.inflight.collided();
    }

    /// The broker acknowledged packet id `pkid`.
    pub(super) fn on_puback(&mut self, pkid: u16) {
        match self.inflight.acked(pkid) {
            Some(Tag::Outbox(key, _)) => self.ack_outbox(key),
            Some(Tag::Offline) => {
                if let Some(stopping) = &mut self.stopping {
                    stopping.stage = Stage::Disconnecting;
                }
                self.disconnect_due = true;
            }
            Some(Tag::Other) | None => {}
        }
    }

    /// rumqttc wrote a DISCONNECT.
    pub(super) fn on_disconnect_written(&mut self) {
        if matches!(self.stopping, Some(s) if s.stage == Stage::Disconnecting) {
            self.connected = false;
        }
    }

    /// The connection (or an attempt) failed at `now`; `description` says why in an operator's
    /// words. Schedules the next attempt with backoff.
    pub(super) fn on_connection_error(&mut self, now: Duration, description: String) {
        if self.connected {
            tracing::warn!(
                outbox = self.outbox.len(),
                "lost the MQTT connection: {description}; events stay in the outbox until it is back"
            );
        } else if let Some(suppressed) = self.log_limit.allow(now) {
            tracing::warn!(
                failed_attempts = self.failures + 1,
                suppressed,
                outbox = self.outbox.len(),
                "MQTT broker unreachable: {description}; retrying with backoff, events are kept in the outbox"
            );
        }
        *lock(&self.live.last_error) = Some(description);
        self.connected = false;
        self.online_due = false;
        self.disconnect_due = false;
        self.live.connected.store(false, Ordering::SeqCst);
        self.inflight.clear();
        self.failures += 1;
        self.retry_at = Some(now + self.backoff.next_delay((self.jitter)()));
    }

    /// Drain the outbox until `deadline` (time since the origin), then say `offline` and
    /// disconnect.
    pub(super) fn request_shutdown(&mut self, deadline: Duration) {
        self.stopping = Some(Stopping {
            stage: Stage::Draining,
            deadline,
        });
    }

    /// The timer asked for by `until` in [`Next::Wait`] fired at `now`.
    pub(super) fn on_timeout(&mut self, now: Duration) {
        if matches!(self.stopping, Some(s) if now >= s.deadline) && self.stopped.is_none() {
            self.stopped = Some(self.outbox.len() == 0);
        }
        if matches!(self.retry_at, Some(at) if now >= at) {
            self.retry_at = None;
        }
    }

    /// Hands due requests to `client` (status, camera states, stats, outbox entries while the
    /// window has room; the shutdown steps) and says what to wait for next.
    pub(super) fn poll(&mut self, client: &mut impl Client) -> Next {
        if self.stopped.is_none() {
            if self.online_due {
                self.online_due = false;
                let online = status(self.topics.status(), "online");
                if client.publish(online).is_ok() {
                    self.inflight.queued(Tag::Other);
                }
            }
            if self.disconnect_due {
                self.disconnect_due = false;
                if client.disconnect().is_err() {
                    self.connected = false;
                }
            }
            if self.connected {
                self.feed(client);
            }
            self.stopped = self.advance_shutdown(client);
        }
        if let Some(drained) = self.stopped {
            self.connected = false;
            self.live.connected.store(false, Ordering::SeqCst);
            return Next::Stopped { drained };
        }
        let deadline = self.stopping.map(|s| s.deadline);
        let until = match (deadline, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Next::Wait {
            until,
            network: self.retry_at.is_none(),
            wake: self.connected,
        }
    }

    /// Hands pending work to the client while the window has room.
    fn feed(&mut self, client: &mut impl Client) {
        if self.stopping.is_none() {
            self.feed_retained(client);
            self.feed_stats(client);
        }
        let free = WINDOW.saturating_sub(self.inflight.len());
        if free == 0 {
            return;
        }
        let pending = match self.outbox.pending(self.cursor, free) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read the MQTT outbox: {e}");
                return;
            }
        };
        for (key, msg) in pending {
            if msg.topic.len() + msg.payload.len() + 16 > MAX_PACKET_BYTES {
                tracing::error!(
                    topic = %msg.topic,
                    bytes = msg.payload.len(),
                    "outbox message larger than the MQTT packet limit; dropping it"
                );
                self.ack_outbox(key);
                self.cursor = Some(key);
                continue;
            }
            let qos = msg.qos.min(1);
            let publish = Publish {
                topic: msg.topic,
                qos: qos_from(qos),
                retain: msg.retain,
                payload: msg.payload,
            };
            match client.publish(publish) {
                Ok(()) => {
                    self.inflight.queued(Tag::Outbox(key, qos));
                    self.cursor = Some(key);
                }
                Err(e) => {
                    // Cannot happen while the window bounds the channel; retry on next wake.
                    tracing::warn!("MQTT request queue full, retrying later: {e}");
                    return;
                }
            }
        }
    }

    /// Sends changed retained payloads (each at most once per change or reconnect).
    fn feed_retained(&mut self, client: &mut impl Client) {
        let mut map = lock(&self.live.retained);
        for (topic, (payload, dirty)) in map.iter_mut() {
            if !*dirty || self.inflight.len() >= WINDOW {
                continue;
            }
            let publish = Publish {
                topic: topic.clone(),
                qos: QoS::AtLeastOnce,
                retain: true,
                payload: payload.clone(),
            };
            if client.publish(publish).is_ok() {
                self.inflight.queued(Tag::Other);
                *dirty = false;
            }
        }
    }

    /// Sends the latest stats payload, QoS 0.
    fn feed_stats(&mut self, client: &mut impl Client) {
        if self.inflight.len() >= WINDOW {
            return;
        }
        let Some(payload) = lock(&self.live.stats).take() else {
            return;
        };
        let publish = Publish {
            topic: self.topics.stats(),
            qos: QoS::AtMostOnce,
            retain: false,
            payload,
        };
        if client.publish(publish).is_ok() {
            self.inflight.queued(Tag::Other);
        }
    }

    fn ack_outbox(&mut self, key: OutboxKey) {
        match self.outbox.ack(key) {
            Ok(()) => {
                self.live.acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => tracing::error!("cannot remove an acknowledged entry from the outbox: {e}"),
        }
    }

    /// Moves shutdown forward; `Some(drained)` when the session should stop now.
    fn advance_shutdown(&mut self, client: &mut impl Client) -> Option<bool> {
        let stopping = self.stopping.as_mut()?;
        match stopping.stage {
            Stage::Draining => {
                if self.outbox.len() > 0 || !self.inflight.is_empty() {
                    return None;
                }
                if !self.connected {
                    // Nothing left to send; the broker already holds the will ("offline").
                    return Some(true);
                }
                if client
                    .publish(status(self.topics.status(), "offline"))
                    .is_err()
                {
                    return Some(true);
                }
                self.inflight.queued(Tag::Offline);
                stopping.stage = Stage::OfflineSent;
                None
            }
            // Connection gone after the outbox emptied: the will says "offline" anyway.
            Stage::OfflineSent | Stage::Disconnecting => (!self.connected).then_some(true),
        }
    }
}

/// The retained status message (`online`, `offline`), QoS 1.
fn status(topic: String, word: &str) -> Publish {
    Publish {
        topic,
        qos: QoS::AtLeastOnce,
        retain: true,
        payload: word.as_bytes().to_vec(),
    }
}

/// Outbox QoS: 0 stays 0, anything else is sent as 1 (acks are tracked on PUBACK only).
fn qos_from(qos: u8) -> QoS {
    if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

#[cfg(test)]
mod tests;
