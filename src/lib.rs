//! speedcam: measure vehicle speed from a calibrated camera and publish speeding alerts.
//!
//! This crate is the daemon: what needs native code, I/O threads or a network. The pipeline's
//! logic is [`speedcam_core`] (re-exported here under the same module names, so a path such as
//! `speedcam::speed::Homography` works from either side):
//! `source` (frames with capture timestamps: the RTSP, V4L2 and file openers here, the parsers
//! in core) -> `detect` (vehicle boxes: the tract and ONNX Runtime backends here, the types in
//! core) -> `track` -> `speed` -> `event` (core) -> `store` (sled: events, thumbnails, outbox)
//! -> `publish` (MQTT, QoS 1, replay on reconnect). `service` wires them together per camera
//! (its `camera_loop` runs one camera's frames through them); `cmds` holds the `speedcamd`
//! subcommands, one module each; `config` is core's loader plus the TLS check that needs rustls;
//! `metrics` keeps the live figures (Prometheus endpoint, `stats` topic, systemd status).

#![warn(unreachable_pub)]

pub use speedcam_core::{
    backoff, clock, event, frame, pipeline, schedule, speed, stats, track, truth,
};

pub mod cmds;
pub mod config;
pub mod detect;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod service;
pub mod source;
pub mod store;
