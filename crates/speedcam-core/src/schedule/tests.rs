use super::*;
use proptest::prelude::*;

/// A 640x360 zone covering the lower middle of the frame.
fn zone() -> Zone {
    Zone::new(vec![
        [200.0, 200.0],
        [440.0, 200.0],
        [440.0, 340.0],
        [200.0, 340.0],
    ])
    .unwrap()
}

/// A grey 640x360 I420 frame at `t_s`, with an optional bright box (x, y, w, h).
fn frame(t_s: f64, rect: Option<(u32, u32, u32, u32)>) -> Frame {
    let mut img = image::RgbImage::from_pixel(640, 360, image::Rgb([90, 90, 90]));
    if let Some((x0, y0, w, h)) = rect {
        for y in y0..(y0 + h).min(360) {
            for x in x0..(x0 + w).min(640) {
                img.put_pixel(x, y, image::Rgb([235, 235, 235]));
            }
        }
    }
    Frame::i420_from_rgb_image("t".into(), 0, (t_s * 1e9) as i64, &img)
}

fn track(x: f32, y: f32, vx: f32, vy: f32, confirmed: bool, t_s: f64) -> TrackView {
    TrackView {
        bbox: BBox {
            x1: x - 20.0,
            y1: y - 15.0,
            x2: x + 20.0,
            y2: y,
        },
        velocity_px_s: (vx, vy),
        confirmed,
        t_s,
    }
}

/// Runs `n` frames at `fps` through `s`, calling `detected` as the pipeline does; returns the
/// times of detected frames.
fn drive(s: &mut Scheduler, frames: impl Iterator<Item = Frame>) -> Vec<f64> {
    let mut out = Vec::new();
    for f in frames {
        if let Decision::Detect(r) = s.decide(&f, &[]) {
            s.detected(f.pts_s(), r);
            out.push(f.pts_s());
        }
    }
    out
}

#[test]
fn an_empty_road_skips_at_least_90_percent_of_frames() {
    let mut s = Scheduler::new(ScheduleConfig::default(), zone());
    let still = frame(0.0, None);
    let n = 300; // 10 s at 30 fps
    let times = drive(
        &mut s,
        (0..n).map(|i| Frame {
            pts_ns: (i as f64 / 30.0 * 1e9) as i64,
            ..still.clone()
        }),
    );
    let skipped = s.counts().skipped as f64 / n as f64;
    assert!(
        skipped >= 0.9,
        "skipped {skipped:.3}, detected at {times:?}"
    );
    // The heartbeat keeps looking at min_detect_hz (2 Hz): no gap longer than 0.5 s + a frame.
    for w in times.windows(2) {
        assert!(w[1] - w[0] <= 0.5 + 1.0 / 30.0 + 1e-9, "{times:?}");
    }
    // Only the first frame (no background yet) counts as motion.
    assert!(s.counts().motion <= 1, "{:?}", s.counts());
}

#[test]
fn a_vehicle_driving_in_is_detected_on_its_first_frame() {
    let mut s = Scheduler::new(ScheduleConfig::default(), zone());
    let mut first = None;
    for i in 0..90 {
        let t = i as f64 / 30.0;
        // The vehicle appears at frame 47 (t = 1.567 s), between two idle heartbeats.
        let rect = (i >= 47).then(|| (10 + (i - 47) * 6, 120, 48, 30));
        let f = frame(t, rect);
        if let Decision::Detect(r) = s.decide(&f, &[]) {
            s.detected(t, r);
            if i >= 47 && first.is_none() {
                first = Some((i, r));
            }
        }
    }
    assert_eq!(first, Some((47, Reason::Motion)));
}

#[test]
fn unexplained_motion_is_rate_limited() {
    let cfg = ScheduleConfig {
        motion_detect_hz: 10.0,
        ..ScheduleConfig::default()
    };
    let mut s = Scheduler::new(cfg, zone());
    // A flag waving: the blob jumps between two places every frame, never tracked.
    let times = drive(
        &mut s,
        (0..90).map(|i| {
            let x = if i % 2 == 0 { 20 } else { 560 };
            frame(i as f64 / 30.0, Some((x, 20, 40, 40)))
        }),
    );
    let rate = times.len() as f64 / 3.0;
    // At most motion_detect_hz (plus the jitter slack), and far above the idle heartbeat.
    assert!((5.0..=12.5).contains(&rate), "{rate} Hz: {times:?}");
}

#[test]
fn busy_means_tentative_in_zone_or_approaching() {
    let s = Scheduler::new(ScheduleConfig::default(), zone());
    let t = 5.0;
    // Tentative anywhere: busy.
    assert!(s.busy(t, &[track(50.0, 50.0, 0.0, 0.0, false, t)]));
    // Confirmed, inside the zone: busy.
    assert!(s.busy(t, &[track(300.0, 300.0, 100.0, 0.0, true, t)]));
    // Confirmed, 60 px left of the zone, driving towards it at 100 px/s: there in 0.6 s.
    assert!(s.busy(t, &[track(140.0, 300.0, 100.0, 0.0, true, t)]));
    // Same place, driving away: not busy; parked: not busy.
    assert!(!s.busy(t, &[track(140.0, 300.0, -100.0, 0.0, true, t)]));
    assert!(!s.busy(t, &[track(140.0, 300.0, 0.0, 0.0, true, t)]));
    // Far away and slow: would need 3 s, more than approach_s.
    assert!(!s.busy(t, &[track(-100.0, 300.0, 100.0, 0.0, true, t)]));
    // The view is extrapolated from its own time: seen 1 s ago left of the zone, moving in.
    assert!(s.busy(t, &[track(120.0, 300.0, 100.0, 0.0, true, t - 1.0)]));
    assert!(!s.busy(t, &[]));
}

#[test]
fn a_busy_camera_detects_every_frame_up_to_the_cap() {
    let in_zone = [track(300.0, 300.0, 50.0, 0.0, true, 0.0)];
    let mut s = Scheduler::new(ScheduleConfig::default(), zone());
    let still = frame(0.0, None);
    let mut n = 0;
    for i in 0..30 {
        let f = Frame {
            pts_ns: (i as f64 / 30.0 * 1e9) as i64,
            ..still.clone()
        };
        if let Decision::Detect(r) = s.decide(&f, &in_zone) {
            assert!(r == Reason::Busy || i == 0, "{r:?}");
            s.detected(f.pts_s(), r);
            n += 1;
        }
    }
    assert_eq!(n, 30);
    let cfg = ScheduleConfig {
        max_detect_hz: Some(15.0),
        ..ScheduleConfig::default()
    };
    let mut s = Scheduler::new(cfg, zone());
    let mut detected = Vec::new();
    for i in 0..60 {
        // +-5 ms jitter must not turn every 2nd frame into every 3rd.
        let jitter = if i % 2 == 0 { 0.005 } else { -0.005 };
        let t = i as f64 / 30.0 + jitter;
        let f = Frame {
            pts_ns: (t * 1e9) as i64,
            ..still.clone()
        };
        if let Decision::Detect(r) = s.decide(&f, &in_zone) {
            s.detected(t, r);
            detected.push(i);
        }
    }
    assert_eq!(detected.len(), 30, "{detected:?}");
}

#[test]
fn tracked_vehicles_leaving_do_not_keep_the_camera_awake() {
    let mut s = Scheduler::new(ScheduleConfig::default(), zone());
    s.decide(&frame(0.0, None), &[]);
    s.detected(0.0, Reason::Idle);
    let mut detects = 0;
    for i in 1..60 {
        let t = i as f64 / 30.0;
        // A vehicle right of the zone driving away; the tracker follows it.
        let x = 500.0 + 90.0 * t as f32;
        let rect = (x as u32 - 20, 285, 40, 15);
        let view = track(x, 300.0, 90.0, 0.0, true, t);
        if let Decision::Detect(r) = s.decide(&frame(t, Some(rect)), &[view]) {
            assert_eq!(r, Reason::Idle);
            s.detected(t, r);
            detects += 1;
        }
    }
    assert!(detects <= 4, "{detects} detections in 2 s");
}

#[test]
fn skipping_off_detects_every_frame() {
    let cfg = ScheduleConfig {
        adaptive: false,
        ..ScheduleConfig::default()
    };
    let mut s = Scheduler::new(cfg, zone());
    let times = drive(&mut s, (0..20).map(|i| frame(i as f64 / 30.0, None)));
    assert_eq!(times.len(), 20);
    assert_eq!(s.counts().skipped, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever the frame rate and jitter, an empty road is looked at within 1 / min_detect_hz
    /// plus one frame interval, and never more often than needed.
    #[test]
    fn idle_heartbeat_holds_under_jitter(fps in 5.0f64..60.0, jitter_ms in 0.0f64..8.0, hz in 0.5f64..5.0, seed in any::<u64>()) {
        let cfg = ScheduleConfig { min_detect_hz: hz, ..ScheduleConfig::default() };
        let mut s = Scheduler::new(cfg, zone());
        let still = frame(0.0, None);
        let mut rng = crate::test_rng::Rng(seed | 1);
        let times = drive(&mut s, (0..(fps * 6.0) as usize).map(|i| {
            let t = i as f64 / fps + (rng.uniform() * 2.0 - 1.0) * jitter_ms * 1e-3;
            Frame { pts_ns: (t.max(0.0) * 1e9) as i64, ..still.clone() }
        }));
        let frame_s = 1.0 / fps + 2.0 * jitter_ms * 1e-3;
        for w in times.windows(2) {
            prop_assert!(w[1] - w[0] <= 1.0 / hz + frame_s + 1e-9, "gap {} at {fps} fps", w[1] - w[0]);
            prop_assert!(w[1] - w[0] >= (1.0 - RATE_SLACK) / hz - 1e-9, "gap {}", w[1] - w[0]);
        }
    }
}
