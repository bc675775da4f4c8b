//! SIGHUP: re-read the config file and apply what can change under running cameras.
//!
//! Applied at once, without dropping live tracks: each camera's speed limit, tolerance, strict
//! mode, measurement zone, speed settings and frame-scheduler settings, and `log_level`.
//! Everything else (sources, calibrations, cameras added or removed, detector, tracker, MQTT,
//! metrics, storage) keeps its running value and is reported as needing a restart: swapping a
//! calibration under a vehicle half-way through the zone would mix two projections in one fit,
//! and the rest is wired into threads and connections at start-up. A file that does not load is
//! rejected as a whole and the running config stays.

use crate::config::{CameraConfig, Config};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The config the camera loops follow; replaced on reload.
pub struct LiveConfig {
    generation: AtomicU64,
    current: RwLock<Arc<Config>>,
}

impl LiveConfig {
    /// Starts at generation 0 with `cfg`.
    pub fn new(cfg: Config) -> Arc<Self> {
        Arc::new(LiveConfig {
            generation: AtomicU64::new(0),
            current: RwLock::new(Arc::new(cfg)),
        })
    }

    /// Bumped on every applied reload; loops compare it each frame (one atomic load).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The config in force.
    pub fn current(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The settings in force for one camera.
    pub fn camera(&self, id: &str) -> Option<CameraConfig> {
        self.current().cameras.iter().find(|c| c.id == id).cloned()
    }

    /// Installs `cfg` and bumps the generation.
    fn install(&self, cfg: Config) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadOutcome {
    /// Keys applied, e.g. `cameras[cam1].speed_limit_kmh: 50 -> 60`.
    pub applied: Vec<String>,
    /// Keys that changed in the file but apply only after a restart.
    pub restart_needed: Vec<String>,
}

impl ReloadOutcome {
    /// One line for logs and STATUS=.
    pub fn summary(&self) -> String {
        let mut s = if self.applied.is_empty() {
            "config reloaded: nothing to apply".to_string()
        } else {
            format!("config reloaded: {}", self.applied.join(", "))
        };
        if !self.restart_needed.is_empty() {
            s.push_str(&format!(
                "; needs a restart: {}",
                self.restart_needed.join(", ")
            ));
        }
        s
    }
}

/// The running config with the reloadable keys taken from `new`, and what changed.
pub fn merge(old: &Config, new: &Config) -> (Config, ReloadOutcome) {
    let mut out = ReloadOutcome::default();
    let mut merged = old.clone();
    let mut restart = |key: &str| out.restart_needed.push(key.to_string());
    if old.device_id != new.device_id {
        restart("device_id");
    }
    if old.data_dir != new.data_dir {
        restart("data_dir");
    }
    if old.detector != new.detector {
        restart("detector");
    }
    if old.tracker != new.tracker {
        restart("tracker");
    }
    if old.mqtt != new.mqtt {
        restart("mqtt");
    }
    if old.metrics != new.metrics {
        restart("metrics");
    }
    if old.storage != new.storage {
        restart("storage");
    }
    for cam in &new.cameras {
        if !old.cameras.iter().any(|c| c.id == cam.id) {
            restart(&format!("cameras[{}] (added)", cam.id));
        }
    }
    let mut applied = Vec::new();
    for cam in merged.cameras.iter_mut() {
        let Some(n) = new.cameras.iter().find(|c| c.id == cam.id) else {
            out.restart_needed
                .push(format!("cameras[{}] (removed)", cam.id));
            continue;
        };
        let key = |k: &str| format!("cameras[{}].{k}", cam.id);
        for (k, differs) in [
            ("source", cam.source != n.source),
            (
                "calibration",
                cam.image_points != n.image_points || cam.world_points != n.world_points,
            ),
            ("image_size", cam.image_size != n.image_size),
            ("reconnect", cam.reconnect != n.reconnect),
            ("rtsp/v4l2", cam.live != n.live),
        ] {
            if differs {
                out.restart_needed.push(key(k));
            }
        }
        if cam.speed_limit_kmh != n.speed_limit_kmh {
            applied.push(format!(
                "{}: {} -> {}",
                key("speed_limit_kmh"),
                cam.speed_limit_kmh,
                n.speed_limit_kmh
            ));
            cam.speed_limit_kmh = n.speed_limit_kmh;
        }
        if cam.tolerance_kmh != n.tolerance_kmh {
            applied.push(format!(
                "{}: {} -> {}",
                key("tolerance_kmh"),
                cam.tolerance_kmh,
                n.tolerance_kmh
            ));
            cam.tolerance_kmh = n.tolerance_kmh;
        }
        if cam.strict != n.strict {
            applied.push(format!("{}: {} -> {}", key("strict"), cam.strict, n.strict));
            cam.strict = n.strict;
        }
        if cam.zone_polygon != n.zone_polygon {
            applied.push(key("zone"));
            cam.zone_polygon = n.zone_polygon.clone();
            cam.zone = n.zone.clone();
        }
        if cam.speed != n.speed {
            applied.push(key("speed"));
            cam.speed = n.speed.clone();
        }
        if cam.schedule != n.schedule {
            applied.push(key("schedule"));
            cam.schedule = n.schedule;
        }
    }
    if old.log_level != new.log_level {
        applied.push(format!(
            "log_level: {} -> {}",
            old.log_level.as_deref().unwrap_or("(default)"),
            new.log_level.as_deref().unwrap_or("(default)")
        ));
        merged.log_level = new.log_level.clone();
    }
    out.applied = applied;
    (merged, out)
}

/// Loads `live`'s file again and applies it; a file that does not load changes nothing and
/// its error (key, line, what is allowed) is returned.
pub fn reload(live: &LiveConfig) -> Result<ReloadOutcome, crate::config::ConfigError> {
    let old = live.current();
    let new = crate::config::load(&old.path)?;
    let (merged, outcome) = merge(&old, &new);
    if !outcome.applied.is_empty() {
        live.install(merged);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The demo config written to a temp dir (absolute model path, temp data dir), loaded.
    fn fixture_config(source: &str) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("config/demo.toml"))
            .expect("config/demo.toml")
            .replace("\"../media/demo/scene.mp4\"", &format!("{source:?}"))
            .replace(
                "\"../data/demo\"",
                &format!("{:?}", dir.path().join("data")),
            )
            .replace("\"../models/", &format!("\"{}/models/", root.display()));
        let path = dir.path().join("speedcam.toml");
        std::fs::write(&path, text).expect("write config");
        let cfg = crate::config::load(&path).expect("fixture config loads");
        (cfg, dir)
    }

    fn rewrite(cfg: &Config, edit: impl Fn(String) -> String) {
        let text = std::fs::read_to_string(&cfg.path).expect("config text");
        std::fs::write(&cfg.path, edit(text)).expect("write config");
    }

    #[test]
    fn limits_and_zone_apply_calibration_and_source_wait_for_a_restart() {
        let (cfg, _dir) = fixture_config("video.mp4");
        let live = LiveConfig::new(cfg.clone());
        let old_zone = cfg.cameras[0].zone_polygon.clone();
        rewrite(&cfg, |t| {
            t.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = 60.0")
                .replace("tolerance_kmh = 3.0", "tolerance_kmh = 5.0")
                .replace("[195.3626, 673.8429]", "[200.0, 670.0]")
                .replace(
                    "[0.0000, -3.5750], [0.0000, -3.4250]",
                    "[0.0000, -3.5800], [0.0000, -3.4250]",
                )
                .replace("video.mp4", "other.mp4")
                + "\n[metrics]\nstats_interval_s = 5\n"
        });
        let out = reload(&live).expect("reload");
        assert_eq!(live.generation(), 1);
        let cam = live.camera("synth").expect("camera");
        assert_eq!(cam.speed_limit_kmh, 60.0);
        assert_eq!(cam.tolerance_kmh, 5.0);
        assert_ne!(cam.zone_polygon, old_zone);
        assert_eq!(cam.zone_polygon[0], [200.0, 670.0]);
        // Not swapped under running tracks:
        assert_eq!(cam.world_points, cfg.cameras[0].world_points);
        assert_eq!(cam.source, cfg.cameras[0].source);
        assert_eq!(
            out.restart_needed,
            vec![
                "metrics",
                "cameras[synth].source",
                "cameras[synth].calibration"
            ]
        );
        assert_eq!(out.applied.len(), 3, "{out:?}");
        assert!(
            out.summary().contains("speed_limit_kmh: 50 -> 60"),
            "{}",
            out.summary()
        );
    }

    #[test]
    fn an_invalid_file_is_rejected_and_the_old_config_stays() {
        let (cfg, _dir) = fixture_config("video.mp4");
        let live = LiveConfig::new(cfg.clone());
        rewrite(&cfg, |t| {
            t.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = -5.0")
        });
        let err = reload(&live).expect_err("a negative limit must be rejected");
        assert!(err.to_string().contains("speed_limit_kmh"), "{err}");
        assert_eq!(live.generation(), 0);
        assert_eq!(live.camera("synth").expect("camera").speed_limit_kmh, 50.0);
    }

    #[test]
    fn an_unchanged_file_applies_nothing() {
        let (cfg, _dir) = fixture_config("video.mp4");
        let live = LiveConfig::new(cfg);
        let out = reload(&live).expect("reload");
        assert_eq!(out, ReloadOutcome::default());
        assert_eq!(live.generation(), 0);
    }
}
