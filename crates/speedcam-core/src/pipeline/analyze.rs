//! `speedcamd analyze`: tracker, speed and verdicts on recorded detections (MOTChallenge files).
//!
//! The same [`CameraPipeline`] as live video, entered through
//! [`CameraPipeline::process_detections`], so a re-run with a new calibration, zone or speed
//! method gives exactly what the daemon would have reported. Nothing is stored or published: an
//! offline re-analysis must not raise alerts again.

use super::camera::{CameraPipeline, Verdict};
use super::pick_camera;
use crate::config::Config;
use crate::source::mot::{read_mot, FrameTimes};
use crate::stats::StageTimes;
use anyhow::Context;
use std::path::PathBuf;
use time::OffsetDateTime;

/// What to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// MOTChallenge detection file.
    pub mot: PathBuf,
    /// Frame times: a timestamps file or a nominal rate.
    pub times: FrameTimes,
    /// Camera whose calibration, zone and speed settings apply (default: the first).
    pub camera: Option<String>,
}

/// What an analysis did.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeSummary {
    /// Frames with at least one detection.
    pub frames: u64,
    /// Boxes read.
    pub detections: u64,
    /// Measurement records produced.
    pub measurements: u64,
    /// Speeding records produced.
    pub speeding: u64,
    /// Span of frame times, s.
    pub video_s: f64,
    /// Per-stage timings (track, speed).
    pub times: StageTimes,
}

/// Runs the detections of `opts.mot` through one camera's tracker and speed stage; every verdict
/// goes to `on_verdict` in order.
pub fn analyze(
    cfg: &Config,
    opts: &AnalyzeOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<AnalyzeSummary> {
    let cam = pick_camera(cfg, opts.camera.as_deref())?;
    let frames = read_mot(&opts.mot)?;
    let times_s = opts.times.times_for(&frames, &opts.mot)?;
    let model_id = format!(
        "mot:{}",
        opts.mot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut pipeline =
        CameraPipeline::new(cam.clone(), cfg.tracker.clone(), &cfg.device_id, &model_id);
    let wall0 = OffsetDateTime::now_utc();
    let mut sum = AnalyzeSummary::default();
    let mut emit = |v: &Verdict, sum: &mut AnalyzeSummary| {
        match v.event.kind {
            crate::event::EventType::Measurement => sum.measurements += 1,
            crate::event::EventType::Speeding => sum.speeding += 1,
        }
        on_verdict(v);
    };
    let mut prev_t_s = f64::NEG_INFINITY;
    for (f, &t_s) in frames.iter().zip(&times_s) {
        if t_s <= prev_t_s {
            anyhow::bail!(
                "frame {} of {} is at {t_s} s, not after the previous detected frame ({prev_t_s} s): frame times must increase",
                f.frame,
                opts.mot.display()
            );
        }
        prev_t_s = t_s;
        sum.frames += 1;
        sum.detections += f.detections.len() as u64;
        let wall = wall_at(wall0, t_s - times_s[0]).with_context(|| {
            format!(
                "frame {} of {} is {} s after the first detected frame, too far to date: check --fps or --timestamps",
                f.frame,
                opts.mot.display(),
                t_s - times_s[0]
            )
        })?;
        for v in pipeline.process_detections(t_s, wall, Some(&f.detections), &mut sum.times) {
            emit(&v, &mut sum);
        }
    }
    for v in pipeline.finish() {
        emit(&v, &mut sum);
    }
    if let (Some(first), Some(last)) = (times_s.first(), times_s.last()) {
        sum.video_s = last - first;
    }
    Ok(sum)
}

/// `wall0` plus `offset_s`, or None when that is not a representable date (a frame rate of
/// 1e-12 or timestamps of 1e300 s put frames beyond year 9999).
fn wall_at(wall0: OffsetDateTime, offset_s: f64) -> Option<OffsetDateTime> {
    wall0.checked_add(time::Duration::checked_seconds_f64(offset_s)?)
}

/// Loads the frame times named on the command line: exactly one of a timestamps file or a rate.
pub fn frame_times(timestamps: Option<PathBuf>, fps: Option<f64>) -> anyhow::Result<FrameTimes> {
    match (timestamps, fps) {
        (Some(p), None) => {
            FrameTimes::read(&p).with_context(|| format!("reading --timestamps {}", p.display()))
        }
        (None, Some(r)) => FrameTimes::nominal(r).map_err(anyhow::Error::msg),
        _ => anyhow::bail!(
            "give exactly one of --timestamps FILE (one time in s per frame) or --fps RATE"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_beyond_the_calendar_are_not_dated() {
        let wall0 = OffsetDateTime::UNIX_EPOCH;
        // `--fps 1e-12` puts frame 2 1e12 s (31 700 years) after frame 1; 1e300 overflows a
        // Duration. Both panicked in `OffsetDateTime + Duration::seconds_f64`.
        assert_eq!(wall_at(wall0, 1e12), None);
        assert_eq!(wall_at(wall0, 1e300), None);
        assert_eq!(wall_at(wall0, f64::NAN), None);
        let two_hours = wall_at(wall0, 7200.5).unwrap();
        assert_eq!(two_hours - wall0, time::Duration::milliseconds(7_200_500));
    }
}
