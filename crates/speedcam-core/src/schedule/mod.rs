//! Adaptive frame skipping: which frames the detector runs on.
//!
//! Inference is the expensive stage, and most of the time a roadside camera sees an empty road.
//! The scheduler spends detections where they buy speed accuracy and nowhere else:
//! - **busy** (full rate, every frame up to `max_detect_hz`): a track is inside the measurement
//!   zone, is predicted to reach it within `approach_s`, or is still tentative (a new vehicle
//!   must be confirmed quickly, or its first zone samples are lost);
//! - **motion** (up to `motion_detect_hz`): the cheap luma check in [`motion`] sees change that no
//!   track explains, e.g. a vehicle driving in between two idle detections;
//! - **idle** (`min_detect_hz`): nothing happens; a slow heartbeat still looks, so a vehicle the
//!   motion check misses is found within `1 / min_detect_hz` seconds.
//!
//! Every decision uses frame capture times, never frame counts, so skipped frames, jitter and
//! gaps change nothing: the tracker predicts across skipped frames with the real dt.

pub mod gate;
pub mod motion;

use crate::detect::BBox;
use crate::frame::Frame;
use crate::speed::Zone;
pub use gate::{DetectorGate, GateGuard};
pub use motion::{MotionConfig, MotionDetector, MotionResult};

/// Per-camera scheduling settings (`[cameras.schedule]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleConfig {
    /// False: detect every frame (what a benchmark of the detector alone wants).
    pub adaptive: bool,
    /// Detection rate on an empty road, Hz of frame time.
    pub min_detect_hz: f64,
    /// Cap on the busy rate, Hz; None = every frame the source delivers.
    pub max_detect_hz: Option<f64>,
    /// Rate of detections woken by motion that no track explains, Hz.
    pub motion_detect_hz: f64,
    /// How far ahead a track's motion is extrapolated to see whether it approaches the zone, s.
    pub approach_s: f64,
    /// The motion check's thresholds.
    pub motion: MotionConfig,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            adaptive: true,
            min_detect_hz: 2.0,
            max_detect_hz: None,
            motion_detect_hz: 10.0,
            approach_s: 1.0,
            motion: MotionConfig::default(),
        }
    }
}

/// Why a frame is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Adaptive skipping is off: every frame.
    EveryFrame,
    /// A track is in, approaching or not yet confirmed near the zone.
    Busy,
    /// The motion check saw unexplained change.
    Motion,
    /// The idle heartbeat (`min_detect_hz`) is due, or this is the first frame.
    Idle,
}

impl Reason {
    /// Busy cameras go first when cameras share the detector.
    pub fn is_urgent(self) -> bool {
        matches!(self, Reason::Busy | Reason::EveryFrame)
    }
}

/// The scheduler's verdict for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the detector on this frame.
    Detect(Reason),
    /// Skip it: the tracker only predicts.
    Skip,
}

/// What the scheduler needs to know about one live track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackView {
    /// The track's box at `t_s`, frame px.
    pub bbox: BBox,
    /// Image-plane velocity of the box, px/s.
    pub velocity_px_s: (f32, f32),
    /// Whether the track is confirmed (tentative tracks keep the camera busy).
    pub confirmed: bool,
    /// Frame time of `bbox`, s.
    pub t_s: f64,
}

impl TrackView {
    /// The box moved to frame time `t_s` with its velocity.
    pub fn bbox_at(&self, t_s: f64) -> BBox {
        let dt = (t_s - self.t_s) as f32;
        let (dx, dy) = (self.velocity_px_s.0 * dt, self.velocity_px_s.1 * dt);
        BBox {
            x1: self.bbox.x1 + dx,
            y1: self.bbox.y1 + dy,
            x2: self.bbox.x2 + dx,
            y2: self.bbox.y2 + dy,
        }
    }
}

/// Counts of decisions, for logs, stats and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleCounts {
    /// Frames detected because the camera was busy (or skipping is off).
    pub busy: u64,
    /// Frames detected because of motion.
    pub motion: u64,
    /// Idle heartbeat detections.
    pub idle: u64,
    /// Frames skipped.
    pub skipped: u64,
}

/// One camera's frame scheduler.
#[derive(Debug, Clone)]
pub struct Scheduler {
    cfg: ScheduleConfig,
    zone: Zone,
    motion: MotionDetector,
    last_detect_t_s: Option<f64>,
    last_motion_detect_t_s: Option<f64>,
    counts: ScheduleCounts,
    ignore: Vec<BBox>,
}

/// Slack on rate limits, as a share of the interval: frame-time jitter must not turn "every 2nd
/// frame" into "every 3rd".
const RATE_SLACK: f64 = 0.2;

impl Scheduler {
    /// A scheduler for a camera measuring inside `zone` (frame px).
    pub fn new(cfg: ScheduleConfig, zone: Zone) -> Self {
        Scheduler {
            motion: MotionDetector::new(cfg.motion),
            cfg,
            zone,
            last_detect_t_s: None,
            last_motion_detect_t_s: None,
            counts: ScheduleCounts::default(),
            ignore: Vec::new(),
        }
    }

    /// Applies reloaded settings and zone. The motion background is kept unless the motion
    /// settings changed (then it is relearnt within `motion_background_s`).
    pub fn reconfigure(&mut self, cfg: ScheduleConfig, zone: Zone) {
        if cfg.motion != self.cfg.motion {
            self.motion = MotionDetector::new(cfg.motion);
        }
        self.cfg = cfg;
        self.zone = zone;
    }

    /// The settings in use.
    pub fn config(&self) -> &ScheduleConfig {
        &self.cfg
    }

    /// Decisions so far.
    pub fn counts(&self) -> ScheduleCounts {
        self.counts
    }

    /// Whether `tracks` make the camera busy at frame time `t_s`: a tentative track, or a track
    /// whose ground point (box bottom centre) is in the zone now or within `approach_s`.
    pub fn busy(&self, t_s: f64, tracks: &[TrackView]) -> bool {
        const STEPS: usize = 4;
        tracks.iter().any(|tr| {
            if !tr.confirmed {
                return true;
            }
            (0..=STEPS).any(|k| {
                let t = t_s + self.cfg.approach_s * k as f64 / STEPS as f64;
                let (x, y) = tr.bbox_at(t).bottom_center();
                self.zone.contains([x as f64, y as f64])
            })
        })
    }

    /// Decides whether to detect `frame`, given the live tracks. Runs the motion check on every
    /// frame that is not busy anyway (so its background stays current), ignoring the tracks'
    /// boxes. Call
    /// [`Scheduler::detected`] when a detection actually ran.
    pub fn decide(&mut self, frame: &Frame, tracks: &[TrackView]) -> Decision {
        let t = frame.pts_s();
        if !self.cfg.adaptive {
            return self.decide_at(t, tracks, false);
        }
        if self.busy(t, tracks) {
            // Detecting anyway: the motion check would change nothing, so it is not paid for.
            // Its background misses these frames; the selective update keeps that harmless.
            return self.decide_at(t, tracks, false);
        }
        self.ignore.clear();
        self.ignore.extend(tracks.iter().map(|tr| tr.bbox_at(t)));
        let moved = self.motion.check(frame, t, &self.ignore).motion;
        self.decide_at(t, tracks, moved)
    }

    /// The decision for frame time `t_s` when the motion check's answer is already known
    /// (`moved`), or when there are no pixels (MOT files, the accuracy benchmark: pass false).
    pub fn decide_at(&mut self, t: f64, tracks: &[TrackView], moved: bool) -> Decision {
        if !self.cfg.adaptive {
            self.counts.busy += 1;
            return Decision::Detect(Reason::EveryFrame);
        }
        let since = |last: Option<f64>| last.map_or(f64::INFINITY, |l| t - l);
        let due = |hz: f64, last: Option<f64>| since(last) >= (1.0 - RATE_SLACK) / hz;
        let capped = self
            .cfg
            .max_detect_hz
            .is_some_and(|hz| !due(hz, self.last_detect_t_s));
        let decision = if capped {
            Decision::Skip
        } else if self.busy(t, tracks) {
            Decision::Detect(Reason::Busy)
        } else if moved && due(self.cfg.motion_detect_hz, self.last_motion_detect_t_s) {
            Decision::Detect(Reason::Motion)
        } else if due(self.cfg.min_detect_hz, self.last_detect_t_s) {
            Decision::Detect(Reason::Idle)
        } else {
            Decision::Skip
        };
        match decision {
            Decision::Detect(Reason::Busy | Reason::EveryFrame) => self.counts.busy += 1,
            Decision::Detect(Reason::Motion) => self.counts.motion += 1,
            Decision::Detect(Reason::Idle) => self.counts.idle += 1,
            Decision::Skip => self.counts.skipped += 1,
        }
        decision
    }

    /// Records that the detector ran on the frame at `t_s` for `reason`.
    pub fn detected(&mut self, t_s: f64, reason: Reason) {
        self.last_detect_t_s = Some(t_s);
        if reason == Reason::Motion {
            self.last_motion_detect_t_s = Some(t_s);
        }
    }
}

#[cfg(test)]
mod tests;
