use super::*;
use crate::event::EventType;

fn event_at(ms: u64, camera: &str, track_id: u64) -> Event {
    Event {
        speed_kmh: Some(60.0 + track_id as f64),
        speed_ci95_kmh: Some([59.0, 61.0 + track_id as f64]),
        ..crate::event::test_event(
            ulid::Ulid::from_parts(ms, u128::from(track_id)).to_string(),
            camera,
            track_id,
        )
    }
}

fn msg(topic: &str, payload: &[u8]) -> OutboxMessage {
    OutboxMessage {
        topic: topic.into(),
        payload: payload.to_vec(),
        qos: 1,
        retain: false,
    }
}

#[test]
fn reopen_after_drop_keeps_events_thumbnails_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let ev = event_at(1_700_000_000_000, "cam1", 7);
    let keys = {
        let store = Store::open(dir.path()).unwrap();
        store
            .record_event(
                &ev,
                Some(b"\xff\xd8jpeg"),
                &[msg("a", b"1"), msg("b", b"2")],
            )
            .unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.event(&ev.event_id).unwrap(), Some(ev.clone()));
    assert_eq!(
        store.thumbnail(&ev.event_id).unwrap().as_deref(),
        Some(&b"\xff\xd8jpeg"[..])
    );
    assert_eq!(store.outbox_len(), 2);
    let pending = store.outbox_pending(None, 10).unwrap();
    assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), keys);
    assert_eq!(pending[0].1, msg("a", b"1"));
    assert_eq!(pending[1].1, msg("b", b"2"));
}

#[test]
fn outbox_keys_increase_across_reopen_and_ack_removes() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = Store::open(dir.path()).unwrap();
        store
            .record_event(&event_at(1000, "c", 1), None, &[msg("t", b"x")])
            .unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    let second = store
        .record_event(&event_at(2000, "c", 2), None, &[msg("t", b"y")])
        .unwrap();
    assert!(second[0] > first[0], "{second:?} !> {first:?}");
    store.outbox_ack(first[0]).unwrap();
    store.outbox_ack(first[0]).unwrap(); // second ack is a no-op
    assert_eq!(store.outbox_len(), 1);
    let rest = store.outbox_pending(None, 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, second[0]);
    assert!(store
        .outbox_pending(Some(second[0]), 10)
        .unwrap()
        .is_empty());
    assert_eq!(store.outbox_pending(Some(first[0]), 10).unwrap().len(), 1);
}

#[test]
fn duplicate_event_id_is_stored_once_and_adds_no_outbox_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = event_at(5000, "cam1", 3);
    let keys = store
        .record_event(&ev, Some(b"one"), &[msg("t", b"first")])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let mut changed = ev.clone();
    changed.speed_kmh = Some(999.0);
    let again = store
        .record_event(&changed, Some(b"two"), &[msg("t", b"second")])
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(store.events(None, None).unwrap(), vec![ev.clone()]);
    assert_eq!(
        store.thumbnail(&ev.event_id).unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(store.outbox_len(), 1);
    assert_eq!(
        store.outbox_pending(None, 10).unwrap()[0].1.payload,
        b"first"
    );
}

#[test]
fn rejected_event_leaves_every_tree_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ev = event_at(5000, "cam1", 3);
    ev.event_id = "not-a-ulid".into();
    let err = store
        .record_event(&ev, Some(b"jpeg"), &[msg("t", b"x")])
        .unwrap_err();
    assert!(matches!(err, StoreError::BadEventId(_)), "{err}");
    assert!(store.events(None, None).unwrap().is_empty());
    assert_eq!(store.outbox_len(), 0);
    assert!(store.outbox_pending(None, 10).unwrap().is_empty());
    assert!(store.thumbnails.is_empty());
}

#[test]
fn concurrent_writers_commit_outbox_keys_in_order_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let ev = event_at(10_000 + i, &format!("cam{t}"), t * 100 + i);
                    let m = msg("t", ev.event_id.as_bytes());
                    store.record_event(&ev, Some(b"j"), &[m]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let pending = store.outbox_pending(None, 1000).unwrap();
    assert_eq!(pending.len(), 100);
    assert_eq!(store.outbox_len(), 100);
    for (_, m) in &pending {
        let id = std::str::from_utf8(&m.payload).unwrap();
        assert!(
            store.event(id).unwrap().is_some(),
            "outbox entry without event {id}"
        );
        assert!(store.thumbnail(id).unwrap().is_some());
    }
}

#[test]
fn events_filter_by_camera_and_since_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base_ms = 1_750_000_000_000u64;
    // Insert out of time order; the store must return them sorted.
    for (i, cam) in [(3u64, "a"), (1, "b"), (2, "a"), (0, "a")] {
        store
            .record_event(&event_at(base_ms + i * 1000, cam, i), None, &[])
            .unwrap();
    }
    let ids = |evs: Vec<Event>| evs.iter().map(|e| e.track_id).collect::<Vec<_>>();
    assert_eq!(ids(store.events(None, None).unwrap()), vec![0, 1, 2, 3]);
    assert_eq!(ids(store.events(Some("a"), None).unwrap()), vec![0, 2, 3]);
    let since =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(base_ms + 1500) * 1_000_000)
            .unwrap();
    assert_eq!(ids(store.events(None, Some(since)).unwrap()), vec![2, 3]);
    assert_eq!(
        ids(store.events(Some("b"), Some(since)).unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(store.events(Some("zzz"), None).unwrap(), vec![]);
}

#[test]
fn track_summaries_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = TrackSummary {
        camera: "cam1".into(),
        track_id: 4,
        class: "truck".into(),
        first_t_s: 1.0,
        last_t_s: 3.5,
        hits: 40,
        measured: true,
    };
    store.record_track(&t).unwrap();
    store.flush().unwrap();
    drop(store);
    assert_eq!(Store::open(dir.path()).unwrap().tracks().unwrap(), vec![t]);
}

#[test]
fn newer_schema_is_refused_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let meta = store.db.open_tree("meta").unwrap();
        let newer = serde_json::to_vec(&(STORE_SCHEMA_VERSION + 1)).unwrap();
        meta.insert(META_SCHEMA_KEY, newer).unwrap();
        store.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("upgrade speedcamd"), "{err}");
}

#[test]
fn open_error_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("sub")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("plain-file"), "{text}");
    assert!(text.contains("writable"), "{text}");
}

#[test]
fn camera_tallies_count_per_camera_survive_reopen_and_respect_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000u64;
    // cam1: three vehicles, the second speeding (its speeding id sorts *before* its measurement,
    // as can happen within one millisecond); cam2: one vehicle; one late cam1 vehicle.
    let mut m1 = event_at(t0, "cam1", 1);
    m1.kind = EventType::Measurement;
    let mut m2 = event_at(t0 + 10, "cam1", 5);
    m2.kind = EventType::Measurement;
    let mut s2 = event_at(t0 + 10, "cam1", 2);
    s2.measurement_id = Some(m2.event_id.clone());
    let mut c2 = event_at(t0 + 20, "cam2", 3);
    c2.kind = EventType::Measurement;
    let mut late = event_at(t0 + 5_000, "cam1", 4);
    late.kind = EventType::Measurement;
    assert!(s2.event_id < m2.event_id);
    {
        let store = Store::open(dir.path()).unwrap();
        for ev in [&m1, &s2, &m2, &c2, &late] {
            store.record_event(ev, None, &[]).unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let all = store.camera_tallies(None).unwrap();
    assert_eq!(all.len(), 2);
    let cam1 = &all["cam1"];
    assert_eq!((cam1.measurements, cam1.speeding), (3, 1));
    assert_eq!(cam1.last.as_ref().unwrap().event_id, late.event_id);
    assert_eq!(all["cam2"].measurements, 1);
    assert_eq!(all["cam2"].speeding, 0);

    let cutoff =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t0 + 1_000) * 1_000_000)
            .unwrap();
    let before = store.camera_tallies(Some(cutoff)).unwrap();
    let cam1 = &before["cam1"];
    assert_eq!((cam1.measurements, cam1.speeding), (2, 1));
    let last = cam1.last.as_ref().unwrap();
    assert_eq!(last.event_id, s2.event_id, "the speeding event stays last");
    assert_eq!(Some(last.speed_kmh), s2.speed_kmh);

    let mut merged = before["cam1"].clone();
    let mut live = CameraTally::default();
    live.add(&late);
    merged.absorb(&live);
    assert_eq!(merged, all["cam1"]);
    assert!(Store::open(tempfile::tempdir().unwrap().path())
        .unwrap()
        .camera_tallies(None)
        .unwrap()
        .is_empty());
}

/// How long counting takes on a large store (`cargo test --lib camera_tally_figures -- --ignored
/// --nocapture`).
#[test]
#[ignore = "timing figure, not a check"]
fn camera_tally_figures() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = 200_000u64;
    for i in 0..n {
        let mut ev = event_at(1_700_000_000_000 + i, if i % 3 == 0 { "a" } else { "b" }, i);
        if i % 10 != 0 {
            ev.kind = EventType::Measurement;
        }
        let key = event_key(&ev.event_id).unwrap();
        store
            .events
            .insert(key, serde_json::to_vec(&ev).unwrap())
            .unwrap();
    }
    store.flush().unwrap();
    let start = std::time::Instant::now();
    let t = store.camera_tallies(None).unwrap();
    let s = start.elapsed().as_secs_f64();
    assert_eq!(
        t.values().map(|t| t.measurements + t.speeding).sum::<u64>(),
        n
    );
    println!(
        "counted {n} events in {s:.3} s: {:.2} s per million",
        s * 1e6 / n as f64
    );
}

/// An event of track `track_id` with a fresh random id, as a restarted replay would make it.
fn replayed(kind: EventType, track_id: u64) -> Event {
    Event {
        kind,
        event_id: ulid::Ulid::new().to_string(),
        ..event_at(1_700_000_000_000, "cam1", track_id)
    }
}

#[test]
fn a_second_event_with_the_same_origin_is_refused_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rec = Recording::of_bytes(1000, b"video");
    let first = replayed(EventType::Speeding, 3);
    let origin = OriginKey::new(&rec, &first);
    let stored = store
        .record_event_from(&first, Some(&origin), Some(b"j1"), &[msg("t", b"1")])
        .unwrap();
    assert!(
        matches!(stored, Recorded::Stored(ref k) if k.len() == 1),
        "{stored:?}"
    );
    // The same vehicle after a restart: new id, other wall-clock time, same origin.
    let again = Event {
        time: "2026-02-02T00:00:00Z".into(),
        ..replayed(EventType::Speeding, 3)
    };
    assert_ne!(again.event_id, first.event_id);
    let origin_again = OriginKey::new(&rec, &again);
    assert_eq!(
        origin_again, origin,
        "id and wall time are not part of the origin"
    );
    let refused = store
        .record_event_from(&again, Some(&origin_again), Some(b"j2"), &[msg("t", b"2")])
        .unwrap();
    assert_eq!(
        refused,
        Recorded::SameOrigin {
            event_id: first.event_id.clone()
        }
    );
    let events = store.events(None, None).unwrap();
    assert_eq!(events, vec![first.clone()]);
    assert_eq!(store.event(&again.event_id).unwrap(), None);
    assert_eq!(store.thumbnail(&again.event_id).unwrap(), None);
    assert_eq!(
        store.outbox_len(),
        1,
        "nothing queued for the refused event"
    );
    // The index survives a reopen (the restart case).
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.event_id_of_origin(&origin).unwrap(),
        Some(first.event_id.clone())
    );
    let third = replayed(EventType::Speeding, 3);
    assert!(matches!(
        store
            .record_event_from(&third, Some(&origin), None, &[])
            .unwrap(),
        Recorded::SameOrigin { .. }
    ));
    assert_eq!(store.events(None, None).unwrap().len(), 1);
}

#[test]
fn origins_differ_by_kind_track_times_and_recording_and_keyless_events_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rec = Recording::of_bytes(1000, b"video");
    let base = replayed(EventType::Measurement, 1);
    let variants = [
        base.clone(),
        replayed(EventType::Speeding, 1),
        replayed(EventType::Measurement, 2),
        Event {
            t_enter_s: 1.000001,
            ..replayed(EventType::Measurement, 1)
        },
        Event {
            t_exit_s: 2.6,
            ..replayed(EventType::Measurement, 1)
        },
        Event {
            camera: "cam2".into(),
            ..replayed(EventType::Measurement, 1)
        },
    ];
    for ev in &variants {
        let o = OriginKey::new(&rec, ev);
        assert!(matches!(
            store.record_event_from(ev, Some(&o), None, &[]).unwrap(),
            Recorded::Stored(_)
        ));
    }
    // Another recording: the same track and times are another vehicle.
    let other = Recording::of_bytes(1001, b"video");
    let ev = replayed(EventType::Measurement, 1);
    assert!(matches!(
        store
            .record_event_from(&ev, Some(&OriginKey::new(&other, &ev)), None, &[])
            .unwrap(),
        Recorded::Stored(_)
    ));
    // Live events (no origin) are never deduplicated by content.
    for _ in 0..2 {
        let ev = replayed(EventType::Measurement, 1);
        assert_eq!(store.record_event(&ev, None, &[]).unwrap(), Vec::new());
        assert!(store.event(&ev.event_id).unwrap().is_some());
    }
    assert_eq!(store.events(None, None).unwrap().len(), variants.len() + 3);
}

#[test]
fn forgetting_an_events_origin_lets_it_be_recorded_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rec = Recording::of_bytes(5, b"abc");
    let ev = replayed(EventType::Speeding, 9);
    let origin = OriginKey::new(&rec, &ev);
    store
        .record_event_from(&ev, Some(&origin), None, &[])
        .unwrap();
    assert!(store.forget_origin(&ev.event_id).unwrap());
    assert!(!store.forget_origin(&ev.event_id).unwrap(), "already gone");
    assert_eq!(store.event_id_of_origin(&origin).unwrap(), None);
    assert_eq!(store.origins_tree().len(), 0, "both index entries removed");
    let again = replayed(EventType::Speeding, 9);
    assert!(matches!(
        store
            .record_event_from(&again, Some(&origin), None, &[])
            .unwrap(),
        Recorded::Stored(_)
    ));
    // Inside a caller's transaction (as retention deletes events).
    let key = ulid::Ulid::from_string(&again.event_id).unwrap().to_bytes();
    (&store.events, store.origins_tree())
        .transaction(|(events, origins)| {
            events.remove(&key)?;
            origin::forget_in(origins, &key)?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .unwrap();
    assert_eq!(store.event_id_of_origin(&origin).unwrap(), None);
    assert_eq!(store.origins_tree().len(), 0);
}

#[test]
fn recording_fingerprint_is_size_and_head_hash() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::io::Write::write_all(&mut f, &bytes).unwrap();
    let r = Recording::of_file(f.path()).unwrap();
    assert_eq!(
        r,
        Recording::of_bytes(bytes.len() as u64, &bytes[..1 << 20])
    );
    // FNV-1a 64 reference values: stable across builds.
    assert_eq!(
        Recording::of_bytes(0, b"").fingerprint(),
        "0:cbf29ce484222325"
    );
    assert_eq!(
        Recording::of_bytes(1, b"a").fingerprint(),
        "1:af63dc4c8601ec8c"
    );
    assert_ne!(
        Recording::of_bytes(10, b"abc"),
        Recording::of_bytes(10, b"abd")
    );
    assert!(Recording::of_file(std::path::Path::new("/nonexistent/x.mp4")).is_err());
}

#[test]
fn store_errors_print_their_cause_once() {
    use speedcam_core::error_chain::assert_cause_printed_once;
    let dir = tempfile::tempdir().unwrap();
    // A file where the data directory should be: the directory cannot be created.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let Err(err) = Store::open(&file.join("data")) else {
        panic!("cannot open under a file");
    };
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let shown = assert_cause_printed_once(&err);
    assert!(shown.contains("cannot open the event store"), "{shown}");
    let corrupt = decode::<serde_json::Value>("events", b"{not json").unwrap_err();
    assert_cause_printed_once(&corrupt);
    let sled: StoreError = sled::Error::Unsupported("test".into()).into();
    assert_cause_printed_once(&sled);
}

/// A vehicle without a speed is counted (also after a reopen, from the stored record) but never
/// becomes the "last speed" that Home Assistant shows.
#[test]
fn vehicles_without_a_speed_are_counted_but_are_no_last_speed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut with = event_at(1_700_000_000_000, "a", 1);
    with.kind = EventType::Measurement;
    let without = Event {
        speed_kmh: None,
        speed_ci95_kmh: None,
        reason: Some("scatter".into()),
        ..event_at(1_700_000_000_500, "a", 2)
    };
    let without = Event {
        kind: EventType::Measurement,
        ..without
    };
    let mut live = CameraTally::default();
    for ev in [&with, &without] {
        store.record_event(ev, None, &[]).unwrap();
        live.add(ev);
    }
    let stored = store.camera_tallies(None).unwrap()["a"].clone();
    assert_eq!(stored, live);
    assert_eq!((live.measurements, live.without_speed), (2, 1));
    let last = live.last.expect("the vehicle with a speed");
    assert_eq!(last.event_id, with.event_id);
    assert_eq!(Some(last.speed_kmh), with.speed_kmh);
}
