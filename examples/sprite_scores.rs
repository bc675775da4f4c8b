//! Scores every embedded vehicle sprite of the synthetic scene generator with the real detector
//! (NanoDet-g-416 on tract, letterboxed, as the daemon runs it): each sprite is composited onto
//! the demo camera's road, at several widths and facing both ways, and the best score per
//! vehicle class among the boxes that overlap the drawn sprite (IoU >= 0.5) is printed, as the
//! markdown table in `crates/speedcam-synth/sprites/README.md`.
//!
//! From the repository root (it reads `models/nanodet-g-416.onnx`):
//!
//! ```sh
//! cargo run --release --example sprite_scores -- [--widths 80,120,...] [--dump DIR] [--verbose] [--png DIR] [NAME ...]
//! ```
//!
//! `--dump DIR` writes each composite as a PNG for a look; `--verbose` prints every box that
//! overlaps the sprite; `--png DIR` scores `DIR/NAME.png` (a fresh `render_sprites.py` output,
//! facing right) instead of the embedded sprite. The detector is the daemon's default (tract, CPU):
//! the whole table takes about half a minute.

use speedcam::detect::{open, BBox, DetectorConfig};
use speedcam::frame::Frame;
use speedcam_synth::camera::Camera;
use speedcam_synth::scene::render_background;
use speedcam_synth::sprite::{Sprite, SpriteSet, SPRITE_NAMES};
use speedcam_synth::{demo_scene, VehicleClass};
use std::path::PathBuf;

/// The classes a detection of `name` may have to count: its own COCO class, and for vans and
/// pickups (COCO has no van) either car or truck.
fn expected(name: &str) -> &'static [&'static str] {
    let class = SpriteSet::ALL.iter().find_map(|set| {
        VehicleClass::ALL
            .into_iter()
            .find(|&c| set.sprites(c).contains(&name))
    });
    match class {
        Some(VehicleClass::Bus) => &["bus"],
        Some(VehicleClass::Truck) => &["truck"],
        Some(VehicleClass::Van) => &["car", "truck"],
        _ if name.starts_with("pickup") => &["car", "truck"],
        _ => &["car"],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dump: Option<PathBuf> = None;
    let mut verbose = false;
    let mut png_dir: Option<PathBuf> = None;
    let mut widths: Vec<f64> = vec![80.0, 120.0, 180.0, 270.0, 400.0, 600.0];
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--verbose" => verbose = true,
            "--png" => png_dir = Some(args.next().ok_or("--png DIR")?.into()),
            "--dump" => dump = Some(args.next().ok_or("--dump DIR")?.into()),
            "--widths" => {
                widths = args
                    .next()
                    .ok_or("--widths 80,120,...")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            _ => names.push(a),
        }
    }
    if names.is_empty() {
        names = SPRITE_NAMES.iter().map(|s| s.to_string()).collect();
    }
    if let Some(d) = &dump {
        std::fs::create_dir_all(d)?;
    }
    let spec = demo_scene();
    let (w, h) = (spec.width_px, spec.height_px);
    let cam = Camera::new(spec.camera, w, h);
    let background = render_background(&cam, spec.lanes, spec.seed);
    let mut det = open(&DetectorConfig {
        score_threshold: 0.05,
        ..DetectorConfig::default()
    })?;
    println!(
        "| sprite | expected | width px | facing right: car / bus / truck | facing left: car / bus / truck | verdict |"
    );
    println!("|---|---|---|---|---|---|");
    let mut worst: Vec<(String, f32, f32, usize)> = Vec::new();
    for name in &names {
        let sprite = match &png_dir {
            Some(d) => {
                Sprite::from_png(&std::fs::read(d.join(format!("{name}.png")))?, true, None)?
            }
            None => Sprite::load(name)?,
        };
        let want = expected(name);
        let mut min_score = f32::INFINITY;
        let (mut sum, mut ok) = (0.0f32, 0usize);
        for &bw in &widths {
            let bh = bw * f64::from(sprite.height_px) / f64::from(sprite.width_px);
            // Bottom-centre on the demo road's near lanes, below the image centre.
            let (cu, bottom) = (f64::from(w) / 2.0, f64::from(h) * 0.66);
            let rect = [cu - bw / 2.0, bottom - bh, cu + bw / 2.0, bottom];
            let mut cells = Vec::new();
            let mut row_min = f32::INFINITY;
            for mirror in [false, true] {
                let mut frame = background.clone();
                sprite.draw(&mut frame, w, h, rect[0], rect[1], bw, bh, mirror);
                let img = image::RgbImage::from_raw(w, h, frame).ok_or("frame size")?;
                if let Some(d) = &dump {
                    let side = if mirror { "l" } else { "r" };
                    img.save(d.join(format!("{name}_{bw:.0}_{side}.png")))?;
                }
                let (dets, _) = det.detect(&Frame::from_rgb_image("s".into(), 0, 0, &img))?;
                let truth = BBox {
                    x1: rect[0] as f32,
                    y1: rect[1] as f32,
                    x2: rect[2] as f32,
                    y2: rect[3] as f32,
                };
                if verbose {
                    for d in dets.iter().filter(|d| d.bbox.iou(&truth) > 0.1) {
                        eprintln!(
                            "{name} {bw:.0} mirror {mirror}: {} {:.2} iou {:.2} {:?} (drawn {truth:?})",
                            d.class,
                            d.score,
                            d.bbox.iou(&truth),
                            d.bbox
                        );
                    }
                }
                let score = |class: &str| {
                    dets.iter()
                        .filter(|d| d.class == class && d.bbox.iou(&truth) >= 0.5)
                        .map(|d| d.score)
                        .fold(0.0f32, f32::max)
                };
                let [car, bus, truck] = ["car", "bus", "truck"].map(score);
                let wanted = want.iter().map(|c| score(c)).fold(0.0f32, f32::max);
                let other = ["car", "bus", "truck"]
                    .into_iter()
                    .filter(|c| !want.contains(c))
                    .map(score)
                    .fold(0.0f32, f32::max);
                // Facing right is the sprite as rendered, left its mirror image.
                let facing = if sprite.faces_right == mirror {
                    "left"
                } else {
                    "right"
                };
                cells.push((facing, format!("{car:.2} / {bus:.2} / {truck:.2}")));
                // Another class scoring higher is a miss.
                row_min = row_min.min(if wanted > other { wanted } else { 0.0 });
            }
            cells.sort_by_key(|c| if c.0 == "right" { 0 } else { 1 });
            min_score = min_score.min(row_min);
            sum += row_min;
            ok += usize::from(row_min >= 0.35);
            let verdict = if row_min >= 0.35 { "ok" } else { "weak" };
            println!(
                "| {name} | {} | {bw:.0} | {} | {} | {verdict} |",
                want.join("/"),
                cells[0].1,
                cells[1].1
            );
        }
        worst.push((name.clone(), min_score, sum / widths.len() as f32, ok));
    }
    println!();
    for (name, min, mean, ok) in worst {
        println!(
            "{name}: own class over both facings, per size: lowest {min:.2}, mean {mean:.2}, >= 0.35 at {ok} of {} sizes",
            widths.len()
        );
    }
    Ok(())
}
