//! Where verdicts go: written to sled (event, thumbnail and outbox atomically, flushed) and only
//! then handed to the publisher, so a crash or a broker outage never loses an accepted event.
//! With Home Assistant discovery the publisher also counts each stored verdict into the camera's
//! retained summary (in memory, latest value wins: it never delays the event).
//!
//! A verdict with an origin key (a replayed recording) whose key is already stored was recorded
//! by a run before a restart: it is neither stored nor published again ([`Accepted::AlreadyRecorded`]).

use super::camera::Verdict;
use crate::event::EventType;
use crate::publish::{Publisher, Topics};
use crate::stats::{Stage, StageTimes};
use crate::store::{Recorded, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What [`EventSink::accept`] did with a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored (or its event id was already stored) and queued for MQTT.
    Stored,
    /// Its origin key was stored before a restart, under `event_id`; nothing was written.
    AlreadyRecorded {
        /// Id of the event stored earlier for the same origin.
        event_id: String,
    },
    /// The store cannot take it now (disk full, or earlier verdicts still waiting): held in the
    /// full-disk guard's memory queue and written when space returns.
    Held,
}

/// Stores verdicts and queues their MQTT messages.
pub struct EventSink {
    store: Store,
    publisher: Option<Publisher>,
    topics: Option<Topics>,
    publish_measurements: bool,
    already_recorded: AtomicU64,
    /// Full-disk guard and retention (the daemon sets it; see [`super::storage`]).
    storage: Option<Arc<super::storage::StorageGuard>>,
}

impl EventSink {
    /// A sink writing to `store`; with `publisher` (and its `topics`) messages are queued for MQTT.
    pub fn new(
        store: Store,
        publisher: Option<Publisher>,
        topics: Option<Topics>,
        publish_measurements: bool,
    ) -> Self {
        EventSink {
            store,
            publisher,
            topics,
            publish_measurements,
            already_recorded: AtomicU64::new(0),
            storage: None,
        }
    }

    /// Adds the full-disk guard: verdicts are held in its queue while the store cannot take them.
    pub fn with_storage(mut self, guard: Arc<super::storage::StorageGuard>) -> Self {
        self.storage = Some(guard);
        self
    }

    /// The full-disk guard, when set.
    pub fn storage(&self) -> Option<&Arc<super::storage::StorageGuard>> {
        self.storage.as_ref()
    }

    /// Verdicts refused because their origin was recorded before a restart.
    pub fn already_recorded(&self) -> u64 {
        self.already_recorded.load(Ordering::Relaxed)
    }

    /// The store behind this sink.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The publisher, when MQTT is configured.
    pub fn publisher(&self) -> Option<&Publisher> {
        self.publisher.as_ref()
    }

    /// Takes the publisher out (for shutdown).
    pub fn take_publisher(&mut self) -> Option<Publisher> {
        self.publisher.take()
    }

    /// Stores `v` with its outbox messages (and fills in its thumbnail topic), then wakes the
    /// publisher. A verdict whose origin key is already stored changes nothing. With a storage
    /// guard, a verdict the store cannot take now (disk full, or earlier ones still waiting) is
    /// held in memory ([`Accepted::Held`]); `Err` then means the verdict is lost (retry queue
    /// full) or cannot be stored at all.
    pub fn accept(&self, v: &mut Verdict, times: &mut StageTimes) -> Result<Accepted, StoreError> {
        let Some(guard) = &self.storage else {
            return self.store_now(v, times);
        };
        if guard.queued() > 0 || !guard.check() {
            return guard.defer(v.clone()).map(|()| Accepted::Held);
        }
        match self.store_now(v, times) {
            Err(e) if super::storage::StorageGuard::is_storage_failure(&e) => {
                guard.fail(&e);
                guard.defer(v.clone()).map(|()| Accepted::Held)
            }
            other => other,
        }
    }

    /// Stores `v` now (no guard), then wakes the publisher.
    pub fn store_now(
        &self,
        v: &mut Verdict,
        times: &mut StageTimes,
    ) -> Result<Accepted, StoreError> {
        let start = Instant::now();
        let outbox = match &self.topics {
            Some(topics) => {
                if v.event.kind == EventType::Speeding && v.thumbnail_jpeg.is_some() {
                    v.event.thumbnail_topic =
                        Some(topics.thumbnail(&v.event.camera, &v.event.event_id));
                }
                topics
                    .event_messages(
                        &v.event,
                        v.thumbnail_jpeg.as_deref(),
                        self.publish_measurements,
                    )
                    .unwrap_or_else(|e| {
                        tracing::error!(event = %v.event.event_id, err = %e, "cannot encode event for MQTT");
                        Vec::new()
                    })
            }
            None => Vec::new(),
        };
        let recorded = self.store.record_event_from(
            &v.event,
            v.origin.as_ref(),
            v.thumbnail_jpeg.as_deref(),
            &outbox,
        )?;
        if let Recorded::SameOrigin { event_id } = recorded {
            self.already_recorded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(track = v.event.track_id, kind = ?v.event.kind, stored_as = %event_id, "already recorded before a restart; not stored again");
            times.lap(Stage::Store, start);
            return Ok(Accepted::AlreadyRecorded { event_id });
        }
        if let (Some(g), Recorded::Stored(keys)) = (&self.storage, &recorded) {
            if !keys.is_empty() || outbox.is_empty() {
                let json_len = serde_json::to_vec(&v.event).map_or(0, |j| j.len());
                g.retention().note_stored(crate::store::event_bytes(
                    json_len,
                    v.thumbnail_jpeg.as_ref().map(Vec::len),
                ));
            }
        }
        let start = times.lap(Stage::Store, start);
        if let Some(p) = &self.publisher {
            if !outbox.is_empty() {
                p.notify();
            }
            // Retained per-camera summary (Home Assistant discovery only; latest value wins).
            p.record_verdict(&v.event);
        }
        times.lap(Stage::Publish, start);
        Ok(Accepted::Stored)
    }
}
impl super::storage::VerdictWriter for EventSink {
    fn store_now(&self, v: &mut Verdict, times: &mut StageTimes) -> Result<(), StoreError> {
        EventSink::store_now(self, v, times).map(|_| ())
    }
}
