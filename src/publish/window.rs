//! Maps rumqttc packet ids back to outbox keys.
//!
//! rumqttc assigns packet ids itself and reports them only as `Outgoing::Publish(pkid)` events,
//! in the order requests were handed to it (a packet-id collision is reported as
//! `Outgoing::AwaitAck` and the publish is sent, with a `Publish` event, once the colliding id
//! is acked; no other request is taken meanwhile). So requests are queued here in hand-over
//! order and matched to packet ids as those events arrive.

use crate::store::OutboxKey;
use std::collections::{HashMap, VecDeque};

/// What a publish request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An outbox entry, acked in sled on PUBACK (immediately once sent for QoS 0).
    Outbox(OutboxKey, u8),
    /// The `offline` status sent on shutdown.
    Offline,
    /// Anything else (status online, camera state, stats).
    Other,
}

/// Publish requests handed to rumqttc and not yet acknowledged.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    queued: VecDeque<Tag>,
    collided: Option<Tag>,
    by_pkid: HashMap<u16, Tag>,
}

impl InFlight {
    /// Requests handed over and not yet acknowledged (or sent, for QoS 0).
    pub(crate) fn len(&self) -> usize {
        self.queued.len() + usize::from(self.collided.is_some()) + self.by_pkid.len()
    }

    /// Whether nothing is outstanding.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A request was handed to rumqttc.
    pub(crate) fn queued(&mut self, tag: Tag) {
        self.queued.push_back(tag);
    }

    /// rumqttc sent a publish with `pkid` (0 for QoS 0, which is done once sent): returns the
    /// request it was (`None` when nothing was queued); QoS 1 ones now wait for their PUBACK.
    pub(crate) fn sent(&mut self, pkid: u16) -> Option<Tag> {
        let tag = self.collided.take().or_else(|| self.queued.pop_front())?;
        if pkid != 0 {
            self.by_pkid.insert(pkid, tag);
        }
        Some(tag)
    }

    /// rumqttc held the head request back because its packet id is still in flight.
    pub(crate) fn collided(&mut self) {
        if self.collided.is_none() {
            self.collided = self.queued.pop_front();
        }
    }

    /// PUBACK for `pkid`: the request it belonged to.
    pub(crate) fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.by_pkid.remove(&pkid)
    }

    /// Connection lost or replaced: rumqttc dropped everything (clean session).
    pub(crate) fn clear(&mut self) {
        *self = InFlight::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkids_map_in_send_order_and_qos0_completes_on_send() {
        let mut w = InFlight::default();
        w.queued(Tag::Outbox(OutboxKey(10), 1));
        w.queued(Tag::Other);
        w.queued(Tag::Outbox(OutboxKey(11), 0));
        w.queued(Tag::Outbox(OutboxKey(12), 1));
        assert_eq!(w.sent(1), Some(Tag::Outbox(OutboxKey(10), 1)));
        assert_eq!(w.sent(2), Some(Tag::Other));
        assert_eq!(w.sent(0), Some(Tag::Outbox(OutboxKey(11), 0)));
        assert_eq!(w.sent(3), Some(Tag::Outbox(OutboxKey(12), 1)));
        assert_eq!(w.sent(4), None);
        assert_eq!(w.len(), 3);
        assert_eq!(w.acked(3), Some(Tag::Outbox(OutboxKey(12), 1)));
        assert_eq!(w.acked(1), Some(Tag::Outbox(OutboxKey(10), 1)));
        assert_eq!(w.acked(1), None);
        assert_eq!(w.acked(2), Some(Tag::Other));
        assert!(w.is_empty());
    }

    #[test]
    fn collision_keeps_the_held_request_for_the_reused_pkid() {
        let mut w = InFlight::default();
        w.queued(Tag::Outbox(OutboxKey(1), 1));
        assert_eq!(w.sent(1), Some(Tag::Outbox(OutboxKey(1), 1)));
        w.queued(Tag::Outbox(OutboxKey(2), 1));
        w.collided(); // pkid 1 reused while still in flight
        assert_eq!(w.acked(1), Some(Tag::Outbox(OutboxKey(1), 1)));
        assert_eq!(w.sent(1), Some(Tag::Outbox(OutboxKey(2), 1))); // held request goes out now
        assert_eq!(w.acked(1), Some(Tag::Outbox(OutboxKey(2), 1)));
        assert!(w.is_empty());
    }

    #[test]
    fn clear_forgets_everything() {
        let mut w = InFlight::default();
        w.queued(Tag::Other);
        w.sent(5);
        w.queued(Tag::Offline);
        w.clear();
        assert!(w.is_empty());
        assert_eq!(w.acked(5), None);
    }
}
