//! The daemon with `data_dir` on a tiny filesystem (an 16 MiB tmpfs) that a filler file has
//! almost filled: it keeps running, says STORAGE FULL (log naming data_dir and the fix, STATUS=,
//! `speedcam_storage_ok 0`), holds its verdicts in memory, and once the filler is deleted writes
//! them to the store and publishes them, without a restart; nothing is lost.
//!
//! Needs root (mount -t tmpfs): where mounting is impossible it prints `SKIPPED: tmpfs` and
//! passes, unless `SPEEDCAM_REQUIRE` names `tmpfs` (see `util/mod.rs`).

use crate::util::broker::{start_broker, subscribe, Received};
use crate::util::daemon::{http_get, metric};
use crate::util::{free_port, need, repo, speedcamd, write_demo_config, Tool};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test; unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    speedcam::store::free_bytes(dir).expect("statvfs")
}

fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>, log: &dyn Fn() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {secs} s; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn full_disk_holds_verdicts_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fs_dir = dir.path().join("fs");
    let mounted = Tmpfs::mount(&fs_dir, "16m").map_err(|e| format!("cannot mount a tmpfs ({e})"));
    let Some(_fs) = need(Tool::Tmpfs, mounted) else {
        return;
    };
    let data_dir = fs_dir.join("data");
    // Leave about 2 MiB: sled opens, but it is under min_free_bytes (4 MiB).
    let filler = fs_dir.join("filler");
    let fill = free_bytes(&fs_dir).saturating_sub(2 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("write the filler");
    assert!(free_bytes(&fs_dir) < 4 << 20);

    let broker = start_broker();
    let sub = subscribe(broker.port, &["speedcam/#"]);
    let metrics_port = free_port();
    let video = repo().join("media/demo/scene.mp4");
    let config = write_demo_config(
        dir.path(),
        "diskfull",
        &video.display().to_string(),
        &broker.url(),
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\nstats_interval_s = 1\n\n[storage]\nmin_free_bytes = \"4MiB\"\nmax_bytes = \"64MiB\"\nretry_queue = 100\n"
        ),
    );
    // write_demo_config puts data_dir under dir/data: point it at the tmpfs.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        &format!(
            "data_dir = {:?}",
            dir.path().join("data").display().to_string()
        ),
        &format!("data_dir = {:?}", data_dir.display().to_string()),
    );
    assert!(text.contains(&data_dir.display().to_string()));
    std::fs::write(&config, text).expect("rewrite config");

    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let log_path = dir.path().join("daemon.log");
    let mut daemon = speedcamd()
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start speedcamd");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The whole video runs with the disk full: every verdict is held in memory.
    poll(
        240,
        "end of the video",
        || log().contains("camera stopped").then_some(()),
        &log,
    );
    let verdicts = log().matches(" verdict ").count();
    assert!(verdicts >= 2, "the demo video yields vehicles:\n{}", log());
    let l = log();
    assert!(
        l.contains("STORAGE FULL") && l.contains(&data_dir.display().to_string()),
        "a clear error naming data_dir:\n{l}"
    );
    assert!(
        l.contains("free disk space"),
        "the error says the fix:\n{l}"
    );
    let text = poll(
        20,
        "storage metrics while full",
        || {
            let t = http_get(metrics_port, "/metrics");
            (metric(&t, "speedcam_storage_ok") == Some(0.0)
                && metric(&t, "speedcam_storage_retry_queue") == Some(verdicts as f64))
            .then_some(t)
        },
        &log,
    );
    assert_eq!(metric(&text, "speedcam_storage_lost_total"), Some(0.0));
    let mut buf = vec![0u8; 4096];
    let want = format!("STORAGE FULL ({verdicts} queued)");
    let status = poll(
        30,
        &format!("STATUS=... {want}"),
        || {
            let n = sock.recv(&mut buf).ok()?;
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            m.contains(&want).then_some(m)
        },
        &log,
    );
    assert!(status.starts_with("STATUS="), "{status}");
    assert!(daemon.try_wait().expect("wait").is_none(), "still running");
    let events_published = |m: &[Received]| {
        m.iter()
            .filter(|m| {
                serde_json::from_slice::<serde_json::Value>(&m.payload)
                    .ok()
                    .is_some_and(|v| v["event_id"].is_string() && v["type"] == "speeding")
            })
            .count()
    };
    assert_eq!(
        events_published(&sub.messages()),
        0,
        "nothing stored, nothing published"
    );

    // Space returns: the held verdicts are stored and published, no restart.
    std::fs::remove_file(&filler).expect("delete the filler");
    let text = poll(
        30,
        "storage recovery in the metrics",
        || {
            let t = http_get(metrics_port, "/metrics");
            (metric(&t, "speedcam_storage_ok") == Some(1.0)
                && metric(&t, "speedcam_storage_retry_queue") == Some(0.0))
            .then_some(t)
        },
        &log,
    );
    assert_eq!(metric(&text, "speedcam_storage_lost_total"), Some(0.0));
    assert_eq!(
        metric(&text, "speedcam_storage_deferred_total"),
        Some(verdicts as f64)
    );
    assert!(log().contains("storage space is back"), "{}", log());
    let speeding = log().matches("kind=Speeding").count();
    assert!(speeding >= 1, "{}", log());
    sub.wait_until(Duration::from_secs(30), |m: &[Received]| {
        events_published(m) >= speeding
    });

    // A clean stop; every verdict is in the store.
    let pid = i32::try_from(daemon.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = daemon.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit {status:?}:\n{}", log());
    let store = speedcam::store::Store::open(&data_dir).expect("open the store");
    assert_eq!(store.events(None, None).expect("events").len(), verdicts);
    assert_eq!(store.outbox_len(), 0, "everything was published");
}
