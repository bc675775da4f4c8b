//! Retention: keeps the data directory under its byte cap and drops records past their age,
//! oldest first, without ever deleting an event that is still waiting in the outbox (evidence
//! not yet handed to the broker).
//!
//! Why a budget on *live* bytes and not on the directory size alone: sled is log-structured.
//! Deleting records frees space inside its segment files, which later writes reuse, but the
//! files do not shrink. Measured with sled 0.34.7 (30 KB values, steady insert + delete): the
//! directory settles at about 1.85x the live bytes and stays there. Pruning against the
//! directory size alone would therefore prune on every pass until the store is empty. Instead
//! [`Retention`] prunes the live bytes (events, thumbnails, tracks; counted once at start and
//! kept up to date) down to a budget of [`LIVE_FRACTION`] of the cap, and lowers that budget
//! whenever the real directory size still grows past [`HIGH_WATER`] of the cap.

use super::{Store, StoreError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Share of `max_bytes` the live records may use at first (sled's files run about 1.85x the
/// live bytes; the rest is headroom).
pub(crate) const LIVE_FRACTION: f64 = 0.45;
/// Pruning brings the live bytes down to this share of the budget (so not every new event
/// triggers a pass).
pub(crate) const LOW_WATER: f64 = 0.9;
/// A real directory size above this share of `max_bytes` that is still growing lowers the budget.
pub(crate) const HIGH_WATER: f64 = 0.95;

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionPolicy {
    /// Records older than this are pruned; `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Cap on the data directory's real size (bytes allocated on disk).
    pub max_bytes: u64,
}

/// What one pruning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events removed because they were older than `max_age`.
    pub by_age: u64,
    /// Events removed to get under the byte budget.
    pub by_bytes: u64,
    /// Track summaries removed.
    pub tracks: u64,
    /// Events that would have been pruned but are still in the outbox (kept).
    pub kept_undelivered: u64,
    /// Live bytes (keys + values of events, thumbnails, tracks) after the pass.
    pub live_bytes: u64,
    /// The live-byte budget in force after the pass.
    pub budget_bytes: u64,
    /// Real size of the data directory before the pass (bytes allocated on disk).
    pub dir_bytes: u64,
    /// True when the budget could not be met because only undelivered events are left.
    pub over_budget_undelivered: bool,
}

/// Retention state of one store: the live-byte count and the adaptive budget.
#[derive(Debug)]
pub struct Retention {
    dir: PathBuf,
    policy: RetentionPolicy,
    /// Live bytes; `u64::MAX` until counted (the first pass counts).
    live_bytes: AtomicU64,
    inner: Mutex<Adaptive>,
}

#[derive(Debug)]
struct Adaptive {
    budget_bytes: u64,
    last_dir_bytes: u64,
}

const UNCOUNTED: u64 = u64::MAX;

impl Retention {
    /// Retention for the store in `dir` under `policy`; counts the live bytes on the first pass.
    pub fn new(dir: &Path, policy: RetentionPolicy) -> Retention {
        Retention {
            dir: dir.to_path_buf(),
            policy,
            live_bytes: AtomicU64::new(UNCOUNTED),
            inner: Mutex::new(Adaptive {
                budget_bytes: (policy.max_bytes as f64 * LIVE_FRACTION) as u64,
                last_dir_bytes: 0,
            }),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    /// Tells retention that `bytes` of records were just stored (keeps the count current
    /// between passes without a scan).
    pub fn note_stored(&self, bytes: u64) {
        let _ = self
            .live_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n != UNCOUNTED).then(|| n.saturating_add(bytes))
            });
    }

    /// Live bytes as last counted (`None` before the first pass).
    pub fn live_bytes(&self) -> Option<u64> {
        let n = self.live_bytes.load(Ordering::SeqCst);
        (n != UNCOUNTED).then_some(n)
    }

    /// One pass: prunes records older than `max_age` (relative to `now_unix_ms`), then the
    /// oldest events (with their thumbnails) and track summaries until the live bytes are under
    /// `LOW_WATER` of the budget. Events still referenced by the outbox are never removed.
    pub fn prune(&self, store: &Store, now_unix_ms: u64) -> Result<PruneReport, StoreError> {
        let dir_bytes = dir_size_bytes(&self.dir);
        let mut report = PruneReport {
            dir_bytes,
            ..PruneReport::default()
        };
        if self.live_bytes.load(Ordering::SeqCst) == UNCOUNTED {
            let n = store.live_bytes()?;
            self.live_bytes.store(n, Ordering::SeqCst);
        }
        let budget = {
            let mut a = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let high = (self.policy.max_bytes as f64 * HIGH_WATER) as u64;
            if dir_bytes > high && dir_bytes > a.last_dir_bytes {
                // The files still grow past the cap: sled needs more room per live byte than
                // assumed. Lower the budget (never below a tenth of the cap).
                let floor = self.policy.max_bytes / 10;
                a.budget_bytes = ((a.budget_bytes as f64 * 0.85) as u64).max(floor);
                tracing::warn!(
                    dir = %self.dir.display(),
                    dir_bytes,
                    max_bytes = self.policy.max_bytes,
                    budget_bytes = a.budget_bytes,
                    "data_dir is near its cap ([storage] max_bytes): lowering the live-data budget"
                );
            }
            a.last_dir_bytes = a.last_dir_bytes.max(dir_bytes);
            a.budget_bytes
        };
        report.budget_bytes = budget;
        let protected = store.outbox_event_keys()?;

        if let Some(age) = self.policy.max_age {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = ulid::Ulid::from_parts(now_unix_ms.saturating_sub(age_ms), 0).to_bytes();
            let old: Vec<sled::IVec> = store
                .events
                .range(..cutoff)
                .keys()
                .collect::<Result<_, _>>()?;
            for key in old {
                if protected.contains(key.as_ref()) {
                    report.kept_undelivered += 1;
                    continue;
                }
                let freed = store.remove_event_key(&key)?;
                self.sub(freed);
                report.by_age += 1;
            }
        }

        let target = (budget as f64 * LOW_WATER) as u64;
        if self.current() > budget {
            // Track summaries first: at most 5% of the budget (they carry no wall time, so
            // they age out only here, oldest first).
            let mut track_bytes: u64 = 0;
            for item in store.tracks.iter() {
                let (k, v) = item?;
                track_bytes += (k.len() + v.len()) as u64;
            }
            let track_cap = budget / 20;
            if track_bytes > track_cap {
                let mut iter = store.tracks.iter();
                while track_bytes > track_cap {
                    let Some(item) = iter.next() else { break };
                    let (k, _) = item?;
                    if let Some(v) = store.tracks.remove(&k)? {
                        let n = (k.len() + v.len()) as u64;
                        track_bytes = track_bytes.saturating_sub(n);
                        self.sub(n);
                        report.tracks += 1;
                    }
                }
            }
            let mut iter = store.events.iter().keys();
            while self.current() > target {
                let Some(key) = iter.next() else { break };
                let key = key?;
                if protected.contains(key.as_ref()) {
                    continue;
                }
                let freed = store.remove_event_key(&key)?;
                self.sub(freed);
                report.by_bytes += 1;
            }
            if self.current() > target {
                report.over_budget_undelivered = true;
                tracing::error!(
                    dir = %self.dir.display(),
                    live_bytes = self.current(),
                    budget_bytes = budget,
                    undelivered = protected.len(),
                    "data_dir is over its [storage] max_bytes budget and only events not yet delivered to the MQTT broker are left: they are kept (evidence not yet handed over); fix the broker connection or raise [storage] max_bytes"
                );
            }
        }
        report.live_bytes = self.current();
        if report.by_age + report.by_bytes + report.tracks > 0 {
            tracing::info!(
                by_age = report.by_age,
                by_bytes = report.by_bytes,
                tracks = report.tracks,
                kept_undelivered = report.kept_undelivered,
                live_bytes = report.live_bytes,
                dir_bytes,
                "retention pruned old records"
            );
        }
        Ok(report)
    }

    fn current(&self) -> u64 {
        self.live_bytes().unwrap_or(0)
    }

    fn sub(&self, bytes: u64) {
        let _ = self
            .live_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n != UNCOUNTED).then(|| n.saturating_sub(bytes))
            });
    }
}

/// Bytes an event adds to the live count: keys + values of its event and thumbnail records.
pub fn event_bytes(event_json_len: usize, thumbnail_len: Option<usize>) -> u64 {
    let key = 16;
    (key + event_json_len + thumbnail_len.map_or(0, |n| key + n)) as u64
}

impl Store {
    /// Live bytes (keys + values) of events, thumbnails and tracks: one full scan (run once
    /// at start by [`Retention`], on a background thread).
    pub fn live_bytes(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for tree in [&self.events, &self.thumbnails, &self.tracks] {
            for item in tree.iter() {
                let (k, v) = item?;
                n += (k.len() + v.len()) as u64;
            }
        }
        Ok(n)
    }

    /// Keys of the events the outbox still announces (event JSON payloads carry `event_id`,
    /// thumbnail topics end with it): these must not be pruned.
    pub(crate) fn outbox_event_keys(&self) -> Result<HashSet<[u8; 16]>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Head {
            event_id: String,
        }
        let mut out = HashSet::new();
        for item in self.outbox.iter().values() {
            let msg: super::OutboxMessage = super::decode("outbox", &item?)?;
            let id = serde_json::from_slice::<Head>(&msg.payload)
                .map(|h| h.event_id)
                .ok()
                .or_else(|| msg.topic.rsplit('/').next().map(str::to_string));
            if let Some(key) = id.and_then(|id| super::event_key(&id).ok()) {
                out.insert(key);
            }
        }
        Ok(out)
    }

    /// Removes one event and its thumbnail; returns the bytes freed.
    fn remove_event_key(&self, key: &[u8]) -> Result<u64, StoreError> {
        let mut freed = 0u64;
        if let Some(v) = self.events.remove(key)? {
            freed += (key.len() + v.len()) as u64;
        }
        if let Some(v) = self.thumbnails.remove(key)? {
            freed += (key.len() + v.len()) as u64;
        }
        // Its origin key goes too, or a replay of an old recording would be refused as a
        // duplicate of an event that is gone.
        self.origins
            .transaction(|tx| super::origin::forget_in(tx, key))
            .map_err(super::tx_error)?;
        Ok(freed)
    }
}

/// Real size of a directory tree: bytes allocated on disk (st_blocks x 512), which is what fills
/// the filesystem. Files that vanish while walking (sled renames snapshots) are skipped.
pub fn dir_size_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in rd.flatten() {
        let Ok(m) = entry.metadata() else { continue };
        if m.is_dir() {
            n += dir_size_bytes(&entry.path());
        } else {
            n += m.blocks() * 512;
        }
    }
    n
}

/// Bytes available to this (unprivileged-equivalent) user on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
