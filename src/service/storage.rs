//! A full disk without a crash and without losing accepted verdicts.
//!
//! sled 0.34 must never see ENOSPC: after any write error its Db keeps the error for good (every
//! later flush blocks forever, measured), and it can only be reopened once every handle is
//! dropped, i.e. by restarting the process. So [`StorageGuard`] checks the free space of
//! `data_dir`'s filesystem before each write and, below `[storage] min_free_bytes`, holds
//! verdicts in a bounded in-memory queue instead; [`StorageWorker`] retries them in order once
//! space is back and runs retention. Should sled fail anyway (a write error slipped past the
//! guard), the guard marks the store failed, keeps queueing and says that a restart is needed.

use super::camera::Verdict;
use crate::clock::Clock;
use crate::config::StorageConfig;
use crate::event::EventType;
use crate::metrics::StorageMetrics;
use crate::stats::StageTimes;
use crate::store::{free_bytes, Retention, RetentionPolicy, Store, StoreError};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether the store accepts writes.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageState {
    /// Writes go to the store.
    Ok,
    /// `data_dir`'s filesystem is below `min_free_bytes`: verdicts wait in memory.
    Full {
        /// Free bytes when last checked.
        free_bytes: u64,
    },
    /// sled returned an I/O error: it accepts no writes until speedcamd restarts.
    Failed {
        /// The error, as reported.
        error: String,
    },
}

/// The free-space check, the retry queue and the storage figures.
#[derive(Debug)]
pub struct StorageGuard {
    dir: PathBuf,
    min_free_bytes: u64,
    capacity: usize,
    queue: Mutex<VecDeque<Verdict>>,
    state: Mutex<StorageState>,
    retention: Arc<Retention>,
    metrics: StorageMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageGuard {
    /// A guard for the store in `dir`; `metrics` receives its figures (pass
    /// `StorageMetrics::default()` when nothing exports them).
    pub fn new(dir: &Path, cfg: &StorageConfig, metrics: StorageMetrics) -> Arc<StorageGuard> {
        metrics.ok.set(1);
        Arc::new(StorageGuard {
            dir: dir.to_path_buf(),
            min_free_bytes: cfg.min_free_bytes,
            capacity: cfg.retry_queue.max(1),
            queue: Mutex::new(VecDeque::new()),
            state: Mutex::new(StorageState::Ok),
            retention: Arc::new(Retention::new(
                dir,
                RetentionPolicy {
                    max_age: cfg.max_age,
                    max_bytes: cfg.max_bytes,
                },
            )),
            metrics,
        })
    }

    /// The retention state shared with the worker.
    pub fn retention(&self) -> &Arc<Retention> {
        &self.retention
    }

    /// The current state.
    pub fn state(&self) -> StorageState {
        lock(&self.state).clone()
    }

    /// Verdicts waiting in memory.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// A short phrase for STATUS= when not [`StorageState::Ok`], e.g. `STORAGE FULL (3 queued)`.
    pub fn status(&self) -> Option<String> {
        let queued = self.queued();
        match self.state() {
            StorageState::Ok if queued == 0 => None,
            StorageState::Ok => Some(format!("storage catching up ({queued} queued)")),
            StorageState::Full { .. } => Some(format!("STORAGE FULL ({queued} queued)")),
            StorageState::Failed { .. } => {
                Some(format!("STORAGE FAILED, restart needed ({queued} queued)"))
            }
        }
    }

    /// Checks the free space and updates the state (logging each change); true when a verdict
    /// may be written now. A failed store stays failed.
    pub fn check(&self) -> bool {
        let free = free_bytes(&self.dir);
        let mut state = lock(&self.state);
        if let StorageState::Failed { .. } = *state {
            return false;
        }
        let next = match free {
            Ok(free) => {
                self.metrics
                    .free_bytes
                    .set(i64::try_from(free).unwrap_or(i64::MAX));
                if free < self.min_free_bytes {
                    StorageState::Full { free_bytes: free }
                } else {
                    StorageState::Ok
                }
            }
            // Cannot tell (the directory vanished?): let sled try and report.
            Err(_) => StorageState::Ok,
        };
        match (&*state, &next) {
            (StorageState::Ok, StorageState::Full { free_bytes }) => tracing::error!(
                data_dir = %self.dir.display(),
                free_bytes,
                min_free_bytes = self.min_free_bytes,
                "STORAGE FULL: the filesystem of data_dir {} has {free_bytes} bytes free, under [storage] min_free_bytes = {}; new events are held in memory (up to {} verdicts, [storage] retry_queue) and written once space is back: free disk space there (or lower [storage] max_bytes so retention prunes more)",
                self.dir.display(),
                self.min_free_bytes,
                self.capacity
            ),
            (StorageState::Full { .. }, StorageState::Ok) => tracing::info!(
                data_dir = %self.dir.display(),
                queued = self.queued(),
                "storage space is back: writing the held verdicts"
            ),
            _ => {}
        }
        self.metrics.ok.set(i64::from(next == StorageState::Ok));
        *state = next;
        *state == StorageState::Ok
    }

    /// Marks the store failed after sled returned `e` (it stays failed until restart).
    pub fn fail(&self, e: &StoreError) {
        let mut state = lock(&self.state);
        if !matches!(*state, StorageState::Failed { .. }) {
            tracing::error!(
                data_dir = %self.dir.display(),
                err = %e,
                "STORAGE FAILED: sled cannot write to data_dir {} again in this process: new verdicts are held in memory; free disk space there and restart speedcamd (held verdicts are lost at the restart)",
                self.dir.display()
            );
        }
        *state = StorageState::Failed {
            error: e.to_string(),
        };
        self.metrics.ok.set(0);
    }

    /// Whether `e` means sled can no longer write (an I/O error) rather than a bad record.
    pub fn is_storage_failure(e: &StoreError) -> bool {
        matches!(e, StoreError::Sled(_))
    }

    /// Holds `v` for a later write. When the queue is full a held measurement makes room for a
    /// speeding event; otherwise `v` itself is refused. Each lost verdict is counted and logged;
    /// the error names the lost one when it is `v`.
    pub fn defer(&self, v: Verdict) -> Result<(), StoreError> {
        let mut q = lock(&self.queue);
        self.metrics.deferred.inc();
        if q.len() >= self.capacity {
            let evict = if v.event.kind == EventType::Speeding {
                q.iter()
                    .position(|h| h.event.kind == EventType::Measurement)
            } else {
                None
            };
            match evict {
                Some(i) => {
                    if let Some(old) = q.remove(i) {
                        self.lost(&old);
                    }
                }
                None => {
                    self.lost(&v);
                    return Err(StoreError::Sled(sled::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!(
                            "data_dir {} is full and the retry queue holds its maximum of {} verdicts, so this one is LOST; free disk space there or raise [storage] retry_queue",
                            self.dir.display(),
                            self.capacity
                        ),
                    ))));
                }
            }
        }
        q.push_back(v);
        self.metrics
            .retry_queue
            .set(i64::try_from(q.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    fn lost(&self, v: &Verdict) {
        self.metrics.lost.inc();
        tracing::error!(
            event = %v.event.event_id,
            camera = %v.event.camera,
            kind = ?v.event.kind,
            speed_kmh = v.event.speed_kmh,
            data_dir = %self.dir.display(),
            "VERDICT LOST: data_dir is full and the retry queue ([storage] retry_queue = {}) is full; free disk space",
            self.capacity
        );
    }

    /// The oldest held verdict.
    fn pop(&self) -> Option<Verdict> {
        let mut q = lock(&self.queue);
        let v = q.pop_front();
        self.metrics
            .retry_queue
            .set(i64::try_from(q.len()).unwrap_or(i64::MAX));
        v
    }

    /// Puts a verdict back at the front (its write failed).
    fn push_front(&self, v: Verdict) {
        let mut q = lock(&self.queue);
        q.push_front(v);
        self.metrics
            .retry_queue
            .set(i64::try_from(q.len()).unwrap_or(i64::MAX));
    }

    /// Writes held verdicts through `sink` while the store accepts writes; returns how many
    /// were stored.
    pub fn drain(&self, sink: &dyn VerdictWriter) -> usize {
        let mut stored = 0;
        let mut times = StageTimes::default();
        while self.queued() > 0 && self.check() {
            let Some(mut v) = self.pop() else { break };
            match sink.store_now(&mut v, &mut times) {
                Ok(_) => stored += 1,
                Err(e) if Self::is_storage_failure(&e) => {
                    self.fail(&e);
                    self.push_front(v);
                    break;
                }
                Err(e) => {
                    // A record that can never be stored (a bug); keeping it would block the queue.
                    self.lost(&v);
                    tracing::error!(event = %v.event.event_id, err = %e, "held verdict cannot be stored");
                }
            }
        }
        if stored > 0 {
            tracing::info!(
                stored,
                left = self.queued(),
                "held verdicts written to the store"
            );
        }
        stored
    }

    /// At shutdown: verdicts still held are lost; counts and logs them.
    pub(crate) fn abandon(&self) -> usize {
        let mut n = 0;
        while let Some(v) = self.pop() {
            self.lost(&v);
            n += 1;
        }
        n
    }
}

/// Where held verdicts go once the store takes writes again: the daemon's
/// [`EventSink`](super::EventSink), which holds this module's [`StorageGuard`]. A trait, so
/// the dependency points one way (sink -> storage).
pub trait VerdictWriter: Send + Sync {
    /// Stores `v` now, bypassing the guard.
    fn store_now(&self, v: &mut Verdict, times: &mut StageTimes) -> Result<(), StoreError>;
}

/// The background thread: retries held verdicts every second and runs retention every
/// `[storage] prune_interval_s`.
pub struct StorageWorker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often held verdicts are retried (and free space re-checked).
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);

impl StorageWorker {
    /// Starts the worker for `sink`'s store (the sink must carry `guard`); its retries, its
    /// retention period and the age cut-off of retention come from `clock`.
    pub fn start(
        sink: Arc<dyn VerdictWriter>,
        guard: Arc<StorageGuard>,
        store: Store,
        prune_every: Duration,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<StorageWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || {
                worker(
                    sink.as_ref(),
                    &guard,
                    &store,
                    prune_every,
                    clock.as_ref(),
                    &s,
                )
            })?;
        Ok(StorageWorker {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the worker (after a last retry of held verdicts) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StorageWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch of `clock`'s wall time (0 before 1970).
fn unix_ms(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.realtime().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn worker(
    sink: &dyn VerdictWriter,
    guard: &StorageGuard,
    store: &Store,
    prune_every: Duration,
    clock: &dyn Clock,
    stop: &AtomicBool,
) {
    let mut last_prune: Option<Duration> = None;
    let mut last_walk: Option<Duration> = None;
    loop {
        let ok = guard.check();
        if ok {
            guard.drain(sink);
        }
        // The directory walk for `speedcam_storage_dir_bytes`: at most every 10 s.
        if last_walk.is_none_or(|t| clock.now().saturating_sub(t) >= Duration::from_secs(10)) {
            last_walk = Some(clock.now());
            guard
                .metrics
                .dir_bytes
                .set(i64::try_from(crate::store::dir_size_bytes(&guard.dir)).unwrap_or(i64::MAX));
        }
        let now = clock.now();
        let failed = matches!(guard.state(), StorageState::Failed { .. });
        if !failed && last_prune.is_none_or(|t| now.saturating_sub(t) >= prune_every) {
            last_prune = Some(now);
            match guard.retention.prune(store, unix_ms(clock)) {
                Ok(r) => {
                    guard.metrics.pruned.inc_by(r.by_age + r.by_bytes);
                }
                Err(e) if StorageGuard::is_storage_failure(&e) => guard.fail(&e),
                Err(e) => tracing::error!(err = %e, "retention pass failed"),
            }
        }
        if !clock.sleep_unless(RETRY_EVERY, stop) {
            break;
        }
    }
    if guard.check() {
        guard.drain(sink);
    }
    let lost = guard.abandon();
    if lost > 0 {
        tracing::error!(
            lost,
            data_dir = %guard.dir.display(),
            "stopping with the store not accepting writes: {lost} held verdict(s) LOST"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::service::EventSink;

    fn verdict(n: u64, kind: EventType) -> Verdict {
        Verdict {
            event: Event {
                kind,
                speed_ci95_kmh: None,
                ..crate::event::test_event(
                    ulid::Ulid::from_parts(1_750_000_000_000 + n, 0).to_string(),
                    "cam1",
                    n,
                )
            },
            thumbnail_jpeg: None,
            origin: None,
        }
    }

    #[test]
    fn a_full_disk_holds_verdicts_and_an_overflow_loses_measurements_first() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig {
            min_free_bytes: u64::MAX, // never enough: "full"
            retry_queue: 2,
            ..StorageConfig::default()
        };
        let m = StorageMetrics::default();
        let g = StorageGuard::new(dir.path(), &cfg, m.clone());
        assert!(!g.check());
        assert!(matches!(g.state(), StorageState::Full { .. }));
        assert_eq!(m.ok.get(), 0);
        g.defer(verdict(1, EventType::Measurement)).unwrap();
        g.defer(verdict(2, EventType::Measurement)).unwrap();
        // Full queue: a speeding event evicts the oldest measurement...
        g.defer(verdict(3, EventType::Speeding)).unwrap();
        assert_eq!(m.lost.get(), 1);
        // ...a measurement is refused itself.
        let err = g.defer(verdict(4, EventType::Measurement)).unwrap_err();
        assert!(err.to_string().contains("LOST"), "{err}");
        assert_eq!(m.lost.get(), 2);
        assert_eq!(m.deferred.get(), 4);
        assert_eq!(g.queued(), 2);
        assert_eq!(m.retry_queue.get(), 2);
        assert_eq!(g.status().as_deref(), Some("STORAGE FULL (2 queued)"));
        let kept: Vec<u64> = [g.pop(), g.pop()]
            .into_iter()
            .flatten()
            .map(|v| v.event.track_id)
            .collect();
        assert_eq!(kept, [2, 3]);
    }

    #[test]
    fn space_back_drains_in_order_and_a_failed_store_stays_failed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let cfg = StorageConfig {
            min_free_bytes: 1,
            ..StorageConfig::default()
        };
        let g = StorageGuard::new(dir.path(), &cfg, StorageMetrics::default());
        let sink = EventSink::new(store.clone(), None, None, false).with_storage(g.clone());
        for n in 0..3 {
            g.defer(verdict(n, EventType::Speeding)).unwrap();
        }
        // While verdicts wait, a new one queues behind them (order kept).
        let mut v = verdict(3, EventType::Speeding);
        sink.accept(&mut v, &mut crate::stats::StageTimes::default())
            .unwrap();
        assert_eq!(g.queued(), 4);
        assert_eq!(g.drain(&sink), 4);
        let ids: Vec<u64> = store
            .events(None, None)
            .unwrap()
            .iter()
            .map(|e| e.track_id)
            .collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(g.status(), None);
        g.fail(&StoreError::Sled(sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space",
        ))));
        assert!(!g.check());
        assert!(g.status().unwrap().contains("restart needed"));
        let mut v = verdict(9, EventType::Speeding);
        sink.accept(&mut v, &mut crate::stats::StageTimes::default())
            .unwrap();
        assert_eq!(g.drain(&sink), 0);
        assert_eq!(g.abandon(), 1);
    }

    #[test]
    fn retention_ages_events_by_the_clock_wall_time_and_retries_pace_on_it() {
        use crate::clock::SimulatedClock;
        // The test events are stamped 2025-06-15 (their ULIDs); retention keeps 30 days.
        let stamped = time::OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        for (wall, kept) in [
            (stamped + Duration::from_secs(86_400), 3),
            (SimulatedClock::EPOCH, 0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("data")).unwrap();
            let cfg = StorageConfig {
                min_free_bytes: 1,
                max_age: Some(Duration::from_secs(30 * 86_400)),
                ..StorageConfig::default()
            };
            let g = StorageGuard::new(dir.path(), &cfg, StorageMetrics::default());
            let sink =
                Arc::new(EventSink::new(store.clone(), None, None, false).with_storage(g.clone()));
            for n in 0..3 {
                let mut v = verdict(n, EventType::Speeding);
                sink.accept(&mut v, &mut crate::stats::StageTimes::default())
                    .unwrap();
            }
            let clock = Arc::new(SimulatedClock::starting_at(wall));
            let worker = StorageWorker::start(
                sink,
                g,
                store.clone(),
                Duration::from_secs(10),
                clock.clone(),
            )
            .unwrap();
            // The worker's first pass (retention included) is done once it sleeps on the clock.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while clock.sleeps().is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the worker never slept"
                );
                std::thread::yield_now();
            }
            worker.stop();
            assert_eq!(
                store.events(None, None).unwrap().len(),
                kept,
                "clock at {wall}"
            );
            assert!(clock.sleeps().iter().all(|&d| d == RETRY_EVERY));
        }
    }
}
