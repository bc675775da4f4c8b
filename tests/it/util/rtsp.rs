//! The RTSP test server: GStreamer's GstRtspServer run by `tests/support/rtsp_server.py` with
//! Debian's `/usr/bin/python3` on a loopback port, serving the bundled demo scene.
//!
//! Needs the Debian packages python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base,
//! gstreamer1.0-plugins-good (qtdemux, rtph264pay, breakmydata) and gstreamer1.0-plugins-bad
//! (h264parse): the tool `gst-rtsp-server` of the skip rule ([`super`]); without them
//! [`available`] is false after `SKIPPED: gst-rtsp-server`, and the test returns.

use super::{need, repo, write_demo_config, Tool};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bundled synthetic scene (H.264, no B-frames) the server plays.
pub fn scene() -> PathBuf {
    repo().join("media/demo/scene.mp4")
}

/// Debian's Python, which has the GStreamer bindings (a pyenv or venv python usually lacks
/// them); `SPEEDCAM_TEST_PYTHON` overrides it.
pub fn python() -> String {
    std::env::var("SPEEDCAM_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}
/// Why the RTSP server cannot run here, if it cannot.
pub fn missing_server() -> Option<String> {
    let check = "import gi; gi.require_version('Gst', '1.0'); \
                 gi.require_version('GstRtspServer', '1.0'); \
                 from gi.repository import Gst, GstRtspServer; Gst.init(None); \
                 missing = [e for e in ('qtdemux', 'h264parse', 'rtph264pay', 'breakmydata') \
                            if Gst.ElementFactory.find(e) is None]; \
                 print(' '.join(missing))";
    let python = python();
    match Command::new(&python).args(["-c", check]).output() {
        Err(e) => Some(format!("cannot run {python}: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "{python} cannot import GstRtspServer: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(out) => {
            let missing = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!missing.is_empty()).then(|| format!("GStreamer elements missing: {missing}"))
        }
    }
}

/// Whether the server can run here; when not, the skip rule ([`need`]) decides: `false`
/// after `SKIPPED: gst-rtsp-server`, or a failure when `SPEEDCAM_REQUIRE` names it.
pub fn available() -> bool {
    // Checked once per process (it starts a Python).
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    let missing = MISSING.get_or_init(missing_server).clone();
    need(Tool::GstRtspServer, missing.map_or(Ok(()), Err)).is_some()
}

/// Writes the config of a daemon watching the live camera at `rtsp_url` ([`write_demo_config`],
/// publishing to `mqtt_url` as `device_id`): quick reconnects (0.2-1 s, stalled after 3 s),
/// `extra` TOML after them, and 3 detections in the zone enough for a measurement (the
/// debug-profile detector reaches ~3-4 of the stream's 30 frames/s on a 2-core machine; the
/// default 5 leaves most vehicles unmeasured and makes the run depend on how busy the machine
/// is). Returns its path.
pub fn write_live_config(
    dir: &Path,
    device_id: &str,
    rtsp_url: &str,
    mqtt_url: &str,
    extra: &str,
) -> PathBuf {
    let extra = format!(
        "[cameras.reconnect]\ninitial_s = 0.2\nmax_s = 1.0\nstall_timeout_s = 3.0\n\n{extra}"
    );
    let path = write_demo_config(dir, device_id, rtsp_url, mqtt_url, &extra);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "tolerance_kmh = 3.0",
        "tolerance_kmh = 3.0\nmin_samples_in_zone = 3",
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `rtsp_server.py`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts the server on `port` and waits until the port accepts connections.
    pub fn start(port: u16, mode: &str) -> Server {
        let mut child = Command::new(python())
            .arg(repo().join("tests/support/rtsp_server.py"))
            .arg(port.to_string())
            .arg(scene())
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rtsp_server.py");
        // Drain stdout in the background so the server never blocks on a full pipe.
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("[rtsp_server:{port}] {line}");
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { child, port };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rtsp_server.py exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "rtsp_server.py never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rtsp://127.0.0.1:PORT/scene`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/scene", self.port)
    }

    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
