//! The shared detector with a priority queue in front of it.
//!
//! Several cameras share one detector (one model in GPU memory, one TensorRT engine). A plain
//! mutex serves them in whatever order the OS wakes threads; with a detector that is the
//! bottleneck, a camera watching an empty road would take turns with one that has a vehicle in
//! its zone and costs it samples. The gate lets urgent requests (busy cameras) overtake waiting
//! normal ones; within each class it is first come, first served (tickets), so the camera that
//! just released the detector cannot grab it again ahead of the others, which a plain mutex
//! lets it do on a loaded CPU (the 4-camera soak measured waits of over 10 s that way). A normal
//! request is overtaken by at most [`MAX_OVERTAKES`] urgent ones, so every camera's wait is
//! bounded: at most (cameras - 1 + MAX_OVERTAKES) detections.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::detect::Detector;

/// A normal request is served after this many urgent ones overtook it (bounded wait).
pub const MAX_OVERTAKES: u32 = 4;

#[derive(Debug, Default)]
struct GateState {
    held: bool,
    next_ticket: u64,
    /// Waiting tickets, first come first served within each class.
    urgent: std::collections::VecDeque<u64>,
    normal: std::collections::VecDeque<u64>,
    /// Urgent grants since the oldest normal request started waiting.
    overtakes: u32,
}

impl GateState {
    /// Queues a new request; returns its ticket.
    fn enqueue(&mut self, urgent: bool) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if urgent {
            self.urgent.push_back(ticket);
        } else {
            self.normal.push_back(ticket);
        }
        ticket
    }

    /// Takes the head ticket out of its queue (the caller then holds the detector).
    fn grant_head(&mut self) -> Option<u64> {
        let t = self.head()?;
        if self.urgent.front() == Some(&t) {
            self.urgent.pop_front();
            if !self.normal.is_empty() {
                self.overtakes += 1;
            }
        } else {
            self.normal.pop_front();
            self.overtakes = 0;
        }
        Some(t)
    }

    /// The ticket to serve next.
    fn head(&self) -> Option<u64> {
        match (self.urgent.front(), self.normal.front()) {
            (Some(_), Some(&n)) if self.overtakes >= MAX_OVERTAKES => Some(n),
            (Some(&u), _) => Some(u),
            (None, n) => n.copied(),
        }
    }
}

/// A detector shared by cameras, handed out urgent requests first.
pub struct DetectorGate {
    state: Mutex<GateState>,
    turn: Condvar,
    detector: Mutex<Box<dyn Detector>>,
}

impl std::fmt::Debug for DetectorGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorGate").finish_non_exhaustive()
    }
}

/// Exclusive use of the detector; the next waiter is let in when it drops.
pub struct GateGuard<'a> {
    gate: &'a DetectorGate,
    detector: Option<MutexGuard<'a, Box<dyn Detector>>>,
}

impl DetectorGate {
    /// Wraps `detector`.
    pub fn new(detector: Box<dyn Detector>) -> Self {
        DetectorGate {
            state: Mutex::new(GateState::default()),
            turn: Condvar::new(),
            detector: Mutex::new(detector),
        }
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        // A camera thread that panicked while queueing must not stop the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the detector. `urgent` requests are served before normal ones that wait.
    pub fn lock(&self, urgent: bool) -> GateGuard<'_> {
        let mut s = self.state();
        let ticket = s.enqueue(urgent);
        while s.held || s.head() != Some(ticket) {
            s = self.turn.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.grant_head();
        s.held = true;
        drop(s);
        GateGuard {
            gate: self,
            detector: Some(self.detector.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// Requests waiting now: (urgent, normal). For tests and stats.
    pub fn waiting(&self) -> (usize, usize) {
        let s = self.state();
        (s.urgent.len(), s.normal.len())
    }
}

impl Deref for GateGuard<'_> {
    type Target = Box<dyn Detector>;
    fn deref(&self) -> &Self::Target {
        self.detector
            .as_ref()
            .expect("guard holds the detector until drop")
    }
}

impl DerefMut for GateGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.detector
            .as_mut()
            .expect("guard holds the detector until drop")
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.detector = None;
        let mut s = self.gate.state();
        s.held = false;
        drop(s);
        self.gate.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DetectError, DetectTimings, Detection};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Nop;
    impl Detector for Nop {
        fn detect(
            &mut self,
            _: &crate::frame::Frame,
        ) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "nop"
        }
    }

    /// Polls until `want` (urgent, normal) requests wait at the gate. The deadline only turns a
    /// hang into a failure: the threads queue in microseconds.
    fn wait_until(gate: &DetectorGate, want: (usize, usize)) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while gate.waiting() != want {
            assert!(Instant::now() < deadline, "waiting {:?}", gate.waiting());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_urgent_request_overtakes_a_normal_one_that_waited_longer() {
        let gate = Arc::new(DetectorGate::new(Box::new(Nop)));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock(false);
        let spawn = |urgent: bool, name: &'static str| {
            let (gate, order) = (gate.clone(), order.clone());
            std::thread::spawn(move || {
                let _g = gate.lock(urgent);
                order.lock().unwrap().push(name);
            })
        };
        let normal = spawn(false, "normal");
        wait_until(&gate, (0, 1));
        let urgent = spawn(true, "urgent");
        wait_until(&gate, (1, 1));
        drop(held);
        normal.join().unwrap();
        urgent.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["urgent", "normal"]);
    }

    /// Grants in order from a state with the given waiting tickets, as `lock` would.
    fn grant_order(s: &mut GateState, mut urgent_arrivals: u64) -> Vec<(bool, u64)> {
        let mut out = Vec::new();
        loop {
            let urgent = s.head().is_some() && s.head() == s.urgent.front().copied();
            let Some(t) = s.grant_head() else { break };
            out.push((urgent, t));
            // Busy cameras keep asking: a new urgent ticket after every urgent grant.
            if urgent && urgent_arrivals > 0 {
                urgent_arrivals -= 1;
                s.enqueue(true);
            }
        }
        out
    }

    #[test]
    fn tickets_are_first_come_first_served_within_a_class() {
        let mut s = GateState::default();
        for urgent in [false, true, false, true] {
            s.enqueue(urgent);
        }
        let order: Vec<u64> = grant_order(&mut s, 0).into_iter().map(|g| g.1).collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
    }

    #[test]
    fn a_normal_request_is_overtaken_at_most_max_overtakes_times() {
        let mut s = GateState::default();
        s.enqueue(false);
        s.enqueue(true);
        // Endless urgent demand: the normal ticket still gets its turn.
        let order = grant_order(&mut s, 100);
        let pos = order
            .iter()
            .position(|g| g.1 == 0)
            .expect("normal ticket served");
        assert_eq!(pos, MAX_OVERTAKES as usize, "{order:?}");
    }

    #[test]
    fn the_guard_gives_the_detector() {
        let gate = DetectorGate::new(Box::new(Nop));
        let g = gate.lock(true);
        assert_eq!(g.model_id(), "nop");
        drop(g);
        assert_eq!(gate.lock(false).model_id(), "nop");
        assert_eq!(gate.waiting(), (0, 0));
    }
}
