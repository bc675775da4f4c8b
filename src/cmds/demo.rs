//! `speedcamd demo`: the bundled model, scene and config through `replay`, with a comparison
//! against the scene's ground truth when it has one.

use super::replay::{check_video, replay, ReplayOptions};
use crate::event::{Event, EventType};
use crate::service::{pick_camera, Verdict};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Run the bundled demo: bundled model, bundled synthetic scene, bundled config; no setup.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (default: config/demo.toml of the repository).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON lines instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Replays the demo scene and prints its verdicts, the summary and the truth comparison.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let path = demo_config(args.config);
    let cfg = super::load(&path)?;
    let cam = pick_camera(&cfg, None)?;
    let video = PathBuf::from(&cam.source);
    check_video(&video)?;
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = writeln!(
            out,
            "speedcam demo: {} with {} (limit {:.0} km/h + {:.0} tolerance); store in {}",
            video.display(),
            cfg.detector.model.display(),
            cam.speed_limit_kmh,
            cam.tolerance_kmh,
            cfg.data_dir.display()
        );
    }
    let opts = ReplayOptions {
        camera: None,
        video: None,
        drain_timeout: Duration::from_secs(10),
        realtime: false,
    };
    let mut measured: Vec<Event> = Vec::new();
    let sum = replay(&cfg, &opts, &mut |v: &Verdict| {
        super::print_event(&mut out, &v.event, json);
        if v.event.kind == EventType::Measurement {
            measured.push(v.event.clone());
        }
    })?;
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = write!(out, "\n{}", super::summary_text(&sum));
        let truth = video.with_file_name("truth.json");
        if let Ok(t) = crate::truth::load_truth(&truth) {
            let _ = write!(out, "\n{}", crate::truth::compare_table(&t, &measured));
        }
    }
    Ok(super::exit_for(&sum))
}

/// The repository's demo config: from the working directory, else from where the binary was built.
fn demo_config(config: Option<PathBuf>) -> PathBuf {
    if let Some(c) = config {
        return c;
    }
    let local = PathBuf::from("config/demo.toml");
    if local.is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")
    }
}
