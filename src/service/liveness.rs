//! Is every camera loop still making progress? The systemd watchdog is pinged only when it is.
//!
//! Each camera thread holds a [`Heartbeat`] and beats on every pass of its loop: every frame,
//! every 200 ms slice while it waits for one, before it opens its source. A thread stuck inside
//! inference (or waiting forever for the shared detector, or in a hung open) stops beating, its
//! heartbeat goes stale, [`Liveness::check`] names it, and the daemon stops sending `WATCHDOG=1`
//! so systemd restarts it. Planned waits (reconnect backoff, opening a source within its
//! timeout) are announced with [`Heartbeat::quiet_for`]; a camera whose file ended is
//! [`Heartbeat::finished`] and no longer counts. Time comes from an injected [`Clock`].

use crate::clock::Clock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Beat {
    camera: String,
    /// Clock time of the last beat, ms.
    last_ms: AtomicU64,
    /// No beat is expected before this clock time, ms.
    quiet_until_ms: AtomicU64,
    finished: AtomicBool,
}

/// One camera loop's pulse.
#[derive(Clone)]
pub struct Heartbeat {
    beat: Arc<Beat>,
    clock: Arc<dyn Clock>,
}

impl Heartbeat {
    /// The loop made progress.
    pub fn beat(&self) {
        self.beat
            .last_ms
            .store(ms(self.clock.now()), Ordering::Relaxed);
    }

    /// The loop is about to wait up to `d` on purpose (backoff, a source open bounded by its
    /// timeout): silence until then is not a wedge.
    pub fn quiet_for(&self, d: Duration) {
        let now = self.clock.now();
        self.beat.last_ms.store(ms(now), Ordering::Relaxed);
        self.beat
            .quiet_until_ms
            .store(ms(now.saturating_add(d)), Ordering::Relaxed);
    }

    /// The loop ended for good (a file source ran out): it no longer counts.
    pub fn finished(&self) {
        self.beat.finished.store(true, Ordering::Relaxed);
    }
}

/// A loop that stopped making progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Wedged {
    /// Camera id.
    pub camera: String,
    /// Seconds since its last beat (or since its announced quiet time ended).
    pub silent_s: f64,
}

/// All camera loops' heartbeats.
pub struct Liveness {
    clock: Arc<dyn Clock>,
    beats: Mutex<Vec<Arc<Beat>>>,
}

impl Liveness {
    /// Heartbeats timed by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Liveness {
            clock,
            beats: Mutex::new(Vec::new()),
        })
    }

    /// A heartbeat for `camera`, counted from now.
    pub fn register(&self, camera: &str) -> Heartbeat {
        let now = ms(self.clock.now());
        let beat = Arc::new(Beat {
            camera: camera.to_string(),
            last_ms: AtomicU64::new(now),
            quiet_until_ms: AtomicU64::new(now),
            finished: AtomicBool::new(false),
        });
        self.beats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(beat.clone());
        Heartbeat {
            beat,
            clock: self.clock.clone(),
        }
    }

    /// The loops silent for longer than `limit` (beyond any announced quiet time); empty when
    /// every running loop is alive.
    pub fn check(&self, limit: Duration) -> Vec<Wedged> {
        let now = ms(self.clock.now());
        let limit = ms(limit);
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats
            .iter()
            .filter(|b| !b.finished.load(Ordering::Relaxed))
            .filter_map(|b| {
                let since = b
                    .last_ms
                    .load(Ordering::Relaxed)
                    .max(b.quiet_until_ms.load(Ordering::Relaxed));
                let silent = now.saturating_sub(since);
                (silent > limit).then(|| Wedged {
                    camera: b.camera.clone(),
                    silent_s: silent as f64 / 1e3,
                })
            })
            .collect()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;

    fn setup() -> (Arc<SimulatedClock>, Arc<Liveness>) {
        let clock = Arc::new(SimulatedClock::default());
        let live = Liveness::new(clock.clone());
        (clock, live)
    }

    #[test]
    fn a_loop_that_stops_beating_is_named_after_the_limit() {
        let (clock, live) = setup();
        let a = live.register("a");
        let b = live.register("b");
        let limit = Duration::from_secs(15);
        for _ in 0..100 {
            clock.advance(Duration::from_millis(200));
            a.beat();
            b.beat();
        }
        assert!(live.check(limit).is_empty());
        // b wedges inside inference: a keeps beating.
        for _ in 0..75 {
            clock.advance(Duration::from_millis(200));
            a.beat();
        }
        assert!(live.check(limit).is_empty(), "exactly at the limit is fine");
        clock.advance(Duration::from_millis(200));
        a.beat();
        let w = live.check(limit);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].camera, "b");
        assert!((w[0].silent_s - 15.2).abs() < 1e-9, "{w:?}");
        // It recovers as soon as it beats again.
        b.beat();
        assert!(live.check(limit).is_empty());
    }

    #[test]
    fn announced_waits_and_finished_loops_do_not_count() {
        let (clock, live) = setup();
        let a = live.register("a");
        let b = live.register("b");
        a.quiet_for(Duration::from_secs(60)); // a long reconnect backoff
        b.finished(); // file ended
        clock.advance(Duration::from_secs(70));
        assert!(live.check(Duration::from_secs(15)).is_empty());
        clock.advance(Duration::from_secs(6));
        assert_eq!(live.check(Duration::from_secs(15))[0].camera, "a");
    }
}
