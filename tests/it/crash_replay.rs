//! Crash safety of a replay (issue 7): speeding events are evidence, none may vanish and none may
//! be invented.
//!
//! A reference, uninterrupted `speedcamd run` of a short recording (the first 4.6 s of the demo
//! scene: 4-5 vehicles, one speeder) gives the reference set of events by origin (kind, track,
//! zone entry/exit frame times, speed). Then, on a fresh data dir, the daemon is started and
//! `kill -9`ed 20 times at random points (seeded, stratified over the reference run's duration,
//! so some fall in model loading, some mid-replay, some while events are published), restarted
//! each time, with a subscriber on the broker throughout; finally it runs to the end and drains.
//! Checked: the store opens after every kill and never holds a duplicate or an event outside
//! the reference set; the final store holds exactly the reference set, each once; every event id
//! seen on MQTT is stored; every stored event was received on MQTT; the outbox ends empty.
//!
//! `SPEEDCAM_CRASH_SEED=N` replays a seed, `SPEEDCAM_CRASH_CYCLES=N` changes the number of kills.

use crate::util::broker::{start_broker, subscribe, Received};
use crate::util::daemon::{event_ids, http_get, metric, Daemon};
use crate::util::{free_port, repo, say, write_demo_config, Rng};
use speedcam::event::{Event, EventType};
use speedcam::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A vehicle's record by origin: kind, track id, entry and exit frame times (µs), speed (m km/h).
type Origin = (&'static str, u64, i64, i64, Option<i64>);

fn origin(e: &Event) -> Origin {
    let kind = match e.kind {
        EventType::Measurement => "measurement",
        EventType::Speeding => "speeding",
    };
    (
        kind,
        e.track_id,
        (e.t_enter_s * 1e6).round() as i64,
        (e.t_exit_s * 1e6).round() as i64,
        e.speed_kmh.map(|v| (v * 1e3).round() as i64),
    )
}

/// Origins with their multiplicity.
fn by_origin(events: &[Event]) -> BTreeMap<Origin, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(origin(e)).or_insert(0) += 1;
    }
    out
}

fn clip() -> PathBuf {
    repo().join("tests/data/video/scene_4s6.mp4")
}

/// Writes the config (demo camera on the short clip, metrics on `metrics_port`); its path.
fn config(dir: &Path, device: &str, mqtt_url: &str, metrics_port: u16) -> PathBuf {
    write_demo_config(
        dir,
        device,
        &clip().display().to_string(),
        mqtt_url,
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\nstats_interval_s = 1\n"),
    )
}

/// Waits until the daemon's outbox depth is 0 (true) or `timeout` passes.
fn wait_drained(metrics_port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if metric(&http_get(metrics_port, "/metrics"), "speedcam_outbox_depth") == Some(0.0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Opens the store the daemon left behind (it must open) and returns its events and outbox depth.
fn read_store(data: &Path, when: &str) -> (Vec<Event>, usize) {
    let store = Store::open(data).unwrap_or_else(|e| panic!("store does not open {when}: {e}"));
    let events = store
        .events(None, None)
        .unwrap_or_else(|e| panic!("events unreadable {when}: {e}"));
    let depth = store.outbox_len();
    drop(store);
    // sled's flusher thread lets go of the directory lock within its 500 ms tick.
    std::thread::sleep(Duration::from_millis(600));
    (events, depth)
}

#[test]
fn kill_9_at_random_points_of_a_replay_loses_nothing_and_duplicates_nothing() {
    let started = Instant::now();
    let broker = start_broker();
    let sub = subscribe(broker.port, &["speedcam/#"]);
    let seed = std::env::var("SPEEDCAM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        });
    let cycles: usize = std::env::var("SPEEDCAM_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    say(&format!(
        "crash_replay: seed {seed} (rerun with SPEEDCAM_CRASH_SEED={seed}), {cycles} kills"
    ));
    let mut rng = Rng(seed);

    // The reference: one uninterrupted run.
    let ref_dir = tempfile::tempdir().unwrap();
    let ref_metrics = free_port();
    let ref_cfg = config(ref_dir.path(), "crashref", &broker.url(), ref_metrics);
    let t0 = Instant::now();
    let mut d = Daemon::start(&ref_cfg, &ref_dir.path().join("daemon.log"));
    assert!(
        d.wait_log("file source ended", Duration::from_secs(600)),
        "reference run did not finish:\n{}",
        d.log()
    );
    let run_s = t0.elapsed().as_secs_f64();
    assert!(
        wait_drained(ref_metrics, Duration::from_secs(60)),
        "reference outbox did not drain"
    );
    d.terminate(Duration::from_secs(30));
    let (reference, depth) = read_store(&ref_dir.path().join("data"), "after the reference run");
    assert_eq!(depth, 0);
    let ref_set = by_origin(&reference);
    assert!(
        ref_set.len() >= 3 && ref_set.keys().any(|o| o.0 == "speeding"),
        "the clip gives several vehicles and a speeder: {ref_set:?}"
    );
    assert!(
        ref_set.values().all(|&n| n == 1),
        "reference has duplicates: {ref_set:?}"
    );
    say(&format!(
        "crash_replay: reference run {run_s:.1} s, {} events",
        reference.len()
    ));

    // The crash runs, on a fresh data dir.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let metrics_port = free_port();
    let cfg = config(dir.path(), "crash", &broker.url(), metrics_port);
    let log = dir.path().join("daemon.log");
    let mut phases = BTreeMap::<&str, usize>::new();
    // The machine's load changes: a restart seen to finish sooner than the reference shortens
    // the span the remaining kills are spread over (kills after the end test little).
    let mut run_s = run_s;
    for i in 0..cycles {
        // Stratified: kill i falls in the i-th slice of a run's duration.
        let at_s = run_s * (i as f64 + rng.uniform()) / cycles as f64;
        let mut d = Daemon::start(&cfg, &log);
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(at_s);
        let mut polls = 0u32;
        while Instant::now() < until {
            d.assert_running(&format!("before kill {i} at {at_s:.1} s"));
            polls += 1;
            if polls.is_multiple_of(10) && d.log().contains("file source ended") {
                run_s = run_s.min(start.elapsed().as_secs_f64() + 1.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = d.log();
        let phase = if !text.contains("detector ready") {
            "model loading"
        } else if !text.contains("file source ended") {
            "replaying"
        } else {
            "after the end (publishing)"
        };
        *phases.entry(phase).or_insert(0) += 1;
        let killed_at_s = start.elapsed().as_secs_f64();
        d.kill9();
        let (events, depth) = read_store(&data, &format!("after kill {i}"));
        let set = by_origin(&events);
        say(&format!(
            "crash_replay: kill {i:2} at {killed_at_s:5.1} s ({phase}): {} events stored, outbox {depth}",
            events.len()
        ));
        for (o, n) in &set {
            assert_eq!(*n, 1, "after kill {i}: {o:?} stored {n} times");
            assert!(
                ref_set.contains_key(o),
                "after kill {i}: {o:?} is not in the reference {ref_set:?}"
            );
        }
    }
    say(&format!("crash_replay: kill phases {phases:?}"));

    // The last start runs to the end and drains.
    let mut d = Daemon::start(&cfg, &log);
    assert!(
        d.wait_log("file source ended", Duration::from_secs(600)),
        "final run did not finish:\n{}",
        d.log()
    );
    assert!(
        wait_drained(metrics_port, Duration::from_secs(60)),
        "outbox did not drain:\n{}",
        d.log()
    );
    d.terminate(Duration::from_secs(30));
    let (events, depth) = read_store(&data, "after the final run");
    assert_eq!(depth, 0, "the outbox ends empty");
    assert_eq!(
        by_origin(&events),
        ref_set,
        "the final store holds exactly the reference set, each once"
    );
    let stored: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(stored.len(), events.len(), "no event id twice");
    // A speeding event points at a stored measurement (also one stored before a kill).
    for e in events.iter().filter(|e| e.kind == EventType::Speeding) {
        let m = e.measurement_id.as_deref().expect("measurement id");
        assert!(
            stored.contains(m),
            "speeding {} points at {m}, not stored",
            e.event_id
        );
    }
    let prefix = "speedcam/crash/";
    let got = |msgs: &[Received]| {
        let ours: Vec<_> = msgs
            .iter()
            .filter(|m| m.topic.starts_with(prefix))
            .cloned()
            .collect();
        event_ids(&ours)
    };
    let msgs = sub.wait_until(Duration::from_secs(30), |m| stored.is_subset(&got(m)));
    let received = got(&msgs);
    let unreceived: Vec<_> = stored.difference(&received).collect();
    assert!(
        unreceived.is_empty(),
        "stored but never received on MQTT: {unreceived:?}"
    );
    let lost: Vec<_> = received.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "published before a kill but not in the final store: {lost:?}"
    );
    say(&format!(
        "crash_replay: {} events, {} ids on MQTT, {:.0} s in all",
        events.len(),
        received.len(),
        started.elapsed().as_secs_f64()
    ));
    drop(broker);
}
