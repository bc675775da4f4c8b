//! Speed-accuracy benchmark (issue 3): seeded ground-truth cases over varied cameras, run through
//! the real tracker -> speed -> events pipeline, one table row per capture/detection condition.
//!
//! `cargo bench --bench accuracy` (release). Optional arguments after `--`:
//! `--cases N` (cameras per condition, default 300), `--seed S`, `--calibration-noise-px P`
//! (default 0.5), `--box-noise-px P` (default 1.5), `--fit-margin-share S` (the estimator's
//! `SpeedConfig::fit_margin_share`; default its default), `--out DIR` (also writes every case's
//! MOT detections, timestamps, truth and camera.toml under DIR/case-NNN/<condition>/).

use speedcam::speed::SpeedConfig;
use speedcam_synth::accuracy::{
    evaluate_case, format_table, generate_case, summarize, write_case, BenchConfig,
};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = BenchConfig::default();
    let mut out: Option<PathBuf> = None;
    let mut speed = SpeedConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cases" => cfg.cases = args.next().ok_or("--cases needs a number")?.parse()?,
            "--seed" => cfg.seed = args.next().ok_or("--seed needs a number")?.parse()?,
            "--out" => out = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--calibration-noise-px" => {
                cfg.noise.calibration_sigma_px = args
                    .next()
                    .ok_or("--calibration-noise-px needs a number")?
                    .parse()?
            }
            "--box-noise-px" => {
                cfg.noise.box_sigma_px = args
                    .next()
                    .ok_or("--box-noise-px needs a number")?
                    .parse()?
            }
            "--fit-margin-share" => {
                speed.fit_margin_share = args
                    .next()
                    .ok_or("--fit-margin-share needs a number")?
                    .parse()?
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let start = Instant::now();
    let mut rows = Vec::new();
    for condition in &cfg.conditions {
        let mut evals = Vec::new();
        for i in 0..cfg.cases {
            let case = generate_case(&cfg, condition, i)?;
            if let Some(dir) = &out {
                write_case(&case, &dir.join(&case.name))?;
            }
            evals.push(evaluate_case(&case, &speed)?);
        }
        rows.push(summarize(&condition.name, &evals));
    }
    println!(
        "speed accuracy: {} cameras x {} vehicles per condition, seed {}, box noise {} px, \
         {:.0}% misses, calibration noise {} px",
        cfg.cases,
        cfg.vehicles_per_case,
        cfg.seed,
        cfg.noise.box_sigma_px,
        100.0 * cfg.noise.miss_rate,
        cfg.noise.calibration_sigma_px
    );
    print!("{}", format_table(&rows));
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}
