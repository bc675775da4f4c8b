//! The `speedcamd` subcommands, one module each: its clap arguments (`Args`) and its `run`.
//! The binary's `cli` only parses the command line and calls the chosen command's `run`.
//!
//! What several commands share is here: loading a config (which applies its `log_level`), the
//! event printers of `replay`, `analyze`, `demo` and `events`, and the run summary and exit
//! status of `replay` and `demo`.

pub mod analyze;
pub mod bench;
pub mod calibrate;
pub mod check_config;
pub mod demo;
pub mod events;
pub mod replay;
pub mod run;
pub mod snapshot;

use crate::config::{self, Config};
use crate::event::{Event, EventType};
use crate::logging::LogHandle;
use crate::service::RunSummary;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

/// Default config of an installed daemon (every command's `--config`).
pub const SYSTEM_CONFIG: &str = "/etc/speedcam/speedcam.toml";

/// `--config` and `--camera`, flattened into the commands that work on one camera of a config.
/// A command whose `--camera` means something else rewords it with
/// `#[command(mut_arg("camera", ...))]`.
#[derive(Debug, Clone, clap::Args)]
pub struct CameraArgs {
    /// Config file.
    #[arg(long, default_value = SYSTEM_CONFIG)]
    pub config: PathBuf,
    /// Camera id (default: the first camera of the config).
    #[arg(long)]
    pub camera: Option<String>,
}

/// The log filter handle: set once at start, used when a config is loaded (its `log_level`).
static LOG: OnceLock<LogHandle> = OnceLock::new();

/// Sets up logging (see [`crate::logging::init`]); called once, before any command runs.
pub fn init_logging() {
    let _ = LOG.set(crate::logging::init());
}

/// The log filter handle, once [`init_logging`] ran (the daemon changes it on reload).
pub(crate) fn log_handle() -> Option<&'static LogHandle> {
    LOG.get()
}

/// Loads a config and applies its `log_level` (unless RUST_LOG is set).
pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
    let cfg = config::load(path)?;
    if let Some(log) = LOG.get() {
        if let Err(e) = log.apply_config(cfg.log_level.as_deref()) {
            // Under the binary's target, where this line was logged before `cmds` existed.
            tracing::warn!(target: "speedcamd::cli", err = %e, "log_level not applied");
        }
    }
    Ok(cfg)
}

/// The exit status of a replay: 1 when events could not be stored, 3 when the MQTT outbox did
/// not drain in time, else success.
pub(crate) fn exit_for(sum: &RunSummary) -> ExitCode {
    if sum.store_errors > 0 {
        eprintln!("error: {} event(s) could not be stored", sum.store_errors);
        ExitCode::FAILURE
    } else if !sum.drained {
        eprintln!("warning: the MQTT outbox was not drained before the deadline; it is kept in the store and published on the next start");
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes `e` as one JSON line (the shape of `replay --json`), flushed.
pub(crate) fn print_json(out: &mut impl Write, e: &Event) {
    if let Ok(s) = serde_json::to_string(e) {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

/// Writes `e` as one human-readable line, flushed.
pub(crate) fn print_human(out: &mut impl Write, e: &Event) {
    let tag = match e.kind {
        EventType::Measurement => "measured",
        EventType::Speeding => "SPEEDING",
    };
    let _ = writeln!(
        out,
        "{tag:<9} {cam} track {tid:>3} {class:<10} {speed} {ci:<13} (limit {limit:.0}) t={t0:.2}-{t1:.2} s  {n} samples  {method}  {time}  {id}",
        cam = e.camera,
        tid = e.track_id,
        class = e.class,
        speed = match e.speed_kmh {
            Some(v) => format!("{v:6.1} km/h"),
            None => format!("no speed ({})", e.reason.as_deref().unwrap_or("unknown")),
        },
        ci = e
            .speed_ci95_kmh
            .map(|[lo, hi]| format!("[{lo:.1}-{hi:.1}]"))
            .unwrap_or_default(),
        method = if e.stopped_s > 0.0 {
            format!("{} (stopped {:.1} s)", e.method, e.stopped_s)
        } else {
            e.method.clone()
        },
        limit = e.limit_kmh,
        t0 = e.t_enter_s,
        t1 = e.t_exit_s,
        n = e.samples,
        time = e.time,
        id = e.event_id,
    );
    let _ = out.flush();
}

/// Writes `e` as JSON or as text.
pub(crate) fn print_event(out: &mut impl Write, e: &Event, json: bool) {
    if json {
        print_json(out, e);
    } else {
        print_human(out, e);
    }
}

/// The closing figures of a replay: frames, throughput, verdicts and the stage table.
pub(crate) fn summary_text(sum: &RunSummary) -> String {
    format!(
        "frames {} (detected {}), {:.1} s of video in {:.1} s = {:.1} frames/s; {} measurement(s), {} speeding\n{}",
        sum.frames,
        sum.detected,
        sum.video_s,
        sum.wall_s,
        sum.fps(),
        sum.measurements,
        sum.speeding,
        sum.times.table()
    )
}
