//! The MP4 file source on arbitrary files: probe, open (container checks, avcC, SPS, B-frame
//! detection) and the first frames decoded, as `replay` and `check-config` do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speedcam_core::source::{probe, Mp4Source, Source};
use std::sync::{Arc, Once};

/// Frames decoded per input: enough to reach the sample loop, few enough to stay fast.
const MAX_FRAMES: usize = 4;

/// The file source calls into the `mp4` crate under `catch_unwind` (its `guarded`): that crate
/// panics on some malformed sample tables, and the source turns those panics into errors.
/// libFuzzer's panic hook would abort on them anyway, so panics raised in the `mp4` crate's own
/// code unwind to that guard; every other panic still aborts and is reported.
fn let_mp4_crate_panics_unwind() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mp4_crate = info
                .location()
                .is_some_and(|l| l.file().contains("/mp4-0."));
            if !in_mp4_crate {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_mp4_crate_panics_unwind();
    let path = std::env::temp_dir().join(format!("speedcam-fuzz-{}.mp4", std::process::id()));
    std::fs::write(&path, data).expect("write scratch file");
    let _ = probe(&path);
    let Ok(mut src) = Mp4Source::open(&path, Arc::from("fuzz")) else {
        return;
    };
    let _ = src.describe();
    for _ in 0..MAX_FRAMES {
        match src.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = src.counters();
});
