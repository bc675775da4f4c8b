//! speedcam: measure vehicle speed from a calibrated camera and publish speeding alerts.
//!
//! The module tree reads like the pipeline:
//! `source` (frames with capture timestamps) -> `detect` (vehicle boxes) -> `track` (ByteTrack)
//! -> `speed` (homography + fit over the measurement zone) -> `event` (one verdict per vehicle)
//! -> `store` (sled: events, thumbnails, outbox) -> `publish` (MQTT, QoS 1, replay on reconnect).
//! `service` wires them together per camera; `config` loads and validates the TOML file;
//! `metrics` keeps the live figures (Prometheus endpoint, `stats` topic, systemd status);
//! `synth` renders synthetic scenes with known ground truth for tests and the demo.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod detect;
pub mod event;
pub mod frame;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod schedule;
pub mod service;
pub mod source;
pub mod speed;
pub mod stats;
pub mod store;
pub mod synth;
#[cfg(test)]
mod test_rng;
pub mod track;
