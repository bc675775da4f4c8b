//! Where log lines go and which ones: journald when systemd started us, human-readable text on a
//! terminal (or a pipe) otherwise; the filter comes from `RUST_LOG`, else the config's
//! `log_level`, else `info`, and a SIGHUP can change the config's part without a restart.

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The filter when neither `RUST_LOG` nor the config sets one.
pub(crate) const DEFAULT_FILTER: &str = "info";

/// Where log lines went at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The systemd journal's native protocol (levels and fields kept).
    Journald,
    /// Plain text on stderr (colour only on a terminal).
    Stderr,
}

/// Changes the active log filter after start-up (config loaded, SIGHUP).
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` as set at start-up: it wins over the config file.
    env_filter: Option<String>,
    target: LogTarget,
}

impl LogHandle {
    /// Where log lines go.
    pub fn target(&self) -> LogTarget {
        self.target
    }

    /// Applies the config's `log_level` unless `RUST_LOG` is set (the environment wins, so an
    /// operator can turn on debug logs with `systemctl edit` without touching the config).
    /// Returns the filter now in force.
    pub fn apply_config(&self, log_level: Option<&str>) -> Result<String, String> {
        let wanted = effective_filter(self.env_filter.as_deref(), log_level);
        let filter = EnvFilter::try_new(&wanted)
            .map_err(|e| format!("log filter {wanted:?} is invalid: {e}"))?;
        self.reload
            .modify(|f| *f = filter)
            .map_err(|e| format!("cannot change the log filter: {e}"))?;
        Ok(wanted)
    }
}

/// The filter string in force: `RUST_LOG`, else the config's `log_level`, else [`DEFAULT_FILTER`].
pub(crate) fn effective_filter(env: Option<&str>, config: Option<&str>) -> String {
    env.filter(|s| !s.trim().is_empty())
        .or(config)
        .unwrap_or(DEFAULT_FILTER)
        .to_string()
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM=<dev>:<inode>` names
/// it). Comparing the inode, not just the variable's presence, keeps a child process whose
/// stderr was redirected (e.g. `speedcamd replay ... 2>log` from a unit's shell) on plain text.
pub(crate) fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = parse_journal_stream(&var) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM`'s `<device>:<inode>`, None when malformed.
fn parse_journal_stream(var: &str) -> Option<(u64, u64)> {
    let (dev, ino) = var.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Installs the global subscriber; call once, first thing. A second call (tests) keeps the first
/// subscriber and returns a handle that changes nothing visible.
pub fn init() -> LogHandle {
    let env_filter = std::env::var("RUST_LOG").ok();
    let initial = effective_filter(env_filter.as_deref(), None);
    let filter = EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, reload) = reload::Layer::new(filter);
    let journald = if stderr_is_journal() {
        tracing_journald::layer().ok()
    } else {
        None
    };
    let target = if journald.is_some() {
        LogTarget::Journald
    } else {
        LogTarget::Stderr
    };
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour only on a terminal: log files and pipes get plain text.
            .with_ansi(std::io::stderr().is_terminal())
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(fmt)
        .try_init();
    LogHandle {
        reload,
        env_filter,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_the_config() {
        assert_eq!(effective_filter(Some("debug"), Some("warn")), "debug");
        assert_eq!(effective_filter(None, Some("warn")), "warn");
        assert_eq!(effective_filter(Some("  "), Some("warn")), "warn");
        assert_eq!(effective_filter(None, None), DEFAULT_FILTER);
    }

    #[test]
    fn journal_stream_is_device_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream("812345"), None);
    }
}
