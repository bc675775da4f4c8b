//! What an operator filters the daemon's log on: every line of a camera's threads sits in the
//! `camera` span (`camera{camera=<id>}` on stderr, `SPEEDCAM_CAMERA=<id>` in the journal) and an
//! error is the `err` field, not message text (issue 19).
//!
//! The daemon runs with one camera pointing at an RTSP port where nothing listens: it fails to
//! connect and retries, which is what the log must make easy to find.

use crate::util::daemon::Daemon;
use crate::util::{demo_config_text, free_port};
use std::time::Duration;

#[test]
fn a_failing_camera_logs_in_its_span_with_the_error_as_a_field() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rtsp://127.0.0.1:{}/nothing-here", free_port());
    let text = demo_config_text(
        "logs",
        &dir.path().join("data"),
        Some(&url),
        None,
        "[cameras.reconnect]\ninitial_s = 0.2\nmax_s = 0.5\n",
    );
    let config = dir.path().join("speedcam.toml");
    std::fs::write(&config, text).unwrap();
    let mut d = Daemon::start(&config, &dir.path().join("daemon.log"));
    assert!(
        d.wait_log("failed; retrying in", Duration::from_secs(120)),
        "no retry logged:\n{}",
        d.log()
    );
    let log = d.log();
    d.terminate(Duration::from_secs(30));
    let retry = log
        .lines()
        .find(|l| l.contains("failed; retrying in"))
        .expect("the retry line");
    assert!(retry.contains("camera{camera=synth}"), "{retry}");
    assert!(retry.contains(" err=cannot connect to "), "{retry}");
    // The camera's state reports (and everything else of its thread) carry the span too.
    let states: Vec<&str> = log.lines().filter(|l| l.contains("camera state")).collect();
    assert!(!states.is_empty(), "{log}");
    assert!(
        states.iter().all(|l| l.contains("camera{camera=synth}")),
        "{states:?}"
    );
}
