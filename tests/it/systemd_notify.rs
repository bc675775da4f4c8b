//! The daemon under a fake systemd: `NOTIFY_SOCKET` is a datagram socket this test reads, and
//! `WATCHDOG_USEC` asks for watchdog pings. Checks the messages and their order through a whole
//! life: start-up -> READY -> WATCHDOG pings -> SIGHUP with a good file (limit applied, live
//! tracks kept) -> SIGHUP with a bad file (rejected, old config kept) -> SIGTERM -> STOPPING and
//! a clean exit. Along the way the Prometheus endpoint and the MQTT `stats` topic report the same
//! live figures.

use crate::util::broker::{start_broker, subscribe, Received};
use crate::util::{free_port, repo, speedcamd, write_demo_config};
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Reads datagrams until `want` matches one (returned) or `secs` pass (panics with all seen).
fn expect(sock: &UnixDatagram, seen: &mut Vec<String>, secs: u64, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.push(msg.clone());
            if msg.lines().any(|l| l == want) {
                return msg;
            }
        }
    }
    panic!("no {want:?} within {secs} s; got {seen:#?}");
}

/// `cameras.synth.frames` of a `stats` payload (0 when absent).
fn frames_in_stats(payload: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["cameras"]["synth"]["frames"].as_u64())
        .unwrap_or(0)
}

/// A plain HTTP/1.1 GET on loopback; the whole response.
fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

#[test]
fn daemon_speaks_the_notify_protocol_in_order() {
    let broker = start_broker();
    let sub = subscribe(broker.port, &["speedcam/notify/stats"]);
    let metrics_port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let video = repo().join("media/demo/scene.mp4");
    let config = write_demo_config(
        dir.path(),
        "notify",
        &video.display().to_string(),
        &broker.url(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\nstats_interval_s = 1\n"),
    );
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let log_path = dir.path().join("daemon.log");
    let mut daemon = speedcamd()
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        // 6 s: pings every 2 s, a loop silent for 3 s counts as wedged.
        .env("WATCHDOG_USEC", "6000000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start speedcamd");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut seen = Vec::new();

    let ready = expect(&sock, &mut seen, 120, "READY=1");
    assert!(
        ready.contains("STATUS=1 camera streaming"),
        "READY carries the first status: {ready}"
    );
    assert!(
        seen.iter()
            .any(|m| m.trim_end() == "STATUS=loading the model"),
        "{seen:?}"
    );
    expect(&sock, &mut seen, 10, "WATCHDOG=1");

    // Live figures: Prometheus text on loopback, JSON on the `stats` topic.
    let stats = sub.wait_until(Duration::from_secs(10), |m: &[Received]| {
        m.iter().any(|m| frames_in_stats(&m.payload) > 0)
    });
    let last = stats.last().expect("a stats message");
    assert!(!last.retain, "stats are not retained");
    let text = http_get(metrics_port, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let frames = text
        .lines()
        .find(|l| l.starts_with("speedcam_frames_total{camera=\"synth\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no frames counter in {text}"));
    assert!(frames >= frames_in_stats(&last.payload) as f64, "{frames}");
    assert!(
        text.contains("speedcam_stage_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("speedcam_source_state{"), "{text}");
    assert!(http_get(metrics_port, "/other").starts_with("HTTP/1.1 404"));

    // A good reload: the limit changes, the camera keeps its tracks.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = 60.0"),
    )
    .expect("rewrite config");
    signal(&daemon, libc::SIGHUP);
    let reloading = expect(&sock, &mut seen, 10, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = expect(&sock, &mut seen, 10, "READY=1");
    assert!(
        ready.contains("speed_limit_kmh: 50 -> 60"),
        "the reload's outcome is in STATUS: {ready}"
    );

    // A bad file is rejected; the daemon keeps running with the old config.
    std::fs::write(
        &config,
        text.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = -5.0"),
    )
    .expect("rewrite config");
    signal(&daemon, libc::SIGHUP);
    expect(&sock, &mut seen, 10, "RELOADING=1");
    let ready = expect(&sock, &mut seen, 10, "READY=1");
    assert!(ready.contains("reload rejected"), "{ready}");
    assert!(ready.contains("speed_limit_kmh"), "names the key: {ready}");
    expect(&sock, &mut seen, 10, "WATCHDOG=1");

    signal(&daemon, libc::SIGTERM);
    expect(&sock, &mut seen, 10, "STOPPING=1");
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

    // The order of the protocol's key messages over the whole run.
    let kinds: Vec<&str> = seen
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(l))
        .collect();
    assert_eq!(
        kinds,
        [
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "STOPPING=1"
        ],
        "{seen:#?}"
    );
    let log = log();
    assert!(
        log.contains("reloaded settings applied; live tracks kept"),
        "the camera loop picked up the reload:\n{log}"
    );
    assert!(log.contains("reload rejected"), "{log}");
    assert!(
        log.contains("publisher stopped") && log.contains("drained=true"),
        "the outbox drained before exit:\n{log}"
    );
}
