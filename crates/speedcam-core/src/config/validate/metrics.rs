//! `[metrics]`: the Prometheus endpoint's address and the `stats` topic period.

use super::Validator;
use crate::config::metrics::MetricsConfig;
use crate::config::raw::RawMetrics;

impl Validator<'_> {
    /// `[metrics]`: `listen` (IP:port, no default: no endpoint) and `stats_interval_s`.
    pub(super) fn metrics(&mut self, raw: Option<&RawMetrics>) -> MetricsConfig {
        let d = MetricsConfig::default();
        let Some(r) = raw else { return d };
        let listen = r.listen.as_ref().and_then(|l| {
            let v = l.get_ref();
            match v.parse::<std::net::SocketAddr>() {
                Ok(a) if a.port() == 0 => {
                    self.problem("metrics.listen", l.span(), format!("{v:?} has port 0: give the fixed port Prometheus scrapes, e.g. \"127.0.0.1:9464\""));
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    self.problem("metrics.listen", l.span(), format!("{v:?} is not an address: give IP:port, e.g. \"127.0.0.1:9464\" (this host only) or \"0.0.0.0:9464\" (every interface; host names are not allowed), or remove the key to run without the endpoint"));
                    None
                }
            }
        });
        let interval_s = self.float(
            "metrics.stats_interval_s",
            &r.stats_interval_s,
            d.stats_interval.as_secs_f64(),
            0.1,
            3600.0,
        );
        MetricsConfig {
            listen,
            stats_interval: std::time::Duration::from_secs_f64(interval_s),
        }
    }
}
