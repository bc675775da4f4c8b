//! An error's cause is printed once. A thiserror field named `source` (or marked
//! `#[source]`/`#[from]`) is returned by [`Error::source`]; when the `#[error]` message prints
//! it too, chain printers such as anyhow's `{e:#}` show the cause twice. The rule here: the
//! cause stays in the message (logs print `{e}`) and the field is named `cause`, so it is not
//! chained. [`chain`] prints a boxed library error with its own causes for such a message;
//! [`assert_cause_printed_once`] checks the rule in tests (the daemon's too).

use std::error::Error;

/// A library's error kept whole, for a `cause` field when its type is opaque or lives in a crate
/// this one does not depend on (the RTSP client's, tract's, ONNX Runtime's, the GPU's).
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// `err` and its sources joined by `": "`, as anyhow's `{e:#}` prints them: a message that
/// prints its `cause` this way keeps the cause's own chain (tract's context lines), which is
/// lost once the field is no longer `source()`.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut shown = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        shown.push_str(": ");
        shown.push_str(&source.to_string());
        next = source.source();
    }
    shown
}

/// Walks `err`'s [`Error::source`] chain and panics when a message contains its source's
/// message; returns the chain as anyhow's `{e:#}` prints it (messages joined by `": "`).
#[doc(hidden)]
#[track_caller]
pub fn assert_cause_printed_once(err: &(dyn Error + 'static)) -> String {
    let mut shown = err.to_string();
    let mut outer = shown.clone();
    let mut next = err.source();
    while let Some(source) = next {
        let inner = source.to_string();
        assert!(
            inner.is_empty() || !outer.contains(&inner),
            "the cause is printed twice: {outer:?} contains its source's message {inner:?}; \
             name the field `cause` (not chained) or drop it from the message"
        );
        shown.push_str(": ");
        shown.push_str(&inner);
        outer = inner;
        next = source.source();
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::assert_cause_printed_once;
    use crate::config::mqtt::{read_file, read_password_file, SecurityFileError};
    use crate::config::{load, parse, ConfigError};
    use crate::source::SourceError;
    use std::path::{Path, PathBuf};

    /// A path in a fresh temporary directory that does not exist, and the directory.
    fn missing(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(name);
        (dir, path)
    }

    /// The error reading `path` (which must not exist), as the callers get it.
    fn io_error(path: &Path) -> std::io::Error {
        std::fs::read(path).expect_err("the file does not exist")
    }

    /// `err`'s chain names `cause` exactly once.
    #[track_caller]
    fn shows_cause_once(err: &(dyn std::error::Error + 'static), cause: &str) {
        let shown = assert_cause_printed_once(err);
        assert_eq!(shown.matches(cause).count(), 1, "{shown}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {source}")]
    struct Doubled {
        source: std::io::Error,
    }

    #[test]
    #[should_panic(expected = "the cause is printed twice")]
    fn a_cause_in_message_and_source_is_caught() {
        let (_dir, path) = missing("x");
        assert_cause_printed_once(&Doubled {
            source: io_error(&path),
        });
    }

    #[test]
    fn chained_causes_are_joined_like_anyhow() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x")]
        struct Chained {
            source: std::io::Error,
        }
        let (_dir, path) = missing("x");
        let cause = io_error(&path).to_string();
        let shown = assert_cause_printed_once(&Chained {
            source: io_error(&path),
        });
        assert_eq!(shown, format!("cannot read x: {cause}"));
    }

    #[test]
    fn config_errors_print_their_cause_once() {
        let (_dir, path) = missing("speedcam.toml");
        let cause = io_error(&path).to_string();
        let err = load(&path).expect_err("missing config");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        shows_cause_once(&err, &cause);

        let err = parse("device_id = ", &path).expect_err("not TOML");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert_cause_printed_once(&err);

        let err = parse(
            "device_id = \"a b\"\n[detector]\nmodel = \"no.onnx\"\n",
            &path,
        )
        .expect_err("invalid values");
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        assert_cause_printed_once(&err);
    }

    #[test]
    fn security_file_errors_print_their_cause_once() {
        let (dir, path) = missing("password");
        let cause = io_error(&path).to_string();
        let err = read_file(&path).expect_err("missing file");
        assert!(matches!(err, SecurityFileError::Read { .. }), "{err}");
        shows_cause_once(&err, &cause);

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write the empty file");
        let err = read_password_file(&empty).expect_err("empty password file");
        assert!(matches!(err, SecurityFileError::Content { .. }), "{err}");
        assert_cause_printed_once(&err);

        let err = SecurityFileError::Rejected {
            what: "client certificate".into(),
            cause: Box::new(io_error(&path)),
        };
        shows_cause_once(&err, &cause);

        let err = SecurityFileError::NoSystemRoots {
            why: "no certificate".into(),
        };
        assert_cause_printed_once(&err);
    }

    #[test]
    fn chain_prints_a_boxed_cause_with_its_own_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("running the plan")]
        struct Outer {
            source: std::io::Error,
        }
        let (_dir, path) = missing("model.onnx");
        let cause = io_error(&path).to_string();
        let boxed: super::BoxError = Box::new(Outer {
            source: io_error(&path),
        });
        assert_eq!(
            super::chain(boxed.as_ref()),
            format!("running the plan: {cause}")
        );
    }

    #[test]
    fn detect_errors_print_their_cause_once() {
        use crate::detect::DetectError;
        // tract's errors are anyhow chains: the whole chain is in the message, once.
        let tract_like = anyhow::anyhow!("shape mismatch").context("evaluating #12 Conv");
        let err = DetectError::Inference {
            step: "running the model".into(),
            cause: tract_like.into(),
        };
        assert_eq!(
            assert_cause_printed_once(&err),
            "inference failed (running the model): evaluating #12 Conv: shape mismatch"
        );
        let (_dir, path) = missing("frame");
        let cause = io_error(&path).to_string();
        let boxed = || -> super::BoxError { Box::new(io_error(&path)) };
        for err in [
            DetectError::Inference {
                step: "reading output \"boxes\"".into(),
                cause: boxed(),
            },
            DetectError::Frame { cause: boxed() },
            DetectError::GpuUnavailable { cause: boxed() },
            DetectError::Gpu { cause: boxed() },
        ] {
            shows_cause_once(&err, &cause);
        }
    }

    #[test]
    fn source_io_error_prints_its_cause_once() {
        let (_dir, path) = missing("video.mp4");
        let cause = io_error(&path).to_string();
        let err = SourceError::Io {
            path: path.clone(),
            cause: io_error(&path),
        };
        shows_cause_once(&err, &cause);
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn mp4_probe_of_a_missing_file_prints_its_cause_once() {
        let (_dir, path) = missing("video.mp4");
        let cause = io_error(&path).to_string();
        let err = crate::source::probe(&path).expect_err("missing file");
        assert!(matches!(err, SourceError::Io { .. }), "{err}");
        shows_cause_once(&err, &cause);
    }

    #[test]
    fn mot_io_error_prints_its_cause_once() {
        let (_dir, path) = missing("det.txt");
        let cause = io_error(&path).to_string();
        let err = crate::source::mot::read_mot(&path).expect_err("missing file");
        shows_cause_once(&err, &cause);
    }
}
