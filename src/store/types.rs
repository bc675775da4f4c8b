//! Records the store keeps besides events: outbox messages and finished-track summaries.

use serde::{Deserialize, Serialize};

/// One MQTT message waiting to be published; kept in the `outbox` tree until the broker acks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Full MQTT topic.
    pub topic: String,
    /// Raw payload (event JSON or JPEG bytes).
    pub payload: Vec<u8>,
    /// MQTT QoS, 0..=2.
    pub qos: u8,
    /// MQTT retain flag.
    pub retain: bool,
}

/// Position of an outbox entry; keys grow in insertion order, also across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxKey(pub u64);

impl OutboxKey {
    /// Big-endian bytes, so sled's byte order is insertion order.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Parses a sled key; `None` for a key that is not 8 bytes.
    pub fn from_be_slice(bytes: &[u8]) -> Option<OutboxKey> {
        let arr: [u8; 8] = bytes.try_into().ok()?;
        Some(OutboxKey(u64::from_be_bytes(arr)))
    }
}

/// Summary of a finished track, kept for statistics and for checking the detector/tracker later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    /// Camera id.
    pub camera: String,
    /// Tracker id, unique per camera and run.
    pub track_id: u64,
    /// Class name, e.g. "car".
    pub class: String,
    /// Frame time of the first detection, s.
    pub first_t_s: f64,
    /// Frame time of the last detection, s.
    pub last_t_s: f64,
    /// Detections matched to the track.
    pub hits: u32,
    /// Whether the track produced a speed measurement.
    pub measured: bool,
}

/// The latest vehicle of a camera as [`CameraTally`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastVehicle {
    /// Id of its latest record: the speeding event when it was speeding, else its measurement.
    pub event_id: String,
    /// Measured speed, km/h.
    pub speed_kmh: f64,
    /// Wall-clock time of the zone exit, RFC 3339 (as stored in the event).
    pub time: String,
    /// For a speeding event, the measurement it was derived from (so that measurement, read
    /// after it, does not replace it).
    pub measurement_id: Option<String>,
}

/// Per-camera counts of stored verdicts and the latest vehicle (for the retained summary).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraTally {
    /// Measurement records (one per vehicle, with or without a speed).
    pub measurements: u64,
    /// Of those, vehicles that passed without a trustworthy speed.
    pub without_speed: u64,
    /// Speeding events.
    pub speeding: u64,
    /// The most recent vehicle with a speed, `None` before the first.
    pub last: Option<LastVehicle>,
}

impl CameraTally {
    /// Counts one record, in the order they were accepted (or stored).
    pub fn add(&mut self, event: &crate::event::Event) {
        self.add_parts(
            event.kind,
            &event.event_id,
            event.speed_kmh,
            &event.time,
            event.measurement_id.as_deref(),
        );
    }

    pub(super) fn add_parts(
        &mut self,
        kind: crate::event::EventType,
        event_id: &str,
        speed_kmh: Option<f64>,
        time: &str,
        measurement_id: Option<&str>,
    ) {
        use crate::event::EventType;
        self.measurements += u64::from(kind == EventType::Measurement);
        // A vehicle without a speed is counted, but is no "last speed" (Home Assistant's sensor).
        let Some(speed_kmh) = speed_kmh else {
            self.without_speed += u64::from(kind == EventType::Measurement);
            return;
        };
        match kind {
            EventType::Measurement => {
                // A speeding event and its measurement get ULIDs in the same millisecond, which
                // may sort either way: the speeding one stays "last" for its own measurement.
                let derived = self
                    .last
                    .as_ref()
                    .is_some_and(|l| l.measurement_id.as_deref() == Some(event_id));
                if !derived {
                    self.last = Some(LastVehicle {
                        event_id: event_id.to_string(),
                        speed_kmh,
                        time: time.to_string(),
                        measurement_id: None,
                    });
                }
            }
            EventType::Speeding => {
                self.speeding += 1;
                self.last = Some(LastVehicle {
                    event_id: event_id.to_string(),
                    speed_kmh,
                    time: time.to_string(),
                    measurement_id: measurement_id.map(str::to_string),
                });
            }
        }
    }

    /// Adds the records of `later`, which all came after this tally's.
    pub fn absorb(&mut self, later: &CameraTally) {
        self.measurements += later.measurements;
        self.without_speed += later.without_speed;
        self.speeding += later.speeding;
        if later.last.is_some() {
            self.last.clone_from(&later.last);
        }
    }
}
