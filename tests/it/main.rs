//! The integration tests, one binary (`cargo test --test it`): one link instead of one per file,
//! and one place for the shared helpers ([`util`]). Each former `tests/*.rs` file is a module;
//! libtest filters match `module::test_name` as a substring, e.g.
//! `cargo test --test it mqtt_outbox::` or `cargo test --test it bad_input::zero_size`.
//!
//! A test whose external tool (mosquitto, GStreamer's RTSP server, the ffmpeg CLI, ONNX Runtime,
//! a CUDA driver, a tmpfs mount) is missing prints `SKIPPED: <tool>` and passes, unless
//! `SPEEDCAM_REQUIRE` names that tool: see [`util`].

mod util;

mod analyze_cli;
mod bad_input;
mod bench_cli;
mod broker_outage;
mod calibrate_cli;
mod crash_replay;
mod daemon_logs;
mod disk_full;
mod e2e_replay;
// The `ffmpeg` feature's source; needs the libav* libraries to build.
#[cfg(feature = "ffmpeg")]
mod ffmpeg_replay;
// The `cuda` feature's GPU preprocessing.
#[cfg(feature = "cuda")]
mod gpu_preprocess;
mod live_daemon;
mod mqtt_home_assistant;
mod mqtt_outbox;
mod mqtt_tls;
// The `onnxruntime` feature's detector backend.
#[cfg(feature = "onnxruntime")]
mod ort_detect;
mod rtsp_live;
mod systemd_notify;
