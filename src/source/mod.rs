//! Video sources: where decoded [`Frame`]s come from.
//!
//! Every source sits behind the small [`Source`] trait and is opened through an [`Opener`], so
//! the service and the tests can inject their own (synthetic scenes, canned frames). Files are
//! opened by [`open_file`]. The default build has one file source, [`Mp4Source`]: MP4 files with
//! H.264 video, demuxed with the `mp4` crate and decoded in-process by `openh264` (built from
//! source, no system library). Built with `--features ffmpeg`, files it cannot read (B-frames,
//! H.265, MKV, MPEG-TS, ...) go to `ffmpeg::FfmpegSource`, which links the system's libavcodec and
//! can select hardware decoders by name. Live cameras: [`rtsp::RtspSource`] (RTSP over TCP or
//! UDP, `retina` client, same openh264 decoder) and [`v4l2::V4l2Source`] (USB/CSI cameras,
//! MJPEG/YUYV/NV12). [`DefaultOpener`] picks one from the camera's `source`.
//!
//! Live sources never end on their own: they return [`SourceError::Disconnected`] or
//! [`SourceError::Stalled`] (each within the configured stall timeout) and the camera's
//! supervisor (`service::supervisor`) reopens them with backoff.
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
pub mod convert;
mod decode;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
mod file;
/// Entry points of the cargo-fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzz;
pub mod mot;
mod mp4_source;
pub mod replay;
pub mod rtsp;
mod sps;
pub mod v4l2;

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
    pub rtsp_transport: rtsp::RtspTransport,
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
    pub capture_format: Option<v4l2::CaptureFormat>,
    /// A libavcodec decoder by name for file sources (`decoder`, e.g. `h264_v4l2m2m` or a Jetson
    /// FFmpeg's `h264_nvv4l2dec` for hardware decoding); needs the `ffmpeg` feature.
    pub decoder: Option<String>,
    /// How the daemon plays a file source (`[cameras.replay]`: real time, loop); only openers
    /// made with [`DefaultOpener::with_replay`] apply it.
    pub replay: replay::ReplaySettings,
}

/// Opens what a camera's `source` names: `rtsp://`/`rtsps://` URLs ([`rtsp::RtspSource`]),
/// `/dev/videoN` or `v4l2:///dev/videoN` ([`v4l2::V4l2Source`]), and files (`file://` URIs and
/// plain paths, see [`open_file`]).
#[derive(Debug, Clone)]
pub struct DefaultOpener {
    live: LiveSettings,
    stall_timeout: std::time::Duration,
}

impl Default for DefaultOpener {
    fn default() -> Self {
        DefaultOpener {
            live: LiveSettings::default(),
            stall_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl DefaultOpener {
    /// The opener for one configured camera (its live settings and stall timeout). Files are
    /// read as fast as possible: `[cameras.replay]` applies only with [`Self::with_replay`].
    pub fn for_camera(cam: &crate::config::CameraConfig) -> Self {
        DefaultOpener {
            live: LiveSettings {
                replay: replay::ReplaySettings::default(),
                ..cam.live.clone()
            },
            stall_timeout: cam.reconnect.stall_timeout,
        }
    }

    /// Plays file sources per `settings` (real time, loop) on the real clock, as the daemon
    /// does with a camera's `[cameras.replay]`; live sources are unaffected.
    pub fn with_replay(mut self, settings: replay::ReplaySettings) -> Self {
        self.live.replay = settings;
        self
    }

    fn credentials(&self) -> Result<Option<rtsp::Credentials>, SourceError> {
        let Some(path) = &self.live.credentials_file else {
            return Ok(None);
        };
        let path = expand_credentials_dir(path)?;
        rtsp::read_credentials_file(&path).map(Some)
    }
}

/// Expands a leading `$CREDENTIALS_DIRECTORY` (or `${CREDENTIALS_DIRECTORY}`) from the
/// environment, as systemd sets it for `LoadCredential=`.
fn expand_credentials_dir(path: &Path) -> Result<PathBuf, SourceError> {
    let s = path.to_string_lossy();
    for var in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = s.strip_prefix(var) {
            let dir =
                std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| SourceError::Connect {
                    uri: s.to_string(),
                    reason: "CREDENTIALS_DIRECTORY is not set: systemd sets it for units with \
                             LoadCredential=; outside systemd give a plain path"
                        .into(),
                })?;
            return Ok(PathBuf::from(dir).join(rest.trim_start_matches('/')));
        }
    }
    Ok(path.to_path_buf())
}

impl Opener for DefaultOpener {
    fn open(&self, uri: &str, camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            let opts = rtsp::RtspOptions {
                url: uri.to_string(),
                transport: self.live.rtsp_transport,
                credentials: self.credentials()?,
                stall_timeout: self.stall_timeout,
            };
            return Ok(Box::new(rtsp::RtspSource::open(opts, camera)?));
        }
        let device = uri
            .strip_prefix("v4l2://")
            .or_else(|| uri.starts_with("/dev/video").then_some(uri));
        if let Some(device) = device {
            let opts = v4l2::V4l2Options {
                device: PathBuf::from(device),
                width: self.live.capture_width,
                height: self.live.capture_height,
                fps: self.live.capture_fps,
                format: self.live.capture_format,
                stall_timeout: self.stall_timeout,
            };
            return Ok(Box::new(v4l2::V4l2Source::open(opts, camera)?));
        }
        let path = if let Some(rest) = uri.strip_prefix("file://") {
            rest
        } else if let Some((scheme, _)) = uri.split_once("://") {
            return Err(SourceError::Unsupported {
                uri: redact_uri(uri),
                reason: format!(
                    "unknown scheme `{scheme}`; use rtsp://host/path, /dev/videoN, \
                     file:///path/to/video.mp4 or a plain path"
                ),
            });
        } else {
            uri
        };
        let first = open_file_with_decoder(
            Path::new(path),
            camera.clone(),
            self.live.decoder.as_deref(),
        )?;
        if !self.live.replay.is_active() {
            return Ok(first);
        }
        let (path, decoder) = (PathBuf::from(path), self.live.decoder.clone());
        let reopen: replay::Reopen =
            Box::new(move || open_file_with_decoder(&path, camera.clone(), decoder.as_deref()));
        Ok(Box::new(replay::ReplaySource::new(
            first,
            reopen,
            self.live.replay,
            Arc::new(crate::clock::RealClock::default()),
        )))
    }
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
#[cfg(test)]
pub(crate) mod test_util {
    use super::Source;
    use crate::frame::Frame;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// A file in `tests/data/video`.
    pub fn video(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/video")
            .join(name)
    }

    /// Every frame of `src`, panicking on a source error.
    pub fn decode_all(src: &mut dyn Source) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = src.next_frame().unwrap() {
            frames.push(f);
        }
        frames
    }

    /// A temporary file holding `bytes`.
    pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
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
    fn unreachable_live_sources_fail_to_connect_with_redacted_uri() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let open = |uri: &str| DefaultOpener::default().open(uri, "cam".into()).err();
        let err = open(&format!("rtsp://u:s3cret@127.0.0.1:{port}/s"));
        let msg = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(matches!(err, Some(SourceError::Connect { .. })), "{err:?}");
        assert!(!msg.contains("s3cret"), "{msg}");
        let err = open("/dev/video-speedcam-test-missing");
        let msg = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("/dev/video-speedcam-test-missing"), "{msg}");
        assert!(matches!(
            open("http://x/y.mp4"),
            Some(SourceError::Unsupported { .. })
        ));
        assert!(is_live_uri("RTSP://cam/x") && is_live_uri("/dev/video0"));
        assert!(!is_live_uri("/data/video.mp4"));
    }

    #[test]
    fn credentials_directory_is_expanded_from_the_environment() {
        let p = Path::new("/etc/speedcam/cam1.cred");
        assert_eq!(expand_credentials_dir(p).unwrap(), p);
        match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => assert_eq!(
                expand_credentials_dir(Path::new("$CREDENTIALS_DIRECTORY/cam1")).unwrap(),
                PathBuf::from(dir).join("cam1")
            ),
            None => {
                let err = expand_credentials_dir(Path::new("${CREDENTIALS_DIRECTORY}/cam1"));
                let msg = err
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| e.to_string());
                assert!(msg.contains("LoadCredential"), "{msg}");
            }
        }
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = DefaultOpener::default().open("file:///nonexistent/x.mp4", "cam".into());
        assert!(matches!(err.err(), Some(SourceError::Io { .. })));
    }
}
