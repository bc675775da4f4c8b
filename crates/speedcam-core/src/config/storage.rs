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

/// Memory sled holds per byte of its data directory: it keeps what it wrote in its page cache
/// and `cache_capacity` did not bound that (sled 0.34). `examples/store_memory.rs` measured RSS
/// growth of 0.85-1.0 bytes per byte of `data_dir` at 20,000-50,000 records (1.5-1.8 per byte of
/// records), so `max_bytes` bounds the daemon's memory too. Used to warn, not to enforce.
pub const STORE_RSS_PER_BYTE: f64 = 1.0;

/// Share of the machine's RAM a full store may take before [`StorageConfig::memory_warning`]
/// warns: the detector, decoders and frames need the rest (a Jetson shares it with the GPU).
pub const STORE_RAM_SHARE: f64 = 0.25;

impl StorageConfig {
    /// A warning when a store grown to `max_bytes` would hold more than [`STORE_RAM_SHARE`] of
    /// `mem_total_bytes` in memory, naming the cap that fits; None when it fits.
    pub fn memory_warning(&self, mem_total_bytes: u64) -> Option<String> {
        let need = self.max_bytes as f64 * STORE_RSS_PER_BYTE;
        let budget = mem_total_bytes as f64 * STORE_RAM_SHARE;
        (need > budget).then(|| {
            format!(
                "[storage] max_bytes = {} lets the store grow until sled holds about {} in memory \
                 (sled keeps about as much in memory as data_dir holds on disk), more than {:.0}% \
                 of this machine's {} of RAM: set max_bytes to {} or less, or lower max_age_days so \
                 that the store stays that small",
                show_size(self.max_bytes),
                show_size(need as u64),
                STORE_RAM_SHARE * 100.0,
                show_size(mem_total_bytes),
                show_size((budget / STORE_RSS_PER_BYTE) as u64),
            )
        })
    }
}

/// A size for messages: "8.0 GB", "512 MB", "900 kB" (powers of 1000, as `max_bytes` takes them).
pub fn show_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// The machine's RAM from `/proc/meminfo` (`MemTotal`), bytes; None where it cannot be read.
pub fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

    #[test]
    fn memory_warning_names_a_cap_that_fits() {
        let ram = 8_000_000_000;
        let big = StorageConfig::default();
        let msg = big
            .memory_warning(ram)
            .expect("8 GB of store on 8 GB of RAM warns");
        let fits = (ram as f64 * STORE_RAM_SHARE / STORE_RSS_PER_BYTE) as u64;
        assert!(msg.contains("max_bytes = 8.0 GB"), "{msg}");
        assert!(msg.contains(&show_size(fits)), "{msg}");
        let small = StorageConfig {
            max_bytes: fits,
            ..StorageConfig::default()
        };
        assert_eq!(small.memory_warning(ram), None);
        let over = StorageConfig {
            max_bytes: fits + 1_000_000,
            ..StorageConfig::default()
        };
        assert!(over.memory_warning(ram).is_some());
    }

    #[test]
    fn mem_total_is_read_from_meminfo() {
        let text = "MemTotal:        7989120 kB\nMemFree:          123456 kB\n";
        assert_eq!(parse_mem_total(text), Some(7_989_120 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }
}
