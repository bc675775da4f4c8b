//! Keeps one camera running for the life of the daemon: open the source, stream, and when it
//! fails, stalls or ends, report why and open it again with exponential backoff and jitter.
//!
//! A camera being down never stops the daemon or the other cameras: each camera has its own
//! supervisor on its own thread, and the only way out of the loop is a stop request (or the end
//! of a *file* source, which has nothing more to give). Every transition is logged and reported
//! as a [`CameraState`], which the daemon publishes retained at `<camera>/state`.
//!
//! Time comes from an injected [`Clock`], so the backoff schedule is tested without sleeping.

use super::{
    run_source, EventSink, LoopEnd, LoopEnv, LoopHooks, LoopOptions, RunSummary, SharedDetector,
    Verdict,
};
use crate::backoff::{unit_random, Backoff};
use crate::clock::Clock;
use crate::config::{CameraConfig, Config};
use crate::source::{is_live_uri, redact_uri, Opener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Health of one camera's source, published retained at `<camera>/state`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum CameraState {
    /// Opening the source for the first time.
    Connecting {
        /// The source, credentials redacted.
        source: String,
    },
    /// Frames are flowing.
    Streaming {
        /// The source, credentials redacted.
        source: String,
    },
    /// The source failed or ended; the next attempt is scheduled.
    Reconnecting {
        /// Why the last attempt failed.
        reason: String,
        /// Consecutive failed attempts so far (1 = the first retry).
        attempt: u32,
        /// Seconds until the next attempt.
        retry_in_s: f64,
    },
    /// The source delivered no frame for `after_s` seconds; it will be reopened.
    Stalled {
        /// Seconds without a frame.
        after_s: f64,
    },
    /// The camera is not running and will not be retried (shutdown, end of a file).
    Stopped {
        /// Why.
        reason: String,
    },
}

impl CameraState {
    /// The state's lower-case name, as in the payload's `state` field.
    pub fn name(&self) -> &'static str {
        match self {
            CameraState::Connecting { .. } => "connecting",
            CameraState::Streaming { .. } => "streaming",
            CameraState::Reconnecting { .. } => "reconnecting",
            CameraState::Stalled { .. } => "stalled",
            CameraState::Stopped { .. } => "stopped",
        }
    }

    /// The retained MQTT payload: `{"camera": .., "state": .., ...}`.
    pub fn payload(&self, camera: &str) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("camera".into(), camera.into());
            m.insert("schema".into(), 1.into());
        }
        v.to_string().into_bytes()
    }
}

/// Reconnect and stall settings of one camera (`[cameras.reconnect]` in the config).
pub(crate) type ReconnectPolicy = crate::config::ReconnectConfig;

/// Totals over a camera's whole life (all connections).
#[derive(Debug, Clone, Default)]
pub struct CameraTotals {
    /// Successful opens.
    pub connections: u64,
    /// Failed opens plus connections that broke, stalled or ended.
    pub failures: u64,
    /// Frames decoded, detected, dropped, measurements... summed over connections.
    pub sum: RunSummary,
}

/// Everything a supervisor needs; borrowed, so the daemon and tests own the parts.
pub struct Supervisor<'a> {
    /// The camera.
    pub cam: &'a CameraConfig,
    /// The whole config (tracker settings, device id).
    pub cfg: &'a Config,
    /// Opens the camera's source.
    pub opener: &'a dyn Opener,
    /// The detector shared by all cameras.
    pub detector: &'a SharedDetector,
    /// Where verdicts go.
    pub sink: &'a EventSink,
    /// Set to end the loop.
    pub stop: &'a AtomicBool,
    /// Time for backoff waits.
    pub clock: &'a dyn Clock,
    /// Reconnect settings.
    pub policy: ReconnectPolicy,
    /// Called on every state change (log + retained MQTT in the daemon).
    pub report: &'a (dyn Fn(&CameraState) + Sync),
    /// The daemon's watchdog heartbeat and reloads, passed on to every connection's loop.
    pub hooks: LoopHooks,
}

/// Slack on announced waits before the watchdog counts a silent loop as wedged.
const QUIET_SLACK: Duration = Duration::from_secs(5);

impl Supervisor<'_> {
    /// Runs until `stop` is set or a file source ends; returns totals.
    pub fn run(&self, on_verdict: &mut dyn FnMut(&Verdict)) -> CameraTotals {
        let cam = self.cam;
        let live = is_live_uri(&cam.source);
        let shown = redact_uri(&cam.source);
        let mut backoff = Backoff::new(self.policy.initial, self.policy.max);
        let mut totals = CameraTotals::default();
        if self.hooks.metrics.is_some() {
            // Bounded like each connection's own samples (they are merged in here).
            totals.sum.times = crate::stats::StageTimes::with_capacity(super::LIVE_STAGE_SAMPLES);
        }
        let mut attempt = 0u32;
        (self.report)(&CameraState::Connecting {
            source: shown.clone(),
        });
        // A real-time replay (`[cameras.replay] realtime`) is handed off like a live camera.
        let paced = live || cam.live.replay.realtime;
        let mut opts = LoopOptions::for_source(paced, self.policy.stall_timeout);
        opts.hooks = self.hooks.clone();
        // The daemon restarts a recording from its start after a crash: no vehicle twice.
        opts.origin_keys = true;
        let env = LoopEnv {
            cam,
            cfg: self.cfg,
            detector: self.detector,
            sink: self.sink,
            stop: self.stop,
            clock: self.clock,
            opts,
        };
        let heartbeat = self.hooks.heartbeat.as_ref();
        while !self.stop.load(Ordering::Relaxed) {
            // Opening gives up within the stall timeout (RTSP, V4L2): that long is not a wedge.
            if let Some(h) = heartbeat {
                h.quiet_for(self.policy.stall_timeout + QUIET_SLACK);
            }
            let reason = match self.opener.open(&cam.source, cam.id.as_str().into()) {
                Err(e) => e.to_string(),
                Ok(source) => {
                    totals.connections += 1;
                    (self.report)(&CameraState::Streaming {
                        source: shown.clone(),
                    });
                    let (sum, end) = run_source(&env, source, on_verdict);
                    // Frames arrived (some may have been superseded before detection): the
                    // connection worked, so the next failure starts the schedule afresh.
                    if sum.frames + sum.dropped > 0 {
                        backoff.reset();
                        attempt = 0;
                    }
                    totals.sum.add(&sum);
                    match end {
                        LoopEnd::Stopped => break,
                        LoopEnd::EndOfStream if !live => {
                            tracing::info!(
                                frames = sum.frames,
                                measurements = sum.measurements,
                                "file source ended; camera stopped"
                            );
                            (self.report)(&CameraState::Stopped {
                                reason: "end of file".into(),
                            });
                            if let Some(h) = heartbeat {
                                h.finished();
                            }
                            return totals;
                        }
                        LoopEnd::EndOfStream => "the stream ended".to_string(),
                        LoopEnd::Stalled { after_s } => {
                            (self.report)(&CameraState::Stalled { after_s });
                            format!("no frame for {after_s:.1} s")
                        }
                        LoopEnd::Failed(e) => e.to_string(),
                    }
                }
            };
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            totals.failures += 1;
            attempt += 1;
            let delay = backoff.next_delay(unit_random());
            tracing::warn!(attempt, err = %reason, "source {shown} failed; retrying in {:.1} s", delay.as_secs_f64());
            (self.report)(&CameraState::Reconnecting {
                reason,
                attempt,
                retry_in_s: delay.as_secs_f64(),
            });
            if let Some(h) = heartbeat {
                h.quiet_for(delay + QUIET_SLACK);
            }
            if !self.clock.sleep_unless(delay, self.stop) {
                break;
            }
        }
        (self.report)(&CameraState::Stopped {
            reason: "shutdown".into(),
        });
        if let Some(h) = heartbeat {
            h.finished();
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;
    use crate::service::tests::TestFrames;
    use crate::source::{Source, SourceError};
    use speedcam_core::source::link::LinkError;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Fails `fail_opens` times, then serves `frames` frames and fails with `Disconnected`.
    struct FlakyOpener {
        fail_opens: Mutex<u32>,
        frames: u64,
        opens: Mutex<u32>,
    }

    impl Opener for FlakyOpener {
        fn open(&self, uri: &str, _camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
            *self.opens.lock().unwrap() += 1;
            let mut f = self.fail_opens.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(SourceError::Connect {
                    uri: redact_uri(uri),
                    cause: LinkError::Io {
                        step: "connecting",
                        cause: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                    },
                });
            }
            Ok(Box::new(TestFrames::disconnecting(
                self.frames,
                LinkError::Closed,
            )))
        }
    }

    #[test]
    fn backs_off_exponentially_resets_after_frames_and_reports_states() {
        let (cfg, _dir) = crate::service::tests::fixture_config("rtsp://user:pw@cam/x");
        let detector = crate::service::tests::null_detector();
        let sink = crate::service::tests::memory_sink(&cfg);
        let stop = AtomicBool::new(false);
        let clock = SimulatedClock::default();
        let opener = FlakyOpener {
            fail_opens: Mutex::new(4),
            frames: 5,
            opens: Mutex::new(0),
        };
        let states = Mutex::new(Vec::new());
        let report = |s: &CameraState| {
            let mut v = states.lock().unwrap();
            v.push(s.clone());
            // Stop after the connection that follows the successful one has failed twice.
            if v.len() > 12 {
                stop.store(true, Ordering::Relaxed);
            }
        };
        let sup = Supervisor {
            cam: &cfg.cameras[0],
            cfg: &cfg,
            opener: &opener,
            detector: &detector,
            sink: &sink,
            stop: &stop,
            clock: &clock,
            policy: ReconnectPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(4),
                stall_timeout: Duration::from_secs(5),
            },
            report: &report,
            hooks: LoopHooks::default(),
        };
        let totals = sup.run(&mut |_| {});
        let sleeps: Vec<f64> = clock.sleeps().iter().map(|d| d.as_secs_f64()).collect();
        // Nominal 1, 2, 4, 4 (capped) with jitter in [0.5, 1] x nominal; then frames flowed,
        // so the schedule restarts at 1.
        let nominal = [1.0, 2.0, 4.0, 4.0, 1.0];
        for (s, n) in sleeps.iter().zip(nominal) {
            assert!(*s >= 0.5 * n - 1e-9 && *s <= n + 1e-9, "{sleeps:?}");
        }
        assert!(
            totals.connections >= 1 && totals.sum.frames + totals.sum.dropped >= 5,
            "{totals:?}"
        );
        let states = states.into_inner().unwrap();
        let names: Vec<&str> = states
            .iter()
            .map(|s| match s {
                CameraState::Connecting { .. } => "connecting",
                CameraState::Streaming { .. } => "streaming",
                CameraState::Reconnecting { .. } => "reconnecting",
                CameraState::Stalled { .. } => "stalled",
                CameraState::Stopped { .. } => "stopped",
            })
            .collect();
        assert_eq!(
            &names[..7],
            [
                "connecting",
                "reconnecting",
                "reconnecting",
                "reconnecting",
                "reconnecting",
                "streaming",
                "reconnecting"
            ],
            "{names:?}"
        );
        assert_eq!(names.last(), Some(&"stopped"));
        // Credentials never appear in what is published.
        for s in &states {
            let p = String::from_utf8(s.payload("cam1")).unwrap();
            assert!(!p.contains("pw"), "{p}");
        }
        match &states[6] {
            CameraState::Reconnecting {
                reason, attempt, ..
            } => {
                assert!(
                    reason.contains("the server closed the connection"),
                    "{reason}"
                );
                assert_eq!(*attempt, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_payload_is_tagged_json() {
        let p = CameraState::Reconnecting {
            reason: "refused".into(),
            attempt: 3,
            retry_in_s: 2.5,
        }
        .payload("north");
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["state"], "reconnecting");
        assert_eq!(v["camera"], "north");
        assert_eq!(v["attempt"], 3);
    }
}
