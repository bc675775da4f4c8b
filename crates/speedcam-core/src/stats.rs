//! Per-stage timings: a product feature, not a debug print. Every frame's time in each pipeline
//! stage is recorded so `replay`, `bench` and the `stats` topic can report min / median / p99.

use std::sync::Arc;
use std::time::Instant;

/// The pipeline stages that are timed, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Container demux + H.264 decode.
    Decode,
    /// The frame scheduler's decision, including its motion check on downscaled luma.
    Schedule,
    /// Letterbox + normalisation into the model input.
    Preprocess,
    /// The model run.
    Inference,
    /// Output decode + NMS.
    Postprocess,
    /// Tracker update.
    Track,
    /// Ground projection + speed fit + event building.
    Speed,
    /// Writing events, thumbnails and outbox entries to sled (with flush).
    Store,
    /// Handing messages to the MQTT publisher.
    Publish,
    /// Not a stage: capture (decoder hand-off) to detection done, including decode and any
    /// wait for the shared detector.
    Latency,
}

impl Stage {
    /// All stages in pipeline order.
    pub const ALL: [Stage; 10] = [
        Stage::Decode,
        Stage::Schedule,
        Stage::Preprocess,
        Stage::Inference,
        Stage::Postprocess,
        Stage::Track,
        Stage::Speed,
        Stage::Store,
        Stage::Publish,
        Stage::Latency,
    ];

    /// Lower-case name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Schedule => "schedule",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
            Stage::Track => "track",
            Stage::Speed => "speed",
            Stage::Store => "store",
            Stage::Publish => "publish",
            Stage::Latency => "latency",
        }
    }
}

/// Summary of one stage's samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StageSummary {
    /// Number of samples.
    pub count: usize,
    /// Fastest, ms.
    pub min_ms: f64,
    /// Median, ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Sum of the samples kept, ms (what the stage cost in all).
    pub total_ms: f64,
}

/// Receives every sample as it is recorded into a [`StageTimes`], so live figures (the
/// Prometheus endpoint, the `stats` topic) see the same timings as `replay` and `bench` without
/// a second set of calls in the pipeline. Called on the recording thread: keep it cheap.
pub trait StageObserver: Send + Sync + std::fmt::Debug {
    /// One sample of `stage`, milliseconds.
    fn observe(&self, stage: Stage, ms: f64);
}

/// Keeps the most recent samples of every stage (bounded: memory stays flat on a long run).
#[derive(Debug, Clone)]
pub struct StageTimes {
    samples: Vec<Vec<f64>>,
    next: Vec<usize>,
    capacity: usize,
    /// Told of every [`StageTimes::record`] (not of [`StageTimes::merge`]: merged samples were
    /// observed where they were recorded). A clone shares it.
    observer: Option<Arc<dyn StageObserver>>,
}

impl Default for StageTimes {
    fn default() -> Self {
        StageTimes::with_capacity(20_000)
    }
}

impl StageTimes {
    /// Keeps up to `capacity` samples per stage, overwriting the oldest.
    pub fn with_capacity(capacity: usize) -> Self {
        StageTimes {
            samples: vec![Vec::new(); Stage::ALL.len()],
            next: vec![0; Stage::ALL.len()],
            capacity: capacity.max(1),
            observer: None,
        }
    }

    /// Sets (or with None removes) the observer told of every sample recorded from now on.
    pub fn set_observer(&mut self, observer: Option<Arc<dyn StageObserver>>) {
        self.observer = observer;
    }

    /// Records one sample of `stage` in milliseconds (and tells the observer, if any).
    pub fn record(&mut self, stage: Stage, ms: f64) {
        if let Some(o) = &self.observer {
            o.observe(stage, ms);
        }
        self.keep(stage, ms);
    }

    /// Stores a sample without telling the observer. A stage's buffer is reserved whole at its
    /// first sample, so it is never reallocated by doubling on a long run, and stages never
    /// recorded (or summaries replaced before use) reserve nothing.
    fn keep(&mut self, stage: Stage, ms: f64) {
        let i = stage as usize;
        let v = &mut self.samples[i];
        if v.capacity() == 0 {
            v.reserve_exact(self.capacity);
        }
        if v.len() < self.capacity {
            v.push(ms);
        } else {
            v[self.next[i]] = ms;
            self.next[i] = (self.next[i] + 1) % self.capacity;
        }
    }

    /// Records the time since `start` and returns now (for chaining stage after stage).
    pub fn lap(&mut self, stage: Stage, start: Instant) -> Instant {
        let now = Instant::now();
        self.record(stage, (now - start).as_secs_f64() * 1e3);
        now
    }

    /// Adds all samples of `other` (e.g. the decode thread's) into this one. The observer is not
    /// told: those samples were observed, if at all, when `other` recorded them.
    pub fn merge(&mut self, other: &StageTimes) {
        for stage in Stage::ALL {
            for &x in &other.samples[stage as usize] {
                self.keep(stage, x);
            }
        }
    }

    /// Summary of one stage, None without samples.
    pub fn summary(&self, stage: Stage) -> Option<StageSummary> {
        let mut v = self.samples[stage as usize].clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some(StageSummary {
            count: v.len(),
            min_ms: v[0],
            median_ms: q(0.5),
            p99_ms: q(0.99),
            total_ms: v.iter().sum(),
        })
    }

    /// A fixed-width table of every stage with samples.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<12} {:>8} {:>9} {:>9} {:>9}\n",
            "stage", "count", "min ms", "median ms", "p99 ms"
        );
        for stage in Stage::ALL {
            if let Some(x) = self.summary(stage) {
                s += &format!(
                    "{:<12} {:>8} {:>9.3} {:>9.3} {:>9.3}\n",
                    stage.name(),
                    x.count,
                    x.min_ms,
                    x.median_ms,
                    x.p99_ms
                );
            }
        }
        s
    }

    /// Stage name -> summary, for JSON output.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for stage in Stage::ALL {
            if let Some(x) = self.summary(stage) {
                m.insert(stage.name().into(), serde_json::json!(x));
            }
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_quantiles() {
        let mut t = StageTimes::default();
        for i in 1..=101 {
            t.record(Stage::Track, i as f64);
        }
        let s = t.summary(Stage::Track).unwrap();
        assert_eq!(
            (s.count, s.min_ms, s.median_ms, s.p99_ms),
            (101, 1.0, 51.0, 100.0)
        );
        assert!(t.summary(Stage::Decode).is_none());
        assert!(t.table().contains("track"));
        assert!(!t.table().contains("decode"));
    }

    #[test]
    fn capacity_bounds_memory_and_keeps_newest() {
        let mut t = StageTimes::with_capacity(3);
        for i in 0..10 {
            t.record(Stage::Store, i as f64);
        }
        let s = t.summary(Stage::Store).unwrap();
        assert_eq!((s.count, s.min_ms), (3, 7.0));
    }

    #[test]
    fn buffers_are_reserved_once_and_never_grow() {
        let mut t = StageTimes::with_capacity(100);
        t.record(Stage::Decode, 0.0);
        let before: Vec<usize> = t.samples.iter().map(Vec::capacity).collect();
        assert!(before[Stage::Decode as usize] >= 100, "{before:?}");
        for i in 1..1000 {
            t.record(Stage::Decode, i as f64);
        }
        let after: Vec<usize> = t.samples.iter().map(Vec::capacity).collect();
        assert_eq!(before, after);
        assert_eq!(t.summary(Stage::Decode).unwrap().count, 100);
    }

    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Vec<(Stage, f64)>>);

    impl StageObserver for Seen {
        fn observe(&self, stage: Stage, ms: f64) {
            self.0.lock().unwrap().push((stage, ms));
        }
    }

    #[test]
    fn observer_sees_records_but_not_merges() {
        let seen = Arc::new(Seen::default());
        let mut t = StageTimes::default();
        t.record(Stage::Decode, 1.0);
        t.set_observer(Some(seen.clone()));
        t.record(Stage::Track, 2.0);
        let mut other = StageTimes::default();
        other.record(Stage::Speed, 3.0);
        t.merge(&other);
        assert_eq!(*seen.0.lock().unwrap(), [(Stage::Track, 2.0)]);
        assert_eq!(t.summary(Stage::Speed).map(|s| s.count), Some(1));
        t.set_observer(None);
        t.record(Stage::Track, 4.0);
        assert_eq!(seen.0.lock().unwrap().len(), 1);
    }
}
