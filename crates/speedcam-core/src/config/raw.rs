//! The config file exactly as written: serde structs that reject unknown keys and keep the
//! source span of every value that validation may complain about, so errors can name the line.

use serde::Deserialize;
use toml::Spanned;

/// Top level of speedcam.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub device_id: Spanned<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: Spanned<String>,
    #[serde(default)]
    pub log_level: Option<Spanned<String>>,
    pub detector: RawDetector,
    #[serde(default)]
    pub tracker: RawTracker,
    #[serde(default)]
    pub mqtt: Option<RawMqtt>,
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub storage: Option<RawStorage>,
    #[serde(default)]
    pub cameras: Vec<Spanned<RawCamera>>,
}

fn default_data_dir() -> Spanned<String> {
    Spanned::new(0..0, "./data".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    pub model: Spanned<String>,
    #[serde(default)]
    pub family: Option<Spanned<String>>,
    #[serde(default)]
    pub backend: Option<Spanned<String>>,
    #[serde(default)]
    pub score_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub low_score_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub nms_iou: Option<Spanned<f64>>,
    #[serde(default)]
    pub classes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub class_names: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub input_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub box_bottom_sd_px: Option<Spanned<f64>>,
    #[serde(default)]
    pub box_correction: Option<Spanned<String>>,
    #[serde(default)]
    pub onnxruntime: Option<RawOnnxRuntime>,
}

/// `[detector.onnxruntime]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOnnxRuntime {
    #[serde(default)]
    pub providers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub precision: Option<Spanned<String>>,
    #[serde(default)]
    pub int8_calibration_table: Option<Spanned<String>>,
    #[serde(default)]
    pub cache_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub library: Option<Spanned<String>>,
    #[serde(default)]
    pub intra_threads: Option<Spanned<i64>>,
    #[serde(default)]
    pub warmup_runs: Option<Spanned<i64>>,
    #[serde(default)]
    pub device_id: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracker {
    #[serde(default)]
    pub match_iou: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_hits: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_age_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub duplicate_overlap: Option<Spanned<f64>>,
    #[serde(default)]
    pub tentative_buffer: Option<Spanned<f64>>,
    #[serde(default)]
    pub class_merge_iou: Option<Spanned<f64>>,
    #[serde(default)]
    pub stationary_max_age_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMqtt {
    pub url: Spanned<String>,
    #[serde(default)]
    pub base_topic: Option<Spanned<String>>,
    #[serde(default)]
    pub client_id: Option<Spanned<String>>,
    #[serde(default)]
    pub keepalive_s: Option<Spanned<i64>>,
    #[serde(default)]
    pub publish_measurements: Option<bool>,
    #[serde(default)]
    pub home_assistant_discovery: Option<bool>,
    #[serde(default)]
    pub home_assistant_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub client_cert_file: Option<Spanned<String>>,
    #[serde(default)]
    pub client_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// Only so that an inline password gets a clear error (it is refused).
    #[serde(default)]
    pub password: Option<Spanned<String>>,
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub stats_interval_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCamera {
    pub id: Spanned<String>,
    pub source: Spanned<String>,
    pub speed_limit_kmh: Spanned<f64>,
    #[serde(default)]
    pub tolerance_kmh: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_samples_in_zone: Option<Spanned<i64>>,
    #[serde(default)]
    pub ground_contact: Option<Spanned<String>>,
    #[serde(default)]
    pub max_speed_kmh: Option<Spanned<f64>>,
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub image_width: Option<Spanned<i64>>,
    #[serde(default)]
    pub image_height: Option<Spanned<i64>>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    pub calibration: RawCalibration,
    pub zone: RawZone,
    #[serde(default)]
    pub lines: Option<Spanned<RawLines>>,
    #[serde(default)]
    pub reconnect: Option<RawReconnect>,
    #[serde(default)]
    pub schedule: Option<RawSchedule>,
    #[serde(default)]
    pub decoder: Option<Spanned<String>>,
    #[serde(default)]
    pub rtsp: Option<RawRtsp>,
    #[serde(default)]
    pub v4l2: Option<RawV4l2>,
    #[serde(default)]
    pub replay: Option<Spanned<RawReplay>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    #[serde(default)]
    pub adaptive: Option<Spanned<bool>>,
    #[serde(default)]
    pub min_detect_hz: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_detect_hz: Option<Spanned<f64>>,
    #[serde(default)]
    pub motion_detect_hz: Option<Spanned<f64>>,
    #[serde(default)]
    pub approach_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub motion_delta: Option<Spanned<f64>>,
    #[serde(default)]
    pub motion_min_area_px: Option<Spanned<f64>>,
    #[serde(default)]
    pub motion_background_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRtsp {
    #[serde(default)]
    pub transport: Option<Spanned<String>>,
    #[serde(default)]
    pub credentials_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawV4l2 {
    #[serde(default)]
    pub width: Option<Spanned<i64>>,
    #[serde(default)]
    pub height: Option<Spanned<i64>>,
    #[serde(default)]
    pub fps: Option<Spanned<i64>>,
    #[serde(default)]
    pub format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconnect {
    #[serde(default)]
    pub initial_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub stall_timeout_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLines {
    pub first: Spanned<[[f64; 2]; 2]>,
    pub second: Spanned<[[f64; 2]; 2]>,
    pub distance_m: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalibration {
    pub image_points: Spanned<Vec<[f64; 2]>>,
    pub world_points: Spanned<Vec<[f64; 2]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub polygon: Spanned<Vec<[f64; 2]>>,
}

/// `[storage]`: retention and the full-disk guard of the sled store in `data_dir`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    #[serde(default)]
    pub max_age_days: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_bytes: Option<Spanned<RawByteSize>>,
    #[serde(default)]
    pub min_free_bytes: Option<Spanned<RawByteSize>>,
    #[serde(default)]
    pub prune_interval_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub retry_queue: Option<Spanned<i64>>,
}

/// A byte size: an integer (bytes) or a string with a unit ("8GB", "512 MiB").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawByteSize {
    Bytes(i64),
    Text(String),
}

/// `[cameras.replay]`: how the daemon plays a file source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplay {
    #[serde(default)]
    pub realtime: Option<bool>,
    #[serde(default, rename = "loop")]
    pub looped: Option<bool>,
}
