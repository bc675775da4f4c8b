use super::*;
use crate::event::Event;
use crate::store::OutboxMessage;

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_750_000_000_000;

fn event_at(ms: u64, n: u64) -> Event {
    crate::event::test_event(
        ulid::Ulid::from_parts(ms, u128::from(n)).to_string(),
        "cam1",
        n,
    )
}

/// Incompressible-looking bytes of `len` (sled stores values as given).
fn thumbnail(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn announce(ev: &Event) -> OutboxMessage {
    OutboxMessage {
        topic: format!("speedcam/dev1/cam1/event/{}", ev.event_id),
        payload: serde_json::to_vec(ev).unwrap(),
        qos: 1,
        retain: false,
    }
}

/// Thousands of events with 20-50 KB thumbnails over 60 simulated days (no sleeping: time is
/// the ULID and the `now` passed to each pass): the data directory's real size stays under the
/// cap all along, the oldest events go, the newest stay, and an old event still in the outbox
/// is kept.
#[test]
fn long_run_stays_under_the_byte_cap_and_keeps_undelivered_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let max_bytes: u64 = 48 << 20;
    let retention = Retention::new(
        dir.path(),
        RetentionPolicy {
            max_age: Some(Duration::from_millis(30 * DAY_MS)),
            max_bytes,
        },
    );
    let events: u64 = 4000;
    let step_ms = 60 * DAY_MS / events;
    let prune_every_ms = 3_600_000; // hourly passes
    let mut last_prune = 0;
    let mut peak: u64 = 0;
    let mut written: u64 = 0;
    let mut undelivered = None;
    let mut pruned = 0;
    for n in 0..events {
        let now = START_MS + n * step_ms;
        let ev = event_at(now, n);
        let thumb = thumbnail(n, 20_000 + (n as usize * 7919) % 30_001);
        let keys = store
            .record_event(&ev, Some(&thumb), &[announce(&ev)])
            .unwrap();
        retention.note_stored(event_bytes(
            serde_json::to_vec(&ev).unwrap().len(),
            Some(thumb.len()),
        ));
        written += thumb.len() as u64;
        if n == 10 {
            undelivered = Some(ev.event_id.clone()); // the broker never acks this one
        } else {
            for k in keys {
                store.outbox_ack(k).unwrap();
            }
        }
        if now - last_prune >= prune_every_ms {
            last_prune = now;
            let r = retention.prune(&store, now).unwrap();
            pruned += r.by_age + r.by_bytes;
            assert!(r.live_bytes <= r.budget_bytes, "{r:?}");
        }
        peak = peak.max(dir_size_bytes(dir.path()));
    }
    store.flush().unwrap();
    let end = START_MS + events * step_ms;
    let kept = store.events(None, None).unwrap();
    let final_size = dir_size_bytes(dir.path());
    eprintln!(
        "long run: {events} events, {} MiB of thumbnails written, cap {} MiB, peak data_dir {:.1} MiB ({:.0}% of cap), final {:.1} MiB, {} events kept, {pruned} pruned, live {} MiB",
        written >> 20,
        max_bytes >> 20,
        peak as f64 / 1048576.0,
        100.0 * peak as f64 / max_bytes as f64,
        final_size as f64 / 1048576.0,
        kept.len(),
        retention.live_bytes().unwrap() >> 20
    );
    assert!(peak <= max_bytes, "peak {peak} over the cap {max_bytes}");
    assert!(
        written > 2 * max_bytes,
        "the run must write well over the cap"
    );
    // The newest events stay, the oldest (except the undelivered one) are gone.
    let newest = event_at(end - step_ms, events - 1);
    assert!(store.event(&newest.event_id).unwrap().is_some());
    assert!(store.thumbnail(&newest.event_id).unwrap().is_some());
    let oldest = event_at(START_MS + 20 * step_ms, 20);
    assert!(store.event(&oldest.event_id).unwrap().is_none());
    assert!(store.thumbnail(&oldest.event_id).unwrap().is_none());
    let undelivered = undelivered.unwrap();
    assert_eq!(
        kept[0].event_id, undelivered,
        "the undelivered event is kept"
    );
    assert!(
        kept.len() > 300,
        "retention must not prune far below the budget"
    );
    // Bytes bound this run, not age: everything kept (but the undelivered one) is recent.
    assert!(kept[1..].iter().all(|e| {
        let ms = ulid::Ulid::from_string(&e.event_id).unwrap().timestamp_ms();
        ms + 30 * DAY_MS >= end
    }));
}

#[test]
fn age_prunes_old_events_with_their_thumbnails_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let retention = Retention::new(
        dir.path(),
        RetentionPolicy {
            max_age: Some(Duration::from_millis(7 * DAY_MS)),
            max_bytes: 1 << 30,
        },
    );
    // One event a day for 20 days; day 2 is still in the outbox.
    let mut pending = None;
    for day in 0..20 {
        let ev = event_at(START_MS + day * DAY_MS, day);
        let keys = store
            .record_event(&ev, Some(b"\xff\xd8jpeg"), &[announce(&ev)])
            .unwrap();
        if day == 2 {
            pending = Some(ev.event_id.clone());
        } else {
            for k in keys {
                store.outbox_ack(k).unwrap();
            }
        }
    }
    let now = START_MS + 19 * DAY_MS + DAY_MS / 2;
    let r = retention.prune(&store, now).unwrap();
    // Days 0..=12 are older than 7 days (now is day 19.5): 13 events, one of them undelivered.
    assert_eq!((r.by_age, r.kept_undelivered, r.by_bytes), (12, 1, 0));
    let kept: Vec<String> = store
        .events(None, None)
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(kept.len(), 8);
    assert_eq!(kept[0], pending.unwrap());
    assert!(store
        .thumbnail(&event_at(START_MS, 0).event_id)
        .unwrap()
        .is_none());
    let day13 = event_at(START_MS + 13 * DAY_MS, 13).event_id;
    assert_eq!(kept[1], day13);
    assert!(store.thumbnail(&day13).unwrap().is_some());
    // The live count matches a fresh scan after pruning.
    assert_eq!(retention.live_bytes(), Some(store.live_bytes().unwrap()));
}

#[test]
fn only_undelivered_events_over_the_budget_are_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let retention = Retention::new(
        dir.path(),
        RetentionPolicy {
            max_age: None,
            max_bytes: 4 << 20,
        },
    );
    // ~3.2 MB of undelivered events against a live budget of 0.45 x 4 MiB.
    for n in 0..80 {
        let ev = event_at(START_MS + n * 1000, n);
        store
            .record_event(&ev, Some(&thumbnail(n, 40_000)), &[announce(&ev)])
            .unwrap();
    }
    let r = retention.prune(&store, START_MS + DAY_MS).unwrap();
    assert_eq!(r.by_bytes, 0);
    assert!(r.over_budget_undelivered, "{r:?}");
    assert_eq!(store.events(None, None).unwrap().len(), 80);
}

#[test]
fn free_bytes_and_dir_size_measure_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    assert!(free_bytes(dir.path()).unwrap() > 0);
    std::fs::write(dir.path().join("a"), vec![1u8; 100_000]).unwrap();
    let n = dir_size_bytes(dir.path());
    assert!((100_000..200_000).contains(&n), "{n}");
    assert!(free_bytes(&dir.path().join("missing")).is_err());
}
