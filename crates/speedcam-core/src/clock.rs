//! Injectable time for long-lived loops (reconnect backoff, heartbeats, storage retries and
//! retention), so their logic is tested by advancing a simulated clock instead of sleeping.
//!
//! Speed never uses this clock: it uses capture timestamps carried by each frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A monotonic clock that can also wait, and the wall time beside it.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin of this clock.
    fn now(&self) -> Duration;
    /// Wall-clock time (UTC), for what is kept by date: retention ages, timestamps in reports.
    /// Unlike [`Clock::now`] it may jump (NTP, an operator setting the date).
    fn realtime(&self) -> OffsetDateTime;
    /// Waits `d`, returning early (false) once `stop` is set; true when the whole wait elapsed.
    fn sleep_unless(&self, d: Duration, stop: &AtomicBool) -> bool;
}

/// The real monotonic clock; waits in slices of at most 100 ms so a stop request is noticed.
#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    origin: Instant,
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn realtime(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep_unless(&self, d: Duration, stop: &AtomicBool) -> bool {
        let until = Instant::now() + d;
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// A clock that only moves when slept on or advanced; records every sleep (for tests). Its
/// wall time is [`SimulatedClock::EPOCH`] (or [`SimulatedClock::starting_at`]) plus `now`.
#[derive(Debug, Default)]
pub struct SimulatedClock {
    inner: Mutex<SimState>,
}

#[derive(Debug, Default)]
struct SimState {
    now: Duration,
    sleeps: Vec<Duration>,
    /// Wall time at `now == 0`; None: [`SimulatedClock::EPOCH`].
    wall_origin: Option<OffsetDateTime>,
}

impl SimulatedClock {
    /// Wall time at `now == 0` unless set: 2026-01-01T00:00:00Z.
    pub const EPOCH: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    /// A clock whose wall time starts at `wall`.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        let clock = SimulatedClock::default();
        clock.state().wall_origin = Some(wall);
        clock
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.state().now += d;
    }

    /// Every wait requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Duration {
        self.state().now
    }

    fn realtime(&self) -> OffsetDateTime {
        let s = self.state();
        s.wall_origin.unwrap_or(Self::EPOCH) + s.now
    }

    fn sleep_unless(&self, d: Duration, stop: &AtomicBool) -> bool {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let mut s = self.state();
        s.now += d;
        s.sleeps.push(d);
        drop(s);
        // A loop sleeping on this clock in another thread must not starve the test driving it.
        std::thread::yield_now();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_advances_only_when_asked() {
        let c = SimulatedClock::default();
        let stop = AtomicBool::new(false);
        assert_eq!(c.now(), Duration::ZERO);
        assert!(c.sleep_unless(Duration::from_secs(3), &stop));
        c.advance(Duration::from_millis(500));
        assert_eq!(c.now(), Duration::from_millis(3500));
        stop.store(true, Ordering::Relaxed);
        assert!(!c.sleep_unless(Duration::from_secs(1), &stop));
        assert_eq!(c.sleeps(), vec![Duration::from_secs(3)]);
        assert_eq!(
            c.realtime(),
            SimulatedClock::EPOCH + Duration::from_millis(3500)
        );
        let later =
            SimulatedClock::starting_at(SimulatedClock::EPOCH + Duration::from_secs(86_400));
        later.advance(Duration::from_secs(1));
        assert_eq!(
            later.realtime(),
            SimulatedClock::EPOCH + Duration::from_secs(86_401)
        );
    }

    /// A stop set while (or just before) the real clock sleeps an hour ends the sleep: the
    /// sleeper reports it (false) over a channel. The minute the test waits for that only turns a hang into a
    /// failure; it bounds nothing about how fast the stop is noticed.
    #[test]
    fn real_clock_sleep_returns_early_on_stop() {
        use std::sync::{mpsc, Arc};
        let c = RealClock::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (asleep_tx, asleep) = mpsc::channel();
        let (woke_tx, woke) = mpsc::channel();
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = asleep_tx.send(());
                let _ = woke_tx.send(c.sleep_unless(Duration::from_secs(3600), &stop));
            })
        };
        asleep.recv().expect("the sleeper started");
        stop.store(true, Ordering::Relaxed);
        let completed = woke
            .recv_timeout(Duration::from_secs(60))
            .expect("the sleep ended on stop");
        assert!(!completed, "a stopped sleep reports that it was cut short");
        sleeper.join().expect("sleeper");
        // Already stopped: no wait at all.
        assert!(!c.sleep_unless(Duration::from_secs(3600), &stop));
        // Not stopped: the whole wait elapses (a lower bound, which no load can break).
        stop.store(false, Ordering::Relaxed);
        let before = c.now();
        assert!(c.sleep_unless(Duration::from_millis(20), &stop));
        assert!(c.now() - before >= Duration::from_millis(20));
    }
}
