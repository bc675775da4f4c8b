//! One verdict per vehicle: a measurement for every vehicle that crossed the zone, and a
//! speeding event when it was over the limit. These records are what is stored and published.

pub mod origin;
pub mod thumbnail;

use serde::{Deserialize, Serialize};

/// Version of the JSON shape of [`Event`]; bumped on incompatible changes so consumers can tell.
/// 2: `speed_kmh` may be null (a vehicle that passed without a trustworthy speed, with a
/// `reason`); `stopped_s` and `class_scores` added.
pub const SCHEMA_VERSION: u32 = 2;

/// What kind of record an [`Event`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A vehicle's speed, within the limit (or every vehicle, for the measurements topic).
    Measurement,
    /// A vehicle over limit + tolerance.
    Speeding,
}

/// A stored and published record. Field names are the public JSON contract (see README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// "measurement" or "speeding".
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Time-ordered unique id (ULID); consumers dedupe on it.
    pub event_id: String,
    /// Device that measured it (`device_id` in the config).
    pub device_id: String,
    /// Camera id.
    pub camera: String,
    /// Tracker id of the vehicle, unique per camera and run.
    pub track_id: u64,
    /// Earlier tracker ids of the same vehicle: tracks lost inside the zone (hidden behind
    /// another vehicle, missed too long) that this verdict joins, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined_track_ids: Vec<u64>,
    /// Class name, e.g. "car": the class the vehicle had most often.
    pub class: String,
    /// Mean detector score per class over the vehicle's detections, e.g. `{"bus": 0.52,
    /// "truck": 0.31}` (a big vehicle's class often flickers). Empty in records written before it
    /// existed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub class_scores: std::collections::BTreeMap<String, f64>,
    /// Measured speed, km/h; null for a vehicle that passed without a trustworthy speed (then
    /// `reason` says why). Such a verdict is a measurement, never a speeding event.
    pub speed_kmh: Option<f64>,
    /// Why `speed_kmh` is null: `too_few_samples`, `scatter` or `implausible_speed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Time the vehicle stood still in the zone (a queue), s.
    #[serde(default)]
    pub stopped_s: f64,
    /// 95% confidence interval of `speed_kmh`, km/h, `[low, high]`: from the scatter of the
    /// detections about the fitted motion and the calibration's residuals. Absent only in records
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_ci95_kmh: Option<[f64; 2]>,
    /// Configured speed limit, km/h.
    pub limit_kmh: f64,
    /// Configured tolerance, km/h: speeding means speed_kmh > limit_kmh + tolerance_kmh (see
    /// `strict`).
    pub tolerance_kmh: f64,
    /// Strict mode: speeding means the interval's low end `speed_ci95_kmh[0]` > limit + tolerance.
    #[serde(default)]
    pub strict: bool,
    /// Frame time of the first detection inside the zone, s (for files: from the file start).
    pub t_enter_s: f64,
    /// Frame time of the last detection inside the zone, s.
    pub t_exit_s: f64,
    /// Wall-clock time of the zone exit, RFC 3339.
    pub time: String,
    /// Detections the speed fit used.
    pub samples: u32,
    /// Ground distance covered between first and last sample, m.
    pub distance_m: f64,
    /// How the speed was computed: "fit" (robust fit of ground position against time),
    /// "crossings" (zone length over the time between the zone-edge crossings: a vehicle that
    /// stopped in the zone), "lines", or "none" (no speed).
    pub method: String,
    /// Model that produced the detections.
    pub model: String,
    /// Calibration fingerprint (changes whenever the calibration points change).
    pub calibration: String,
    /// For a speeding event: the id of the measurement it was derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_id: Option<String>,
    /// MQTT topic of the JPEG thumbnail, for speeding events with a thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_topic: Option<String>,
    /// JSON schema version ([`SCHEMA_VERSION`]).
    pub schema: u32,
}

/// A plausible speeding record for unit tests (70 km/h against 50 + 3): callers override the
/// fields they test with struct update syntax.
#[doc(hidden)]
pub fn test_event(event_id: String, camera: &str, track_id: u64) -> Event {
    Event {
        kind: EventType::Speeding,
        event_id,
        device_id: "dev1".into(),
        camera: camera.into(),
        track_id,
        joined_track_ids: Vec::new(),
        class: "car".into(),
        class_scores: [("car".to_string(), 0.8)].into(),
        speed_kmh: Some(70.0),
        reason: None,
        stopped_s: 0.0,
        speed_ci95_kmh: Some([68.0, 72.0]),
        limit_kmh: 50.0,
        tolerance_kmh: 3.0,
        strict: false,
        t_enter_s: 1.0,
        t_exit_s: 2.5,
        time: "2026-01-01T00:00:00Z".into(),
        samples: 12,
        distance_m: 20.0,
        method: "fit".into(),
        model: "nanodet".into(),
        calibration: "abc".into(),
        measurement_id: None,
        thumbnail_topic: None,
        schema: SCHEMA_VERSION,
    }
}
