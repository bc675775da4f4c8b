//! `speedcamd events`: the measurements and speeding events in the store.

use super::CameraArgs;
use crate::service::open_store;
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;

/// List stored measurements and speeding events.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("config", |a| a.help("Config file (its data_dir holds the store)")),
    mut_arg("camera", |a| a.help("Only this camera (default: all of them)"))
)]
pub struct Args {
    /// The config, and the camera whose events are listed.
    #[command(flatten)]
    pub target: CameraArgs,
    /// Only events at or after this RFC 3339 time, e.g. 2026-11-26T08:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per line, the same shape as `replay --json`.
    #[arg(long)]
    pub json: bool,
}

/// Prints the stored events, oldest first, then (as text) their count.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load(&args.target.config)?;
    let since = args
        .since
        .map(|s| {
            time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .with_context(|| {
                    format!("--since {s:?} is not an RFC 3339 time such as 2026-11-26T08:00:00Z")
                })
        })
        .transpose()?;
    let store = open_store(&cfg)?;
    let events = store.events(args.target.camera.as_deref(), since)?;
    let mut out = std::io::stdout().lock();
    for e in &events {
        super::print_event(&mut out, e, args.json);
    }
    if !args.json {
        let _ = writeln!(out, "{} event(s)", events.len());
    }
    Ok(ExitCode::SUCCESS)
}
