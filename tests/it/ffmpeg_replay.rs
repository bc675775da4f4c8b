//! The `ffmpeg` feature on the files people replay: a cut of the bundled demo scene (2 vehicles
//! crossing the zone, variable frame times) re-encoded by the `ffmpeg` CLI into three twins of
//! the same encoder quality: H.264 without B-frames, H.264 with B-frames (libx264 defaults) and
//! H.265. Every twin must decode to the same number of frames with the same timestamps, and the
//! real `speedcamd replay` must measure the same vehicles at the same speeds (within
//! [`TWIN_TOLERANCE_KMH`] of the B-frame-free twin) and within 3 km/h of ground truth.
//! Without the `ffmpeg` CLI (or its libx264/libx265 encoders) the tests print `SKIPPED: ffmpeg`
//! and pass, unless `SPEEDCAM_REQUIRE` names `ffmpeg` (see `util/mod.rs`).

use crate::util::{demo_config_text, need, repo, speed_of, speedcamd, Tool};
use speedcam::event::{Event, EventType};
use speedcam::frame::Frame;
use speedcam::source::ffmpeg::{FfmpegOptions, FfmpegSource};
use speedcam::source::{open_file, probe_file, Mp4Source, Source};
use speedcam::truth::load_truth;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Largest speed difference allowed between a twin and the B-frame-free twin, km/h.
const TWIN_TOLERANCE_KMH: f64 = 1.0;
/// Where the cut starts in the demo scene, s.
const CUT_START_S: f64 = 4.6;
/// Length of the cut, s: vehicles 4 (31 km/h) and 5 (88 km/h) of the scene cross the zone in
/// it. Short, because the debug-profile detector takes ~0.2 s a frame on a 2-core machine.
const CUT_LEN_S: f64 = 2.4;

/// Whether the `ffmpeg` CLI with libx264 and libx265 is installed (the skip rule decides when
/// not).
fn have_ffmpeg() -> bool {
    let encoders = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .stderr(Stdio::null())
        .output();
    let ok = matches!(&encoders, Ok(o) if o.status.success()
        && String::from_utf8_lossy(&o.stdout).contains("libx264")
        && String::from_utf8_lossy(&o.stdout).contains("libx265"));
    let found = if ok {
        Ok(())
    } else {
        Err("the ffmpeg CLI with libx264 and libx265 is not installed".to_string())
    };
    need(Tool::Ffmpeg, found).is_some()
}

/// `ffmpeg` arguments re-encoding `[start, start + len)` of the demo scene, keeping its frame
/// times exactly (passthrough, the input's 90 kHz time base).
fn cut_args(start_s: f64, len_s: f64) -> Vec<String> {
    let scene = repo().join("media/demo/scene.mp4");
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-y", "-i"]
        .map(String::from)
        .into();
    args.push(scene.display().to_string());
    args.extend(
        [
            "-ss",
            &start_s.to_string(),
            "-t",
            &len_s.to_string(),
            "-an",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-movflags",
            "+faststart",
        ]
        .map(String::from),
    );
    args
}

/// Runs one `ffmpeg` per `(extra args, output)` in parallel and waits for all.
fn encode(jobs: &[(&[&str], &Path)], start_s: f64, len_s: f64) {
    let children: Vec<_> = jobs
        .iter()
        .map(|(extra, out)| {
            let child = Command::new("ffmpeg")
                .args(cut_args(start_s, len_s))
                .args(*extra)
                .arg(out)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    for (child, out) in children {
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "ffmpeg -> {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

const NOBF: &[&str] = &["-c:v", "libx264", "-bf", "0"];
const BF: &[&str] = &["-c:v", "libx264"];
const HEVC: &[&str] = &[
    "-c:v",
    "libx265",
    "-tag:v",
    "hvc1",
    "-x265-params",
    "log-level=error",
];

/// Decodes `src` to the end; returns the frames and the decode time per frame in ms.
fn decode_all(mut src: Box<dyn Source>) -> (Vec<Frame>, f64, String) {
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        frames.push(f);
    }
    let c = src.counters();
    assert_eq!(c.frames_decoded, frames.len() as u64, "{c:?}");
    assert_eq!((c.decode_errors, c.pts_backwards_dropped), (0, 0), "{c:?}");
    let ms = c.decode_time_ns as f64 * 1e-6 / frames.len().max(1) as f64;
    (frames, ms, src.describe())
}

fn pts(frames: &[Frame]) -> Vec<i64> {
    frames.iter().map(|f| f.pts_ns).collect()
}

/// Writes a replay config for the demo camera with its own data dir.
fn write_config(dir: &Path, name: &str) -> PathBuf {
    let data_dir = dir.join(format!("data-{name}"));
    let text = demo_config_text("ffmpeg", &data_dir, None, None, "");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `speedcamd replay --json` on every video at once (the detector is single-threaded, so
/// parallel replays use the cores) and returns each one's measurements.
fn replay_all(dir: &Path, videos: &[(&str, &Path)]) -> Vec<Vec<Event>> {
    let children: Vec<_> = videos
        .iter()
        .map(|(name, video)| {
            let config = write_config(dir, name);
            speedcamd()
                .arg("replay")
                .arg(video)
                .arg("--config")
                .arg(&config)
                .arg("--json")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .zip(videos)
        .map(|(child, (name, _))| {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "replay {name} failed: {stderr}");
            eprintln!("replay {name}: {}", stderr.lines().next().unwrap_or(""));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Event>(l).unwrap())
                .filter(|e| e.kind == EventType::Measurement)
                .collect()
        })
        .collect()
}

#[test]
fn bframe_and_hevc_twins_decode_and_measure_like_the_bframe_free_twin() {
    if !have_ffmpeg() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (nobf, bf, hevc, ts) = (
        dir.path().join("nobf.mp4"),
        dir.path().join("bf.mp4"),
        dir.path().join("hevc.mp4"),
        dir.path().join("bf.ts"),
    );
    encode(
        &[(NOBF, &nobf), (BF, &bf), (HEVC, &hevc)],
        CUT_START_S,
        CUT_LEN_S,
    );
    // The B-frame twin remuxed to MPEG-TS: another container, a 90 kHz clock that starts at 1.4 s.
    let remux = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(&bf)
        .args(["-c", "copy"])
        .arg(&ts)
        .output()
        .unwrap();
    assert!(remux.status.success(), "{remux:?}");
    eprintln!("twins encoded in {:.1} s", started.elapsed().as_secs_f64());

    // Decoding: the reference is the built-in openh264 path on the B-frame-free twin.
    let (reference, openh264_ms, _) =
        decode_all(Box::new(Mp4Source::open(&nobf, "cam".into()).unwrap()));
    assert!(reference.len() > 60, "{} frames", reference.len());
    eprintln!(
        "nobf  openh264            {:4} frames {openh264_ms:.2} ms/frame",
        reference.len()
    );
    let nobf_ff = FfmpegSource::open(&nobf, "cam".into(), &FfmpegOptions::default()).unwrap();
    let (frames, ms, _) = decode_all(Box::new(nobf_ff));
    eprintln!(
        "nobf  libavcodec h264    {:4} frames {ms:.2} ms/frame",
        frames.len()
    );
    assert_eq!(pts(&frames), pts(&reference));
    // Both are conforming H.264 decoders: the pictures are identical, byte for byte.
    for (a, b) in frames.iter().zip(&reference) {
        assert!(a.data == b.data, "frame {} differs between decoders", a.seq);
    }
    for (name, path) in [("bf", &bf), ("hevc", &hevc), ("bf.ts", &ts)] {
        let (frames, ms, describe) = decode_all(open_file(path, "cam".into()).unwrap());
        eprintln!(
            "{name:5} {describe}: {} frames {ms:.2} ms/frame",
            frames.len()
        );
        assert!(describe.contains("libavcodec"), "{describe}");
        assert_eq!(frames.len(), reference.len(), "{name}: frame count");
        assert_eq!(pts(&frames), pts(&reference), "{name}: frame times");
        for (f, r) in frames.iter().zip(&reference) {
            assert_eq!((f.width, f.height, f.format), (r.width, r.height, r.format));
        }
        let info = probe_file(path).unwrap();
        assert_eq!((info.width, info.height), (1280, 720), "{name}: {info:?}");
        // MPEG-TS announces no frame count: it is estimated from duration and rate.
        let slack = if name.ends_with(".ts") { 3 } else { 0 };
        assert!(
            info.frame_count.abs_diff(reference.len() as u64) <= slack,
            "{name}: {info:?}"
        );
        assert!(info.has_bframes, "{name}: {info:?}");
    }

    // Measuring: the same vehicles at the same speeds.
    let replay_started = Instant::now();
    let runs = replay_all(dir.path(), &[("nobf", &nobf), ("bf", &bf), ("hevc", &hevc)]);
    eprintln!(
        "3 replays in {:.1} s",
        replay_started.elapsed().as_secs_f64()
    );
    let truth = load_truth(&repo().join("media/demo/truth.json")).unwrap();
    let first_frame_s = truth
        .frame_times_s
        .iter()
        .copied()
        .find(|&t| t >= CUT_START_S - 1e-6)
        .unwrap();
    let reference = &runs[0];
    assert_eq!(reference.len(), 2, "vehicles 4 and 5 cross: {reference:#?}");
    for m in reference {
        let v = truth
            .vehicles
            .iter()
            .filter(|v| v.crossed_zone)
            .min_by(|a, b| {
                let d = |v: &speedcam::truth::VehicleTruth| {
                    (v.zone_entry_s.unwrap_or(f64::MAX) - first_frame_s - m.t_enter_s).abs()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        let true_kmh = v.zone_speed_kmh.unwrap_or(f64::NAN);
        eprintln!(
            "nobf  vehicle {}: true {true_kmh:.2} measured {:.2} km/h",
            v.id,
            speed_of(m)
        );
        assert!(
            (speed_of(m) - true_kmh).abs() <= 3.0,
            "vehicle {}: true {true_kmh:.2}, measured {:.2}",
            v.id,
            speed_of(m)
        );
    }
    for (name, run) in ["bf", "hevc"].iter().zip(&runs[1..]) {
        assert_eq!(run.len(), reference.len(), "{name}: {run:#?}");
        for r in reference {
            let m = run
                .iter()
                .min_by(|a, b| {
                    (a.t_enter_s - r.t_enter_s)
                        .abs()
                        .total_cmp(&(b.t_enter_s - r.t_enter_s).abs())
                })
                .unwrap();
            let diff = speed_of(m) - speed_of(r);
            eprintln!(
                "{name:5} t_enter {:.3} s: {:.2} km/h vs nobf {:.2} ({diff:+.2})",
                m.t_enter_s,
                speed_of(m),
                speed_of(r)
            );
            assert!(
                (m.t_enter_s - r.t_enter_s).abs() < 0.1,
                "{name}: no vehicle entering at {:.3} s",
                r.t_enter_s
            );
            assert!(
                diff.abs() <= TWIN_TOLERANCE_KMH,
                "{name}: {:.2} vs {:.2} km/h",
                speed_of(m),
                speed_of(r)
            );
        }
    }
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn truncated_files_end_cleanly_or_fail_clearly() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mp4, ts) = (dir.path().join("bf.mp4"), dir.path().join("bf.ts"));
    // Short GOPs, so a file cut part-way still holds whole GOPs before the damage.
    let bf_short_gop: &[&str] = &["-c:v", "libx264", "-g", "10"];
    encode(
        &[(bf_short_gop, &mp4), (bf_short_gop, &ts)],
        CUT_START_S,
        2.0,
    );
    for full in [&mp4, &ts] {
        let (all, _, _) = decode_all(open_file(full, "cam".into()).unwrap());
        let bytes = std::fs::read(full).unwrap();
        for keep in [bytes.len() * 3 / 5, bytes.len() - 100, 3_000, 200] {
            let cut = dir.path().join(format!(
                "cut-{keep}.{}",
                full.extension().unwrap().to_string_lossy()
            ));
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let name = cut.display().to_string();
            match open_file(&cut, "cam".into()) {
                Ok(mut src) => {
                    let mut n = 0;
                    let mut last = i64::MIN;
                    while let Some(f) = src.next_frame().unwrap() {
                        assert!(f.pts_ns > last);
                        last = f.pts_ns;
                        n += 1;
                    }
                    eprintln!("{name}: {n} of {} frames, {:?}", all.len(), src.counters());
                    assert!(n <= all.len(), "{name}");
                    if keep > bytes.len() / 2 {
                        assert!(n > 0, "{name}: nothing decoded");
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    eprintln!("{name}: {msg}");
                    assert!(msg.contains(&name), "{msg}");
                    assert!(keep < bytes.len() / 2, "{name}: {msg}");
                }
            }
        }
    }
}

/// Mean absolute difference of the luma planes of two same-size I420 frames.
fn luma_mad(a: &Frame, b: &Frame) -> f64 {
    let n = (a.width * a.height) as usize;
    let sum: u64 = a.data[..n]
        .iter()
        .zip(&b.data[..n])
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / n as f64
}

#[test]
fn ten_bit_hevc_and_full_range_h264_are_converted_to_limited_range_i420() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (nobf, hevc10, full) = (
        dir.path().join("nobf.mp4"),
        dir.path().join("hevc10.mp4"),
        dir.path().join("full.mp4"),
    );
    let hevc10_args: &[&str] = &[
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p10le",
        "-x265-params",
        "log-level=error",
    ];
    let full_args: &[&str] = &["-c:v", "libx264", "-pix_fmt", "yuvj420p"];
    encode(
        &[(NOBF, &nobf), (hevc10_args, &hevc10), (full_args, &full)],
        CUT_START_S,
        0.5,
    );
    let (reference, _, _) = decode_all(Box::new(Mp4Source::open(&nobf, "cam".into()).unwrap()));
    for (name, path) in [("hevc 10-bit", &hevc10), ("h264 yuvj420p", &full)] {
        let (frames, ms, describe) = decode_all(open_file(path, "cam".into()).unwrap());
        eprintln!("{name}: {describe}: {ms:.2} ms/frame");
        assert_eq!(pts(&frames), pts(&reference), "{name}");
        for (f, r) in frames.iter().zip(&reference) {
            let mad = luma_mad(f, r);
            assert!(
                mad < 2.0,
                "{name} frame {}: luma differs by {mad:.2} on average",
                f.seq
            );
        }
        eprintln!(
            "{name}: mean luma difference of the first frame {:.2}",
            luma_mad(&frames[0], &reference[0])
        );
    }
}
