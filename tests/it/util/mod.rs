//! Shared helpers of the integration tests: paths, the `speedcamd` binary, a tokio runtime,
//! test configs, a seeded RNG, and the skip rule for external tools.
//!
//! # External tools: the skip rule
//!
//! A test whose external tool is missing calls [`need`] (or [`fallback`], where it can go on
//! another way), which prints `SKIPPED: <tool> (...)` with the reason and what to install, once
//! per tool and test process, on the process's stderr (so it shows in plain `cargo test` output
//! too), and the test passes without running. Unless the environment variable `SPEEDCAM_REQUIRE`
//! names the tool: a comma-separated list of the names below, or `all`; then a missing tool is a
//! failure naming the tool and the variable. CI (.ci/run) requires every tool but `cuda`;
//! scripts/device_check.sh requires `cuda`. An unknown name in `SPEEDCAM_REQUIRE` is a failure
//! too (a typo must not turn a requirement off). The names ([`Tool`]):
//!
//! - `mosquitto`: the system MQTT broker (`mosquitto`, `mosquitto_passwd`). The plain broker
//!   tests fall back to an in-process rumqttd without it (announced as
//!   `SKIPPED: mosquitto (using in-process rumqttd)`, a failure when required, unless
//!   `SPEEDCAM_TEST_RUMQTTD` is set, which asks for rumqttd); the TLS and broker-outage tests
//!   need the real one.
//! - `gst-rtsp-server`: GStreamer's RTSP server run by tests/support/rtsp_server.py
//!   (python3-gi, gir1.2-gst-rtsp-server-1.0, GStreamer base/good/bad plugins): rtsp_live,
//!   live_daemon, broker_outage.
//! - `ffmpeg`: the ffmpeg CLI with libx264 and libx265 (ffmpeg_replay, `ffmpeg` feature).
//! - `ort`: the ONNX Runtime library named by `ORT_DYLIB_PATH` (ort_detect, `onnxruntime`
//!   feature).
//! - `cuda`: a CUDA driver and NVRTC (gpu_preprocess, `cuda` feature).
//! - `tmpfs`: permission to mount a tmpfs, i.e. root or CAP_SYS_ADMIN (disk_full).
//! - `qemu`: qemu-system-x86_64, for tests/vivid/run.sh (a script CI runs on its own, not a test
//!   of this binary), which follows the same rule.

pub mod broker;
pub mod daemon;
pub mod rtsp;
pub mod tls;

use speedcam::publish::MqttConfig;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root (the `speedcam` package's directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `Command` running the `speedcamd` binary cargo built for this test run, or the one named by
/// `SPEEDCAM_TEST_BIN` (a copy, when a shared target dir may be rebuilt meanwhile).
pub fn speedcamd() -> Command {
    let bin = std::env::var_os("SPEEDCAM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_speedcamd")));
    Command::new(bin)
}

/// A 2-thread tokio runtime for the library's publisher.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// How long a test waits for something that takes moments: it returns as soon as the condition
/// holds, so the deadline only turns a hang into a failure (a loaded machine must not fail it).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (then its last answer).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prints `msg` on the process's stderr, so it shows also for a passing test: libtest captures
/// `print!`/`eprint!` output (its output capture), but not writes to the `io::stderr()` handle.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Seeded xorshift64 (shifts 13, 7, 17): the same numbers for the same seed, on every machine.
/// The seed must not be 0.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Gaussian with mean 0 and standard deviation `sigma` (Box-Muller).
    pub fn gauss(&mut self, sigma: f64) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The publisher's `[mqtt]` settings for `device_id` on `url`: base topic `speedcam`, no
/// measurements, no Home Assistant discovery, no TLS or login.
pub fn mqtt_config(url: String, device_id: &str) -> MqttConfig {
    MqttConfig {
        url,
        base_topic: "speedcam".into(),
        device_id: device_id.into(),
        client_id: None,
        keepalive_s: 5,
        publish_measurements: false,
        home_assistant_discovery: false,
        home_assistant_prefix: "homeassistant".into(),
        tls: None,
        username: None,
        password: None,
    }
}

/// Daemon config text for the bundled demo camera (`media/demo/camera.toml`) as `device_id`,
/// data in `data_dir`: the camera reads `source` when given (else the file's own), publishes to
/// `mqtt_url` (base topic `speedcam`) when given, and `extra` TOML follows the camera.
pub fn demo_config_text(
    device_id: &str,
    data_dir: &Path,
    source: Option<&str>,
    mqtt_url: Option<&str>,
    extra: &str,
) -> String {
    let mut camera = std::fs::read_to_string(repo().join("media/demo/camera.toml")).unwrap();
    if let Some(source) = source {
        camera = camera.replace("source = \"scene.mp4\"", &format!("source = {source:?}"));
    }
    let mqtt = mqtt_url
        .map(|url| format!("[mqtt]\nurl = {url:?}\nbase_topic = \"speedcam\"\n\n"))
        .unwrap_or_default();
    format!(
        "device_id = {device_id:?}\ndata_dir = {:?}\n\n[detector]\nmodel = {:?}\n\n{mqtt}{camera}\n{extra}",
        data_dir.display().to_string(),
        repo().join("models/nanodet-g-416.onnx").display().to_string(),
    )
}

/// Writes `speedcam.toml` in `dir` ([`demo_config_text`], data in `dir/data`) for the demo
/// camera reading `source`, publishing to `mqtt_url` as `device_id`; returns its path.
pub fn write_demo_config(
    dir: &Path,
    device_id: &str,
    source: &str,
    mqtt_url: &str,
    extra: &str,
) -> PathBuf {
    let text = demo_config_text(
        device_id,
        &dir.join("data"),
        Some(source),
        Some(mqtt_url),
        extra,
    );
    let path = dir.join("speedcam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `config/demo.toml` with absolute paths, written to `dir/name`: `video` as the camera's
/// source, the model at `model`, data_dir in `dir/data`; `edit` rewrites the text before it is
/// written. Returns the path.
pub fn copy_demo_toml(
    dir: &Path,
    name: &str,
    video: &Path,
    model: &Path,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let text = text
        .replace(
            "model = \"../models/nanodet-g-416.onnx\"",
            &format!("model = {:?}", model.display().to_string()),
        )
        .replace(
            "source = \"../media/demo/scene.mp4\"",
            &format!("source = {:?}", video.display().to_string()),
        )
        .replace(
            "data_dir = \"../data/demo\"",
            &format!("data_dir = {:?}", dir.join("data").display().to_string()),
        );
    assert!(!text.contains("\"../"), "config/demo.toml changed: {text}");
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// An external tool a test needs (see the module's documentation for each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Mosquitto,
    GstRtspServer,
    Ffmpeg,
    Ort,
    Cuda,
    Tmpfs,
    /// Only tests/vivid/run.sh needs it; a known name in `SPEEDCAM_REQUIRE`.
    Qemu,
}

impl Tool {
    /// Every tool, in the order of the module's documentation.
    pub const ALL: [Tool; 7] = [
        Tool::Mosquitto,
        Tool::GstRtspServer,
        Tool::Ffmpeg,
        Tool::Ort,
        Tool::Cuda,
        Tool::Tmpfs,
        Tool::Qemu,
    ];

    /// The tool's name in `SPEEDCAM_REQUIRE` and in `SKIPPED:` lines.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Mosquitto => "mosquitto",
            Tool::GstRtspServer => "gst-rtsp-server",
            Tool::Ffmpeg => "ffmpeg",
            Tool::Ort => "ort",
            Tool::Cuda => "cuda",
            Tool::Tmpfs => "tmpfs",
            Tool::Qemu => "qemu",
        }
    }

    /// What makes the tool available.
    fn fix(self) -> &'static str {
        match self {
            Tool::Mosquitto => "install mosquitto and mosquitto-clients",
            Tool::GstRtspServer => {
                "install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
                 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
            }
            Tool::Ffmpeg => "install the ffmpeg CLI with libx264 and libx265",
            Tool::Ort => "point ORT_DYLIB_PATH at libonnxruntime.so (.ci/run fetches one)",
            Tool::Cuda => "run on a machine with an NVIDIA GPU (scripts/device_check.sh)",
            Tool::Tmpfs => "run as root (or with CAP_SYS_ADMIN)",
            Tool::Qemu => "install qemu-system-x86",
        }
    }
}

/// Whether `SPEEDCAM_REQUIRE` names `tool` (or `all`). Panics on a name that is not a [`Tool`].
pub fn required(tool: Tool) -> bool {
    let Ok(list) = std::env::var("SPEEDCAM_REQUIRE") else {
        return false;
    };
    let mut named = false;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            named = true;
        } else if let Some(t) = Tool::ALL.iter().find(|t| t.name() == name) {
            named |= *t == tool;
        } else {
            let known: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
            panic!(
                "SPEEDCAM_REQUIRE={list}: unknown tool {name:?} (known: all, {})",
                known.join(", ")
            );
        }
    }
    named
}

/// The skip rule: `found` is `Ok(v)` when `tool` is there (`Some(v)`); `Err(why)` when it is
/// not: a failure when [`required`], else `SKIPPED: <tool>` (once per tool and outcome) and `None`, and the
/// test returns without running.
pub fn need<T>(tool: Tool, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) => {
            missing(tool, "tests that need it pass without running", &why);
            None
        }
    }
}

/// `tool` is missing (`why`) but the test goes on `instead` (e.g. "using in-process rumqttd"):
/// announced like a skip, a failure when [`required`].
pub fn fallback(tool: Tool, instead: &str, why: &str) {
    missing(tool, instead, why);
}

fn missing(tool: Tool, what: &str, why: &str) {
    if required(tool) {
        panic!(
            "{} is missing ({why}) and SPEEDCAM_REQUIRE={} requires it: {}",
            tool.name(),
            std::env::var("SPEEDCAM_REQUIRE").unwrap_or_default(),
            tool.fix()
        );
    }
    // Once per tool and outcome (a broker test on rumqttd and a skipped TLS test both say so).
    static ANNOUNCED: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());
    let mut announced = ANNOUNCED.lock().unwrap_or_else(|p| p.into_inner());
    let key = (tool.name(), what.to_string());
    if !announced.contains(&key) {
        announced.push(key);
        say(&format!(
            "SKIPPED: {} ({what}): {why}; {} (SPEEDCAM_REQUIRE={} makes this a failure)",
            tool.name(),
            tool.fix(),
            tool.name()
        ));
    }
}

/// The event's speed, km/h; panics (naming the event and its reason) when the verdict has none.
#[track_caller]
pub fn speed_of(e: &speedcam::event::Event) -> f64 {
    e.speed_kmh.unwrap_or_else(|| {
        panic!(
            "track {} of {} has no speed ({:?})",
            e.track_id, e.camera, e.reason
        )
    })
}
