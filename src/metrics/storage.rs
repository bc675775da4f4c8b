//! Storage figures (`speedcam_storage_*`): whether the store accepts writes, the in-memory retry
//! queue of a full disk, verdicts lost, the data directory's size and what retention pruned.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// The storage gauges and counters; cheap to clone (shared atomics).
#[derive(Debug, Clone, Default)]
pub struct StorageMetrics {
    /// 1 while verdicts are written to the store, 0 while the disk is full or the store failed.
    pub ok: Gauge,
    /// Verdicts held in memory waiting for space.
    pub retry_queue: Gauge,
    /// Verdicts that had to wait in memory (disk full).
    pub deferred: Counter,
    /// Verdicts lost: retry queue overflow or shutdown with a full disk.
    pub lost: Counter,
    /// Real size of data_dir, bytes (allocated on disk).
    pub dir_bytes: Gauge,
    /// Free bytes on data_dir's filesystem.
    pub free_bytes: Gauge,
    /// Events removed by retention.
    pub pruned: Counter,
}

impl StorageMetrics {
    /// Registers the figures under `speedcam_storage_*`.
    pub fn register(registry: &mut Registry) -> StorageMetrics {
        let m = StorageMetrics::default();
        m.ok.set(1);
        let r = registry.sub_registry_with_prefix("storage");
        r.register(
            "ok",
            "1 while verdicts are written to the store; 0 while data_dir's disk is full or the store failed (verdicts wait in memory)",
            m.ok.clone(),
        );
        r.register(
            "retry_queue",
            "Verdicts held in memory until the store accepts writes again",
            m.retry_queue.clone(),
        );
        r.register(
            "deferred",
            "Verdicts that had to wait in memory because the store did not accept writes",
            m.deferred.clone(),
        );
        r.register(
            "lost",
            "Verdicts LOST: the retry queue overflowed, or the daemon stopped with the disk still full",
            m.lost.clone(),
        );
        r.register_with_unit(
            "dir",
            "Real size of data_dir (allocated on disk)",
            Unit::Bytes,
            m.dir_bytes.clone(),
        );
        r.register_with_unit(
            "free",
            "Free space on data_dir's filesystem",
            Unit::Bytes,
            m.free_bytes.clone(),
        );
        r.register(
            "pruned_events",
            "Events removed by retention (age or bytes)",
            m.pruned.clone(),
        );
        m
    }
}
