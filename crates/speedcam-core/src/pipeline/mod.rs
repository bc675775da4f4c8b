//! One camera's pipeline from detections to verdicts ([`CameraPipeline`]: tracker, speed
//! estimator, event builder), and [`analyze`], which runs it over recorded MOTChallenge
//! detections instead of a detector.

pub mod analyze;
pub mod camera;

pub use camera::{speed_estimator, CameraPipeline, Verdict};

use crate::config::{CameraConfig, Config};
use anyhow::Context;

/// Finds a camera by id, or the first one.
pub fn pick_camera<'a>(cfg: &'a Config, id: Option<&str>) -> anyhow::Result<&'a CameraConfig> {
    match id {
        None => cfg.cameras.first().context("the config has no [[cameras]]"),
        Some(id) => cfg.cameras.iter().find(|c| c.id == id).with_context(|| {
            let ids: Vec<&str> = cfg.cameras.iter().map(|c| c.id.as_str()).collect();
            format!(
                "no camera {id:?} in {}: configured are {ids:?}",
                cfg.path.display()
            )
        }),
    }
}
