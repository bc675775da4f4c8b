//! Reconnect pacing and log rate-limiting for the MQTT publisher and the camera supervisors,
//! kept free of clocks and sleeps so they are testable.

use std::time::Duration;

/// Exponential reconnect delay with jitter: `initial`, doubling up to `max`; reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// Delay before the next attempt; `unit_random` in [0, 1) spreads a fleet's reconnects
    /// over the upper half of the nominal delay so they do not hit the broker in lockstep.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let nominal = self.current;
        self.current = (self.current * 2).min(self.max);
        nominal.mul_f64(0.5 + 0.5 * unit_random.clamp(0.0, 1.0))
    }

    /// Back to the initial delay after a successful connection.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

/// Lets one message through per `interval`, counting the ones it held back.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    /// When the last message was let through, as time since the caller's origin.
    last: Option<Duration>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing one message per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a message may be logged at `now` (`n` were suppressed since the last one).
    /// `now` is time since any fixed origin (as [`crate::clock::Clock::now`] gives), so the
    /// caller owns the clock and tests pass simulated time.
    pub fn allow(&mut self, now: Duration) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_sub(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Forget history, so the next message is logged at once (after the connection came back).
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

/// A uniform random number in [0, 1) from std's randomly keyed hasher (jitter needs no crate).
pub fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_stay_within_half_to_full_nominal(rands in prop::collection::vec(0.0f64..1.0, 1..40)) {
            let (initial, max) = (Duration::from_millis(250), Duration::from_secs(30));
            let mut b = Backoff::new(initial, max);
            let mut nominal = initial;
            for r in rands {
                let d = b.next_delay(r);
                prop_assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
                nominal = (nominal * 2).min(max);
            }
        }
    }

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let full: Vec<_> = (0..6).map(|_| b.next_delay(1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 8, 8]);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(500));
    }

    #[test]
    fn limiter_counts_suppressed_messages() {
        let mut l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Duration::from_secs(1000);
        assert_eq!(l.allow(t0), Some(0));
        for s in 1..10 {
            assert_eq!(l.allow(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(61)), Some(9));
        l.reset();
        assert_eq!(l.allow(t0 + Duration::from_secs(62)), Some(0));
    }

    #[test]
    fn unit_random_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..16).map(|_| unit_random()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x != xs[0]));
    }
}
