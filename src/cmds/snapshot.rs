//! `speedcamd snapshot`: one frame of a camera's source, for measuring calibration points.

use super::CameraArgs;
use crate::frame::Frame;
use crate::service::pick_camera;
use crate::source::{DefaultOpener, Opener, Source, SourceError};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Grab one frame of a camera's source as JPEG (to measure calibration points on).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config and the camera whose source is read.
    #[command(flatten)]
    pub target: CameraArgs,
    /// Output JPEG file.
    #[arg(long)]
    pub out: PathBuf,
    /// Time of the frame in the source, s from its start (default: the first frame).
    #[arg(long)]
    pub at: Option<f64>,
}

/// Writes the frame as JPEG and says which frame it was on stderr.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        target: CameraArgs { config, camera },
        out,
        at: at_s,
    } = args;
    if let Some(at) = at_s {
        if !(at.is_finite() && at >= 0.0) {
            anyhow::bail!(
                "--at {at} is not allowed: give seconds from the start of the source, 0 or more"
            );
        }
    }
    let cfg = super::load(&config)?;
    let cam = pick_camera(&cfg, camera.as_deref())?;
    let mut source = DefaultOpener::for_camera(cam)
        .open(&cam.source, cam.id.as_str().into())
        .with_context(|| format!("opening the source of camera {}", cam.id))?;
    let frame = grab_frame(source.as_mut(), at_s)
        .with_context(|| format!("grabbing a frame of camera {}", cam.id))?;
    let jpeg = crate::event::thumbnail::encode_jpeg(&frame.to_rgb(), 92)?;
    std::fs::write(&out, jpeg).with_context(|| {
        format!(
            "writing {}: pass --out a path in a writable directory",
            out.display()
        )
    })?;
    eprintln!(
        "wrote {} ({}x{}, frame {} at {:.3} s of {})",
        out.display(),
        frame.width,
        frame.height,
        frame.seq,
        frame.pts_s(),
        source.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// Why no frame could be grabbed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The source failed while reading.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The source ended before giving any frame.
    #[error("{source_name} gave no frame: check that the video is not empty or truncated")]
    NoFrames {
        /// The source, credentials redacted.
        source_name: String,
    },
    /// The source ended before the requested time.
    #[error("{source_name} ends at {last_s:.2} s, before --at {at_s} s: pass a time from 0 to {last_s:.2}")]
    EndedBefore {
        /// The source, credentials redacted.
        source_name: String,
        /// Requested time, s.
        at_s: f64,
        /// Time of the last frame, s.
        last_s: f64,
    },
}

/// Reads `source` until the first frame at or after `at_s` seconds from the start of the stream
/// (its first frame when None) and returns it.
pub fn grab_frame(source: &mut dyn Source, at_s: Option<f64>) -> Result<Frame, SnapshotError> {
    let at_s = at_s.unwrap_or(0.0);
    let mut last: Option<f64> = None;
    // Half a microsecond of slack: "--at 2" picks the frame stamped 1.9999999 s.
    while let Some(f) = source.next_frame()? {
        if f.pts_s() >= at_s - 5e-7 {
            return Ok(f);
        }
        last = Some(f.pts_s());
    }
    let source_name = source.describe();
    Err(match last {
        None => SnapshotError::NoFrames { source_name },
        Some(last_s) => SnapshotError::EndedBefore {
            source_name,
            at_s,
            last_s,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceCounters;

    /// Frames at 0, 0.1, 0.2, ... s, 4 x 2 px, the grey level = the frame number.
    struct Canned(u64, u64);

    impl Source for Canned {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.0 >= self.1 {
                return Ok(None);
            }
            let img = image::RgbImage::from_pixel(4, 2, image::Rgb([self.0 as u8; 3]));
            let f = Frame::from_rgb_image("cam".into(), self.0, self.0 as i64 * 100_000_000, &img);
            self.0 += 1;
            Ok(Some(f))
        }
        fn describe(&self) -> String {
            "canned".into()
        }
        fn counters(&self) -> SourceCounters {
            SourceCounters::default()
        }
    }

    #[test]
    fn picks_the_first_frame_at_or_after_the_time() {
        assert_eq!(grab_frame(&mut Canned(0, 10), None).unwrap().seq, 0);
        assert_eq!(grab_frame(&mut Canned(0, 10), Some(0.3)).unwrap().seq, 3);
        assert_eq!(grab_frame(&mut Canned(0, 10), Some(0.25)).unwrap().seq, 3);
    }

    #[test]
    fn running_out_names_the_end() {
        let err = grab_frame(&mut Canned(0, 10), Some(5.0)).unwrap_err();
        assert!(
            err.to_string()
                .contains("canned ends at 0.90 s, before --at 5 s"),
            "{err}"
        );
        let err = grab_frame(&mut Canned(0, 0), None).unwrap_err();
        assert!(matches!(err, SnapshotError::NoFrames { .. }), "{err}");
    }
}
