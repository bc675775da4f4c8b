//! The MQTT task: a thin tokio loop around [`Session`], which makes every decision.
//!
//! It turns rumqttc events, connection errors, timers and the shutdown request into the
//! session's inputs (times as [`Duration`]s since one origin taken at start) and hands the
//! session's requests to rumqttc's `AsyncClient`.
//!
//! Everything happens on this one task, which is what keeps packet-id bookkeeping exact:
//! requests are handed to rumqttc only while connected, and a connection error is seen here
//! before anything else is handed over, so after the next ConnAck (clean session: rumqttc drops
//! its pending requests) nothing stale can reach the new connection.

use super::session::{Client, Next, Publish, Refused, Session};
use super::{Shared, Topics, WINDOW};
use crate::backoff::unit_random;
use crate::store::Store;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing};
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

/// rumqttc's client as the session's [`Client`]: both calls only queue a request.
impl Client for AsyncClient {
    fn publish(&mut self, msg: Publish) -> Result<(), Refused> {
        self.try_publish(msg.topic, msg.qos, msg.retain, msg.payload)
            .map_err(|e| Refused(e.to_string()))
    }

    fn disconnect(&mut self) -> Result<(), Refused> {
        self.try_disconnect().map_err(|e| Refused(e.to_string()))
    }
}

/// State of the MQTT task.
pub(super) struct Task {
    client: AsyncClient,
    eventloop: EventLoop,
    session: Session<Store>,
    shared: Arc<Shared>,
    shutdown_rx: Option<oneshot::Receiver<ShutdownRequest>>,
    /// Where the reply goes once stopped (set when shutdown was requested).
    reply: Option<oneshot::Sender<bool>>,
    /// The origin of the session's times.
    origin: Instant,
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
        let session = Session::new(
            shared.store.clone(),
            shared.live.clone(),
            topics,
            Box::new(unit_random),
        );
        Task {
            client,
            eventloop,
            session,
            shared,
            shutdown_rx: Some(shutdown_rx),
            reply: None,
            origin: Instant::now(),
        }
    }

    /// Runs until shutdown completes (or the task is aborted by dropping the `Publisher`).
    /// The shutdown reply is sent after everything is released (connection, store handle).
    pub(super) async fn run(mut self) {
        let drained = self.run_until_stopped().await;
        let reply = self.reply.take();
        drop(self);
        if let Some(reply) = reply {
            let _ = reply.send(drained);
        }
    }

    async fn run_until_stopped(&mut self) -> bool {
        let shared = self.shared.clone();
        loop {
            let (until, network, wake) = match self.session.poll(&mut self.client) {
                Next::Stopped { drained } => return drained,
                Next::Wait {
                    until,
                    network,
                    wake,
                } => (until, network, wake),
            };
            let timer = until.map(|t| self.origin + t);
            tokio::select! {
                req = recv_shutdown(&mut self.shutdown_rx), if self.shutdown_rx.is_some() => {
                    self.shutdown_rx = None;
                    if let Some(req) = req {
                        let deadline = req.deadline.saturating_duration_since(self.origin);
                        self.reply = Some(req.reply);
                        self.session.request_shutdown(deadline);
                    }
                }
                _ = sleep_until(timer.unwrap_or(self.origin)), if timer.is_some() => {
                    self.session.on_timeout(self.now());
                }
                ev = self.eventloop.poll(), if network => self.on_poll(ev),
                // Only while connected: a wake-up cancels `poll`, which must not keep restarting
                // a slow connection attempt. The permit waits for the next connection.
                _ = shared.wake.notified(), if wake => {}
            }
        }
    }

    /// Time since the origin, as the session counts it.
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Passes a rumqttc event or connection error to the session.
    fn on_poll(&mut self, ev: Result<Event, rumqttc::ConnectionError>) {
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => self.session.on_connack(),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => self.session.on_puback(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => self.session.on_sent(pkid),
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => self.session.on_collision(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => self.session.on_disconnect_written(),
            Ok(_) => {}
            Err(e) => {
                let why = super::tls::describe_connection_error(&e);
                self.session.on_connection_error(self.now(), why);
            }
        }
    }
}

/// Waits for a shutdown request; `None` when the `Publisher` went away without one.
async fn recv_shutdown(
    rx: &mut Option<oneshot::Receiver<ShutdownRequest>>,
) -> Option<ShutdownRequest> {
    rx.as_mut()?.await.ok()
}
