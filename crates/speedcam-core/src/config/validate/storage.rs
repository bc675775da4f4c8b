//! `[storage]`: retention by age and size, the free-space guard and the retry queue.

use super::Validator;
use crate::config::raw::{RawByteSize, RawStorage};
use crate::config::{parse_byte_size, StorageConfig};
use toml::Spanned;

impl Validator<'_> {
    /// `[storage]`: `max_age_days`, `max_bytes`, `min_free_bytes` (sizes: integer bytes or
    /// "8GB"-style strings), `prune_interval_s`, `retry_queue`.
    pub(super) fn storage(&mut self, raw: Option<&RawStorage>) -> StorageConfig {
        let d = StorageConfig::default();
        let Some(r) = raw else { return d };
        let max_age_days = self.float(
            "storage.max_age_days",
            &r.max_age_days,
            d.max_age.map_or(0.0, |a| a.as_secs_f64() / 86_400.0),
            0.0,
            36_500.0,
        );
        let max_bytes = self.byte_size("storage.max_bytes", &r.max_bytes, d.max_bytes, 4 << 20);
        let min_free_bytes = self.byte_size(
            "storage.min_free_bytes",
            &r.min_free_bytes,
            d.min_free_bytes,
            1 << 20,
        );
        let prune_interval_s = self.float(
            "storage.prune_interval_s",
            &r.prune_interval_s,
            d.prune_interval.as_secs_f64(),
            0.1,
            86_400.0,
        );
        let retry_queue = self.int(
            "storage.retry_queue",
            &r.retry_queue,
            d.retry_queue as i64,
            1,
            100_000,
        );
        StorageConfig {
            max_age: (max_age_days > 0.0)
                .then(|| std::time::Duration::from_secs_f64(max_age_days * 86_400.0)),
            max_bytes,
            min_free_bytes,
            prune_interval: std::time::Duration::from_secs_f64(prune_interval_s),
            retry_queue: retry_queue as usize,
        }
    }

    /// A size of at least `lo` bytes (or `default` when absent): an integer of bytes or a
    /// string such as "8GB" ([`parse_byte_size`]).
    fn byte_size(
        &mut self,
        key: &str,
        v: &Option<Spanned<RawByteSize>>,
        default: u64,
        lo: u64,
    ) -> u64 {
        let Some(v) = v else { return default };
        let parsed = match v.get_ref() {
            RawByteSize::Bytes(n) => u64::try_from(*n).map_err(|_| {
                format!("{n} is negative: give a size in bytes or a string such as \"8GB\"")
            }),
            RawByteSize::Text(t) => parse_byte_size(t),
        };
        match parsed {
            Ok(n) if n >= lo => n,
            Ok(n) => {
                self.problem(
                    key,
                    v.span(),
                    format!(
                        "{n} bytes is too small: at least {lo} bytes ({} MiB)",
                        lo >> 20
                    ),
                );
                default
            }
            Err(e) => {
                self.problem(key, v.span(), e);
                default
            }
        }
    }
}
