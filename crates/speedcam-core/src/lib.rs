//! speedcam-core: the pipeline's logic, with no native dependency and no I/O threads.
//!
//! The module tree reads like the pipeline: [`frame`] (frame metadata and pixels) ->
//! [`schedule`] (which frames the detector sees) -> [`detect`] (boxes, and the [`detect::Detector`]
//! trait the backends implement) -> [`track`] (ByteTrack) -> [`speed`] (homography + fit over the
//! measurement zone) -> [`event`] (one verdict per vehicle); [`pipeline`] joins them per camera.
//! [`config`] parses and validates the TOML file (every subsystem's settings live there),
//! [`source`] holds the parsers of outside input (H.264, MP4, V4L2 frames, MOT files), and
//! [`clock`], [`backoff`] and [`stats`] are the small pieces time-based logic is built on.
//! [`truth`] reads a synthetic scene's ground truth and compares measurements with it.
//!
//! The daemon (`speedcam`) adds what needs native code or I/O: inference backends, RTSP/V4L2
//! sources, sled storage, the MQTT client, metrics and systemd.

#![warn(unreachable_pub)]

pub mod backoff;
pub mod clock;
pub mod config;
pub mod detect;
pub mod error_chain;
pub mod event;
pub mod frame;
pub mod pipeline;
pub mod schedule;
pub mod source;
pub mod speed;
pub mod stats;
#[cfg(test)]
mod test_rng;
pub mod track;
pub mod truth;
