//! `[storage]`: how long and how much the sled store in `data_dir` keeps, and how a full disk is
//! handled (see `crate::store::Retention` and `crate::service::storage`).

use std::time::Duration;

/// Validated `[storage]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Events (with thumbnails) older than this are pruned; `None` (`max_age_days = 0`): no
    /// age limit. Default 30 days.
    pub max_age: Option<Duration>,
    /// Cap on the data directory's real size, bytes. Default 8 GB: a Jetson with 32-64 GB of
    /// eMMC shares it with the OS, the model engines and the journal.
    pub max_bytes: u64,
    /// New events are held in memory (not written) while the filesystem of `data_dir` has less
    /// free space than this, bytes: sled must never hit ENOSPC (its Db then stays broken until
    /// the process restarts). Default 256 MB.
    pub min_free_bytes: u64,
    /// How often retention runs. Default 300 s.
    pub prune_interval: Duration,
    /// Verdicts kept in memory while they cannot be stored (disk full); beyond it verdicts are
    /// lost (counted and logged). Default 1000 (about 50 MB with 50 KB thumbnails).
    pub retry_queue: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            max_age: Some(Duration::from_secs(30 * 86_400)),
            max_bytes: 8_000_000_000,
            min_free_bytes: 256_000_000,
            prune_interval: Duration::from_secs(300),
            retry_queue: 1000,
        }
    }
}

/// Parses "8GB", "512 MiB", "1.5G", "4096" (bytes). Decimal units (kB, MB, GB, TB: powers of
/// 1000) and binary ones (KiB, MiB, GiB, TiB; also K, M, G, T: powers of 1024); case-insensitive.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "{text:?} is not a size: give bytes as an integer or a number with a unit, e.g. \"8GB\", \"512MiB\" (units B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_byte_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("1.5g"), Ok(3 << 29));
        assert!(parse_byte_size("8 parsecs").unwrap_err().contains("8GB"));
        assert!(parse_byte_size("").is_err());
        assert!(parse_byte_size("GB").is_err());
    }
}
