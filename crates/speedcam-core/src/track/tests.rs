//! Scenario tests of the tracker on synthetic constant-velocity boxes with detector noise.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::test_rng::Rng;

/// An object moving at constant velocity; `tag` goes into `class_id` so tests can tell which
/// object a matched detection came from (the tracker ignores class ids).
struct Object {
    tag: u16,
    x0: f64,
    y0: f64,
    vx_px_s: f64,
    vy_px_s: f64,
    w: f64,
    h: f64,
}

impl Object {
    fn x_at(&self, t_s: f64) -> f64 {
        self.x0 + self.vx_px_s * t_s
    }
    fn detect(&self, t_s: f64, rng: &mut Rng, noise_px: f64, score: f32) -> Detection {
        let cx = self.x_at(t_s);
        let cy = self.y0 + self.vy_px_s * t_s;
        let mut e = || (noise_px * rng.gauss()) as f32;
        Detection {
            bbox: BBox {
                x1: (cx - self.w / 2.0) as f32 + e(),
                y1: (cy - self.h / 2.0) as f32 + e(),
                x2: (cx + self.w / 2.0) as f32 + e(),
                y2: (cy + self.h / 2.0) as f32 + e(),
            },
            score,
            class_id: self.tag,
            class: "car",
        }
    }
}

/// Two vehicles in opposite lanes whose boxes overlap by 40% of their height as they cross.
fn crossing_pair() -> [Object; 2] {
    [
        Object {
            tag: 0,
            x0: 100.0,
            y0: 300.0,
            vx_px_s: 300.0,
            vy_px_s: 5.0,
            w: 80.0,
            h: 60.0,
        },
        Object {
            tag: 1,
            x0: 1300.0,
            y0: 335.0,
            vx_px_s: -300.0,
            vy_px_s: 5.0,
            w: 80.0,
            h: 60.0,
        },
    ]
}

/// Track ids that matched each object's detections, over a whole run.
type IdsPerObject = BTreeMap<u16, BTreeSet<u64>>;

fn record(out: &TrackerOutput, ids: &mut IdsPerObject) {
    for t in &out.tracks {
        if let Some(d) = &t.detection {
            ids.entry(d.class_id).or_default().insert(t.id);
        }
    }
}

fn assert_one_id_each(ids: &IdsPerObject, objects: usize) {
    assert_eq!(ids.len(), objects, "every object was tracked: {ids:?}");
    let mut all = BTreeSet::new();
    for (tag, set) in ids {
        assert_eq!(set.len(), 1, "object {tag} got ids {set:?}");
        all.extend(set.iter().copied());
    }
    assert_eq!(all.len(), objects, "objects shared an id: {ids:?}");
}

#[test]
fn crossing_objects_keep_their_ids_through_occlusion() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let objects = crossing_pair();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut ids = IdsPerObject::new();
    for frame in 0..120 {
        let t_s = frame as f64 / 30.0;
        let gap_px = objects[0].x_at(t_s) - objects[1].x_at(t_s);
        let mut dets = Vec::new();
        for o in &objects {
            // The far vehicle (tag 1) is hidden for a few frames at the crossing.
            if o.tag == 1 && gap_px.abs() < 60.0 {
                continue;
            }
            dets.push(o.detect(t_s, &mut rng, 2.0, 0.8));
        }
        let out = tracker.update(t_s, &dets);
        record(&out, &mut ids);
    }
    assert_one_id_each(&ids, 2);
}

#[test]
fn partly_hidden_vehicle_continues_on_low_scores() {
    let mut rng = Rng(7);
    let objects = crossing_pair();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut ids = IdsPerObject::new();
    for frame in 0..120 {
        let t_s = frame as f64 / 30.0;
        let crossing = (objects[0].x_at(t_s) - objects[1].x_at(t_s)).abs() < 100.0;
        let dets: Vec<Detection> = objects
            .iter()
            .map(|o| {
                let score = if o.tag == 1 && crossing { 0.2 } else { 0.8 };
                o.detect(t_s, &mut rng, 2.0, score)
            })
            .collect();
        record(&tracker.update(t_s, &dets), &mut ids);
    }
    assert_one_id_each(&ids, 2);
}

#[test]
fn skipped_frames_keep_ids() {
    let mut rng = Rng(42);
    let objects = crossing_pair();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut ids = IdsPerObject::new();
    for frame in 0..120 {
        // Capture-time jitter of up to +-5 ms.
        let t_s = frame as f64 / 30.0 + 0.005 * (2.0 * rng.uniform() - 1.0);
        let out = if frame % 3 == 0 {
            let dets: Vec<Detection> = objects
                .iter()
                .map(|o| o.detect(t_s, &mut rng, 2.0, 0.8))
                .collect();
            tracker.update(t_s, &dets)
        } else {
            tracker.predict(t_s)
        };
        assert!(out.ended.is_empty(), "frame {frame}: {:?}", out.ended);
        record(&out, &mut ids);
    }
    assert_one_id_each(&ids, 2);
}

#[test]
fn misses_of_a_few_frames_keep_the_id_and_prediction_follows() {
    let mut rng = Rng(3);
    let o = &crossing_pair()[0];
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut ids = IdsPerObject::new();
    for frame in 0..90 {
        let t_s = frame as f64 / 30.0;
        let missing = (30..36).contains(&frame);
        let dets = if missing {
            vec![]
        } else {
            vec![o.detect(t_s, &mut rng, 2.0, 0.8)]
        };
        let out = tracker.update(t_s, &dets);
        if missing {
            let track = &out.tracks[0];
            assert!(track.detection.is_none());
            let cx = (track.bbox.x1 + track.bbox.x2) as f64 / 2.0;
            let truth = o.x_at(t_s);
            assert!((cx - truth).abs() < 10.0, "frame {frame}: {cx} vs {truth}");
            assert!((track.velocity_px_s.0 as f64 - o.vx_px_s).abs() < 30.0);
        }
        record(&out, &mut ids);
    }
    assert_one_id_each(&ids, 1);
}

#[test]
fn tentative_dies_at_once_and_confirmed_after_max_age() {
    let cfg = TrackerConfig::default();
    let (min_hits, max_age_s) = (cfg.min_hits, cfg.max_age_s);
    let mut tracker = Tracker::new(cfg);
    let mut rng = Rng(11);
    let o = &crossing_pair()[0];

    // A one-frame false positive: tentative, then gone at the next detection round.
    let out = tracker.update(0.0, &[o.detect(0.0, &mut rng, 0.0, 0.9)]);
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].id, 1);
    assert!(!out.tracks[0].confirmed);
    let out = tracker.update(0.033, &[]);
    assert!(out.tracks.is_empty());
    assert_eq!(out.ended.len(), 1);
    assert!(!out.ended[0].confirmed);
    assert_eq!(out.ended[0].id, 1);

    // A real vehicle: confirmed after min_hits, then lost for longer than max_age_s.
    let mut last_t_s = 0.0;
    for k in 0..min_hits + 2 {
        last_t_s = 1.0 + k as f64 / 30.0;
        let out = tracker.update(last_t_s, &[o.detect(last_t_s, &mut rng, 1.0, 0.9)]);
        assert_eq!(out.tracks[0].id, 2, "ids increase and are not reused");
        assert_eq!(out.tracks[0].confirmed, k + 1 >= min_hits);
    }
    let out = tracker.update(last_t_s + max_age_s * 0.9, &[]);
    assert_eq!(out.tracks.len(), 1, "still alive within max_age_s");
    let out = tracker.predict(last_t_s + max_age_s * 1.1);
    assert!(out.tracks.is_empty());
    assert_eq!(
        out.ended,
        vec![EndedTrack {
            id: 2,
            class: "car",
            class_scores: vec![("car", 0.9)],
            hits: min_hits + 2,
            first_t_s: 1.0,
            last_t_s,
            confirmed: true,
        }]
    );
}

#[test]
fn backwards_time_does_not_panic_or_age() {
    let mut rng = Rng(5);
    let o = &crossing_pair()[0];
    let mut tracker = Tracker::new(TrackerConfig::default());
    for frame in 0..5 {
        let t_s = frame as f64 / 30.0;
        tracker.update(t_s, &[o.detect(t_s, &mut rng, 1.0, 0.9)]);
    }
    let out = tracker.update(-100.0, &[o.detect(4.0 / 30.0, &mut rng, 1.0, 0.9)]);
    assert_eq!(out.tracks.len(), 1);
    assert!(out.tracks[0].detection.is_some());
    let out = tracker.predict(f64::NAN);
    assert_eq!(out.tracks.len(), 1);
}

#[test]
fn class_is_majority_vote_and_bad_boxes_are_ignored() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rng = Rng(9);
    let o = &crossing_pair()[0];
    let classes = ["truck", "car", "car", "truck", "car"];
    let mut out = TrackerOutput::default();
    for (k, class) in classes.iter().enumerate() {
        let t_s = k as f64 / 30.0;
        let mut d = o.detect(t_s, &mut rng, 1.0, 0.9);
        d.class = class;
        let nan = Detection {
            bbox: BBox {
                x1: f32::NAN,
                ..d.bbox
            },
            ..d.clone()
        };
        out = tracker.update(t_s, &[d, nan]);
    }
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].class, "car");
    assert_eq!(tracker.finish()[0].class, "car");
    assert!(tracker.is_empty());
}

/// A detector that reports one vehicle twice (as "car" and, slightly smaller, as "truck") must
/// give one track, while a vehicle beside it that overlaps a little still gets its own.
#[test]
fn duplicate_detections_of_one_vehicle_give_one_track() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rng = Rng(7);
    let car = Object {
        tag: 1,
        x0: 100.0,
        y0: 300.0,
        vx_px_s: 300.0,
        vy_px_s: 0.0,
        w: 120.0,
        h: 80.0,
    };
    let neighbour = Object {
        tag: 2,
        x0: 200.0,
        y0: 300.0,
        vx_px_s: 300.0,
        vy_px_s: 0.0,
        w: 120.0,
        h: 80.0,
    };
    let mut ids = BTreeSet::new();
    for k in 0..30 {
        let t_s = k as f64 / 30.0;
        let whole = car.detect(t_s, &mut rng, 1.0, 0.8);
        let mut twin = whole.clone();
        twin.class = "truck";
        twin.score = 0.6;
        twin.bbox.x1 += 10.0;
        twin.bbox.y1 += 8.0;
        let mut dets = vec![whole, twin];
        dets.push(neighbour.detect(t_s, &mut rng, 1.0, 0.8));
        for tr in tracker.update(t_s, &dets).tracks {
            ids.insert(tr.id);
        }
    }
    assert_eq!(
        ids.len(),
        2,
        "expected one track per vehicle, got ids {ids:?}"
    );

    // With the guard off (overlap share > 1 never holds) the twin gets its own track.
    let cfg = TrackerConfig {
        duplicate_overlap: 1.01,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(cfg);
    let mut rng = Rng(7);
    let mut ids = BTreeSet::new();
    for k in 0..10 {
        let t_s = k as f64 / 30.0;
        let whole = car.detect(t_s, &mut rng, 1.0, 0.8);
        let mut twin = whole.clone();
        twin.bbox.x1 += 10.0;
        twin.bbox.y1 += 8.0;
        for tr in tracker.update(t_s, &[whole, twin]).tracks {
            ids.insert(tr.id);
        }
    }
    assert_eq!(
        ids.len(),
        2,
        "without the guard the twin should start a second track"
    );
}

#[test]
fn fast_vehicle_with_skipped_frames_is_confirmed_through_the_buffer() {
    // 60 px wide, 525 px/s, detected every 4th frame of 30 fps: 70 px between detections, so
    // consecutive boxes do not overlap at all and a new track has no velocity to predict with.
    let car = Object {
        tag: 1,
        x0: 100.0,
        y0: 300.0,
        vx_px_s: 525.0,
        vy_px_s: 0.0,
        w: 60.0,
        h: 40.0,
    };
    let confirmed_ids = |buffer: f32| {
        let mut tracker = Tracker::new(TrackerConfig {
            tentative_buffer: buffer,
            ..TrackerConfig::default()
        });
        let mut rng = Rng(11);
        let mut ids = BTreeSet::new();
        for k in 0..8 {
            let t = k as f64 * 4.0 / 30.0;
            let out = tracker.update(t, &[car.detect(t, &mut rng, 0.5, 0.9)]);
            ids.extend(out.tracks.iter().filter(|t| t.confirmed).map(|t| t.id));
        }
        ids
    };
    assert_eq!(
        confirmed_ids(0.5).len(),
        1,
        "one confirmed track with the buffer"
    );
    assert!(
        confirmed_ids(0.0).is_empty(),
        "without it every detection starts a new tentative track"
    );
}

/// A bus the detector scores as bus and truck in the same frames (0.46 / 0.45, below the score
/// that starts a track on its own) and sometimes only as truck: one track, confirmed, classed
/// bus by majority, with both classes' mean scores.
#[test]
fn a_bus_split_between_bus_and_truck_is_one_confirmed_track() {
    let mut tracker = Tracker::new(TrackerConfig {
        new_track_score: 0.5,
        ..TrackerConfig::default()
    });
    let bx = |x: f32, class: &'static str, score: f32, dx: f32| Detection {
        bbox: BBox {
            x1: x + dx,
            y1: 100.0,
            x2: x + 300.0 + dx,
            y2: 220.0,
        },
        score,
        class_id: if class == "bus" { 5 } else { 7 },
        class,
    };
    let mut ids = std::collections::BTreeSet::new();
    let mut last = None;
    for k in 0..12 {
        let (t, x) = (k as f64 / 25.0, 10.0 * k as f32);
        let dets = if k % 4 == 3 {
            vec![bx(x, "truck", 0.55, 0.0)]
        } else {
            vec![bx(x, "bus", 0.46, 0.0), bx(x, "truck", 0.45, 6.0)]
        };
        let out = tracker.update(t, &dets);
        ids.extend(out.tracks.iter().map(|t| t.id));
        last = out.tracks.last().cloned();
    }
    assert_eq!(ids.len(), 1, "one vehicle, one track: {ids:?}");
    let last = last.expect("a live track");
    assert!(last.confirmed);
    assert_eq!(last.class, "bus");
    let (class, scores) = tracker.class_of(last.id).expect("live");
    assert_eq!(class, "bus");
    let names: Vec<&str> = scores.iter().map(|c| c.0).collect();
    assert_eq!(names, ["truck", "bus"], "{scores:?}");
    // Mean over the 12 detections: bus 9 x 0.46; truck 9 x 0.45 + 3 x 0.55.
    assert!((scores[1].1 - 9.0 * 0.46 / 12.0).abs() < 1e-4);
    assert!((scores[0].1 - (9.0 * 0.45 + 3.0 * 0.55) / 12.0).abs() < 1e-4);
}

/// A vehicle standing in a queue and hidden for 5 s by passing traffic keeps its track (it
/// reappears where it stood); a moving vehicle's track still ends after `max_age_s`.
#[test]
fn a_vehicle_standing_still_survives_a_long_occlusion() {
    let cfg = TrackerConfig::default();
    let still_box = |t: f64| Detection {
        bbox: BBox {
            x1: 400.0 + (0.3 * t).sin() as f32 * 0.2,
            y1: 300.0,
            x2: 480.0,
            y2: 360.0,
        },
        score: 0.9,
        class_id: 2,
        class: "car",
    };
    let mut tracker = Tracker::new(cfg.clone());
    let mut t = 0.0;
    for _ in 0..50 {
        tracker.update(t, &[still_box(t)]);
        t += 0.04;
    }
    let hidden_until = t + 5.0;
    while t < hidden_until {
        let out = tracker.update(t, &[]);
        assert!(out.ended.is_empty(), "ended while hidden at {t:.2} s");
        t += 0.04;
    }
    let out = tracker.update(t, &[still_box(t)]);
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].id, 1, "the same track after the occlusion");

    // Moving at 200 px/s: gone after max_age_s.
    let mut tracker = Tracker::new(cfg.clone());
    let moving = |t: f64| Detection {
        bbox: BBox::from_center(100.0 + 200.0 * t as f32, 300.0, 80.0, 60.0),
        ..still_box(0.0)
    };
    let mut t = 0.0;
    for _ in 0..20 {
        tracker.update(t, &[moving(t)]);
        t += 0.04;
    }
    let last_hit = t - 0.04;
    let mut ended_at = None;
    while ended_at.is_none() && t < last_hit + 3.0 {
        if !tracker.update(t, &[]).ended.is_empty() {
            ended_at = Some(t);
        }
        t += 0.04;
    }
    let ended_at = ended_at.expect("the moving track ends");
    assert!(ended_at - last_hit <= cfg.max_age_s + 0.05, "{ended_at}");
}

#[test]
fn a_young_track_of_a_low_scoring_vehicle_continues_on_its_low_scores() {
    // A bus scored around the high-score threshold: born at 0.5, then 0.3 and 0.4 alternately.
    let cfg = TrackerConfig::default();
    let (high, low) = (cfg.high_score, cfg.low_score);
    let mut tracker = Tracker::new(cfg);
    let mut rng = Rng(21);
    let o = &crossing_pair()[0];
    let scores = [0.5, 0.3, 0.4, 0.3, 0.4, 0.3];
    assert!(scores[1] < high && scores[1] >= low);
    let mut ids = BTreeSet::new();
    let mut confirmed_at = None;
    for (k, &score) in scores.iter().enumerate() {
        let t = k as f64 / 25.0;
        let out = tracker.update(t, &[o.detect(t, &mut rng, 1.0, score)]);
        assert_eq!(out.tracks.len(), 1, "frame {k}: {out:?}");
        ids.insert(out.tracks[0].id);
        if out.tracks[0].confirmed && confirmed_at.is_none() {
            confirmed_at = Some(k);
        }
    }
    assert_eq!(ids.len(), 1, "one track from its first box: {ids:?}");
    assert_eq!(confirmed_at, Some(2));
    // A low-scoring box alone never starts a track.
    let mut fresh = Tracker::new(TrackerConfig::default());
    let out = fresh.update(0.0, &[o.detect(0.0, &mut rng, 1.0, 0.3)]);
    assert!(out.tracks.is_empty());
}

#[test]
fn a_young_track_does_not_live_on_low_boxes_inside_a_tracked_vehicle() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rng = Rng(22);
    let o = &crossing_pair()[0];
    let mut t = 0.0;
    for _ in 0..4 {
        tracker.update(t, &[o.detect(t, &mut rng, 0.5, 0.8)]);
        t += 0.04;
    }
    // A part of the vehicle scored 0.5 (half outside its box: it starts a track), then the
    // same part scored 0.3, now inside the vehicle's box.
    let part = |t: f64, dx: f32, score: f32| {
        let b = o.detect(t, &mut Rng(1), 0.0, score).bbox;
        Detection {
            bbox: BBox {
                x1: b.x1 + dx,
                x2: b.x1 + dx + 0.4 * (b.x2 - b.x1),
                ..b
            },
            score,
            class_id: 7,
            class: "truck",
        }
    };
    let out = tracker.update(t, &[o.detect(t, &mut rng, 0.5, 0.8), part(t, -14.0, 0.5)]);
    assert_eq!(
        out.tracks.len(),
        2,
        "the part starts a tentative track: {out:?}"
    );
    for _ in 0..3 {
        t += 0.04;
        let out = tracker.update(t, &[o.detect(t, &mut rng, 0.5, 0.8), part(t, -8.0, 0.3)]);
        assert_eq!(out.tracks.len(), 1, "{out:?}");
        assert!(out.tracks[0].confirmed);
    }
}
