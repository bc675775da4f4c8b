//! The calibration check behind `speedcamd calibrate`: per-point residuals and outlier flags.
//!
//! # Outlier rule (leave-one-out)
//! A point's residual in the full fit understates a survey mistake: the least-squares fit bends
//! towards the bad point and spreads its error over the others. So each point is also judged by a
//! fit it took no part in: the homography is refitted without point `i` (by normalised DLT alone,
//! on which the thresholds below were set, not by the refined fit of [`Homography::fit`]), the point's ground
//! position is mapped into the image with that fit, and its distance from the surveyed image
//! point is the point's *leave-one-out error* (px). Point `i` is an outlier when
//!
//! `loo_error_px > OUTLIER_RMS_FACTOR x (RMS px of the other points in that refit)` **and**
//! `loo_error_px > OUTLIER_MIN_PX`.
//!
//! The pixel floor keeps an exact survey (RMS ~ 0) from flagging sub-pixel clicking noise. The
//! check needs at least `MIN_POINTS_FOR_OUTLIERS` points: with 5, every refit has 4 points and
//! fits them exactly, so one bad point makes every other point's prediction bad too and nothing can
//! be singled out. Two bad points close together can still hide each other; fix the flagged one
//! and run the check again.

pub mod overlay;

use super::{CalibrationError, Homography};
use serde::Serialize;

/// A leave-one-out error above this multiple of the other points' RMS can flag an outlier.
pub(crate) const OUTLIER_RMS_FACTOR: f64 = 3.0;
/// ... and it must also exceed this many pixels, px.
pub(crate) const OUTLIER_MIN_PX: f64 = 1.0;
/// Fewest calibration points for which outliers are looked for.
pub(crate) const MIN_POINTS_FOR_OUTLIERS: usize = 6;

/// One calibration point's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointCheck {
    /// 0-based index in the config lists.
    pub index: usize,
    /// Surveyed image point, px.
    pub image_px: [f64; 2],
    /// Surveyed ground point, m.
    pub world_m: [f64; 2],
    /// The ground point mapped into the image by the full fit, px (None behind the camera).
    pub reprojected_px: Option<[f64; 2]>,
    /// Distance between `image_px` and `reprojected_px` in the full fit, px.
    pub residual_px: f64,
    /// Distance between `world_m` and the image point mapped onto the ground by the full fit, m.
    pub residual_m: f64,
    /// Reprojection error of this point under a fit made without it, px (None below
    /// 5 points or when the other points cannot be fitted).
    pub loo_error_px: Option<f64>,
    /// RMS reprojection error of the other points in that refit, px.
    pub loo_others_rms_px: Option<f64>,
    /// Whether the leave-one-out rule flags this point (see the module docs).
    pub outlier: bool,
}

/// The whole calibration check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationCheck {
    /// Image px -> ground m matrix, row-major (unit Frobenius norm).
    pub homography: [[f64; 3]; 3],
    /// RMS reprojection error in the image, px.
    pub rms_px: f64,
    /// RMS reprojection error on the ground, m.
    pub rms_m: f64,
    /// Per-point figures, in config order.
    pub points: Vec<PointCheck>,
    /// Whether outliers were looked for (at least `MIN_POINTS_FOR_OUTLIERS` points).
    pub outliers_checked: bool,
}

impl CalibrationCheck {
    /// Indices of the flagged points.
    pub fn outliers(&self) -> Vec<usize> {
        self.points
            .iter()
            .filter(|p| p.outlier)
            .map(|p| p.index)
            .collect()
    }
}

impl CalibrationCheck {
    /// The human-readable report: the matrix, the RMS errors, one table row per point (index,
    /// image px, ground m, residuals px and m, leave-one-out error px, OUTLIER flag) and the
    /// outlier verdict with its rule.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "homography (image px -> ground m, unit Frobenius norm):");
        for row in &self.homography {
            let _ = writeln!(s, "  [ {:+.9e}  {:+.9e}  {:+.9e} ]", row[0], row[1], row[2]);
        }
        let _ = writeln!(
            s,
            "RMS reprojection error: {:.3} px in the image, {:.4} m on the ground ({} points)",
            self.rms_px,
            self.rms_m,
            self.points.len()
        );
        let _ = writeln!(
            s,
            "  {:>3}  {:>9} {:>9}  {:>9} {:>9}  {:>8} {:>8}  {:>8}",
            "#", "image x", "image y", "ground x", "ground y", "resid px", "resid m", "LOO px"
        );
        for p in &self.points {
            let loo = p
                .loo_error_px
                .map(|v| format!("{v:8.2}"))
                .unwrap_or_else(|| format!("{:>8}", "-"));
            let _ = writeln!(
                s,
                "  {:>3}  {:9.1} {:9.1}  {:9.3} {:9.3}  {:8.2} {:8.4}  {loo}{}",
                p.index,
                p.image_px[0],
                p.image_px[1],
                p.world_m[0],
                p.world_m[1],
                p.residual_px,
                p.residual_m,
                if p.outlier { "  OUTLIER" } else { "" }
            );
        }
        let outliers = self.outliers();
        if !self.outliers_checked {
            let _ = writeln!(
                s,
                "outliers: not checked (needs {MIN_POINTS_FOR_OUTLIERS} or more points, have {})",
                self.points.len()
            );
        } else if outliers.is_empty() {
            let _ = writeln!(s, "outliers: none");
        } else {
            let list: Vec<String> = outliers.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                s,
                "outliers: point(s) {}: check their pixel and ground coordinates, fix or remove them, run again",
                list.join(", ")
            );
        }
        let _ = writeln!(s, "  ({}; LOO px = that error)", outlier_rule());
        s
    }
}

/// A one-line statement of the outlier rule, for reports.
pub(crate) fn outlier_rule() -> String {
    format!(
        "a point is an OUTLIER when a fit made without it misplaces it by more than \
         {OUTLIER_RMS_FACTOR} x the RMS of the other points and more than {OUTLIER_MIN_PX} px \
         (checked with {MIN_POINTS_FOR_OUTLIERS} or more points)"
    )
}

/// Fits the calibration and computes residuals, leave-one-out errors and outlier flags.
pub fn check_calibration(
    image_px: &[[f64; 2]],
    world_m: &[[f64; 2]],
) -> Result<(Homography, CalibrationCheck), CalibrationError> {
    let (h, report) = Homography::fit(image_px, world_m)?;
    let n = image_px.len();
    let outliers_checked = n >= MIN_POINTS_FOR_OUTLIERS;
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let (loo_error_px, loo_others_rms_px) = if n >= 5 {
            leave_one_out(image_px, world_m, i)
        } else {
            (None, None)
        };
        let outlier = outliers_checked
            && match (loo_error_px, loo_others_rms_px) {
                (Some(e), Some(rms)) => e > OUTLIER_RMS_FACTOR * rms && e > OUTLIER_MIN_PX,
                _ => false,
            };
        points.push(PointCheck {
            index: i,
            image_px: image_px[i],
            world_m: world_m[i],
            reprojected_px: h.world_to_image(world_m[i]),
            residual_px: report.residuals_px[i],
            residual_m: report.residuals_m[i],
            loo_error_px,
            loo_others_rms_px,
            outlier,
        });
    }
    let check = CalibrationCheck {
        homography: h.matrix(),
        rms_px: report.rms_px,
        rms_m: report.rms_m,
        points,
        outliers_checked,
    };
    Ok((h, check))
}

/// Refits without point `i`: (its reprojection error, the others' RMS), both px.
fn leave_one_out(
    image_px: &[[f64; 2]],
    world_m: &[[f64; 2]],
    i: usize,
) -> (Option<f64>, Option<f64>) {
    let without = |pts: &[[f64; 2]]| -> Vec<[f64; 2]> {
        pts.iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| *p)
            .collect()
    };
    let Ok((h, report)) = Homography::fit_dlt(&without(image_px), &without(world_m)) else {
        return (None, None);
    };
    let err = h.world_to_image(world_m[i]).map(|p| {
        let (dx, dy) = (p[0] - image_px[i][0], p[1] - image_px[i][1]);
        dx.hypot(dy)
    });
    (err, Some(report.rms_px))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::test_camera::Camera;

    /// A 4 x 3 grid of ground points seen by the test camera, with +-0.3 px of clicking noise.
    fn survey() -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
        let cam = Camera::default();
        let noise = [
            0.3, -0.2, 0.1, -0.3, 0.2, 0.0, -0.1, 0.25, -0.25, 0.15, -0.05, 0.3,
        ];
        let mut world = Vec::new();
        for x in [10.0, 20.0, 30.0, 40.0] {
            for y in [-3.5, 0.0, 3.5] {
                world.push([x, y]);
            }
        }
        let image = world
            .iter()
            .zip(noise)
            .map(|(&w, e)| {
                let p = cam.project(w).expect("in view");
                [p[0] + e, p[1] - e]
            })
            .collect();
        (image, world)
    }

    #[test]
    fn clean_points_are_not_flagged() {
        let (image, world) = survey();
        let (_, check) = check_calibration(&image, &world).unwrap();
        assert!(check.outliers_checked);
        assert!(check.outliers().is_empty(), "{check:#?}");
        assert!(check.rms_px < 0.5, "{}", check.rms_px);
        let text = check.to_text();
        assert!(text.contains("outliers: none"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("[ ")).count(),
            3,
            "{text}"
        );
        for p in &check.points {
            let loo = p.loo_error_px.expect("refit without a point of 12");
            assert!(loo < 2.0, "point {}: {loo}", p.index);
            assert!(p.reprojected_px.is_some());
        }
    }

    #[test]
    fn a_point_moved_by_20_px_is_flagged_alone() {
        let (mut image, world) = survey();
        image[7][0] += 20.0;
        let (_, check) = check_calibration(&image, &world).unwrap();
        assert_eq!(check.outliers(), [7], "{check:#?}");
        let p = &check.points[7];
        assert!(p.loo_error_px.unwrap() > 15.0, "{p:?}");
        assert!(p.residual_px > 5.0, "{p:?}");
        assert!(outlier_rule().contains("3 x the RMS"));
        let text = check.to_text();
        assert!(text.contains("outliers: point(s) 7:"), "{text}");
        let row7: Vec<&str> = text.lines().filter(|l| l.ends_with("OUTLIER")).collect();
        assert_eq!(row7.len(), 1, "{text}");
        assert!(row7[0].trim_start().starts_with("7 "), "{text}");
    }

    #[test]
    fn too_few_points_are_not_judged() {
        let (image, world) = survey();
        // Five points, no three on a line even with one left out.
        let pick = |v: &[[f64; 2]]| [0, 2, 3, 5, 7].map(|i| v[i]);
        let (_, check) = check_calibration(&pick(&image), &pick(&world)).unwrap();
        assert!(!check.outliers_checked);
        assert!(check.outliers().is_empty());
        assert!(check.points.iter().all(|p| p.loo_error_px.is_some()));
        let four = |v: &[[f64; 2]]| [0, 2, 3, 5].map(|i| v[i]);
        let (_, check) = check_calibration(&four(&image), &four(&world)).unwrap();
        assert!(check.points.iter().all(|p| p.loo_error_px.is_none()));
        assert!(check.rms_px < 1e-6);
    }

    #[test]
    fn fit_errors_pass_through() {
        let (image, world) = survey();
        let err = check_calibration(&image[..3], &world[..3]).unwrap_err();
        assert_eq!(err, CalibrationError::TooFewPoints { got: 3 });
    }
}
