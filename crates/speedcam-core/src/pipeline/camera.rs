//! One camera's pipeline after detection: tracker -> speed estimator -> verdicts.
//!
//! It owns everything that is per camera (tracker, calibration, zone, thumbnail candidates) and
//! nothing that is shared (detector, store, publisher), so several cameras can share one detector
//! and tests can drive it with synthetic detections. Boxes of a tentative track are held and handed
//! to the speed stage once the track is confirmed: confirmation takes `min_hits` detections, which
//! with skipped frames can be most of a fast vehicle's zone passage.

use crate::config::CameraConfig;
use crate::detect::{BBox, Detection};
use crate::event::origin::{OriginKey, Recording};
use crate::event::{thumbnail, Event, EventType, SCHEMA_VERSION};
use crate::frame::Frame;
use crate::schedule::TrackView;
use crate::speed::{CalibrationUncertainty, Passage, SpeedEstimator};
use crate::stats::{Stage, StageTimes};
use crate::track::{EndedTrack, Tracker, TrackerConfig, TrackerOutput};
use std::collections::HashMap;
use std::time::Instant;
use time::OffsetDateTime;

/// A finished verdict ready to store and publish.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The record.
    pub event: Event,
    /// JPEG crop of the vehicle (speeding events only).
    pub thumbnail_jpeg: Option<Vec<u8>>,
    /// Deterministic identity of the event when the camera replays a recording (None for live
    /// sources): the store records an origin only once, so a replay restarted after a crash
    /// does not record its vehicles again (the daemon's `store::origin`).
    pub origin: Option<OriginKey>,
}

/// The best view of a vehicle seen so far inside the zone.
struct Candidate {
    area_px: f32,
    crop: image::RgbImage,
}

/// Tracker, speed estimator and event building for one camera.
pub struct CameraPipeline {
    cam: CameraConfig,
    device_id: String,
    model_id: String,
    calibration_id: String,
    tracker: Tracker,
    speed: SpeedEstimator,
    candidates: HashMap<u64, Candidate>,
    /// Detections of tentative tracks (at most `min_hits` each), fed to the speed stage when the
    /// track is confirmed.
    pending: HashMap<u64, Vec<(f64, &'static str, BBox)>>,
    /// Confirmed tracks still alive, to measure them at end of stream.
    live: std::collections::HashSet<u64>,
    /// The last frame's time and wall clock, to date verdicts of tracks that end.
    last_time: Option<(f64, OffsetDateTime)>,
    /// The live tracks after the last frame, for the frame scheduler.
    views: Vec<TrackView>,
    /// The recording this camera replays (file sources), which gives verdicts an origin key.
    recording: Option<Recording>,
    /// Summaries of ended tracks that the speed stage holds as fragments lost in the zone, for
    /// their verdict's class if no continuation comes.
    held_ended: HashMap<u64, EndedTrack>,
}

/// The speed estimator for `cam`: its calibration, zone and speed settings, the calibration's
/// uncertainty from the survey points, and the configured image size (until frames give it).
pub fn speed_estimator(cam: &CameraConfig) -> SpeedEstimator {
    let mut speed =
        SpeedEstimator::new(cam.homography.clone(), cam.zone.clone(), cam.speed.clone());
    if let Some(cal) =
        CalibrationUncertainty::from_points(&cam.homography, &cam.image_points, &cam.world_points)
    {
        speed = speed.with_calibration(cal);
    }
    if let Some((w, h)) = cam.image_size {
        speed = speed.with_image_size(w, h);
    }
    speed
}

impl CameraPipeline {
    /// A fresh pipeline for `cam`; `model_id` is stored with every event.
    pub fn new(cam: CameraConfig, tracker: TrackerConfig, device_id: &str, model_id: &str) -> Self {
        let calibration_id = cam.homography.fingerprint();
        let speed = speed_estimator(&cam).with_still_track_age(tracker.stationary_max_age_s);
        CameraPipeline {
            cam,
            device_id: device_id.to_string(),
            model_id: model_id.to_string(),
            calibration_id,
            tracker: Tracker::new(tracker),
            speed,
            candidates: HashMap::new(),
            pending: HashMap::new(),
            live: Default::default(),
            last_time: None,
            views: Vec::new(),
            recording: None,
            held_ended: HashMap::new(),
        }
    }

    /// Marks the frames as coming from `recording` (a file: its frames recur when the replay is
    /// restarted), so every verdict carries an [`OriginKey`]; None for live sources.
    pub fn with_recording(mut self, recording: Option<Recording>) -> Self {
        self.recording = recording;
        self
    }

    /// Applies a reloaded camera config (SIGHUP) without dropping live tracks: limits, tolerance,
    /// strict mode, zone and speed settings take effect at once. `new` comes from
    /// [`super::reload::merge`], which keeps the running calibration, source and id (the speed
    /// estimator's samples were projected with that calibration).
    pub fn reconfigure(&mut self, new: &CameraConfig) {
        self.speed.reconfigure(new.zone.clone(), new.speed.clone());
        self.cam = new.clone();
    }

    /// The live tracks as of the last frame (boxes, velocities), for the frame scheduler.
    pub fn track_views(&self) -> &[TrackView] {
        &self.views
    }

    /// The camera's settings.
    pub fn camera(&self) -> &CameraConfig {
        &self.cam
    }

    /// Advances with one frame: `detections` for a detected frame, None for a skipped one
    /// (the tracker predicts only). Returns the verdicts this frame completed.
    pub fn process(
        &mut self,
        frame: &Frame,
        detections: Option<&[Detection]>,
        times: &mut StageTimes,
    ) -> Vec<Verdict> {
        self.step(frame.pts_s(), frame.wall, Some(frame), detections, times)
    }

    /// Advances with detections that come without pixels (MOT files, the accuracy benchmark):
    /// the same tracker, speed and event path as [`CameraPipeline::process`], without
    /// thumbnails. `t_s` is the frame time, `wall` its wall-clock time.
    pub fn process_detections(
        &mut self,
        t_s: f64,
        wall: OffsetDateTime,
        detections: Option<&[Detection]>,
        times: &mut StageTimes,
    ) -> Vec<Verdict> {
        self.step(t_s, wall, None, detections, times)
    }

    fn step(
        &mut self,
        t_s: f64,
        wall: OffsetDateTime,
        frame: Option<&Frame>,
        detections: Option<&[Detection]>,
        times: &mut StageTimes,
    ) -> Vec<Verdict> {
        self.last_time = Some((t_s, wall));
        if let Some(f) = frame {
            self.speed.set_image_size(f.width, f.height);
        }
        let start = Instant::now();
        let out = match detections {
            Some(d) => self.tracker.update(t_s, d),
            None => self.tracker.predict(t_s),
        };
        let start = times.lap(Stage::Track, start);
        self.views.clear();
        self.views.extend(out.tracks.iter().map(|tr| TrackView {
            bbox: tr.bbox,
            velocity_px_s: tr.velocity_px_s,
            confirmed: tr.confirmed,
            t_s,
        }));
        let verdicts = self.apply(t_s, frame, out);
        times.lap(Stage::Speed, start);
        verdicts
    }

    /// End of stream: every live track ends, and vehicles still inside the zone are measured.
    pub fn finish(&mut self) -> Vec<Verdict> {
        let mut out = Vec::new();
        let mut ended: Vec<u64> = self.live.drain().collect();
        ended.sort_unstable();
        for id in ended {
            if let Some(m) = self.speed.end_track(id) {
                out.extend(self.verdicts(m, None));
            }
            if !self.speed.holds_fragment(id) {
                self.candidates.remove(&id);
            }
        }
        for m in self.speed.flush() {
            let ended = self.held_ended.remove(&m.track_id());
            out.extend(self.verdicts(m, ended.as_ref()));
        }
        self.held_ended.clear();
        out
    }

    fn apply(&mut self, t_s: f64, frame: Option<&Frame>, out: TrackerOutput) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for tr in &out.tracks {
            let Some(det) = tr.detection.as_ref() else {
                continue;
            };
            if !tr.confirmed {
                // Held until the track is confirmed (or dies): its first boxes are the vehicle's
                // too, and with skipped frames they can be a large share of its zone passage.
                self.pending
                    .entry(tr.id)
                    .or_default()
                    .push((t_s, tr.class, det.bbox));
                continue;
            }
            if let Some(early) = self.pending.remove(&tr.id) {
                for (t, class, bbox) in early {
                    if let Some(m) = self.speed.observe(tr.id, class, t, &bbox) {
                        verdicts.extend(self.verdicts(m, None));
                    }
                }
            }
            self.live.insert(tr.id);
            if let Some(frame) = frame {
                self.keep_candidate(frame, tr.id, &det.bbox);
            }
            if let Some(m) = self.speed.observe(tr.id, tr.class, t_s, &det.bbox) {
                verdicts.extend(self.verdicts(m, None));
            }
        }
        for e in &out.ended {
            self.pending.remove(&e.id);
            self.live.remove(&e.id);
            if let Some(m) = self.speed.end_track(e.id) {
                verdicts.extend(self.verdicts(m, Some(e)));
            }
            if self.speed.holds_fragment(e.id) {
                // Lost in the zone: measured later, alone or joined to the track that continues it.
                self.held_ended.insert(e.id, e.clone());
            } else {
                self.candidates.remove(&e.id);
            }
        }
        for m in self.speed.expire(t_s) {
            let ended = self.held_ended.remove(&m.track_id());
            verdicts.extend(self.verdicts(m, ended.as_ref()));
        }
        if !self.held_ended.is_empty() {
            // Fragments joined to their continuation: that track's verdict covers them.
            let speed = &self.speed;
            let candidates = &mut self.candidates;
            self.held_ended.retain(|id, _| {
                let held = speed.holds_fragment(*id);
                if !held {
                    candidates.remove(id);
                }
                held
            });
        }
        verdicts
    }

    /// Keeps the largest in-zone view of each vehicle for its thumbnail.
    fn keep_candidate(&mut self, frame: &Frame, id: u64, bbox: &BBox) {
        let (x, y) = bbox.bottom_center();
        if !self.cam.zone.contains([x as f64, y as f64]) {
            return;
        }
        let area = bbox.area();
        let better = self
            .candidates
            .get(&id)
            .is_none_or(|c| area > c.area_px * 1.1);
        if better {
            self.candidates.insert(
                id,
                Candidate {
                    area_px: area,
                    crop: thumbnail::crop(frame, bbox),
                },
            );
        }
    }

    /// The measurement record of a passage with its identity, class, limits, time and model
    /// filled in, and no speed yet.
    /// `ended` is the track's summary when the tracker has just ended it; a live track's class
    /// and per-class scores come from the tracker.
    fn base_event(&self, passage: &Passage, ended: Option<&EndedTrack>) -> Event {
        let track_id = passage.track_id();
        let classes = match ended {
            Some(e) => Some((e.class, e.class_scores.clone())),
            None => self.tracker.class_of(track_id),
        };
        let (class, class_scores) = match classes {
            Some((class, scores)) => (
                class.to_string(),
                scores
                    .iter()
                    .map(|(c, s)| (c.to_string(), round3(f64::from(*s))))
                    .collect(),
            ),
            None => match passage {
                Passage::Measured(m) => (m.class.clone(), Default::default()),
                Passage::Unmeasured(u) => (u.class.clone(), Default::default()),
            },
        };
        let t_exit_s = match passage {
            Passage::Measured(m) => m.t_exit_s,
            Passage::Unmeasured(u) => u.t_exit_s,
        };
        let wall = match self.last_time {
            Some((t, w)) => wall_at(w, t, t_exit_s),
            None => OffsetDateTime::now_utc(),
        };
        let time = wall
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Event {
            kind: EventType::Measurement,
            event_id: ulid::Ulid::new().to_string(),
            device_id: self.device_id.clone(),
            camera: self.cam.id.clone(),
            track_id,
            joined_track_ids: passage.joined_track_ids().to_vec(),
            class,
            class_scores,
            speed_kmh: None,
            reason: None,
            stopped_s: 0.0,
            speed_ci95_kmh: None,
            limit_kmh: self.cam.speed_limit_kmh,
            tolerance_kmh: self.cam.tolerance_kmh,
            strict: self.cam.strict,
            t_enter_s: 0.0,
            t_exit_s: round6(t_exit_s),
            time,
            samples: 0,
            distance_m: 0.0,
            method: "none".into(),
            model: self.model_id.clone(),
            calibration: self.calibration_id.clone(),
            measurement_id: None,
            thumbnail_topic: None,
            schema: SCHEMA_VERSION,
        }
    }

    /// The measurement record, plus a speeding record when over limit + tolerance. A passage
    /// without a speed gives a measurement record without one, never a speeding record.
    fn verdicts(&mut self, passage: Passage, ended: Option<&EndedTrack>) -> Vec<Verdict> {
        let track_id = passage.track_id();
        let base = self.base_event(&passage, ended);
        let m = match passage {
            Passage::Measured(m) => m,
            Passage::Unmeasured(u) => {
                let event = Event {
                    reason: Some(u.reason.as_str().to_string()),
                    t_enter_s: round6(u.t_enter_s),
                    samples: u.samples,
                    ..base
                };
                let origin = self.recording.as_ref().map(|r| OriginKey::new(r, &event));
                self.candidates.remove(&track_id);
                return vec![Verdict {
                    event,
                    thumbnail_jpeg: None,
                    origin,
                }];
            }
        };
        let measurement = Event {
            speed_kmh: Some(round3(m.speed_kmh)),
            speed_ci95_kmh: Some([round3(m.speed_ci95_kmh[0]), round3(m.speed_ci95_kmh[1])]),
            stopped_s: if m.stopped_s > 0.0 {
                round3(m.stopped_s)
            } else {
                0.0
            },
            t_enter_s: round6(m.t_enter_s),
            samples: m.samples,
            distance_m: round3(m.distance_m),
            method: m.method.to_string(),
            ..base
        };
        let measurement_origin = self
            .recording
            .as_ref()
            .map(|r| OriginKey::new(r, &measurement));
        let candidate = self.candidates.remove(&m.track_id);
        let mut out = Vec::with_capacity(2);
        if self.cam.is_speeding(m.speed_kmh, m.speed_ci95_kmh) {
            let thumbnail_jpeg =
                candidate.and_then(|c| match thumbnail::encode_jpeg(&c.crop, 85) {
                    Ok(j) => Some(j),
                    Err(e) => {
                        tracing::warn!(err = %e, "thumbnail not encoded; the event goes out without it");
                        None
                    }
                });
            let speeding = Event {
                kind: EventType::Speeding,
                event_id: ulid::Ulid::new().to_string(),
                measurement_id: Some(measurement.event_id.clone()),
                ..measurement.clone()
            };
            let speeding_origin = self
                .recording
                .as_ref()
                .map(|r| OriginKey::new(r, &speeding));
            out.push(Verdict {
                event: measurement,
                thumbnail_jpeg: None,
                origin: measurement_origin,
            });
            out.push(Verdict {
                event: speeding,
                thumbnail_jpeg,
                origin: speeding_origin,
            });
        } else {
            out.push(Verdict {
                event: measurement,
                thumbnail_jpeg: None,
                origin: measurement_origin,
            });
        }
        out
    }
}

/// Wall-clock time at frame time `t_s`, given that frame time `ref_t_s` was at `ref_wall`.
fn wall_at(ref_wall: OffsetDateTime, ref_t_s: f64, t_s: f64) -> OffsetDateTime {
    ref_wall + time::Duration::seconds_f64(t_s - ref_t_s)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Fixtures shared by core's and the daemon's tests (not an API).
#[doc(hidden)]
pub mod testkit {
    use super::*;
    use std::path::Path;

    /// `config/demo.toml` with its source replaced by `source` and its data directory by
    /// `data_dir`, parsed as if it were the repository's `config.toml`.
    pub fn demo_config(source: &str, data_dir: &Path) -> crate::config::Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let demo =
            std::fs::read_to_string(root.join("config/demo.toml")).expect("config/demo.toml");
        let text = demo
            .replace("\"../media/demo/scene.mp4\"", &format!("{source:?}"))
            .replace("\"../data/demo\"", &format!("{:?}", data_dir))
            .replace("\"../models/", "\"models/");
        crate::config::parse(&text, &root.join("config.toml")).expect("fixture config parses")
    }

    /// Drives one car at `speed_kmh` along the demo road (lane centre y = 1.75 m, x from -8 to
    /// 24 m) at 30 frames/s with exact boxes; `edit` = (time, change) reconfigures the camera
    /// mid-way.
    pub(crate) type Edit<'a> = Option<(f64, &'a dyn Fn(&mut CameraConfig))>;

    pub fn drive(speed_kmh: f64, edit: Edit<'_>) -> Vec<Event> {
        drive_verdicts(speed_kmh, edit, None)
            .into_iter()
            .map(|v| v.event)
            .collect()
    }

    /// [`drive`] with the pipeline marked as replaying `recording`; the verdicts.
    pub fn drive_verdicts(
        speed_kmh: f64,
        edit: Edit<'_>,
        recording: Option<Recording>,
    ) -> Vec<Verdict> {
        let dir = std::env::temp_dir().join(format!("speedcam-drive-{}", std::process::id()));
        let cfg = demo_config("video.mp4", &dir);
        let cam = cfg.cameras[0].clone();
        let h = cam.homography.clone();
        let mut pipe = CameraPipeline::new(cam.clone(), cfg.tracker.clone(), "t", "m")
            .with_recording(recording);
        let mut times = StageTimes::default();
        let mut out = Vec::new();
        let v_ms = speed_kmh / 3.6;
        let wall = OffsetDateTime::UNIX_EPOCH;
        let mut edited = false;
        for i in 0.. {
            let t = f64::from(i) / 30.0;
            let x = -8.0 + v_ms * t;
            if x > 24.0 {
                break;
            }
            if let Some((at, f)) = &edit {
                if !edited && t >= *at {
                    let mut c = cam.clone();
                    f(&mut c);
                    pipe.reconfigure(&c);
                    edited = true;
                }
            }
            let Some([u, v]) = h.world_to_image([x, 1.75]) else {
                continue;
            };
            let det = Detection {
                bbox: BBox::from_center(u as f32, v as f32 - 30.0, 90.0, 60.0),
                score: 0.9,
                class_id: 2,
                class: "car",
            };
            let wall = wall + time::Duration::seconds_f64(t);
            out.extend(pipe.process_detections(t, wall, Some(&[det]), &mut times));
        }
        out.extend(pipe.finish());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::drive;
    use super::*;

    #[test]
    fn a_reload_mid_passage_keeps_the_track_and_judges_by_the_new_limit() {
        // 60 km/h against limit 50 + 3: speeding.
        let before = drive(60.0, None);
        assert_eq!(before.len(), 2, "{before:?}");
        assert_eq!(before[1].kind, EventType::Speeding);
        // The same passage with the limit raised to 60 while the car is inside the zone (it
        // is in the zone from x = 0, i.e. t = 0.48 s, to x = 12 m, t = 1.2 s).
        let raise = |c: &mut CameraConfig| c.speed_limit_kmh = 60.0;
        let after = drive(60.0, Some((0.8, &raise)));
        assert_eq!(after.len(), 1, "one measurement, not speeding: {after:?}");
        let m = &after[0];
        assert_eq!(m.kind, EventType::Measurement);
        assert_eq!(m.limit_kmh, 60.0);
        // Samples from before the reload were kept: the same passage, the same samples.
        assert_eq!(m.samples, before[0].samples);
        assert!(m.t_enter_s < 0.8, "entered before the reload: {m:?}");
        assert!(m.speed_kmh.is_some_and(|v| (v - 60.0).abs() < 1.0), "{m:?}");
    }

    /// A passage without a trustworthy speed (here: above `max_speed_kmh`) is still one
    /// verdict: a measurement with a null speed and the reason, never a speeding event however
    /// fast it looked.
    #[test]
    fn a_passage_without_a_speed_is_a_measurement_without_one_and_never_speeding() {
        let cap = |c: &mut CameraConfig| c.speed.max_speed_kmh = 60.0;
        let events = drive(90.0, Some((0.0, &cap)));
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.kind, EventType::Measurement);
        assert_eq!(e.speed_kmh, None);
        assert_eq!(e.reason.as_deref(), Some("implausible_speed"));
        assert_eq!(e.method, "none");
        assert!(e.samples >= 5 && e.t_exit_s > e.t_enter_s, "{e:?}");
        assert_eq!(e.class_scores.get("car"), Some(&0.9));
        let json = serde_json::to_value(e).expect("json");
        assert!(json["speed_kmh"].is_null(), "{json}");
        assert_eq!(json["schema"], 2);
    }
}
