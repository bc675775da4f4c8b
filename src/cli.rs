//! Command-line interface: parses arguments, sets up logging, and runs one command.
//! Errors are printed with their whole context chain, then the process exits with status 1.
//!
//! Each command lives in its own module of [`speedcam::cmds`], with its arguments; a command's
//! help text is the doc comment of its `Args`.

use clap::{Parser, Subcommand};
use speedcam::cmds;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "speedcamd",
    version,
    about = "Vehicle speed camera daemon: video in, measured speeds and speeding alerts out over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(cmds::run::Args),
    Replay(cmds::replay::Args),
    Analyze(cmds::analyze::Args),
    Demo(cmds::demo::Args),
    CheckConfig(cmds::check_config::Args),
    Calibrate(cmds::calibrate::Args),
    Snapshot(cmds::snapshot::Args),
    Events(cmds::events::Args),
    Bench(cmds::bench::Args),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    cmds::init_logging();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(args) => cmds::run::run(args),
        Command::Replay(args) => cmds::replay::run(args),
        Command::Analyze(args) => cmds::analyze::run(args),
        Command::Demo(args) => cmds::demo::run(args),
        Command::CheckConfig(args) => cmds::check_config::run(args),
        Command::Calibrate(args) => cmds::calibrate::run(args),
        Command::Snapshot(args) => cmds::snapshot::run(args),
        Command::Events(args) => cmds::events::run(args),
        Command::Bench(args) => cmds::bench::run(args),
    }
}
