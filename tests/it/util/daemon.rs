//! The real `speedcamd run` as a child process for end-to-end tests: start, read its log,
//! `kill -9` or SIGTERM it, read its Prometheus endpoint, collect event ids seen over MQTT.

use super::broker::Received;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `speedcamd run --config F`, its stderr (RUST_LOG=info) in a log file.
pub struct Daemon {
    child: Child,
    log_path: PathBuf,
}

impl Daemon {
    /// Starts `speedcamd run --config config` ([`super::speedcamd`]), logging to `log_path`
    /// (truncated).
    pub fn start(config: &Path, log_path: &Path) -> Daemon {
        let child = super::speedcamd()
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log_path).expect("daemon log file"))
            .spawn()
            .expect("start speedcamd");
        Daemon {
            child,
            log_path: log_path.to_path_buf(),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics (with the log) when the daemon has exited.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("speedcamd exited ({status}) {when}:\n{}", self.log());
        }
    }

    /// Waits until the log contains `needle` (true) or `timeout` passes (false); panics when the
    /// daemon exits meanwhile.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            self.assert_running(&format!("while waiting for {needle:?}"));
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a successful exit (panics with the log otherwise).
    pub fn terminate(mut self, timeout: Duration) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "exit {status}:\n{}", self.log());
                return;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("no exit {timeout:?} after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback; the whole response, empty when nothing listens.
pub fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of the first sample of metric `name` (with or without labels) in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Event ids in MQTT messages: the `event_id` of event JSON payloads and the id in thumbnail
/// topics (`.../speeding/<id>/thumbnail`).
pub fn event_ids(msgs: &[Received]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in msgs {
        if let Some(rest) = m.topic.strip_suffix("/thumbnail") {
            if let Some(id) = rest.rsplit('/').next() {
                out.insert(id.to_string());
            }
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
            if let Some(id) = v.get("event_id").and_then(|i| i.as_str()) {
                out.insert(id.to_string());
            }
        }
    }
    out
}
