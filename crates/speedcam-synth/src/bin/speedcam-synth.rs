//! `speedcam-synth OUT_DIR`: renders the demo's synthetic scene (`scene.mp4`, `truth.json`,
//! `camera.toml`) into OUT_DIR. It was `speedcamd synth`; the renderer is a development tool,
//! so it ships with the synth crate, not in the daemon: `cargo run -p speedcam-synth -- DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: speedcam-synth OUT_DIR (renders scene.mp4, truth.json and camera.toml)");
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
