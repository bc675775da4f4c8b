//! Recorded detections in the MOTChallenge text format, and the frame times that go with them.
//!
//! `speedcamd analyze --mot` feeds these to the tracker and the speed stage instead of a video and
//! a detector: to re-run recorded detections with a new calibration or zone, to compare with
//! other trackers on the same boxes, and to run the accuracy benchmark. One line per box:
//! `frame,id,x,y,w,h,conf[,x,y,z]` with frames numbered from 1, boxes in pixels (left, top,
//! width, height); the id column is ignored (speedcam tracks by itself). Frames that have no line
//! were not detected (skipped, or nothing was found): the tracker simply sees no update then, and
//! its state is advanced by time at the next detected frame, exactly as with frame skipping.
//!
//! Frame times never come from dividing by a frame count inside the pipeline: the caller gives
//! either a timestamps file (line N = time of frame N, seconds; what a recorder that logged real
//! capture times writes) or a nominal rate, which is turned into per-frame times once, here.

use crate::detect::{BBox, Detection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Class name given to MOT boxes: the format carries no class.
pub(crate) const MOT_CLASS: &str = "vehicle";

/// Errors reading MOT detections or frame times; each names the file, the line and the fix.
#[derive(Debug, thiserror::Error)]
pub enum MotError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not chained, so it is printed once).
        cause: std::io::Error,
    },
    /// A line does not parse.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The timestamps file does not cover a frame that has detections.
    #[error("{path} has {times} time(s) but {mot} has detections in frame {frame}: give one time (s) per frame, line N = frame N")]
    MissingTime {
        /// The timestamps file.
        path: PathBuf,
        /// Lines in it.
        times: usize,
        /// The MOT file.
        mot: PathBuf,
        /// The first frame without a time.
        frame: u32,
    },
}

/// Detections of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct MotFrame {
    /// Frame number (1-based, as in the file).
    pub frame: u32,
    /// Boxes of that frame, in file order.
    pub detections: Vec<Detection>,
}

/// Reads a MOTChallenge detection file: frames in increasing order, each with its boxes.
pub fn read_mot(path: &Path) -> Result<Vec<MotFrame>, MotError> {
    let text = std::fs::read_to_string(path).map_err(|cause| MotError::Io {
        path: path.to_owned(),
        cause,
    })?;
    parse_mot(&text).map_err(|(line, message)| MotError::Line {
        path: path.to_owned(),
        line,
        message,
    })
}

/// Parses MOT text; errors are (1-based line, message).
pub(crate) fn parse_mot(text: &str) -> Result<Vec<MotFrame>, (usize, String)> {
    let mut frames: BTreeMap<u32, Vec<Detection>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (frame, det) = parse_line(line).map_err(|m| (i + 1, m))?;
        frames.entry(frame).or_default().push(det);
    }
    Ok(frames
        .into_iter()
        .map(|(frame, detections)| MotFrame { frame, detections })
        .collect())
}

const EXPECTED: &str = "expected `frame,id,x,y,w,h,conf[,...]` (MOTChallenge: frame from 1, box left/top/width/height in px, confidence)";

fn parse_line(line: &str) -> Result<(u32, Detection), String> {
    let cols: Vec<&str> = line
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if cols.len() < 7 {
        return Err(format!("{} column(s); {EXPECTED}", cols.len()));
    }
    let num = |i: usize, name: &str| -> Result<f64, String> {
        let v: f64 = cols[i]
            .parse()
            .map_err(|_| format!("{name} {:?} is not a number; {EXPECTED}", cols[i]))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{name} is {v}; {EXPECTED}"))
        }
    };
    let frame = num(0, "frame")?;
    if frame < 1.0 || frame.fract() != 0.0 || frame > f64::from(u32::MAX) {
        return Err(format!(
            "frame {:?} must be a whole number from 1 (MOTChallenge numbers frames from 1)",
            cols[0]
        ));
    }
    let (x, y, w, h) = (
        num(2, "x")?,
        num(3, "y")?,
        num(4, "width")?,
        num(5, "height")?,
    );
    if w <= 0.0 || h <= 0.0 {
        return Err(format!(
            "box width {w} and height {h} must be positive (columns 5 and 6 are width and height, not right and bottom)"
        ));
    }
    let conf = num(6, "confidence")?;
    let det = Detection {
        bbox: BBox {
            x1: x as f32,
            y1: y as f32,
            x2: (x + w) as f32,
            y2: (y + h) as f32,
        },
        // MOT files use -1 or 1 when there is no score: anything outside 0..1 counts as certain.
        score: if (0.0..=1.0).contains(&conf) {
            conf as f32
        } else {
            1.0
        },
        class_id: 2,
        class: MOT_CLASS,
    };
    Ok((frame as u32, det))
}

/// Where frame times come from.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameTimes {
    /// One time per frame (s), index 0 = frame 1.
    Listed {
        /// The file they came from (for messages).
        path: PathBuf,
        /// The times.
        times_s: Vec<f64>,
    },
    /// A nominal rate: frame N at (N - 1) / rate.
    Nominal {
        /// Frames per second.
        fps: f64,
    },
}

impl FrameTimes {
    /// A nominal rate; it must be positive and finite.
    pub fn nominal(fps: f64) -> Result<Self, String> {
        if fps.is_finite() && fps > 0.0 {
            Ok(FrameTimes::Nominal { fps })
        } else {
            Err(format!(
                "--fps {fps} must be a positive number of frames per second"
            ))
        }
    }

    /// Reads a timestamps file: one time in seconds per line (line N = frame N); blank lines and
    /// `#` comments are not allowed to shift the numbering, so they are rejected. Times must not
    /// go backwards.
    pub fn read(path: &Path) -> Result<Self, MotError> {
        let text = std::fs::read_to_string(path).map_err(|cause| MotError::Io {
            path: path.to_owned(),
            cause,
        })?;
        let mut times_s = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| MotError::Line {
                path: path.to_owned(),
                line: i + 1,
                message,
            };
            let line = raw.trim();
            let t: f64 = line.parse().map_err(|_| {
                err(format!(
                    "{line:?} is not a time in seconds; one time per line, line N = frame N"
                ))
            })?;
            if !t.is_finite() {
                return Err(err(format!("time {t} is not finite")));
            }
            if let Some(&prev) = times_s.last() {
                if t < prev {
                    return Err(err(format!(
                        "time {t} s is before the previous frame's {prev} s: frame times must not go backwards"
                    )));
                }
            }
            times_s.push(t);
        }
        Ok(FrameTimes::Listed {
            path: path.to_owned(),
            times_s,
        })
    }

    /// Time of 1-based `frame`, s; None when a timestamps file is too short.
    pub(crate) fn time_s(&self, frame: u32) -> Option<f64> {
        match self {
            FrameTimes::Listed { times_s, .. } => {
                times_s.get(frame.checked_sub(1)? as usize).copied()
            }
            FrameTimes::Nominal { fps } => Some(f64::from(frame.checked_sub(1)?) / fps),
        }
    }

    /// The times of `frames`, or the error naming the first frame without one.
    pub fn times_for(&self, frames: &[MotFrame], mot: &Path) -> Result<Vec<f64>, MotError> {
        frames
            .iter()
            .map(|f| {
                self.time_s(f.frame).ok_or_else(|| match self {
                    FrameTimes::Listed { path, times_s } => MotError::MissingTime {
                        path: path.clone(),
                        times: times_s.len(),
                        mot: mot.to_owned(),
                        frame: f.frame,
                    },
                    FrameTimes::Nominal { .. } => MotError::Line {
                        path: mot.to_owned(),
                        line: 0,
                        message: format!("frame {} has no time", f.frame),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_in_order_and_ignores_ids() {
        let text = "2,7,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,1\n\n2,-1,100.5,200,10,10,-1\n";
        let frames = parse_mot(text).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].frame, 1);
        assert_eq!(frames[1].frame, 2);
        assert_eq!(frames[1].detections.len(), 2);
        let d = &frames[1].detections[0];
        assert_eq!(
            (d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2),
            (10.0, 20.0, 40.0, 60.0)
        );
        assert!((d.score - 0.9).abs() < 1e-6);
        assert_eq!(frames[1].detections[1].score, 1.0, "-1 means no score");
    }

    #[test]
    fn bad_lines_name_the_line_and_the_format() {
        for (text, line, needle) in [
            ("1,1,0,0,5,5\n", 1, "6 column(s)"),
            ("1,1,0,0,5,5,1\n0,1,0,0,5,5,1\n", 2, "from 1"),
            ("1,1,0,0,5,5,1\n1.5,1,0,0,5,5,1\n", 2, "whole number"),
            ("1,1,a,0,5,5,1\n", 1, "x \"a\" is not a number"),
            ("1,1,0,0,-5,5,1\n", 1, "width"),
            ("1,1,0,0,5,NaN,1\n", 1, "height is NaN"),
        ] {
            let (l, m) = parse_mot(text).unwrap_err();
            assert_eq!(l, line, "{text:?}: {m}");
            assert!(m.contains(needle), "{text:?}: {m}");
        }
    }

    #[test]
    fn frame_times_from_rate_and_file() {
        let r = FrameTimes::nominal(25.0).unwrap();
        assert_eq!(r.time_s(1), Some(0.0));
        assert!((r.time_s(26).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(r.time_s(0), None);
        assert!(FrameTimes::nominal(0.0).is_err());
        assert!(FrameTimes::nominal(f64::NAN).is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ts.txt");
        std::fs::write(&p, "0.0\n0.041\n0.07\n").unwrap();
        let t = FrameTimes::read(&p).unwrap();
        assert_eq!(t.time_s(2), Some(0.041));
        assert_eq!(t.time_s(4), None);
        let frames = parse_mot("4,1,0,0,5,5,1\n").unwrap();
        let e = t.times_for(&frames, Path::new("det.txt")).unwrap_err();
        assert!(e.to_string().contains("frame 4"), "{e}");

        std::fs::write(&p, "0.0\n0.05\n0.04\n").unwrap();
        let e = FrameTimes::read(&p).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("backwards"), "{e}");
        std::fs::write(&p, "0.0\n\n0.04\n").unwrap();
        let e = FrameTimes::read(&p).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
    }
}
