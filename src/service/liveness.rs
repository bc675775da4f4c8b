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

    /// The clock's time (for [`WatchdogGate::tick`]).
    pub fn now(&self) -> Duration {
        self.clock.now()
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

/// What the control loop does with the watchdog on one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchdogAction {
    /// Send `WATCHDOG=1`.
    Ping,
    /// Alive, but the last ping is recent enough (or systemd set no watchdog).
    Wait,
    /// Some loop is wedged: no ping. `newly` lists the loops to log (once per episode).
    Withhold {
        /// Wedged loops not reported since they last made progress.
        newly: Vec<Wedged>,
    },
}

/// Decides, tick by tick, whether to ping systemd's watchdog: every third of its interval while
/// every loop beats; never while one is wedged (silent for more than half the interval), so
/// systemd restarts the daemon within about 1.5 intervals of the wedge.
#[derive(Debug)]
pub struct WatchdogGate {
    every: Option<Duration>,
    limit: Duration,
    last_ping: Option<Duration>,
    reported: Vec<String>,
}

impl WatchdogGate {
    /// For systemd's interval (`WATCHDOG_USEC`), None when it set none: then loops are still
    /// checked (against `fallback_limit`) and wedges logged, with nothing to ping.
    pub fn new(watchdog: Option<Duration>, fallback_limit: Duration) -> Self {
        WatchdogGate {
            every: watchdog.map(|w| w / 3),
            limit: watchdog.map(|w| w / 2).unwrap_or(fallback_limit),
            last_ping: None,
            reported: Vec::new(),
        }
    }

    /// Silence longer than this is a wedge.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// One tick at clock time `now` with the loops [`Liveness::check`] found wedged.
    pub fn tick(&mut self, now: Duration, wedged: Vec<Wedged>) -> WatchdogAction {
        if !wedged.is_empty() {
            let newly: Vec<Wedged> = wedged
                .into_iter()
                .filter(|w| !self.reported.contains(&w.camera))
                .collect();
            self.reported.extend(newly.iter().map(|w| w.camera.clone()));
            return WatchdogAction::Withhold { newly };
        }
        self.reported.clear();
        match self.every {
            Some(every)
                if self
                    .last_ping
                    .is_none_or(|t| now.saturating_sub(t) >= every) =>
            {
                self.last_ping = Some(now);
                WatchdogAction::Ping
            }
            _ => WatchdogAction::Wait,
        }
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
    fn the_gate_pings_every_third_and_withholds_while_wedged() {
        let (clock, live) = setup();
        let a = live.register("a");
        let mut gate = WatchdogGate::new(Some(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(gate.limit(), Duration::from_secs(15));
        let mut pings = Vec::new();
        let mut newly = Vec::new();
        for i in 0..120u64 {
            clock.advance(Duration::from_secs(1));
            if i < 40 {
                a.beat(); // alive for 40 s, then wedged
            }
            match gate.tick(clock.now(), live.check(gate.limit())) {
                WatchdogAction::Ping => pings.push(clock.now().as_secs()),
                WatchdogAction::Withhold { newly: n } => newly.extend(n),
                WatchdogAction::Wait => {}
            }
        }
        assert_eq!(
            pings,
            [1, 11, 21, 31, 41, 51],
            "every 10 s until 15 s after the wedge"
        );
        assert_eq!(newly.len(), 1, "logged once per episode: {newly:?}");
        assert_eq!(newly[0].camera, "a");
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
