//! `speedcamd analyze` on an arbitrary MOTChallenge detection file: the parser, then the
//! tracker, speed and verdict stages of the demo camera. `data[0]` picks the frame times: a
//! nominal rate (normal, very slow, very fast) or, after a `\n--\n` line, a timestamps file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speedcam_core::pipeline::analyze::{analyze, AnalyzeOptions};
use speedcam_core::source::mot::FrameTimes;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn config() -> &'static speedcam_core::config::Config {
    static CFG: OnceLock<speedcam_core::config::Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo.toml");
        speedcam_core::config::load(&path).expect("config/demo.toml loads")
    })
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("speedcam-fuzz-{}-{name}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mot_text, times_text) = match rest.windows(4).position(|w| w == b"\n--\n") {
        Some(i) => (&rest[..i], Some(&rest[i + 4..])),
        None => (rest, None),
    };
    let mot = scratch("det.txt");
    std::fs::write(&mot, mot_text).expect("write scratch file");
    let times = match times_text {
        Some(t) => {
            let p = scratch("times.txt");
            std::fs::write(&p, t).expect("write scratch file");
            match FrameTimes::read(&p) {
                Ok(t) => t,
                Err(_) => return,
            }
        }
        None => {
            let fps = [25.0, 1e-9, 1e9, 0.5][usize::from(mode % 4)];
            FrameTimes::nominal(fps).expect("positive rate")
        }
    };
    let opts = AnalyzeOptions {
        mot,
        times,
        camera: None,
    };
    let _ = analyze(config(), &opts, &mut |_| {});
});
