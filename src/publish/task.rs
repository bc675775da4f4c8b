//! The MQTT task: drives rumqttc's event loop, feeds it from the outbox and acks on PUBACK.
//!
//! Everything happens on this one task, which is what keeps packet-id bookkeeping exact:
//! requests are handed to rumqttc only while connected, and a connection error is seen here
//! before anything else is handed over, so after the next ConnAck (clean session: rumqttc drops
//! its pending requests) nothing stale can reach the new connection.

use super::window::{InFlight, Tag};
use super::{lock, Shared, Topics, WINDOW};
use crate::backoff::{unit_random, Backoff, LogLimiter};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};

/// Ask the task to drain and stop.
pub(super) struct ShutdownRequest {
    /// When to give up draining.
    pub deadline: Instant,
    /// Receives whether the outbox was emptied.
    pub reply: oneshot::Sender<bool>,
}

/// Where shutdown stands.
enum Stopping {
    /// Waiting for the outbox to empty.
    Draining,
    /// `offline` handed over, waiting for its PUBACK.
    OfflineSent,
    /// DISCONNECT handed over, waiting for it to be written.
    Disconnecting,
}

/// State of the MQTT task.
pub(super) struct Task {
    client: AsyncClient,
    eventloop: EventLoop,
    topics: Topics,
    shared: Arc<Shared>,
    shutdown_rx: Option<oneshot::Receiver<ShutdownRequest>>,
    connected: bool,
    ever_connected: bool,
    /// Last outbox key handed over on this connection.
    cursor: Option<crate::store::OutboxKey>,
    inflight: InFlight,
    backoff: Backoff,
    retry_at: Option<Instant>,
    failures: u64,
    log_limit: LogLimiter,
    /// Origin of the times given to `log_limit`.
    started: Instant,
    stopping: Option<(Stopping, ShutdownRequest)>,
}

impl Task {
    pub(super) fn new(
        opts: MqttOptions,
        topics: Topics,
        shared: Arc<Shared>,
        shutdown_rx: oneshot::Receiver<ShutdownRequest>,
    ) -> Task {
        // The channel never holds more than the window plus the status/state/stats extras.
        let (client, eventloop) = AsyncClient::new(opts, WINDOW + 8);
        Task {
            client,
            eventloop,
            topics,
            shared,
            shutdown_rx: Some(shutdown_rx),
            connected: false,
            ever_connected: false,
            cursor: None,
            inflight: InFlight::default(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            retry_at: None,
            failures: 0,
            log_limit: LogLimiter::new(Duration::from_secs(60)),
            started: Instant::now(),
            stopping: None,
        }
    }

    /// Runs until shutdown completes (or the task is aborted by dropping the `Publisher`).
    /// The shutdown reply is sent after everything is released (connection, store handle).
    pub(super) async fn run(mut self) {
        let drained = self.run_until_stopped().await;
        self.shared.connected.store(false, Ordering::SeqCst);
        let reply = self.stopping.take().map(|(_, req)| req.reply);
        drop(self);
        if let Some(reply) = reply {
            let _ = reply.send(drained);
        }
    }

    async fn run_until_stopped(&mut self) -> bool {
        let shared = self.shared.clone();
        loop {
            if self.connected {
                self.feed();
            }
            if let Some(drained) = self.advance_shutdown() {
                return drained;
            }
            let deadline = self.stopping.as_ref().map(|(_, r)| r.deadline);
            tokio::select! {
                req = recv_shutdown(&mut self.shutdown_rx), if self.shutdown_rx.is_some() => {
                    self.shutdown_rx = None;
                    if let Some(req) = req {
                        self.stopping = Some((Stopping::Draining, req));
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return self.shared.store.outbox_len() == 0;
                }
                _ = sleep_until(self.retry_at.unwrap_or_else(Instant::now)), if self.retry_at.is_some() => {
                    self.retry_at = None;
                }
                ev = self.eventloop.poll(), if self.retry_at.is_none() => self.on_poll(ev),
                // Only while connected: a wake-up cancels `poll`, which must not keep restarting
                // a slow connection attempt. The permit waits for the next connection.
                _ = shared.wake.notified(), if self.connected => {}
            }
        }
    }

    /// Hands pending work to rumqttc while the window has room.
    fn feed(&mut self) {
        if self.stopping.is_none() {
            self.feed_retained();
            self.feed_stats();
        }
        let free = WINDOW.saturating_sub(self.inflight.len());
        if free == 0 {
            return;
        }
        let pending = match self.shared.store.outbox_pending(self.cursor, free) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read the MQTT outbox: {e}");
                return;
            }
        };
        for (key, msg) in pending {
            if msg.topic.len() + msg.payload.len() + 16 > super::MAX_PACKET_BYTES {
                tracing::error!(
                    topic = %msg.topic,
                    bytes = msg.payload.len(),
                    "outbox message larger than the MQTT packet limit; dropping it"
                );
                self.ack_outbox(key);
                self.cursor = Some(key);
                continue;
            }
            let qos = qos_from(msg.qos);
            match self
                .client
                .try_publish(msg.topic, qos, msg.retain, msg.payload)
            {
                Ok(()) => {
                    self.inflight.queued(Tag::Outbox(key, msg.qos.min(1)));
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

    /// Sends changed retained camera states (each at most once per change or reconnect).
    fn feed_retained(&mut self) {
        let mut map = lock(&self.shared.retained);
        for (topic, (payload, dirty)) in map.iter_mut() {
            if !*dirty || self.inflight.len() >= WINDOW {
                continue;
            }
            let sent =
                self.client
                    .try_publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone());
            if sent.is_ok() {
                self.inflight.queued(Tag::Other);
                *dirty = false;
            }
        }
    }

    /// Sends the latest stats payload, QoS 0.
    fn feed_stats(&mut self) {
        if self.inflight.len() >= WINDOW {
            return;
        }
        let Some(payload) = lock(&self.shared.stats).take() else {
            return;
        };
        if self
            .client
            .try_publish(self.topics.stats(), QoS::AtMostOnce, false, payload)
            .is_ok()
        {
            self.inflight.queued(Tag::Other);
        }
    }

    fn on_poll(&mut self, ev: Result<Event, rumqttc::ConnectionError>) {
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => self.on_connected(),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => match self.inflight.acked(ack.pkid) {
                Some(Tag::Outbox(key, _)) => self.ack_outbox(key),
                Some(Tag::Offline) => {
                    if let Some((stage, _)) = &mut self.stopping {
                        *stage = Stopping::Disconnecting;
                    }
                    if self.client.try_disconnect().is_err() {
                        self.connected = false;
                    }
                }
                Some(Tag::Other) | None => {}
            },
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(Tag::Outbox(key, _)) = self.inflight.sent(pkid) {
                    self.shared.published.fetch_add(1, Ordering::SeqCst);
                    if pkid == 0 {
                        self.ack_outbox(key); // QoS 0 entry: sent is all there is
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                tracing::debug!(pkid, "MQTT packet id collision; waiting for its ack");
                self.inflight.collided();
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if matches!(self.stopping, Some((Stopping::Disconnecting, _))) {
                    self.connected = false;
                }
            }
            Ok(_) => {}
            Err(e) => self.on_error(e),
        }
    }

    fn on_connected(&mut self) {
        if self.ever_connected {
            self.shared.reconnects.fetch_add(1, Ordering::SeqCst);
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
        self.shared.connected.store(true, Ordering::SeqCst);
        *lock(&self.shared.last_error) = None;
        self.failures = 0;
        self.backoff.reset();
        self.log_limit.reset();
        // Clean session: rumqttc dropped whatever was in flight, so start over from the oldest
        // pending entry; the broker may deliver some twice (consumers dedupe by event id).
        self.inflight.clear();
        self.cursor = None;
        for (_, dirty) in lock(&self.shared.retained).values_mut() {
            *dirty = true;
        }
        let status = self.topics.status();
        if self
            .client
            .try_publish(status, QoS::AtLeastOnce, true, "online")
            .is_ok()
        {
            self.inflight.queued(Tag::Other);
        }
    }

    fn on_error(&mut self, e: rumqttc::ConnectionError) {
        let e = super::tls::describe_connection_error(&e);
        *lock(&self.shared.last_error) = Some(e.clone());
        if self.connected {
            tracing::warn!(
                outbox = self.shared.store.outbox_len(),
                "lost the MQTT connection: {e}; events stay in the outbox until it is back"
            );
        } else if let Some(suppressed) = self.log_limit.allow(self.started.elapsed()) {
            tracing::warn!(
                failed_attempts = self.failures + 1,
                suppressed,
                outbox = self.shared.store.outbox_len(),
                "MQTT broker unreachable: {e}; retrying with backoff, events are kept in the outbox"
            );
        }
        self.connected = false;
        self.shared.connected.store(false, Ordering::SeqCst);
        self.inflight.clear();
        self.failures += 1;
        self.retry_at = Some(Instant::now() + self.backoff.next_delay(unit_random()));
    }

    fn ack_outbox(&mut self, key: crate::store::OutboxKey) {
        match self.shared.store.outbox_ack(key) {
            Ok(()) => {
                self.shared.acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => tracing::error!("cannot remove an acknowledged entry from the outbox: {e}"),
        }
    }

    /// Moves shutdown forward; `Some(drained)` when the task should stop now.
    fn advance_shutdown(&mut self) -> Option<bool> {
        let (stage, _) = self.stopping.as_mut()?;
        match stage {
            Stopping::Draining => {
                if self.shared.store.outbox_len() > 0 || !self.inflight.is_empty() {
                    return None;
                }
                if !self.connected {
                    // Nothing left to send; the broker already holds the will ("offline").
                    return Some(true);
                }
                let offline = self.client.try_publish(
                    self.topics.status(),
                    QoS::AtLeastOnce,
                    true,
                    "offline",
                );
                if offline.is_err() {
                    return Some(true);
                }
                self.inflight.queued(Tag::Offline);
                *stage = Stopping::OfflineSent;
                None
            }
            // Connection gone after the outbox emptied: the will says "offline" anyway.
            Stopping::OfflineSent | Stopping::Disconnecting => (!self.connected).then_some(true),
        }
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

/// Waits for a shutdown request; `None` when the `Publisher` went away without one.
async fn recv_shutdown(
    rx: &mut Option<oneshot::Receiver<ShutdownRequest>>,
) -> Option<ShutdownRequest> {
    rx.as_mut()?.await.ok()
}
