//! Durable state in sled: events, thumbnails, finished tracks and the MQTT outbox.
//!
//! Why an outbox: the broker can be down for hours and rumqttc keeps unsent and unacknowledged
//! publishes only in memory (and drops in-flight ones when the broker has no session), so a
//! restart or outage would lose alerts. Instead every event is written here *together with* the
//! messages that announce it, in one sled transaction, and flushed before anything is published
//! ("write before publish"). The outbox is the source of truth: the publisher reads it in key
//! order and an entry leaves it only when the broker acknowledged it (PUBACK).
//!
//! Trees: `events` (ULID bytes, i.e. time order -> event JSON), `thumbnails` (ULID bytes -> JPEG),
//! `outbox` (u64 big-endian, insertion order -> [`OutboxMessage`] JSON), `tracks` (u64 -> JSON),
//! `meta` (store schema version), `origins` (origin keys of events from recordings, see
//! [`origin`]).

mod error;
pub mod origin;
mod retention;
mod types;

pub use error::StoreError;
pub use origin::{OriginKey, Recorded, Recording};
pub use retention::{
    dir_size_bytes, event_bytes, free_bytes, PruneReport, Retention, RetentionPolicy,
};
pub use types::{CameraTally, LastVehicle, OutboxKey, OutboxMessage, TrackSummary};

use crate::event::{Event, EventType};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Layout version of the sled trees; bumped on incompatible changes, checked on open.
pub const STORE_SCHEMA_VERSION: u32 = 1;

const META_SCHEMA_KEY: &[u8] = b"schema_version";

/// Handle to the sled database; cheap to clone (sled trees and the counters are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    events: sled::Tree,
    thumbnails: sled::Tree,
    outbox: sled::Tree,
    tracks: sled::Tree,
    /// Origin keys of events from recordings ([`origin`]).
    origins: sled::Tree,
    /// Outbox entries, kept here because `sled::Tree::len` scans the whole tree.
    outbox_count: Arc<AtomicUsize>,
    /// Serialises writers so outbox keys are committed in key order (the publisher reads
    /// forward from a cursor and must never find a smaller key appear behind it).
    write_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("outbox_len", &self.outbox_len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir` and checks its schema version.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let open_err = |cause: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            dir: data_dir.to_path_buf(),
            cause,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_err(Box::new(e)))?;
        // A store dropped a moment ago in this process (a reload, a test) may still hold the
        // directory's lock from sled's background flusher: wait for it. 3 s was not always
        // enough for the aarch64 tests under qemu on a busy 2-core machine; 10 s only delays
        // the error when another speedcamd really holds the directory.
        let mut waited_ms = 0;
        let db = loop {
            match sled::Config::new().path(data_dir).open() {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock && waited_ms < 10_000 =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    waited_ms += 50;
                }
                other => break other.map_err(|e| open_err(Box::new(e)))?,
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_err(Box::new(e)));
        let meta = tree("meta")?;
        check_schema(&meta, data_dir)?;
        let outbox = tree("outbox")?;
        let outbox_count = Arc::new(AtomicUsize::new(outbox.len()));
        Ok(Store {
            events: tree("events")?,
            thumbnails: tree("thumbnails")?,
            tracks: tree("tracks")?,
            origins: tree("origins")?,
            outbox,
            outbox_count,
            write_lock: Arc::new(Mutex::new(())),
            db,
        })
    }

    /// Stores an event, its optional JPEG thumbnail and the messages announcing it atomically
    /// (one transaction over events/thumbnails/outbox), then flushes: once this returns the
    /// event survives a power cut. Recording an event id that is already stored changes nothing
    /// and returns no keys, so retries cannot publish an event twice.
    pub fn record_event(
        &self,
        event: &Event,
        thumbnail_jpeg: Option<&[u8]>,
        outbox: &[OutboxMessage],
    ) -> Result<Vec<OutboxKey>, StoreError> {
        match self.record_event_from(event, None, thumbnail_jpeg, outbox)? {
            Recorded::Stored(keys) => Ok(keys),
            Recorded::SameId | Recorded::SameOrigin { .. } => Ok(Vec::new()),
        }
    }

    /// [`Store::record_event`] for an event with an optional [`OriginKey`] (events measured
    /// from a recording): an event whose origin key is already stored is refused in the same
    /// transaction ([`Recorded::SameOrigin`]), so a replay restarted after a crash stores each
    /// vehicle once.
    pub fn record_event_from(
        &self,
        event: &Event,
        origin: Option<&OriginKey>,
        thumbnail_jpeg: Option<&[u8]>,
        outbox: &[OutboxMessage],
    ) -> Result<Recorded, StoreError> {
        let key = event_key(&event.event_id)?;
        let event_json = serde_json::to_vec(event).map_err(StoreError::Encode)?;
        let messages = outbox
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::Encode)?;

        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let keys = outbox
            .iter()
            .map(|_| self.db.generate_id().map(OutboxKey))
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = (&self.events, &self.thumbnails, &self.outbox, &self.origins)
            .transaction(|(events, thumbnails, ob, origins)| {
                if events.get(key)?.is_some() {
                    return Ok(Recorded::SameId);
                }
                if let Some(origin) = origin {
                    if let Some(event_id) = origin::claim(origins, origin, &key)? {
                        return Ok(Recorded::SameOrigin { event_id });
                    }
                }
                events.insert(&key, event_json.as_slice())?;
                if let Some(jpeg) = thumbnail_jpeg {
                    thumbnails.insert(&key, jpeg)?;
                }
                for (k, msg) in keys.iter().zip(&messages) {
                    ob.insert(&k.to_be_bytes(), msg.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(Recorded::Stored(Vec::new()))
            })
            .map_err(tx_error)?;
        if !matches!(outcome, Recorded::Stored(_)) {
            return Ok(outcome);
        }
        self.outbox_count.fetch_add(keys.len(), Ordering::SeqCst);
        self.db.flush()?;
        Ok(Recorded::Stored(keys))
    }

    /// Stores a finished track's summary (not flushed: losing the last few on a power cut is fine).
    /// Not called yet: kept for the finished-track statistics that will fill the `tracks` tree.
    pub fn record_track(&self, track: &TrackSummary) -> Result<(), StoreError> {
        let json = serde_json::to_vec(track).map_err(StoreError::Encode)?;
        let id = self.db.generate_id()?;
        self.tracks.insert(id.to_be_bytes(), json)?;
        Ok(())
    }

    /// Finished-track summaries in insertion order.
    pub fn tracks(&self) -> Result<Vec<TrackSummary>, StoreError> {
        self.tracks
            .iter()
            .values()
            .map(|v| decode("tracks", &v?))
            .collect()
    }

    /// Events in time order, optionally only one camera's and only those created at or after
    /// `since` (compared with the time inside the ULID event id, millisecond resolution).
    pub fn events(
        &self,
        camera: Option<&str>,
        since: Option<time::OffsetDateTime>,
    ) -> Result<Vec<Event>, StoreError> {
        let start = since.map_or(0, |t| {
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        });
        let start_key = ulid::Ulid::from_parts(start, 0).to_bytes();
        let mut out = Vec::new();
        for value in self.events.range(start_key..).values() {
            let event: Event = decode("events", &value?)?;
            if camera.is_none_or(|c| c == event.camera) {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Per-camera [`CameraTally`] of the stored events created before `before` (every stored
    /// event when `None`; compared with the time inside the ULID event id, millisecond
    /// resolution), in event id order.
    ///
    /// One pass over the `events` tree that decodes only the few fields it needs: O(stored
    /// events), about 4 s per million events on a shared 2-core machine (the ignored test
    /// `camera_tally_figures` measures it). The store keeps every event (there is no retention
    /// pruning yet), so run it off the hot path: the publisher does, on its own thread.
    pub fn camera_tallies(
        &self,
        before: Option<time::OffsetDateTime>,
    ) -> Result<BTreeMap<String, CameraTally>, StoreError> {
        /// The fields of an event a tally needs; the rest of the JSON is skipped.
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(rename = "type")]
            kind: EventType,
            #[serde(borrow)]
            event_id: Cow<'a, str>,
            #[serde(borrow)]
            camera: Cow<'a, str>,
            speed_kmh: Option<f64>,
            #[serde(borrow)]
            time: Cow<'a, str>,
            #[serde(default, borrow)]
            measurement_id: Option<Cow<'a, str>>,
        }
        let iter = match before {
            Some(t) => {
                let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                self.events
                    .range(..ulid::Ulid::from_parts(ms, 0).to_bytes())
            }
            None => self.events.iter(),
        };
        let mut out: BTreeMap<String, CameraTally> = BTreeMap::new();
        for value in iter.values() {
            let value = value?;
            let head: Head<'_> =
                serde_json::from_slice(&value).map_err(|cause| StoreError::Corrupt {
                    tree: "events",
                    cause,
                })?;
            let tally = match out.get_mut(head.camera.as_ref()) {
                Some(t) => t,
                None => out.entry(head.camera.into_owned()).or_default(),
            };
            tally.add_parts(
                head.kind,
                &head.event_id,
                head.speed_kmh,
                &head.time,
                head.measurement_id.as_deref(),
            );
        }
        Ok(out)
    }

    /// One event by id; `None` when it is not stored (or the id is not a ULID).
    pub fn event(&self, event_id: &str) -> Result<Option<Event>, StoreError> {
        let Ok(key) = event_key(event_id) else {
            return Ok(None);
        };
        self.events
            .get(key)?
            .map(|v| decode("events", &v))
            .transpose()
    }

    /// The JPEG thumbnail stored with an event, if any.
    pub fn thumbnail(&self, event_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(key) = event_key(event_id) else {
            return Ok(None);
        };
        Ok(self.thumbnails.get(key)?.map(|v| v.to_vec()))
    }

    /// Up to `limit` outbox entries with keys greater than `after` (all when `None`), in key order.
    pub fn outbox_pending(
        &self,
        after: Option<OutboxKey>,
        limit: usize,
    ) -> Result<Vec<(OutboxKey, OutboxMessage)>, StoreError> {
        let iter = match after.and_then(|k| k.0.checked_add(1)) {
            Some(start) => self.outbox.range(start.to_be_bytes()..),
            None if after.is_some() => return Ok(Vec::new()), // after == u64::MAX
            None => self.outbox.iter(),
        };
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            let key = OutboxKey::from_be_slice(&k).ok_or_else(|| StoreError::Corrupt {
                tree: "outbox",
                cause: serde::de::Error::custom("outbox key is not 8 bytes"),
            })?;
            out.push((key, decode("outbox", &v)?));
        }
        Ok(out)
    }

    /// Removes an acknowledged entry from the outbox; acking an unknown key is a no-op.
    pub fn outbox_ack(&self, key: OutboxKey) -> Result<(), StoreError> {
        if self.outbox.remove(key.to_be_bytes())?.is_some() {
            self.outbox_count.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Number of entries waiting in the outbox (O(1)).
    pub fn outbox_len(&self) -> usize {
        self.outbox_count.load(Ordering::SeqCst)
    }

    /// Writes everything to disk (acks and track summaries are otherwise flushed lazily).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// A transaction error as a [`StoreError`] (our closures abort only through `?` on sled errors).
fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => StoreError::Sled(e),
        // Never constructed: the closures only abort through `?` on sled errors.
        TransactionError::Abort(()) => {
            StoreError::Sled(sled::Error::ReportableBug("transaction aborted".into()))
        }
    }
}

/// Sled key of an event: the ULID's 16 bytes, which sort by creation time.
fn event_key(event_id: &str) -> Result<[u8; 16], StoreError> {
    ulid::Ulid::from_string(event_id)
        .map(|u| u.to_bytes())
        .map_err(|_| StoreError::BadEventId(event_id.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|cause| StoreError::Corrupt { tree, cause })
}

/// Writes the schema version into a fresh store; refuses a store from a newer version.
fn check_schema(meta: &sled::Tree, dir: &Path) -> Result<(), StoreError> {
    match meta.get(META_SCHEMA_KEY)? {
        None => {
            let v = serde_json::to_vec(&STORE_SCHEMA_VERSION).map_err(StoreError::Encode)?;
            meta.insert(META_SCHEMA_KEY, v)?;
            meta.flush()?;
            Ok(())
        }
        Some(bytes) => {
            let found: u32 = decode("meta", &bytes)?;
            if found > STORE_SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    dir: PathBuf::from(dir),
                    found,
                    supported: STORE_SCHEMA_VERSION,
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
