//! Wires the daemon together: the store, the shared detector, the publisher, and per camera a
//! supervisor running the camera loop ([`run_source`]) into the sink. The offline commands
//! (`replay`, `bench`, in [`crate::cmds`]) compose the same parts.

pub mod camera_loop;
pub mod daemon;
pub(crate) mod handoff;
pub mod liveness;
pub mod notify;
pub mod reload;
pub mod sink;
pub mod storage;
pub mod supervisor;

pub(crate) use camera_loop::camera_loop;
pub use camera_loop::{
    run_source, LoopEnd, LoopEnv, LoopFailure, LoopHooks, LoopOptions, RunSummary,
    LIVE_STAGE_SAMPLES,
};
pub use daemon::run;

use crate::config::Config;
use crate::frame::Frame;
use crate::publish::Publisher;
use crate::schedule::DetectorGate;
use crate::store::Store;
use anyhow::Context;
pub use handoff::HandoffMode;
pub use sink::{Accepted, EventSink};
pub use speedcam_core::pipeline::{analyze, camera, pick_camera, CameraPipeline, Verdict};
use std::sync::Arc;
use std::time::Instant;

/// A detector shared by every camera of the daemon; busy cameras are served first.
pub type SharedDetector = Arc<DetectorGate>;

/// Opens the data directory's store.
pub fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(&cfg.data_dir).with_context(|| {
        format!(
            "opening the store in data_dir {} (set data_dir in {})",
            cfg.data_dir.display(),
            cfg.path.display()
        )
    })
}

/// Opens the detector the config names.
pub fn open_detector(cfg: &Config) -> anyhow::Result<SharedDetector> {
    let context = || {
        format!(
            "loading detector.model {} (set in {})",
            cfg.detector.model.display(),
            cfg.path.display()
        )
    };
    let mut d = crate::detect::open(&cfg.detector).with_context(context)?;
    // Warm-up before anything reports ready: the first runs pay allocation and (TensorRT)
    // engine loading, which would otherwise land on the first vehicle.
    let start = Instant::now();
    d.warm_up(2).with_context(context)?;
    tracing::info!(
        model = d.model_id(),
        provider = %d.provider(),
        warm_up_s = start.elapsed().as_secs_f64(),
        "detector loaded"
    );
    Ok(Arc::new(DetectorGate::new(d)))
}

/// Measures one detection on a blank frame of the first camera's size and warns, per camera,
/// when the zone is too short for `min_samples_in_zone` detections of a vehicle at
/// `max_speed_kmh` at the rate this device reaches. All cameras busy at once share the detector,
/// so the rate is divided among them; `max_detect_hz` caps it. Returns the warnings (also
/// logged) and the measured ms per detection.
pub fn warn_achievable_rate(cfg: &Config, detector: &SharedDetector) -> (Vec<String>, f64) {
    let Some(ms) = measure_detect_ms(cfg, detector) else {
        return (Vec::new(), f64::NAN);
    };
    (rate_warnings(cfg, ms), ms)
}

/// This machine's time for one detection on a blank frame of the first camera's size, ms: the
/// best of two runs after a first one (which pays one-time costs: allocations, engine build).
/// None when the detector fails.
fn measure_detect_ms(cfg: &Config, detector: &SharedDetector) -> Option<f64> {
    let (w, h) = cfg
        .cameras
        .first()
        .and_then(|c| c.image_size)
        .unwrap_or((1280, 720));
    let blank = Frame::i420_from_rgb_image(
        "rate-probe".into(),
        0,
        0,
        &image::RgbImage::from_pixel(w, h, image::Rgb([96, 96, 96])),
    );
    let mut ms = f64::INFINITY;
    let mut d = detector.lock(false);
    for _ in 0..3 {
        let start = Instant::now();
        d.detect(&blank).ok()?;
        ms = ms.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Some(ms)
}

/// The zone-length warnings (also logged) for cameras sharing a detector that takes
/// `detect_ms` per frame.
fn rate_warnings(cfg: &Config, detect_ms: f64) -> Vec<String> {
    let ms = detect_ms;
    let n = cfg.cameras.len().max(1) as f64;
    let mut out = Vec::new();
    for cam in &cfg.cameras {
        let mut hz = 1e3 / ms / n;
        let mut source = format!(
            "measured here: {ms:.1} ms per detection, shared by {} camera(s)",
            cfg.cameras.len()
        );
        if let Some(cap) = cam.schedule.max_detect_hz.filter(|&cap| cap < hz) {
            hz = cap;
            source = format!("cameras[{}].schedule.max_detect_hz", cam.id);
        }
        let rate = crate::config::geometry::DetectionRate { hz, source };
        if let Some(w) = crate::config::geometry::zone_length_warning(cam, &rate) {
            tracing::warn!("{w}");
            out.push(w);
        }
    }
    out
}

/// The sink verdicts go to: `store`, and the MQTT publisher (started on `rt`) when `[mqtt]` is
/// configured. The daemon, `replay` and `bench` all build theirs here.
pub fn start_sink(
    cfg: &Config,
    store: &Store,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<EventSink> {
    let Some(m) = &cfg.mqtt else {
        return Ok(EventSink::new(store.clone(), None, None, false));
    };
    let p = Publisher::spawn(m.clone(), store.clone(), rt).with_context(|| {
        format!(
            "starting MQTT publisher for {}",
            crate::source::redact_uri(&m.url)
        )
    })?;
    let topics = p.topics().clone();
    Ok(EventSink::new(
        store.clone(),
        Some(p),
        Some(topics),
        m.publish_measurements,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures for pipeline tests that need no model and no video.
    use super::*;
    use crate::detect::{DetectError, DetectTimings, Detection, Detector};
    use crate::source::{Source, SourceError};
    use std::time::Duration;

    /// A config with one camera (the demo calibration) reading `source`, data in a temp dir.
    pub(crate) fn fixture_config(source: &str) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg =
            speedcam_core::pipeline::camera::testkit::demo_config(source, &dir.path().join("data"));
        (cfg, dir)
    }

    /// A detector that finds nothing, instantly or after `delay`.
    pub(crate) struct NullDetector {
        /// Time each call takes.
        pub delay: Duration,
    }

    impl Detector for NullDetector {
        fn detect(&mut self, _: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            std::thread::sleep(self.delay);
            Ok((Vec::new(), DetectTimings::default()))
        }
        fn model_id(&self) -> &str {
            "null"
        }
    }

    /// Fails every call, like a backend whose runtime broke.
    pub(crate) struct FailingDetector;

    impl Detector for FailingDetector {
        fn detect(&mut self, _: &Frame) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
            Err(DetectError::Inference {
                step: "running the model".into(),
                cause: "CUDA error 700: illegal address".into(),
            })
        }
        fn model_id(&self) -> &str {
            "failing"
        }
    }

    /// A shared [`NullDetector`] without delay.
    pub(crate) fn null_detector() -> SharedDetector {
        Arc::new(DetectorGate::new(Box::new(NullDetector {
            delay: Duration::ZERO,
        })))
    }

    /// A sink storing into the config's data dir, without MQTT.
    pub(crate) fn memory_sink(cfg: &Config) -> EventSink {
        EventSink::new(open_store(cfg).expect("store"), None, None, false)
    }

    /// A live camera at `fps`: frame k is "captured" at `origin + k / fps` (the source sleeps
    /// until then, or hands it out late when the consumer held it up).
    pub(crate) struct RealTimeSource {
        pub origin: Instant,
        pub fps: f64,
        pub frames: u64,
        pub seq: u64,
    }

    impl Source for RealTimeSource {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.seq == self.frames {
                return Ok(None);
            }
            let due = self.origin + Duration::from_secs_f64(self.seq as f64 / self.fps);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let f = tiny_frame(self.seq, self.seq as f64 / self.fps);
            self.seq += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "real-time test camera".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// `frames` tiny frames at 30 fps (frame k at k / 30 s), then the end of the stream or, with
    /// `disconnect`, that cause as `Disconnected`. The first frame logs "first frame decoded",
    /// so a test sees which thread a source logs on.
    pub(crate) struct TestFrames {
        /// Frames to serve.
        pub frames: u64,
        /// The next frame's sequence number.
        pub seq: u64,
        /// How the connection breaks after the last frame; None: the stream ends.
        pub disconnect: Option<speedcam_core::source::link::LinkError>,
    }

    impl TestFrames {
        /// `frames` frames, then the end of the stream.
        pub(crate) fn ending(frames: u64) -> Self {
            TestFrames {
                frames,
                seq: 0,
                disconnect: None,
            }
        }

        /// `frames` frames, then a disconnect because of `cause`.
        pub(crate) fn disconnecting(
            frames: u64,
            cause: speedcam_core::source::link::LinkError,
        ) -> Self {
            TestFrames {
                disconnect: Some(cause),
                ..TestFrames::ending(frames)
            }
        }
    }

    impl Source for TestFrames {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.seq == 0 {
                tracing::info!("first frame decoded");
            }
            if self.seq == self.frames {
                return match self.disconnect.take() {
                    Some(cause) => Err(SourceError::Disconnected {
                        uri: "rtsp://cam/x".into(),
                        cause,
                    }),
                    None => Ok(None),
                };
            }
            let f = tiny_frame(self.seq, self.seq as f64 / 30.0);
            self.seq += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "test frames".into()
        }
        fn counters(&self) -> crate::source::SourceCounters {
            Default::default()
        }
    }

    /// A 32x32 black frame at `t_s`.
    pub(crate) fn tiny_frame(seq: u64, t_s: f64) -> Frame {
        Frame {
            camera: "cam".into(),
            seq,
            pts_ns: (t_s * 1e9).round() as i64,
            wall: time::OffsetDateTime::UNIX_EPOCH,
            width: 32,
            height: 32,
            format: crate::frame::PixelFormat::Rgb8,
            data: vec![0u8; 32 * 32 * 3].into(),
        }
    }

    /// The warning follows from the time per detection; the time is given here, so the test
    /// does not depend on how fast this machine is.
    #[test]
    fn startup_warns_when_this_device_is_too_slow_for_the_zone() {
        let (mut cfg, _dir) = fixture_config("synthetic.mp4");
        cfg.cameras[0].speed.max_speed_kmh = 200.0;
        cfg.cameras[0].speed.min_samples = 8;
        let warnings = rate_warnings(&cfg, 100.0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("100.0 ms per detection, shared by 1 camera(s)"),
            "{warnings:?}"
        );
        // A fast detector reaches the rate; a cap below it brings the warning back and names it.
        assert!(rate_warnings(&cfg, 1.0).is_empty());
        cfg.cameras[0].schedule.max_detect_hz = Some(5.0);
        let warnings = rate_warnings(&cfg, 1.0);
        assert!(
            warnings[0].contains("schedule.max_detect_hz"),
            "{warnings:?}"
        );
    }

    /// The measurement times real detections: a detector that sleeps 20 ms cannot measure
    /// less (only a lower bound holds on a loaded machine); a failing one gives no figure.
    #[test]
    fn the_detection_time_is_measured_on_this_machine() {
        let (cfg, _dir) = fixture_config("synthetic.mp4");
        let sleeping: SharedDetector = Arc::new(DetectorGate::new(Box::new(NullDetector {
            delay: Duration::from_millis(20),
        })));
        let (_, ms) = warn_achievable_rate(&cfg, &sleeping);
        assert!(ms >= 20.0, "{ms}");
        let failing: SharedDetector = Arc::new(DetectorGate::new(Box::new(FailingDetector)));
        let (warnings, ms) = warn_achievable_rate(&cfg, &failing);
        assert!(warnings.is_empty() && ms.is_nan(), "{warnings:?} {ms}");
    }
}
