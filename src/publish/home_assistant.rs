//! Home Assistant MQTT discovery (`[mqtt] home_assistant_discovery`): each camera's last speed
//! and speeding count appear as sensors of one Home Assistant device per speedcam device.
//!
//! Every camera gets a retained summary at `<base>/<device>/<camera>/summary` (see
//! [`summary_payload`]) and, per sensor, a retained discovery config at
//! `<prefix>/sensor/<node_id>/<camera>_<sensor>/config` whose `state_topic` is that summary.
//! The sensors are available while the retained `status` topic says `online`. The publisher
//! re-sends all of it after every (re)connect, so a broker that lost its retained messages is
//! repopulated.

use super::{check_topic_prefix, PublishError, Topics};
use crate::store::CameraTally;
use serde::Serialize;
use serde_json::json;

/// Default discovery prefix (Home Assistant's own default).
pub const DEFAULT_PREFIX: &str = "homeassistant";

/// Version of the summary JSON shape; bumped on incompatible changes.
pub(crate) const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The sensors every camera gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensor {
    /// Speed of the latest measured vehicle, km/h.
    LastSpeed,
    /// Speeding events stored for the camera (a running total).
    SpeedingCount,
}

impl Sensor {
    /// Every sensor, in the order their configs are published.
    pub const ALL: [Sensor; 2] = [Sensor::LastSpeed, Sensor::SpeedingCount];

    /// Suffix of its object id and unique id: `last_speed`, `speeding_count`.
    pub fn key(self) -> &'static str {
        match self {
            Sensor::LastSpeed => "last_speed",
            Sensor::SpeedingCount => "speeding_count",
        }
    }
}

/// Builds the discovery configs of one speedcam device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    prefix: String,
    device_id: String,
    node_id: String,
    topics: Topics,
}

impl Discovery {
    /// Discovery under `prefix` (checked like `mqtt.home_assistant_prefix`) for `device_id`,
    /// whose state and availability topics `topics` names.
    pub fn new(prefix: &str, device_id: &str, topics: Topics) -> Result<Discovery, PublishError> {
        check_topic_prefix("mqtt.home_assistant_prefix", prefix)?;
        Ok(Discovery {
            prefix: prefix.to_string(),
            device_id: device_id.to_string(),
            node_id: sanitize_id(device_id),
            topics,
        })
    }

    /// The `<node_id>` topic level: the device id reduced to `[a-zA-Z0-9_-]`.
    #[cfg(test)]
    fn node_id(&self) -> &str {
        &self.node_id
    }

    /// `<camera>_<sensor>`, reduced to `[a-zA-Z0-9_-]`.
    pub(crate) fn object_id(&self, camera: &str, sensor: Sensor) -> String {
        format!("{}_{}", sanitize_id(camera), sensor.key())
    }

    /// `speedcam_<device>_<camera>_<sensor>`: stable across restarts and versions, so Home
    /// Assistant keeps the entity (and its history and customisation).
    pub fn unique_id(&self, camera: &str, sensor: Sensor) -> String {
        format!(
            "speedcam_{}_{}",
            self.node_id,
            self.object_id(camera, sensor)
        )
    }

    /// `<prefix>/sensor/<node_id>/<object_id>/config`.
    pub fn config_topic(&self, camera: &str, sensor: Sensor) -> String {
        format!(
            "{}/sensor/{}/{}/config",
            self.prefix,
            self.node_id,
            self.object_id(camera, sensor)
        )
    }

    /// The discovery config of one sensor (Home Assistant's MQTT sensor schema, full key names).
    pub fn config(&self, camera: &str, sensor: Sensor) -> serde_json::Value {
        let version = env!("CARGO_PKG_VERSION");
        let summary = self.topics.summary(camera);
        let mut cfg = json!({
            "unique_id": self.unique_id(camera, sensor),
            "state_topic": summary,
            "availability_topic": self.topics.status(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "device": {
                "identifiers": [format!("speedcam_{}", self.node_id)],
                "name": format!("speedcam {}", self.device_id),
                "manufacturer": "speedcam",
                "model": "speedcamd",
                "sw_version": version,
            },
            "origin": {
                "name": "speedcamd",
                "sw_version": version,
            },
        });
        let specific = match sensor {
            Sensor::LastSpeed => json!({
                "name": format!("{camera} last speed"),
                "value_template": "{{ value_json.last_speed_kmh }}",
                "unit_of_measurement": "km/h",
                "device_class": "speed",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "json_attributes_topic": summary,
            }),
            Sensor::SpeedingCount => json!({
                "name": format!("{camera} speeding count"),
                "value_template": "{{ value_json.speeding_count }}",
                "state_class": "total_increasing",
                "icon": "mdi:speedometer",
            }),
        };
        if let (Some(cfg), serde_json::Value::Object(more)) = (cfg.as_object_mut(), specific) {
            cfg.extend(more);
        }
        cfg
    }

    /// `(topic, payload)` of every sensor config of `camera`, to publish retained at QoS 1.
    pub fn messages(&self, camera: &str) -> Result<Vec<(String, Vec<u8>)>, PublishError> {
        Sensor::ALL
            .iter()
            .map(|&s| {
                let payload =
                    serde_json::to_vec(&self.config(camera, s)).map_err(PublishError::Encode)?;
                Ok((self.config_topic(camera, s), payload))
            })
            .collect()
    }
}

/// The retained `<camera>/summary` JSON: the latest vehicle (`null`s before the first) and the
/// running counts of stored verdicts.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    camera: &'a str,
    last_speed_kmh: Option<f64>,
    last_event_id: Option<&'a str>,
    last_at: Option<&'a str>,
    speeding_count: u64,
    measurement_count: u64,
    /// Of `measurement_count`, vehicles that passed without a trustworthy speed.
    without_speed_count: u64,
    schema: u32,
}

/// Encodes `camera`'s summary, e.g. `{"camera":"north","last_speed_kmh":71.2,
/// "last_event_id":"01J...","last_at":"2026-11-27T12:00:00Z","speeding_count":4,
/// "measurement_count":120,"schema":1}`. `last_event_id` is the last vehicle's speeding event
/// when it was speeding, else its measurement.
pub fn summary_payload(camera: &str, tally: &CameraTally) -> Result<Vec<u8>, PublishError> {
    let last = tally.last.as_ref();
    let summary = Summary {
        camera,
        last_speed_kmh: last.map(|l| l.speed_kmh),
        last_event_id: last.map(|l| l.event_id.as_str()),
        last_at: last.map(|l| l.time.as_str()),
        speeding_count: tally.speeding,
        measurement_count: tally.measurements,
        without_speed_count: tally.without_speed,
        schema: SUMMARY_SCHEMA_VERSION,
    };
    serde_json::to_vec(&summary).map_err(PublishError::Encode)
}

/// Reduces `id` to Home Assistant's id characters `[a-zA-Z0-9_-]`. A valid id is kept as is;
/// otherwise every other character becomes `_` and a hash of the original is appended, so two
/// ids that differ only in such characters still get different results (stable across runs).
pub(crate) fn sanitize_id(id: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        return id.to_string();
    }
    let mut out: String = id.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    out.push_str(&format!("_{:08x}", fnv1a32(id.as_bytes())));
    out
}

/// 32-bit FNV-1a: a fixed, tiny hash (std's hashers may change between Rust versions).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LastVehicle;
    use serde_json::Value;

    fn discovery(device: &str) -> Discovery {
        let topics = Topics::new("speedcam", device).unwrap();
        Discovery::new(DEFAULT_PREFIX, device, topics).unwrap()
    }

    #[test]
    fn every_sensor_config_is_json_with_the_required_fields() {
        let d = discovery("pole-1");
        let msgs = d.messages("north").unwrap();
        let topics: Vec<_> = msgs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/pole-1/north_last_speed/config",
                "homeassistant/sensor/pole-1/north_speeding_count/config"
            ]
        );
        for ((_, payload), sensor) in msgs.iter().zip(Sensor::ALL) {
            let v: Value = serde_json::from_slice(payload).unwrap();
            for key in [
                "name",
                "unique_id",
                "state_topic",
                "value_template",
                "state_class",
                "availability_topic",
                "payload_available",
                "payload_not_available",
                "device",
                "origin",
            ] {
                assert!(v.get(key).is_some(), "{sensor:?} lacks {key}: {v}");
            }
            assert_eq!(v["state_topic"], "speedcam/pole-1/north/summary");
            assert_eq!(v["availability_topic"], "speedcam/pole-1/status");
            assert_eq!(v["payload_available"], "online");
            assert_eq!(v["payload_not_available"], "offline");
            let dev = &v["device"];
            assert_eq!(dev["identifiers"], json!(["speedcam_pole-1"]));
            assert_eq!(dev["manufacturer"], "speedcam");
            assert_eq!(dev["sw_version"], env!("CARGO_PKG_VERSION"));
            assert!(dev["name"].as_str().unwrap().contains("pole-1"));
            assert!(dev["model"].is_string());
        }
        let speed: Value = serde_json::from_slice(&msgs[0].1).unwrap();
        assert_eq!(speed["unique_id"], "speedcam_pole-1_north_last_speed");
        assert_eq!(speed["unit_of_measurement"], "km/h");
        assert_eq!(speed["device_class"], "speed");
        assert_eq!(speed["state_class"], "measurement");
        assert_eq!(speed["value_template"], "{{ value_json.last_speed_kmh }}");
        let count: Value = serde_json::from_slice(&msgs[1].1).unwrap();
        assert_eq!(count["unique_id"], "speedcam_pole-1_north_speeding_count");
        assert_eq!(count["state_class"], "total_increasing");
        assert_eq!(count["value_template"], "{{ value_json.speeding_count }}");
        assert!(count.get("device_class").is_none());
    }

    #[test]
    fn unique_ids_are_stable_and_distinct() {
        let a = discovery("dev1");
        assert_eq!(
            a.unique_id("cam1", Sensor::LastSpeed),
            discovery("dev1").unique_id("cam1", Sensor::LastSpeed)
        );
        let ids = [
            a.unique_id("cam1", Sensor::LastSpeed),
            a.unique_id("cam1", Sensor::SpeedingCount),
            a.unique_id("cam2", Sensor::LastSpeed),
            discovery("dev2").unique_id("cam1", Sensor::LastSpeed),
        ];
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn ids_are_sanitised_to_home_assistant_characters() {
        assert_eq!(sanitize_id("Pole_1-a"), "Pole_1-a");
        let odd = sanitize_id("pole 1.a");
        assert!(odd.starts_with("pole_1_a_"), "{odd}");
        assert_ne!(odd, sanitize_id("pole_1_a"));
        assert_ne!(odd, sanitize_id("pole.1 a"));
        assert_eq!(odd, sanitize_id("pole 1.a"), "stable");
        assert_eq!(sanitize_id("pole 1.a"), "pole_1_a_56423ac9");
        for id in [odd.as_str(), &sanitize_id(""), &sanitize_id("é/+#")] {
            assert!(
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id:?}"
            );
        }
        let d = Discovery::new(
            "ha/disc",
            "pole 1",
            Topics::new("speedcam", "pole 1").unwrap(),
        )
        .unwrap();
        let topic = d.config_topic("cam 2", Sensor::SpeedingCount);
        let levels: Vec<_> = topic.split('/').collect();
        assert_eq!(levels.len(), 6, "{topic}");
        assert_eq!(&levels[..3], ["ha", "disc", "sensor"]);
        assert_eq!(levels[3], d.node_id());
        assert!(levels[4].ends_with("_speeding_count"), "{topic}");
        assert!(levels[3..5].iter().all(|l| l
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))));
        // The state topic keeps the real names (they are valid MQTT levels).
        let v = d.config("cam 2", Sensor::LastSpeed);
        assert_eq!(v["state_topic"], "speedcam/pole 1/cam 2/summary");
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for bad in ["", "/ha", "ha/", "ha/+", "#", "a//b"] {
            let topics = Topics::new("speedcam", "d").unwrap();
            let err = Discovery::new(bad, "d", topics).unwrap_err().to_string();
            assert!(err.contains("home_assistant_prefix"), "{err}");
        }
    }

    #[test]
    fn summary_has_counts_and_the_last_vehicle() {
        let empty: Value =
            serde_json::from_slice(&summary_payload("north", &CameraTally::default()).unwrap())
                .unwrap();
        assert_eq!(
            empty,
            json!({"camera": "north", "last_speed_kmh": null, "last_event_id": null,
                   "last_at": null, "speeding_count": 0, "measurement_count": 0,
                   "without_speed_count": 0, "schema": 1})
        );
        let tally = CameraTally {
            measurements: 12,
            without_speed: 2,
            speeding: 3,
            last: Some(LastVehicle {
                event_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
                speed_kmh: 71.25,
                time: "2026-11-27T12:00:00Z".into(),
                measurement_id: None,
            }),
        };
        let v: Value = serde_json::from_slice(&summary_payload("north", &tally).unwrap()).unwrap();
        assert_eq!(v["last_speed_kmh"], 71.25);
        assert_eq!(v["last_event_id"], "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(v["last_at"], "2026-11-27T12:00:00Z");
        assert_eq!(v["speeding_count"], 3);
        assert_eq!(v["measurement_count"], 12);
        assert_eq!(v["without_speed_count"], 2);
    }
}
