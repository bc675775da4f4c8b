//! The calibration tools end to end on the bundled demo: `snapshot` grabs a frame, `calibrate`
//! reports the fit and writes the overlay, `check-config` warns about a zone too short for the
//! detection rate given.

use crate::util::{repo, speedcamd};
use std::process::Output;

/// Runs `speedcamd ARGS` in the repository root; it must succeed.
fn run(args: &[&str]) -> Output {
    let out = speedcamd()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("speedcamd runs");
    assert!(
        out.status.success(),
        "speedcamd {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn snapshot_then_calibrate_the_demo_camera() {
    let dir = tempfile::tempdir().unwrap();
    let frame = dir.path().join("frame.jpg");
    let overlay = dir.path().join("overlay.png");
    let (frame_s, overlay_s) = (frame.to_str().unwrap(), overlay.to_str().unwrap());
    run(&[
        "snapshot",
        "--config",
        "config/demo.toml",
        "--out",
        frame_s,
        "--at",
        "2",
    ]);
    let shot = image::open(&frame).expect("snapshot is a JPEG").to_rgb8();
    assert_eq!(shot.dimensions(), (1280, 720));

    let out = run(&[
        "calibrate",
        "--config",
        "config/demo.toml",
        "--camera",
        "synth",
        "--image",
        frame_s,
        "--out",
        overlay_s,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("32 calibration points"), "{text}");
    assert!(text.contains("RMS reprojection error: 0.000 px"), "{text}");
    assert!(text.contains("outliers: none"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("31 "))
            .count(),
        1,
        "{text}"
    );
    let drawn = image::open(&overlay).expect("overlay is a PNG").to_rgb8();
    assert_eq!(drawn.dimensions(), shot.dimensions());
    // Grid lines are drawn below the horizon (the demo's is near row 40), never in the sky.
    let painted_rows: Vec<u32> = drawn
        .enumerate_pixels()
        .filter(|&(_, _, p)| p.0 == [255, 215, 0])
        .map(|(_, y, _)| y)
        .collect();
    assert!(
        painted_rows.len() > 1000,
        "{} yellow pixels",
        painted_rows.len()
    );
    assert!(
        painted_rows.iter().all(|&y| y > 150),
        "yellow above row 150"
    );

    let out = run(&[
        "check-config",
        "--config",
        "config/demo.toml",
        "--detection-hz",
        "4",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING: camera synth: the zone is too short"),
        "{text}"
    );
    assert!(text.contains("at 4.0 Hz (from --detection-hz)"), "{text}");
}
