//! Where a vehicle stands, from its box: the footprint centre whose 3-D box projects to the
//! detected box.
//!
//! Why: the bottom centre of a detector's box is not a point on the vehicle. A real vehicle is a
//! solid, so its box's bottom edge is the row of its nearest lower corner and its centre column
//! is pulled towards the far side and the roof. Mapped through the ground homography, that point
//! lies off the vehicle's footprint centre, beside the near kerb for a bus, and the offset
//! changes along the road as the perspective changes: speeds read about 2% low, and a bus's
//! point can miss a zone drawn on the road altogether. The fix used here is a class-size prior
//! (not a per-detector offset, which cannot follow the perspective): the camera (focal length,
//! rotation, position) is recovered from the calibration's homography (principal point at the
//! image centre, square pixels), a cuboid of the class's typical size is placed on the road
//! along the vehicle's direction of travel, and its footprint centre is solved for so that its
//! projected box has the detected box's bottom row and centre column.
//!
//! Scenes whose vehicles are flat (the demo's and the standard benchmark's billboard sprites)
//! must use the box bottom directly (`ground_contact = "box_bottom"`).

/// Typical size of a vehicle class, m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VehicleSize {
    /// Along the direction of travel.
    pub length_m: f64,
    /// Across it.
    pub width_m: f64,
    /// Height above the road.
    pub height_m: f64,
}

/// The size prior of a COCO vehicle class name; a car's for other names. Trucks span pickups to
/// articulated lorries: the prior is a rigid lorry.
pub fn class_size(class: &str) -> VehicleSize {
    let (length_m, width_m, height_m) = match class {
        "bus" => (12.0, 2.55, 3.2),
        "truck" => (8.0, 2.5, 3.2),
        "motorcycle" => (2.1, 0.8, 1.4),
        "bicycle" => (1.8, 0.6, 1.6),
        _ => (4.5, 1.8, 1.5),
    };
    VehicleSize {
        length_m,
        width_m,
        height_m,
    }
}

/// A pinhole camera recovered from a ground homography: world `[x, y, z]` in metres with `z` up
/// from the road, to image px.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundCamera {
    f_px: f64,
    c_px: [f64; 2],
    /// Camera-frame images of the world axes x, y, z (z: up) and of the world origin.
    r: [[f64; 3]; 3],
    t: [f64; 3],
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

impl GroundCamera {
    /// Recovers the camera from `ground_to_image` (3x3, world ground m -> image px, any scale)
    /// for an image of `width_px` x `height_px` whose principal point is its centre. `in_view_m`
    /// is a ground point the camera sees (e.g. the zone's centre), which fixes the signs. None
    /// when the homography admits no such camera (e.g. a calibration for a non-pinhole image).
    pub fn from_homography(
        ground_to_image: [[f64; 3]; 3],
        width_px: f64,
        height_px: f64,
        in_view_m: [f64; 2],
    ) -> Option<Self> {
        let (cx, cy) = (0.5 * width_px, 0.5 * height_px);
        let g = |c: usize| {
            let (x, y, z) = (
                ground_to_image[0][c],
                ground_to_image[1][c],
                ground_to_image[2][c],
            );
            [x - cx * z, y - cy * z, z]
        };
        let (g1, g2, g3) = (g(0), g(1), g(2));
        // With w = 1/f²: r1·r2 = 0 and |r1| = |r2|, each linear in w (in units where the image
        // width is 1). Least squares, each equation divided by the size of its terms, so that
        // one that is nearly 0 = 0 (a camera looking straight along a world axis) weighs little.
        let s2 = width_px * width_px;
        let len2 = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1]) / s2 + v[2] * v[2];
        let rows = [
            (
                (g1[0] * g2[0] + g1[1] * g2[1]) / s2,
                g1[2] * g2[2],
                (len2(g1) * len2(g2)).sqrt(),
            ),
            (
                (g1[0] * g1[0] + g1[1] * g1[1] - g2[0] * g2[0] - g2[1] * g2[1]) / s2,
                g1[2] * g1[2] - g2[2] * g2[2],
                len2(g1) + len2(g2),
            ),
        ];
        let (mut aa, mut ab) = (0.0, 0.0);
        for (a, b, size) in rows {
            if size > 0.0 {
                aa += (a / size) * (a / size);
                ab += (a / size) * (b / size);
            }
        }
        let w_scaled = -ab / aa;
        if !(w_scaled.is_finite() && w_scaled > 0.0) {
            return None;
        }
        let f_px = width_px / w_scaled.sqrt();
        let k_inv = |v: [f64; 3]| [v[0] / f_px, v[1] / f_px, v[2]];
        let (k1, k2, k3) = (k_inv(g1), k_inv(g2), k_inv(g3));
        let mut lambda = 2.0 / (norm(k1) + norm(k2));
        // The point in view must be in front of the camera.
        let depth = k1[2] * in_view_m[0] + k2[2] * in_view_m[1] + k3[2];
        if depth < 0.0 {
            lambda = -lambda;
        }
        let scale = |v: [f64; 3]| v.map(|x| x * lambda);
        let (r1, r2, t) = (scale(k1), scale(k2), scale(k3));
        let mut r3 = cross(r1, r2);
        let n3 = norm(r3);
        if !(n3 > 0.0 && n3.is_finite()) {
            return None;
        }
        r3 = r3.map(|x| x / n3);
        // World z must point up, towards the camera: the camera centre C = -R^T t has z > 0.
        let c_z = -(r3[0] * t[0] + r3[1] * t[1] + r3[2] * t[2]);
        if c_z < 0.0 {
            r3 = r3.map(|x| -x);
        }
        Some(GroundCamera {
            f_px,
            c_px: [cx, cy],
            r: [r1, r2, r3],
            t,
        })
    }

    /// Focal length, px.
    pub fn focal_px(&self) -> f64 {
        self.f_px
    }

    /// Image of world point `p_m` (z up); None behind or too close to the camera.
    pub fn project(&self, p_m: [f64; 3]) -> Option<[f64; 2]> {
        let c: [f64; 3] = std::array::from_fn(|k| {
            self.r[0][k] * p_m[0] + self.r[1][k] * p_m[1] + self.r[2][k] * p_m[2] + self.t[k]
        });
        (c[2] > 0.1).then(|| {
            [
                self.f_px * c[0] / c[2] + self.c_px[0],
                self.f_px * c[1] / c[2] + self.c_px[1],
            ]
        })
    }

    /// The image box `[x1, y1, x2, y2]` of a cuboid of `size` standing with its footprint centre
    /// at `g_m`, its length along the unit ground vector `axis`; None when part of it is behind
    /// the camera.
    pub fn cuboid_box(&self, g_m: [f64; 2], axis: [f64; 2], size: VehicleSize) -> Option<[f64; 4]> {
        let (hl, hw) = (0.5 * size.length_m, 0.5 * size.width_m);
        let across = [-axis[1], axis[0]];
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for sl in [-hl, hl] {
            for sw in [-hw, hw] {
                for z in [0.0, size.height_m] {
                    let p = self.project([
                        g_m[0] + sl * axis[0] + sw * across[0],
                        g_m[1] + sl * axis[1] + sw * across[1],
                        z,
                    ])?;
                    b = [
                        b[0].min(p[0]),
                        b[1].min(p[1]),
                        b[2].max(p[0]),
                        b[3].max(p[1]),
                    ];
                }
            }
        }
        Some(b)
    }

    /// The footprint centre, m, of the cuboid of `size` along `axis` whose image box has the
    /// bottom row and centre column of `box_px` (`[x1, y1, x2, y2]`), starting from `start_m`
    /// (the box's bottom centre on the ground). None when the solve does not converge.
    pub fn footprint_centre(
        &self,
        box_px: [f64; 4],
        axis: [f64; 2],
        size: VehicleSize,
        start_m: [f64; 2],
    ) -> Option<[f64; 2]> {
        let target = [0.5 * (box_px[0] + box_px[2]), box_px[3]];
        let residual = |g: [f64; 2]| -> Option<[f64; 2]> {
            let b = self.cuboid_box(g, axis, size)?;
            Some([0.5 * (b[0] + b[2]) - target[0], b[3] - target[1]])
        };
        let mut g = start_m;
        for _ in 0..12 {
            let r = residual(g)?;
            if r[0].hypot(r[1]) < 1e-3 {
                return Some(g);
            }
            let h = 0.02;
            let rx = residual([g[0] + h, g[1]])?;
            let ry = residual([g[0], g[1] + h])?;
            let j = [
                [(rx[0] - r[0]) / h, (ry[0] - r[0]) / h],
                [(rx[1] - r[1]) / h, (ry[1] - r[1]) / h],
            ];
            let det = j[0][0] * j[1][1] - j[0][1] * j[1][0];
            if det.abs() < 1e-12 || !det.is_finite() {
                return None;
            }
            let dx = (j[1][1] * r[0] - j[0][1] * r[1]) / det;
            let dy = (-j[1][0] * r[0] + j[0][0] * r[1]) / det;
            // Damped: never more than 2 m per step.
            let step = dx.hypot(dy);
            let k = if step > 2.0 { 2.0 / step } else { 1.0 };
            g = [g[0] - k * dx, g[1] - k * dy];
        }
        let r = residual(g)?;
        (r[0].hypot(r[1]) < 0.05).then_some(g)
    }
}

/// Prior standard deviation of a vehicle's length, width and height around its class's typical
/// size, in log units: about ±30% in length and height (a "car" may be a small hatchback or a
/// van, a "truck" a pickup or a lorry), ±10% in width (lanes bound it).
const SIZE_PRIOR_LOG_SD: [f64; 3] = [0.3, 0.1, 0.3];
/// Relative standard deviation of a box's width and height against a cuboid's projection
/// (detector noise plus the vehicle not being a box), as a share of the box's height.
const BOX_SHAPE_REL_SD: f64 = 0.03;
/// Gauss-Newton rounds of the size fit.
const SIZE_FIT_ROUNDS: usize = 5;
/// Fewest boxes to fit a size from.
const SIZE_FIT_MIN_BOXES: usize = 4;

/// A vehicle's size fitted to its boxes over a passage, and how well the boxes determine it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FittedSize {
    /// The size.
    pub size: VehicleSize,
    /// Posterior standard deviation of log length, log width and log height.
    pub log_sd: [f64; 3],
}

/// Solves the 3x3 symmetric positive definite system `a x = b`; also returns `a`'s inverse.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<([f64; 3], [[f64; 3]; 3])> {
    let m = nalgebra::Matrix3::from_fn(|r, c| a[r][c]);
    let inv = m.try_inverse()?;
    let x = inv * nalgebra::Vector3::from_column_slice(&b);
    let inv = [0, 1, 2].map(|r| [inv[(r, 0)], inv[(r, 1)], inv[(r, 2)]]);
    x.iter()
        .all(|v| v.is_finite())
        .then_some(([x[0], x[1], x[2]], inv))
}

impl GroundCamera {
    /// Fits the size of the cuboid whose projections best match `boxes_px` (each
    /// `[x1, y1, x2, y2]`, its footprint solved from the box's bottom row and centre column
    /// starting at the matching `start_m`), travelling along `axis`, with the class size `prior`
    /// as a prior ([`SIZE_PRIOR_LOG_SD`]).
    ///
    /// Why: the footprint solve needs the vehicle's size, and the class gives only a typical
    /// one. COCO has no van (vans are boxed as cars), and a "truck" spans pickups to lorries: a
    /// van solved as a car stands about half a metre off, and that offset changes along the road
    /// with the perspective, so its speed reads biased. The box's width and height over a
    /// passage, seen from changing angles, say how big the vehicle is.
    pub fn fit_size(
        &self,
        boxes_px: &[[f64; 4]],
        start_m: &[[f64; 2]],
        axis: [f64; 2],
        prior: VehicleSize,
    ) -> Option<FittedSize> {
        if boxes_px.len() < SIZE_FIT_MIN_BOXES || boxes_px.len() != start_m.len() {
            return None;
        }
        let prior_log = [prior.length_m, prior.width_m, prior.height_m].map(f64::ln);
        let size_of = |p: [f64; 3]| VehicleSize {
            length_m: p[0].exp(),
            width_m: p[1].exp(),
            height_m: p[2].exp(),
        };
        // Residuals of box width and height, each in units of its standard deviation; None for
        // a box whose footprint does not solve.
        let residuals = |p: [f64; 3]| -> Vec<Option<[f64; 2]>> {
            let size = size_of(p);
            boxes_px
                .iter()
                .zip(start_m)
                .map(|(b, &g0)| {
                    let g = self.footprint_centre(*b, axis, size, g0)?;
                    let c = self.cuboid_box(g, axis, size)?;
                    let sd = BOX_SHAPE_REL_SD * (b[3] - b[1]).max(1.0);
                    Some([
                        ((b[2] - b[0]) - (c[2] - c[0])) / sd,
                        ((b[3] - b[1]) - (c[3] - c[1])) / sd,
                    ])
                })
                .collect()
        };
        let w_prior = SIZE_PRIOR_LOG_SD.map(|sd| 1.0 / (sd * sd));
        let mut p = prior_log;
        let mut cov = [[0.0; 3]; 3];
        for _ in 0..SIZE_FIT_ROUNDS {
            let h = 0.01;
            let r0 = residuals(p);
            let moved: Vec<Vec<Option<[f64; 2]>>> = (0..3)
                .map(|k| {
                    let mut q = p;
                    q[k] += h;
                    residuals(q)
                })
                .collect();
            // Normal equations with the prior: (J'J + P) dp = -J'r - P (p - prior).
            let mut a = [[0.0; 3]; 3];
            let mut g = [0.0; 3];
            for k in 0..3 {
                a[k][k] = w_prior[k];
                g[k] = w_prior[k] * (p[k] - prior_log[k]);
            }
            let mut used = 0;
            for (i, r) in r0.iter().enumerate() {
                let (Some(r), Some(r1), Some(r2), Some(r3)) =
                    (r, moved[0][i], moved[1][i], moved[2][i])
                else {
                    continue;
                };
                used += 1;
                for e in 0..2 {
                    let j = [(r1[e] - r[e]) / h, (r2[e] - r[e]) / h, (r3[e] - r[e]) / h];
                    for u in 0..3 {
                        g[u] += j[u] * r[e];
                        for v in 0..3 {
                            a[u][v] += j[u] * j[v];
                        }
                    }
                }
            }
            if used < SIZE_FIT_MIN_BOXES {
                return None;
            }
            let (dp, inv) = solve3(a, g)?;
            cov = inv;
            // At most a third of the size per round, and never beyond 3 prior sds.
            for k in 0..3 {
                let lim = 3.0 * SIZE_PRIOR_LOG_SD[k];
                p[k] =
                    (p[k] - dp[k].clamp(-0.3, 0.3)).clamp(prior_log[k] - lim, prior_log[k] + lim);
            }
        }
        Some(FittedSize {
            size: size_of(p),
            log_sd: [0, 1, 2].map(|k| cov[k][k].sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::test_camera::Camera;
    use crate::speed::Homography;

    /// The camera recovered from an exact homography projects 3-D points as the true one does,
    /// and the footprint solve inverts a cuboid's box.
    #[test]
    fn the_camera_comes_back_from_the_homography_and_boxes_invert() {
        let cam = Camera::default();
        let world = [[10.0, -3.5], [10.0, 3.5], [45.0, 3.5], [45.0, -3.5]];
        let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
        let (h, _) = Homography::fit(&image, &world).unwrap();
        let (w, hgt) = cam.image_size();
        let rec = GroundCamera::from_homography(h.inverse_matrix(), w, hgt, [20.0, 0.0])
            .expect("a camera");
        assert!((rec.focal_px() - cam.focal_px).abs() < 1e-3 * cam.focal_px);
        for p in [[15.0, 1.75, 0.0], [25.0, -1.0, 1.5], [30.0, 2.0, 3.2]] {
            let a = rec.project(p).unwrap();
            let b = cam.project_3d(p).unwrap();
            assert!(
                (a[0] - b[0]).hypot(a[1] - b[1]) < 0.01,
                "{p:?}: {a:?} vs {b:?}"
            );
        }
        let bus = class_size("bus");
        let truth = [24.0, 1.75];
        let b = rec.cuboid_box(truth, [1.0, 0.0], bus).unwrap();
        let naive = h.image_to_world([0.5 * (b[0] + b[2]), b[3]]).unwrap();
        assert!(
            (naive[0] - truth[0]).hypot(naive[1] - truth[1]) > 0.5,
            "the box bottom is not the footprint: {naive:?}"
        );
        let g = rec
            .footprint_centre(b, [1.0, 0.0], bus, naive)
            .expect("solved");
        assert!((g[0] - truth[0]).hypot(g[1] - truth[1]) < 0.01, "{g:?}");
    }

    /// The camera recovered from `cam`'s exact homography.
    fn recovered(cam: &Camera) -> GroundCamera {
        let quad = cam.visible_ground_quad();
        let image: Vec<[f64; 2]> = quad.iter().map(|&w| cam.project(w).unwrap()).collect();
        let (h, _) = Homography::fit(&image, &quad).unwrap();
        let (w, hgt) = cam.image_size();
        GroundCamera::from_homography(h.inverse_matrix(), w, hgt, quad[0]).expect("a camera")
    }

    /// Boxes of a cuboid of `size` driving along x in lane y = `y_m`, from x0 to x1, with
    /// Gaussian edge noise of `rel_noise` of the box height; and the box-bottom ground points.
    fn passage(
        cam: &GroundCamera,
        size: VehicleSize,
        y_m: f64,
        xs: (f64, f64),
        rel_noise: f64,
        seed: u64,
    ) -> (Vec<[f64; 4]>, Vec<[f64; 2]>) {
        let mut rng = crate::test_rng::Rng(seed);
        let n = 40;
        (0..n)
            .filter_map(|i| {
                let x = xs.0 + (xs.1 - xs.0) * f64::from(i) / f64::from(n - 1);
                let b = cam.cuboid_box([x, y_m], [1.0, 0.0], size)?;
                let sd = rel_noise * (b[3] - b[1]);
                let b: [f64; 4] = std::array::from_fn(|k| b[k] + sd * rng.gauss());
                Some((b, [x, y_m]))
            })
            .unzip()
    }

    #[test]
    fn the_size_fit_recovers_a_van_boxed_as_a_car_and_keeps_a_bus() {
        for (yaw, y) in [(0.0, 2.0), (35.0, 6.0), (70.0, 12.0)] {
            let cam = Camera {
                yaw_deg: yaw,
                ..Camera::default()
            };
            let rec = recovered(&cam);
            let van = VehicleSize {
                length_m: 5.4,
                width_m: 2.0,
                height_m: 2.4,
            };
            for (truth, prior, noise) in [
                (van, class_size("car"), 0.0),
                (van, class_size("car"), 0.012),
                (class_size("bus"), class_size("bus"), 0.012),
                (
                    VehicleSize {
                        length_m: 10.0,
                        ..class_size("bus")
                    },
                    class_size("truck"),
                    0.012,
                ),
            ] {
                let (boxes, starts) = passage(&rec, truth, y, (15.0, 40.0), noise, 7);
                let fit = rec
                    .fit_size(&boxes, &starts, [1.0, 0.0], prior)
                    .expect("fitted");
                // The size comes back within 3 of the fit's own standard deviations (which must
                // be informative: under a tenth); exact boxes only lose what the prior pulls.
                let got = [fit.size.length_m, fit.size.width_m, fit.size.height_m];
                let want = [truth.length_m, truth.width_m, truth.height_m];
                for k in 0..3 {
                    let err = (got[k] / want[k]).ln().abs();
                    let tol = if noise == 0.0 { 1.5 } else { 3.0 } * fit.log_sd[k];
                    assert!(
                        err < tol && fit.log_sd[k] < 0.1,
                        "yaw {yaw}, dimension {k}: {fit:?} for {truth:?} from {prior:?}, noise {noise}"
                    );
                }
            }
        }
    }
}
