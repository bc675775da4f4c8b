//! Loads and validates speedcam.toml.
//!
//! Parsing rejects unknown keys and wrong types (the TOML parser's message names the line and
//! the allowed keys). Validation then checks ranges and geometry and reports *every* problem at
//! once, each with the key, its line and what is allowed, so an operator fixes the file in one go.
//! The result is a [`Config`] whose values are ready to use (paths resolved, homography fitted).
//! The checks live in `validate/`, one file per section of the file.

pub mod geometry;
pub mod metrics;
pub mod mqtt;
mod raw;
mod storage;
mod validate;

use crate::detect::DetectorConfig;
use crate::speed::{CalibrationReport, Homography, SpeedConfig, Zone};
use crate::track::TrackerConfig;
use metrics::MetricsConfig;
use mqtt::MqttConfig;
use raw::RawConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use validate::Validator;

// tests.rs names it through `use super::*`.
#[cfg(test)]
use crate::speed::SpeedMethod;

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
    #[error("cannot read config {path}: {cause} (pass an existing file with --config)")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error (in the message, not chained, so it is printed once).
        cause: std::io::Error,
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
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
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
    let mut v = Validator::new(text);
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
