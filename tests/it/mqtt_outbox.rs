//! The outbox against a real broker: nothing is lost in an outage, entries leave sled only on
//! PUBACK, status/last will behave, thumbnails arrive as raw bytes.

use crate::util::broker::{
    start_broker, start_broker_on, subscribe, subscribe_with, Received, TestBroker,
};
use crate::util::{free_port, mqtt_config, runtime, wait_for, PATIENCE};
use speedcam::event::{Event, EventType, SCHEMA_VERSION};
use speedcam::publish::{Publisher, Topics};
use speedcam::store::Store;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A broker and a publisher for `device` on a fresh store (the temp dir holds the store).
fn broker_and_publisher(
    device: &str,
) -> (
    TestBroker,
    Topics,
    tempfile::TempDir,
    tokio::runtime::Runtime,
    Publisher,
) {
    let broker = start_broker();
    let (topics, dir, _store, rt, publisher) = publisher_for(broker.url(), device);
    (broker, topics, dir, rt, publisher)
}

/// A publisher for `device` to `url` on a fresh store (kept in the returned temp dir), with the
/// store handle for recording events.
fn publisher_for(
    url: String,
    device: &str,
) -> (
    Topics,
    tempfile::TempDir,
    Store,
    tokio::runtime::Runtime,
    Publisher,
) {
    let topics = Topics::new("speedcam", device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();
    let publisher = Publisher::spawn(mqtt_config(url, device), store.clone(), rt.handle()).unwrap();
    (topics, dir, store, rt, publisher)
}

fn speeding_event(device_id: &str, camera: &str, track_id: u64) -> Event {
    Event {
        kind: EventType::Speeding,
        event_id: ulid::Ulid::new().to_string(),
        device_id: device_id.into(),
        camera: camera.into(),
        track_id,
        joined_track_ids: Vec::new(),
        class: "car".into(),
        class_scores: Default::default(),
        speed_kmh: Some(70.0 + track_id as f64),
        reason: None,
        stopped_s: 0.0,
        speed_ci95_kmh: Some([68.0 + track_id as f64, 72.0 + track_id as f64]),
        limit_kmh: 50.0,
        tolerance_kmh: 3.0,
        strict: false,
        t_enter_s: 1.0,
        t_exit_s: 2.0,
        time: "2026-01-01T00:00:00Z".into(),
        samples: 15,
        distance_m: 20.0,
        method: "fit".into(),
        model: "nanodet".into(),
        calibration: "cal".into(),
        measurement_id: None,
        thumbnail_topic: None,
        schema: SCHEMA_VERSION,
    }
}

/// A fake JPEG holding every byte value (not valid UTF-8), distinct per track.
fn jpeg(track_id: u64) -> Vec<u8> {
    let mut bytes = vec![0xff, 0xd8];
    bytes.extend((0..=255u8).cycle().skip(track_id as usize).take(300));
    bytes
}

/// Records `n` speeding events with thumbnails; returns their ids.
fn record_events(store: &Store, topics: &Topics, device: &str, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut ev = speeding_event(device, "cam1", i);
            ev.thumbnail_topic = Some(topics.thumbnail("cam1", &ev.event_id));
            let thumb = jpeg(i);
            let msgs = topics.event_messages(&ev, Some(&thumb), false).unwrap();
            store.record_event(&ev, Some(&thumb), &msgs).unwrap();
            ev.event_id
        })
        .collect()
}

fn event_ids(msgs: &[Received], topic: &str) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m.topic == topic)
        .map(|m| {
            serde_json::from_slice::<Event>(&m.payload)
                .unwrap()
                .event_id
        })
        .collect()
}

#[test]
fn events_recorded_during_an_outage_are_all_delivered_when_the_broker_is_back() {
    let mut broker = start_broker();
    let device = "dev-outage";
    let topics = Topics::new("speedcam", device).unwrap();
    // A persistent session: the broker queues for the subscriber while it is away too.
    let sub = subscribe_with(broker.port, &["speedcam/dev-outage/#"], "sub-outage", true);
    broker.stop();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();
    let publisher = Publisher::spawn(
        mqtt_config(broker.url(), device),
        store.clone(),
        rt.handle(),
    )
    .unwrap();
    let ids = record_events(&store, &topics, device, 10);
    publisher.notify();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        store.outbox_len(),
        20,
        "nothing may leave the outbox while the broker is down"
    );
    assert!(!publisher.stats().connected);

    broker.start();
    let speeding = topics.speeding("cam1");
    let msgs = sub.wait_until(Duration::from_secs(10), |m| {
        event_ids(m, &speeding).len() == ids.len()
            && m.iter().filter(|x| x.topic.ends_with("/thumbnail")).count() >= ids.len()
    });
    assert_eq!(
        event_ids(&msgs, &speeding),
        ids.iter().cloned().collect(),
        "{}",
        broker.log()
    );
    for (i, id) in ids.iter().enumerate() {
        let thumb = sub.on_topic(&topics.thumbnail("cam1", id));
        assert!(!thumb.is_empty(), "no thumbnail for {id}");
        assert_eq!(thumb[0].payload, jpeg(i as u64), "thumbnail bytes of {id}");
    }
    assert!(wait_for(PATIENCE, || store.outbox_len() == 0));
    let stats = publisher.stats();
    assert_eq!(stats.acked, 20);
    assert!(stats.published >= 20, "{stats:?}");
    assert!(stats.connected);

    assert!(
        rt.block_on(publisher.shutdown(Duration::from_secs(3))),
        "outbox drained"
    );
    let status = sub.wait_until(PATIENCE, |m| {
        m.iter()
            .any(|x| x.topic == topics.status() && x.payload == b"offline")
    });
    let last = status.iter().rev().find(|m| m.topic == topics.status());
    assert_eq!(last.map(|m| m.payload.as_slice()), Some(&b"offline"[..]));
}

/// A broker that accepts connections and never acknowledges a publish.
struct SilentBroker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentBroker {
    /// Listens on a fresh loopback port; returns it with the broker.
    fn start() -> (u16, SilentBroker) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((mut c, _)) = listener.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    let mut first = [0u8; 2];
                    if c.read_exact(&mut first).is_ok() && first[0] == 0x10 {
                        c.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap(); // CONNACK, accepted
                    }
                    conns.push(c);
                }
                let mut buf = [0u8; 65536];
                for c in &mut conns {
                    let _ = c.read(&mut buf); // swallow publishes, never PUBACK
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let broker = SilentBroker {
            stop,
            thread: Some(thread),
        };
        (port, broker)
    }
}

impl Drop for SilentBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn entries_leave_the_outbox_only_after_puback_and_are_resent_on_reconnect() {
    let (port, silent) = SilentBroker::start();
    let device = "dev-puback";
    let (topics, _dir, store, _rt, publisher) =
        publisher_for(format!("mqtt://127.0.0.1:{port}"), device);
    let ids = record_events(&store, &topics, device, 5);
    publisher.notify();
    assert!(
        wait_for(PATIENCE, || publisher.stats().published >= 10),
        "publisher never sent: {:?}",
        publisher.stats()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        store.outbox_len(),
        10,
        "sent but unacknowledged entries must stay"
    );
    assert_eq!(publisher.stats().acked, 0);
    drop(silent);

    // A real broker on the same port: the same entries go out again and are acked this time.
    let broker = start_broker_on(port);
    let sub = subscribe(broker.port, &["speedcam/dev-puback/+/speeding"]);
    let speeding = topics.speeding("cam1");
    assert!(
        wait_for(Duration::from_secs(12), || store.outbox_len() == 0),
        "outbox not drained: {:?}\n{}",
        publisher.stats(),
        broker.log()
    );
    assert_eq!(publisher.stats().acked, 10);
    // Everything acked is at the broker; a subscriber that arrived late may have missed some,
    // but never sees an id that was not recorded.
    let got = event_ids(&sub.messages(), &speeding);
    assert!(got.iter().all(|id| ids.contains(id)), "{got:?}");
    drop(publisher);
}

#[test]
fn status_is_retained_online_and_the_last_will_says_offline_when_killed() {
    let (broker, topics, _dir, _rt, publisher) = broker_and_publisher("dev-status");
    let status = topics.status();
    let live = subscribe(broker.port, &[&status]);
    let got = live.wait_until(PATIENCE, |m| m.iter().any(|x| x.payload == b"online"));
    assert!(got.iter().any(|x| x.payload == b"online"), "{got:?}");
    assert!(publisher.stats().connected);

    // A subscriber arriving later gets the retained "online".
    let late = subscribe(broker.port, &[&status]);
    let got = late.wait_until(PATIENCE, |m| !m.is_empty());
    assert_eq!(
        got.first().map(|m| (m.payload.as_slice(), m.retain)),
        Some((&b"online"[..], true))
    );

    // Dropped without shutdown = crashed: the broker publishes the will.
    drop(publisher);
    let got = live.wait_until(PATIENCE, |m| m.iter().any(|x| x.payload == b"offline"));
    assert!(
        got.iter().any(|x| x.payload == b"offline"),
        "{got:?}\n{}",
        broker.log()
    );
    let after = subscribe(broker.port, &[&status]);
    let got = after.wait_until(PATIENCE, |m| !m.is_empty());
    assert_eq!(
        got.first().map(|m| (m.payload.as_slice(), m.retain)),
        Some((&b"offline"[..], true))
    );
}

#[test]
fn shutdown_without_a_broker_gives_up_at_the_deadline_and_keeps_the_outbox() {
    let port = free_port();
    let device = "dev-nobroker";
    let (topics, dir, store, _rt, publisher) =
        publisher_for(format!("mqtt://127.0.0.1:{port}"), device);
    record_events(&store, &topics, device, 2);
    publisher.notify();
    let t0 = Instant::now();
    let drained = publisher.shutdown_blocking(Duration::from_millis(500));
    let took = t0.elapsed();
    assert!(!drained);
    // It waited for the deadline (a lower bound no load can break); the upper bound only
    // guards against a hang.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(60),
        "{took:?}"
    );
    drop(store);
    assert_eq!(
        Store::open(dir.path()).unwrap().outbox_len(),
        4,
        "kept for the next start"
    );
}

/// Figures for the report: `cargo test --release --test it mqtt_outbox::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_figures() {
    let broker = start_broker();
    let device = "dev-bench";
    let topics = Topics::new("speedcam", device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = 500u64;
    let t0 = Instant::now();
    let ids = record_events(&store, &topics, device, n);
    let record_s = t0.elapsed().as_secs_f64();
    let rt = runtime();
    let t1 = Instant::now();
    let publisher = Publisher::spawn(
        mqtt_config(broker.url(), device),
        store.clone(),
        rt.handle(),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(60), || store.outbox_len() == 0));
    let drain_s = t1.elapsed().as_secs_f64();
    assert_eq!(publisher.stats().acked, 2 * n);
    eprintln!(
        "{:?}: record_event (flushed, 2 messages + 302 B thumbnail): {:.2} ms each; \
         outbox drain: {:.0} messages/s ({} events)",
        broker.kind,
        record_s * 1000.0 / n as f64,
        (2 * n) as f64 / drain_s,
        ids.len()
    );
}

#[test]
fn a_broker_restart_in_the_middle_of_a_backlog_loses_nothing() {
    let mut broker = start_broker();
    let device = "dev-restart";
    let topics = Topics::new("speedcam", device).unwrap();
    let sub = subscribe_with(
        broker.port,
        &["speedcam/dev-restart/+/speeding"],
        "sub-restart",
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();
    let publisher = Publisher::spawn(
        mqtt_config(broker.url(), device),
        store.clone(),
        rt.handle(),
    )
    .unwrap();
    assert!(wait_for(PATIENCE, || publisher.stats().connected));
    let ids = record_events(&store, &topics, device, 3000);
    publisher.notify();
    // Cut the connection while the backlog is being sent.
    assert!(wait_for(PATIENCE, || publisher.stats().acked > 0));
    broker.stop();
    let left = store.outbox_len();
    assert!(
        left > 0,
        "backlog drained before the restart; the test needs a bigger one"
    );
    broker.start();
    let speeding = topics.speeding("cam1");
    let msgs = sub.wait_until(Duration::from_secs(15), |m| {
        event_ids(m, &speeding).len() == ids.len()
    });
    let got = event_ids(&msgs, &speeding);
    let missing: Vec<_> = ids.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {:?}",
        missing.len(),
        ids.len(),
        publisher.stats()
    );
    assert!(wait_for(PATIENCE, || store.outbox_len() == 0));
    assert!(publisher.stats().reconnects >= 1, "{:?}", publisher.stats());
    eprintln!(
        "restart with {left} entries left: {:?}, {} speeding messages received for {} events (duplicates are allowed)",
        publisher.stats(),
        msgs.iter().filter(|m| m.topic == speeding).count(),
        ids.len()
    );
}

#[test]
fn camera_state_is_retained_and_stats_are_published() {
    let (broker, topics, _dir, _rt, publisher) = broker_and_publisher("dev-state");
    let stats_sub = subscribe(broker.port, &[&topics.stats()]);
    publisher.set_camera_state("cam1", b"reconnecting: timeout");
    publisher.set_camera_state("cam1", b"streaming");
    assert!(wait_for(PATIENCE, || publisher.stats().connected));
    publisher.publish_stats(br#"{"fps_in":25}"#);
    let got = stats_sub.wait_until(PATIENCE, |m| !m.is_empty());
    assert_eq!(
        got.first().map(|m| m.payload.as_slice()),
        Some(&br#"{"fps_in":25}"#[..])
    );

    let state = topics.state("cam1");
    let late = subscribe(broker.port, &[&state]);
    let got = late.wait_until(PATIENCE, |m| !m.is_empty());
    assert_eq!(
        got.first().map(|m| (m.payload.as_slice(), m.retain)),
        Some((&b"streaming"[..], true))
    );
}
