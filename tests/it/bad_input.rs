//! Bad input never panics (issue 7): the real binary on mistyped configs, degenerate
//! calibrations, missing and corrupt models, truncated and corrupt MP4 files, garbage H.264,
//! zero-size samples and timestamps that go backwards or jump by hours. Each case checks the
//! exit status, that the message names the problem, and that nothing panicked; the library
//! cases cover inputs the binary cannot be handed (zero-size frames, a pipeline fed times that go
//! backwards). The fuzz targets in fuzz/ (scripts/fuzz.sh) cover the same parsers with
//! arbitrary bytes.

use crate::util::{copy_demo_toml, repo, speedcamd};
use speedcam::config::{self, Config};
use speedcam::detect::{BBox, Detection};
use speedcam::frame::{Frame, PixelFormat};
use speedcam::service::camera::CameraPipeline;
use speedcam::stats::StageTimes;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use time::OffsetDateTime;

fn demo_video() -> Vec<u8> {
    std::fs::read(repo().join("media/demo/scene.mp4")).expect("media/demo/scene.mp4")
}

/// Runs `speedcamd ARGS`; returns the output and stderr as text.
fn run(args: &[&str]) -> (Output, String) {
    let out = speedcamd()
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run speedcamd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "speedcamd {args:?} panicked:\n{stderr}"
    );
    (out, stderr)
}

/// `speedcamd ARGS` must fail with a message holding every one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let (out, stderr) = run(args);
    assert!(
        !out.status.success(),
        "speedcamd {args:?} succeeded:\n{stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "speedcamd {args:?}: message lacks {n:?}:\n{stderr}"
        );
    }
    stderr
}

/// [`copy_demo_toml`]'s path as text, for argument lists.
fn write_config(
    dir: &Path,
    name: &str,
    video: &Path,
    model: &Path,
    edit: impl Fn(String) -> String,
) -> String {
    copy_demo_toml(dir, name, video, model, edit)
        .display()
        .to_string()
}

fn model() -> PathBuf {
    repo().join("models/nanodet-g-416.onnx")
}

/// Top-level MP4 boxes: (type, offset, size).
fn top_boxes(mp4: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = mp4[pos + 4..pos + 8].try_into().unwrap();
        assert!(size >= 8, "demo video: box at {pos} has size {size}");
        out.push((kind, pos, size));
        pos += size;
    }
    out
}

/// Offset of the body of the first box `kind` inside `mp4[start..end]`, searched depth-first
/// through the container boxes on the way to the sample tables.
fn find_box(mp4: &[u8], start: usize, end: usize, kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut pos = start;
    while pos + 8 <= end {
        let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().unwrap()) as usize;
        let k = &mp4[pos + 4..pos + 8];
        if k == kind {
            return Some((pos + 8, pos + size));
        }
        if [b"moov", b"trak", b"mdia", b"minf", b"stbl"]
            .iter()
            .any(|c| k == *c)
        {
            if let Some(found) = find_box(mp4, pos + 8, pos + size, kind) {
                return Some(found);
            }
        }
        pos += size;
    }
    None
}

fn sample_table(mp4: &[u8], kind: &[u8; 4]) -> usize {
    find_box(mp4, 0, mp4.len(), kind)
        .unwrap_or_else(|| panic!("demo video has no {}", String::from_utf8_lossy(kind)))
        .0
}

/// The demo video with its index (moov) moved in front of the media data, chunk offsets
/// shifted to match ("faststart", as cameras and `ffmpeg -movflags +faststart` write it), so a
/// cut in the media data leaves the index whole.
fn faststart(mp4: &[u8]) -> Vec<u8> {
    let boxes = top_boxes(mp4);
    let get = |k: &[u8; 4]| boxes.iter().find(|b| &b.0 == k).copied().unwrap();
    let (ftyp, mdat, moov) = (get(b"ftyp"), get(b"mdat"), get(b"moov"));
    assert!(moov.1 > mdat.1, "demo video is already faststart");
    let mut moov_bytes = mp4[moov.1..moov.1 + moov.2].to_vec();
    let stco = sample_table(&moov_bytes, b"stco");
    let count = u32::from_be_bytes(moov_bytes[stco + 4..stco + 8].try_into().unwrap()) as usize;
    for i in 0..count {
        let at = stco + 8 + 4 * i;
        let off = u32::from_be_bytes(moov_bytes[at..at + 4].try_into().unwrap());
        moov_bytes[at..at + 4].copy_from_slice(&(off + moov.2 as u32).to_be_bytes());
    }
    let mut out = mp4[ftyp.1..ftyp.1 + ftyp.2].to_vec();
    out.extend_from_slice(&moov_bytes);
    out.extend_from_slice(&mp4[mdat.1..mdat.1 + mdat.2]);
    out
}

#[test]
fn mistyped_keys_name_the_key_the_line_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("media/demo/scene.mp4");
    let cfg = write_config(dir.path(), "typo.toml", &video, &model(), |t| {
        t.replace("score_threshold = 0.35", "score_treshold = 0.35")
    });
    let text = std::fs::read_to_string(&cfg).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("score_treshold"))
        .unwrap()
        + 1;
    fails_with(
        &["check-config", "--config", &cfg],
        &[
            "unknown field `score_treshold`",
            &format!("line {line}"),
            "`score_threshold`",
            "`nms_iou`",
        ],
    );
    // A key in the wrong table, and a value of the wrong type.
    let cfg = write_config(dir.path(), "zone.toml", &video, &model(), |t| {
        t.replace("[cameras.zone]", "[cameras.zone]\nspeed_limit = 30")
    });
    fails_with(
        &["run", "--config", &cfg],
        &["unknown field `speed_limit`", "expected `polygon`"],
    );
    let cfg = write_config(dir.path(), "type.toml", &video, &model(), |t| {
        t.replace("speed_limit_kmh = 50.0", "speed_limit_kmh = \"fifty\"")
    });
    fails_with(
        &["check-config", "--config", &cfg],
        &["speed_limit_kmh", "line"],
    );
}

#[test]
fn degenerate_calibrations_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("media/demo/scene.mp4");
    fn with_points(image: &'static str, world: &'static str) -> impl Fn(String) -> String {
        move |t: String| -> String {
            t.lines()
                .map(|l| {
                    if l.starts_with("image_points") {
                        format!("image_points = {image}")
                    } else if l.starts_with("world_points") {
                        format!("world_points = {world}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
    let cases = [
        (
            "collinear",
            "[[0, 0], [10, 10], [20, 20], [30, 30]]",
            "[[0, 0], [1, 1], [2, 2], [3, 3]]",
            "collinear",
        ),
        (
            "duplicate",
            "[[100, 100], [100, 100], [300, 120], [200, 300]]",
            "[[0, 0], [0, 0], [5, 0], [0, 5]]",
            "coincide",
        ),
        (
            "three",
            "[[100, 100], [300, 120], [200, 300]]",
            "[[0, 0], [5, 0], [0, 5]]",
            "at least 4 point pairs",
        ),
        (
            "mismatched",
            "[[100, 100], [300, 120], [200, 300], [400, 400], [500, 100]]",
            "[[0, 0], [5, 0], [0, 5], [5, 5]]",
            "calibration",
        ),
    ];
    for (name, image, world, why) in cases {
        let cfg = write_config(
            dir.path(),
            &format!("{name}.toml"),
            &video,
            &model(),
            with_points(image, world),
        );
        fails_with(
            &["check-config", "--config", &cfg],
            &["cameras[0].calibration", "line ", why],
        );
    }
}

#[test]
fn missing_and_corrupt_models_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("media/demo/scene.mp4");
    let missing = dir.path().join("missing.onnx");
    let cfg = write_config(dir.path(), "missing.toml", &video, &missing, |t| t);
    fails_with(
        &["check-config", "--config", &cfg],
        &["detector.model", "not found", "missing.onnx"],
    );
    let truncated = dir.path().join("truncated.onnx");
    let onnx = std::fs::read(model()).unwrap();
    std::fs::write(&truncated, &onnx[..onnx.len() / 7]).unwrap();
    let random = dir.path().join("random.onnx");
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, noise).unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for m in [&truncated, &random, &empty] {
        let name = m.file_name().unwrap().to_str().unwrap();
        let cfg = write_config(dir.path(), &format!("{name}.toml"), &video, m, |t| t);
        fails_with(
            &["check-config", "--config", &cfg],
            &["cannot load model", name],
        );
    }
    // The daemon and replay refuse the same model before touching any camera.
    let cfg = write_config(dir.path(), "run.toml", &video, &truncated, |t| t);
    fails_with(&["run", "--config", &cfg], &["cannot load model"]);
    fails_with(
        &["replay", video.to_str().unwrap(), "--config", &cfg],
        &["cannot load model"],
    );
}

#[test]
fn truncated_videos_are_errors_that_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = demo_video();
    let fast = faststart(&mp4);
    let moov_at = top_boxes(&mp4).iter().find(|b| &b.0 == b"moov").unwrap().1;
    let cuts: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("in-ftyp", mp4[..16].to_vec(), "truncated"),
        ("in-mdat", mp4[..mp4.len() / 2].to_vec(), "no moov box"),
        ("in-moov", mp4[..moov_at + 2000].to_vec(), "truncated"),
        ("last-bytes", mp4[..mp4.len() - 10].to_vec(), "truncated"),
        // Index whole, media data cut: found up front, not after minutes of decoding.
        (
            "faststart-mdat",
            fast[..fast.len() * 2 / 3].to_vec(),
            "truncated",
        ),
    ];
    for (name, bytes, why) in &cuts {
        let video = dir.path().join(format!("{name}.mp4"));
        std::fs::write(&video, bytes).unwrap();
        let cfg = write_config(dir.path(), &format!("{name}.toml"), &video, &model(), |t| t);
        let out = dir.path().join(format!("{name}.jpg"));
        let args = ["snapshot", "--config", &cfg, "--out", out.to_str().unwrap()];
        if cfg!(feature = "ffmpeg") && *name == "faststart-mdat" {
            // With libavcodec the built-in reader's refusal is a fallback, not an error: the
            // index is whole, so libav reads the frames that are there, and the log says why.
            let (status, stderr) = run(&args);
            assert!(
                status.status.success(),
                "speedcamd {args:?} failed:\n{stderr}"
            );
            for n in [
                &format!("{name}.mp4"),
                *why,
                "decoding it with libavcodec instead",
            ] {
                assert!(stderr.contains(n), "message lacks {n:?}:\n{stderr}");
            }
            continue;
        }
        fails_with(&args, &[&format!("{name}.mp4"), why]);
    }
    // replay checks the video before loading anything else.
    let video = dir.path().join("in-moov.mp4");
    let cfg = dir.path().join("in-moov.toml");
    fails_with(
        &[
            "replay",
            video.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        &["in-moov.mp4", "not a usable MP4 file", "truncated"],
    );
    // The faststart file itself is fine: the cut, not the rewrite, is what fails.
    let whole = dir.path().join("faststart.mp4");
    std::fs::write(&whole, &fast).unwrap();
    let cfg = write_config(dir.path(), "faststart.toml", &whole, &model(), |t| t);
    let jpg = dir.path().join("faststart.jpg");
    let (out, stderr) = run(&[
        "snapshot",
        "--config",
        &cfg,
        "--out",
        jpg.to_str().unwrap(),
        "--at",
        "2",
    ]);
    assert!(out.status.success(), "{stderr}");
}

/// `snapshot --at AT` of `video`; must succeed. Returns stderr.
fn snapshot_ok(dir: &Path, name: &str, video: &[u8], at: &str) -> String {
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, video).unwrap();
    let cfg = write_config(dir, &format!("{name}.toml"), &path, &model(), |t| t);
    let jpg = dir.join(format!("{name}.jpg"));
    let (out, stderr) = run(&[
        "snapshot",
        "--config",
        &cfg,
        "--out",
        jpg.to_str().unwrap(),
        "--at",
        at,
    ]);
    assert!(out.status.success(), "snapshot of {name}: {stderr}");
    assert!(jpg.exists(), "snapshot of {name} wrote no image:\n{stderr}");
    stderr
}

#[test]
fn corrupt_media_data_is_skipped_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = demo_video();
    let mdat = *top_boxes(&mp4).iter().find(|b| &b.0 == b"mdat").unwrap();
    // Bytes flipped through the first third of the media data (lengths and slice data alike):
    // those samples are skipped with a warning each, later ones decode.
    let mut flipped = mp4.clone();
    for i in (mdat.1 + 16..mdat.1 + mdat.2 / 3).step_by(499) {
        flipped[i] ^= 0x5a;
    }
    let stderr = snapshot_ok(dir.path(), "flipped", &flipped, "10");
    assert!(
        stderr.contains("sample skipped") || stderr.contains("skipping corrupt sample"),
        "no skipped sample reported:\n{stderr}"
    );
    // Every sample broken: an error that says no frame came out, not a panic or a hang.
    let mut all = mp4.clone();
    for i in (mdat.1 + 16..mdat.1 + mdat.2).step_by(97) {
        all[i] ^= 0xff;
    }
    let path = dir.path().join("all.mp4");
    std::fs::write(&path, &all).unwrap();
    let cfg = write_config(dir.path(), "all.toml", &path, &model(), |t| t);
    let jpg = dir.path().join("all.jpg");
    fails_with(
        &["snapshot", "--config", &cfg, "--out", jpg.to_str().unwrap()],
        &["gave no frame"],
    );
    // Zero-size samples (stsz entries set to 0): skipped as holding no NAL unit.
    let mut zero = mp4.clone();
    let stsz = sample_table(&zero, b"stsz");
    for sample in [3usize, 4, 5] {
        let at = stsz + 12 + 4 * (sample - 1);
        zero[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    }
    let stderr = snapshot_ok(dir.path(), "zero-samples", &zero, "5");
    assert!(
        stderr.contains("sample holds no NAL unit"),
        "zero-size sample not reported:\n{stderr}"
    );
}

#[test]
fn raw_h264_and_other_non_mp4_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An Annex B elementary stream of garbage NAL units: not a container the file source reads.
    let mut h264 = Vec::new();
    for i in 0..200u32 {
        h264.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        h264.extend((0..50u32).map(|j| ((i * 131 + j * 17) % 251) as u8));
    }
    for (name, bytes) in [
        ("garbage.h264", h264),
        ("text.mp4", b"hello world".to_vec()),
    ] {
        let video = dir.path().join(name);
        std::fs::write(&video, bytes).unwrap();
        let cfg = write_config(dir.path(), &format!("{name}.toml"), &video, &model(), |t| t);
        let jpg = dir.path().join(format!("{name}.jpg"));
        fails_with(
            &["snapshot", "--config", &cfg, "--out", jpg.to_str().unwrap()],
            &[name, "MP4"],
        );
    }
}

#[test]
fn timestamps_that_jump_by_hours_keep_frames_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut mp4 = demo_video();
    // One stts delta of two hours (timescale 90 kHz): frames after it are 7200 s later.
    let stts = sample_table(&mp4, b"stts");
    let timescale = {
        let mdhd = sample_table(&mp4, b"mdhd");
        u32::from_be_bytes(mp4[mdhd + 12..mdhd + 16].try_into().unwrap())
    };
    let at = stts + 8 + 8 * 10 + 4;
    mp4[at..at + 4].copy_from_slice(&(timescale * 7200).to_be_bytes());
    let stderr = snapshot_ok(dir.path(), "jump", &mp4, "7201");
    let pts: f64 = stderr
        .split(" at ")
        .nth(1)
        .and_then(|s| s.split(" s of").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no frame time in {stderr}"));
    assert!((7200.0..7203.0).contains(&pts), "{stderr}");
}

/// Writes `det.txt` for `analyze`: a box moving right 10 px per frame, `frames` frames.
fn write_mot(dir: &Path, frames: u32) -> PathBuf {
    let rows: String = (1..=frames)
        .map(|f| format!("{f},-1,{},500,80,60,0.9\n", 300 + 10 * f))
        .collect();
    let path = dir.join("det.txt");
    std::fs::write(&path, rows).unwrap();
    path
}

#[test]
fn analyze_rejects_backwards_and_undatable_times() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("media/demo/scene.mp4");
    let cfg = write_config(dir.path(), "demo.toml", &video, &model(), |t| t);
    let det = write_mot(dir.path(), 3);
    let det = det.to_str().unwrap();
    let ts = dir.path().join("ts.txt");
    std::fs::write(&ts, "0\n0.04\n0.02\n").unwrap();
    fails_with(
        &[
            "analyze",
            "--config",
            &cfg,
            "--mot",
            det,
            "--timestamps",
            ts.to_str().unwrap(),
        ],
        &["ts.txt:3", "must not go backwards"],
    );
    std::fs::write(&ts, "0\nNaN\n").unwrap();
    fails_with(
        &[
            "analyze",
            "--config",
            &cfg,
            "--mot",
            det,
            "--timestamps",
            ts.to_str().unwrap(),
        ],
        &["ts.txt:2", "not finite"],
    );
    // Frames 31 700 years apart, or 1e300 s: no date to give them (this panicked).
    for args in [
        vec!["--fps", "1e-12"],
        vec!["--timestamps", ts.to_str().unwrap()],
    ] {
        std::fs::write(&ts, "0\n1e300\n2e300\n").unwrap();
        let mut all = vec!["analyze", "--config", &cfg, "--mot", det];
        all.extend(args);
        fails_with(&all, &["too far to date", "--fps or --timestamps"]);
    }
    for fps in ["--fps=0", "--fps=-25", "--fps=NaN", "--fps=inf"] {
        fails_with(
            &["analyze", "--config", &cfg, "--mot", det, fps],
            &["--fps", "positive"],
        );
    }
}

#[test]
fn analyze_with_a_two_hour_gap_measures_finite_speeds() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("media/demo/scene.mp4");
    let cfg = write_config(dir.path(), "demo.toml", &video, &model(), |t| t);
    let det = write_mot(dir.path(), 40);
    let times: String = (0..40)
        .map(|i| {
            let jump = if i >= 20 { 7200.0 } else { 0.0 };
            format!("{}\n", f64::from(i) * 0.04 + jump)
        })
        .collect();
    let ts = dir.path().join("ts.txt");
    std::fs::write(&ts, times).unwrap();
    let (out, stderr) = run(&[
        "analyze",
        "--json",
        "--config",
        &cfg,
        "--mot",
        det.to_str().unwrap(),
        "--timestamps",
        ts.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("40 frame(s) with 40 detection(s)"),
        "{stderr}"
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let e: speedcam::event::Event = serde_json::from_str(line).unwrap();
        assert!(
            e.speed_kmh.is_none_or(|v| v.is_finite() && v >= 0.0)
                && e.t_exit_s - e.t_enter_s < 3600.0,
            "a measurement spans the gap or is not finite: {line}"
        );
    }
}

fn demo_config() -> Config {
    config::load(&repo().join("config/demo.toml")).expect("config/demo.toml")
}

fn det(x1: f32) -> Detection {
    Detection {
        bbox: BBox {
            x1,
            y1: 500.0,
            x2: x1 + 80.0,
            y2: 560.0,
        },
        score: 0.9,
        class_id: 2,
        class: "car",
    }
}

#[test]
fn pipeline_takes_times_that_go_backwards_repeat_or_jump() {
    let cfg = demo_config();
    let mut p = CameraPipeline::new(cfg.cameras[0].clone(), cfg.tracker.clone(), "test", "m");
    let mut times = StageTimes::default();
    let wall = OffsetDateTime::UNIX_EPOCH;
    let mut verdicts = Vec::new();
    let steps = [
        0.0,
        0.04,
        0.08,
        0.12,
        0.10,
        0.10,
        0.16,
        7200.0,
        7200.04,
        f64::NAN,
        7200.08,
    ];
    for (i, &t) in steps.iter().enumerate() {
        let d = [det(300.0 + 10.0 * i as f32)];
        verdicts.extend(p.process_detections(t, wall, Some(&d), &mut times));
        verdicts.extend(p.process_detections(t + 0.02, wall, None, &mut times));
    }
    verdicts.extend(p.finish());
    for v in &verdicts {
        assert!(
            v.event.speed_kmh.is_none_or(|v| v.is_finite() && v >= 0.0),
            "{:?}",
            v.event
        );
    }
}

#[test]
fn zero_size_frames_are_errors() {
    let empty = Frame::new(
        Arc::from("cam"),
        0,
        0,
        OffsetDateTime::UNIX_EPOCH,
        0,
        720,
        PixelFormat::I420,
        bytes::Bytes::new(),
    );
    assert!(empty.unwrap_err().to_string().contains("0x720"));
    use speedcam::source::convert::{mjpeg_to_i420, nv12_to_i420, yuyv_to_i420};
    assert!(yuyv_to_i420(&[], 0, 0, 0).is_err());
    assert!(nv12_to_i420(&[0; 16], 4, 0, 0).is_err());
    assert!(mjpeg_to_i420(&[], 640, 480).is_err());
}

/// Found by the `mp4` fuzz target (it hung `replay` for good): an MP4 whose `dinf/dref` has an
/// entry of size 0 under an entry count of 4 billion. The file source refuses it at once.
#[test]
fn mp4_with_a_size0_dref_entry_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("tests/data/bad/mp4-dref-size0-entry.mp4");
    let cfg = write_config(dir.path(), "dref.toml", &video, &model(), |t| t);
    let jpg = dir.path().join("dref.jpg");
    let mut child = speedcamd()
        .args(["snapshot", "--config", &cfg, "--out", jpg.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run speedcamd");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().ok();
            panic!("snapshot still running after 60 s: the file source hangs on it");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    for needle in ["mp4-dref-size0-entry.mp4", "dref", "size 0"] {
        assert!(
            stderr.contains(needle),
            "message lacks {needle:?}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
