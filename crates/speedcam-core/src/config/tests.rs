use super::*;

/// A config path inside the repository so `models/...` resolves to the bundled model.
/// The repository's root (this crate is `crates/speedcam-core`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn repo_path() -> PathBuf {
    repo().join("config/test.toml")
}

const GOOD: &str = r#"
device_id = "pole-1"
data_dir = "../data/test"

[detector]
model = "../models/nanodet-g-416.onnx"
score_threshold = 0.4

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[cameras]]
id = "cam1"
source = "file:///tmp/video.mp4"
speed_limit_kmh = 50.0
tolerance_kmh = 3.0
image_width = 1280
image_height = 720

[cameras.calibration]
image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0], [380.0, 300.0]]
world_points = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]]

[cameras.zone]
polygon = [[200.0, 550.0], [1080.0, 550.0], [880.0, 320.0], [400.0, 320.0]]
"#;

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, &repo_path()) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn good_config_loads_with_derived_values() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.device_id, "pole-1");
    assert!(cfg.data_dir.ends_with("config/../data/test"));
    assert_eq!(cfg.cameras.len(), 1);
    let cam = &cfg.cameras[0];
    assert_eq!(cam.source, "/tmp/video.mp4");
    assert_eq!(cam.threshold_kmh(), 53.0);
    assert!(cam.calibration_report.rms_px < 1e-6);
    let len = cam.zone_length_m().expect("zone on the ground");
    assert!(len > 5.0 && len < 30.0, "zone length {len}");
    assert_eq!(cfg.tracker.high_score, 0.4);
    assert_eq!(cfg.detector.score_threshold, 0.1);
    assert_eq!(cfg.detector.classes, DEFAULT_CLASSES);
    assert_eq!(
        cfg.mqtt.as_ref().map(|m| m.base_topic.as_str()),
        Some("speedcam")
    );
}

#[test]
fn unknown_key_names_line_and_allowed_keys() {
    let text = GOOD.replace("score_threshold = 0.4", "score_treshold = 0.4");
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(err.contains("line 7"), "{err}");
    assert!(err.contains("score_treshold"), "{err}");
    assert!(
        err.contains("score_threshold"),
        "allowed keys listed: {err}"
    );
}

#[test]
fn wrong_type_is_a_parse_error_with_line() {
    let text = GOOD.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = \"fast\"");
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn out_of_range_values_are_all_reported_with_lines() {
    let text = GOOD
        .replace("score_threshold = 0.4", "score_threshold = 1.5")
        .replace("tolerance_kmh = 3.0", "tolerance_kmh = -1.0");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "detector.score_threshold");
    assert_eq!(p[0].line, 7);
    assert!(
        p[0].message.contains("allowed 0.01 to 1"),
        "{}",
        p[0].message
    );
    assert_eq!(p[1].key, "cameras[0].tolerance_kmh");
    assert_eq!(p[1].line, 16);
}

#[test]
fn collinear_calibration_is_rejected() {
    let text = GOOD.replace(
        "world_points = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]]",
        "world_points = [[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [30.0, 0.0]]",
    );
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[0].calibration");
    assert!(
        p[0].message.to_lowercase().contains("collinear"),
        "{}",
        p[0].message
    );
}

#[test]
fn too_few_points_and_mismatched_counts_are_rejected() {
    let text = GOOD.replace(
        "image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0], [380.0, 300.0]]",
        "image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0]]",
    );
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[0].calibration");
    assert_eq!(p[0].line, 21);
}

#[test]
fn zone_outside_the_image_is_rejected() {
    let text = GOOD.replace("[1080.0, 550.0]", "[1380.0, 550.0]");
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[0].zone.polygon");
    assert!(
        p[0].message.contains("outside the 1280x720 image"),
        "{}",
        p[0].message
    );
}

#[test]
fn bad_ids_missing_model_and_no_cameras() {
    let text = GOOD
        .replace("device_id = \"pole-1\"", "device_id = \"pole/1\"")
        .replace("nanodet-g-416.onnx", "missing.onnx");
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["device_id", "detector.model"], "{p:?}");

    let head = GOOD.split("[[cameras]]").next().unwrap_or_default();
    let p = problems(head);
    assert_eq!(p[0].key, "cameras");
}

#[test]
fn duplicate_camera_ids_are_rejected() {
    let cam = GOOD
        .split_once("[[cameras]]")
        .map(|(_, c)| c)
        .unwrap_or_default();
    let text = format!("{GOOD}\n[[cameras]]{cam}");
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[1].id");
    assert!(p[0].message.contains("unique"));
}

#[test]
fn bundled_configs_are_valid() {
    for name in ["speedcam.toml", "demo.toml"] {
        let path = repo().join("config").join(name);
        if let Err(e) = load(&path) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn strict_mode_judges_the_interval_low_end() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    let lenient = &cfg.cameras[0];
    assert!(!lenient.strict, "strict is off unless set");
    // Threshold 53: 55 with an interval reaching down to 52 is speeding, but not in strict mode.
    assert!(lenient.is_speeding(55.0, [52.0, 58.0]));
    assert!(
        !lenient.is_speeding(53.0, [52.0, 54.0]),
        "equal is not over"
    );
    let text = GOOD.replace("tolerance_kmh = 3.0", "tolerance_kmh = 3.0\nstrict = true");
    let cfg = parse(&text, &repo_path()).expect("valid config");
    let strict = &cfg.cameras[0];
    assert!(strict.strict);
    assert!(!strict.is_speeding(55.0, [52.0, 58.0]));
    assert!(strict.is_speeding(55.0, [53.5, 56.5]));

    let text = GOOD.replace(
        "tolerance_kmh = 3.0",
        "tolerance_kmh = 3.0\nstrict = \"yes\"",
    );
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(err.contains("strict") && err.contains("line"), "{err}");
}

const LINES: &str = r#"
[cameras.lines]
first = [[300.0, 500.0], [1000.0, 500.0]]
second = [[420.0, 380.0], [860.0, 380.0]]
distance_m = 10.0
"#;

#[test]
fn speed_method_lines_is_parsed_and_checked() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.cameras[0].speed.method, SpeedMethod::Fit);

    let text = GOOD.replace(
        "tolerance_kmh = 3.0",
        "tolerance_kmh = 3.0\nmethod = \"lines\"",
    ) + LINES;
    let cfg = parse(&text, &repo_path()).expect("valid config");
    match &cfg.cameras[0].speed.method {
        SpeedMethod::Lines(l) => {
            assert_eq!(l.distance_m, 10.0);
            assert_eq!(l.first_px, [[300.0, 500.0], [1000.0, 500.0]]);
        }
        other => panic!("{other:?}"),
    }
    // The lines table alone does not switch the method.
    let cfg = parse(&(GOOD.to_string() + LINES), &repo_path()).expect("valid config");
    assert_eq!(cfg.cameras[0].speed.method, SpeedMethod::Fit);

    let bad = |text: String, key: &str, needle: &str| {
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.key == key && p.message.contains(needle) && p.line > 0),
            "{key}: {p:?}"
        );
    };
    let with = |method: &str, lines: &str| {
        GOOD.replace(
            "tolerance_kmh = 3.0",
            &format!("tolerance_kmh = 3.0\nmethod = {method:?}"),
        ) + lines
    };
    bad(with("radar", ""), "cameras[0].method", "allowed \"fit\"");
    bad(with("lines", ""), "cameras[0].method", "[cameras.lines]");
    bad(
        with(
            "lines",
            &LINES.replace("distance_m = 10.0", "distance_m = 0.0"),
        ),
        "cameras[0].lines",
        "distance",
    );
    bad(
        with(
            "lines",
            &LINES.replace(
                "[[420.0, 380.0], [860.0, 380.0]]",
                "[[420.0, 250.0], [860.0, 250.0]]",
            ),
        ),
        "cameras[0].lines.second",
        "outside the zone",
    );
    bad(
        with(
            "lines",
            &LINES.replace(
                "[[300.0, 500.0], [1000.0, 500.0]]",
                "[[300.0, 500.0], [1500.0, 500.0]]",
            ),
        ),
        "cameras[0].lines.first",
        "outside the 1280x720 image",
    );
}

#[test]
fn duplicate_calibration_points_are_rejected() {
    let text = GOOD
        .replace(
            "image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0], [380.0, 300.0]]",
            "image_points = [[100.0, 600.0], [1180.0, 600.0], [900.0, 300.0], [380.0, 300.0], [900.0, 300.0]]",
        )
        .replace(
            "world_points = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]]",
            "world_points = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0], [10.0, 40.0]]",
        );
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[0].calibration");
    assert_eq!(p[0].line, 21);
    assert!(
        p[0].message.contains("points 2 and 4 coincide"),
        "{}",
        p[0].message
    );
}

#[test]
fn calibration_point_outside_the_image_is_rejected() {
    let text = GOOD.replace(
        "[900.0, 300.0], [380.0, 300.0]]",
        "[900.0, 300.0], [380.0, 730.0]]",
    );
    let p = problems(&text);
    let p = p
        .iter()
        .find(|p| p.key == "cameras[0].calibration.image_points")
        .unwrap_or_else(|| panic!("no image_points problem in {p:?}"));
    assert!(
        p.message
            .contains("point 3 [380, 730] is outside the 1280x720 image"),
        "{}",
        p.message
    );
}

#[test]
fn probed_video_size_is_checked() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    let cam = &cfg.cameras[0];
    assert!(check_image_size(cam, 1280, 720).is_empty());
    let e = check_image_size(cam, 640, 480);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("zone.polygon") && e[0].contains("640x480"),
        "{}",
        e[0]
    );
    assert!(e[1].contains("calibration.image_points"), "{}", e[1]);
}

#[test]
fn geometry_warnings_of_the_good_config() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    let cam = &cfg.cameras[0];
    let rate = geometry::DetectionRate {
        hz: 1.0,
        source: "test".into(),
    };
    let w = geometry::geometry_warnings(cam, &rate);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("too short"), "{}", w[0]);
    let rate = geometry::DetectionRate {
        hz: 100.0,
        source: "test".into(),
    };
    assert!(geometry::geometry_warnings(cam, &rate).is_empty());
}

#[test]
fn reconnect_settings_are_parsed_and_checked() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.cameras[0].reconnect, ReconnectConfig::default());
    let text =
        format!("{GOOD}\n[cameras.reconnect]\ninitial_s = 0.5\nmax_s = 120\nstall_timeout_s = 4\n");
    let r = parse(&text, &repo_path()).expect("valid config").cameras[0].reconnect;
    assert_eq!(
        (
            r.initial.as_secs_f64(),
            r.max.as_secs_f64(),
            r.stall_timeout.as_secs_f64()
        ),
        (0.5, 120.0, 4.0)
    );
    let text =
        format!("{GOOD}\n[cameras.reconnect]\ninitial_s = 10\nmax_s = 5\nstall_timeout_s = 0.1\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "cameras[0].reconnect.max_s");
    assert!(p[0].message.contains("below initial_s"), "{}", p[0].message);
    assert_eq!(p[1].key, "cameras[0].reconnect.stall_timeout_s");
    assert!(
        p[1].message.contains("allowed 1 to 600"),
        "{}",
        p[1].message
    );
    let text = format!("{GOOD}\n[cameras.reconnect]\nmax_delay_s = 5\n");
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(
        err.contains("max_delay_s") && err.contains("max_s"),
        "{err}"
    );
}

#[test]
fn live_source_tables_are_parsed_and_checked() {
    let text = format!(
        "{GOOD}\n[cameras.rtsp]\ntransport = \"udp\"\ncredentials_file = \"cam1.cred\"\n\
         [cameras.v4l2]\nwidth = 1280\nheight = 720\nfps = 30\nformat = \"MJPG\"\n"
    );
    let live = parse(&text, &repo_path()).expect("valid config").cameras[0]
        .live
        .clone();
    assert_eq!(live.rtsp_transport, crate::source::RtspTransport::Udp);
    assert!(live.credentials_file.unwrap().ends_with("config/cam1.cred"));
    assert_eq!(
        (live.capture_width, live.capture_height, live.capture_fps),
        (Some(1280), Some(720), Some(30))
    );
    assert_eq!(
        live.capture_format,
        Some(crate::source::capture::CaptureFormat::Mjpeg)
    );
    let text = format!(
        "{GOOD}\n[cameras.rtsp]\ntransport = \"http\"\n[cameras.v4l2]\nfps = 0\nformat = \"h264\"\n"
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cameras[0].rtsp.transport",
            "cameras[0].v4l2.fps",
            "cameras[0].v4l2.format"
        ],
        "{p:?}"
    );
    assert!(p[0].message.contains("\"tcp\""), "{}", p[0].message);
    assert!(
        p[2].message.contains("mjpeg, yuyv, nv12"),
        "{}",
        p[2].message
    );
}

#[test]
fn decoder_names_are_checked() {
    let text = GOOD.replace(
        "tolerance_kmh = 3.0",
        "tolerance_kmh = 3.0\ndecoder = \"h264 v4l2m2m\"",
    );
    let p = problems(&text);
    assert_eq!(p[0].key, "cameras[0].decoder", "{p:?}");
    assert!(
        p[0].message.contains("ffmpeg -decoders"),
        "{}",
        p[0].message
    );
    let text = GOOD.replace(
        "tolerance_kmh = 3.0",
        "tolerance_kmh = 3.0\ndecoder = \"h264_v4l2m2m\"",
    );
    if cfg!(feature = "ffmpeg") {
        let cfg = parse(&text, &repo_path()).expect("valid with the feature");
        assert_eq!(cfg.cameras[0].live.decoder.as_deref(), Some("h264_v4l2m2m"));
    } else {
        let p = problems(&text);
        assert!(
            p[0].message.contains("--features ffmpeg"),
            "{}",
            p[0].message
        );
    }
}

/// GOOD with `lines` added to [detector] after score_threshold.
fn with_detector(lines: &str) -> String {
    GOOD.replace(
        "score_threshold = 0.4",
        &format!("score_threshold = 0.4\n{lines}"),
    )
}

#[test]
fn every_family_is_accepted_and_unknown_ones_are_named() {
    assert_eq!(
        parse(GOOD, &repo_path()).unwrap().detector.family,
        "nanodet"
    );
    for family in crate::detect::FAMILIES {
        let cfg = parse(
            &with_detector(&format!("family = \"{family}\"")),
            &repo_path(),
        )
        .unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(cfg.detector.family, family);
    }
    let p = problems(&with_detector("family = \"ssd\""));
    assert_eq!((p[0].key.as_str(), p[0].line), ("detector.family", 8));
    for want in [
        "\"ssd\"",
        "\"nanodet\"",
        "\"yolov8\"",
        "\"yolox\"",
        "\"end2end\"",
    ] {
        assert!(p[0].message.contains(want), "{}", p[0].message);
    }
}

#[test]
fn box_correction_is_auto_off_or_an_existing_file() {
    use crate::detect::BoxCorrectionSetting;
    assert_eq!(
        parse(GOOD, &repo_path()).unwrap().detector.box_correction,
        BoxCorrectionSetting::Auto
    );
    for (value, want) in [
        ("auto", BoxCorrectionSetting::Auto),
        ("off", BoxCorrectionSetting::Off),
    ] {
        let cfg = parse(
            &with_detector(&format!("box_correction = \"{value}\"")),
            &repo_path(),
        )
        .unwrap();
        assert_eq!(cfg.detector.box_correction, want);
    }
    // A path resolves against the config file's directory.
    let cfg = parse(
        &with_detector("box_correction = \"../models/README.md\""),
        &repo_path(),
    )
    .unwrap();
    let BoxCorrectionSetting::Path(p) = cfg.detector.box_correction else {
        panic!("not a path")
    };
    assert!(p.ends_with("config/../models/README.md"), "{}", p.display());
    // A missing file (or a typo of auto / off) is named with the key, line and allowed values.
    for bad in ["of", "../models/missing.contact.toml", ""] {
        let p = problems(&with_detector(&format!("box_correction = \"{bad}\"")));
        assert_eq!(
            (p[0].key.as_str(), p[0].line),
            ("detector.box_correction", 8),
            "{bad}"
        );
        for want in ["\"auto\"", "\"off\"", "contact.toml"] {
            assert!(p[0].message.contains(want), "{bad}: {}", p[0].message);
        }
    }
}

#[test]
fn class_names_are_parsed_and_checked() {
    let cfg = parse(
        &with_detector(
            "family = \"yolov8\"\nclass_names = [\"van\", \"lorry\"]\nclasses = [\"lorry\"]",
        ),
        &repo_path(),
    )
    .unwrap();
    assert_eq!(
        cfg.detector.class_names,
        Some(vec!["van".to_string(), "lorry".to_string()])
    );
    assert_eq!(cfg.detector.classes, ["lorry"]);
    assert_eq!(
        parse(GOOD, &repo_path()).unwrap().detector.class_names,
        None
    );

    let p = problems(&with_detector(
        "class_names = [\"van\", \"van\", \" \"]\nclasses = [\"car\"]",
    ));
    let msgs: Vec<String> = p
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert_eq!(p.len(), 3, "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("label 2 is empty")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.starts_with("detector.class_names") && m.contains("\"van\" is listed twice")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("detector.classes")
            && m.contains("\"car\"")
            && m.contains("van")),
        "{msgs:?}"
    );
    let p = problems(&with_detector("class_names = []"));
    assert!(p[0].message.contains("empty"), "{}", p[0].message);
}

#[test]
fn classes_are_checked_against_coco_only_for_nanodet() {
    // Other families may name their classes in the model file: checked at model load.
    let cfg = parse(
        &with_detector("family = \"yolox\"\nclasses = [\"forklift\"]"),
        &repo_path(),
    )
    .unwrap();
    assert_eq!(cfg.detector.classes, ["forklift"]);
    let p = problems(&with_detector("classes = [\"forklift\"]"));
    assert_eq!(p[0].key, "detector.classes");
    assert!(p[0].message.contains("\"forklift\""), "{}", p[0].message);
}

/// GOOD with `backend` set and a `[detector.onnxruntime]` table holding `keys`.
fn with_ort(backend: &str, keys: &str) -> String {
    GOOD.replace(
        "score_threshold = 0.4\n",
        &format!(
            "score_threshold = 0.4\nbackend = \"{backend}\"\n\n[detector.onnxruntime]\n{keys}\n"
        ),
    )
}

#[test]
fn onnxruntime_settings_parse_with_defaults_and_paths() {
    use crate::detect::onnxruntime::{OrtProvider, OrtSettings, TrtPrecision};
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.detector.onnxruntime, OrtSettings::default());
    let text = with_ort(
        "tract",
        "providers = [\"cuda\", \"cpu\"]\nprecision = \"int8\"\n\
         int8_calibration_table = \"../models/nanodet-g-416.onnx\"\ncache_dir = \"cache\"\n\
         intra_threads = 2\nwarmup_runs = 0\ndevice_id = 1",
    );
    let cfg = parse(&text, &repo_path()).expect("valid config");
    let o = &cfg.detector.onnxruntime;
    assert_eq!(o.providers, [OrtProvider::Cuda, OrtProvider::Cpu]);
    assert_eq!(o.precision, TrtPrecision::Int8);
    assert!(o
        .int8_calibration_table
        .as_ref()
        .is_some_and(|p| p.ends_with("config/../models/nanodet-g-416.onnx")));
    assert!(o
        .cache_dir
        .as_ref()
        .is_some_and(|p| p.ends_with("config/cache")));
    assert_eq!(o.library, None);
    assert_eq!(o.intra_threads, Some(2));
    assert_eq!(o.warmup_runs, 0);
    assert_eq!(o.device_id, 1);
}

#[test]
fn onnxruntime_backend_needs_its_feature() {
    let text = with_ort("onnxruntime", "providers = [\"cpu\"]");
    let result = parse(&text, &repo_path());
    if cfg!(feature = "onnxruntime") {
        assert_eq!(
            result.expect("valid config").detector.backend,
            "onnxruntime"
        );
    } else {
        let p = problems(&text);
        assert_eq!(p[0].key, "detector.backend");
        assert!(
            p[0].message.contains("--features onnxruntime"),
            "{}",
            p[0].message
        );
    }
    let p = problems(&with_ort("tensorflow", ""));
    assert_eq!(p[0].key, "detector.backend");
    assert!(p[0].message.contains("\"tract\"") && p[0].message.contains("\"onnxruntime\""));
}

#[test]
fn onnxruntime_settings_errors_name_key_and_allowed_values() {
    let text = with_ort(
        "tract",
        "providers = [\"tensorrt\", \"gpu\", \"cpu\", \"cpu\"]\nprecision = \"int4\"\n\
         int8_calibration_table = \"missing.flatbuffers\"\nlibrary = \"/nonexistent/libonnxruntime.so\"\n\
         intra_threads = 0\nwarmup_runs = 1000\ndevice_id = -1",
    );
    let p = problems(&text);
    let has = |key: &str, needle: &str| {
        assert!(
            p.iter()
                .any(|p| p.key == key && p.message.contains(needle) && p.line > 0),
            "no problem for {key} containing {needle:?}: {p:?}"
        )
    };
    has(
        "detector.onnxruntime.providers",
        "\"gpu\" is not a provider: allowed \"tensorrt\", \"cuda\", \"cpu\"",
    );
    has("detector.onnxruntime.providers", "listed twice");
    has(
        "detector.onnxruntime.precision",
        "allowed \"fp16\", \"int8\", \"fp32\"",
    );
    has("detector.onnxruntime.int8_calibration_table", "not found");
    has(
        "detector.onnxruntime.int8_calibration_table",
        "precision = \"int8\"",
    );
    has("detector.onnxruntime.library", "install");
    has("detector.onnxruntime.intra_threads", "allowed 1 to 256");
    has("detector.onnxruntime.warmup_runs", "allowed 0 to 100");
    has("detector.onnxruntime.device_id", "allowed 0 to 63");
    let p = problems(&with_ort("tract", "providers = []"));
    assert_eq!(p[0].key, "detector.onnxruntime.providers");
    assert!(p[0].message.contains("empty"));
    // Unknown keys are rejected by the parser with the line.
    let err = parse(&with_ort("tract", "provider = [\"cpu\"]"), &repo_path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("provider") && err.contains("line"), "{err}");
}

#[test]
fn metrics_table_is_optional_and_checked() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(
        cfg.metrics,
        crate::config::metrics::MetricsConfig::default()
    );
    assert_eq!(cfg.metrics.listen, None);
    assert_eq!(cfg.metrics.stats_interval.as_secs_f64(), 10.0);

    let text = format!("{GOOD}\n[metrics]\nlisten = \"0.0.0.0:9464\"\nstats_interval_s = 2.5\n");
    let m = parse(&text, &repo_path()).expect("valid config").metrics;
    assert_eq!(m.listen, Some("0.0.0.0:9464".parse().unwrap()));
    assert!(!m.is_loopback());
    assert_eq!(m.stats_interval.as_secs_f64(), 2.5);
    let text = format!("{GOOD}\n[metrics]\nlisten = \"[::1]:9464\"\n");
    let m = parse(&text, &repo_path()).expect("valid config").metrics;
    assert!(m.is_loopback());
    assert_eq!(m.stats_interval.as_secs_f64(), 10.0);

    let lines = GOOD.lines().count();
    let text = format!("{GOOD}\n[metrics]\nlisten = \"localhost:9464\"\nstats_interval_s = 0\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        (p[0].key.as_str(), p[0].line),
        ("metrics.listen", lines + 3)
    );
    assert!(
        p[0].message.contains("\"127.0.0.1:9464\"") && p[0].message.contains("remove the key"),
        "{}",
        p[0].message
    );
    assert_eq!(
        (p[1].key.as_str(), p[1].line),
        ("metrics.stats_interval_s", lines + 4)
    );
    assert!(
        p[1].message.contains("allowed 0.1 to 3600"),
        "{}",
        p[1].message
    );

    let text = format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    assert!(problems(&text)[0].message.contains("port 0"));
    let text = format!("{GOOD}\n[metrics]\nport = 9464\n");
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(err.contains("port") && err.contains("listen"), "{err}");
}

#[test]
fn home_assistant_discovery_is_off_by_default_and_configurable() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    let m = cfg.mqtt.expect("[mqtt]");
    assert!(!m.home_assistant_discovery);
    assert_eq!(m.home_assistant_prefix, "homeassistant");

    let text = GOOD.replace(
        "url = \"mqtt://127.0.0.1:1883\"",
        "url = \"mqtt://127.0.0.1:1883\"\nhome_assistant_discovery = true\nhome_assistant_prefix = \"ha/discovery\"",
    );
    let m = parse(&text, &repo_path()).expect("valid").mqtt.unwrap();
    assert!(m.home_assistant_discovery);
    assert_eq!(m.home_assistant_prefix, "ha/discovery");
}

#[test]
fn bad_home_assistant_prefix_names_key_line_and_what_is_allowed() {
    for bad in ["", "ha/+", "#", "/ha", "ha/", "a//b"] {
        let text = GOOD.replace(
            "url = \"mqtt://127.0.0.1:1883\"",
            &format!("url = \"mqtt://127.0.0.1:1883\"\nhome_assistant_prefix = {bad:?}"),
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
        assert_eq!(p[0].key, "mqtt.home_assistant_prefix");
        assert_eq!(p[0].line, 11, "{bad:?}");
        assert!(p[0].message.contains("not allowed"), "{}", p[0].message);
        assert!(p[0].message.contains("'+', '#'"), "{}", p[0].message);
    }
    let text = GOOD.replace(
        "url = \"mqtt://127.0.0.1:1883\"",
        "url = \"mqtt://127.0.0.1:1883\"\nhome_assistant_discovery = \"yes\"",
    );
    let err = parse(&text, &repo_path()).unwrap_err().to_string();
    assert!(err.contains("line 11"), "{err}");
}

#[test]
fn replay_block_sets_realtime_and_loop_for_files_only() {
    let with = |source: &str, block: &str| {
        GOOD.replace("file:///tmp/video.mp4", source)
            .replace("[cameras.zone]", &format!("{block}\n[cameras.zone]"))
    };
    let cfg = parse(
        &with(
            "file:///tmp/video.mp4",
            "[cameras.replay]\nrealtime = true\nloop = true\n",
        ),
        &repo_path(),
    )
    .expect("valid");
    let r = cfg.cameras[0].live.replay;
    assert!(r.realtime && r.looped, "{r:?}");
    let cfg = parse(
        &with("file:///tmp/video.mp4", "[cameras.replay]\nloop = true\n"),
        &repo_path(),
    )
    .expect("valid");
    assert!(!cfg.cameras[0].live.replay.realtime && cfg.cameras[0].live.replay.looped);
    assert!(!parse(GOOD, &repo_path()).expect("valid").cameras[0]
        .live
        .replay
        .is_active());
    let p = problems(&with("rtsp://cam/x", "[cameras.replay]\nrealtime = true\n"));
    assert!(
        p.iter()
            .any(|p| p.key == "cameras[0].replay" && p.message.contains("recorded files only")),
        "{p:?}"
    );
    let err = parse(
        &with("file:///tmp/video.mp4", "[cameras.replay]\nspeed = 2\n"),
        &repo_path(),
    )
    .err();
    assert!(err
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("speed"));
}

#[test]
fn storage_table_is_optional_and_checked() {
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.storage, crate::config::StorageConfig::default());
    let text = format!(
        "{GOOD}\n[storage]\nmax_age_days = 0\nmax_bytes = \"2GiB\"\nmin_free_bytes = 10000000\nprune_interval_s = 60\nretry_queue = 50\n"
    );
    let s = parse(&text, &repo_path()).expect("valid config").storage;
    assert_eq!(s.max_age, None);
    assert_eq!(s.max_bytes, 2 << 30);
    assert_eq!(s.min_free_bytes, 10_000_000);
    assert_eq!(s.prune_interval.as_secs(), 60);
    assert_eq!(s.retry_queue, 50);
    let text = format!(
        "{GOOD}\n[storage]\nmax_bytes = \"8 parsecs\"\nmin_free_bytes = -1\nretry_queue = 0\nmax_age_days = -2\n"
    );
    let p = problems(&text);
    let has = |key: &str, what: &str| {
        assert!(
            p.iter()
                .any(|p| p.key == key && p.message.contains(what) && p.line > 0),
            "{key}: {what} in {p:#?}"
        )
    };
    has("storage.max_bytes", "\"8GB\"");
    has("storage.min_free_bytes", "negative");
    has("storage.retry_queue", "allowed 1 to 100000");
    has("storage.max_age_days", "out of range");
    let p = problems(&format!("{GOOD}\n[storage]\nmax_bytes = 1000\n"));
    assert!(p[0].message.contains("too small"), "{p:#?}");
}

#[test]
fn a_v4l2_source_needs_a_build_with_the_v4l2_feature() {
    for device in ["/dev/video0", "v4l2:///dev/video2"] {
        let text = GOOD.replacen(
            "source = \"file:///tmp/video.mp4\"",
            &format!("source = {device:?}"),
            1,
        );
        assert_ne!(text, GOOD, "the fixture's source line moved");
        let result = parse(&text, &repo_path());
        if cfg!(feature = "v4l2") {
            assert!(result.is_ok(), "{result:?}");
        } else {
            let p = problems(&text);
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].key, "cameras[0].source");
            assert!(p[0].line > 0, "{}", p[0]);
            assert!(p[0].message.contains("--features v4l2"), "{}", p[0].message);
            assert!(p[0].message.contains(device), "{}", p[0].message);
        }
    }
}

#[test]
fn ground_contact_defaults_to_cuboid_and_names_the_allowed_models() {
    use crate::speed::GroundContact;
    let cfg = parse(GOOD, &repo_path()).expect("valid config");
    assert_eq!(cfg.cameras[0].speed.ground_contact, GroundContact::Cuboid);
    let flat = GOOD.replace(
        "image_height = 720\n",
        "image_height = 720\nground_contact = \"box_bottom\"\n",
    );
    let cfg = parse(&flat, &repo_path()).expect("valid config");
    assert_eq!(
        cfg.cameras[0].speed.ground_contact,
        GroundContact::BoxBottom
    );
    let p = problems(&GOOD.replace(
        "image_height = 720\n",
        "image_height = 720\nground_contact = \"flat\"\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "cameras[0].ground_contact");
    assert_eq!(p[0].line, 19);
    assert!(
        p[0].message.contains("\"cuboid\"") && p[0].message.contains("\"box_bottom\""),
        "{}",
        p[0].message
    );
}
