//! The config file: [`speedcam_core::config`] parses and validates it (re-exported here); this
//! module adds the one check core cannot make, loading the `[mqtt]` TLS files with rustls
//! ([`crate::publish::tls`]), so `check-config`, start-up and reload refuse a bad certificate
//! with its key and line, as they refuse any other bad value.

pub use speedcam_core::config::*;

use crate::publish::tls::MqttTls;
use std::path::Path;

/// Reads and validates the config at `path`, TLS material included.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    parse(&text, path)
}

/// Validates config text, TLS material included; `path` locates relative paths and names the
/// file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cfg = speedcam_core::config::parse(text, path)?;
    if let Some(loaded) = mqtt_tls(&cfg)? {
        if let Some(files) = cfg.mqtt.as_mut().and_then(|m| m.tls.as_mut()) {
            files.material_hash = loaded.material_hash();
        }
    }
    Ok(cfg)
}

/// The loaded TLS material of a config [`load`]ed or [`parse`]d here (None for `mqtt://`); a
/// file that cannot be used is a problem on its key, at its line.
pub fn mqtt_tls(cfg: &Config) -> Result<Option<MqttTls>, ConfigError> {
    cfg.mqtt
        .as_ref()
        .and_then(|m| m.tls.as_ref())
        .map(MqttTls::load_files)
        .transpose()
        .map_err(|problem| ConfigError::Invalid {
            path: cfg.path.clone(),
            problems: vec![problem],
        })
}

#[cfg(test)]
#[path = "config_tls_tests.rs"]
mod tls_tests;
