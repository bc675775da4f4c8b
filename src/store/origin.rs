//! Origin keys: the deterministic identity of an event measured from a *recording*, so that a
//! replay restarted after a crash (`kill -9`, power cut) records each vehicle once.
//!
//! Why: event ids are random ULIDs made when a vehicle leaves the zone. A file camera restarted
//! after a crash reads its recording from the start again, and every vehicle it had already
//! recorded would be recorded a second time under a new id. Replays are deterministic (every
//! frame is processed, the frame scheduler decides on frame content and times only, tracker ids
//! count from 1 per run), so the same vehicle yields the same [`OriginKey`]: camera, recording
//! fingerprint ([`Recording`]), model, calibration, kind, track id and the zone entry and exit
//! frame times (µs). [`Store::record_event_from`](super::Store::record_event_from) keeps the
//! keys in their own `origins` tree and, inside the same sled transaction that stores the event,
//! refuses a second event with a key already there: a restarted replay converges to exactly the
//! uninterrupted run's set of events, and what it had published before the crash stays in the
//! outbox (nothing is lost, nothing invented).
//!
//! Live sources (RTSP, V4L2) carry no key: their frames never recur.
//!
//! Layout of the `origins` tree (added next to the schema-1 trees; an older store simply has
//! none, so no schema bump: events stored before the upgrade have no key): `o` + origin key ->
//! the event's 16 ULID bytes, and `e` + those 16 bytes -> the origin key, so deleting an event
//! can delete its key ([`forget_in`], [`Store::forget_origin`](super::Store::forget_origin)).

use super::{OutboxKey, Store, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
pub use speedcam_core::event::origin::{OriginKey, Recording};

/// What [`Store::record_event_from`](super::Store::record_event_from) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now, with the keys of its outbox messages.
    Stored(Vec<OutboxKey>),
    /// An event with this event id is already stored; nothing changed.
    SameId,
    /// An event with this origin key was already stored (by a run before a restart) under
    /// `event_id`; nothing changed.
    SameOrigin {
        /// Id of the event stored earlier.
        event_id: String,
    },
}

fn origin_entry(origin: &OriginKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + origin.as_str().len());
    k.push(b'o');
    k.extend_from_slice(origin.as_str().as_bytes());
    k
}

fn event_entry(event_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + event_key.len());
    k.push(b'e');
    k.extend_from_slice(event_key);
    k
}

/// Inside a transaction over the `origins` tree: the event id already holding `origin`, or
/// `None` after claiming it for `event_key`.
pub(super) fn claim(
    origins: &TransactionalTree,
    origin: &OriginKey,
    event_key: &[u8; 16],
) -> Result<Option<String>, ConflictableTransactionError<()>> {
    let entry = origin_entry(origin);
    if let Some(existing) = origins.get(&entry)? {
        let id = <[u8; 16]>::try_from(existing.as_ref())
            .map(|b| ulid::Ulid::from_bytes(b).to_string())
            .unwrap_or_default();
        return Ok(Some(id));
    }
    origins.insert(entry, &event_key[..])?;
    origins.insert(event_entry(event_key), origin.as_str().as_bytes())?;
    Ok(None)
}

/// Deletes the origin key of the event stored under `event_key` (its 16 ULID bytes) inside the
/// caller's transaction over the `origins` tree ([`Store::origins_tree`]); for retention, which
/// deletes events and must delete their keys with them. No-op for an event without a key.
pub fn forget_in(
    origins: &TransactionalTree,
    event_key: &[u8],
) -> Result<(), ConflictableTransactionError<()>> {
    if let Some(origin) = origins.remove(event_entry(event_key))? {
        let mut entry = Vec::with_capacity(1 + origin.len());
        entry.push(b'o');
        entry.extend_from_slice(&origin);
        origins.remove(entry)?;
    }
    Ok(())
}

impl Store {
    /// The `origins` tree, for callers that delete events in their own transaction and call
    /// [`forget_in`] there.
    pub fn origins_tree(&self) -> &sled::Tree {
        &self.origins
    }

    /// Deletes the origin key of event `event_id` (call it when deleting the event, so the
    /// index never outgrows the events); returns whether it had one.
    pub fn forget_origin(&self, event_id: &str) -> Result<bool, StoreError> {
        let key = super::event_key(event_id)?;
        let had = self
            .origins
            .transaction(|tx| {
                let had = tx.get(event_entry(&key))?.is_some();
                forget_in(tx, &key)?;
                Ok(had)
            })
            .map_err(super::tx_error)?;
        Ok(had)
    }

    /// The event id stored under `origin`, if any.
    pub fn event_id_of_origin(&self, origin: &OriginKey) -> Result<Option<String>, StoreError> {
        Ok(self.origins.get(origin_entry(origin))?.and_then(|v| {
            <[u8; 16]>::try_from(v.as_ref())
                .ok()
                .map(|b| ulid::Ulid::from_bytes(b).to_string())
        }))
    }
}
