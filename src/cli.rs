//! Command-line interface: parses arguments, sets up logging, and runs one command.
//! Errors are printed with their whole context chain, then the process exits with status 1.

use anyhow::Context;
use clap::{Parser, Subcommand};
use speedcam::cmds::replay::{self, ReplayOptions};
use speedcam::cmds::{bench, snapshot};
use speedcam::config::{self, Config};
use speedcam::event::{Event, EventType};
use speedcam::logging::LogHandle;
use speedcam::service::{self, RunSummary, Verdict};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Default config of an installed daemon.
const SYSTEM_CONFIG: &str = "/etc/speedcam/speedcam.toml";

#[derive(Parser)]
#[command(
    name = "speedcamd",
    version,
    about = "Vehicle speed camera daemon: video in, measured speeds and speeding alerts out over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: every configured camera until SIGTERM / Ctrl-C.
    Run {
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
    },
    /// Process a video file as fast as possible (or in real time with --realtime) and exit when
    /// it is done and the outbox is drained.
    Replay {
        /// The video (H.264 MP4; B-frames, H.265, MKV, TS with --features ffmpeg); overrides the camera's configured source.
        video: PathBuf,
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Camera whose calibration and zone apply (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// Print one JSON object per line per measurement / speeding event on stdout.
        #[arg(long)]
        json: bool,
        /// Seconds to wait at the end for the MQTT outbox to drain.
        #[arg(long, default_value_t = 30.0)]
        drain_timeout: f64,
        /// Play the video at its own pace, like a live camera: frames are released at their
        /// timestamps and the detector takes the newest (frames it cannot keep up with are dropped).
        #[arg(long)]
        realtime: bool,
    },
    /// Track and measure recorded detections (MOTChallenge `frame,id,x,y,w,h,conf,...`) with a
    /// camera's calibration, zone and speed settings; nothing is stored or published.
    #[command(group(clap::ArgGroup::new("frame_times").required(true).args(["fps", "timestamps"])))]
    Analyze {
        /// MOTChallenge detection file: frames from 1, boxes in px, the id column is ignored.
        #[arg(long)]
        mot: PathBuf,
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Camera whose calibration and zone apply (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// Frame times: nominal frames per second (frame N at (N-1)/RATE).
        #[arg(long)]
        fps: Option<f64>,
        /// Frame times: a file with one time in seconds per line, line N = frame N.
        #[arg(long)]
        timestamps: Option<PathBuf>,
        /// Print one JSON object per line per measurement / speeding event (as `replay --json`).
        #[arg(long)]
        json: bool,
    },
    /// Run the bundled demo: bundled model, bundled synthetic scene, bundled config; no setup.
    Demo {
        /// Config file (default: config/demo.toml of the repository).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON lines instead of the human-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file and print what it derives (calibration error, zone length, model).
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Detections per second of each vehicle assumed by the zone-length check (default: the
        /// frame rate of a file source, else 10).
        #[arg(long)]
        detection_hz: Option<f64>,
    },
    /// Check a camera's calibration on a frame: homography, RMS error, per-point residuals and
    /// outliers, and an overlay image with a 1 m / 5 m ground grid, the zone and the points.
    Calibrate {
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Camera whose calibration is checked (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// A frame of that camera (JPEG or PNG), e.g. from `speedcamd snapshot`.
        #[arg(long)]
        image: PathBuf,
        /// Where to write the overlay (PNG, or JPEG when the name ends in .jpg/.jpeg).
        #[arg(long)]
        out: PathBuf,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Grab one frame of a camera's source as JPEG (to measure calibration points on).
    Snapshot {
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Camera whose source is read (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// Output JPEG file.
        #[arg(long)]
        out: PathBuf,
        /// Time of the frame in the source, s from its start (default: the first frame).
        #[arg(long)]
        at: Option<f64>,
    },
    /// List stored measurements and speeding events.
    Events {
        /// Config file (its data_dir holds the store).
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Only this camera.
        #[arg(long)]
        camera: Option<String>,
        /// Only events at or after this RFC 3339 time, e.g. 2026-11-26T08:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// One JSON object per line, the same shape as `replay --json`.
        #[arg(long)]
        json: bool,
    },
    /// Time one camera's whole pipeline over a video as fast as possible: per-stage table
    /// (count, min / median / p99 ms), frames/s and real-time factor. The store is a temporary
    /// directory (data_dir is not touched); with [mqtt] events are published as <device_id>-bench.
    Bench {
        /// Config file.
        #[arg(long, default_value = SYSTEM_CONFIG)]
        config: PathBuf,
        /// Camera whose pipeline runs (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// The video (default: the camera's configured source).
        #[arg(long)]
        video: Option<PathBuf>,
        /// Stop after this many frames (default: the whole video; required for live sources).
        #[arg(long)]
        frames: Option<u64>,
        /// Print one JSON object with the same figures instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter handle: set once at start, used when a config is loaded (its `log_level`).
static LOG: std::sync::OnceLock<LogHandle> = std::sync::OnceLock::new();

fn init_logging(_cli: &Cli) {
    let _ = LOG.set(speedcam::logging::init());
}

/// Loads a config and applies its `log_level` (unless RUST_LOG is set).
fn load(path: &Path) -> anyhow::Result<Config> {
    let cfg = config::load(path)?;
    if let Some(log) = LOG.get() {
        if let Err(e) = log.apply_config(cfg.log_level.as_deref()) {
            tracing::warn!(err = %e, "log_level not applied");
        }
    }
    Ok(cfg)
}

fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run { config } => {
            let cfg = load(&config)?;
            let opts = service::daemon::DaemonOptions {
                log: LOG.get(),
                ..Default::default()
            };
            service::run(&cfg, opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            video,
            config,
            camera,
            json,
            drain_timeout,
            realtime,
        } => {
            let cfg = load(&config)?;
            replay::check_video(&video)?;
            let opts = ReplayOptions {
                camera,
                video: Some(video),
                drain_timeout: Duration::from_secs_f64(drain_timeout.max(0.0)),
                realtime,
            };
            let mut out = std::io::stdout().lock();
            let sum = replay::replay(&cfg, &opts, &mut |v: &Verdict| {
                if json {
                    print_json(&mut out, &v.event);
                } else {
                    print_human(&mut out, &v.event);
                }
            })?;
            eprint!("{}", summary_text(&sum));
            Ok(exit_for(&sum))
        }
        Command::Analyze {
            mot,
            config,
            camera,
            fps,
            timestamps,
            json,
        } => {
            let cfg = load(&config)?;
            let opts = service::analyze::AnalyzeOptions {
                times: service::analyze::frame_times(timestamps, fps)?,
                mot,
                camera,
            };
            let mut out = std::io::stdout().lock();
            let sum = service::analyze::analyze(&cfg, &opts, &mut |v: &Verdict| {
                if json {
                    print_json(&mut out, &v.event);
                } else {
                    print_human(&mut out, &v.event);
                }
            })?;
            eprintln!(
                "{} frame(s) with {} detection(s) over {:.1} s: {} measurement(s), {} speeding",
                sum.frames, sum.detections, sum.video_s, sum.measurements, sum.speeding
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { config, json } => demo(config, json),
        Command::CheckConfig {
            config,
            detection_hz,
        } => check_config(&config, detection_hz),
        Command::Calibrate {
            config,
            camera,
            image,
            out,
            json,
        } => calibrate(&config, camera.as_deref(), &image, &out, json),
        Command::Snapshot {
            config,
            camera,
            out,
            at,
        } => snapshot(&config, camera.as_deref(), &out, at),
        Command::Events {
            config,
            camera,
            since,
            json,
        } => {
            let cfg = load(&config)?;
            let since = since
                .map(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .with_context(|| format!("--since {s:?} is not an RFC 3339 time such as 2026-11-26T08:00:00Z"))
                })
                .transpose()?;
            let store = service::open_store(&cfg)?;
            let events = store.events(camera.as_deref(), since)?;
            let mut out = std::io::stdout().lock();
            for e in &events {
                if json {
                    print_json(&mut out, e);
                } else {
                    print_human(&mut out, e);
                }
            }
            if !json {
                let _ = writeln!(out, "{} event(s)", events.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            config,
            camera,
            video,
            frames,
            json,
        } => bench(&config, camera, video, frames, json),
    }
}

fn exit_for(sum: &RunSummary) -> ExitCode {
    if sum.store_errors > 0 {
        eprintln!("error: {} event(s) could not be stored", sum.store_errors);
        ExitCode::FAILURE
    } else if !sum.drained {
        eprintln!("warning: the MQTT outbox was not drained before the deadline; it is kept in the store and published on the next start");
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_json(out: &mut impl Write, e: &Event) {
    if let Ok(s) = serde_json::to_string(e) {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

fn print_human(out: &mut impl Write, e: &Event) {
    let tag = match e.kind {
        EventType::Measurement => "measured",
        EventType::Speeding => "SPEEDING",
    };
    let _ = writeln!(
        out,
        "{tag:<9} {cam} track {tid:>3} {class:<10} {speed:6.1} km/h {ci:<13} (limit {limit:.0}) t={t0:.2}-{t1:.2} s  {n} samples  {method}  {time}  {id}",
        cam = e.camera,
        tid = e.track_id,
        class = e.class,
        speed = e.speed_kmh,
        ci = e
            .speed_ci95_kmh
            .map(|[lo, hi]| format!("[{lo:.1}-{hi:.1}]"))
            .unwrap_or_default(),
        method = e.method,
        limit = e.limit_kmh,
        t0 = e.t_enter_s,
        t1 = e.t_exit_s,
        n = e.samples,
        time = e.time,
        id = e.event_id,
    );
    let _ = out.flush();
}

fn summary_text(sum: &RunSummary) -> String {
    format!(
        "frames {} (detected {}), {:.1} s of video in {:.1} s = {:.1} frames/s; {} measurement(s), {} speeding\n{}",
        sum.frames,
        sum.detected,
        sum.video_s,
        sum.wall_s,
        sum.fps(),
        sum.measurements,
        sum.speeding,
        sum.times.table()
    )
}

/// The repository's demo config: from the working directory, else from where the binary was built.
fn demo_config(config: Option<PathBuf>) -> PathBuf {
    if let Some(c) = config {
        return c;
    }
    let local = PathBuf::from("config/demo.toml");
    if local.is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")
    }
}

fn demo(config: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let path = demo_config(config);
    let cfg = load(&path)?;
    let cam = service::pick_camera(&cfg, None)?;
    let video = PathBuf::from(&cam.source);
    replay::check_video(&video)?;
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = writeln!(
            out,
            "speedcam demo: {} with {} (limit {:.0} km/h + {:.0} tolerance); store in {}",
            video.display(),
            cfg.detector.model.display(),
            cam.speed_limit_kmh,
            cam.tolerance_kmh,
            cfg.data_dir.display()
        );
    }
    let opts = ReplayOptions {
        camera: None,
        video: None,
        drain_timeout: Duration::from_secs(10),
        realtime: false,
    };
    let mut measured: Vec<Event> = Vec::new();
    let sum = replay::replay(&cfg, &opts, &mut |v: &Verdict| {
        if json {
            print_json(&mut out, &v.event);
        } else {
            print_human(&mut out, &v.event);
        }
        if v.event.kind == EventType::Measurement {
            measured.push(v.event.clone());
        }
    })?;
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = write!(out, "\n{}", summary_text(&sum));
        let truth = video.with_file_name("truth.json");
        if let Ok(t) = speedcam::truth::load_truth(&truth) {
            let _ = write!(out, "\n{}", speedcam::truth::compare_table(&t, &measured));
        }
    }
    Ok(exit_for(&sum))
}

fn check_config(path: &Path, detection_hz: Option<f64>) -> anyhow::Result<ExitCode> {
    if let Some(hz) = detection_hz {
        if !(hz.is_finite() && hz > 0.0) {
            anyhow::bail!("--detection-hz {hz} is not allowed: give the detections per second the detector reaches on this device, a number above 0, e.g. 10");
        }
    }
    let cfg = load(path)?;
    println!("config {}: OK", cfg.path.display());
    println!(
        "  device_id {}, data_dir {}",
        cfg.device_id,
        cfg.data_dir.display()
    );
    let det = service::open_detector(&cfg)?;
    let model_id = det.lock(false).model_id().to_string();
    println!(
        "  detector: {} ({} backend, family {}), classes {:?}, score >= {} (tracker low pass >= {})",
        model_id, cfg.detector.backend, cfg.detector.family, cfg.detector.classes, cfg.tracker.high_score, cfg.tracker.low_score
    );
    let tls = config::mqtt_tls(&cfg)?;
    match &cfg.mqtt {
        Some(m) => println!(
            "  mqtt: {} under {}/{}{}",
            speedcam::source::redact_uri(&m.url),
            m.base_topic,
            m.device_id,
            speedcam::publish::tls::describe_security(m, tls.as_ref())
        ),
        None => println!("  mqtt: not configured (nothing is published)"),
    }
    let mut warnings = 0;
    let mut errors = 0;
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
        warnings += 1;
        println!("  WARNING: {w}");
    }
    for cam in &cfg.cameras {
        println!(
            "  camera {}: source {}",
            cam.id,
            speedcam::source::redact_uri(&cam.source)
        );
        println!(
            "    speeding above {:.1} km/h (limit {:.1} + tolerance {:.1})",
            cam.threshold_kmh(),
            cam.speed_limit_kmh,
            cam.tolerance_kmh
        );
        let method = match &cam.speed.method {
            speedcam::speed::SpeedMethod::Fit => "fit (least squares over the zone)".to_string(),
            speedcam::speed::SpeedMethod::Lines(l) => {
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
        let path = Path::new(&cam.source);
        let mut probed = None;
        if path.is_file() {
            match speedcam::source::probe_file(path) {
                Ok(info) => {
                    probed = Some(info.clone());
                    println!(
                        "    video: {}x{}, {} frames, {:.1} s",
                        info.width, info.height, info.frame_count, info.duration_s
                    );
                    for e in config::check_image_size(cam, info.width, info.height) {
                        errors += 1;
                        println!("    ERROR: {e}");
                    }
                }
                Err(e) => {
                    warnings += 1;
                    println!("    WARNING: cannot read the source video: {e}");
                }
            }
        }
        for w in camera_geometry_warnings(cam, probed.as_ref(), detection_hz) {
            warnings += 1;
            println!("    WARNING: {w}");
        }
    }
    if warnings > 0 {
        println!("{warnings} warning(s)");
    }
    if errors > 0 {
        println!("{errors} error(s): fix the config and run check-config again");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// check-config's geometry warnings for one camera; `probed` is its source video, if readable.
fn camera_geometry_warnings(
    cam: &config::CameraConfig,
    probed: Option<&speedcam::source::VideoInfo>,
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

/// `speedcamd bench`: the per-stage timing report, as text or one JSON object on stdout.
fn bench(
    config: &Path,
    camera: Option<String>,
    video: Option<PathBuf>,
    max_frames: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let opts = bench::BenchOptions {
        camera,
        video,
        max_frames,
    };
    opts.validate()?;
    let cfg = load(config)?;
    let report = bench::bench(&cfg, &opts)?;
    let text = if json {
        format!("{}\n", report.to_json())
    } else {
        report.to_text()
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if report.summary.store_errors > 0 {
        eprintln!(
            "error: {} event(s) could not be stored in the temporary store",
            report.summary.store_errors
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `speedcamd snapshot`: one frame of the camera's source as JPEG.
fn snapshot(
    config: &Path,
    camera: Option<&str>,
    out: &Path,
    at_s: Option<f64>,
) -> anyhow::Result<ExitCode> {
    use speedcam::source::{DefaultOpener, Opener};
    if let Some(at) = at_s {
        if !(at.is_finite() && at >= 0.0) {
            anyhow::bail!(
                "--at {at} is not allowed: give seconds from the start of the source, 0 or more"
            );
        }
    }
    let cfg = load(config)?;
    let cam = service::pick_camera(&cfg, camera)?;
    let mut source = DefaultOpener::for_camera(cam)
        .open(&cam.source, cam.id.as_str().into())
        .with_context(|| format!("opening the source of camera {}", cam.id))?;
    let frame = snapshot::grab_frame(source.as_mut(), at_s)
        .with_context(|| format!("grabbing a frame of camera {}", cam.id))?;
    let jpeg = speedcam::event::thumbnail::encode_jpeg(&frame.to_rgb(), 92)?;
    std::fs::write(out, jpeg).with_context(|| {
        format!(
            "writing {}: pass --out a path in a writable directory",
            out.display()
        )
    })?;
    eprintln!(
        "wrote {} ({}x{}, frame {} at {:.3} s of {})",
        out.display(),
        frame.width,
        frame.height,
        frame.seq,
        frame.pts_s(),
        source.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// `speedcamd calibrate`: the calibration report and the overlay image.
fn calibrate(
    config: &Path,
    camera: Option<&str>,
    image_path: &Path,
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use speedcam::speed::calibrate::{check_calibration, overlay};
    let cfg = load(config)?;
    let cam = service::pick_camera(&cfg, camera)?;
    let mut img = image::open(image_path)
        .with_context(|| {
            format!(
                "cannot read image {}: give a JPEG or PNG frame of camera {}, e.g. from `speedcamd snapshot --config {} --camera {} --out frame.jpg`",
                image_path.display(),
                cam.id,
                config.display(),
                cam.id
            )
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let mut warnings = Vec::new();
    match cam.image_size {
        Some((cw, ch)) if (cw, ch) != (w, h) => warnings.push(format!(
            "{} is {w}x{h} but camera {} has image_width x image_height = {cw}x{ch}: the calibration points are pixels of a {cw}x{ch} frame, so the overlay is misplaced; use a frame of the same stream (speedcamd snapshot) or fix the config",
            image_path.display(),
            cam.id
        )),
        Some(_) => {}
        None => warnings.extend(config::check_image_size(cam, w, h)),
    }
    let (homography, check) = check_calibration(&cam.image_points, &cam.world_points)
        .with_context(|| format!("fitting the calibration of camera {}", cam.id))?;
    let outliers: Vec<bool> = check.points.iter().map(|p| p.outlier).collect();
    overlay::draw_overlay(
        &mut img,
        &overlay::OverlayInput {
            homography: &homography,
            image_points_px: &cam.image_points,
            world_points_m: &cam.world_points,
            zone_px: &cam.zone_polygon,
            outliers: &outliers,
        },
    );
    img.save(out).with_context(|| {
        format!(
            "writing the overlay {}: pass --out a .png (or .jpg) path in a writable directory",
            out.display()
        )
    })?;
    warnings.extend(config::geometry::zone_extrapolation_warning(cam));
    warnings.extend(config::geometry::calibration_warnings(cam));
    // Written in one go, ignoring a closed pipe (`| head`) like the other commands.
    let mut text = String::new();
    if json {
        let v = serde_json::json!({
            "camera": cam.id,
            "image": image_path.display().to_string(),
            "overlay": out.display().to_string(),
            "calibration": check,
            "zone_length_m": cam.zone_length_m(),
            "warnings": warnings,
        });
        text = format!("{v}\n");
    } else {
        text += &format!(
            "camera {}: {} calibration points, frame {} ({w}x{h})\n",
            cam.id,
            cam.image_points.len(),
            image_path.display()
        );
        text += &check.to_text();
        if let Some(l) = cam.zone_length_m() {
            text += &format!(
                "zone: {} vertices, {l:.1} m long on the ground\n",
                cam.zone_polygon.len()
            );
        }
        text += &format!(
            "overlay {}: ground grid every 1 m (grey), 5 m (yellow), axes x=0 and y=0 (orange); zone (cyan); surveyed points (green circles, red = outlier, numbered as above), ground points reprojected (magenta crosses), joined by white lines\n",
            out.display()
        );
        for w in &warnings {
            text += &format!("WARNING: {w}\n");
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}
