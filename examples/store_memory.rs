//! How much memory the sled store holds per byte it stores: writes N measurement records the
//! way the daemon does (event + outbox message in one transaction, flushed, then the outbox entry
//! acknowledged as on PUBACK; every 50th a speeding record with a 30 KB thumbnail) and prints the
//! process RSS against the bytes stored and the data directory's size at checkpoints.
//!
//! `cargo run --release --example store_memory -- 50000 [DIR]`
//!
//! Why: sled 0.34 keeps in memory about what it stores, so `[storage] max_bytes` also bounds the
//! daemon's RSS; the `growth/dir` column is the figure behind the daemon's memory warning
//! ([`speedcam::config::STORE_RSS_PER_BYTE`]).

use speedcam::event::{Event, EventType, SCHEMA_VERSION};
use speedcam::store::{dir_size_bytes, OutboxMessage, Store};

/// The daemon's allocator, so the figure is the daemon's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn event(i: u64, kind: EventType) -> Event {
    Event {
        kind,
        event_id: ulid::Ulid::new().to_string(),
        device_id: "pole-17".into(),
        camera: format!("cam{}", i % 4 + 1),
        track_id: i,
        joined_track_ids: Vec::new(),
        class: "car".into(),
        class_scores: [("car".to_string(), 0.71)].into(),
        speed_kmh: Some(40.0 + (i % 37) as f64),
        reason: None,
        stopped_s: 0.0,
        speed_ci95_kmh: Some([38.512, 41.733]),
        limit_kmh: 50.0,
        tolerance_kmh: 3.0,
        strict: false,
        t_enter_s: i as f64 * 0.731,
        t_exit_s: i as f64 * 0.731 + 1.25,
        time: "2026-11-28T00:00:00.123456789Z".into(),
        samples: 14,
        distance_m: 16.002,
        method: "fit".into(),
        model: "nanodet-g-416.onnx@f2310b1c".into(),
        calibration: "2f6c1a9e0b7d4c35".into(),
        measurement_id: None,
        thumbnail_topic: None,
        schema: SCHEMA_VERSION,
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().as_deref().unwrap_or("50000").parse()?;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("speedcam-store-memory-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir)?;
    let thumbnail = vec![0x5au8; 30_000];
    let base = rss_bytes();
    let mut stored: u64 = 0;
    println!("records  stored_MB  dir_MB  rss_MB  rss_growth_MB  growth/stored  growth/dir");
    for i in 1..=n {
        let speeding = i % 50 == 0;
        let ev = event(
            i,
            if speeding {
                EventType::Speeding
            } else {
                EventType::Measurement
            },
        );
        let json = serde_json::to_vec(&ev)?;
        let msg = OutboxMessage {
            topic: format!("speedcam/pole-17/{}/measurement", ev.camera),
            payload: json.clone(),
            qos: 1,
            retain: false,
        };
        let jpeg = speeding.then_some(thumbnail.as_slice());
        for key in store.record_event(&ev, jpeg, &[msg])? {
            store.outbox_ack(key)?;
        }
        stored += json.len() as u64 + if speeding { thumbnail.len() as u64 } else { 0 };
        if i % (n / 10).max(1) == 0 {
            let rss = rss_bytes();
            let growth = rss.saturating_sub(base);
            let dir_bytes = dir_size_bytes(&dir);
            println!(
                "{i:>7}  {:>9.1}  {:>6.1}  {:>6.1}  {:>13.1}  {:>13.2}  {:>10.2}",
                stored as f64 / 1e6,
                dir_bytes as f64 / 1e6,
                rss as f64 / 1e6,
                growth as f64 / 1e6,
                growth as f64 / stored as f64,
                growth as f64 / dir_bytes.max(1) as f64
            );
        }
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
