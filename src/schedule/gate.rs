//! The shared detector with a priority queue in front of it.
//!
//! Several cameras share one detector (one model in GPU memory, one TensorRT engine). A plain
//! mutex serves them in whatever order the OS wakes threads; with a detector that is the
//! bottleneck, a camera watching an empty road would take turns with one that has a vehicle in
//! its zone and costs it samples. The gate lets urgent requests (busy cameras) overtake waiting
//! normal ones; among equals the OS order stands. Nothing starves for long: idle cameras ask a few
//! times a second and busy periods end when vehicles leave.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::detect::Detector;

#[derive(Debug, Default)]
struct GateState {
    held: bool,
    urgent_waiting: usize,
    normal_waiting: usize,
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
        if urgent {
            s.urgent_waiting += 1;
            while s.held {
                s = self.turn.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.urgent_waiting -= 1;
        } else {
            s.normal_waiting += 1;
            while s.held || s.urgent_waiting > 0 {
                s = self.turn.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.normal_waiting -= 1;
        }
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
        (s.urgent_waiting, s.normal_waiting)
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

    fn wait_until(gate: &DetectorGate, want: (usize, usize)) {
        let start = Instant::now();
        while gate.waiting() != want {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waiting {:?}",
                gate.waiting()
            );
            std::thread::sleep(Duration::from_millis(2));
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
