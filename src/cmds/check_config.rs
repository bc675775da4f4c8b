//! `speedcamd check-config`: validates a config and prints what it derives (calibration error,
//! zone length, model), with warnings for geometry the detector cannot measure well.

use super::SYSTEM_CONFIG;
use crate::config::{self, CameraConfig, Config};
use crate::service::open_detector;
use crate::source::{probe_file, redact_uri, VideoInfo};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Validate a config file and print what it derives (calibration error, zone length, model).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file.
    #[arg(long, default_value = SYSTEM_CONFIG)]
    pub config: PathBuf,
    /// Detections per second of each vehicle assumed by the zone-length check (default: the
    /// frame rate of a file source, else 10).
    #[arg(long)]
    pub detection_hz: Option<f64>,
}

/// Warnings and errors found so far; an error makes the command fail.
#[derive(Default)]
struct Findings {
    warnings: usize,
    errors: usize,
}

impl Findings {
    /// Prints a warning with `indent` and counts it.
    fn warn(&mut self, indent: &str, w: impl std::fmt::Display) {
        self.warnings += 1;
        println!("{indent}WARNING: {w}");
    }

    /// Prints an error with `indent` and counts it.
    fn error(&mut self, indent: &str, e: impl std::fmt::Display) {
        self.errors += 1;
        println!("{indent}ERROR: {e}");
    }
}

/// Loads the config (and its detector), prints its settings camera by camera, and fails when a
/// camera's geometry does not fit its video.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(hz) = args.detection_hz {
        if !(hz.is_finite() && hz > 0.0) {
            anyhow::bail!("--detection-hz {hz} is not allowed: give the detections per second the detector reaches on this device, a number above 0, e.g. 10");
        }
    }
    let cfg = super::load(&args.config)?;
    print_services(&cfg)?;
    let mut found = Findings::default();
    print_storage(&cfg, &mut found);
    for cam in &cfg.cameras {
        print_camera(cam);
        check_camera_source(cam, args.detection_hz, &mut found);
    }
    if found.warnings > 0 {
        println!("{} warning(s)", found.warnings);
    }
    if found.errors > 0 {
        println!(
            "{} error(s): fix the config and run check-config again",
            found.errors
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The config's identity, its detector (loaded, so a bad model fails here) and MQTT.
fn print_services(cfg: &Config) -> anyhow::Result<()> {
    println!("config {}: OK", cfg.path.display());
    println!(
        "  device_id {}, data_dir {}",
        cfg.device_id,
        cfg.data_dir.display()
    );
    let det = open_detector(cfg)?;
    let model_id = det.lock(false).model_id().to_string();
    println!(
        "  detector: {} ({} backend, family {}), classes {:?}, score >= {} (tracker low pass >= {})",
        model_id, cfg.detector.backend, cfg.detector.family, cfg.detector.classes, cfg.tracker.high_score, cfg.tracker.low_score
    );
    let tls = config::mqtt_tls(cfg)?;
    match &cfg.mqtt {
        Some(m) => println!(
            "  mqtt: {} under {}/{}{}",
            redact_uri(&m.url),
            m.base_topic,
            m.device_id,
            crate::publish::tls::describe_security(m, tls.as_ref())
        ),
        None => println!("  mqtt: not configured (nothing is published)"),
    }
    Ok(())
}

/// Retention and size limit of the store, with a warning when the limit does not fit in memory.
fn print_storage(cfg: &Config, found: &mut Findings) {
    let st = &cfg.storage;
    println!(
        "  storage: keeps {} and at most {} in {}",
        st.max_age
            .map_or("events of any age".to_string(), |a| format!(
                "events for {:.0} days",
                a.as_secs_f64() / 86_400.0
            )),
        config::show_size(st.max_bytes),
        cfg.data_dir.display()
    );
    if let Some(w) = config::mem_total_bytes().and_then(|m| st.memory_warning(m)) {
        found.warn("  ", w);
    }
}

/// One camera's source, speed settings, calibration and zone.
fn print_camera(cam: &CameraConfig) {
    println!("  camera {}: source {}", cam.id, redact_uri(&cam.source));
    println!(
        "    speeding above {:.1} km/h (limit {:.1} + tolerance {:.1})",
        cam.threshold_kmh(),
        cam.speed_limit_kmh,
        cam.tolerance_kmh
    );
    let method = match &cam.speed.method {
        crate::speed::SpeedMethod::Fit => "fit (least squares over the zone)".to_string(),
        crate::speed::SpeedMethod::Lines(l) => {
            format!("lines ({:.2} m apart)", l.distance_m)
        }
    };
    println!(
        "    speed: method {method}, at least {} detections in the zone, at most {:.0} km/h{}",
        cam.speed.min_samples,
        cam.speed.max_speed_kmh,
        if cam.strict {
            "; strict: speeding only when the 95% interval is above the threshold"
        } else {
            ""
        }
    );
    let r = &cam.calibration_report;
    println!(
        "    calibration: {} points, RMS reprojection error {:.3} px / {:.3} m, fingerprint {}",
        cam.image_points.len(),
        r.rms_px,
        r.rms_m,
        cam.homography.fingerprint()
    );
    match cam.zone_length_m() {
        Some(l) => println!(
            "    zone: {} vertices, {:.1} m long on the ground",
            cam.zone_polygon.len(),
            l
        ),
        None => println!(
            "    zone: {} vertices (length unknown)",
            cam.zone_polygon.len()
        ),
    }
}

/// Probes a file source (its size must fit the calibration) and warns about the camera's
/// geometry at the detection rate it will get.
fn check_camera_source(cam: &CameraConfig, detection_hz: Option<f64>, found: &mut Findings) {
    let path = Path::new(&cam.source);
    let mut probed = None;
    if path.is_file() {
        match probe_file(path) {
            Ok(info) => {
                probed = Some(info.clone());
                println!(
                    "    video: {}x{}, {} frames, {:.1} s",
                    info.width, info.height, info.frame_count, info.duration_s
                );
                for e in config::check_image_size(cam, info.width, info.height) {
                    found.error("    ", e);
                }
            }
            Err(e) => found.warn("    ", format!("cannot read the source video: {e}")),
        }
    }
    for w in camera_geometry_warnings(cam, probed.as_ref(), detection_hz) {
        found.warn("    ", w);
    }
}

/// check-config's geometry warnings for one camera; `probed` is its source video, if readable.
fn camera_geometry_warnings(
    cam: &CameraConfig,
    probed: Option<&VideoInfo>,
    detection_hz: Option<f64>,
) -> Vec<String> {
    use config::geometry::{DetectionRate, DEFAULT_DETECTION_HZ};
    let rate = match (detection_hz, probed) {
        (Some(hz), _) => DetectionRate {
            hz,
            source: "from --detection-hz".into(),
        },
        (None, Some(info)) if info.nominal_fps.is_finite() && info.nominal_fps > 0.0 => {
            DetectionRate {
                hz: info.nominal_fps,
                source: format!(
                    "the frame rate of {}, if every frame is detected; pass --detection-hz for a slower detector",
                    cam.source
                ),
            }
        }
        (None, _) => DetectionRate {
            hz: DEFAULT_DETECTION_HZ,
            source: "the default of --detection-hz; pass the rate the detector reaches on this device".into(),
        },
    };
    let mut out = Vec::new();
    if cam.image_size.is_none() && probed.is_none() {
        out.push(format!(
            "camera {}: image size unknown (no image_width/image_height and the source cannot be probed): the zone and calibration points cannot be checked against the frame; set image_width and image_height",
            cam.id
        ));
    }
    out.extend(config::geometry::geometry_warnings(cam, &rate));
    out
}
