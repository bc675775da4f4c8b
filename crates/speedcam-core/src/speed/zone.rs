//! The measurement zone: an image-plane polygon drawn over the road.
//!
//! Samples are collected only inside the zone because the calibration is only trusted there (the
//! surveyed stretch of road, fully in view, away from the frame edges where boxes are cut off).
//! The test is done in the image plane, where the zone was drawn, so it needs no homography and
//! does not depend on the calibration.

use super::Homography;

/// Why a zone polygon was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    /// Fewer than three vertices.
    #[error("zone needs at least 3 vertices, got {got}: list the polygon corners in image px in drawing order")]
    TooFewVertices {
        /// Vertices given.
        got: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("zone vertex {index} is not finite: give pixel coordinates as plain numbers")]
    NotFinite {
        /// The vertex (0-based).
        index: usize,
    },
    /// The polygon encloses no area.
    #[error("zone has zero area (all vertices on one line or repeated): draw a polygon around the road section")]
    ZeroArea,
    /// Two non-adjacent edges cross.
    #[error("zone edges {edge_a} and {edge_b} cross: list the vertices in order around the polygon (clockwise or counter-clockwise)")]
    SelfIntersecting {
        /// First edge (from vertex `edge_a` to the next).
        edge_a: usize,
        /// Second edge.
        edge_b: usize,
    },
}

/// A simple polygon in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    polygon_px: Vec<[f64; 2]>,
}

impl Zone {
    /// Validates and builds a zone: >= 3 finite vertices, non-zero area, no crossing edges.
    pub fn new(polygon_px: Vec<[f64; 2]>) -> Result<Zone, ZoneError> {
        if polygon_px.len() < 3 {
            return Err(ZoneError::TooFewVertices {
                got: polygon_px.len(),
            });
        }
        if let Some(index) = polygon_px
            .iter()
            .position(|p| !p[0].is_finite() || !p[1].is_finite())
        {
            return Err(ZoneError::NotFinite { index });
        }
        let n = polygon_px.len();
        for a in 0..n {
            for b in a + 2..n {
                if a == 0 && b == n - 1 {
                    continue; // adjacent through the closing edge
                }
                let (p1, p2) = (polygon_px[a], polygon_px[(a + 1) % n]);
                let (q1, q2) = (polygon_px[b], polygon_px[(b + 1) % n]);
                if segments_cross(p1, p2, q1, q2) {
                    return Err(ZoneError::SelfIntersecting {
                        edge_a: a,
                        edge_b: b,
                    });
                }
            }
        }
        if signed_area(&polygon_px).abs() < 1e-9 {
            return Err(ZoneError::ZeroArea);
        }
        Ok(Zone { polygon_px })
    }

    /// The vertices, px.
    pub fn polygon_px(&self) -> &[[f64; 2]] {
        &self.polygon_px
    }

    /// Whether an image point is inside (even-odd rule; points exactly on an edge may go either
    /// way, which is harmless for sampling).
    pub fn contains(&self, p_px: [f64; 2]) -> bool {
        point_in_polygon(&self.polygon_px, p_px)
    }

    /// Extent of the zone on the ground along its longest principal axis, m (for a zone drawn
    /// along a road: its length). None if a vertex lies at or above the horizon.
    pub fn length_m(&self, h: &Homography) -> Option<f64> {
        let ground: Vec<[f64; 2]> = self
            .polygon_px
            .iter()
            .map(|&p| h.image_to_world(p))
            .collect::<Option<_>>()?;
        let [ux, uy] = principal_axis(&ground);
        let proj = ground.iter().map(|p| p[0] * ux + p[1] * uy);
        let (lo, hi) = proj.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        Some(hi - lo)
    }
}

/// Shoelace signed area, px².
fn signed_area(p: &[[f64; 2]]) -> f64 {
    let n = p.len();
    (0..n)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
        / 2.0
}

/// Whether closed segments p1p2 and q1q2 intersect (touching counts).
fn segments_cross(p1: [f64; 2], p2: [f64; 2], q1: [f64; 2], q2: [f64; 2]) -> bool {
    let orient = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        let v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    };
    let on_segment = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        c[0] >= a[0].min(b[0])
            && c[0] <= a[0].max(b[0])
            && c[1] >= a[1].min(b[1])
            && c[1] <= a[1].max(b[1])
    };
    let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
    let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
    if d1 * d2 < 0 && d3 * d4 < 0 {
        return true;
    }
    (d1 == 0 && on_segment(q1, q2, p1))
        || (d2 == 0 && on_segment(q1, q2, p2))
        || (d3 == 0 && on_segment(p1, p2, q1))
        || (d4 == 0 && on_segment(p1, p2, q2))
}

/// Distance from `q` to the nearest edge of the closed polygon `poly` (any unit, the same for
/// both); infinite for an empty polygon.
/// Whether `q` lies inside polygon `poly` (even-odd rule; any units).
pub(crate) fn point_in_polygon(poly: &[[f64; 2]], q: [f64; 2]) -> bool {
    let mut inside = false;
    let mut j = poly.len().wrapping_sub(1);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > q[1]) != (b[1] > q[1]) {
            let x = a[0] + (q[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if q[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// Unit vector along the larger principal axis of the polygon's vertices (for a zone drawn along
/// a road: the road's direction).
pub(crate) fn principal_axis(poly: &[[f64; 2]]) -> [f64; 2] {
    let n = poly.len().max(1) as f64;
    let c = poly
        .iter()
        .fold([0.0, 0.0], |a, p| [a[0] + p[0] / n, a[1] + p[1] / n]);
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in poly {
        let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    // Direction of the larger eigenvalue of the 2x2 scatter matrix.
    let angle = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    [angle.cos(), angle.sin()]
}

pub(crate) fn polygon_edge_distance(poly: &[[f64; 2]], q: [f64; 2]) -> f64 {
    (0..poly.len())
        .map(|i| segment_distance(poly[i], poly[(i + 1) % poly.len()], q))
        .fold(f64::INFINITY, f64::min)
}

/// Distance from `q` to the segment `a`-`b` (any unit, the same for all three).
fn segment_distance(a: [f64; 2], b: [f64; 2], q: [f64; 2]) -> f64 {
    let d = [b[0] - a[0], b[1] - a[1]];
    let len2 = d[0] * d[0] + d[1] * d[1];
    let t = if len2 > 0.0 {
        (((q[0] - a[0]) * d[0] + (q[1] - a[1]) * d[1]) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (q[0] - a[0] - t * d[0]).hypot(q[1] - a[1] - t * d[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::test_camera::Camera;
    use proptest::prelude::*;

    #[test]
    fn contains_convex_and_concave() {
        let square = Zone::new(vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]).unwrap();
        assert!(square.contains([5.0, 5.0]));
        assert!(!square.contains([15.0, 5.0]));
        assert!(!square.contains([5.0, -0.1]));
        // An L shape: the notch is outside.
        let l = Zone::new(vec![
            [0.0, 0.0],
            [10.0, 0.0],
            [10.0, 4.0],
            [4.0, 4.0],
            [4.0, 10.0],
            [0.0, 10.0],
        ])
        .unwrap();
        assert!(l.contains([2.0, 8.0]));
        assert!(l.contains([8.0, 2.0]));
        assert!(!l.contains([8.0, 8.0]));
    }

    #[test]
    fn rejects_bad_polygons_with_reasons() {
        let err = Zone::new(vec![[0.0, 0.0], [1.0, 1.0]]).unwrap_err();
        assert_eq!(err, ZoneError::TooFewVertices { got: 2 });
        assert!(err.to_string().contains("at least 3"));
        let err = Zone::new(vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).unwrap_err();
        assert_eq!(err, ZoneError::ZeroArea);
        let bowtie = vec![[0.0, 0.0], [10.0, 10.0], [10.0, 0.0], [0.0, 10.0]];
        let err = Zone::new(bowtie).unwrap_err();
        assert_eq!(
            err,
            ZoneError::SelfIntersecting {
                edge_a: 0,
                edge_b: 2
            }
        );
        assert!(err.to_string().contains("in order"));
        let err = Zone::new(vec![[0.0, 0.0], [f64::NAN, 1.0], [2.0, 0.0]]).unwrap_err();
        assert_eq!(err, ZoneError::NotFinite { index: 1 });
    }

    #[test]
    fn length_along_the_road() {
        let cam = Camera::default();
        let world = [[12.0, -3.0], [12.0, 3.0], [30.0, 3.0], [30.0, -3.0]];
        let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
        let (h, _) = Homography::fit(&image, &world).unwrap();
        let zone = Zone::new(image).unwrap();
        let len = zone.length_m(&h).unwrap();
        assert!((len - 18.0).abs() < 1e-6, "{len}");
    }

    proptest! {
        /// Containment agrees with the exact test for random points and rectangles.
        #[test]
        fn rectangle_contains(
            x0 in -100.0f64..100.0, y0 in -100.0f64..100.0,
            w in 1.0f64..50.0, h in 1.0f64..50.0,
            px in -200.0f64..200.0, py in -200.0f64..200.0,
        ) {
            let z = Zone::new(vec![[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]]).unwrap();
            let strictly_in = px > x0 && px < x0 + w && py > y0 && py < y0 + h;
            let strictly_out = px < x0 || px > x0 + w || py < y0 || py > y0 + h;
            if strictly_in { prop_assert!(z.contains([px, py])); }
            if strictly_out { prop_assert!(!z.contains([px, py])); }
        }
    }
}
