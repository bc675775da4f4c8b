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
