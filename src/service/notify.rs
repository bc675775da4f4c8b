//! Talking to systemd (`Type=notify`): READY, RELOADING, STOPPING, STATUS and watchdog pings.
//!
//! The daemon says what it does through the [`Notify`] trait, so the order of messages is
//! testable in-process (the tests record them); [`SystemdNotify`] sends them to `NOTIFY_SOCKET`
//! with the `sd-notify` crate and does nothing when the variable is unset (a terminal run).

use sd_notify::NotifyState;
use std::time::Duration;

/// Receives the daemon's state changes.
pub trait Notify: Send + Sync {
    /// Sends one message made of `states` (one datagram, so systemd sees them together).
    fn send(&self, states: &[NotifyState<'_>]);

    /// The watchdog interval systemd expects pings within, when it set one for this process.
    fn watchdog(&self) -> Option<Duration>;
}

/// The real thing: datagrams to `$NOTIFY_SOCKET`, watchdog interval from `$WATCHDOG_USEC`.
#[derive(Debug, Default)]
pub struct SystemdNotify;

impl Notify for SystemdNotify {
    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            // Nothing else to do: systemd will time us out if it never hears READY.
            tracing::warn!(err = %e, "cannot notify systemd");
        }
    }

    fn watchdog(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }
}

/// `RELOADING=1` with the `MONOTONIC_USEC=` systemd ≥ 253 wants beside it (`Type=notify-reload`);
/// older systemd ignores the extra field.
pub fn reloading(n: &dyn Notify, status: &str) {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => n.send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
        Err(_) => n.send(&[NotifyState::Reloading, NotifyState::Status(status)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records messages (one string per datagram, lines joined by `\n`) for tests.
    #[derive(Debug, Default)]
    struct RecordingNotify {
        messages: Mutex<Vec<String>>,
        /// What [`Notify::watchdog`] answers.
        watchdog: Option<Duration>,
    }

    impl RecordingNotify {
        /// Everything sent so far.
        fn messages(&self) -> Vec<String> {
            self.messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        }
    }

    impl Notify for RecordingNotify {
        fn send(&self, states: &[NotifyState<'_>]) {
            let msg = states
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            self.messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(msg);
        }

        fn watchdog(&self) -> Option<Duration> {
            self.watchdog
        }
    }

    #[test]
    fn recording_keeps_order_and_wire_format() {
        let n = RecordingNotify::default();
        n.send(&[
            NotifyState::Ready,
            NotifyState::Status("1 camera streaming"),
        ]);
        reloading(&n, "reloading /etc/speedcam/speedcam.toml");
        n.send(&[NotifyState::Stopping]);
        let m = n.messages();
        assert_eq!(m[0], "READY=1\nSTATUS=1 camera streaming");
        assert!(m[1].starts_with("RELOADING=1\nMONOTONIC_USEC="), "{}", m[1]);
        assert!(m[1].ends_with("STATUS=reloading /etc/speedcam/speedcam.toml"));
        assert_eq!(m[2], "STOPPING=1");
    }
}
