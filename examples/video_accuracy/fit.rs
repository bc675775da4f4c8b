//! `--fit OUT`: learns the detector's box correction from the `fit` family of rendered scenes
//! (the standard family's cameras with their own seeds; never the held-out family or the demo).
//!
//! Every frame of every scene goes through the detector with no correction; each detection is
//! matched to the rendered vehicle whose true box it overlaps (IoU >= 0.5, no other vehicle's
//! box near it, the vehicle unoccluded and wholly inside the image), and the edge differences
//! are fit per class label (`speedcam::detect::box_correction::fit`).

use crate::scenes::Family;
use crate::{open_bench_detector, render_ahead, Args};
use speedcam::detect::box_correction::{fit, BoxCorrection, FitSample, SCHEMA_VERSION};
use speedcam::source::{DefaultOpener, Opener};
use std::path::Path;
use std::time::Instant;

/// Fewer matched boxes than this for a class: no correction for it.
const MIN_BOXES: usize = 200;

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = w * h;
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    i / (area(a) + area(b) - i).max(1e-9)
}

pub fn run(args: &Args, root: &Path, out: &Path) -> Result<(), String> {
    let start = Instant::now();
    let rx = render_ahead(
        root.to_path_buf(),
        (0..args.scenes).map(|i| (Family::Fit, i)).collect(),
        args.duration_s,
    );
    let mut samples: Vec<FitSample> = Vec::new();
    let mut detector = None;
    let (mut frames, mut scenes) = (0u64, 0u64);
    for r in rx {
        let r = r?;
        if detector.is_none() {
            detector = Some(open_bench_detector(args, &r.dir, "off")?);
        }
        let det = detector.as_ref().expect("opened above");
        let cfg_path = r.dir.join("fit.toml");
        std::fs::write(&cfg_path, crate::scene_config(args, &r.dir, false, "off"))
            .map_err(|e| e.to_string())?;
        let cfg = speedcam::config::load(&cfg_path).map_err(|e| e.to_string())?;
        let cam = &cfg.cameras[0];
        let mut source = DefaultOpener::for_camera(cam)
            .open(&cam.source, cam.id.as_str().into())
            .map_err(|e| format!("{}: {e}", cam.source))?;
        let (w, h) = (
            f64::from(r.truth.spec.width_px),
            f64::from(r.truth.spec.height_px),
        );
        let mut i = 0usize;
        while let Some(frame) = source.next_frame().map_err(|e| e.to_string())? {
            // The frame's truth: the frame whose time is nearest the decoded one.
            let t = frame.pts_s();
            let k = r
                .truth
                .frame_times_s
                .iter()
                .enumerate()
                .skip(i.saturating_sub(2))
                .take(5)
                .min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs()))
                .map(|(k, _)| k)
                .unwrap_or(i);
            i = k + 1;
            let (dets, _) = det.lock(false).detect(&frame).map_err(|e| e.to_string())?;
            frames += 1;
            let boxes: Vec<[f64; 4]> = r
                .truth
                .vehicles
                .iter()
                .flat_map(|v| v.samples.iter().filter(|s| s.frame as usize == k))
                .map(|s| s.bbox_px)
                .collect();
            for v in &r.truth.vehicles {
                let Some(s) = v.samples.iter().find(|s| s.frame as usize == k) else {
                    continue;
                };
                let b = s.bbox_px;
                let inside = b[0] >= 2.0 && b[1] >= 2.0 && b[2] <= w - 2.0 && b[3] <= h - 2.0;
                if s.occluded > 0.0 || !inside {
                    continue;
                }
                // Another vehicle's box close by makes the match ambiguous.
                if boxes.iter().any(|o| *o != b && iou(*o, b) > 0.05) {
                    continue;
                }
                let best = dets
                    .iter()
                    .map(|d| {
                        let db = [
                            f64::from(d.bbox.x1),
                            f64::from(d.bbox.y1),
                            f64::from(d.bbox.x2),
                            f64::from(d.bbox.y2),
                        ];
                        (iou(db, b), db, d.class)
                    })
                    .max_by(|x, y| x.0.total_cmp(&y.0));
                if let Some((o, db, class)) = best {
                    if o >= 0.5 {
                        samples.push(FitSample {
                            class: class.to_string(),
                            detected: db,
                            truth: b,
                        });
                    }
                }
            }
        }
        scenes += 1;
        eprintln!(
            "  fit scene {:>3}: {}x{}, {} vehicles, {} boxes so far",
            r.index,
            r.truth.spec.width_px,
            r.truth.spec.height_px,
            r.truth.vehicles.len(),
            samples.len()
        );
    }
    let det = detector.ok_or("no scene rendered")?;
    let model = det.lock(false).model_id().to_string();
    let classes = fit(&samples, MIN_BOXES);
    let c = BoxCorrection {
        schema: SCHEMA_VERSION,
        model,
        command: format!(
            "cargo run --release --example video_accuracy -- --fit {} --model {} --backend {} --scenes {} --duration {}",
            out.display(),
            args.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            args.backend,
            args.scenes,
            args.duration_s
        ),
        scenes,
        classes,
    };
    std::fs::write(out, c.to_toml()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", c.to_toml());
    println!(
        "wrote {} from {} boxes in {frames} frames of {scenes} scenes ({:.0} s)",
        out.display(),
        samples.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
