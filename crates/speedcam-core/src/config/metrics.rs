//! `[metrics]`: the optional Prometheus endpoint and the `stats` topic period. The endpoint
//! itself is the daemon's (`speedcam::metrics`).

use std::net::SocketAddr;
use std::time::Duration;

/// Default `[metrics] stats_interval_s`: how often the `stats` topic is published, s.
pub const DEFAULT_STATS_INTERVAL_S: f64 = 10.0;

/// `[metrics]` of the config: the optional Prometheus endpoint and the `stats` topic period.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (`listen`); None (the default): no endpoint.
    pub listen: Option<SocketAddr>,
    /// Period of the MQTT `stats` topic (`stats_interval_s`, default 10 s).
    pub stats_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            stats_interval: Duration::from_secs_f64(DEFAULT_STATS_INTERVAL_S),
        }
    }
}

impl MetricsConfig {
    /// True unless the endpoint listens on a non-loopback address (reachable from the network:
    /// the figures are not secret, but the operator should know). No endpoint counts as loopback.
    pub fn is_loopback(&self) -> bool {
        self.listen.is_none_or(|a| a.ip().is_loopback())
    }

    /// The warning to log at startup when the endpoint is reachable from other hosts.
    pub fn exposure_warning(&self) -> Option<String> {
        match self.listen {
            Some(a) if !a.ip().is_loopback() => Some(format!(
                "the metrics endpoint listens on {a}, reachable from other hosts: the figures need no \
                 authentication (set [metrics] listen = \"127.0.0.1:{}\" to keep it local)",
                a.port()
            )),
            _ => None,
        }
    }
}
