//! `speedcamd calibrate`: checks a camera's calibration on a frame of it: the homography's
//! fit, per-point residuals and outliers, and an overlay image to judge it by eye.

use super::CameraArgs;
use crate::config;
use crate::service::pick_camera;
use crate::speed::calibrate::{check_calibration, overlay};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check a camera's calibration on a frame: homography, RMS error, per-point residuals and
/// outliers, and an overlay image with a 1 m / 5 m ground grid, the zone and the points.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config and the camera whose calibration is checked.
    #[command(flatten)]
    pub target: CameraArgs,
    /// A frame of that camera (JPEG or PNG), e.g. from `speedcamd snapshot`.
    #[arg(long)]
    pub image: PathBuf,
    /// Where to write the overlay (PNG, or JPEG when the name ends in .jpg/.jpeg).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Fits the calibration, writes the overlay and prints the report (text or JSON).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        target: CameraArgs { config, camera },
        image: image_path,
        out,
        json,
    } = args;
    let cfg = super::load(&config)?;
    let cam = pick_camera(&cfg, camera.as_deref())?;
    let mut img = image::open(&image_path)
        .with_context(|| {
            format!(
                "cannot read image {}: give a JPEG or PNG frame of camera {}, e.g. from `speedcamd snapshot --config {} --camera {} --out frame.jpg`",
                image_path.display(),
                cam.id,
                config.display(),
                cam.id
            )
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let mut warnings = Vec::new();
    match cam.image_size {
        Some((cw, ch)) if (cw, ch) != (w, h) => warnings.push(format!(
            "{} is {w}x{h} but camera {} has image_width x image_height = {cw}x{ch}: the calibration points are pixels of a {cw}x{ch} frame, so the overlay is misplaced; use a frame of the same stream (speedcamd snapshot) or fix the config",
            image_path.display(),
            cam.id
        )),
        Some(_) => {}
        None => warnings.extend(config::check_image_size(cam, w, h)),
    }
    let (homography, check) = check_calibration(&cam.image_points, &cam.world_points)
        .with_context(|| format!("fitting the calibration of camera {}", cam.id))?;
    let outliers: Vec<bool> = check.points.iter().map(|p| p.outlier).collect();
    overlay::draw_overlay(
        &mut img,
        &overlay::OverlayInput {
            homography: &homography,
            image_points_px: &cam.image_points,
            world_points_m: &cam.world_points,
            zone_px: &cam.zone_polygon,
            outliers: &outliers,
        },
    );
    img.save(&out).with_context(|| {
        format!(
            "writing the overlay {}: pass --out a .png (or .jpg) path in a writable directory",
            out.display()
        )
    })?;
    warnings.extend(config::geometry::zone_extrapolation_warning(cam));
    warnings.extend(config::geometry::calibration_warnings(cam));
    // Written in one go, ignoring a closed pipe (`| head`) like the other commands.
    let mut text = String::new();
    if json {
        let v = serde_json::json!({
            "camera": cam.id,
            "image": image_path.display().to_string(),
            "overlay": out.display().to_string(),
            "calibration": check,
            "zone_length_m": cam.zone_length_m(),
            "warnings": warnings,
        });
        text = format!("{v}\n");
    } else {
        text += &format!(
            "camera {}: {} calibration points, frame {} ({w}x{h})\n",
            cam.id,
            cam.image_points.len(),
            image_path.display()
        );
        text += &check.to_text();
        if let Some(l) = cam.zone_length_m() {
            text += &format!(
                "zone: {} vertices, {l:.1} m long on the ground\n",
                cam.zone_polygon.len()
            );
        }
        text += &format!(
            "overlay {}: ground grid every 1 m (grey), 5 m (yellow), axes x=0 and y=0 (orange); zone (cyan); surveyed points (green circles, red = outlier, numbered as above), ground points reprojected (magenta crosses), joined by white lines\n",
            out.display()
        );
        for w in &warnings {
            text += &format!("WARNING: {w}\n");
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}
