//! MQTT topic names (design.md, "MQTT") and the outbox messages that announce an event.

use super::{check_topic_level, check_topic_prefix, PublishError};
use crate::event::{Event, EventType};
use crate::store::OutboxMessage;

/// Builds every topic under `<base>/<device_id>`, so names stay identical across modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Topics {
    /// Topics under `<base_topic>/<device_id>`; both must be valid topic levels.
    pub fn new(base_topic: &str, device_id: &str) -> Result<Topics, PublishError> {
        check_topic_prefix("mqtt.base_topic", base_topic)?;
        check_topic_level("device_id", device_id)?;
        Ok(Topics {
            root: format!("{base_topic}/{device_id}"),
        })
    }

    /// `<root>/status`: retained `online`/`offline` (last will).
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }

    /// `<root>/<camera>/speeding`: speeding event JSON.
    pub fn speeding(&self, camera: &str) -> String {
        format!("{}/{camera}/speeding", self.root)
    }

    /// `<root>/<camera>/speeding/<event_id>/thumbnail`: JPEG bytes of one speeding event.
    pub fn thumbnail(&self, camera: &str, event_id: &str) -> String {
        format!("{}/{camera}/speeding/{event_id}/thumbnail", self.root)
    }

    /// `<root>/<camera>/measurements`: every vehicle's measurement JSON.
    pub fn measurements(&self, camera: &str) -> String {
        format!("{}/{camera}/measurements", self.root)
    }

    /// `<root>/<camera>/state`: retained source health.
    pub fn state(&self, camera: &str) -> String {
        format!("{}/{camera}/state", self.root)
    }

    /// `<root>/<camera>/summary`: retained latest-value summary of a camera's verdicts (last
    /// speed, speeding and measurement counts), the state topic of the Home Assistant sensors.
    pub fn summary(&self, camera: &str) -> String {
        format!("{}/{camera}/summary", self.root)
    }

    /// `<root>/stats`: periodic figures, QoS 0.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.root)
    }

    /// The QoS 1 messages that announce `event`: for a speeding event its JSON and, when given,
    /// its JPEG thumbnail (the event's `thumbnail_topic` should then be [`Topics::thumbnail`]);
    /// for a measurement its JSON on the measurements topic when `publish_measurements`.
    pub fn event_messages(
        &self,
        event: &Event,
        thumbnail_jpeg: Option<&[u8]>,
        publish_measurements: bool,
    ) -> Result<Vec<OutboxMessage>, PublishError> {
        let msg = |topic: String, payload: Vec<u8>| OutboxMessage {
            topic,
            payload,
            qos: 1,
            retain: false,
        };
        let json = || serde_json::to_vec(event).map_err(PublishError::Encode);
        let mut out = Vec::new();
        match event.kind {
            EventType::Speeding => {
                out.push(msg(self.speeding(&event.camera), json()?));
                if let Some(jpeg) = thumbnail_jpeg {
                    let topic = self.thumbnail(&event.camera, &event.event_id);
                    out.push(msg(topic, jpeg.to_vec()));
                }
            }
            EventType::Measurement if publish_measurements => {
                out.push(msg(self.measurements(&event.camera), json()?));
            }
            EventType::Measurement => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType) -> Event {
        Event {
            kind,
            ..crate::event::test_event("01ARZ3NDEKTSV4RRFFQ69G5FAV".into(), "north", 1)
        }
    }

    #[test]
    fn topics_follow_the_design_table() {
        let t = Topics::new("speedcam", "dev1").unwrap();
        assert_eq!(t.status(), "speedcam/dev1/status");
        assert_eq!(t.speeding("cam"), "speedcam/dev1/cam/speeding");
        assert_eq!(
            t.thumbnail("cam", "E1"),
            "speedcam/dev1/cam/speeding/E1/thumbnail"
        );
        assert_eq!(t.measurements("cam"), "speedcam/dev1/cam/measurements");
        assert_eq!(t.state("cam"), "speedcam/dev1/cam/state");
        assert_eq!(t.stats(), "speedcam/dev1/stats");
        assert_eq!(t.summary("cam"), "speedcam/dev1/cam/summary");
        assert_eq!(Topics::new("a/b", "d").unwrap().stats(), "a/b/d/stats");
    }

    #[test]
    fn wildcards_and_separators_are_refused() {
        for bad in ["", "a/b", "a+", "#", "x\0"] {
            let err = Topics::new("speedcam", bad).unwrap_err();
            assert!(err.to_string().contains("device_id"), "{err}");
        }
        for bad in ["speedcam/", "/speedcam", "a//b", "", "a/+", "#"] {
            let err = Topics::new(bad, "d").unwrap_err();
            assert!(err.to_string().contains("mqtt.base_topic"), "{err}");
            assert!(check_topic_prefix("p", bad).is_err(), "{bad:?}");
        }
        for good in ["homeassistant", "a/b", "a-b_c/d e"] {
            check_topic_prefix("p", good).unwrap();
        }
    }

    #[test]
    fn speeding_event_gets_json_and_thumbnail_measurement_only_json_when_enabled() {
        let t = Topics::new("speedcam", "dev").unwrap();
        let ev = event(EventType::Speeding);
        let msgs = t.event_messages(&ev, Some(b"\xff\xd8"), true).unwrap();
        let topics: Vec<_> = msgs.iter().map(|m| m.topic.clone()).collect();
        assert_eq!(
            topics,
            [t.speeding("north"), t.thumbnail("north", &ev.event_id)]
        );
        assert_eq!(msgs[1].payload, b"\xff\xd8");
        assert!(msgs.iter().all(|m| m.qos == 1 && !m.retain));
        let back: Event = serde_json::from_slice(&msgs[0].payload).unwrap();
        assert_eq!(back, ev);

        let m = event(EventType::Measurement);
        assert!(t.event_messages(&m, None, false).unwrap().is_empty());
        let on = t.event_messages(&m, None, true).unwrap();
        assert_eq!(on.len(), 1);
        assert_eq!(on[0].topic, t.measurements("north"));
    }
}
