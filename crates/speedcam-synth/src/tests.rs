use super::*;
use proptest::prelude::*;

/// The demo geometry scaled down to 320x180 (same view, a quarter of the pixels per axis).
fn tiny_spec() -> SceneSpec {
    let mut spec = demo_scene();
    spec.width_px = 320;
    spec.height_px = 180;
    spec.camera.focal_px /= 4.0;
    spec.duration_s = 64.0 / 30.0;
    spec.jitter_ms = 4.0;
    spec.vehicles = vec![
        vehicle(1, "car_right", 1, Direction::PlusX, 90.0, 0.0),
        vehicle(2, "pickup_right", 3, Direction::MinusX, 80.0, 0.1),
    ];
    spec.vehicles[1].accel_mps2 = 2.0;
    spec
}

/// Converts an avcC-style sample (4-byte lengths) to Annex B for the decoder.
fn to_annexb(sample: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i + 4 <= sample.len() {
        let n =
            u32::from_be_bytes([sample[i], sample[i + 1], sample[i + 2], sample[i + 3]]) as usize;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&sample[i + 4..i + 4 + n]);
        i += 4 + n;
    }
}

#[test]
fn tiny_scene_renders_with_exact_times_and_consistent_truth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = tiny_spec();
    let truth = render(&spec, dir.path()).expect("tiny scene renders");

    // Frame count and exact presentation times, read back with the mp4 crate.
    let ticks = frame_ticks(&spec);
    assert_eq!(truth.frames as usize, ticks.len());
    assert_eq!(truth.frames, 64);
    let file = std::fs::File::open(dir.path().join("scene.mp4")).expect("scene.mp4 exists");
    let size = file.metadata().expect("metadata").len();
    let mut reader =
        mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).expect("valid MP4");
    let track_id = *reader.tracks().keys().next().expect("one track");
    let track = &reader.tracks()[&track_id];
    assert_eq!(track.timescale(), mp4out::TIMESCALE_HZ);
    assert_eq!(track.sample_count(), truth.frames);
    assert_eq!(track.box_type().expect("codec").to_string(), "avc1");
    let sps = track.sequence_parameter_set().expect("avcC SPS").to_vec();
    let pps = track.picture_parameter_set().expect("avcC PPS").to_vec();
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    let mut decoded = 0;
    for (i, &t) in ticks.iter().enumerate() {
        let s = reader
            .read_sample(track_id, i as u32 + 1)
            .expect("sample reads")
            .expect("sample exists");
        assert_eq!(s.start_time, t, "frame {i}");
        assert_eq!(s.rendering_offset, 0);
        assert!((truth.frame_times_s[i] - t as f64 / 90_000.0).abs() < 1e-12);
        if i == 0 {
            assert!(s.is_sync, "first sample is an IDR");
        }
        let mut nal = Vec::new();
        if i == 0 {
            for ps in [&sps, &pps] {
                nal.extend_from_slice(&[0, 0, 0, 1]);
                nal.extend_from_slice(ps);
            }
        }
        to_annexb(&s.bytes, &mut nal);
        if let Ok(Some(_)) = decoder.decode(&nal) {
            decoded += 1;
        }
    }
    assert!(decoded >= 63, "decoded {decoded} of 64 frames");
    // Jitter really is there: not all intervals equal.
    let dts: Vec<u64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(dts.iter().any(|&d| d != dts[0]));

    // Truth matches the spec.
    assert_eq!(truth.vehicles.len(), spec.vehicles.len());
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    for (v, t) in spec.vehicles.iter().zip(&truth.vehicles) {
        assert_eq!(
            (t.id, t.class, t.lane, t.direction),
            (v.id, v.class, v.lane, v.direction)
        );
        assert!(
            t.crossed_zone,
            "vehicle {} crosses the zone in the tiny scene",
            v.id
        );
        let (t0, t1) = (t.zone_entry_s.expect("entry"), t.zone_exit_s.expect("exit"));
        let zone_kmh = t.zone_speed_kmh.expect("zone speed");
        let v_at = |ts: f64| v.speed_kmh + v.accel_mps2 * (ts - v.t_start_s) * 3.6;
        if v.accel_mps2 == 0.0 {
            assert!((zone_kmh - v.speed_kmh).abs() < 1e-9);
        } else {
            // Mean speed of uniform acceleration = speed at the crossing's mid-time.
            assert!(
                (zone_kmh - v_at((t0 + t1) / 2.0)).abs() < 1e-6,
                "{zone_kmh}"
            );
        }
        assert!(!t.samples.is_empty());
        for s in &t.samples {
            // Billboard bottom-centre back-projects to the vehicle's ground point.
            let b = s.bbox_px;
            let g = cam
                .unproject_ground([(b[0] + b[2]) / 2.0, b[3]])
                .expect("on the ground");
            assert!((g[0] - s.ground_m[0]).abs() < 1e-6 && (g[1] - s.ground_m[1]).abs() < 1e-6);
            assert!((s.t_s - truth.frame_times_s[s.frame as usize]).abs() < 1e-12);
        }
        // Samples inside the zone lie between the entry and exit times.
        let zx = [truth.zone_world_m[0][0], truth.zone_world_m[1][0]];
        for s in &t.samples {
            if s.ground_m[0] > zx[0] && s.ground_m[0] < zx[1] {
                assert!(s.t_s >= t0 && s.t_s <= t1);
            }
        }
    }

    // Calibration points and zone are exact projections.
    assert!(truth.calibration_image_px.len() >= 6);
    for (p, g) in truth
        .calibration_image_px
        .iter()
        .zip(&truth.calibration_world_m)
    {
        let q = cam.project_ground(*g).expect("in front");
        assert!((p[0] - q[0]).abs() < 1e-9 && (p[1] - q[1]).abs() < 1e-9);
    }
    for (p, g) in truth.zone_polygon_px.iter().zip(&truth.zone_world_m) {
        let q = cam.project_ground(*g).expect("in front");
        assert!((p[0] - q[0]).abs() < 1e-9 && cam.in_image(*p));
    }

    // camera.toml is TOML with the tables the config loader reads.
    let text = std::fs::read_to_string(dir.path().join("camera.toml")).expect("camera.toml");
    let doc: toml::Table = text.parse().expect("valid TOML");
    let cams = doc["cameras"].as_array().expect("[[cameras]]");
    let cal = cams[0]["calibration"]
        .as_table()
        .expect("calibration table");
    let n = cal["image_points"].as_array().expect("image_points").len();
    assert_eq!(
        n,
        cal["world_points"].as_array().expect("world_points").len()
    );
    assert_eq!(n, truth.calibration_image_px.len());
    assert_eq!(
        cams[0]["zone"]["polygon"]
            .as_array()
            .expect("polygon")
            .len(),
        4
    );

    // truth.json round-trips.
    let json = std::fs::read(dir.path().join("truth.json")).expect("truth.json");
    let back: SceneTruth = serde_json::from_slice(&json).expect("truth.json parses");
    assert_eq!(back.frames, truth.frames);
    assert_eq!(back.vehicles.len(), truth.vehicles.len());
}

#[test]
fn background_has_sky_above_the_horizon_and_road_below() {
    let spec = tiny_spec();
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    let bg = scene::render_background(&cam, spec.lanes, spec.seed);
    let horizon = cam.horizon_v_px().expect("tilted camera");
    assert!(
        horizon > 2.0 && horizon < f64::from(spec.height_px) / 2.0,
        "{horizon}"
    );
    let px = |u: u32, v: u32| {
        let o = ((v * spec.width_px + u) * 3) as usize;
        [bg[o], bg[o + 1], bg[o + 2]]
    };
    for u in (0..spec.width_px).step_by(16) {
        let sky = px(u, 0);
        assert!(sky[2] > sky[0] + 50, "sky is blue at ({u}, 0): {sky:?}");
    }
    // A point on the asphalt between markings: grey, not blue, not green.
    let g = cam
        .project_ground([
            truth::zone_centre_x_m(&cam) + 6.0,
            scene::lane_centre_y_m(4, 1),
        ])
        .expect("road visible");
    let road = px(g[0] as u32, g[1] as u32);
    let spread = road.iter().max().expect("3") - road.iter().min().expect("3");
    assert!(spread < 20 && road[0] < 140, "asphalt at {g:?}: {road:?}");
    // The grass between the camera and the road is green.
    let grass = px(spec.width_px / 2, spec.height_px - 2);
    assert!(grass[1] > grass[0] && grass[1] > grass[2], "{grass:?}");
}

#[test]
fn invalid_specs_are_rejected_with_a_fix() {
    let mut spec = tiny_spec();
    spec.vehicles[0].lane = 7;
    let dir = tempfile::tempdir().expect("temp dir");
    let err = render(&spec, dir.path()).expect_err("lane out of range");
    assert!(err.to_string().contains("lane 7"), "{err}");
    let mut spec = tiny_spec();
    spec.width_px = 321;
    assert!(matches!(
        render(&spec, dir.path()),
        Err(SynthError::Spec(_))
    ));
    let mut spec = tiny_spec();
    spec.vehicles[0].sprite = "bus".into();
    assert!(matches!(
        render(&spec, dir.path()),
        Err(SynthError::UnknownSprite(_))
    ));
    let mut spec = tiny_spec();
    spec.vehicles[1].size_m = Some([45.0, 2.5, 3.0]);
    let err = render(&spec, dir.path()).expect_err("a 45 m vehicle");
    assert!(err.to_string().contains("45 m long"), "{err}");
}

#[test]
fn demo_scene_meets_its_brief() {
    let spec = demo_scene();
    assert_eq!((spec.width_px, spec.height_px), (1280, 720));
    let fast = spec.vehicles.iter().filter(|v| v.speed_kmh > 53.0).count();
    let slow = spec.vehicles.iter().filter(|v| v.speed_kmh < 45.0).count();
    assert!(fast >= 2 && slow >= 2);
    for d in [Direction::PlusX, Direction::MinusX] {
        assert!(spec.vehicles.iter().any(|v| v.direction == d));
    }
    // Every vehicle crosses the zone within the video, and a 4.6 m car would be 130-360 px wide
    // where it does (the detector needs ~150-350 px at 1280x720).
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    let (zone, _) = truth::GroundZone::for_scene(&spec, &cam).expect("zone visible");
    let last_s = frame_ticks(&spec).last().copied().expect("frames") as f64 / 90_000.0;
    for v in &spec.vehicles {
        let a = scene::make_actor(&spec, &cam, v).expect("actor");
        let (t0, t1) = zone.crossing_s(&a);
        assert!(
            t0.is_some_and(|t| t > 0.0) && t1.is_some_and(|t| t < last_s),
            "vehicle {}",
            v.id
        );
        for x in [zone.x0_m, zone.x1_m] {
            let b = a.pose_at_x(&cam, x).expect("visible").bbox_px;
            let car_px = (b[2] - b[0]) * 4.6 / a.length_m;
            assert!(
                (130.0..360.0).contains(&car_px),
                "vehicle {} car width {car_px}",
                v.id
            );
        }
    }
}

#[test]
fn demo_spec_is_the_one_media_demo_was_rendered_from() {
    // The committed demo's truth.json starts with the spec it was rendered from; new optional
    // fields (a vehicle's size) stay out of it, so the demo renders byte for byte as before.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../media/demo/truth.json");
    let text = std::fs::read_to_string(path).expect("media/demo/truth.json");
    let truth: SceneTruth = serde_json::from_str(&text).expect("truth parses");
    assert_eq!(truth.spec, demo_scene());
    let spec_json = serde_json::to_string_pretty(&demo_scene()).expect("serialises");
    let indented = spec_json.replace('\n', "\n  ");
    assert!(
        text.contains(&indented),
        "the demo spec serialises differently"
    );
    assert!(!text.contains("size_m"));
}

#[test]
fn set_selected_vehicles_of_every_class_render_at_their_sprites_size() {
    use sprite::SpriteSet;
    let spec = tiny_spec();
    let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
    for set in SpriteSet::ALL {
        for (i, class) in VehicleClass::ALL.into_iter().enumerate() {
            let mut v = vehicle(10 + i as u32, "car_right", 1, Direction::PlusX, 50.0, 0.0);
            v.class = class;
            v.sprite = set.selector().to_string();
            let a = scene::make_actor(&spec, &cam, &v).expect("every class renders");
            let size = a.sprite.size_m;
            let name = sprite::resolve(&v.sprite, class, 0);
            assert!(set.sprites(class).contains(&name));
            match size {
                // Rendered sprites are drawn at their own metric size and aspect.
                Some(s) => {
                    assert_eq!((a.length_m, a.height_m), (s.length_m, s.image_height_m));
                    let aspect = f64::from(a.sprite.height_px) / f64::from(a.sprite.width_px);
                    assert!((a.height_m / a.length_m - aspect).abs() < 0.01);
                }
                // Photos at their class's.
                None => assert_eq!((a.length_m, a.height_m), class.dimensions_m()),
            }
            // A vehicle of its own size: the billboard is that long, and as much taller than
            // the vehicle as the picture is.
            v.size_m = Some([10.0, 2.5, 3.0]);
            let b = scene::make_actor(&spec, &cam, &v).expect("renders");
            assert_eq!(b.length_m, 10.0);
            let ratio = size.map_or(1.0, |s| s.image_height_m / s.vehicle_height_m);
            assert!((b.height_m - 3.0 * ratio).abs() < 1e-9);
        }
    }
    // The same vehicle id and seed always gets the same sprite; the spec keeps the selector.
    let mut spec = tiny_spec();
    for (v, class) in spec
        .vehicles
        .iter_mut()
        .zip([VehicleClass::Bus, VehicleClass::Van])
    {
        v.class = class;
        v.sprite = SpriteSet::HeldOut.selector().into();
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let truth = render(&spec, dir.path()).expect("a bus and a van render");
    assert_eq!(truth.spec.vehicles[0].sprite, "set:heldout");
    assert!(truth.vehicles.iter().all(|v| !v.samples.is_empty()));
}

/// Renders the demo into `media/demo/` (run once: `cargo test --release --lib
/// synth::tests::render_demo_into_media -- --ignored --nocapture`).
#[test]
#[ignore = "writes media/demo; run by hand"]
fn render_demo_into_media() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../media/demo");
    let t = std::time::Instant::now();
    let truth = render_demo(&out).expect("demo renders");
    println!(
        "rendered {} frames in {:.1} s",
        truth.frames,
        t.elapsed().as_secs_f64()
    );
    for v in &truth.vehicles {
        println!(
            "vehicle {} {:?} lane {} {:?} {:.1} km/h zone {:?}..{:?} crossed {} zone speed {:?}",
            v.id,
            v.class,
            v.lane,
            v.direction,
            v.speed_kmh,
            v.zone_entry_s,
            v.zone_exit_s,
            v.crossed_zone,
            v.zone_speed_kmh
        );
    }
}

proptest! {
    #[test]
    fn frame_times_increase_and_stay_within_the_jitter(seed in any::<u64>(), jitter_ms in 0.0f64..10.0) {
        let mut spec = tiny_spec();
        spec.seed = seed;
        spec.jitter_ms = jitter_ms;
        let ticks = frame_ticks(&spec);
        prop_assert_eq!(ticks[0], 0);
        for (i, &t) in ticks.iter().enumerate() {
            let nominal = i as f64 / spec.fps * 90_000.0;
            prop_assert!((t as f64 - nominal).abs() <= jitter_ms * 90.0 + 0.5);
        }
        prop_assert!(ticks.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn billboard_bottom_centre_is_the_ground_point(x in -30.0f64..50.0, lane in 0u32..4) {
        let spec = demo_scene();
        let cam = Camera::new(spec.camera, spec.width_px, spec.height_px);
        let mut v = spec.vehicles[0].clone();
        v.lane = lane;
        let a = scene::make_actor(&spec, &cam, &v).expect("actor");
        let p = a.pose_at_x(&cam, x).expect("in front of the camera");
        let b = p.bbox_px;
        let g = cam.unproject_ground([(b[0] + b[2]) / 2.0, b[3]]).expect("ground");
        prop_assert!((g[0] - x).abs() < 1e-6 && (g[1] - a.y_m).abs() < 1e-6);
        // Size is the real size scaled by f / depth.
        let w_m = (b[2] - b[0]) * p.depth_m / cam.spec.focal_px;
        prop_assert!((w_m - a.length_m).abs() < 1e-9);
    }
}
