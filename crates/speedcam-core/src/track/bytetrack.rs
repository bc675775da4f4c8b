//! The ByteTrack association loop (Zhang et al., 2022) with time-based track ages.
//!
//! One [`Tracker::update`] step:
//! 0. fuse boxes of different classes on one vehicle (`class_merge_iou`, see `fuse.rs`);
//! 1. predict every track to the frame time;
//! 2. match confirmed tracks to high-score detections (IoU, optimal assignment);
//! 3. match the confirmed tracks that were matched on their previous detection round and are still
//!    free to low-score detections (stricter IoU): this bridges partial occlusions;
//! 4. match tentative tracks to the remaining high-score detections, on IoU of boxes buffered by
//!    `tentative_buffer` (a track without a velocity yet must still find a fast vehicle's next
//!    box when frames are skipped), then the still-free ones to the remaining low-score
//!    detections (stricter IoU: heavy vehicles score around `high_score`, and a young track that
//!    died at every low box would start deep in the zone); a tentative track that finds none
//!    dies at once (a one-frame false positive must not linger);
//! 5. remaining high-score detections scoring at least `new_track_score` start tentative tracks,
//!    unless they mostly lie inside a box already matched or born in this step
//!    (`duplicate_overlap`: one vehicle reported twice must not be measured twice);
//! 6. confirmed tracks unmatched for longer than `max_age_s` die.

use super::fuse::{fuse_classes, Candidate};
use super::kalman::BoxKalman;
use super::match_by_iou;
use super::{EndedTrack, TrackState, TrackerConfig, TrackerOutput};
use crate::detect::{BBox, Detection};

/// How a track and a detection must overlap to be associated.
#[derive(Debug, Clone, Copy)]
struct Gate {
    /// Minimum IoU.
    min_iou: f32,
    /// Both boxes grown by this share of their size on every side first (0: plain IoU).
    buffer: f32,
}

impl Gate {
    fn iou(min_iou: f32) -> Self {
        Gate {
            min_iou,
            buffer: 0.0,
        }
    }
}

/// One track's internal state.
#[derive(Debug, Clone)]
struct Track {
    id: u64,
    kf: BoxKalman,
    confirmed: bool,
    hits: u32,
    first_t_s: f64,
    last_hit_t_s: f64,
    /// Matched on its most recent detection round (ByteTrack's "tracked" versus "lost").
    matched_last_round: bool,
    /// Detection matched in the current step.
    detection: Option<Detection>,
    /// Per class in first-seen order: detections it won, and the sum of its scores.
    votes: Vec<Vote>,
}

/// One class's share of a track's detections.
#[derive(Debug, Clone, Copy)]
struct Vote {
    class: &'static str,
    /// Detections where it was the best class.
    wins: u32,
    /// Sum of its scores over the detections it appeared in, fused or alone.
    score_sum: f32,
}

impl Track {
    fn new(id: u64, t_s: f64, cand: &Candidate, min_hits: u32) -> Self {
        let mut track = Self {
            id,
            kf: BoxKalman::new(t_s, &cand.det.bbox),
            confirmed: min_hits <= 1,
            hits: 1,
            first_t_s: t_s,
            last_hit_t_s: t_s,
            matched_last_round: true,
            detection: Some(cand.det.clone()),
            votes: Vec::new(),
        };
        track.vote(cand);
        track
    }

    fn hit(&mut self, t_s: f64, cand: &Candidate, min_hits: u32) {
        self.kf.update(&cand.det.bbox);
        self.hits = self.hits.saturating_add(1);
        self.last_hit_t_s = self.last_hit_t_s.max(t_s);
        self.matched_last_round = true;
        self.confirmed |= self.hits >= min_hits;
        self.vote(cand);
        self.detection = Some(cand.det.clone());
    }

    fn vote(&mut self, cand: &Candidate) {
        for &(class, score) in &cand.class_scores {
            let wins = u32::from(class == cand.det.class);
            match self.votes.iter_mut().find(|v| v.class == class) {
                Some(v) => {
                    v.wins += wins;
                    v.score_sum += score;
                }
                None => self.votes.push(Vote {
                    class,
                    wins,
                    score_sum: score,
                }),
            }
        }
    }

    /// Majority class; on a tie the class seen first wins (stable, no flicker).
    fn class(&self) -> &'static str {
        let mut best: (&'static str, u32) = ("", 0);
        for v in &self.votes {
            if v.wins > best.1 {
                best = (v.class, v.wins);
            }
        }
        best.0
    }

    /// Mean score per class over the track's detections, best first.
    fn class_scores(&self) -> Vec<(&'static str, f32)> {
        let n = self.hits.max(1) as f32;
        let mut out: Vec<(&'static str, f32)> = self
            .votes
            .iter()
            .map(|v| (v.class, v.score_sum / n))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    fn state(&self) -> TrackState {
        let (vx, vy) = self.kf.velocity_px_s();
        TrackState {
            id: self.id,
            bbox: self.kf.bbox(),
            detection: self.detection.clone(),
            confirmed: self.confirmed,
            class: self.class(),
            hits: self.hits,
            velocity_px_s: (vx as f32, vy as f32),
        }
    }

    fn ended(&self) -> EndedTrack {
        EndedTrack {
            id: self.id,
            class: self.class(),
            class_scores: self.class_scores(),
            hits: self.hits,
            first_t_s: self.first_t_s,
            last_t_s: self.last_hit_t_s,
            confirmed: self.confirmed,
        }
    }
}

/// ByteTrack multi-object tracker. Feed it every frame in capture order: [`Tracker::update`] for
/// frames that were detected, [`Tracker::predict`] for frames that were skipped.
///
/// Time handling: `t_s` is the frame's capture time in seconds. A `t_s` at or before the previous
/// one (clock step back, repeated frame) or a non-finite one is treated as `dt = 0`: the step runs
/// at the previous step's time, nothing moves or ages, and the detections are matched against the
/// current predictions. It never panics.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    /// Latest step time, s: the tracker's clock, which never runs backwards.
    now_s: f64,
}

impl Tracker {
    /// A tracker with no tracks; the first track gets id 1.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            now_s: f64::NEG_INFINITY,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Advances to frame time `t_s` (seconds, from frame timestamps) with this frame's detections.
    pub fn update(&mut self, t_s: f64, detections: &[Detection]) -> TrackerOutput {
        let t_s = self.advance_clock(t_s);
        self.predict_all(t_s);
        let usable = |d: &&Detection| {
            d.score.is_finite()
                && [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]
                    .iter()
                    .all(|v| v.is_finite())
                && d.bbox.area() > 0.0
        };
        let usable: Vec<&Detection> = detections
            .iter()
            .filter(usable)
            .filter(|d| d.score >= self.cfg.low_score)
            .collect();
        let fused = fuse_classes(&usable, self.cfg.class_merge_iou);
        let high: Vec<&Candidate> = fused
            .iter()
            .filter(|c| c.det.score >= self.cfg.high_score)
            .collect();
        let low: Vec<&Candidate> = fused
            .iter()
            .filter(|c| c.det.score < self.cfg.high_score)
            .collect();
        let mut high_used = vec![false; high.len()];
        let mut track_hit = vec![false; self.tracks.len()];

        // 1. Confirmed tracks (matched or lost) against high-score detections.
        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].confirmed)
            .collect();
        self.associate(
            t_s,
            &confirmed,
            &high,
            &mut high_used,
            &mut track_hit,
            Gate::iou(self.cfg.match_iou),
        );

        // 2. Still-free confirmed tracks that were matched last round against low-score ones.
        let second: Vec<usize> = confirmed
            .iter()
            .copied()
            .filter(|&i| !track_hit[i] && self.tracks[i].matched_last_round)
            .collect();
        let mut low_used = vec![false; low.len()];
        self.associate(
            t_s,
            &second,
            &low,
            &mut low_used,
            &mut track_hit,
            Gate::iou(self.cfg.low_match_iou),
        );

        // 3. Tentative tracks against the remaining high-score detections.
        let tentative: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| !self.tracks[i].confirmed)
            .collect();
        self.associate(
            t_s,
            &tentative,
            &high,
            &mut high_used,
            &mut track_hit,
            Gate {
                min_iou: self.cfg.match_iou,
                buffer: self.cfg.tentative_buffer,
            },
        );

        // 3b. Still-free tentative tracks against the remaining low-score detections (stricter
        //     IoU): heavy vehicles score 0.3-0.6, and a young track that died whenever one box
        //     scored under `high_score` would start only deep inside the zone, missing the
        //     passage's entry.
        let tentative: Vec<usize> = tentative.into_iter().filter(|&i| !track_hit[i]).collect();
        // Not a low box lying mostly inside a box a confirmed track matched this step: detectors
        // report parts and second classes of a vehicle with low scores, and a young track
        // living on those would measure the vehicle twice.
        let matched: Vec<BBox> = confirmed
            .iter()
            .filter(|&&i| track_hit[i])
            .filter_map(|&i| self.tracks[i].detection.as_ref().map(|d| d.bbox))
            .collect();
        for (k, cand) in low.iter().enumerate() {
            let area = cand.det.bbox.area();
            if matched
                .iter()
                .any(|m| m.intersection(&cand.det.bbox) >= self.cfg.duplicate_overlap * area)
            {
                low_used[k] = true;
            }
        }
        self.associate(
            t_s,
            &tentative,
            &low,
            &mut low_used,
            &mut track_hit,
            Gate {
                min_iou: self.cfg.low_match_iou,
                buffer: self.cfg.tentative_buffer,
            },
        );

        let mut ended = Vec::new();
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (track, hit) in std::mem::take(&mut self.tracks).into_iter().zip(track_hit) {
            let mut track = track;
            if !hit {
                track.matched_last_round = false;
                if !track.confirmed {
                    ended.push(track.ended());
                    continue;
                }
            }
            kept.push(track);
        }
        self.tracks = kept;

        // 4. Births, best score first, except duplicates of a box already claimed this step
        //    (a matched track's detection or an earlier birth).
        let mut claimed: Vec<BBox> = self
            .tracks
            .iter()
            .filter_map(|t| t.detection.as_ref().map(|d| d.bbox))
            .collect();
        let mut order: Vec<usize> = (0..high.len()).collect();
        order.sort_by(|&a, &b| high[b].det.score.total_cmp(&high[a].det.score));
        for i in order {
            let cand = high[i];
            if high_used[i] || cand.det.score < self.cfg.new_track_score {
                continue;
            }
            let area = cand.det.bbox.area();
            let duplicate = claimed
                .iter()
                .any(|c| c.intersection(&cand.det.bbox) >= self.cfg.duplicate_overlap * area);
            if !duplicate {
                claimed.push(cand.det.bbox);
                let id = self.next_id;
                self.next_id += 1;
                self.tracks
                    .push(Track::new(id, t_s, cand, self.cfg.min_hits));
            }
        }

        ended.extend(self.expire(t_s));
        self.output(ended)
    }

    /// Advances to `t_s` without detections (a skipped frame): tracks are predicted and aged, but
    /// a skipped frame is not a miss, so tentative tracks survive it.
    pub fn predict(&mut self, t_s: f64) -> TrackerOutput {
        let t_s = self.advance_clock(t_s);
        self.predict_all(t_s);
        let ended = self.expire(t_s);
        self.output(ended)
    }

    /// Ends every live track (end of stream or shutdown) and returns their summaries.
    pub fn finish(&mut self) -> Vec<EndedTrack> {
        let mut ended: Vec<EndedTrack> = self.tracks.drain(..).map(|t| t.ended()).collect();
        ended.sort_by_key(|e| e.id);
        ended
    }

    /// A live track's majority class and mean score per class over its matched detections, best
    /// first (a vehicle whose class flickers has several; a fused detection counts for each of
    /// its classes). Computed on demand: only a verdict needs it.
    pub fn class_of(&self, id: u64) -> Option<(&'static str, Vec<(&'static str, f32)>)> {
        let t = self.tracks.iter().find(|t| t.id == id)?;
        Some((t.class(), t.class_scores()))
    }

    /// Number of live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// True when no track is alive.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The step time actually used: `t_s`, or the previous step time when `t_s` is earlier or not
    /// finite (so `dt <= 0` acts as 0 and births never predate existing tracks).
    fn advance_clock(&mut self, t_s: f64) -> f64 {
        let t = if t_s.is_finite() {
            t_s.max(self.now_s)
        } else if self.now_s.is_finite() {
            self.now_s
        } else {
            0.0
        };
        self.now_s = t;
        t
    }

    fn predict_all(&mut self, t_s: f64) {
        for track in &mut self.tracks {
            track.kf.predict_to(t_s);
            track.detection = None;
        }
    }

    /// Matches `track_idx` (indices into `self.tracks`) to the unused entries of `dets`, marks
    /// both sides used, and updates the matched tracks.
    fn associate(
        &mut self,
        t_s: f64,
        track_idx: &[usize],
        dets: &[&Candidate],
        det_used: &mut [bool],
        track_hit: &mut [bool],
        gate: Gate,
    ) {
        let Gate { min_iou, buffer } = gate;
        let free_dets: Vec<usize> = (0..dets.len()).filter(|&j| !det_used[j]).collect();
        if track_idx.is_empty() || free_dets.is_empty() {
            return;
        }
        let grow = |b: BBox| {
            let (dx, dy) = (buffer * (b.x2 - b.x1), buffer * (b.y2 - b.y1));
            BBox {
                x1: b.x1 - dx,
                y1: b.y1 - dy,
                x2: b.x2 + dx,
                y2: b.y2 + dy,
            }
        };
        let track_boxes: Vec<BBox> = track_idx
            .iter()
            .map(|&i| grow(self.tracks[i].kf.bbox()))
            .collect();
        let det_boxes: Vec<BBox> = free_dets.iter().map(|&j| grow(dets[j].det.bbox)).collect();
        for (ti, dj) in match_by_iou(&track_boxes, &det_boxes, min_iou) {
            let (i, j) = (track_idx[ti], free_dets[dj]);
            self.tracks[i].hit(t_s, dets[j], self.cfg.min_hits);
            det_used[j] = true;
            track_hit[i] = true;
        }
    }

    /// Removes confirmed tracks unmatched for longer than `max_age_s` (`stationary_max_age_s`
    /// for a track standing still).
    fn expire(&mut self, t_s: f64) -> Vec<EndedTrack> {
        let (max_age_s, still_age_s) = (self.cfg.max_age_s, self.cfg.stationary_max_age_s);
        let mut ended = Vec::new();
        self.tracks.retain(|t| {
            let (vx, vy) = t.kf.velocity_px_s();
            let b = t.kf.bbox();
            let still = vx.hypot(vy) < 0.1 * f64::from(b.y2 - b.y1);
            let age_s = if still {
                max_age_s.max(still_age_s)
            } else {
                max_age_s
            };
            let alive = t_s - t.last_hit_t_s <= age_s;
            if !alive {
                ended.push(t.ended());
            }
            alive
        });
        ended
    }

    fn output(&self, mut ended: Vec<EndedTrack>) -> TrackerOutput {
        ended.sort_by_key(|e| e.id);
        let mut tracks: Vec<TrackState> = self.tracks.iter().map(Track::state).collect();
        tracks.sort_by_key(|t| t.id);
        TrackerOutput { tracks, ended }
    }
}
