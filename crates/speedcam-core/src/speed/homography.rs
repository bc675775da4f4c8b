//! Image-to-ground homography from surveyed point pairs (normalised DLT).
//!
//! The road is treated as a plane, so a 3x3 homography maps image pixels to ground metres. It is
//! fitted by the direct linear transform on Hartley-normalised points (centroid at the origin,
//! mean distance sqrt 2): without normalisation the DLT system mixes pixel coordinates in the
//! thousands with ones and its least-squares solution is badly conditioned. With more than four
//! pairs the fit is a least-squares one, and the residuals tell the installer how good the survey
//! is (the calibration report).
//!
//! Sign convention: `H` is scaled so that the homogeneous weight `w` of every calibration point is
//! positive. Image points with `w <= 0` lie at or beyond the horizon of the ground plane and map to
//! no ground point.

use nalgebra::{DMatrix, Matrix3, Vector3};

/// Relative size below which a singular value, a weight or an area counts as zero.
const REL_EPS: f64 = 1e-10;
/// Sine of the angle below which three points count as collinear.
const COLLINEAR_SIN: f64 = 1e-6;

/// A plane-to-plane map from image pixels to ground metres (and back).
#[derive(Debug, Clone, PartialEq)]
pub struct Homography {
    /// Image px -> ground m, scaled to unit Frobenius norm with positive weights in view.
    h: Matrix3<f64>,
    /// Ground m -> image px.
    h_inv: Matrix3<f64>,
}

/// How well the fitted homography reproduces the calibration points.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// RMS distance between each image point and its ground point mapped into the image, px.
    pub rms_px: f64,
    /// RMS distance between each ground point and its image point mapped onto the ground, m.
    pub rms_m: f64,
    /// Per-point image residuals, px, in input order.
    pub residuals_px: Vec<f64>,
    /// Per-point ground residuals, m, in input order.
    pub residuals_m: Vec<f64>,
}

/// Why a calibration could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// Fewer than four pairs.
    #[error("calibration needs at least 4 point pairs, got {got}: survey at least 4 ground points, no 3 of them on one line")]
    TooFewPoints {
        /// Pairs given.
        got: usize,
    },
    /// The two point lists differ in length.
    #[error("calibration has {image} image points but {world} ground points: give exactly one ground point (m) per image point (px)")]
    CountMismatch {
        /// Image points given.
        image: usize,
        /// Ground points given.
        world: usize,
    },
    /// Two pairs share an image or a ground point.
    #[error("calibration points {index_a} and {index_b} coincide (in the image or on the ground): each pair must be a distinct point")]
    Duplicate {
        /// First of the two (0-based).
        index_a: usize,
        /// Second of the two (0-based).
        index_b: usize,
    },
    /// The points lie on one line (or, with exactly 4, three of them do).
    #[error("calibration points are collinear (all on one line, or 3 of only 4): spread the points over the road surface, e.g. the corners of a lane section")]
    Collinear,
    /// The system has no unique, invertible solution, or a value is not finite.
    #[error("calibration is degenerate: {0}; check that image and ground points are listed in the same order and are finite")]
    Degenerate(String),
}

impl Homography {
    /// Fits the homography by normalised DLT (Hartley normalisation, SVD) from >= 4 point pairs;
    /// with more than 4, the DLT solution is refined to the least-squares fit of the image
    /// reprojection error (the maximum-likelihood fit for survey noise in the image, which the
    /// calibration's uncertainty model assumes; see `refine_reprojection`).
    pub fn fit(
        image_px: &[[f64; 2]],
        world_m: &[[f64; 2]],
    ) -> Result<(Homography, CalibrationReport), CalibrationError> {
        Self::fit_with(image_px, world_m, true)
    }

    /// The normalised DLT fit alone, without the reprojection refinement of [`Homography::fit`]:
    /// for the calibration check's leave-one-out refits, whose outlier thresholds were set on it.
    pub(crate) fn fit_dlt(
        image_px: &[[f64; 2]],
        world_m: &[[f64; 2]],
    ) -> Result<(Homography, CalibrationReport), CalibrationError> {
        Self::fit_with(image_px, world_m, false)
    }

    fn fit_with(
        image_px: &[[f64; 2]],
        world_m: &[[f64; 2]],
        refine: bool,
    ) -> Result<(Homography, CalibrationReport), CalibrationError> {
        validate(image_px, world_m)?;
        let (t_img, img_n) = normalise(image_px)?;
        let (t_world, world_n) = normalise(world_m)?;

        // Two rows per pair of  w' x H x = 0  for H mapping image -> world.
        let n = image_px.len();
        let rows = (2 * n).max(9); // pad with zero rows so the SVD yields all 9 right vectors
        let mut a = DMatrix::<f64>::zeros(rows, 9);
        for (i, (p, q)) in img_n.iter().zip(&world_n).enumerate() {
            let (x, y, u, v) = (p[0], p[1], q[0], q[1]);
            let r0 = [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u];
            let r1 = [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v];
            for k in 0..9 {
                a[(2 * i, k)] = r0[k];
                a[(2 * i + 1, k)] = r1[k];
            }
        }
        let svd = a.svd(false, true);
        let v_t = svd
            .v_t
            .ok_or_else(|| CalibrationError::Degenerate("SVD did not converge".into()))?;
        let sv = &svd.singular_values;
        let mut order: Vec<usize> = (0..sv.len()).collect();
        order.sort_by(|&i, &j| sv[i].total_cmp(&sv[j]));
        let (smallest, second) = (order[0], order[1]);
        if sv[second] <= REL_EPS * sv.max() {
            return Err(CalibrationError::Degenerate(
                "the points do not determine a unique homography".into(),
            ));
        }
        let hv = v_t.row(smallest);
        let mut hn = Matrix3::new(
            hv[0], hv[1], hv[2], hv[3], hv[4], hv[5], hv[6], hv[7], hv[8],
        );
        if refine && n > 4 {
            if let Some(refined) = refine_reprojection(&hn, &img_n, &world_n) {
                hn = refined;
            }
        }
        let t_world_inv = t_world
            .try_inverse()
            .ok_or_else(|| CalibrationError::Degenerate("ground points have no extent".into()))?;
        let h = t_world_inv * hn * t_img;
        let homography = Self::from_matrix_in_view(h, image_px)?;
        let report = homography.report(image_px, world_m)?;
        Ok((homography, report))
    }

    /// Builds from an image->ground matrix, fixing scale and sign so that `in_view` points (known
    /// to be on the visible ground) have positive weight.
    fn from_matrix_in_view(
        h: Matrix3<f64>,
        in_view: &[[f64; 2]],
    ) -> Result<Homography, CalibrationError> {
        let norm = h.norm();
        if !norm.is_finite() || norm == 0.0 {
            return Err(CalibrationError::Degenerate(
                "zero or non-finite matrix".into(),
            ));
        }
        let mut h = h / norm;
        let weights: Vec<f64> = in_view
            .iter()
            .map(|p| h[(2, 0)] * p[0] + h[(2, 1)] * p[1] + h[(2, 2)])
            .collect();
        if weights.iter().all(|&w| w < 0.0) {
            h = -h;
        } else if !weights.iter().all(|&w| w > 0.0) {
            return Err(CalibrationError::Degenerate(
                "the image points straddle the horizon of the fitted ground plane".into(),
            ));
        }
        let h_inv = h
            .try_inverse()
            .filter(|m| m.iter().all(|v| v.is_finite()))
            .ok_or_else(|| CalibrationError::Degenerate("the fitted matrix is singular".into()))?;
        let cond = h.norm() * h_inv.norm();
        if !cond.is_finite() || cond >= 1.0 / REL_EPS {
            return Err(CalibrationError::Degenerate(
                "the fitted matrix is nearly singular".into(),
            ));
        }
        Ok(Homography { h, h_inv })
    }

    /// Builds from a known image->ground matrix (e.g. stored calibration). `in_view` are image
    /// points known to be on the visible ground (at least one), used to fix the sign.
    #[cfg(test)]
    fn from_matrix(
        image_to_world: [[f64; 3]; 3],
        in_view: &[[f64; 2]],
    ) -> Result<Homography, CalibrationError> {
        if in_view.is_empty() {
            return Err(CalibrationError::TooFewPoints { got: 0 });
        }
        let m = Matrix3::from_fn(|r, c| image_to_world[r][c]);
        Self::from_matrix_in_view(m, in_view)
    }

    /// The image->ground matrix (unit Frobenius norm, positive weights in view).
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        let h = &self.h;
        [0, 1, 2].map(|r| [h[(r, 0)], h[(r, 1)], h[(r, 2)]])
    }

    /// The ground->image matrix: the inverse of [`Homography::matrix`].
    pub fn inverse_matrix(&self) -> [[f64; 3]; 3] {
        let h = &self.h_inv;
        [0, 1, 2].map(|r| [h[(r, 0)], h[(r, 1)], h[(r, 2)]])
    }

    /// Maps an image point (px) to the ground (m); None at or above the horizon.
    pub fn image_to_world(&self, p_px: [f64; 2]) -> Option<[f64; 2]> {
        apply(&self.h, p_px)
    }

    /// Maps a ground point (m) into the image (px); None behind the camera.
    pub fn world_to_image(&self, p_m: [f64; 2]) -> Option<[f64; 2]> {
        apply(&self.h_inv, p_m)
    }

    /// A short stable hex id of this calibration (16 hex digits), stored with every event so a
    /// measurement can be traced to the calibration that produced it. Equal matrices (to 9
    /// significant digits) give equal ids on every platform and Rust version.
    pub fn fingerprint(&self) -> String {
        // FNV-1a 64 over a canonical text form: std's hasher is not stable across releases.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for r in 0..3 {
            for c in 0..3 {
                let v = self.h[(r, c)];
                let v = if v == 0.0 { 0.0 } else { v }; // -0.0 and 0.0 alike
                for b in format!("{v:.8e};").bytes() {
                    hash ^= b as u64;
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        format!("{hash:016x}")
    }

    /// Reprojection residuals of the calibration points in both directions.
    fn report(
        &self,
        image_px: &[[f64; 2]],
        world_m: &[[f64; 2]],
    ) -> Result<CalibrationReport, CalibrationError> {
        let mut residuals_px = Vec::with_capacity(image_px.len());
        let mut residuals_m = Vec::with_capacity(image_px.len());
        for (p, q) in image_px.iter().zip(world_m) {
            let q_fit = self.image_to_world(*p);
            let p_fit = self.world_to_image(*q);
            let (Some(q_fit), Some(p_fit)) = (q_fit, p_fit) else {
                return Err(CalibrationError::Degenerate(
                    "a calibration point maps beyond the horizon".into(),
                ));
            };
            residuals_m.push(dist(q_fit, *q));
            residuals_px.push(dist(p_fit, *p));
        }
        let rms = |r: &[f64]| (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64).sqrt();
        Ok(CalibrationReport {
            rms_px: rms(&residuals_px),
            rms_m: rms(&residuals_m),
            residuals_px,
            residuals_m,
        })
    }
}

/// Applies a homography; None when the weight is not positive (beyond the horizon) or the result
/// is not finite.
fn apply(m: &Matrix3<f64>, p: [f64; 2]) -> Option<[f64; 2]> {
    let v = m * Vector3::new(p[0], p[1], 1.0);
    let scale = m[(2, 0)].abs() * p[0].abs() + m[(2, 1)].abs() * p[1].abs() + m[(2, 2)].abs();
    if v[2].is_nan() || v[2] <= REL_EPS * scale {
        return None;
    }
    let out = [v[0] / v[2], v[1] / v[2]];
    out.iter().all(|c| c.is_finite()).then_some(out)
}

/// Maximum-likelihood refinement of a DLT fit (the "gold standard" of Hartley & Zisserman) for
/// survey noise in the image: Levenberg-Marquardt on the ground -> image map, minimising the
/// image distance between each surveyed pixel and its ground point's projection. The algebraic
/// error DLT minimises weighs the points by their projective depth, so with a strongly slanted
/// view of the road it trusts the far points too much; the reprojection error weighs every
/// surveyed pixel alike, as its noise does. `hn` maps normalised image points `img` to normalised
/// ground points `world`; returns the refined map of the same kind, or None when the refinement
/// fails (the DLT result then stands).
fn refine_reprojection(
    hn: &Matrix3<f64>,
    img: &[[f64; 2]],
    world: &[[f64; 2]],
) -> Option<Matrix3<f64>> {
    let g0 = hn.try_inverse()?;
    let mut g = g0 / g0.norm();
    // Residuals (2 per point) and their Jacobian with respect to the 9 entries of `g`.
    let eval = |g: &Matrix3<f64>, jac: Option<&mut nalgebra::DMatrix<f64>>| -> Option<Vec<f64>> {
        let mut r = Vec::with_capacity(2 * img.len());
        let mut jrows = Vec::new();
        for (p, w) in img.iter().zip(world) {
            let wt = Vector3::new(w[0], w[1], 1.0);
            let q = g * wt;
            if q[2].is_nan() || q[2].abs() <= 1e-12 {
                return None;
            }
            let (u, v) = (q[0] / q[2], q[1] / q[2]);
            r.push(p[0] - u);
            r.push(p[1] - v);
            let mut ju = [0.0; 9];
            let mut jv = [0.0; 9];
            for k in 0..3 {
                ju[k] = wt[k] / q[2];
                ju[6 + k] = -u * wt[k] / q[2];
                jv[3 + k] = wt[k] / q[2];
                jv[6 + k] = -v * wt[k] / q[2];
            }
            jrows.push(ju);
            jrows.push(jv);
        }
        if let Some(j) = jac {
            *j = nalgebra::DMatrix::from_fn(jrows.len(), 9, |i, k| jrows[i][k]);
        }
        r.iter().all(|v| v.is_finite()).then_some(r)
    };
    let cost = |r: &[f64]| r.iter().map(|v| v * v).sum::<f64>();
    let mut jac = nalgebra::DMatrix::zeros(0, 9);
    let mut r = eval(&g, Some(&mut jac))?;
    let mut c = cost(&r);
    let mut lambda = 1e-3;
    for _ in 0..30 {
        let jt = jac.transpose();
        let jtj = &jt * &jac;
        let jtr = &jt * nalgebra::DVector::from_vec(r.clone());
        let mut improved = false;
        for _ in 0..10 {
            let mut a = jtj.clone();
            for k in 0..9 {
                a[(k, k)] += lambda * (jtj[(k, k)] + 1e-12);
            }
            let Some(step) = a.lu().solve(&jtr) else {
                lambda *= 10.0;
                continue;
            };
            let cand = g + Matrix3::from_iterator(step.iter().copied()).transpose();
            let cand = cand / cand.norm();
            if let Some(rc) = eval(&cand, None) {
                let cc = cost(&rc);
                if cc < c {
                    let rel = (c - cc) / c.max(1e-300);
                    g = cand;
                    r = eval(&g, Some(&mut jac))?;
                    c = cc;
                    lambda = (lambda * 0.1).max(1e-12);
                    improved = rel > 1e-12;
                    break;
                }
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    g.try_inverse()
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Checks counts, finiteness, duplicates and collinearity, with errors that say what to fix.
fn validate(image_px: &[[f64; 2]], world_m: &[[f64; 2]]) -> Result<(), CalibrationError> {
    if image_px.len() != world_m.len() {
        return Err(CalibrationError::CountMismatch {
            image: image_px.len(),
            world: world_m.len(),
        });
    }
    if image_px.len() < 4 {
        return Err(CalibrationError::TooFewPoints {
            got: image_px.len(),
        });
    }
    if image_px
        .iter()
        .chain(world_m)
        .flatten()
        .any(|v| !v.is_finite())
    {
        return Err(CalibrationError::Degenerate(
            "a coordinate is not finite".into(),
        ));
    }
    for pts in [image_px, world_m] {
        let extent = bbox_diag(pts);
        for i in 0..pts.len() {
            for j in i + 1..pts.len() {
                if dist(pts[i], pts[j]) <= REL_EPS * extent.max(1.0) {
                    return Err(CalibrationError::Duplicate {
                        index_a: i,
                        index_b: j,
                    });
                }
            }
        }
        if all_collinear(pts) || (pts.len() == 4 && any_three_collinear(pts)) {
            return Err(CalibrationError::Collinear);
        }
    }
    Ok(())
}

fn bbox_diag(pts: &[[f64; 2]]) -> f64 {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in pts {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    dist(lo, hi)
}

/// Sine of the angle at `a` between `b` and `c` (0 when collinear).
fn sin_at(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    let (u, v) = ([b[0] - a[0], b[1] - a[1]], [c[0] - a[0], c[1] - a[1]]);
    let cross = u[0] * v[1] - u[1] * v[0];
    let norms = (u[0].hypot(u[1])) * (v[0].hypot(v[1]));
    if norms == 0.0 {
        0.0
    } else {
        (cross / norms).abs()
    }
}

fn any_three_collinear(pts: &[[f64; 2]]) -> bool {
    let n = pts.len();
    (0..n).any(|i| {
        (i + 1..n).any(|j| (j + 1..n).any(|k| sin_at(pts[i], pts[j], pts[k]) < COLLINEAR_SIN))
    })
}

/// All points on one line: the second principal moment vanishes relative to the first.
fn all_collinear(pts: &[[f64; 2]]) -> bool {
    let n = pts.len() as f64;
    let c = pts
        .iter()
        .fold([0.0, 0.0], |acc, p| [acc[0] + p[0] / n, acc[1] + p[1] / n]);
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in pts {
        let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    let tr = sxx + syy;
    let det = sxx * syy - sxy * sxy;
    // Smallest eigenvalue / largest ~ det / tr^2 for a near-degenerate spread.
    tr == 0.0 || det <= COLLINEAR_SIN * COLLINEAR_SIN * tr * tr
}

/// Hartley normalisation: returns T and the transformed points (centroid 0, mean distance sqrt 2).
fn normalise(pts: &[[f64; 2]]) -> Result<(Matrix3<f64>, Vec<[f64; 2]>), CalibrationError> {
    let n = pts.len() as f64;
    let c = pts
        .iter()
        .fold([0.0, 0.0], |acc, p| [acc[0] + p[0] / n, acc[1] + p[1] / n]);
    let mean_dist = pts.iter().map(|p| dist(*p, c)).sum::<f64>() / n;
    if !mean_dist.is_finite() || mean_dist <= 0.0 {
        return Err(CalibrationError::Degenerate(
            "the points have no extent".into(),
        ));
    }
    let s = std::f64::consts::SQRT_2 / mean_dist;
    let t = Matrix3::new(s, 0.0, -s * c[0], 0.0, s, -s * c[1], 0.0, 0.0, 1.0);
    let out = pts
        .iter()
        .map(|p| [s * (p[0] - c[0]), s * (p[1] - c[1])])
        .collect();
    Ok((t, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::test_camera::Camera;
    use proptest::prelude::*;

    fn survey(cam: &Camera) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
        let world = vec![[10.0, -3.5], [10.0, 3.5], [40.0, 3.5], [40.0, -3.5]];
        let image = world.iter().map(|&w| cam.project(w).unwrap()).collect();
        (image, world)
    }

    #[test]
    fn four_points_fit_exactly() {
        let cam = Camera::default();
        let (image, world) = survey(&cam);
        let (h, report) = Homography::fit(&image, &world).unwrap();
        assert!(report.rms_px < 1e-9, "{report:?}");
        assert!(report.rms_m < 1e-9, "{report:?}");
        assert_eq!(report.residuals_px.len(), 4);
        // Points that were not in the survey map correctly too.
        for w in [[25.0, 0.0], [15.0, -1.0], [60.0, 2.0]] {
            let p = cam.project(w).unwrap();
            let back = h.image_to_world(p).unwrap();
            assert!(dist(back, w) < 1e-8 * 60.0, "{w:?} -> {back:?}");
        }
    }

    #[test]
    fn least_squares_with_noise_reports_residuals() {
        let cam = Camera::default();
        let mut world = Vec::new();
        for x in [10.0, 20.0, 30.0, 40.0] {
            for y in [-3.5, 0.0, 3.5] {
                world.push([x, y]);
            }
        }
        let noise = [
            0.4, -0.3, 0.2, 0.5, -0.5, 0.1, -0.2, 0.3, -0.4, 0.0, 0.25, -0.15,
        ];
        let image: Vec<[f64; 2]> = world
            .iter()
            .zip(noise)
            .map(|(&w, e)| {
                let p = cam.project(w).unwrap();
                [p[0] + e, p[1] - e]
            })
            .collect();
        let (h, report) = Homography::fit(&image, &world).unwrap();
        assert!(report.rms_px > 0.01 && report.rms_px < 1.0, "{report:?}");
        assert!(report.rms_m > 0.0 && report.rms_m < 0.5, "{report:?}");
        let p = cam.project([25.0, 0.0]).unwrap();
        assert!(dist(h.image_to_world(p).unwrap(), [25.0, 0.0]) < 0.3);
    }

    #[test]
    fn errors_name_the_problem() {
        let cam = Camera::default();
        let (image, world) = survey(&cam);
        let err = Homography::fit(&image[..3], &world[..3]).unwrap_err();
        assert_eq!(err, CalibrationError::TooFewPoints { got: 3 });
        assert!(err.to_string().contains("at least 4"));

        let err = Homography::fit(&image, &world[..3]).unwrap_err();
        assert_eq!(err, CalibrationError::CountMismatch { image: 4, world: 3 });

        let mut dup = image.clone();
        dup.push(image[1]);
        let mut dup_w = world.clone();
        dup_w.push([70.0, 1.0]);
        let err = Homography::fit(&dup, &dup_w).unwrap_err();
        assert_eq!(
            err,
            CalibrationError::Duplicate {
                index_a: 1,
                index_b: 4
            }
        );
        assert!(err.to_string().contains("distinct"));

        let line_w = [
            [10.0, 0.0],
            [20.0, 0.0],
            [30.0, 0.0],
            [40.0, 0.0],
            [50.0, 0.0],
        ];
        let line_i: Vec<[f64; 2]> = line_w.iter().map(|&w| cam.project(w).unwrap()).collect();
        let err = Homography::fit(&line_i, &line_w).unwrap_err();
        assert_eq!(err, CalibrationError::Collinear);
        assert!(err.to_string().contains("spread the points"));

        let three_w = [[10.0, 0.0], [20.0, 0.0], [30.0, 0.0], [20.0, 3.0]];
        let three_i: Vec<[f64; 2]> = three_w.iter().map(|&w| cam.project(w).unwrap()).collect();
        let err = Homography::fit(&three_i, &three_w).unwrap_err();
        assert_eq!(err, CalibrationError::Collinear);

        let mut nan = image.clone();
        nan[0][1] = f64::NAN;
        assert!(matches!(
            Homography::fit(&nan, &world),
            Err(CalibrationError::Degenerate(_))
        ));
    }

    #[test]
    fn horizon_and_fingerprint() {
        let cam = Camera::default();
        let (image, world) = survey(&cam);
        let (h, _) = Homography::fit(&image, &world).unwrap();
        // Above the horizon (top of a camera pitched only slightly down) there is no ground.
        let sky = [cam.cx_px, cam.horizon_y_px() - 50.0];
        assert_eq!(h.image_to_world(sky), None);
        // Behind the camera there is no image point.
        assert_eq!(h.world_to_image([-20.0, 0.0]), None);

        let fp = h.fingerprint();
        assert_eq!(fp.len(), 16);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        let (h2, _) = Homography::fit(&image, &world).unwrap();
        assert_eq!(h2.fingerprint(), fp);
        let (image3, world3) = survey(&Camera {
            height_m: 7.0,
            ..Camera::default()
        });
        let (h3, _) = Homography::fit(&image3, &world3).unwrap();
        assert_ne!(h3.fingerprint(), fp);
        let rebuilt = Homography::from_matrix(h.matrix(), &image).unwrap();
        assert_eq!(rebuilt.fingerprint(), fp);
    }

    proptest! {
        /// Random well-conditioned cameras: image -> world -> image round trips to 1e-6 relative.
        #[test]
        fn round_trip(
            height_m in 3.0f64..15.0,
            pitch_deg in 8.0f64..40.0,
            yaw_deg in -30.0f64..30.0,
            roll_deg in -5.0f64..5.0,
            focal_px in 600.0f64..3000.0,
            pts in proptest::collection::vec((0.05f64..0.95, 0.05f64..0.95), 1..20),
        ) {
            let cam = Camera { height_m, pitch_deg, yaw_deg, roll_deg, focal_px, ..Camera::default() };
            // Survey: a ground rectangle that is in view of this camera.
            let world: Vec<[f64; 2]> = cam.visible_ground_quad();
            let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
            let (h, _) = Homography::fit(&image, &world).unwrap();
            let (w_px, h_px) = (cam.width_px(), cam.height_px());
            for (fx, fy) in pts {
                let p = [fx * w_px, cam.horizon_y_px().max(0.0) + 5.0 + fy * h_px];
                let Some(g) = h.image_to_world(p) else { continue };
                let back = h.world_to_image(g).unwrap();
                let scale = p[0].abs().max(p[1].abs()).max(1.0);
                prop_assert!(dist(back, p) <= 1e-6 * scale, "{p:?} -> {g:?} -> {back:?}");
            }
        }
    }
}
