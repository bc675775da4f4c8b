//! Origin keys: the deterministic identity of an event measured from a *recording*, so that a
//! replay restarted after a crash records each vehicle once (the store refuses a second event
//! with the same key; see the daemon's `store::origin` for why and how).

use super::{Event, EventType};
use std::io::Read;
use std::path::Path;

/// How much of a recording's head is hashed into its fingerprint.
const FINGERPRINT_HEAD_BYTES: u64 = 1 << 20;

/// Identity of a recorded video file: its size and a hash of its first MiB (not its path or
/// mtime, so a copied or touched file is still the same recording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    fingerprint: String,
}

impl Recording {
    /// Fingerprints the file at `path` (reads at most its first MiB).
    pub fn of_file(path: &Path) -> std::io::Result<Recording> {
        let file = std::fs::File::open(path)?;
        let size_bytes = file.metadata()?.len();
        let mut head = Vec::new();
        file.take(FINGERPRINT_HEAD_BYTES).read_to_end(&mut head)?;
        Ok(Recording::of_bytes(size_bytes, &head))
    }

    /// The fingerprint of a recording of `size_bytes` whose first bytes are `head`.
    pub fn of_bytes(size_bytes: u64, head: &[u8]) -> Recording {
        Recording {
            fingerprint: format!("{size_bytes}:{:016x}", fnv1a64(head)),
        }
    }

    /// `size:hash`, as it appears in origin keys.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// FNV-1a, 64 bit: stable across builds and Rust versions (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Deterministic identity of one event of a recording (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginKey(String);

impl OriginKey {
    /// The key of `event`, measured from `recording`. Times are the event's (already rounded to
    /// µs) zone entry and exit frame times; the wall-clock `time` and the id are left out, they
    /// differ between runs.
    pub fn new(recording: &Recording, event: &Event) -> OriginKey {
        let kind = match event.kind {
            EventType::Measurement => "measurement",
            EventType::Speeding => "speeding",
        };
        let us = |t_s: f64| (t_s * 1e6).round() as i64;
        OriginKey(format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{kind}\u{1f}{}\u{1f}{}\u{1f}{}",
            event.camera,
            recording.fingerprint,
            event.model,
            event.calibration,
            event.track_id,
            us(event.t_enter_s),
            us(event.t_exit_s),
        ))
    }

    /// The key as text (fields separated by U+001F), for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
