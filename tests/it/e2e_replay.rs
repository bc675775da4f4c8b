//! End to end: a real broker, the real `speedcamd` binary replaying the bundled synthetic scene
//! (rendered by `speedcamd synth`, ground truth beside it), and the store read back with
//! `speedcamd events`. Every vehicle that crossed the zone must get exactly one measurement within
//! 3 km/h of truth; every speeder a speeding event with a decodable JPEG thumbnail over MQTT.

use crate::util::broker::{start_broker, subscribe};
use crate::util::{repo, speed_of, speedcamd, write_demo_config};
use speedcam::event::{Event, EventType};
use speedcam::truth::{load_truth, match_measurements};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT_KMH: f64 = 50.0;
const TOLERANCE_KMH: f64 = 3.0;

/// A config for the demo scene with the broker's URL and a fresh data dir.
fn write_config(dir: &Path, mqtt_url: &str) -> PathBuf {
    let scene = repo().join("media/demo/scene.mp4");
    write_demo_config(dir, "e2e", &scene.display().to_string(), mqtt_url, "")
}

fn parse_lines(stdout: &[u8]) -> Vec<Event> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

#[test]
fn replay_measures_every_vehicle_and_publishes_speeders() {
    let broker = start_broker();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker.url());
    let sub = subscribe(broker.port, &["speedcam/#"]);

    let check = speedcamd()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let check_out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check-config failed: {check_out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check_out.contains("RMS reprojection error"), "{check_out}");

    let out = speedcamd()
        .arg("replay")
        .arg(repo().join("media/demo/scene.mp4"))
        .arg("--config")
        .arg(&config)
        .args(["--json", "--drain-timeout", "30"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "replay failed ({}): {stderr}",
        out.status
    );
    eprintln!("{stderr}");
    let events = parse_lines(&out.stdout);
    let measurements: Vec<Event> = events
        .iter()
        .filter(|e| e.kind == EventType::Measurement)
        .cloned()
        .collect();
    let speeding: Vec<Event> = events
        .iter()
        .filter(|e| e.kind == EventType::Speeding)
        .cloned()
        .collect();

    // Every vehicle that crossed the zone: exactly one measurement, within 3 km/h.
    let truth = load_truth(&repo().join("media/demo/truth.json")).unwrap();
    let (matches, unmatched) = match_measurements(&truth, &measurements);
    assert!(
        matches.len() >= 6,
        "the demo scene has vehicles crossing the zone"
    );
    assert!(
        unmatched.is_empty(),
        "measurements matching no vehicle: {unmatched:#?}"
    );
    for m in &matches {
        let e = m.measured.as_ref().unwrap_or_else(|| {
            panic!(
                "vehicle {} (true {:.1} km/h) was not measured",
                m.vehicle_id, m.true_kmh
            )
        });
        let speed = speed_of(e);
        let err = speed - m.true_kmh;
        eprintln!(
            "vehicle {}: true {:.2} measured {:.2} error {:+.2} km/h ({} samples)",
            m.vehicle_id, m.true_kmh, speed, err, e.samples
        );
        assert!(
            err.abs() <= 3.0,
            "vehicle {}: true {:.2}, measured {:.2}",
            m.vehicle_id,
            m.true_kmh,
            speed
        );
        assert!(e.samples >= 5);
    }

    // Speeding events: exactly for the measurements over limit + tolerance; every clear speeder has one.
    for m in &measurements {
        let over = speed_of(m) > LIMIT_KMH + TOLERANCE_KMH;
        let ev: Vec<&Event> = speeding
            .iter()
            .filter(|s| s.measurement_id.as_deref() == Some(m.event_id.as_str()))
            .collect();
        assert_eq!(
            ev.len(),
            usize::from(over),
            "measurement {} at {:.1} km/h",
            m.event_id,
            speed_of(m)
        );
    }
    let clear_speeders = matches
        .iter()
        .filter(|m| m.true_kmh > LIMIT_KMH + TOLERANCE_KMH + 3.0)
        .count();
    assert!(clear_speeders >= 2, "the demo scene has speeders");
    assert!(speeding.len() >= clear_speeders);

    // MQTT: each speeding event and its JPEG thumbnail, each measurement.
    let base = "speedcam/e2e/synth";
    let msgs = sub.wait_until(Duration::from_secs(20), |msgs| {
        speeding.iter().all(|s| {
            msgs.iter()
                .any(|m| m.topic == format!("{base}/speeding/{}/thumbnail", s.event_id))
        }) && msgs
            .iter()
            .filter(|m| m.topic == format!("{base}/measurements"))
            .count()
            >= measurements.len()
    });
    for s in &speeding {
        let published: Vec<Event> = msgs
            .iter()
            .filter(|m| m.topic == format!("{base}/speeding"))
            .filter_map(|m| serde_json::from_slice::<Event>(&m.payload).ok())
            .filter(|e| e.event_id == s.event_id)
            .collect();
        assert!(
            !published.is_empty(),
            "speeding event {} not published",
            s.event_id
        );
        assert_eq!(published[0].speed_kmh, s.speed_kmh);
        let thumb_topic = format!("{base}/speeding/{}/thumbnail", s.event_id);
        assert_eq!(
            published[0].thumbnail_topic.as_deref(),
            Some(thumb_topic.as_str())
        );
        let jpeg = msgs
            .iter()
            .find(|m| m.topic == thumb_topic)
            .unwrap_or_else(|| panic!("no thumbnail for {}", s.event_id));
        let img = image::load_from_memory_with_format(&jpeg.payload, image::ImageFormat::Jpeg)
            .expect("thumbnail is a JPEG");
        assert!(
            img.width() >= 32 && img.height() >= 16,
            "thumbnail {}x{}",
            img.width(),
            img.height()
        );
    }
    let published_measurements: BTreeSet<String> = msgs
        .iter()
        .filter(|m| m.topic == format!("{base}/measurements"))
        .filter_map(|m| serde_json::from_slice::<Event>(&m.payload).ok())
        .map(|e| e.event_id)
        .collect();
    for m in &measurements {
        assert!(
            published_measurements.contains(&m.event_id),
            "measurement {} not published",
            m.event_id
        );
    }
    assert!(msgs
        .iter()
        .any(|m| m.topic == "speedcam/e2e/status" && m.payload == b"online"));

    // The store holds the same events, in the same shape.
    let listed = speedcamd()
        .args(["events", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let stored = parse_lines(&listed.stdout);
    let ids = |v: &[Event]| {
        v.iter()
            .map(|e| e.event_id.clone())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(&stored), ids(&events));
    for e in &events {
        let s = stored.iter().find(|s| s.event_id == e.event_id).unwrap();
        assert_eq!(s, e, "stored event differs from the printed one");
    }
    let other_camera = speedcamd()
        .args(["events", "--json", "--camera", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(parse_lines(&other_camera.stdout).is_empty());
}
