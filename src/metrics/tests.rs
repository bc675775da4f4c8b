use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The value of the series `name{labels}` in Prometheus text (labels as written, in order).
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name_and_labels)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn feed(c: &CameraMetrics, frames: u64, detected: u64) {
    for i in 0..frames {
        c.frame_in();
        if i < detected {
            c.detected();
        } else {
            c.skipped();
        }
    }
}

#[test]
fn prometheus_text_and_stats_json_agree() {
    let m = Metrics::new("pole-1");
    let a = m.camera("cam1");
    let b = m.camera("cam2");
    feed(&a, 7, 3);
    feed(&b, 2, 2);
    a.dropped(4);
    a.detect_error();
    a.store_error();
    a.measurement();
    a.measurement();
    a.speeding();
    b.measurement();
    m.set_outbox_depth(5);
    m.set_publisher_connected(true);
    // The same handle again: counters are shared, not reset.
    m.camera("cam1").frame_in();

    let text = m.render_prometheus();
    let json = m.stats_payload(10.0);
    for (cam, c) in json["cameras"].as_object().expect("cameras").iter() {
        for (metric, key) in [
            ("speedcam_frames_total", "frames"),
            ("speedcam_frames_detected_total", "detected"),
            ("speedcam_frames_skipped_total", "skipped"),
            ("speedcam_frames_dropped_total", "dropped"),
            ("speedcam_detect_errors_total", "detect_errors"),
            ("speedcam_store_errors_total", "store_errors"),
            ("speedcam_measurements_total", "measurements"),
            ("speedcam_speeding_total", "speeding"),
        ] {
            let prom = series(&text, &format!("{metric}{{camera=\"{cam}\"}}"))
                .unwrap_or_else(|| panic!("{metric} of {cam} missing:\n{text}"));
            assert_eq!(Some(prom), c[key].as_f64(), "{metric} {cam}");
        }
    }
    assert_eq!(json["cameras"]["cam1"]["frames"], 8);
    assert_eq!(json["cameras"]["cam1"]["skipped"], 4);
    assert_eq!(json["cameras"]["cam2"]["measurements"], 1);
    assert_eq!(series(&text, "speedcam_outbox_depth"), Some(5.0));
    assert_eq!(json["outbox_depth"], 5);
    assert_eq!(series(&text, "speedcam_publisher_connected"), Some(1.0));
    assert_eq!(json["publisher_connected"], true);
    assert!(
        text.contains("speedcam_build_info{device_id=\"pole-1\",version=\""),
        "{text}"
    );
}

#[test]
fn stats_rates_are_deltas_since_the_previous_payload() {
    let m = Metrics::new("dev");
    let c = m.camera("cam1");
    feed(&c, 100, 25);
    let first = m.stats_payload(10.0);
    assert_eq!(first["schema"], 1);
    assert_eq!(first["device_id"], "dev");
    assert_eq!(first["uptime_s"], 10.0);
    assert_eq!(first["interval_s"], 10.0);
    assert_eq!(first["publisher_connected"], serde_json::Value::Null);
    let cam = &first["cameras"]["cam1"];
    assert_eq!(
        (&cam["fps_in"], &cam["fps_detected"], &cam["fps_skipped"]),
        (&10.0.into(), &2.5.into(), &7.5.into())
    );
    feed(&c, 50, 10);
    let second = m.stats_payload(15.0);
    let cam = &second["cameras"]["cam1"];
    assert_eq!(second["interval_s"], 5.0);
    assert_eq!(
        (&cam["fps_in"], &cam["fps_detected"]),
        (&10.0.into(), &2.0.into())
    );
    assert_eq!(cam["frames"], 150);
    // A camera that appears between payloads counts from zero; no time passing gives 0 fps.
    let late = m.camera("cam2");
    late.frame_in();
    let third = m.stats_payload(15.0);
    assert_eq!(third["cameras"]["cam2"]["fps_in"], 0.0);
    assert_eq!(third["cameras"]["cam2"]["frames"], 1);
}

#[test]
fn stage_times_reach_histogram_and_window_percentiles() {
    let m = Metrics::new("dev");
    let c = m.camera("cam1");
    let mut times = StageTimes::default();
    times.set_observer(Some(c.observer()));
    for i in 1..=100 {
        times.record(Stage::Inference, i as f64);
    }
    c.stage_ms(Stage::Decode, 0.05);
    c.stage_ms(Stage::Decode, f64::NAN);
    let text = m.render_prometheus();
    let h = "speedcam_stage_duration_seconds";
    assert_eq!(
        series(
            &text,
            &format!("{h}_count{{camera=\"cam1\",stage=\"inference\"}}")
        ),
        Some(100.0)
    );
    assert_eq!(
        series(
            &text,
            &format!("{h}_bucket{{camera=\"cam1\",stage=\"inference\",le=\"0.05\"}}")
        ),
        Some(50.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!("{h}_count{{camera=\"cam1\",stage=\"decode\"}}")
        ),
        Some(1.0),
        "NaN is ignored"
    );
    let json = m.stats_payload(1.0);
    let inf = &json["cameras"]["cam1"]["stages"]["inference"];
    assert_eq!(
        (&inf["count"], &inf["p50_ms"], &inf["p99_ms"]),
        (&100.into(), &51.0.into(), &99.0.into()),
        "{json}"
    );
    assert!(json["cameras"]["cam1"]["stages"].get("track").is_none());
    // The window restarts with every payload; the histogram keeps counting.
    let json = m.stats_payload(2.0);
    assert!(json["cameras"]["cam1"]["stages"]
        .as_object()
        .is_some_and(|s| s.is_empty()));
    times.record(Stage::Inference, 1.0);
    let text = m.render_prometheus();
    assert_eq!(
        series(
            &text,
            &format!("{h}_count{{camera=\"cam1\",stage=\"inference\"}}")
        ),
        Some(101.0)
    );
}

#[test]
fn source_state_is_one_hot_over_known_states() {
    let m = Metrics::new("dev");
    let c = m.camera("cam1");
    let state = |text: &str, s: &str| {
        series(
            text,
            &format!("speedcam_source_state{{camera=\"cam1\",state=\"{s}\"}}"),
        )
    };
    let text = m.render_prometheus();
    assert_eq!(state(&text, "connecting"), Some(1.0));
    assert_eq!(state(&text, "streaming"), Some(0.0));
    c.set_source_state("streaming");
    c.set_source_state("stalled");
    let text = m.render_prometheus();
    for s in SOURCE_STATES {
        let want = if s == "stalled" { 1.0 } else { 0.0 };
        assert_eq!(state(&text, s), Some(want), "{s}");
    }
    assert_eq!(
        m.stats_payload(1.0)["cameras"]["cam1"]["source_state"],
        "stalled"
    );
    // An unknown name is exported as given, and cleared again on the next change.
    c.set_source_state("paused");
    c.set_source_state("streaming");
    let text = m.render_prometheus();
    assert_eq!(state(&text, "paused"), Some(0.0));
    assert_eq!(state(&text, "streaming"), Some(1.0));
}

#[test]
fn status_line_sums_cameras_and_names_trouble() {
    let m = Metrics::new("dev");
    let a = m.camera("cam1");
    let b = m.camera("cam2");
    a.set_source_state("streaming");
    b.set_source_state("streaming");
    feed(&a, 100, 20);
    feed(&b, 49, 21);
    a.speeding();
    a.speeding();
    b.speeding();
    assert_eq!(
        m.status_line(10.0),
        "2 cameras streaming, 14.9 fps in, 4.1 det/s, 3 speeding, outbox 0"
    );
    // Rates since the previous line; stats payloads keep their own window.
    feed(&a, 10, 0);
    let _ = m.stats_payload(12.0);
    b.set_source_state("reconnecting");
    m.set_outbox_depth(7);
    m.set_publisher_connected(false);
    assert_eq!(
        m.status_line(20.0),
        "1/2 cameras streaming (cam2 reconnecting), 1.0 fps in, 0.0 det/s, 3 speeding, outbox 7, MQTT disconnected"
    );
    let one = Metrics::new("dev");
    one.camera("cam1").set_source_state("streaming");
    assert_eq!(
        one.status_line(0.0),
        "1 camera streaming, 0.0 fps in, 0.0 det/s, 0 speeding, outbox 0"
    );
}

#[test]
fn metrics_config_loopback_and_warning() {
    let mut c = MetricsConfig::default();
    assert!(c.is_loopback() && c.exposure_warning().is_none());
    assert_eq!(c.stats_interval, Duration::from_secs(10));
    c.listen = Some("127.0.0.1:9464".parse().unwrap());
    assert!(c.is_loopback());
    c.listen = Some("[::1]:9464".parse().unwrap());
    assert!(c.is_loopback());
    c.listen = Some("0.0.0.0:9464".parse().unwrap());
    assert!(!c.is_loopback());
    let w = c.exposure_warning().expect("warning");
    assert!(
        w.contains("0.0.0.0:9464") && w.contains("127.0.0.1:9464"),
        "{w}"
    );
}

/// Sends `request` to `addr` and returns the whole response (the server closes the connection).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn endpoint_serves_metrics_and_404s_the_rest() {
    let m = Metrics::new("pole-1");
    m.camera("cam1").frame_in();
    let server = serve("127.0.0.1:0".parse().unwrap(), m.clone()).expect("serve");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let r = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{r}"
    );
    assert!(
        r.contains("speedcam_frames_total{camera=\"cam1\"} 1"),
        "{r}"
    );

    let r = http(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");

    // The port is taken: the error names the address and the key to change.
    let err = serve(addr, m.clone()).unwrap_err();
    // The socket error is in the message once, not chained again.
    let err = speedcam_core::error_chain::assert_cause_printed_once(&err);
    assert!(
        err.contains(&addr.to_string()) && err.contains("[metrics] listen"),
        "{err}"
    );

    server.shutdown();
    // tiny_http's accept thread closes the socket on its next turn, just after shutdown: polled
    // (the minute only turns a hang into a failure).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening a minute after shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = serve(addr, m).expect("the port is free again");
    assert_eq!(again.local_addr(), addr);
}

#[test]
fn frame_age_is_a_per_camera_histogram_in_seconds() {
    let m = Metrics::new("pole-1");
    let a = m.camera("cam1");
    for ms in [12.0, 80.0, 80.0, 450.0, f64::NAN] {
        a.frame_age_ms(ms);
    }
    let text = m.render_prometheus();
    let count = series(&text, "speedcam_frame_age_seconds_count{camera=\"cam1\"}");
    assert_eq!(count, Some(4.0), "{text}");
    let sum = series(&text, "speedcam_frame_age_seconds_sum{camera=\"cam1\"}").unwrap_or(0.0);
    assert!((sum - 0.622).abs() < 1e-9, "{sum}");
    let le = |b: &str| {
        series(
            &text,
            &format!("speedcam_frame_age_seconds_bucket{{camera=\"cam1\",le=\"{b}\"}}"),
        )
    };
    assert_eq!(
        (le("0.02"), le("0.075"), le("0.1"), le("0.5")),
        (Some(1.0), Some(1.0), Some(3.0), Some(4.0)),
        "{text}"
    );
}
