//! Frame sources' shared pieces: the [`Source`] and [`Opener`] traits every source sits behind,
//! their errors and counters, the live sources' settings, and the parsers of outside input that
//! need no I/O library: H.264 NAL/SPS parsing, the MP4 pre-check and file source (with the
//! `openh264` feature), V4L2 frame conversion and mode negotiation ([`capture`]), MOTChallenge
//! detection files ([`mot`]) and replay pacing ([`replay`]). The sources that open devices and
//! network streams (RTSP, V4L2, libav) are the daemon's (`speedcam::source`).
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

// The MP4 box and Annex B parsers serve the openh264 file source and the fuzz targets; they are
// built (and unit-tested) in every configuration, so only their callers depend on the feature.
#[cfg_attr(not(feature = "openh264"), allow(dead_code))]
mod annexb;
pub mod capture;
#[cfg_attr(not(feature = "openh264"), allow(dead_code))]
mod container;
pub mod convert;
#[cfg(feature = "openh264")]
pub mod decode;
/// Entry points of the cargo-fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzz;
pub mod link;
pub mod mot;
#[cfg(feature = "openh264")]
mod mp4_source;
pub mod replay;
/// H.264 SPS fields the sources need (reordering, size).
pub mod sps;

#[cfg(feature = "openh264")]
pub use mp4_source::{probe, Mp4Source};

use crate::frame::Frame;
use std::path::PathBuf;
use std::sync::Arc;

/// How RTP packets travel from the camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (default): lossless, one connection, NAT-friendly.
    #[default]
    Tcp,
    /// Separate UDP ports: for a clean LAN only (no reorder buffer; a lost packet loses a frame).
    Udp,
}

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
    /// Decoded frames a real-time replay skipped because a newer frame was already due (the
    /// reader or the decoder fell behind the clock); see [`replay`].
    pub frames_superseded: u64,
    /// Total time a real-time replay waited to release frames at their timestamps, ns: not
    /// decoding, so the pipeline leaves it out of the decode stage.
    pub pacing_wait_ns: u64,
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
    #[error("cannot read {path}: {cause}; check the path and its permissions")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error (in the message, not chained, so it is printed once).
        cause: std::io::Error,
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
    #[error("cannot connect to {uri}: {cause}")]
    Connect {
        /// The URI or device, credentials redacted.
        uri: String,
        /// What failed (its message says what to check).
        cause: link::LinkError,
    },
    /// A live source that was streaming broke off (connection reset, server gone, device
    /// unplugged). Live sources reconnect with backoff.
    #[error("{uri} disconnected: {cause}")]
    Disconnected {
        /// The URI or device, credentials redacted.
        uri: String,
        /// What happened.
        cause: link::LinkError,
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
    /// A credentials file (RTSP username and password) is malformed. The message never quotes it.
    #[error(
        "cannot use the credentials file {path}: {reason}; expected one line \
         `username:password`, or the username on the first line and the password on the second"
    )]
    Credentials {
        /// File concerned.
        path: PathBuf,
        /// What is wrong (never the file's contents).
        reason: String,
    },
}

/// Per-camera settings of live sources (`[cameras.rtsp]`, `[cameras.v4l2]` in the config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSettings {
    /// RTSP transport (TCP interleaved unless configured).
    pub rtsp_transport: RtspTransport,
    /// File with the RTSP username and password, read at every (re)connect so rotated
    /// credentials apply; a leading `$CREDENTIALS_DIRECTORY` is expanded (systemd
    /// `LoadCredential=`).
    pub credentials_file: Option<PathBuf>,
    /// V4L2 capture width, px (negotiated when unset).
    pub capture_width: Option<u32>,
    /// V4L2 capture height, px.
    pub capture_height: Option<u32>,
    /// V4L2 frame rate ceiling, frames/s.
    pub capture_fps: Option<u32>,
    /// V4L2 pixel format.
    pub capture_format: Option<capture::CaptureFormat>,
    /// A libavcodec decoder by name for file sources (`decoder`, e.g. `h264_v4l2m2m` or a Jetson
    /// FFmpeg's `h264_nvv4l2dec` for hardware decoding); needs the `ffmpeg` feature.
    pub decoder: Option<String>,
    /// How the daemon plays a file source (`[cameras.replay]`: real time, loop); only openers
    /// made with the daemon's `DefaultOpener::with_replay` apply it.
    pub replay: replay::ReplaySettings,
}

/// Whether `uri` names a live source (RTSP camera, V4L2 device) rather than a file: live
/// sources cannot be paused, so the pipeline drops stale frames instead of queueing them, and a
/// live source that ends is reopened instead of stopping its camera.
pub fn is_live_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    ["rtsp://", "rtsps://", "v4l2://", "/dev/video"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// The device path of a V4L2 source (`v4l2:///dev/videoN` or `/dev/videoN`); None for others.
pub fn v4l2_device(uri: &str) -> Option<&str> {
    uri.strip_prefix("v4l2://")
        .or_else(|| uri.starts_with("/dev/video").then_some(uri))
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

/// Helpers shared by the sources' unit tests.
#[cfg(all(test, feature = "openh264"))]
pub(crate) mod test_util {
    use super::Source;
    use crate::frame::Frame;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// A file in `tests/data/video`.
    pub(crate) fn video(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/video")
            .join(name)
    }

    /// Every frame of `src`, panicking on a source error.
    pub(crate) fn decode_all(src: &mut dyn Source) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = src.next_frame().unwrap() {
            frames.push(f);
        }
        frames
    }

    /// A temporary file holding `bytes`.
    pub(crate) fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
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
    fn live_uris_are_rtsp_and_v4l2() {
        assert!(is_live_uri("RTSP://cam/x") && is_live_uri("/dev/video0"));
        assert!(!is_live_uri("/data/video.mp4"));
    }
}
