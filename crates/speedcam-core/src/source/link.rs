//! Why a live source (RTSP camera, V4L2 device) could not connect or broke off.
//!
//! Kept typed rather than as text, so the supervisor and the tests tell a wrong address from an
//! unreachable host or a refusal without reading messages, and a library's own error (the RTSP
//! client's, the operating system's) stays whole for whoever wants to inspect it. Each message
//! prints its cause, so no variant also returns it as `source()`: `{e:#}` prints it once.

use std::fmt;
use std::io;

/// A library's error kept whole (the RTSP client's errors are opaque types).
pub use crate::error_chain::BoxError;

/// What went wrong with a live source's connection; [`super::SourceError::Connect`] and
/// [`super::SourceError::Disconnected`] carry it with the source's (redacted) URI.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The URI does not parse as a URL.
    #[error("not a valid URL ({cause})")]
    InvalidUrl {
        /// The URL parser's error.
        cause: BoxError,
    },
    /// The URL's scheme is not one the RTSP client speaks.
    #[error("scheme `{scheme}` is not rtsp://")]
    Scheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// A percent-encoded username or password is not UTF-8.
    #[error("the {part} in the URL is not UTF-8 once decoded")]
    CredentialsNotUtf8 {
        /// `username` or `password`.
        part: &'static str,
    },
    /// The credentials could not be removed from the URL before use.
    #[error("cannot remove the credentials from the URL")]
    CredentialsNotStripped,
    /// A credentials path starts with `$CREDENTIALS_DIRECTORY`, which is not set.
    #[error(
        "CREDENTIALS_DIRECTORY is not set: systemd sets it for units with LoadCredential=; \
         outside systemd give a plain path"
    )]
    NoCredentialsDirectory,
    /// This build has no V4L2 support.
    #[error("{}", super::capture::NOT_BUILT)]
    NotBuilt,
    /// An operating-system call failed at `step`.
    #[error("{step} failed: {cause}")]
    Io {
        /// What was being done, e.g. `VIDIOC_S_FMT` or `starting the network runtime`.
        step: &'static str,
        /// The operating system's error.
        cause: io::Error,
    },
    /// Opening the device failed: missing, not permitted or busy (the message names the remedy).
    #[error("{}", device_message(cause))]
    Device {
        /// The operating system's error.
        cause: io::Error,
    },
    /// Capturing from an open device failed (USB error, bandwidth, unplugged).
    #[error("{}", capture_message(cause, *node_exists))]
    Capture {
        /// The operating system's error.
        cause: io::Error,
        /// Whether the device node still existed after the failure.
        node_exists: bool,
    },
    /// The V4L2 node lists no capture formats.
    #[error(
        "{card} ({driver}) lists no video capture formats; it may be a metadata node (UVC cameras \
         create two): try the other /dev/video* of the camera (`v4l2-ctl --list-devices`)"
    )]
    NoCaptureFormats {
        /// The device's card name.
        card: String,
        /// Its driver.
        driver: String,
    },
    /// The RTSP client failed at `step`; `status` is the server's RTSP status when it answered
    /// with one.
    #[error("{step} failed: {}{}", one_line(cause), status_hint(*status))]
    Rtsp {
        /// `DESCRIBE`, `SETUP`, `PLAY`, `demuxing` or `reading the stream`.
        step: &'static str,
        /// The RTSP status code of the server's answer, if any.
        status: Option<u16>,
        /// The RTSP client's error.
        cause: BoxError,
    },
    /// The server did not complete DESCRIBE/SETUP/PLAY in time.
    #[error(
        "no answer to DESCRIBE/SETUP/PLAY within {after_s:.1} s; check the host, port and that \
         the camera is up"
    )]
    NoAnswer {
        /// Seconds waited.
        after_s: f64,
    },
    /// The camera's RTP timestamps went back for `frames` frames in a row: its clock restarted,
    /// and a new session starts frame times afresh.
    #[error("RTP timestamps went back for {frames} frames in a row (camera clock reset?)")]
    ClockReset {
        /// Frames in a row whose timestamp went back.
        frames: u32,
    },
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The RTSP client panicked on the stream (a bug in it, caught).
    #[error("the RTSP client panicked on the stream")]
    Panicked,
    /// The session or device ended earlier; the source must be opened again.
    #[error("the session already ended; open the source again")]
    Ended,
    /// Our own invariant failed (a bug): `what` says which.
    #[error("internal error ({what}): {cause}")]
    Internal {
        /// What was being built.
        what: &'static str,
        /// The error.
        cause: BoxError,
    },
}

/// A multi-line library message (the RTSP client's carry connection and packet context lines)
/// on one line, for logs and error messages.
pub fn one_line(e: &dyn fmt::Display) -> String {
    let s = e.to_string();
    let mut parts = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let head = parts.next().unwrap_or("unknown error").to_string();
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        head
    } else {
        format!("{head} ({})", rest.join("; "))
    }
}

/// What an RTSP status means for the operator.
fn status_hint(status: Option<u16>) -> &'static str {
    match status {
        Some(401) | Some(403) => {
            "; authentication failed: check the username and password (credentials file or URL)"
        }
        Some(404) => "; the server has no such stream: check the URL path",
        _ => "",
    }
}

/// A failed device open, with the remedy for the usual errnos.
fn device_message(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => format!(
            "no such device ({err}); is the camera plugged in? `v4l2-ctl --list-devices` lists \
             the capture devices (prefer a stable /dev/v4l/by-id/... path)"
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "permission denied ({err}); add the service user to group `video` \
             (`usermod -aG video USER`, then restart the service)"
        ),
        Some(libc::EBUSY) => format!(
            "device busy ({err}); another program is capturing from it (another speedcamd, a \
             browser, a video call); stop it or use another device"
        ),
        _ => format!("{err}"),
    }
}

/// A failed capture, with what ENOSPC and a vanished node mean.
fn capture_message(err: &io::Error, node_exists: bool) -> String {
    let mut reason = format!("capture failed: {err}");
    if err.raw_os_error() == Some(libc::ENOSPC) {
        reason.push_str(
            "; not enough USB bandwidth for this mode: use MJPEG, a lower size or rate, or plug \
             the camera into another USB controller",
        );
    }
    if !node_exists {
        reason.push_str("; the device node is gone (unplugged?)");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_remedy_and_print_the_cause_once() {
        let refused = LinkError::Rtsp {
            step: "DESCRIBE",
            status: Some(401),
            cause: "401 Unauthorized response to DESCRIBE CSeq=1: \n\nconn: 127.0.0.1:1".into(),
        };
        let msg = refused.to_string();
        assert_eq!(
            msg,
            "DESCRIBE failed: 401 Unauthorized response to DESCRIBE CSeq=1: (conn: 127.0.0.1:1); \
             authentication failed: check the username and password (credentials file or URL)"
        );
        assert!(std::error::Error::source(&refused).is_none());
        let busy = LinkError::Device {
            cause: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert!(busy.to_string().starts_with("device busy ("), "{busy}");
        let gone = LinkError::Capture {
            cause: io::Error::from_raw_os_error(libc::ENOSPC),
            node_exists: false,
        };
        let msg = gone.to_string();
        assert!(
            msg.contains("USB bandwidth") && msg.contains("unplugged"),
            "{msg}"
        );
        assert_eq!(msg.matches("No space left on device").count(), 1, "{msg}");
    }

    #[test]
    fn one_line_joins_context_lines() {
        assert_eq!(
            one_line(&"head\n\nconn: a\npkt: b"),
            "head (conn: a; pkt: b)"
        );
        assert_eq!(one_line(&"single"), "single");
        assert_eq!(one_line(&""), "unknown error");
    }
}
