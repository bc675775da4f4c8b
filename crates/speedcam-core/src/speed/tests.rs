//! End-to-end estimator scenarios: a synthetic vehicle on a straight road seen by a known camera.

use super::test_camera::{car_box, Camera};
use super::*;
use crate::test_rng::Rng;

/// Zone on the ground: 12 m to 32 m ahead, the full road width.
const ZONE_M: [[f64; 2]; 4] = [[12.0, -4.0], [12.0, 4.0], [32.0, 4.0], [32.0, -4.0]];
/// Its length along the road.
const ZONE_LEN_M: f64 = 20.0;

fn estimator(cam: &Camera, cfg: SpeedConfig) -> SpeedEstimator {
    let world = [[10.0, -3.5], [10.0, 3.5], [45.0, 3.5], [45.0, -3.5]];
    let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
    let (h, _) = Homography::fit(&image, &world).unwrap();
    let zone = Zone::new(ZONE_M.iter().map(|&w| cam.project(w).unwrap()).collect()).unwrap();
    assert!((zone.length_m(&h).unwrap() - ZONE_LEN_M).abs() < 1e-6);
    SpeedEstimator::new(h, zone, cfg)
}

/// A drive along the road (lane at y = 1.75 m, moving away or towards the camera).
struct Drive {
    speed_kmh: f64,
    towards_camera: bool,
    /// Detect every n-th frame of a 30 fps stream.
    every_nth: u32,
    /// Reported timestamps are off the true capture time by up to this, s.
    jitter_s: f64,
    /// Last ground x fed, m (the track ends there).
    stop_at_x_m: Option<f64>,
}

impl Drive {
    fn new(speed_kmh: f64) -> Self {
        Self {
            speed_kmh,
            towards_camera: false,
            every_nth: 1,
            jitter_s: 0.0,
            stop_at_x_m: None,
        }
    }

    /// Feeds the drive to `est` as track `id`; returns the measurements with a speed.
    fn run(
        &self,
        est: &mut SpeedEstimator,
        cam: &Camera,
        id: u64,
        rng: &mut Rng,
    ) -> Vec<SpeedMeasurement> {
        let passages = self.run_passages(est, cam, id, rng);
        passages.into_iter().filter_map(Passage::measured).collect()
    }

    /// Feeds the drive to `est` as track `id`; returns every passage (observe + end_track).
    fn run_passages(
        &self,
        est: &mut SpeedEstimator,
        cam: &Camera,
        id: u64,
        rng: &mut Rng,
    ) -> Vec<Passage> {
        let v_m_s = self.speed_kmh / 3.6 * if self.towards_camera { -1.0 } else { 1.0 };
        let x0 = if self.towards_camera { 40.0 } else { 10.0 };
        let t0 = 100.0 + 7.0 * id as f64;
        let mut out = Vec::new();
        for k in 0.. {
            let t_true = k as f64 / 30.0;
            let x = x0 + v_m_s * t_true;
            if !(10.0..=40.0).contains(&x) {
                break;
            }
            if let Some(stop) = self.stop_at_x_m {
                if (v_m_s > 0.0 && x > stop) || (v_m_s < 0.0 && x < stop) {
                    break;
                }
            }
            if k % self.every_nth != 0 {
                continue;
            }
            let t_s = t0 + t_true + self.jitter_s * (2.0 * rng.uniform() - 1.0);
            let bbox = car_box(cam, [x, 1.75], 1.5, rng);
            out.extend(est.observe(id, "car", t_s, &bbox));
        }
        out.extend(est.end_track(id));
        // A track that ended inside the zone waits for a continuation: none comes.
        out.extend(est.flush());
        out
    }
}

fn check(m: &[SpeedMeasurement], id: u64, truth_kmh: f64, tol_kmh: f64) {
    assert_eq!(m.len(), 1, "exactly one measurement: {m:?}");
    let m = &m[0];
    assert_eq!(m.track_id, id);
    assert_eq!(m.method, "fit");
    assert_eq!(m.class, "car");
    let err = m.speed_kmh - truth_kmh;
    assert!(
        err.abs() < tol_kmh,
        "{truth_kmh} km/h measured {:.3} ({m:?})",
        m.speed_kmh
    );
    assert!(m.t_exit_s > m.t_enter_s);
    assert!(m.residual_rms_m < 0.5, "{m:?}");
}

#[test]
fn straight_drive_every_frame_within_1_kmh() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(1);
    let mut id = 0;
    for speed_kmh in [20.0, 50.0, 90.0] {
        for towards_camera in [false, true] {
            id += 1;
            let drive = Drive {
                towards_camera,
                ..Drive::new(speed_kmh)
            };
            let m = drive.run(&mut est, &cam, id, &mut rng);
            check(&m, id, speed_kmh, 1.0);
            // The fitted distance is the zone length, less up to one frame of travel per end.
            let frame_m = speed_kmh / 3.6 / 30.0;
            assert!(
                (m[0].distance_m - ZONE_LEN_M).abs() < 2.0 * frame_m + 0.5,
                "{m:?}"
            );
        }
    }
    assert_eq!(est.held_tracks(), 0, "state of ended tracks is freed");
}

#[test]
fn skipped_frames_and_jitter_within_1_kmh() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(2);
    let mut id = 0;
    for speed_kmh in [30.0, 50.0, 70.0] {
        for seed_run in 0..5 {
            id += 1;
            let drive = Drive {
                every_nth: 3,
                jitter_s: 0.005,
                towards_camera: seed_run % 2 == 1,
                ..Drive::new(speed_kmh)
            };
            let m = drive.run(&mut est, &cam, id, &mut rng);
            check(&m, id, speed_kmh, 1.0);
        }
    }
}

#[test]
fn track_ending_inside_the_zone_is_measured_once_at_end() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(3);
    let drive = Drive {
        stop_at_x_m: Some(24.0),
        ..Drive::new(60.0)
    };
    // Run it by hand to see that observe gives nothing, end_track holds the track for a
    // continuation, and once none can come any more it gives the one measurement.
    let mut from_observe = Vec::new();
    let v_m_s = 60.0 / 3.6;
    for k in 0.. {
        let t_s = k as f64 / 30.0;
        let x = 10.0 + v_m_s * t_s;
        if x > drive.stop_at_x_m.unwrap() {
            break;
        }
        from_observe.extend(
            est.observe(9, "car", t_s, &car_box(&cam, [x, 1.75], 1.5, &mut rng))
                .and_then(Passage::measured),
        );
    }
    assert!(from_observe.is_empty());
    assert_eq!(est.held_tracks(), 1);
    assert_eq!(est.end_track(9), None);
    assert!(est.holds_fragment(9));
    let last_s = (24.0 - 10.0) / v_m_s;
    assert!(
        est.expire(last_s + 1.0).is_empty(),
        "a continuation may still come"
    );
    let m: Vec<SpeedMeasurement> = est
        .expire(last_s + 10.0)
        .into_iter()
        .filter_map(Passage::measured)
        .collect();
    check(&m, 9, 60.0, 1.5);
    assert_eq!(est.end_track(9), None, "measured once");
    assert!(est.flush().is_empty());
    assert_eq!(est.held_tracks(), 0);
}

/// Feeds the boxes of a car along the lane y = `y_m` at 30 fps from time `from_s` to `to_s`
/// as track `id`, at ground x `x_at(t)`. Returns the passages and the time after the last box.
fn feed(
    est: &mut SpeedEstimator,
    cam: &Camera,
    id: u64,
    (from_s, to_s): (f64, f64),
    x_at: &dyn Fn(f64) -> f64,
    y_m: f64,
    rng: &mut Rng,
) -> (Vec<Passage>, f64) {
    let mut out = Vec::new();
    let mut t = from_s;
    while t <= to_s {
        let b = car_box(cam, [x_at(t), y_m], 1.0, rng);
        out.extend(est.observe(id, "car", t, &b));
        t += 1.0 / 30.0;
    }
    (out, t)
}

#[test]
fn a_track_lost_in_the_zone_and_its_continuation_give_one_verdict() {
    let cam = Camera::default();
    let v = 50.0 / 3.6;
    let x_at = |t: f64| 8.0 + v * t;
    // The vehicle is hidden from 20 m to 23 m (0.22 s); the tracker ends its first track and
    // starts another when it is seen again.
    for continuation_first in [false, true] {
        let mut est = estimator(&cam, SpeedConfig::default());
        let mut rng = Rng(11);
        let mut out = Vec::new();
        let (p, _) = feed(&mut est, &cam, 1, (0.0, 12.0 / v), &x_at, 1.75, &mut rng);
        out.extend(p);
        if !continuation_first {
            out.extend(est.end_track(1));
        }
        let (p, _) = feed(
            &mut est,
            &cam,
            2,
            (15.0 / v, 40.0 / v),
            &x_at,
            1.75,
            &mut rng,
        );
        out.extend(p);
        if continuation_first {
            // The tracker ends the lost track only after its patience: by then the new one runs.
            out.extend(est.end_track(1));
        }
        out.extend(est.end_track(2));
        out.extend(est.flush());
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].joined_track_ids(), &[1]);
        let m = out.remove(0).measured().expect("a speed");
        assert_eq!(m.track_id, 2);
        assert!((m.speed_kmh - 50.0).abs() < 1.0, "{m:?}");
        assert!(
            m.t_enter_s < 4.0 / v + 0.1,
            "the entry is the first track's: {m:?}"
        );
    }
}

/// The mean speed over the zone (12..32 m) of a vehicle at ground x `x_at(t)`, km/h: zone
/// length over the time between its first reaching either edge (0.1 ms steps).
fn zone_mean_kmh(x_at: &dyn Fn(f64) -> f64) -> f64 {
    let first_at = |x_m: f64| {
        (0..2_000_000)
            .map(|k| f64::from(k) * 1e-4)
            .find(|&t| x_at(t) >= x_m)
            .expect("reaches the edge")
    };
    ZONE_LEN_M / (first_at(32.0) - first_at(12.0)) * 3.6
}

#[test]
fn a_queued_vehicle_picked_up_after_standing_hidden_gives_one_verdict() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(12);
    // Seen until it stood 2 s; hidden for 6 s; seen again.
    // Standing at 28 m from about 3.8 s to 11.8 s.
    let x_at = |t: f64| queued_x_m(t, 28.0, 8.0);
    let mut out = Vec::new();
    let (p, last) = feed(&mut est, &cam, 1, (0.0, 6.0), &x_at, 1.75, &mut rng);
    out.extend(p);
    out.extend(est.end_track(1));
    out.extend(est.expire(last + 5.0));
    assert!(
        out.is_empty(),
        "held while the vehicle may still be standing hidden: {out:?}"
    );
    let (p, _) = feed(&mut est, &cam, 2, (12.0, 18.0), &x_at, 1.75, &mut rng);
    out.extend(p);
    out.extend(est.end_track(2));
    out.extend(est.flush());
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].joined_track_ids(), &[1]);
    let m = out.remove(0).measured().expect("a speed");
    let truth_kmh = zone_mean_kmh(&x_at);
    assert!(
        (m.speed_kmh - truth_kmh).abs() < 0.3,
        "{m:?} vs {truth_kmh}"
    );
    assert!(m.stopped_s > 7.0, "{m:?}");
}

#[test]
fn a_vehicle_lost_twice_gives_one_verdict_whatever_order_its_tracks_end_in() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(14);
    // Standing at 28 m from about 3.8 s to 11.8 s.
    let x_at = |t: f64| queued_x_m(t, 28.0, 8.0);
    let mut out = Vec::new();
    // Track 1 sees it until it has stood 2 s; the tracker keeps it (still) for long.
    let (p, _) = feed(&mut est, &cam, 1, (0.0, 6.0), &x_at, 1.75, &mut rng);
    out.extend(p);
    // Track 2 sees it start off, and is lost again in the zone, ended before track 1.
    let (p, last) = feed(&mut est, &cam, 2, (12.0, 13.0), &x_at, 1.75, &mut rng);
    out.extend(p);
    out.extend(est.end_track(2));
    out.extend(est.end_track(1));
    out.extend(est.expire(last + 0.4));
    assert!(out.is_empty(), "{out:?}");
    // Track 3 takes it out of the zone.
    let (p, _) = feed(&mut est, &cam, 3, (13.5, 18.0), &x_at, 1.75, &mut rng);
    out.extend(p);
    out.extend(est.end_track(3));
    out.extend(est.flush());
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].joined_track_ids(), &[1, 2]);
    let m = out.remove(0).measured().expect("a speed");
    assert_eq!(m.track_id, 3);
    let truth_kmh = zone_mean_kmh(&x_at);
    assert!(
        (m.speed_kmh - truth_kmh).abs() < 0.3,
        "{m:?} vs {truth_kmh}"
    );
}

#[test]
fn a_vehicle_behind_or_beside_a_lost_one_is_not_its_continuation() {
    let cam = Camera::default();
    let v = 50.0 / 3.6;
    for (lag_m, y_m) in [(8.0, 1.75), (0.0, -1.75)] {
        let mut est = estimator(&cam, SpeedConfig::default());
        let mut rng = Rng(13);
        let lead = |t: f64| 8.0 + v * t;
        let (mut out, _) = feed(&mut est, &cam, 1, (0.0, 12.0 / v), &lead, 1.75, &mut rng);
        out.extend(est.end_track(1));
        // Another car, `lag_m` behind in the same lane or alongside in the next one.
        let other = |t: f64| 8.0 - lag_m + v * t;
        let (p, _) = feed(
            &mut est,
            &cam,
            2,
            (14.0 / v, 45.0 / v),
            &other,
            y_m,
            &mut rng,
        );
        out.extend(p);
        out.extend(est.end_track(2));
        out.extend(est.flush());
        assert_eq!(out.len(), 2, "lag {lag_m} m, lane {y_m}: {out:?}");
        assert!(
            out.iter().all(|p| p.joined_track_ids().is_empty()),
            "{out:?}"
        );
    }
}

#[test]
fn leaving_measures_once_and_reentry_is_ignored() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(4);
    let mut all = Drive::new(50.0).run(&mut est, &cam, 1, &mut rng);
    assert_eq!(all.len(), 1);
    // A second pass of the same id (it cannot happen with the tracker, but must not double count)
    // before end_track: feed in-zone points again, then end.
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut out = Vec::new();
    for pass in 0..2 {
        for k in 0..40 {
            let t_s = pass as f64 * 10.0 + k as f64 / 30.0;
            let x = 10.0 + 50.0 / 3.6 * (k as f64 / 30.0);
            out.extend(
                est.observe(5, "car", t_s, &car_box(&cam, [x, 1.75], 1.5, &mut rng))
                    .and_then(Passage::measured),
            );
        }
    }
    out.extend(est.end_track(5).and_then(Passage::measured));
    assert_eq!(out.len(), 1, "{out:?}");
    all.append(&mut out);
    assert!(
        all.iter().all(|m| (m.speed_kmh - 50.0).abs() < 1.0),
        "{all:?}"
    );
}

#[test]
fn entry_flicker_does_not_lose_the_passage() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(8);
    let v_m_s = 30.0 / 3.6;
    let mut out = Vec::new();
    for k in 0..150 {
        let t_s = k as f64 / 30.0;
        let mut x = 11.0 + v_m_s * t_s;
        // Box noise throws the ground point back out of the zone right after it entered.
        if (12.0..12.5).contains(&x) && k % 2 == 0 {
            x = 11.9;
        }
        out.extend(
            est.observe(4, "car", t_s, &car_box(&cam, [x, 1.75], 1.5, &mut rng))
                .and_then(Passage::measured),
        );
    }
    out.extend(est.end_track(4).and_then(Passage::measured));
    check(&out, 4, 30.0, 1.0);
}

#[test]
fn too_few_samples_or_implausible_speed_give_nothing() {
    let cam = Camera::default();
    let mut rng = Rng(5);
    // A track that only shows 3 frames inside the zone before ending.
    let mut est = estimator(&cam, SpeedConfig::default());
    for k in 0..3 {
        let x = 20.0 + k as f64 * 0.5;
        assert_eq!(
            est.observe(
                1,
                "car",
                k as f64 / 30.0,
                &car_box(&cam, [x, 1.75], 1.5, &mut rng)
            ),
            None
        );
    }
    assert_eq!(est.end_track(1), None);
    assert_eq!(est.held_tracks(), 0);

    // Faster than the configured plausibility limit.
    let cfg = SpeedConfig {
        max_speed_kmh: 100.0,
        ..SpeedConfig::default()
    };
    let mut est = estimator(&cam, cfg);
    assert!(Drive::new(130.0)
        .run(&mut est, &cam, 2, &mut rng)
        .is_empty());
    assert!(!Drive::new(90.0).run(&mut est, &cam, 3, &mut rng).is_empty());
}

#[test]
fn an_implausible_speed_is_a_passage_without_a_speed() {
    let cam = Camera::default();
    let mut rng = Rng(5);
    let cfg = SpeedConfig {
        max_speed_kmh: 100.0,
        ..SpeedConfig::default()
    };
    let mut est = estimator(&cam, cfg);
    let passages = Drive::new(130.0).run_passages(&mut est, &cam, 2, &mut rng);
    match passages.as_slice() {
        [Passage::Unmeasured(u)] => {
            assert_eq!(u.reason, NoSpeedReason::Implausible);
            assert_eq!(u.track_id, 2);
            assert!(u.samples >= 5 && u.t_exit_s > u.t_enter_s, "{u:?}");
        }
        other => panic!("one passage without a speed: {other:?}"),
    }
}

/// A fast vehicle seen on only 3 frames inside the zone (every 4th frame at 130 km/h) still
/// crossed it: one verdict, from the zone and margin samples together.
#[test]
fn a_fast_vehicle_with_few_zone_samples_is_still_one_verdict() {
    let cam = Camera::default();
    let mut rng = Rng(12);
    let mut est = estimator(&cam, SpeedConfig::default());
    let drive = Drive {
        every_nth: 5,
        ..Drive::new(150.0)
    };
    let passages = drive.run_passages(&mut est, &cam, 7, &mut rng);
    assert_eq!(passages.len(), 1, "{passages:?}");
}

#[test]
fn state_is_bounded() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default()).with_state_limits(16, 5.0);
    let mut rng = Rng(6);
    // A vehicle that stops in the zone for 110 s keeps at most max_samples samples; meanwhile
    // tracks abandoned without end_track at 100 s are dropped once idle for max_idle_s.
    for k in 0..3300 {
        let t_s = k as f64 / 30.0;
        let bbox = car_box(&cam, [20.0, 1.75], 1.5, &mut rng);
        assert_eq!(est.observe(1, "car", t_s, &bbox), None);
        if k == 3000 {
            for id in 2..50 {
                est.observe(id, "car", t_s, &bbox);
            }
            assert_eq!(est.held_tracks(), 49);
        }
    }
    assert_eq!(est.held_tracks(), 1);
    // Then it drives on out of the zone: measured once, from a bounded number of samples.
    let mut out = Vec::new();
    for k in 0..60 {
        let t_s = 110.0 + k as f64 / 30.0;
        let bbox = car_box(&cam, [20.0 + 0.25 * k as f64, 1.75], 1.5, &mut rng);
        out.extend(
            est.observe(1, "car", t_s, &bbox)
                .and_then(Passage::measured),
        );
    }
    // (Still in the zone's margin: measured when the track ends.)
    out.extend(est.end_track(1).and_then(Passage::measured));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].samples <= 17, "{:?}", out[0]);
}

#[test]
fn tracks_outside_the_zone_hold_no_state() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(7);
    for id in 1..100 {
        let bbox = car_box(&cam, [35.0, 1.75], 1.5, &mut rng);
        assert_eq!(est.observe(id, "car", 1.0, &bbox), None);
        assert_eq!(est.end_track(id), None);
    }
    assert_eq!(est.held_tracks(), 0);
}

#[test]
fn systematic_box_offset_is_inside_the_interval_when_declared() {
    // A detector whose boxes end 3 px below the tyres on every frame, no random noise: the fit is
    // tight but biased, so only the declared offset uncertainty makes the interval honest.
    let cam = Camera::default();
    let truth_kmh = 72.0;
    let run = |box_bottom_sd_px: f64| {
        let mut est = estimator(
            &cam,
            SpeedConfig {
                box_bottom_sd_px,
                ..SpeedConfig::default()
            },
        );
        let mut out = Vec::new();
        for k in 0.. {
            let t_s = k as f64 / 30.0;
            let x = 10.0 + truth_kmh / 3.6 * t_s;
            if x > 40.0 {
                break;
            }
            let mut bbox = car_box(&cam, [x, 1.75], 0.0, &mut Rng(1));
            bbox.y2 += 3.0;
            out.extend(
                est.observe(1, "car", t_s, &bbox)
                    .and_then(Passage::measured),
            );
        }
        out.extend(est.end_track(1).and_then(Passage::measured));
        assert_eq!(out.len(), 1, "{out:?}");
        out.remove(0)
    };
    let plain = run(0.0);
    let declared = run(3.0);
    assert_eq!(
        plain.speed_kmh, declared.speed_kmh,
        "only the interval changes"
    );
    let err_kmh = plain.speed_kmh - truth_kmh;
    assert!(
        err_kmh.abs() > 0.05,
        "the offset biases the speed: {err_kmh}"
    );
    let [lo, hi] = plain.speed_ci95_kmh;
    assert!(!(lo..=hi).contains(&truth_kmh), "{plain:?}");
    let [lo, hi] = declared.speed_ci95_kmh;
    assert!((lo..=hi).contains(&truth_kmh), "{declared:?}");
    assert!(
        hi - lo < 0.1 * truth_kmh,
        "but not absurdly wide: {declared:?}"
    );
}

#[test]
fn a_box_that_stays_put_is_no_passage() {
    // A false detection (a sign, a shadow) or a parked car inside the zone, boxed on 30 frames
    // with noise: enough samples, but it does not move through the zone.
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(5);
    let mut out = Vec::new();
    for k in 0..30 {
        let bbox = car_box(&cam, [20.0, 1.75], 1.5, &mut rng);
        out.extend(
            est.observe(1, "car", k as f64 / 30.0, &bbox)
                .and_then(Passage::measured),
        );
    }
    out.extend(est.end_track(1).and_then(Passage::measured));
    assert!(out.is_empty(), "{out:?}");
}

/// The samples just outside the zone pin down when a vehicle crossed the zone's edges: over many
/// fast passages (few samples in the zone) the fit with the default margin errs clearly less than
/// the zone-only fit on the same boxes, and both report the same in-zone entry and exit.
#[test]
fn fit_margin_cuts_the_error_of_fast_passages() {
    let cam = Camera::default();
    let drive = Drive::new(140.0);
    let (mut with_margin, mut zone_only) = (0.0, 0.0);
    for seed in 1..=100 {
        let run = |share: f64| {
            let cfg = SpeedConfig {
                fit_margin_share: share,
                ..SpeedConfig::default()
            };
            let mut est = estimator(&cam, cfg);
            let m = drive.run(&mut est, &cam, 1, &mut Rng(seed));
            assert_eq!(m.len(), 1, "{m:?}");
            assert_eq!(est.held_tracks(), 0);
            m[0].clone()
        };
        let (a, b) = (run(DEFAULT_FIT_MARGIN_SHARE), run(0.0));
        assert_eq!((a.t_enter_s, a.t_exit_s), (b.t_enter_s, b.t_exit_s));
        assert!(a.samples > b.samples, "{a:?} {b:?}");
        with_margin += (a.speed_kmh - 140.0).abs() / 100.0;
        zone_only += (b.speed_kmh - 140.0).abs() / 100.0;
    }
    assert!(
        with_margin < 0.75 * zone_only,
        "mean |error| {with_margin:.3} km/h with the margin, {zone_only:.3} without"
    );
}

/// A box cut by the frame's border has no true bottom centre: in the margin it counts as no box
/// when the frame size is known (the zone itself is drawn where boxes are whole).
#[test]
fn fit_margin_skips_boxes_cut_by_the_frame() {
    let cam = Camera::default();
    // A frame whose right border cuts the car's box before x = 11 m (in the margin before the
    // zone): the nearer, wider boxes lose their right part and their bottom centre moves left.
    let exact = car_box(&cam, [11.0, 1.75], 0.0, &mut Rng(1));
    let (width, height) = (exact.x2.floor() as u32, cam.height_px() as u32);
    // (image size known, feed the cut boxes) -> measurement, and how many boxes were cut.
    let run = |size: bool, feed_cut: bool| {
        let mut est = estimator(&cam, SpeedConfig::default());
        if size {
            est = est.with_image_size(width, height);
        }
        let mut rng = Rng(3);
        let (mut out, mut cut) = (Vec::new(), 0);
        for k in 0..60 {
            let x = 10.0 + 25.0 / 3.6 / 30.0 * f64::from(k);
            let mut bbox = car_box(&cam, [x, 1.75], 0.5, &mut rng);
            if bbox.x2 >= width as f32 - 1.0 {
                bbox.x2 = width as f32;
                cut += 1;
                if !feed_cut {
                    continue;
                }
            }
            out.extend(
                est.observe(1, "car", 100.0 + f64::from(k) / 30.0, &bbox)
                    .and_then(Passage::measured),
            );
        }
        out.extend(est.end_track(1).and_then(Passage::measured));
        out.extend(est.flush().into_iter().filter_map(Passage::measured));
        assert_eq!(out.len(), 1, "{out:?}");
        (out.remove(0), cut)
    };
    let (fed, cut) = run(true, true);
    assert!(cut >= 3, "{cut} cut boxes");
    assert_eq!(fed, run(true, false).0, "cut boxes count as none");
    let (unknown_size, _) = run(false, true);
    assert!(unknown_size.samples > fed.samples, "{unknown_size:?}");
    assert_ne!(unknown_size.speed_kmh, fed.speed_kmh);
    assert!((fed.speed_kmh - 25.0).abs() < 0.3, "{fed:?}");
}

/// A track that passes near the zone without entering it is not measured, and its margin samples
/// are dropped as soon as it moves away.
#[test]
fn fit_margin_state_of_tracks_passing_by_is_dropped() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(4);
    // Approaches to 2 m short of the zone (in its margin), then turns off sideways.
    for k in 0..30 {
        let x = 4.0 + 0.2 * f64::from(k);
        let bbox = car_box(&cam, [x, 1.75], 0.5, &mut rng);
        assert_eq!(est.observe(1, "car", f64::from(k) / 30.0, &bbox), None);
    }
    assert_eq!(est.held_tracks(), 1, "margin samples are held");
    for k in 0..60 {
        let y = 1.75 + 0.3 * f64::from(k);
        let bbox = car_box(&cam, [10.0, y], 0.5, &mut rng);
        assert_eq!(
            est.observe(1, "car", 1.0 + f64::from(k) / 30.0, &bbox),
            None
        );
    }
    assert_eq!(est.held_tracks(), 0, "dropped once outside the margin");
    assert_eq!(est.end_track(1), None);
}

/// Position of a queued car along the road, m: from x = 8 m at 30 km/h it brakes at 3 m/s² to
/// a stop at x = `stop_x_m` (at least 20 m), stands `stop_s`, then accelerates at 1.5 m/s².
fn queued_x_m(t_s: f64, stop_x_m: f64, stop_s: f64) -> f64 {
    let (v0, dec, acc) = (30.0 / 3.6, 3.0, 1.5);
    let brake_len_m = v0 * v0 / (2.0 * dec);
    let x_brake = stop_x_m - brake_len_m;
    let t_brake = (x_brake - 8.0) / v0;
    let t_stop = t_brake + v0 / dec;
    if t_s < t_brake {
        8.0 + v0 * t_s
    } else if t_s < t_stop {
        let tau = t_s - t_brake;
        x_brake + v0 * tau - 0.5 * dec * tau * tau
    } else if t_s < t_stop + stop_s {
        stop_x_m
    } else {
        let tau = t_s - t_stop - stop_s;
        stop_x_m + 0.5 * acc * tau * tau
    }
}

/// A car that stops in the zone for 8 s (a queue at a light) is measured: its mean speed over
/// the zone (zone length / the time between entering and leaving it) and the time it stood.
#[test]
fn a_vehicle_queued_in_the_zone_gets_its_mean_zone_speed_and_stopped_time() {
    let cam = Camera::default();
    let mut est = estimator(&cam, SpeedConfig::default());
    let mut rng = Rng(21);
    let (stop_x_m, stop_s) = (24.0, 8.0);
    let mut out = Vec::new();
    let (mut t_in, mut t_out) = (f64::NAN, f64::NAN);
    for k in 0..(30 * 40) {
        let t_s = k as f64 / 30.0;
        let x = queued_x_m(t_s, stop_x_m, stop_s);
        if x > 40.0 {
            break;
        }
        if x >= 12.0 && t_in.is_nan() {
            t_in = t_s;
        }
        if x >= 32.0 && t_out.is_nan() {
            t_out = t_s;
        }
        out.extend(est.observe(3, "car", t_s, &car_box(&cam, [x, 1.75], 1.5, &mut rng)));
    }
    out.extend(est.end_track(3));
    let truth_kmh = ZONE_LEN_M / (t_out - t_in) * 3.6;
    let m = match out.as_slice() {
        [Passage::Measured(m)] => m,
        other => panic!("one measurement: {other:?}"),
    };
    assert_eq!(m.method, "crossings");
    assert!(
        (m.speed_kmh - truth_kmh).abs() < 0.05 * truth_kmh,
        "{} km/h, truth {truth_kmh:.2}",
        m.speed_kmh
    );
    assert!(
        (m.speed_ci95_kmh[0]..=m.speed_ci95_kmh[1]).contains(&truth_kmh),
        "{m:?}"
    );
    assert!(
        (m.stopped_s - stop_s).abs() < 1.0,
        "stopped {} s",
        m.stopped_s
    );
}
