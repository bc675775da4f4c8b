//! The session driven with simulated time, an in-memory outbox and a recording client that
//! plays rumqttc's part (packet ids in hand-over order, QoS 0 done once written).

use super::*;
use std::ops::Bound;

/// The outbox as a map; keys count up from 0.
#[derive(Debug, Default)]
struct MemOutbox {
    entries: BTreeMap<OutboxKey, OutboxMessage>,
    next_key: u64,
}

impl MemOutbox {
    /// `n` entries of `qos` on topics `t/<key>`.
    fn with(n: u64, qos: u8) -> MemOutbox {
        let mut o = MemOutbox::default();
        for _ in 0..n {
            o.push(qos, 10);
        }
        o
    }

    fn push(&mut self, qos: u8, payload_bytes: usize) -> OutboxKey {
        let key = OutboxKey(self.next_key);
        self.next_key += 1;
        let msg = OutboxMessage {
            topic: format!("t/{}", key.0),
            payload: vec![b'x'; payload_bytes],
            qos,
            retain: false,
        };
        self.entries.insert(key, msg);
        key
    }
}

impl Outbox for MemOutbox {
    type Error = std::convert::Infallible;

    fn pending(
        &self,
        after: Option<OutboxKey>,
        n: usize,
    ) -> Result<Vec<(OutboxKey, OutboxMessage)>, Self::Error> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self
            .entries
            .range((from, Bound::Unbounded))
            .take(n)
            .map(|(k, m)| (*k, m.clone()))
            .collect())
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn ack(&mut self, key: OutboxKey) -> Result<(), Self::Error> {
        self.entries.remove(&key);
        Ok(())
    }
}

/// A request handed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Pub(Publish),
    Disconnect,
}

/// rumqttc and the broker: records requests, writes them on demand with packet ids, acks.
#[derive(Debug, Default)]
struct Net {
    handed: Vec<Req>,
    /// Requests still accepted before the queue reports full (`None`: no limit).
    accept: Option<usize>,
    /// Requests written so far (index into `handed`).
    written: usize,
    last_pkid: u16,
    /// QoS 1 publishes written and not yet acknowledged.
    unacked: BTreeMap<u16, Publish>,
}

impl Client for Net {
    fn publish(&mut self, msg: Publish) -> Result<(), Refused> {
        self.take(Req::Pub(msg))
    }

    fn disconnect(&mut self) -> Result<(), Refused> {
        self.take(Req::Disconnect)
    }
}

impl Net {
    fn take(&mut self, req: Req) -> Result<(), Refused> {
        match &mut self.accept {
            Some(0) => return Err(Refused("request queue full".into())),
            Some(n) => *n -= 1,
            None => {}
        }
        self.handed.push(req);
        Ok(())
    }

    /// Writes every request handed over, reporting each to the session; returns the publishes
    /// written with their packet ids.
    fn write_all(&mut self, s: &mut Session<MemOutbox>) -> Vec<(u16, Publish)> {
        let mut out = Vec::new();
        while self.written < self.handed.len() {
            let req = self.handed[self.written].clone();
            self.written += 1;
            match req {
                Req::Pub(p) => {
                    let pkid = if p.qos == QoS::AtMostOnce {
                        0
                    } else {
                        self.last_pkid += 1;
                        self.unacked.insert(self.last_pkid, p.clone());
                        self.last_pkid
                    };
                    s.on_sent(pkid);
                    out.push((pkid, p));
                }
                Req::Disconnect => s.on_disconnect_written(),
            }
        }
        out
    }

    /// The broker acknowledges every written publish whose topic `pick` accepts.
    fn ack_where(&mut self, s: &mut Session<MemOutbox>, pick: impl Fn(&str) -> bool) {
        let pkids: Vec<u16> = self
            .unacked
            .iter()
            .filter(|(_, p)| pick(&p.topic))
            .map(|(k, _)| *k)
            .collect();
        for pkid in pkids {
            self.unacked.remove(&pkid);
            s.on_puback(pkid);
        }
    }

    /// The connection dropped: unwritten requests and unacknowledged publishes are gone.
    fn drop_connection(&mut self) {
        self.written = self.handed.len();
        self.unacked.clear();
        self.last_pkid = 0;
    }

    /// Publishes handed over and not yet done (unwritten, or written QoS 1 without PUBACK).
    fn outstanding(&self) -> usize {
        let unwritten = self.handed[self.written..]
            .iter()
            .filter(|r| matches!(r, Req::Pub(_)))
            .count();
        unwritten + self.unacked.len()
    }

    /// Topics of the publishes handed over from index `from` on ("DISCONNECT" for those).
    fn topics_since(&self, from: usize) -> Vec<String> {
        self.handed[from..]
            .iter()
            .map(|r| match r {
                Req::Pub(p) => p.topic.clone(),
                Req::Disconnect => "DISCONNECT".into(),
            })
            .collect()
    }
}

const STATUS: &str = "speedcam/dev1/status";

fn session(outbox: MemOutbox) -> Session<MemOutbox> {
    let topics = Topics::new("speedcam", "dev1").expect("valid topic levels");
    Session::new(outbox, Arc::new(Live::default()), topics, Box::new(|| 0.5))
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn us(x: u64) -> Duration {
    Duration::from_micros(x)
}

/// Outbox topics `t/<key>` for the given keys.
fn entries(keys: impl IntoIterator<Item = u64>) -> Vec<String> {
    keys.into_iter().map(|k| format!("t/{k}")).collect()
}

fn waiting(until: Option<Duration>, network: bool, wake: bool) -> Next {
    Next::Wait {
        until,
        network,
        wake,
    }
}

/// Fails the current attempt at `now`, checks that the session waits exactly until the
/// returned time, then lets that timer fire.
fn fail_and_wait(s: &mut Session<MemOutbox>, net: &mut Net, now: Duration) -> Duration {
    s.on_connection_error(now, "connection refused".into());
    let Next::Wait {
        until: Some(until),
        network: false,
        wake: false,
    } = s.poll(net)
    else {
        panic!("no retry timer after a connection error");
    };
    s.on_timeout(until - Duration::from_nanos(1)); // early: still waiting
    assert_eq!(s.poll(net), waiting(Some(until), false, false));
    s.on_timeout(until);
    assert_eq!(s.poll(net), waiting(None, true, false));
    until
}

#[test]
fn reconnect_delays_double_up_to_the_cap_and_reset_after_a_connack() {
    let mut s = session(MemOutbox::default());
    let mut net = Net::default();
    assert_eq!(s.poll(&mut net), waiting(None, true, false));
    // Jitter 0.5 gives 3/4 of the nominal 0.25 s, 0.5 s, 1 s ... capped at 30 s (22.5 s).
    // Each attempt takes 10 ms before it fails.
    let mut now = Duration::ZERO;
    let mut retry_at = Vec::new();
    for _ in 0..9 {
        let until = fail_and_wait(&mut s, &mut net, now);
        retry_at.push(until);
        now = until + ms(10);
    }
    let expected_us = [
        187_500, 572_500, 1_332_500, 2_842_500, 5_852_500, 11_862_500, 23_872_500, 46_382_500,
        68_892_500,
    ];
    assert_eq!(retry_at, expected_us.map(us));
    assert_eq!(
        lock(&s.live.last_error).as_deref(),
        Some("connection refused")
    );
    assert!(net.handed.is_empty(), "nothing is handed over while down");

    s.on_connack();
    assert_eq!(s.poll(&mut net), waiting(None, true, true));
    assert!(s.live.connected.load(Ordering::SeqCst));
    assert_eq!(*lock(&s.live.last_error), None);
    assert_eq!(s.live.reconnects.load(Ordering::SeqCst), 0, "first connect");
    assert_eq!(net.topics_since(0), [STATUS]);

    // After a ConnAck the schedule starts over at 0.25 s.
    net.drop_connection();
    assert_eq!(
        fail_and_wait(&mut s, &mut net, ms(80_000)),
        ms(80_000) + us(187_500)
    );
    assert!(!s.live.connected.load(Ordering::SeqCst));
    assert_eq!(
        fail_and_wait(&mut s, &mut net, ms(81_000)),
        ms(81_000) + us(375_000)
    );
    s.on_connack();
    assert_eq!(s.live.reconnects.load(Ordering::SeqCst), 1);
}

#[test]
fn the_window_never_holds_more_than_window_and_refills_as_pubacks_arrive() {
    let total = 100;
    let mut s = session(MemOutbox::with(total, 1));
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    // "online" plus as many entries as fit beside it.
    let first = WINDOW as u64 - 1;
    let mut expected = vec![STATUS.to_string()];
    expected.extend(entries(0..first));
    assert_eq!(net.topics_since(0), expected);
    assert_eq!(net.outstanding(), WINDOW);
    net.write_all(&mut s);
    s.poll(&mut net);
    assert_eq!(net.handed.len(), WINDOW, "a full window takes nothing more");

    // Each PUBACK frees one slot, filled with the next entry in key order.
    net.ack_where(&mut s, |t| t == STATUS);
    s.poll(&mut net);
    assert_eq!(net.topics_since(WINDOW), entries([first]));

    let mut next = first + 1;
    let mut acks = 1;
    while s.outbox.len() > 0 {
        let before = net.handed.len();
        net.write_all(&mut s);
        // Ack the oldest few outstanding entries (1, 2, 3, ... at a time).
        acks = acks % 5 + 1;
        let oldest: Vec<String> = net
            .unacked
            .values()
            .map(|p| p.topic.clone())
            .take(acks)
            .collect();
        net.ack_where(&mut s, |t| oldest.iter().any(|o| o == t));
        s.poll(&mut net);
        assert!(
            net.outstanding() <= WINDOW,
            "{} in flight",
            net.outstanding()
        );
        let fed = net.handed.len() - before;
        let room = (total - next) as usize;
        assert_eq!(fed, oldest.len().min(room));
        assert_eq!(net.topics_since(before), entries(next..next + fed as u64));
        next += fed as u64;
    }
    assert_eq!(next, total);
    assert_eq!(s.live.published.load(Ordering::SeqCst), total);
    assert_eq!(s.live.acked.load(Ordering::SeqCst), total);
}

#[test]
fn after_a_reconnect_unacked_entries_are_resent_oldest_first_and_acked_ones_never() {
    let mut s = session(MemOutbox::with(10, 1));
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    net.write_all(&mut s);
    let acked = ["t/0", "t/1", "t/2", "t/5"];
    net.ack_where(&mut s, |t| acked.contains(&t));
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 4);
    assert_eq!(s.outbox.len(), 6);

    s.on_connection_error(ms(1_000), "connection reset by peer".into());
    net.drop_connection();
    let Next::Wait { until: Some(t), .. } = s.poll(&mut net) else {
        panic!("no retry timer");
    };
    s.on_timeout(t);
    s.poll(&mut net);
    let before = net.handed.len();
    assert_eq!(before, 11, "nothing handed over while disconnected");
    s.on_connack();
    s.poll(&mut net);
    let mut expected = vec![STATUS.to_string()];
    expected.extend(entries([3, 4, 6, 7, 8, 9]));
    assert_eq!(net.topics_since(before), expected);
    assert_eq!(s.live.published.load(Ordering::SeqCst), 10);
    net.write_all(&mut s);
    assert_eq!(s.live.published.load(Ordering::SeqCst), 16);
    net.ack_where(&mut s, |_| true);
    assert_eq!(s.outbox.len(), 0);
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 10);
    assert_eq!(s.live.reconnects.load(Ordering::SeqCst), 1);
}

#[test]
fn retained_states_are_resent_after_every_reconnect_and_stats_go_once_at_qos_0() {
    let mut s = session(MemOutbox::with(1, 1));
    let mut net = Net::default();
    s.live
        .set_retained("speedcam/dev1/cam_b/state".into(), b"streaming".to_vec());
    s.live
        .set_retained("speedcam/dev1/cam_a/state".into(), b"streaming".to_vec());
    *lock(&s.live.stats) = Some(b"{}".to_vec());
    s.on_connack();
    s.poll(&mut net);
    let states = ["speedcam/dev1/cam_a/state", "speedcam/dev1/cam_b/state"];
    let mut expected = vec![STATUS, states[0], states[1], "speedcam/dev1/stats", "t/0"];
    assert_eq!(net.topics_since(0), expected);
    let Req::Pub(stats) = &net.handed[3] else {
        panic!("stats not a publish");
    };
    assert_eq!((stats.qos, stats.retain), (QoS::AtMostOnce, false));
    let Req::Pub(state) = &net.handed[1] else {
        panic!("state not a publish");
    };
    assert_eq!((state.qos, state.retain), (QoS::AtLeastOnce, true));
    net.write_all(&mut s);
    net.ack_where(&mut s, |_| true);
    s.poll(&mut net);
    assert_eq!(net.handed.len(), 5, "unchanged states are not sent again");

    // A change goes out once; after a reconnect every state goes out again, stats do not.
    s.live
        .set_retained(states[1].into(), b"reconnecting".to_vec());
    s.poll(&mut net);
    assert_eq!(net.topics_since(5), [states[1]]);
    s.on_connection_error(ms(10), "connection reset by peer".into());
    net.drop_connection();
    s.on_timeout(ms(10_000));
    s.on_connack();
    s.poll(&mut net);
    expected = vec![STATUS, states[0], states[1]];
    assert_eq!(net.topics_since(6), expected);
}

#[test]
fn shutdown_without_pubacks_stops_undrained_at_the_deadline() {
    let mut s = session(MemOutbox::with(3, 1));
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    net.write_all(&mut s);
    let deadline = ms(5_000);
    s.request_shutdown(deadline);
    *lock(&s.live.stats) = Some(b"{}".to_vec());
    assert_eq!(s.poll(&mut net), waiting(Some(deadline), true, true));
    s.on_timeout(deadline - ms(1));
    assert_eq!(s.poll(&mut net), waiting(Some(deadline), true, true));
    s.on_timeout(deadline);
    assert_eq!(s.poll(&mut net), Next::Stopped { drained: false });
    assert!(!s.live.connected.load(Ordering::SeqCst));
    assert_eq!(
        s.outbox.len(),
        3,
        "unacknowledged entries stay in the outbox"
    );
    // Neither "offline", nor DISCONNECT, nor stats while stopping: the will says offline.
    assert_eq!(net.topics_since(0), [STATUS, "t/0", "t/1", "t/2"]);
}

#[test]
fn shutdown_with_pubacks_sends_offline_then_disconnects_drained() {
    let mut s = session(MemOutbox::with(3, 1));
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    net.write_all(&mut s);
    s.request_shutdown(ms(5_000));
    assert_eq!(s.poll(&mut net), waiting(Some(ms(5_000)), true, true));
    net.ack_where(&mut s, |t| t != "t/2");
    s.poll(&mut net);
    assert_eq!(net.handed.len(), 4, "offline waits for the last entry");
    net.ack_where(&mut s, |_| true);
    assert_eq!(s.poll(&mut net), waiting(Some(ms(5_000)), true, true));
    assert_eq!(
        net.handed[4],
        Req::Pub(Publish {
            topic: STATUS.into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            payload: b"offline".to_vec(),
        })
    );
    net.write_all(&mut s);
    assert_eq!(s.poll(&mut net), waiting(Some(ms(5_000)), true, true));
    assert_eq!(net.handed.len(), 5, "DISCONNECT waits for offline's PUBACK");
    net.ack_where(&mut s, |_| true);
    assert_eq!(s.poll(&mut net), waiting(Some(ms(5_000)), true, true));
    assert_eq!(net.handed[5], Req::Disconnect);
    net.write_all(&mut s);
    assert_eq!(s.poll(&mut net), Next::Stopped { drained: true });
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 3);
}

#[test]
fn shutdown_while_the_broker_is_down_with_an_empty_outbox_stops_drained_at_once() {
    let mut s = session(MemOutbox::default());
    let mut net = Net::default();
    s.on_connection_error(Duration::ZERO, "connection refused".into());
    s.request_shutdown(ms(5_000));
    assert_eq!(s.poll(&mut net), Next::Stopped { drained: true });
    assert!(net.handed.is_empty());
}

#[test]
fn qos_0_entries_complete_when_written() {
    let mut outbox = MemOutbox::default();
    outbox.push(0, 10);
    outbox.push(1, 10);
    let mut s = session(outbox);
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    let Req::Pub(first) = &net.handed[1] else {
        panic!("entry not a publish");
    };
    assert_eq!((first.topic.as_str(), first.qos), ("t/0", QoS::AtMostOnce));
    assert_eq!(s.outbox.len(), 2, "handed over is not done");
    let written = net.write_all(&mut s);
    assert_eq!(written[1].0, 0, "QoS 0 has no packet id");
    assert_eq!(s.outbox.len(), 1);
    assert!(s.outbox.entries.contains_key(&OutboxKey(1)), "QoS 1 waits");
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 1);
    assert_eq!(s.live.published.load(Ordering::SeqCst), 2);
}

#[test]
fn an_entry_over_the_packet_limit_is_dropped_and_acked() {
    let mut outbox = MemOutbox::default();
    outbox.push(1, 10);
    outbox.push(1, MAX_PACKET_BYTES);
    outbox.push(1, 10);
    let mut s = session(outbox);
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    assert_eq!(net.topics_since(0), [STATUS, "t/0", "t/2"]);
    assert!(!s.outbox.entries.contains_key(&OutboxKey(1)));
    assert_eq!(s.outbox.len(), 2);
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 1);
    net.write_all(&mut s);
    assert_eq!(s.live.published.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refused_request_is_retried_from_the_same_entry() {
    let mut s = session(MemOutbox::with(5, 1));
    let mut net = Net {
        accept: Some(3),
        ..Net::default()
    };
    s.on_connack();
    s.poll(&mut net);
    assert_eq!(net.topics_since(0), [STATUS, "t/0", "t/1"]);
    net.accept = None;
    s.poll(&mut net);
    assert_eq!(net.topics_since(3), entries(2..5));
}

#[test]
fn a_collision_holds_the_request_until_its_packet_id_is_free() {
    let mut s = session(MemOutbox::with(2, 1));
    let mut net = Net::default();
    s.on_connack();
    s.poll(&mut net);
    s.on_sent(7); // online
    s.on_sent(8); // t/0
    s.on_collision(8); // t/1 would reuse 8
    s.on_puback(8); // t/0 done
    assert_eq!(s.outbox.len(), 1);
    s.on_sent(8); // t/1 goes out now
    s.on_puback(8);
    assert_eq!(s.outbox.len(), 0);
    assert_eq!(s.live.acked.load(Ordering::SeqCst), 2);
}
