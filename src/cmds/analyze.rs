//! `speedcamd analyze`: recorded detections (a MOTChallenge file) through a camera's tracker
//! and speed stage ([`crate::pipeline::analyze`]); nothing is stored or published.

use super::SYSTEM_CONFIG;
use crate::pipeline::analyze::{analyze, frame_times, AnalyzeOptions};
use crate::service::Verdict;
use std::path::PathBuf;
use std::process::ExitCode;

/// Track and measure recorded detections (MOTChallenge `frame,id,x,y,w,h,conf,...`) with a
/// camera's calibration, zone and speed settings; nothing is stored or published.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("frame_times").required(true).args(["fps", "timestamps"])))]
pub struct Args {
    /// MOTChallenge detection file: frames from 1, boxes in px, the id column is ignored.
    #[arg(long)]
    pub mot: PathBuf,
    /// Config file.
    #[arg(long, default_value = SYSTEM_CONFIG)]
    pub config: PathBuf,
    /// Camera whose calibration and zone apply (default: the first).
    #[arg(long)]
    pub camera: Option<String>,
    /// Frame times: nominal frames per second (frame N at (N-1)/RATE).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Frame times: a file with one time in seconds per line, line N = frame N.
    #[arg(long)]
    pub timestamps: Option<PathBuf>,
    /// Print one JSON object per line per measurement / speeding event (as `replay --json`).
    #[arg(long)]
    pub json: bool,
}

/// Prints each verdict on stdout and the counts on stderr.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load(&args.config)?;
    let opts = AnalyzeOptions {
        times: frame_times(args.timestamps, args.fps)?,
        mot: args.mot,
        camera: args.camera,
    };
    let mut out = std::io::stdout().lock();
    let sum = analyze(&cfg, &opts, &mut |v: &Verdict| {
        super::print_event(&mut out, &v.event, args.json);
    })?;
    eprintln!(
        "{} frame(s) with {} detection(s) over {:.1} s: {} measurement(s), {} speeding",
        sum.frames, sum.detections, sum.video_s, sum.measurements, sum.speeding
    );
    Ok(ExitCode::SUCCESS)
}
