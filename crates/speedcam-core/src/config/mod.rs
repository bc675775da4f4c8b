//! Loads and validates speedcam.toml.
//!
//! Parsing rejects unknown keys and wrong types (the TOML parser's message names the line and
//! the allowed keys). Validation then checks ranges and geometry and reports *every* problem at
//! once, each with the key, its line and what is allowed, so an operator fixes the file in one go.
//! The result is a [`Config`] whose values are ready to use (paths resolved, homography fitted).

pub mod geometry;
pub mod metrics;
pub mod mqtt;
mod raw;
mod storage;

use crate::detect::onnxruntime::{OrtProvider, OrtSettings, TrtPrecision};
use crate::detect::{DetectorConfig, FAMILIES};
use crate::speed::{CalibrationReport, Homography, SpeedConfig, SpeedLines, SpeedMethod, Zone};
use crate::track::TrackerConfig;
use metrics::MetricsConfig;
use mqtt::MqttConfig;
use raw::RawConfig;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use storage::{
    mem_total_bytes, parse_byte_size, show_size, StorageConfig, STORE_RAM_SHARE, STORE_RSS_PER_BYTE,
};

/// The vehicle classes detected unless `detector.classes` says otherwise.
pub const DEFAULT_CLASSES: [&str; 4] = ["car", "motorcycle", "bus", "truck"];

/// Default `detector.box_bottom_sd_px`: the bundled NanoDet-g-416 draws the bottom edge of the
/// demo scene's vehicles 2.7 px below the tyres' contact on average (-4.8 to +6.8 px over 50
/// boxes, 1280x720); 3 px covers such an offset for an uncharacterised detector.
pub(crate) const DEFAULT_BOX_BOTTOM_SD_PX: f64 = 3.0;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Name of this device in topics and events.
    pub device_id: String,
    /// Where sled keeps events, tracks, thumbnails and the outbox (resolved against the config dir).
    pub data_dir: PathBuf,
    /// Log filter (tracing-subscriber EnvFilter syntax); RUST_LOG overrides it.
    pub log_level: Option<String>,
    /// Detector settings; `score_threshold` there is the low (candidate) threshold.
    pub detector: DetectorConfig,
    /// Tracker settings; `high_score` is the configured `detector.score_threshold`.
    pub tracker: TrackerConfig,
    /// MQTT settings, or None: nothing is published.
    pub mqtt: Option<MqttConfig>,
    /// `[metrics]`: the optional Prometheus endpoint and the `stats` topic period (defaults
    /// when the table is absent: no endpoint, stats every 10 s).
    pub metrics: MetricsConfig,
    /// `[storage]`: retention (age, bytes) and the full-disk guard (defaults when absent).
    pub storage: StorageConfig,
    /// The cameras, at least one.
    pub cameras: Vec<CameraConfig>,
}

/// One camera's validated settings.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Camera id, used in topics: letters, digits, `-` and `_`.
    pub id: String,
    /// Source URI or path (file paths resolved against the config dir).
    pub source: String,
    /// Speed limit, km/h.
    pub speed_limit_kmh: f64,
    /// Tolerance over the limit before a vehicle counts as speeding, km/h.
    pub tolerance_kmh: f64,
    /// Strict mode: speeding only when the whole 95% interval is above limit + tolerance, so
    /// that an uncertain measurement never raises an alert.
    pub strict: bool,
    /// Image size when configured (checked against the zone and calibration points).
    pub image_size: Option<(u32, u32)>,
    /// Calibration image points, px.
    pub image_points: Vec<[f64; 2]>,
    /// Calibration ground points, m.
    pub world_points: Vec<[f64; 2]>,
    /// Measurement zone polygon, px.
    pub zone_polygon: Vec<[f64; 2]>,
    /// The fitted image -> ground homography.
    pub homography: Homography,
    /// Residuals of that fit.
    pub calibration_report: CalibrationReport,
    /// The zone, ready for point tests.
    pub zone: Zone,
    /// Speed estimator settings.
    pub speed: SpeedConfig,
    /// Reconnect backoff and stall detection for the camera's source (`[cameras.reconnect]`).
    pub reconnect: ReconnectConfig,
    /// Adaptive frame skipping (`[cameras.schedule]`).
    pub schedule: crate::schedule::ScheduleConfig,
    /// RTSP and V4L2 settings (`[cameras.rtsp]`, `[cameras.v4l2]`); unused for files.
    pub live: crate::source::LiveSettings,
}

/// How a camera's source is retried (`[cameras.reconnect]`): exponential backoff from
/// `initial` doubling to `max`, each delay jittered to 50-100% so a fleet does not reconnect in
/// lockstep; a live source silent for `stall_timeout` is reopened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectConfig {
    /// First retry delay (`initial_s`, default 1 s).
    pub initial: std::time::Duration,
    /// Longest retry delay, the backoff cap (`max_s`, default 30 s).
    pub max: std::time::Duration,
    /// No frame for this long reopens a live source (`stall_timeout_s`, default 10 s).
    pub stall_timeout: std::time::Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial: std::time::Duration::from_secs(1),
            max: std::time::Duration::from_secs(30),
            stall_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl CameraConfig {
    /// The speed above which a vehicle is speeding, km/h.
    pub fn threshold_kmh(&self) -> f64 {
        self.speed_limit_kmh + self.tolerance_kmh
    }

    /// Whether a measurement of `speed_kmh` with 95% interval `ci95_kmh` is speeding: its value
    /// above the threshold, or in strict mode the interval's low end.
    pub fn is_speeding(&self, speed_kmh: f64, ci95_kmh: [f64; 2]) -> bool {
        let judged_kmh = if self.strict { ci95_kmh[0] } else { speed_kmh };
        judged_kmh > self.threshold_kmh()
    }

    /// Length of the zone on the ground, m (None when the zone reaches above the horizon).
    pub fn zone_length_m(&self) -> Option<f64> {
        self.zone.length_m(&self.homography)
    }
}

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key, e.g. `cameras[0].calibration.image_points`.
    pub key: String,
    /// 1-based line of the value, 0 when the key is missing.
    pub line: usize,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}: {}", self.line, self.key, self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source} (pass an existing file with --config)")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key or a wrong type; the message names the line.
    #[error("config {path}: {message}")]
    Parse {
        /// The path given.
        path: PathBuf,
        /// The parser's message with line, column and allowed keys.
        message: String,
    },
    /// Values out of range or inconsistent; every problem is listed.
    #[error("config {path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The path given.
        path: PathBuf,
        /// Each problem with key and line.
        problems: Vec<Problem>,
    },
}

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text; `path` locates relative paths and names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut v = Validator {
        text,
        problems: Vec::new(),
        box_bottom_sd_px: DEFAULT_BOX_BOTTOM_SD_PX,
    };
    let cfg = v.config(raw, path, base);
    match cfg {
        Some(cfg) if v.problems.is_empty() => Ok(cfg),
        _ => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: v.problems,
        }),
    }
}

/// Resolves a path from the config against the config file's directory.
pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Collects problems while building the validated config.
struct Validator<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// `detector.box_bottom_sd_px`, copied into every camera's speed settings.
    box_bottom_sd_px: f64,
}

impl Validator<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        if span.end == 0 {
            return 0;
        }
        let start = span.start.min(self.text.len());
        self.text[..start].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn problem(&mut self, key: impl Into<String>, span: Range<usize>, message: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    /// One of `allowed` (or `default` when absent); anything else is a problem at its span that
    /// names every allowed value.
    fn one_of(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        default: &str,
        allowed: &[&str],
    ) -> String {
        let v = value
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| default.into());
        if !allowed.contains(&v.as_str()) {
            let span = value.as_ref().map(|s| s.span()).unwrap_or(0..0);
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            self.problem(
                key,
                span,
                format!("{v:?} is not supported: allowed {}", list.join(", ")),
            );
        }
        v
    }

    /// A float in `lo..=hi` (or the default when absent).
    fn float(
        &mut self,
        key: &str,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> f64 {
        // NaN is outside every range; infinities are caught by the bounds.
        self.ranged(key, v, default, lo, hi)
    }

    /// An integer in `lo..=hi` (or the default when absent).
    fn int(&mut self, key: &str, v: &Option<Spanned<i64>>, default: i64, lo: i64, hi: i64) -> i64 {
        self.ranged(key, v, default, lo, hi)
    }

    /// A value in `lo..=hi` (or the default when absent); out of range is a problem at its span.
    fn ranged<T>(&mut self, key: &str, v: &Option<Spanned<T>>, default: T, lo: T, hi: T) -> T
    where
        T: PartialOrd + Copy + std::fmt::Display,
    {
        match v {
            None => default,
            Some(s) => {
                let x = *s.get_ref();
                if (lo..=hi).contains(&x) {
                    x
                } else {
                    self.problem(
                        key,
                        s.span(),
                        format!("{x} is out of range: allowed {lo} to {hi}"),
                    );
                    default
                }
            }
        }
    }

    fn config(&mut self, raw: RawConfig, path: &Path, base: &Path) -> Option<Config> {
        let device_id = raw.device_id.get_ref().clone();
        if !valid_topic_id(&device_id) {
            self.problem(
                "device_id",
                raw.device_id.span(),
                format!("{device_id:?} is not allowed: use 1-64 letters, digits, '-' or '_' (it becomes an MQTT topic level)"),
            );
        }
        let data_dir = resolve_path(base, raw.data_dir.get_ref());
        let log_level = raw.log_level.as_ref().map(|s| s.get_ref().clone());
        if let Some(l) = &raw.log_level {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                self.problem("log_level", l.span(), format!("{:?} is not a log filter: use error, warn, info, debug, trace or a RUST_LOG-style filter such as \"speedcam=debug\"", l.get_ref()));
            }
        }

        let d = &raw.detector;
        let family = self.one_of("detector.family", &d.family, "nanodet", &FAMILIES);
        let backend = self.backend(&d.backend);
        let onnxruntime = self.onnxruntime(d.onnxruntime.as_ref(), base);
        let high = self.float(
            "detector.score_threshold",
            &d.score_threshold,
            0.35,
            0.01,
            1.0,
        );
        let low = self.float(
            "detector.low_score_threshold",
            &d.low_score_threshold,
            0.1,
            0.01,
            1.0,
        );
        if low > high {
            let span = d
                .low_score_threshold
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(0..0);
            self.problem(
                "detector.low_score_threshold",
                span,
                format!(
                    "{low} is above detector.score_threshold ({high}): it must be lower or equal"
                ),
            );
        }
        let nms_iou = self.float("detector.nms_iou", &d.nms_iou, 0.6, 0.05, 0.95);
        self.box_bottom_sd_px = self.float(
            "detector.box_bottom_sd_px",
            &d.box_bottom_sd_px,
            DEFAULT_BOX_BOTTOM_SD_PX,
            0.0,
            50.0,
        );
        let class_names: Option<Vec<String>> = d.class_names.as_ref().map(|n| {
            let names = n.get_ref();
            if names.is_empty() {
                self.problem(
                    "detector.class_names",
                    n.span(),
                    "empty: list the model's labels in class id order, e.g. [\"car\", \"truck\"], or leave it out",
                );
            }
            for (i, name) in names.iter().enumerate() {
                if name.trim().is_empty() {
                    self.problem(
                        "detector.class_names",
                        n.span(),
                        format!("label {i} is empty: every class needs a name"),
                    );
                } else if names[..i].contains(name) {
                    self.problem(
                        "detector.class_names",
                        n.span(),
                        format!("{name:?} is listed twice: labels must be distinct"),
                    );
                }
            }
            names.clone()
        });
        let classes: Vec<String> = match &d.classes {
            None => DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect(),
            Some(c) => {
                for name in c.get_ref() {
                    // Labels known before the model is read: detector.class_names, or COCO-80
                    // for NanoDet (its head is fixed at COCO-80). Other families may carry their
                    // own names in the model file, so their classes are checked at model load.
                    if let Some(names) = &class_names {
                        if !names.contains(name) {
                            self.problem("detector.classes", c.span(), format!("unknown class {name:?}: allowed are the labels in detector.class_names: {}", names.join(", ")));
                        }
                    } else if family == "nanodet"
                        && !crate::detect::COCO_CLASSES.contains(&name.as_str())
                    {
                        self.problem("detector.classes", c.span(), format!("unknown class {name:?}: allowed are the model's COCO class names, e.g. \"car\", \"motorcycle\", \"bus\", \"truck\""));
                    }
                }
                if c.get_ref().is_empty() {
                    self.problem(
                        "detector.classes",
                        c.span(),
                        "empty: list at least one class, e.g. [\"car\", \"truck\"]",
                    );
                }
                c.get_ref().clone()
            }
        };
        let input_size = d
            .input_size
            .as_ref()
            .map(|_| self.int("detector.input_size", &d.input_size, 416, 32, 2048) as u32);
        if let (Some(s), Some(sp)) = (input_size, &d.input_size) {
            if s % 32 != 0 {
                self.problem(
                    "detector.input_size",
                    sp.span(),
                    format!("{s} is not a multiple of 32 (the model's largest stride)"),
                );
            }
        }
        let model = resolve_path(base, d.model.get_ref());
        if !model.is_file() {
            self.problem("detector.model", d.model.span(), format!("file {} not found: give a path to an ONNX model, absolute or relative to the config file", model.display()));
        }
        let detector = DetectorConfig {
            model,
            family,
            backend,
            score_threshold: low as f32,
            nms_iou: nms_iou as f32,
            classes,
            class_names,
            input_size,
            onnxruntime,
        };

        let t = &raw.tracker;
        let tracker = TrackerConfig {
            high_score: high as f32,
            low_score: low as f32,
            match_iou: self.float(
                "tracker.match_iou",
                &t.match_iou,
                TrackerConfig::default().match_iou as f64,
                0.01,
                0.99,
            ) as f32,
            min_hits: self.int(
                "tracker.min_hits",
                &t.min_hits,
                TrackerConfig::default().min_hits as i64,
                1,
                100,
            ) as u32,
            max_age_s: self.float(
                "tracker.max_age_s",
                &t.max_age_s,
                TrackerConfig::default().max_age_s,
                0.05,
                60.0,
            ),
            duplicate_overlap: self.float(
                "tracker.duplicate_overlap",
                &t.duplicate_overlap,
                TrackerConfig::default().duplicate_overlap as f64,
                0.0,
                1.0,
            ) as f32,
            tentative_buffer: self.float(
                "tracker.tentative_buffer",
                &t.tentative_buffer,
                TrackerConfig::default().tentative_buffer as f64,
                0.0,
                2.0,
            ) as f32,
            ..TrackerConfig::default()
        };

        let mqtt = raw.mqtt.as_ref().map(|m| self.mqtt(m, &device_id, base));
        let metrics = self.metrics(raw.metrics.as_ref());
        let storage = self.storage(raw.storage.as_ref());

        if raw.cameras.is_empty() {
            self.problem("cameras", 0..0, "no camera configured: add at least one [[cameras]] table with id, source, speed_limit_kmh, calibration and zone");
        }
        let mut cameras = Vec::new();
        for (i, c) in raw.cameras.iter().enumerate() {
            if let Some(cam) = self.camera(i, c, base) {
                if cameras.iter().any(|o: &CameraConfig| o.id == cam.id) {
                    self.problem(
                        format!("cameras[{i}].id"),
                        c.get_ref().id.span(),
                        format!("{:?} is used by another camera: ids must be unique", cam.id),
                    );
                }
                cameras.push(cam);
            }
        }
        Some(Config {
            path: path.to_path_buf(),
            device_id,
            data_dir,
            log_level,
            detector,
            tracker,
            mqtt,
            metrics,
            storage,
            cameras,
        })
    }

    /// `[metrics]`: `listen` (IP:port, no default: no endpoint) and `stats_interval_s`.
    fn metrics(&mut self, raw: Option<&raw::RawMetrics>) -> MetricsConfig {
        let d = MetricsConfig::default();
        let Some(r) = raw else { return d };
        let listen = r.listen.as_ref().and_then(|l| {
            let v = l.get_ref();
            match v.parse::<std::net::SocketAddr>() {
                Ok(a) if a.port() == 0 => {
                    self.problem("metrics.listen", l.span(), format!("{v:?} has port 0: give the fixed port Prometheus scrapes, e.g. \"127.0.0.1:9464\""));
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    self.problem("metrics.listen", l.span(), format!("{v:?} is not an address: give IP:port, e.g. \"127.0.0.1:9464\" (this host only) or \"0.0.0.0:9464\" (every interface; host names are not allowed), or remove the key to run without the endpoint"));
                    None
                }
            }
        });
        let interval_s = self.float(
            "metrics.stats_interval_s",
            &r.stats_interval_s,
            d.stats_interval.as_secs_f64(),
            0.1,
            3600.0,
        );
        MetricsConfig {
            listen,
            stats_interval: std::time::Duration::from_secs_f64(interval_s),
        }
    }

    /// `[storage]`: `max_age_days`, `max_bytes`, `min_free_bytes` (sizes: integer bytes or
    /// "8GB"-style strings), `prune_interval_s`, `retry_queue`.
    fn storage(&mut self, raw: Option<&raw::RawStorage>) -> StorageConfig {
        let d = StorageConfig::default();
        let Some(r) = raw else { return d };
        let max_age_days = self.float(
            "storage.max_age_days",
            &r.max_age_days,
            d.max_age.map_or(0.0, |a| a.as_secs_f64() / 86_400.0),
            0.0,
            36_500.0,
        );
        let size = |this: &mut Self,
                    key: &str,
                    v: &Option<Spanned<raw::RawByteSize>>,
                    default: u64,
                    lo: u64| {
            let Some(v) = v else { return default };
            let parsed = match v.get_ref() {
                raw::RawByteSize::Bytes(n) => u64::try_from(*n).map_err(|_| {
                    format!("{n} is negative: give a size in bytes or a string such as \"8GB\"")
                }),
                raw::RawByteSize::Text(t) => parse_byte_size(t),
            };
            match parsed {
                Ok(n) if n >= lo => n,
                Ok(n) => {
                    this.problem(
                        key,
                        v.span(),
                        format!(
                            "{n} bytes is too small: at least {lo} bytes ({} MiB)",
                            lo >> 20
                        ),
                    );
                    default
                }
                Err(e) => {
                    this.problem(key, v.span(), e);
                    default
                }
            }
        };
        let max_bytes = size(
            self,
            "storage.max_bytes",
            &r.max_bytes,
            d.max_bytes,
            4 << 20,
        );
        let min_free_bytes = size(
            self,
            "storage.min_free_bytes",
            &r.min_free_bytes,
            d.min_free_bytes,
            1 << 20,
        );
        let prune_interval_s = self.float(
            "storage.prune_interval_s",
            &r.prune_interval_s,
            d.prune_interval.as_secs_f64(),
            0.1,
            86_400.0,
        );
        let retry_queue = self.int(
            "storage.retry_queue",
            &r.retry_queue,
            d.retry_queue as i64,
            1,
            100_000,
        );
        StorageConfig {
            max_age: (max_age_days > 0.0)
                .then(|| std::time::Duration::from_secs_f64(max_age_days * 86_400.0)),
            max_bytes,
            min_free_bytes,
            prune_interval: std::time::Duration::from_secs_f64(prune_interval_s),
            retry_queue: retry_queue as usize,
        }
    }

    /// `detector.backend`: "tract" (default) or "onnxruntime" (with its cargo feature).
    fn backend(&mut self, value: &Option<Spanned<String>>) -> String {
        let Some(v) = value else {
            return "tract".into();
        };
        let name = v.get_ref().clone();
        match name.as_str() {
            "tract" => {}
            "onnxruntime" if cfg!(feature = "onnxruntime") => {}
            "onnxruntime" => self.problem(
                "detector.backend",
                v.span(),
                "\"onnxruntime\" is not in this build: rebuild with `cargo build --release --features onnxruntime`, or use \"tract\"",
            ),
            other => self.problem(
                "detector.backend",
                v.span(),
                format!("{other:?} is not a backend: allowed \"tract\" (pure-Rust CPU) or \"onnxruntime\" (TensorRT / CUDA / CPU; cargo feature `onnxruntime`)"),
            ),
        }
        name
    }

    /// `[detector.onnxruntime]`; absent keys take [`OrtSettings::default`].
    fn onnxruntime(&mut self, raw: Option<&raw::RawOnnxRuntime>, base: &Path) -> OrtSettings {
        let defaults = OrtSettings::default();
        let Some(r) = raw else {
            return defaults;
        };
        let mut providers = defaults.providers.clone();
        if let Some(list) = &r.providers {
            providers.clear();
            for p in list.get_ref() {
                match OrtProvider::parse(p.get_ref()) {
                    Some(parsed) if providers.contains(&parsed) => self.problem(
                        "detector.onnxruntime.providers",
                        p.span(),
                        format!("{:?} is listed twice: list each provider once, in the order to try", p.get_ref()),
                    ),
                    Some(parsed) => providers.push(parsed),
                    None => self.problem(
                        "detector.onnxruntime.providers",
                        p.span(),
                        format!("{:?} is not a provider: allowed \"tensorrt\", \"cuda\", \"cpu\" (tried in the order listed)", p.get_ref()),
                    ),
                }
            }
            if list.get_ref().is_empty() {
                self.problem(
                    "detector.onnxruntime.providers",
                    list.span(),
                    "empty: list the providers to try in order, e.g. [\"tensorrt\", \"cuda\", \"cpu\"]",
                );
            }
        }
        let precision = match &r.precision {
            None => defaults.precision,
            Some(p) => TrtPrecision::parse(p.get_ref()).unwrap_or_else(|| {
                self.problem(
                    "detector.onnxruntime.precision",
                    p.span(),
                    format!(
                        "{:?} is not a precision: allowed \"fp16\", \"int8\", \"fp32\"",
                        p.get_ref()
                    ),
                );
                defaults.precision
            }),
        };
        let int8_calibration_table = r.int8_calibration_table.as_ref().map(|t| {
            let path = resolve_path(base, t.get_ref());
            if !path.is_file() {
                self.problem(
                    "detector.onnxruntime.int8_calibration_table",
                    t.span(),
                    format!("file {} not found: give the calibration table made by models/make_int8.py (calibration.flatbuffers) or a TensorRT calibration cache", path.display()),
                );
            }
            if precision != TrtPrecision::Int8 {
                self.problem(
                    "detector.onnxruntime.int8_calibration_table",
                    t.span(),
                    format!("only used with precision = \"int8\" (precision is {:?}): set precision = \"int8\" or remove the table", precision.name()),
                );
            }
            path
        });
        let cache_dir = r
            .cache_dir
            .as_ref()
            .map(|c| resolve_path(base, c.get_ref()));
        let library = r.library.as_ref().map(|l| {
            let path = resolve_path(base, l.get_ref());
            if !path.is_file() {
                self.problem(
                    "detector.onnxruntime.library",
                    l.span(),
                    format!(
                        "file {} not found: {}",
                        path.display(),
                        crate::detect::onnxruntime::install_hint(std::env::consts::ARCH)
                    ),
                );
            }
            path
        });
        let intra_threads = r.intra_threads.as_ref().map(|_| {
            self.int(
                "detector.onnxruntime.intra_threads",
                &r.intra_threads,
                1,
                1,
                256,
            ) as usize
        });
        let warmup_runs = self.int(
            "detector.onnxruntime.warmup_runs",
            &r.warmup_runs,
            defaults.warmup_runs as i64,
            0,
            100,
        ) as u32;
        let device_id = self.int("detector.onnxruntime.device_id", &r.device_id, 0, 0, 63) as i32;
        OrtSettings {
            providers,
            precision,
            int8_calibration_table,
            cache_dir,
            library,
            intra_threads,
            warmup_runs,
            device_id,
        }
    }

    fn mqtt(&mut self, m: &raw::RawMqtt, device_id: &str, base: &Path) -> MqttConfig {
        let url = m.url.get_ref().clone();
        let base_topic = m
            .base_topic
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "speedcam".into());
        if base_topic.is_empty()
            || base_topic.contains(['+', '#'])
            || base_topic.starts_with('/')
            || base_topic.ends_with('/')
        {
            let span = m.base_topic.as_ref().map(|s| s.span()).unwrap_or(0..0);
            self.problem("mqtt.base_topic", span, format!("{base_topic:?} is not allowed: a non-empty topic prefix without '+', '#' or leading/trailing '/'"));
        }
        let home_assistant_prefix = m
            .home_assistant_prefix
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| mqtt::HOME_ASSISTANT_PREFIX.into());
        if mqtt::check_topic_prefix("mqtt.home_assistant_prefix", &home_assistant_prefix).is_err() {
            let span = m
                .home_assistant_prefix
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(0..0);
            self.problem("mqtt.home_assistant_prefix", span, format!("{home_assistant_prefix:?} is not allowed: a non-empty topic prefix (Home Assistant's discovery_prefix, default \"homeassistant\") without '+', '#', empty levels or leading/trailing '/'"));
        }
        let cfg = MqttConfig {
            url,
            base_topic,
            device_id: device_id.to_string(),
            client_id: m.client_id.as_ref().map(|s| s.get_ref().clone()),
            keepalive_s: self.int("mqtt.keepalive_s", &m.keepalive_s, 30, 5, 3600) as u64,
            publish_measurements: m.publish_measurements.unwrap_or(true),
            home_assistant_discovery: m.home_assistant_discovery.unwrap_or(false),
            home_assistant_prefix,
            tls: None,
            username: None,
            password: None,
        };
        if let Err(e) = cfg.host_port() {
            self.problem("mqtt.url", m.url.span(), e.to_string());
        }
        self.mqtt_security(m, base, cfg)
    }

    /// `[mqtt]` TLS and login keys: `ca_file`, `client_cert_file` + `client_key_file`,
    /// `username`, `password_file`. The password file is read here; the TLS files are named
    /// and located ([`mqtt::TlsFiles`]) for the daemon, which loads them with rustls at
    /// check-config, startup and reload, never first at a connect. `password_file` and
    /// `client_key_file` follow [`mqtt::resolve_credential_path`] (systemd `LoadCredential=`);
    /// `ca_file` and `client_cert_file` are relative to the config file.
    fn mqtt_security(&mut self, m: &raw::RawMqtt, base: &Path, mut cfg: MqttConfig) -> MqttConfig {
        use mqtt as tls;
        let creds_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        if let Some(p) = &m.password {
            self.problem("mqtt.password", p.span(), "inline passwords are not accepted (the config file is readable by others and shows up in backups and diffs): put the password alone in a file readable only by speedcamd (chmod 600, or systemd LoadCredential=) and set mqtt.password_file");
        }
        if let Some(u) = &m.username {
            if u.get_ref().is_empty() {
                self.problem(
                    "mqtt.username",
                    u.span(),
                    "empty: give the broker login's username or remove the key (anonymous login)",
                );
            } else {
                cfg.username = Some(u.get_ref().clone());
            }
        }
        if let Some(pf) = &m.password_file {
            if m.username.is_none() {
                self.problem(
                    "mqtt.password_file",
                    pf.span(),
                    "a password needs a username: set mqtt.username too",
                );
            }
            match tls::resolve_credential_path(pf.get_ref(), base, creds_dir.as_deref()) {
                Err(e) => self.problem("mqtt.password_file", pf.span(), e),
                Ok(path) => match tls::read_password_file(&path) {
                    Ok(pw) => cfg.password = Some(pw),
                    Err(e) => self.problem("mqtt.password_file", pf.span(), format!("{e} (a relative name is looked up in $CREDENTIALS_DIRECTORY when systemd sets it, else next to the config file)")),
                },
            }
        }
        let file = |v: &Spanned<String>| resolve_path(base, v.get_ref());
        let ca = m.ca_file.as_ref().map(|v| (file(v), v.span()));
        let cert = m.client_cert_file.as_ref().map(|v| (file(v), v.span()));
        let key = match &m.client_key_file {
            None => None,
            Some(v) => {
                match tls::resolve_credential_path(v.get_ref(), base, creds_dir.as_deref()) {
                    Ok(p) => Some((p, v.span())),
                    Err(e) => {
                        self.problem("mqtt.client_key_file", v.span(), e);
                        return cfg;
                    }
                }
            }
        };
        match (&cert, &key) {
            (Some((_, span)), None) => {
                self.problem("mqtt.client_cert_file", span.clone(), "set without mqtt.client_key_file: give the client certificate's private key too (both or neither)");
                return cfg;
            }
            (None, Some((_, span))) => {
                self.problem("mqtt.client_key_file", span.clone(), "set without mqtt.client_cert_file: give the client certificate too (both or neither)");
                return cfg;
            }
            _ => {}
        }
        if !cfg.url_wants_tls() {
            for (key, v) in [
                ("mqtt.ca_file", &m.ca_file),
                ("mqtt.client_cert_file", &m.client_cert_file),
                ("mqtt.client_key_file", &m.client_key_file),
            ] {
                if let Some(v) = v {
                    self.problem(key, v.span(), format!("only used with TLS, but mqtt.url {:?} is a plain, unencrypted connection: change the URL to mqtts://host:8883 (TLS) or remove the key", crate::source::redact_uri(&cfg.url)));
                }
            }
            return cfg;
        }
        let line = |f: &Option<(PathBuf, Range<usize>)>| {
            f.as_ref().map_or(0, |(_, span)| self.line(span.clone()))
        };
        cfg.tls = Some(mqtt::TlsFiles {
            lines: mqtt::TlsLines {
                ca_file: line(&ca),
                client_cert_file: line(&cert),
                client_key_file: line(&key),
                url: self.line(m.url.span()),
            },
            ca_file: ca.map(|(p, _)| p),
            client_cert: cert.zip(key).map(|((c, _), (k, _))| (c, k)),
            material_hash: 0,
        });
        cfg
    }

    fn camera(
        &mut self,
        i: usize,
        c: &Spanned<raw::RawCamera>,
        base: &Path,
    ) -> Option<CameraConfig> {
        let c = c.get_ref();
        let k = |s: &str| format!("cameras[{i}].{s}");
        let id = c.id.get_ref().clone();
        if !valid_topic_id(&id) {
            self.problem(k("id"), c.id.span(), format!("{id:?} is not allowed: use 1-64 letters, digits, '-' or '_' (it becomes an MQTT topic level)"));
        }
        let source = resolve_source(base, c.source.get_ref());
        if source.is_empty() {
            self.problem(
                k("source"),
                c.source.span(),
                "empty: give file:///path/video.mp4 or a path to an MP4 file",
            );
        }
        if !cfg!(feature = "v4l2") && crate::source::v4l2_device(&source).is_some() {
            self.problem(
                k("source"),
                c.source.span(),
                format!(
                    "{source:?} is a V4L2 camera, but {}",
                    crate::source::capture::NOT_BUILT
                ),
            );
        }
        let limit = *c.speed_limit_kmh.get_ref();
        if !(1.0..=400.0).contains(&limit) {
            self.problem(
                k("speed_limit_kmh"),
                c.speed_limit_kmh.span(),
                format!("{limit} is out of range: allowed 1 to 400"),
            );
        }
        let tolerance = self.float(&k("tolerance_kmh"), &c.tolerance_kmh, 0.0, 0.0, 100.0);
        let min_samples = self.int(
            &k("min_samples_in_zone"),
            &c.min_samples_in_zone,
            SpeedConfig::default().min_samples as i64,
            2,
            10_000,
        ) as u32;
        let max_speed = self.float(
            &k("max_speed_kmh"),
            &c.max_speed_kmh,
            SpeedConfig::default().max_speed_kmh,
            10.0,
            1000.0,
        );
        let reconnect = self.reconnect(i, c.reconnect.as_ref());
        let schedule = self.schedule(i, c.schedule.as_ref());
        let live = self.live(i, c, base);
        let image_size = match (&c.image_width, &c.image_height) {
            (None, None) => None,
            (Some(_), Some(_)) => Some((
                self.int(&k("image_width"), &c.image_width, 1, 16, 16384) as u32,
                self.int(&k("image_height"), &c.image_height, 1, 16, 16384) as u32,
            )),
            (Some(w), None) => {
                self.problem(
                    k("image_height"),
                    w.span(),
                    "missing: set image_width and image_height together",
                );
                None
            }
            (None, Some(h)) => {
                self.problem(
                    k("image_width"),
                    h.span(),
                    "missing: set image_width and image_height together",
                );
                None
            }
        };

        let ip = &c.calibration.image_points;
        let wp = &c.calibration.world_points;
        let mut ok = true;
        for (name, pts) in [
            ("calibration.image_points", ip),
            ("calibration.world_points", wp),
        ] {
            if pts.get_ref().iter().flatten().any(|x| !x.is_finite()) {
                self.problem(
                    k(name),
                    pts.span(),
                    "contains a non-finite number: give [x, y] pairs of plain numbers",
                );
                ok = false;
            }
        }
        let fitted = if ok {
            match Homography::fit(ip.get_ref(), wp.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(k("calibration"), ip.span(), format!("{e}"));
                    None
                }
            }
        } else {
            None
        };
        let zp = &c.zone.polygon;
        let zone = match Zone::new(zp.get_ref().clone()) {
            Ok(z) => Some(z),
            Err(e) => {
                self.problem(k("zone.polygon"), zp.span(), format!("{e}"));
                None
            }
        };
        if let Some((w, h)) = image_size {
            self.check_inside(&k("zone.polygon"), zp, w, h);
            self.check_inside(&k("calibration.image_points"), ip, w, h);
        }
        let method = self.speed_method(i, c, &zone, image_size);
        let (homography, calibration_report) = fitted?;
        let zone = zone?;
        if let Some(len) = zone.length_m(&homography) {
            if len < 2.0 {
                self.problem(k("zone.polygon"), zp.span(), format!("the zone is only {len:.1} m long on the ground: make it at least 2 m (10-30 m gives accurate speeds)"));
            }
        } else {
            self.problem(k("zone.polygon"), zp.span(), "part of the zone lies at or above the horizon of the calibration: keep it on the road surface");
        }
        Some(CameraConfig {
            id,
            source,
            speed_limit_kmh: limit,
            tolerance_kmh: tolerance,
            strict: c.strict.unwrap_or(false),
            image_size,
            image_points: ip.get_ref().clone(),
            world_points: wp.get_ref().clone(),
            zone_polygon: zp.get_ref().clone(),
            homography,
            calibration_report,
            zone,
            speed: SpeedConfig {
                min_samples,
                max_speed_kmh: max_speed,
                method: method?,
                box_bottom_sd_px: self.box_bottom_sd_px,
                ..SpeedConfig::default()
            },
            reconnect,
            schedule,
            live,
        })
    }

    /// `[cameras.rtsp]` and `[cameras.v4l2]`.
    fn live(&mut self, i: usize, c: &raw::RawCamera, base: &Path) -> crate::source::LiveSettings {
        use crate::source::RtspTransport;
        let k = |s: &str| format!("cameras[{i}].{s}");
        let mut live = crate::source::LiveSettings::default();
        if let Some(d) = &c.decoder {
            let name = d.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                self.problem(k("decoder"), d.span(), format!("{name:?} is not a decoder name: give a libavcodec decoder such as \"h264_v4l2m2m\" (list them with `ffmpeg -decoders`), or remove the key for the built-in choice"));
            } else if !cfg!(feature = "ffmpeg") {
                self.problem(k("decoder"), d.span(), format!("{name:?} needs a build with `--features ffmpeg` (libavcodec); this build decodes H.264 with its built-in decoder only: remove the key or rebuild"));
            } else {
                live.decoder = Some(name.clone());
            }
        }
        if let Some(r) = &c.rtsp {
            if let Some(t) = &r.transport {
                match t.get_ref().to_ascii_lowercase().as_str() {
                    "tcp" => live.rtsp_transport = RtspTransport::Tcp,
                    "udp" => live.rtsp_transport = RtspTransport::Udp,
                    other => self.problem(k("rtsp.transport"), t.span(), format!("{other:?} is not a transport: allowed \"tcp\" (interleaved, the default: lossless and NAT-friendly) or \"udp\" (clean LANs only)")),
                }
            }
            if let Some(f) = &r.credentials_file {
                let v = f.get_ref();
                if v.is_empty() {
                    self.problem(k("rtsp.credentials_file"), f.span(), "empty: give a file holding `username:password` (or username and password on two lines), e.g. $CREDENTIALS_DIRECTORY/cam1 with systemd LoadCredential=");
                } else if v.starts_with('$') {
                    live.credentials_file = Some(PathBuf::from(v));
                } else {
                    live.credentials_file = Some(resolve_path(base, v));
                }
            }
        }
        if let Some(v) = &c.v4l2 {
            let dim = |this: &mut Self, key: &str, x: &Option<Spanned<i64>>, hi: i64| {
                x.as_ref().map(|_| this.int(&k(key), x, 0, 1, hi) as u32)
            };
            live.capture_width = dim(self, "v4l2.width", &v.width, 16384);
            live.capture_height = dim(self, "v4l2.height", &v.height, 16384);
            live.capture_fps = dim(self, "v4l2.fps", &v.fps, 1000);
            if let Some(f) = &v.format {
                match f.get_ref().parse() {
                    Ok(x) => live.capture_format = Some(x),
                    Err(e) => self.problem(k("v4l2.format"), f.span(), e),
                }
            }
        }
        live.replay = self.replay(i, c);
        live
    }

    /// `[cameras.replay]`: real-time and looped playback of a file source (daemon only).
    fn replay(&mut self, i: usize, c: &raw::RawCamera) -> crate::source::replay::ReplaySettings {
        let Some(r) = &c.replay else {
            return Default::default();
        };
        if crate::source::is_live_uri(c.source.get_ref()) {
            self.problem(
                format!("cameras[{i}].replay"),
                r.span(),
                "applies to recorded files only, and this camera's source is a live camera: \
                 remove [cameras.replay], or point source at a video file",
            );
        }
        let r = r.get_ref();
        crate::source::replay::ReplaySettings {
            realtime: r.realtime.unwrap_or(false),
            looped: r.looped.unwrap_or(false),
        }
    }

    /// `[cameras.reconnect]`: backoff bounds and the stall timeout, in seconds.
    fn reconnect(&mut self, i: usize, r: Option<&raw::RawReconnect>) -> ReconnectConfig {
        let d = ReconnectConfig::default();
        let Some(r) = r else { return d };
        let k = |s: &str| format!("cameras[{i}].reconnect.{s}");
        let initial = self.float(
            &k("initial_s"),
            &r.initial_s,
            d.initial.as_secs_f64(),
            0.1,
            600.0,
        );
        let max = self.float(
            &k("max_s"),
            &r.max_s,
            d.max.as_secs_f64().max(initial),
            0.1,
            3600.0,
        );
        if max < initial {
            let span = r.max_s.as_ref().map(|s| s.span()).unwrap_or(0..0);
            self.problem(k("max_s"), span, format!("{max} is below initial_s = {initial}: the cap must be at least the first delay"));
        }
        let stall = self.float(
            &k("stall_timeout_s"),
            &r.stall_timeout_s,
            d.stall_timeout.as_secs_f64(),
            1.0,
            600.0,
        );
        let secs = std::time::Duration::from_secs_f64;
        ReconnectConfig {
            initial: secs(initial),
            max: secs(max.max(initial)),
            stall_timeout: secs(stall),
        }
    }

    /// `[cameras.schedule]`: detection rates and the motion check's thresholds.
    fn schedule(
        &mut self,
        i: usize,
        r: Option<&raw::RawSchedule>,
    ) -> crate::schedule::ScheduleConfig {
        use crate::schedule::{MotionConfig, ScheduleConfig};
        let d = ScheduleConfig::default();
        let Some(r) = r else { return d };
        let k = |s: &str| format!("cameras[{i}].schedule.{s}");
        let adaptive = r.adaptive.as_ref().map_or(d.adaptive, |a| *a.get_ref());
        let min_hz = self.float(
            &k("min_detect_hz"),
            &r.min_detect_hz,
            d.min_detect_hz,
            0.05,
            120.0,
        );
        let max_hz = r
            .max_detect_hz
            .as_ref()
            .map(|_| self.float(&k("max_detect_hz"), &r.max_detect_hz, 30.0, 0.05, 240.0));
        if let (Some(max), Some(span)) = (max_hz, &r.max_detect_hz) {
            if max < min_hz {
                self.problem(
                    k("max_detect_hz"),
                    span.span(),
                    format!("{max} is below min_detect_hz = {min_hz}: the busy rate cap must be at least the idle rate"),
                );
            }
        }
        let motion_hz = self.float(
            &k("motion_detect_hz"),
            &r.motion_detect_hz,
            d.motion_detect_hz.max(min_hz),
            0.05,
            240.0,
        );
        let approach_s = self.float(&k("approach_s"), &r.approach_s, d.approach_s, 0.0, 10.0);
        let dm = MotionConfig::default();
        let motion = MotionConfig {
            delta_levels: self.float(
                &k("motion_delta"),
                &r.motion_delta,
                dm.delta_levels as f64,
                1.0,
                255.0,
            ) as f32,
            min_area_px2: self.float(
                &k("motion_min_area_px"),
                &r.motion_min_area_px,
                dm.min_area_px2 as f64,
                1.0,
                1e7,
            ) as f32,
            background_s: self.float(
                &k("motion_background_s"),
                &r.motion_background_s,
                dm.background_s,
                0.1,
                600.0,
            ),
        };
        ScheduleConfig {
            adaptive,
            min_detect_hz: min_hz,
            max_detect_hz: max_hz,
            motion_detect_hz: motion_hz,
            approach_s,
            motion,
        }
    }

    /// `method` and `[cameras.lines]`: None (with problems recorded) when they do not fit together.
    fn speed_method(
        &mut self,
        i: usize,
        c: &raw::RawCamera,
        zone: &Option<Zone>,
        image_size: Option<(u32, u32)>,
    ) -> Option<SpeedMethod> {
        let k = |s: &str| format!("cameras[{i}].{s}");
        let method = c.method.as_ref().map(|m| m.get_ref().as_str());
        let span = c.method.as_ref().map(|m| m.span()).unwrap_or(0..0);
        let lines = match (method, &c.lines) {
            (None | Some("fit"), _) => return Some(SpeedMethod::Fit),
            (Some("lines"), Some(l)) => l,
            (Some("lines"), None) => {
                self.problem(k("method"), span, "\"lines\" needs a [cameras.lines] table: first = [[x, y], [x, y]] and second = [[x, y], [x, y]] (image px, two lines across the road) and distance_m (their distance on the road, m)");
                return None;
            }
            (Some(other), _) => {
                self.problem(
                    k("method"),
                    span,
                    format!("{other:?} is not a speed method: allowed \"fit\" (least squares over the zone, the default) or \"lines\" (time between two lines a known distance apart)"),
                );
                return None;
            }
        };
        let raw = lines.get_ref();
        let l = SpeedLines {
            first_px: *raw.first.get_ref(),
            second_px: *raw.second.get_ref(),
            distance_m: *raw.distance_m.get_ref(),
        };
        if let Err(e) = l.validate() {
            self.problem(k("lines"), lines.span(), e.to_string());
            return None;
        }
        let mut ok = true;
        for (name, line) in [("lines.first", &raw.first), ("lines.second", &raw.second)] {
            let [a, b] = *line.get_ref();
            let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
            if let Some((w, h)) = image_size {
                if [a, b]
                    .iter()
                    .any(|p| !(0.0..=w as f64).contains(&p[0]) || !(0.0..=h as f64).contains(&p[1]))
                {
                    self.problem(
                        k(name),
                        line.span(),
                        format!(
                            "an end point is outside the {w}x{h} image: allowed x 0..{w}, y 0..{h}"
                        ),
                    );
                    ok = false;
                }
            }
            if zone.as_ref().is_some_and(|z| !z.contains(mid)) {
                self.problem(k(name), line.span(), format!("the line's middle [{:.0}, {:.0}] is outside the zone: detections are taken inside the zone only, so the zone must contain both lines with a margin (enlarge cameras.zone.polygon or move the line)", mid[0], mid[1]));
                ok = false;
            }
        }
        ok.then_some(SpeedMethod::Lines(l))
    }

    /// Every point must lie inside a `w x h` image.
    fn check_inside(&mut self, key: &str, pts: &Spanned<Vec<[f64; 2]>>, w: u32, h: u32) {
        if let Some((i, p)) =
            pts.get_ref().iter().enumerate().find(|(_, p)| {
                !(0.0..=w as f64).contains(&p[0]) || !(0.0..=h as f64).contains(&p[1])
            })
        {
            self.problem(
                key,
                pts.span(),
                format!(
                    "point {i} [{}, {}] is outside the {w}x{h} image: allowed x 0..{w}, y 0..{h}",
                    p[0], p[1]
                ),
            );
        }
    }
}

/// Problems with a camera's geometry for an image of `w x h` px (known only once the source is
/// probed): zone vertices or calibration points outside the image.
pub fn check_image_size(cam: &CameraConfig, w: u32, h: u32) -> Vec<String> {
    let mut out = Vec::new();
    let inside =
        |p: &[f64; 2]| (0.0..=w as f64).contains(&p[0]) && (0.0..=h as f64).contains(&p[1]);
    for (key, pts) in [
        ("zone.polygon", &cam.zone_polygon),
        ("calibration.image_points", &cam.image_points),
    ] {
        if let Some((i, p)) = pts.iter().enumerate().find(|(_, p)| !inside(p)) {
            out.push(format!(
                "cameras.{key} of camera {}: point {i} [{}, {}] is outside the {w}x{h} video: allowed x 0..{w}, y 0..{h}",
                cam.id, p[0], p[1]
            ));
        }
    }
    out
}

/// True for ids usable as one MQTT topic level and a sled key prefix.
pub(crate) fn valid_topic_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `file://` URIs and plain paths become absolute-or-config-relative paths; other URIs stay as given.
fn resolve_source(base: &Path, s: &str) -> String {
    if let Some(p) = s.strip_prefix("file://") {
        resolve_path(base, p).display().to_string()
    } else if s.contains("://") {
        s.to_string()
    } else if s.is_empty() {
        String::new()
    } else {
        resolve_path(base, s).display().to_string()
    }
}

#[cfg(test)]
mod tests;
