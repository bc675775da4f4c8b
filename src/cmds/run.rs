//! `speedcamd run`: the daemon (see [`crate::service::daemon`]).

use super::SYSTEM_CONFIG;
use crate::service::daemon::{self, DaemonOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the daemon: every configured camera until SIGTERM / Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file.
    #[arg(long, default_value = SYSTEM_CONFIG)]
    pub config: PathBuf,
}

/// Runs every configured camera until SIGTERM / Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load(&args.config)?;
    let opts = DaemonOptions {
        log: super::log_handle(),
        ..Default::default()
    };
    daemon::run(&cfg, opts)?;
    Ok(ExitCode::SUCCESS)
}
