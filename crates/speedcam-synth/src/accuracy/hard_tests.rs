use super::super::{evaluate_case, summarize_groups, Family};
use super::*;
use speedcam_core::speed::SpeedConfig;

fn cfg(family: Family, cases: u32) -> BenchConfig {
    BenchConfig {
        cases,
        vehicles_per_case: 8,
        ..BenchConfig::for_family(family)
    }
}

/// The hard family with exact boxes: no noise, misses, false positives, duplicates or occlusion.
fn exact(family: Family) -> BenchConfig {
    let mut c = cfg(family, 4);
    c.noise.box_sigma_px = 0.0;
    c.noise.box_rel_sigma = 0.0;
    c.noise.miss_rate = 0.0;
    c.noise.false_positive_rate = 0.0;
    c.hard.detector.duplicate_share = 0.0;
    c.hard.detector.occlusion_cover = f64::INFINITY;
    c
}

fn every_frame(c: &BenchConfig) -> &Condition {
    &c.conditions[0]
}

/// The camera model written out for yaw 90 deg (looking along +y): the box of a known bus is
/// the bounding rectangle of its eight projected corners, its bottom edge is the near lower
/// corners' row, and the box's bottom centre lies on the ground well off the footprint centre.
#[test]
fn bus_box_is_the_projected_cuboid() {
    let (h, tilt, f) = (6.0, 15f64.to_radians(), 1000.0);
    let spec = CameraSpec {
        x_m: 0.0,
        y_m: -20.0,
        height_m: h,
        yaw_deg: 90.0,
        tilt_deg: 15.0,
        focal_px: f,
    };
    let cam = Camera::new(spec, 1280, 720);
    let size = [12.0, 2.55, 3.2];
    // Camera frame for yaw 90: right = +x, depth along (0, cos t, -sin t), down = (0, -sin t,
    // -cos t).
    let project = |p: [f64; 3]| {
        let (dx, dy, dz) = (p[0], p[1] + 20.0, p[2] - h);
        let depth = dy * tilt.cos() - dz * tilt.sin();
        let down = -dy * tilt.sin() - dz * tilt.cos();
        [640.0 + f * dx / depth, 360.0 + f * down / depth]
    };
    // Ground point of the box's bottom centre, and the footprint centre.
    let mut ground = Vec::new();
    for centre in [[0.0, 1.75], [8.0, 1.75]] {
        let mut want = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for dx in [-6.0, 6.0] {
            for dy in [-1.275, 1.275] {
                for z in [0.0, 3.2] {
                    let q = project([centre[0] + dx, centre[1] + dy, z]);
                    want = [
                        want[0].min(q[0]),
                        want[1].min(q[1]),
                        want[2].max(q[0]),
                        want[3].max(q[1]),
                    ];
                }
            }
        }
        let got = cuboid_box(&cam, centre, size).expect("in front of the camera");
        for k in 0..4 {
            assert!((got[k] - want[k]).abs() < 1e-9, "{got:?} vs {want:?}");
        }
        // Bottom edge: the near lower corners.
        let near_low = project([centre[0] + 6.0, centre[1] - 1.275, 0.0]);
        assert!((got[3] - near_low[1]).abs() < 1e-9);
        let g = cam
            .unproject_ground([(got[0] + got[2]) / 2.0, got[3]])
            .expect("below the horizon");
        ground.push((centre, g));
    }
    // Straight ahead the bottom centre is on the near side of the footprint; off to the side it
    // also slides along the bus (here away from the camera's axis), by decimetres.
    let (c, g) = ground[0];
    assert!((g[0] - c[0]).abs() < 1e-6, "symmetric view: same x, {g:?}");
    assert!((c[1] - g[1] - 1.275).abs() < 1e-6, "{g:?}");
    let (c, g) = ground[1];
    assert!(g[0] - c[0] > 0.15, "{g:?}");
    assert!((c[1] - g[1] - 1.275).abs() < 1e-6, "{g:?}");
    // A corner behind the camera: not visible.
    assert!(cuboid_box(&cam, [0.0, -20.0], size).is_none());
}

/// In a generated hard case every box of a bus (with noise off) is the projection of its cuboid
/// at its true position; with the detector effects on, buses get second boxes of the other label.
#[test]
fn generated_bus_boxes_are_cuboids_and_get_duplicates() {
    let mut c = exact(Family::Hard);
    for k in &mut c.hard.classes {
        k.share = if k.class == VehicleClass::Bus {
            1.0
        } else {
            0.0
        };
    }
    let case = generate_case(&c, every_frame(&c), 1).expect("case builds");
    let cam = Camera::new(case.camera, case.width_px, case.height_px);
    let (w, h) = (f64::from(case.width_px), f64::from(case.height_px));
    let mut checked = 0;
    for r in case.detections.iter().flatten() {
        let Some(id) = r.vehicle_id else { continue };
        let v = &case.vehicles[id as usize - 1];
        assert_eq!(v.class, VehicleClass::Bus);
        let size = v.size_m.expect("hard truth has a size");
        assert!((11.5..=12.5).contains(&size[0]), "{size:?}");
        let b = cuboid_box(&cam, r.truth_ground_m.expect("truth point"), size).expect("visible");
        let b = [b[0].max(0.0), b[1].max(0.0), b[2].min(w), b[3].min(h)];
        for k in 0..4 {
            assert!(
                (r.bbox_px[k] - b[k]).abs() < 1e-9,
                "{:?} vs {b:?}",
                r.bbox_px
            );
        }
        assert!(matches!(r.class, VehicleClass::Bus | VehicleClass::Truck));
        checked += 1;
    }
    assert!(checked > 100, "{checked}");

    c.hard.detector.duplicate_share = 0.2;
    let case = generate_case(&c, every_frame(&c), 1).expect("case builds");
    let (mut rows, mut doubled, mut as_truck) = (0, 0, 0);
    for frame in &case.detections {
        for r in frame {
            rows += 1;
            as_truck += usize::from(r.class == VehicleClass::Truck);
        }
        for v in &case.vehicles {
            let mine: Vec<_> = frame
                .iter()
                .filter(|r| r.vehicle_id == Some(v.id))
                .collect();
            if let [a, b] = mine[..] {
                doubled += 1;
                assert_ne!(a.class, b.class);
                assert!((a.score - b.score).abs() <= 0.03 + 1e-12);
            }
        }
    }
    let share = doubled as f64 / (rows - doubled) as f64;
    assert!((0.15..0.25).contains(&share), "{share}");
    // 30% of bus detections say truck (duplicates: half of the pairs' boxes).
    let truck_share = as_truck as f64 / rows as f64;
    assert!((0.3..0.45).contains(&truck_share), "{truck_share}");
}

/// Queueing vehicles brake to a standstill inside the zone, stand for the drawn time and drive
/// off; truth speed is zone length over crossing time and the crossing times are where the
/// reference point passes the zone edges.
#[test]
fn queued_vehicles_stop_in_the_zone_for_the_drawn_time() {
    let mut c = exact(Family::Hard);
    c.hard.motion.queue_share = 0.6;
    let mut queued = 0;
    for i in 0..4 {
        let case = generate_case(&c, every_frame(&c), i).expect("case builds");
        let (x0, x1) = (case.zone_world_m[0][0], case.zone_world_m[1][0]);
        let len = x1 - x0;
        for v in case.vehicles.iter().filter(|v| v.crossed_zone) {
            let path: Vec<(f64, f64)> = case
                .frame_times_s
                .iter()
                .zip(&case.detections)
                .filter_map(|(&t, rows)| {
                    rows.iter()
                        .find(|r| r.vehicle_id == Some(v.id))
                        .and_then(|r| r.truth_ground_m)
                        .map(|g| (t, g[0]))
                })
                .collect();
            let sign = v.direction.sign();
            let (first, second) = if sign > 0.0 { (x0, x1) } else { (x1, x0) };
            assert!((v.zone_speed_kmh - len / (v.zone_exit_s - v.zone_entry_s) * 3.6).abs() < 1e-9);
            for (edge, t_edge) in [(first, v.zone_entry_s), (second, v.zone_exit_s)] {
                for &(t, x) in &path {
                    let past = sign * (x - edge) > 1e-9;
                    assert_eq!(past, t > t_edge + 1e-9, "v{} t {t} x {x} edge {edge}", v.id);
                }
            }
            // Never moves backwards.
            assert!(path.windows(2).all(|w| sign * (w[1].1 - w[0].1) >= -1e-9));
            let Some(q) = v.queue else {
                assert!(v.stopped_s.expect("hard truth") < 1e-9, "{v:?}");
                continue;
            };
            queued += 1;
            assert_eq!(v.profile, Some(MotionProfile::Queue));
            assert!(q.stop_x_m > x0 && q.stop_x_m < x1, "{q:?}");
            let standing: Vec<f64> = path
                .iter()
                .filter(|(_, x)| (x - q.stop_x_m).abs() < 1e-6)
                .map(|(t, _)| *t)
                .collect();
            let stood = standing.last().expect("stands") - standing[0];
            let frame_s = 1.0 / c.conditions[0].fps;
            // The first and the last standing frame are each within a frame of the stop's ends.
            assert!(stood <= q.stand_s + 1e-9, "{stood} vs {q:?}");
            assert!(
                stood >= q.stand_s - 2.0 * frame_s - 1e-9,
                "{stood} vs {q:?}"
            );
            assert!((standing[0] - q.stop_t_s).abs() <= frame_s + 1e-9);
            let slow = q.stand_s + 0.5 / q.decel_mps2 + 0.5 / q.accel_mps2;
            let stopped = v.stopped_s.expect("hard truth");
            assert!((stopped - slow).abs() < 1e-6, "{stopped} vs {slow}");
            assert!(v.zone_exit_s - v.zone_entry_s > q.stand_s);
        }
    }
    assert!(queued >= 5, "{queued}");
}

/// Vehicles in one lane keep the minimum gap: they never drive through each other.
#[test]
fn vehicles_in_a_lane_keep_their_distance() {
    let mut c = exact(Family::Hard);
    c.vehicles_per_case = 14;
    c.hard.motion.queue_share = 0.3;
    for i in 0..4 {
        let case = generate_case(&c, every_frame(&c), i).expect("case builds");
        for rows in &case.detections {
            for a in rows {
                for b in rows {
                    let (Some(ia), Some(ib)) = (a.vehicle_id, b.vehicle_id) else {
                        continue;
                    };
                    let (va, vb) = (
                        &case.vehicles[ia as usize - 1],
                        &case.vehicles[ib as usize - 1],
                    );
                    if ia >= ib || va.lane != vb.lane {
                        continue;
                    }
                    let (ga, gb) = (a.truth_ground_m.expect("a"), b.truth_ground_m.expect("b"));
                    let la = va.size_m.expect("size")[0];
                    let lb = vb.size_m.expect("size")[0];
                    let gap = (ga[0] - gb[0]).abs() - (la + lb) / 2.0;
                    assert!(gap >= 1.5, "case {i}: v{ia} and v{ib} {gap:.2} m apart");
                    // The earlier vehicle drives ahead.
                    assert!(va.direction.sign() * (ga[0] - gb[0]) > 0.0);
                }
            }
        }
    }
}

#[test]
fn cases_are_deterministic_per_seed_and_family() {
    let c = cfg(Family::Hard, 3);
    let cond = every_frame(&c);
    let a = generate_case(&c, cond, 2).expect("case");
    assert_eq!(a, generate_case(&c, cond, 2).expect("case"));
    let other_seed = BenchConfig {
        seed: 99,
        ..c.clone()
    };
    let b = generate_case(&other_seed, cond, 2).expect("case");
    assert_ne!(a.camera, b.camera);
    let third = generate_case(&c, &c.conditions[1], 2).expect("case");
    assert_eq!(a.vehicles, third.vehicles);
    assert_eq!(a.camera, third.camera);
    let held = BenchConfig {
        seed: c.seed,
        ..cfg(Family::Heldout, 3)
    };
    assert_ne!(
        generate_case(&held, &held.conditions[0], 2)
            .expect("case")
            .camera,
        a.camera
    );
}

/// The held-out family draws cameras, images, sizes and noise from other ranges, with its own
/// seed and frame rates.
#[test]
fn heldout_differs_in_geometry_sizes_and_noise() {
    let (h, o) = (
        BenchConfig::for_family(Family::Hard),
        BenchConfig::for_family(Family::Heldout),
    );
    assert_ne!(h.seed, o.seed);
    let (gh, go) = (&h.hard.geometry, &o.hard.geometry);
    assert_ne!(gh.height_m, go.height_m);
    assert_ne!(gh.tilt_deg, go.tilt_deg);
    assert_ne!(gh.yaw_deg, go.yaw_deg);
    assert_ne!(gh.focal_per_width, go.focal_per_width);
    assert_ne!(gh.image_sizes_px, go.image_sizes_px);
    assert_ne!(h.hard.classes, o.hard.classes);
    assert_ne!(h.noise, o.noise);
    assert_ne!(h.conditions[0].fps, o.conditions[0].fps);
    let c = cfg(Family::Heldout, 6);
    for i in 0..c.cases {
        let case = generate_case(&c, every_frame(&c), i).expect("case");
        assert!(go.image_sizes_px.contains(&(case.width_px, case.height_px)));
        assert!((5.0..=18.0).contains(&case.camera.height_m));
        assert!((10.0..=45.0).contains(&case.camera.tilt_deg));
        let f = case.camera.focal_px / f64::from(case.width_px);
        assert!((0.7..=2.0).contains(&f), "{f}");
        for v in &case.vehicles {
            let s = v.size_m.expect("size");
            let k = c.hard.class_spec(v.class).expect("class");
            assert!((k.length_m.0..=k.length_m.1).contains(&s[0]));
        }
    }
}

/// A small hard run through the pipeline: the report's counts add up and every class and the
/// queued vehicles are there.
#[test]
fn hard_report_counts_add_up() {
    let c = cfg(Family::Hard, 4);
    let evals: Vec<_> = (0..c.cases)
        .map(|i| {
            let case = generate_case(&c, &c.conditions[1], i).expect("case");
            evaluate_case(&case, &SpeedConfig::default()).expect("evaluates")
        })
        .collect();
    let rows = summarize_groups("x", &evals);
    let all = &rows[0];
    assert_eq!(all.group, "all");
    assert!(all.crossed >= 20);
    assert_eq!(
        all.crossed,
        evals.iter().map(|e| e.vehicles.len()).sum::<usize>()
    );
    for r in &rows {
        let several = r.crossed - r.one_verdict - r.missed;
        assert_eq!(several, r.multiple, "{r:?}");
        assert!(r.with_speed <= r.crossed - r.missed);
    }
    let by_class: usize = rows[1..6].iter().map(|r| r.crossed).sum();
    assert_eq!(by_class, all.crossed);
    assert!(rows[1..6].iter().all(|r| r.crossed > 0), "{rows:?}");
    let table = super::super::format_group_table(&rows);
    assert_eq!(table.lines().count(), 2 + rows.len());
}

#[test]
fn trajectory_times_invert_positions() {
    // 10 m/s, brake at 2 m/s^2 to a stop, stand 3 s, drive off at 1 m/s^2 to 5 m/s.
    let t = Trajectory::new(
        5.0,
        -1.0,
        1.0,
        10.0,
        &[(1.0, 0.0), (5.0, -2.0), (3.0, 0.0), (5.0, 1.0)],
    );
    for s in [0.0, 4.0, 10.0, 20.0, 34.9, 40.0, 60.0] {
        let when = t.time_at_s(s).expect("reached");
        assert!((t.state_at(when).0 - s).abs() < 1e-9, "{s}");
        assert!((t.x_at_m(when) - (5.0 - s)).abs() < 1e-9);
    }
    // Stops at 10 + 25 = 35 m at t = 7 s, leaves at 10 s.
    assert_eq!(t.time_at_s(35.0), Some(7.0));
    assert_eq!(t.state_at(8.0), (35.0, 0.0));
    // Below 0.5 m/s: 0.25 s braking, 3 s standing, 0.5 s driving off.
    assert!((t.slow_time_s(0.0, 100.0) - 3.75).abs() < 1e-9);
    assert!((t.slow_time_s(8.0, 9.0) - 1.0).abs() < 1e-9);
    // Before it appears, it is upstream at its first speed.
    assert_eq!(t.time_at_s(-10.0), Some(0.0));
}
