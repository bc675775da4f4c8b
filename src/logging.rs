//! Where log lines go and which ones: journald when systemd started us, human-readable text on a
//! terminal (or a pipe) otherwise; the filter comes from `RUST_LOG`, else the config's
//! `log_level`, else `info`, and a SIGHUP can change the config's part without a restart.

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Prefix of our fields in the journal: the camera span's `camera` becomes `SPEEDCAM_CAMERA`,
/// an error's `err` becomes `SPEEDCAM_ERR` (tracing-journald's default, `F_`/`S0_`, says nothing
/// to an operator typing `journalctl SPEEDCAM_CAMERA=front`). The README lists the fields.
pub const JOURNAL_FIELD_PREFIX: &str = "SPEEDCAM";

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
        tracing_journald::layer()
            .ok()
            .map(|l| l.with_field_prefix(Some(JOURNAL_FIELD_PREFIX.into())))
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

/// A tracing layer that keeps every event with its fields and those of its spans, for tests
/// that check what an operator would filter on (`camera` from the span, `err` as a field).
#[cfg(test)]
pub(crate) mod capture {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;

    /// One event as a subscriber saw it.
    #[derive(Debug, Clone)]
    pub(crate) struct Captured {
        /// The event's own fields, `message` included.
        pub fields: BTreeMap<String, String>,
        /// `span_name.field` for every field of every span the event is inside.
        pub span_fields: BTreeMap<String, String>,
        /// The thread that emitted it.
        pub thread: String,
    }

    /// Records into a shared list; clone it to read the list after the run.
    #[derive(Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<Vec<Captured>>>);

    impl Capture {
        /// Everything recorded so far.
        pub(crate) fn events(&self) -> Vec<Captured> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    struct Fields(BTreeMap<String, String>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields(BTreeMap::new());
            attrs.record(&mut fields);
            if let Some(span) = ctx.span(id) {
                let name = span.name();
                let named = fields
                    .0
                    .into_iter()
                    .map(|(k, v)| (format!("{name}.{k}"), v))
                    .collect::<BTreeMap<_, _>>();
                span.extensions_mut().insert(named);
            }
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            let mut span_fields = BTreeMap::new();
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(f) = span.extensions().get::<BTreeMap<String, String>>() {
                        span_fields.extend(f.clone());
                    }
                }
            }
            let thread = std::thread::current().name().unwrap_or("").to_string();
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Captured {
                    fields: fields.0,
                    span_fields,
                    thread,
                });
        }
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
