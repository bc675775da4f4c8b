//! Video sources: where decoded [`Frame`]s come from.
//!
//! Every source sits behind the small [`Source`] trait and is opened through an [`Opener`], so
//! the service and the tests can inject their own (synthetic scenes, canned frames). Files are
//! opened by [`open_file`]. The default build has one file source, [`Mp4Source`]: MP4 files with
//! H.264 video, demuxed with the `mp4` crate and decoded in-process by `openh264` (built from
//! source, no system library). Built with `--features ffmpeg`, files it cannot read (B-frames,
//! H.265, MKV, MPEG-TS, ...) go to `ffmpeg::FfmpegSource`, which links the system's libavcodec and
//! can select hardware decoders by name. RTSP cameras and V4L2 devices come with the live-source
//! work; [`DefaultOpener`] refuses them with a clear message until then.
//!
//! # Why frames carry container PTS
//! Speed is distance over *time*, so every frame is stamped with its presentation time from the
//! container (`pts_ns`, nanoseconds from the first presented frame), never with
//! `seq / nominal_fps`. Phones, dashcams and NVRs record variable frame rate video, drop frames
//! under load and write a nominal rate in the header that is only an average: counting frames
//! would turn every dropped or late frame into a speed error. The container timestamps are what
//! the camera measured, so a 25 fps file that lost a frame still yields the right speed.
//!
//! # Why the built-in decoder refuses B-frames
//! openh264 decodes the Constrained Baseline feature set (plus a few High profile tools) but not
//! B-slices: a libx264 encode with default settings lost 738 of its 900 frames. Losing frames
//! silently would leave the tracker with holes and the speed fit with few samples, so
//! [`Mp4Source::open`] detects reordering before decoding (composition offsets that vary between
//! samples in `ctts`, or an SPS whose VUI announces `max_num_reorder_frames > 0`) and returns
//! [`SourceError::BFrames`], which names the remedies: build with `--features ffmpeg` (then
//! [`open_file`] hands such files to libavcodec, which decodes them), or re-encode with
//! `ffmpeg -i IN -c:v libx264 -bf 0 OUT.mp4`.

mod annexb;
mod container;
mod decode;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
mod file;
pub mod mot;
mod mp4_source;
mod sps;

pub use file::{open_file, open_file_with_decoder, probe_file};
pub use mp4_source::{probe, Mp4Source};

use crate::frame::Frame;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A source of decoded frames for one camera.
pub trait Source: Send {
    /// Next frame in presentation order; `Ok(None)` at end of stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Human-readable description with credentials redacted (for logs).
    fn describe(&self) -> String;
    /// Counters: frames decoded, decode errors (corrupt NAL units skipped), etc.
    fn counters(&self) -> SourceCounters;
}

/// Opens sources from their configured URI; a trait so tests and the service can inject their own.
pub trait Opener: Send + Sync {
    /// Opens the source named by `uri` for the camera `camera`.
    fn open(&self, uri: &str, camera: Arc<str>) -> Result<Box<dyn Source>, SourceError>;
}

/// Running totals of one source, for the stats topic and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounters {
    /// Compressed samples (access units) read from the container.
    pub samples_read: u64,
    /// Frames decoded and handed out.
    pub frames_decoded: u64,
    /// Samples skipped because they were corrupt or the decoder rejected them.
    pub decode_errors: u64,
    /// Decoded frames dropped because their timestamp did not move forward.
    pub pts_backwards_dropped: u64,
    /// Samples that decoded without error but produced no picture.
    pub samples_without_picture: u64,
    /// Total time spent decoding (including copy-out and pixel conversion), nanoseconds.
    pub decode_time_ns: u64,
}

/// What [`probe`] learns about a video file without decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Picture width in pixels (from the SPS, cropping applied).
    pub width: u32,
    /// Picture height in pixels (from the SPS, cropping applied).
    pub height: u32,
    /// Number of video samples (frames) in the track.
    pub frame_count: u64,
    /// Presentation span of the track in seconds (last pts + its duration).
    pub duration_s: f64,
    /// `frame_count / duration_s`; for information only: speed never uses it.
    pub nominal_fps: f64,
    /// Codec and profile, e.g. `H.264 (avc1) High L3.0`.
    pub codec: String,
    /// Whether the stream reorders frames (B-frames); such files are refused by [`Mp4Source`].
    pub has_bframes: bool,
}

/// Errors opening or reading a source. Messages name the problem and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file has zero bytes.
    #[error("{path} is empty (0 bytes); point the camera at a recorded MP4 file")]
    Empty {
        /// File concerned.
        path: PathBuf,
    },
    /// The file is not a valid MP4, or is truncated.
    #[error(
        "{path} is not a usable MP4 file: {reason}; check that it is complete (not truncated or \
         still being written) or re-mux it with `ffmpeg -i IN -c copy OUT.mp4`"
    )]
    Corrupt {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file has no H.264 video track.
    #[error(
        "{path} has no H.264 (avc1/avc3) video track (tracks found: {found}), the only codec the \
         built-in decoder reads; build speedcam with `--features ffmpeg` to decode H.265 and other \
         codecs with libavcodec, or re-encode: `ffmpeg -i IN -c:v libx264 -bf 0 OUT.mp4`"
    )]
    NoH264Track {
        /// File concerned.
        path: PathBuf,
        /// The tracks found, as `handler:codec` (e.g. `vide:hvc1, soun:mp4a`), or `none`.
        found: String,
    },
    /// The H.264 stream uses B-frames (frame reordering), which openh264 cannot decode.
    #[error(
        "{path} uses B-frames ({evidence}), which the built-in H.264 decoder (openh264) cannot \
         decode; build speedcam with `--features ffmpeg` (libavcodec decodes them) or re-encode \
         without B-frames: `ffmpeg -i IN -c:v libx264 -bf 0 OUT.mp4`"
    )]
    BFrames {
        /// File concerned.
        path: PathBuf,
        /// What revealed the reordering.
        evidence: String,
    },
    /// The URI names a kind of source this build cannot open.
    #[error("cannot open source {uri}: {reason}")]
    Unsupported {
        /// The URI, credentials redacted.
        uri: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A live source could not be reached or refused the session (network down, wrong URL,
    /// authentication failed, device missing). Live sources retry with backoff.
    #[error("cannot connect to {uri}: {reason}")]
    Connect {
        /// The URI or device, credentials redacted.
        uri: String,
        /// What failed, and what to check.
        reason: String,
    },
    /// A live source that was streaming broke off (connection reset, server gone, device
    /// unplugged). Live sources reconnect with backoff.
    #[error("{uri} disconnected: {reason}")]
    Disconnected {
        /// The URI or device, credentials redacted.
        uri: String,
        /// What happened.
        reason: String,
    },
    /// A live source delivered no frame for `after_s` seconds; it is reopened.
    #[error("{uri} stalled: no frame for {after_s:.1} s")]
    Stalled {
        /// The URI or device, credentials redacted.
        uri: String,
        /// Seconds without a frame.
        after_s: f64,
    },
    /// The configured capture format, size or rate is not one the device offers.
    #[error("{uri} cannot capture {wanted}: the device offers {offered}; set one of those in the camera's config")]
    Format {
        /// The device, e.g. `/dev/video0`.
        uri: String,
        /// What the config asked for.
        wanted: String,
        /// What the device lists.
        offered: String,
    },
    /// The video decoder could not be created (or the one asked for does not exist).
    #[error("cannot start the video decoder for {path}: {reason}")]
    Decoder {
        /// File concerned.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

/// Opens `file://` URIs and plain paths with [`open_file`]; live sources are not built yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOpener;

impl Opener for DefaultOpener {
    fn open(&self, uri: &str, camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
        let live = |kind: &str| SourceError::Unsupported {
            uri: redact_uri(uri),
            reason: format!(
                "{kind} sources arrive with the RTSP/V4L2 work (not built yet); use a recorded \
                 MP4 file (file:///path/to/video.mp4) for now"
            ),
        };
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            return Err(live("RTSP"));
        }
        if lower.starts_with("v4l2://") || uri.starts_with("/dev/video") {
            return Err(live("V4L2"));
        }
        let path = if let Some(rest) = uri.strip_prefix("file://") {
            rest
        } else if let Some((scheme, _)) = uri.split_once("://") {
            return Err(SourceError::Unsupported {
                uri: redact_uri(uri),
                reason: format!(
                    "unknown scheme `{scheme}`; use file:///path/to/video.mp4 or a plain path"
                ),
            });
        } else {
            uri
        };
        open_file(Path::new(path), camera)
    }
}

/// `uri` with any `user:password@` part replaced by `***@`, safe to log.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_uri("rtsp://admin:s3cret@10.0.0.5:554/stream1"),
            "rtsp://***@10.0.0.5:554/stream1"
        );
        assert_eq!(redact_uri("rtsp://cam/x@y"), "rtsp://cam/x@y");
        assert_eq!(redact_uri("/data/a@b.mp4"), "/data/a@b.mp4");
    }

    #[test]
    fn live_sources_are_refused_with_redacted_uri() {
        let open = |uri: &str| DefaultOpener.open(uri, "cam".into()).err();
        let err = open("rtsp://u:pw@host/s").map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("RTSP/V4L2 work"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
        let msg = open("/dev/video0")
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("not built yet"), "{msg}");
        assert!(matches!(
            open("http://x/y.mp4"),
            Some(SourceError::Unsupported { .. })
        ));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = DefaultOpener.open("file:///nonexistent/x.mp4", "cam".into());
        assert!(matches!(err.err(), Some(SourceError::Io { .. })));
    }
}
