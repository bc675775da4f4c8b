//! Home Assistant discovery against a real broker: one retained config per camera and sensor,
//! a retained per-camera summary counted from the store at start and updated after each stored
//! verdict, and both published again after a reconnect.

use crate::util::broker::{start_broker, subscribe, Received};
use crate::util::{mqtt_config, runtime, PATIENCE};
use serde_json::Value;
use speedcam::event::{Event, EventType, SCHEMA_VERSION};
use speedcam::publish::home_assistant::{Discovery, Sensor};
use speedcam::publish::{MqttConfig, Publisher, Topics};
use speedcam::service::{EventSink, Verdict};
use speedcam::stats::StageTimes;
use speedcam::store::Store;
use std::time::Duration;

const DEVICE: &str = "dev-ha";

fn config(url: String) -> MqttConfig {
    MqttConfig {
        home_assistant_discovery: true,
        ..mqtt_config(url, DEVICE)
    }
}

/// A vehicle's records: its measurement and, when `speeding`, the speeding event derived from
/// it, with ids created `age_ms` ago.
fn vehicle(camera: &str, speed_kmh: f64, speeding: bool, age_ms: u64) -> Vec<Event> {
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let id = || ulid::Ulid::from_parts(now_ms - age_ms, rand_bits()).to_string();
    let measurement = Event {
        kind: EventType::Measurement,
        event_id: id(),
        device_id: DEVICE.into(),
        camera: camera.into(),
        track_id: 1,
        joined_track_ids: Vec::new(),
        class: "car".into(),
        class_scores: Default::default(),
        speed_kmh: Some(speed_kmh),
        reason: None,
        stopped_s: 0.0,
        speed_ci95_kmh: Some([speed_kmh - 2.0, speed_kmh + 2.0]),
        limit_kmh: 50.0,
        tolerance_kmh: 3.0,
        strict: false,
        t_enter_s: 1.0,
        t_exit_s: 2.0,
        time: "2026-11-27T12:00:00Z".into(),
        samples: 15,
        distance_m: 20.0,
        method: "fit".into(),
        model: "nanodet".into(),
        calibration: "cal".into(),
        measurement_id: None,
        thumbnail_topic: None,
        schema: SCHEMA_VERSION,
    };
    let mut out = vec![measurement.clone()];
    if speeding {
        out.push(Event {
            kind: EventType::Speeding,
            event_id: id(),
            measurement_id: Some(measurement.event_id.clone()),
            ..measurement
        });
    }
    out
}

fn rand_bits() -> u128 {
    ulid::Ulid::new().random()
}

fn last_json(msgs: &[Received], topic: &str) -> Option<Value> {
    msgs.iter()
        .rev()
        .find(|m| m.topic == topic)
        .and_then(|m| serde_json::from_slice(&m.payload).ok())
}

fn summary_is(msgs: &[Received], topic: &str, speeding: u64, measurements: u64) -> bool {
    last_json(msgs, topic)
        .is_some_and(|v| v["speeding_count"] == speeding && v["measurement_count"] == measurements)
}

/// Deletes retained messages (empty retained payloads), waiting for the broker's PUBACKs.
fn clear_retained(port: u16, topics: &[String]) {
    let mut opts = rumqttc::MqttOptions::new("test-clear-retained", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = rumqttc::Client::new(opts, 64);
    for t in topics {
        client
            .publish(t.clone(), rumqttc::QoS::AtLeastOnce, true, Vec::new())
            .unwrap();
    }
    let mut acked = 0;
    for ev in connection.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) => {
                acked += 1;
                if acked == topics.len() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("clearing retained messages: {e}"),
        }
    }
    let _ = client.disconnect();
}

#[test]
fn discovery_configs_are_retained_and_the_summary_counts_stored_and_new_verdicts() {
    let broker = start_broker();
    let topics = Topics::new("speedcam", DEVICE).unwrap();
    let discovery = Discovery::new("homeassistant", DEVICE, topics.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Before this start: cam1 saw two vehicles, one speeding; "gone" is no longer configured.
    for ev in vehicle("cam1", 48.0, false, 60_000)
        .into_iter()
        .chain(vehicle("cam1", 66.5, true, 50_000))
        .chain(vehicle("gone", 90.0, true, 40_000))
    {
        store.record_event(&ev, None, &[]).unwrap();
    }

    let rt = runtime();
    let publisher = Publisher::spawn(config(broker.url()), store.clone(), rt.handle()).unwrap();
    publisher.register_camera("cam1");
    publisher.set_camera_state("cam2", b"connecting");
    let sink = EventSink::new(store.clone(), Some(publisher), Some(topics.clone()), false);

    let configs: Vec<String> = ["cam1", "cam2"]
        .iter()
        .flat_map(|c| Sensor::ALL.map(|s| discovery.config_topic(c, s)))
        .collect();
    let (sum1, sum2) = (topics.summary("cam1"), topics.summary("cam2"));
    let expected = |m: &[Received]| {
        configs.iter().all(|t| m.iter().any(|x| &x.topic == t))
            && summary_is(m, &sum1, 1, 2)
            && summary_is(m, &sum2, 0, 0)
    };
    let live = subscribe(broker.port, &["homeassistant/#", "speedcam/+/+/summary"]);
    let got = live.wait_until(PATIENCE, expected);
    assert!(expected(&got), "{got:#?}");

    // A subscriber arriving later (Home Assistant starting) gets every config, retained.
    let late = subscribe(broker.port, &["homeassistant/#", "speedcam/+/+/summary"]);
    let got = late.wait_until(PATIENCE, expected);
    assert!(expected(&got), "{got:#?}");
    assert!(got.iter().all(|m| m.retain), "{got:#?}");
    let cfg_msgs: Vec<_> = got
        .iter()
        .filter(|m| m.topic.ends_with("/config"))
        .collect();
    assert_eq!(cfg_msgs.len(), configs.len(), "one per camera and sensor");
    for m in &cfg_msgs {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert!(v["unique_id"]
            .as_str()
            .unwrap()
            .starts_with("speedcam_dev-ha_"));
        assert_eq!(v["availability_topic"], topics.status());
    }
    assert!(
        !got.iter().any(|m| m.topic == topics.summary("gone")),
        "unconfigured cameras get no summary"
    );
    let s1 = last_json(&got, &sum1).unwrap();
    assert_eq!(s1["last_speed_kmh"], 66.5);

    // A verdict accepted now updates the summary (and its event still goes out).
    let speeding_sub = subscribe(broker.port, &[&topics.speeding("cam1")]);
    let mut times = StageTimes::default();
    let records = vehicle("cam1", 72.25, true, 0);
    for ev in &records {
        let mut v = Verdict {
            event: ev.clone(),
            thumbnail_jpeg: None,
            origin: None,
        };
        sink.accept(&mut v, &mut times).unwrap();
    }
    let got = live.wait_until(PATIENCE, |m| summary_is(m, &sum1, 2, 3));
    let s1 = last_json(&got, &sum1).unwrap();
    assert_eq!(s1["speeding_count"], 2, "{s1}");
    assert_eq!(s1["measurement_count"], 3, "{s1}");
    assert_eq!(s1["last_speed_kmh"], 72.25);
    assert_eq!(s1["last_event_id"], records[1].event_id.as_str());
    assert_eq!(s1["last_at"], "2026-11-27T12:00:00Z");
    let got = speeding_sub.wait_until(PATIENCE, |m| !m.is_empty());
    assert_eq!(got.len(), 1, "{got:?}");

    // Retained messages gone from the broker (say it lost them): a reconnect restores them.
    let mut all = configs.clone();
    all.extend([sum1.clone(), sum2.clone()]);
    clear_retained(broker.port, &all);
    let mut broker = broker;
    broker.restart();
    let after = subscribe(broker.port, &["homeassistant/#", "speedcam/+/+/summary"]);
    let back = |m: &[Received]| {
        all.iter()
            .all(|t| m.iter().any(|x| &x.topic == t && !x.payload.is_empty()))
            && summary_is(m, &sum1, 2, 3)
    };
    let got = after.wait_until(PATIENCE, back);
    assert!(back(&got), "{got:#?}\n{}", broker.log());
    drop(sink);
}
