//! Multi-object tracking: ByteTrack association on top of a per-box Kalman filter.
//!
//! Why ByteTrack: vehicles that are partly hidden (behind another vehicle, a sign, at the frame
//! edge) get low detector scores. Dropping those detections breaks tracks and with them the speed
//! fit; accepting them everywhere creates ghost tracks. ByteTrack does both safely: high-score
//! detections are matched first and may start tracks, low-score ones are only used to continue
//! tracks that already exist.
//!
//! Why time, not frames: the pipeline skips frames when it falls behind or by design (detect every
//! n-th frame), and capture timestamps jitter. The Kalman filter therefore steps by the real
//! `dt_s` between frame timestamps, [`Tracker::predict`] advances tracks over frames that were not
//! detected, and tracks expire after `max_age_s` seconds rather than a frame count.

mod assign;
mod bytetrack;
mod fuse;
mod kalman;
#[cfg(test)]
mod tests;

pub use assign::match_by_iou;
pub use bytetrack::Tracker;
pub use kalman::BoxKalman;

use crate::detect::{BBox, Detection};

/// Tracker thresholds. Defaults follow ByteTrack's published settings, with ages in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Detections scoring at least this take part in the first association and may start tracks.
    pub high_score: f32,
    /// Detections scoring in `low_score..high_score` only continue existing tracks (second pass);
    /// lower scores are ignored.
    pub low_score: f32,
    /// Minimum IoU between a predicted track box and a high-score detection to associate them
    /// (first pass and tentative tracks).
    pub match_iou: f32,
    /// Minimum IoU for the second pass with low-score detections; stricter, since those are
    /// less reliable.
    pub low_match_iou: f32,
    /// An unmatched high-score detection starts a new (tentative) track when its score is at
    /// least this.
    pub new_track_score: f32,
    /// An unmatched detection does not start a track when this share of its area (or more) lies
    /// inside a box matched in the same step: detectors often report one vehicle twice (a second
    /// class, the cab of a truck), and a second track on it would measure it twice. 0..=1; 1
    /// disables the guard for all but exact duplicates.
    pub duplicate_overlap: f32,
    /// Boxes of different classes that overlap by at least this IoU are one vehicle that the
    /// detector could not place in one class (bus/truck, van/car: per-class NMS keeps both). They
    /// are fused before matching: the box is their score-weighted mean, the score the chance that
    /// either is right (`1 - (1 - s1)(1 - s2)`), so a bus scored 0.46 as bus and 0.45 as truck
    /// starts a track as surely as a car scored 0.7; the class votes and per-class scores keep
    /// both. 1 disables fusion.
    pub class_merge_iou: f32,
    /// Tentative tracks are matched on *buffered* IoU: both boxes grown by this share of their
    /// width and height on every side (C-BIoU, Yang et al. 2023). A new track has no velocity
    /// yet, so when frames are skipped a fast vehicle's next box may not overlap its first one at
    /// all; the buffer bridges that without loosening the match of confirmed tracks, whose
    /// Kalman prediction already follows the motion. 0 disables it.
    pub tentative_buffer: f32,
    /// A track is confirmed after this many matched detections (its first included); a
    /// tentative track that misses one detection round dies at once.
    pub min_hits: u32,
    /// A confirmed track dies after this many seconds without a matched detection.
    pub max_age_s: f64,
    /// ... unless it stands still (its box moves less than a tenth of its height per second):
    /// then after this many seconds. A vehicle waiting in a queue is often hidden by the traffic
    /// passing in front of it for longer than `max_age_s`; it reappears where it stood, and a new
    /// track there would split its passage into two verdicts with wrong speeds.
    pub stationary_max_age_s: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.35,
            low_score: 0.1,
            match_iou: 0.2,
            low_match_iou: 0.5,
            new_track_score: 0.45,
            duplicate_overlap: 0.7,
            class_merge_iou: 0.7,
            tentative_buffer: 0.5,
            min_hits: 3,
            max_age_s: 1.0,
            stationary_max_age_s: 10.0,
        }
    }
}

/// What the tracker reports after each step.
#[derive(Debug, Clone, Default)]
pub struct TrackerOutput {
    /// Live tracks (tentative, matched and currently unmatched), ordered by id.
    pub tracks: Vec<TrackState>,
    /// Tracks that died in this step, ordered by id.
    pub ended: Vec<EndedTrack>,
}

/// One live track at the current step.
#[derive(Debug, Clone)]
pub struct TrackState {
    /// Track id: starts at 1 and increases; never reused within a tracker.
    pub id: u64,
    /// Kalman-filtered box at the step's time, px.
    pub bbox: BBox,
    /// The detection matched this step, if any (None on misses and on predict-only steps).
    pub detection: Option<Detection>,
    /// True once the track has `min_hits` matched detections; only confirmed tracks are reported
    /// as vehicles.
    pub confirmed: bool,
    /// Class by majority vote over the matched detections (ties: the earliest seen class).
    pub class: &'static str,
    /// Matched detections so far.
    pub hits: u32,
    /// Filtered velocity of the box centre, px/s.
    pub velocity_px_s: (f32, f32),
}

/// A track that died, with the summary the store keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedTrack {
    /// Track id.
    pub id: u64,
    /// Class by majority vote over the matched detections.
    pub class: &'static str,
    /// Mean score per class over the matched detections, best first.
    pub class_scores: Vec<(&'static str, f32)>,
    /// Matched detections.
    pub hits: u32,
    /// Time of the first matched detection, s.
    pub first_t_s: f64,
    /// Time of the last matched detection, s.
    pub last_t_s: f64,
    /// Whether it was ever confirmed (unconfirmed ones are usually noise).
    pub confirmed: bool,
}
