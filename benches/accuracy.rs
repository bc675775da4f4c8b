//! Speed-accuracy benchmark (issues 3 and 20): seeded ground-truth cases over varied cameras, run
//! through the real tracker -> speed -> events pipeline, one table row per capture/detection
//! condition, then one row per condition and vehicle class (plus queued and braking vehicles).
//!
//! `cargo bench --bench accuracy` (release). Options after `--` are those of
//! `speedcam-synth accuracy` (`speedcam_synth::accuracy::cli::USAGE`), which runs the same thing
//! without building the daemon: `--family standard|hard|heldout` (default standard; never tune
//! on heldout), `--cases N` (cameras per condition), `--seed S`, `--vehicles N`,
//! `--condition NAME`, `--case I`, `--calibration-noise-px P`, `--box-noise-px P`,
//! `--box-noise-rel R`, `--miss-rate R`, `--fit-margin-share S` (the estimator's
//! `SpeedConfig::fit_margin_share`), `--per-vehicle`, `--jobs N`, `--out DIR` (also writes every
//! case's MOT detections, timestamps, truth and camera.toml under DIR/case-NNN/<condition>/).

use speedcam_synth::accuracy::cli;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::parse_args(std::env::args().skip(1))?;
    print!("{}", cli::run(&args)?);
    Ok(())
}
