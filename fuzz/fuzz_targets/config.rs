//! The config loader and validator (`speedcamd check-config`, `run`, ...) on arbitrary text, and
//! the geometry checks check-config runs on each camera of a valid config. The path points
//! nowhere: validation must not read files (the model is read later, by the detector).
#![no_main]

use libfuzzer_sys::fuzz_target;
use speedcam_core::config::geometry::{self, DetectionRate};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/speedcam-fuzz/speedcam.toml");
    let Ok(cfg) = speedcam_core::config::parse(text, path) else {
        return;
    };
    let rate = DetectionRate {
        hz: geometry::DEFAULT_DETECTION_HZ,
        source: "fuzz".into(),
    };
    for cam in &cfg.cameras {
        let _ = geometry::geometry_warnings(cam, &rate);
        let _ = geometry::zone_extrapolation_warning(cam);
        let _ = geometry::calibration_warnings(cam);
        let _ = speedcam_core::config::check_image_size(cam, 1920, 1080);
        let _ = speedcam_core::config::check_image_size(cam, 1, 1);
    }
});
