//! The bounded hand-off between a camera's decode thread and its detection loop.
//!
//! Two policies, chosen by the kind of source:
//! - [`HandoffMode::EveryFrame`] (files): the decoder waits when two frames are queued, so a
//!   replay processes every frame however slow the detector is.
//! - [`HandoffMode::LatestWins`] (live cameras): one slot; a new frame replaces a frame still
//!   waiting, which is dropped and counted. A camera cannot be paused, so when inference is slower
//!   than the camera, queueing would only add latency: the detector always gets the newest frame,
//!   and capture-to-detection latency stays bounded by one inference.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How the hand-off behaves when the consumer is slower than the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffMode {
    /// Block the producer at two queued items: nothing is dropped (file replay).
    EveryFrame,
    /// One slot, the newest item replaces a waiting one (live sources).
    LatestWins,
}

/// What [`Handoff::recv_timeout`] got.
#[derive(Debug)]
pub(crate) enum Received<T> {
    /// An item and the time it was handed over.
    Item(T, Instant),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The producer is gone and the queue is empty.
    Closed,
}

/// A bounded single-producer, single-consumer hand-off.
pub(crate) struct Handoff<T> {
    mode: HandoffMode,
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    queue: VecDeque<(T, Instant)>,
    /// The producer waits in `send` for room (every-frame mode).
    producer_blocked: bool,
    producer_gone: bool,
    consumer_gone: bool,
    dropped: u64,
}

impl<T> Handoff<T> {
    /// An empty hand-off with the given policy.
    pub(crate) fn new(mode: HandoffMode) -> Self {
        Handoff {
            mode,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                producer_blocked: false,
                producer_gone: false,
                consumer_gone: false,
                dropped: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `item` over; false once the consumer has gone (the producer should stop).
    pub(crate) fn send(&self, item: T) -> bool {
        let mut s = self.lock();
        match self.mode {
            HandoffMode::EveryFrame => {
                while s.queue.len() >= 2 && !s.consumer_gone {
                    s.producer_blocked = true;
                    s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                s.producer_blocked = false;
            }
            HandoffMode::LatestWins => {
                while s.queue.pop_front().is_some() {
                    s.dropped += 1;
                }
            }
        }
        if s.consumer_gone {
            return false;
        }
        s.queue.push_back((item, Instant::now()));
        self.changed.notify_all();
        true
    }

    /// Takes the oldest waiting item, waiting at most `timeout`.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Received<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some((item, at)) = s.queue.pop_front() {
                self.changed.notify_all();
                return Received::Item(item, at);
            }
            if s.producer_gone {
                return Received::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::Timeout;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The producer calls this when it stops; the consumer sees `Closed` after the queue drains.
    pub(crate) fn close_producer(&self) {
        self.lock().producer_gone = true;
        self.changed.notify_all();
    }

    /// The consumer calls this when it stops; a blocked or later `send` returns false.
    pub(crate) fn close_consumer(&self) {
        let mut s = self.lock();
        s.consumer_gone = true;
        s.queue.clear();
        self.changed.notify_all();
    }

    /// Items replaced before the consumer took them (latest-wins mode only), plus those the
    /// producer reported with [`Handoff::count_dropped`].
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The producer skipped `n` items before handing any over (a real-time replay whose
    /// decoder fell behind the clock): counted with the replaced ones.
    pub(crate) fn count_dropped(&self, n: u64) {
        if n > 0 {
            self.lock().dropped += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn item<T: std::fmt::Debug>(r: Received<T>) -> T {
        match r {
            Received::Item(x, _) => x,
            other => panic!("expected an item, got {other:?}"),
        }
    }

    #[test]
    fn latest_wins_keeps_the_newest_and_counts_the_rest() {
        let h = Handoff::new(HandoffMode::LatestWins);
        for i in 0..5 {
            assert!(h.send(i));
        }
        assert_eq!(item(h.recv_timeout(Duration::ZERO)), 4);
        assert_eq!(h.dropped(), 4);
        assert!(matches!(
            h.recv_timeout(Duration::from_millis(5)),
            Received::Timeout
        ));
        h.close_producer();
        assert!(matches!(h.recv_timeout(Duration::ZERO), Received::Closed));
    }

    #[test]
    fn every_frame_blocks_instead_of_dropping() {
        let h = Arc::new(Handoff::new(HandoffMode::EveryFrame));
        let p = {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    assert!(h.send(i));
                }
                h.close_producer();
            })
        };
        let mut got = Vec::new();
        loop {
            // A minute only turns a hang into a failure.
            match h.recv_timeout(Duration::from_secs(60)) {
                Received::Item(x, _) => got.push(x),
                Received::Closed => break,
                Received::Timeout => panic!("producer stuck"),
            }
        }
        p.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!(h.dropped(), 0);
    }

    #[test]
    fn frames_the_producer_skipped_count_as_dropped() {
        let h = Handoff::new(HandoffMode::LatestWins);
        h.count_dropped(3);
        assert!(h.send(1) && h.send(2));
        assert_eq!(h.dropped(), 4);
    }

    #[test]
    fn a_gone_consumer_releases_a_blocked_producer() {
        let h = Arc::new(Handoff::new(HandoffMode::EveryFrame));
        assert!(h.send(1) && h.send(2));
        let p = {
            let h = h.clone();
            std::thread::spawn(move || h.send(3))
        };
        // Polled until the producer waits for room (the deadline only guards against a hang).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !h.lock().producer_blocked {
            assert!(Instant::now() < deadline, "the producer never blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
        h.close_consumer();
        assert!(!p.join().unwrap());
    }
}
