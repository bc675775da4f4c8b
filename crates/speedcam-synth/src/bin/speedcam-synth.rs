//! `speedcam-synth OUT_DIR`: renders the demo's synthetic scene (`scene.mp4`, `truth.json`,
//! `camera.toml`) into OUT_DIR. It was `speedcamd synth`; the renderer is a development tool,
//! so it ships with the synth crate, not in the daemon: `cargo run -p speedcam-synth -- DIR`.
//!
//! `speedcam-synth accuracy [OPTIONS]`: the speed-accuracy benchmark without building the daemon
//! (the options of `cargo bench --bench accuracy`; `accuracy --help` lists them), e.g.
//! `cargo run --release -p speedcam-synth -- accuracy --family hard`. `RUST_LOG=debug` shows the
//! speed estimator's reasons (best with `--case I --condition NAME`).

use std::path::PathBuf;
use std::process::ExitCode;

fn accuracy(args: impl Iterator<Item = String>) -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = match speedcam_synth::accuracy::cli::parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("speedcam-synth accuracy: {e}");
            return ExitCode::from(2);
        }
    };
    match speedcam_synth::accuracy::cli::run(&args) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some("accuracy".as_ref()) {
        let args: Option<Vec<String>> = args.map(|a| a.into_string().ok()).collect();
        let Some(args) = args else {
            eprintln!("speedcam-synth accuracy: options must be UTF-8");
            return ExitCode::from(2);
        };
        return accuracy(args.into_iter());
    }
    let (Some(out), None) = (first, args.next()) else {
        eprintln!(
            "usage: speedcam-synth OUT_DIR (renders scene.mp4, truth.json and camera.toml)\n   \
             or: speedcam-synth accuracy [--family standard|hard|heldout] [--cases N] ... \
             (the speed-accuracy benchmark; --help for its options)"
        );
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    let start = std::time::Instant::now();
    match speedcam_synth::render_demo(&out) {
        Ok(truth) => {
            eprintln!(
                "rendered {} vehicles, {} frames into {} in {:.1} s",
                truth.vehicles.len(),
                truth.frames,
                out.display(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: rendering the demo scene into {}: {e}",
                out.display()
            );
            ExitCode::FAILURE
        }
    }
}
