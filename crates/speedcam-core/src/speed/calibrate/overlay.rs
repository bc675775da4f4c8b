//! The calibration overlay: a metric grid on the ground plane, the zone and the calibration
//! points drawn over a camera frame, so an installer can check a calibration by eye.
//!
//! What is drawn (colours are the `*_RGB` constants):
//! - grid lines of constant ground x and constant ground y every 1 m (thin grey), every 5 m
//!   (yellow, 2 px) and the axes x = 0 and y = 0 (orange, 2 px), over `ground_extent_m`: the
//!   calibration points and the zone plus a margin. Each ground segment is clipped to the part in
//!   front of the camera before it is projected, so nothing is drawn at or above the horizon.
//! - the zone polygon (cyan, 2 px);
//! - each surveyed image point (green circle, red when flagged as an outlier), the surveyed ground
//!   point mapped into the image (magenta cross) and a white line between the two, numbered with
//!   the point's 0-based index in tiny digits.
//!
//! All functions are pure drawing on an [`RgbImage`]; nothing here reads files.

use crate::speed::Homography;
use image::{Rgb, RgbImage};
use nalgebra::{Matrix3, Vector3};

/// Grid lines every metre.
pub(crate) const MINOR_RGB: [u8; 3] = [165, 165, 165];
/// Grid lines every 5 m.
pub(crate) const MAJOR_RGB: [u8; 3] = [255, 215, 0];
/// Ground axes x = 0 and y = 0.
pub(crate) const AXIS_RGB: [u8; 3] = [255, 110, 0];
/// The measurement zone.
pub(crate) const ZONE_RGB: [u8; 3] = [0, 220, 255];
/// A surveyed image point (circle).
pub(crate) const POINT_RGB: [u8; 3] = [0, 255, 0];
/// A surveyed image point flagged as an outlier (circle).
pub(crate) const OUTLIER_RGB: [u8; 3] = [255, 0, 0];
/// A ground point reprojected into the image (cross).
pub(crate) const REPROJECTED_RGB: [u8; 3] = [255, 0, 255];
/// The line from a surveyed point to its reprojection, and the digits.
pub(crate) const LINK_RGB: [u8; 3] = [255, 255, 255];

/// Margin of grid drawn around the calibration points and the zone, m.
pub(crate) const GRID_MARGIN_M: f64 = 5.0;
/// Largest grid side, m (a zone reaching towards the horizon would otherwise ask for kilometres).
pub(crate) const GRID_MAX_SPAN_M: f64 = 400.0;
/// Radius of the circle around a surveyed point, px.
const POINT_RADIUS_PX: f64 = 7.0;
/// Half-size of the reprojection cross, px.
const CROSS_HALF_PX: f64 = 5.0;

/// A rectangle on the ground, m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroundExtent {
    /// Smallest ground x, m.
    pub x_min_m: f64,
    /// Largest ground x, m.
    pub x_max_m: f64,
    /// Smallest ground y, m.
    pub y_min_m: f64,
    /// Largest ground y, m.
    pub y_max_m: f64,
}

/// What [`draw_overlay`] draws.
#[derive(Debug, Clone, Copy)]
pub struct OverlayInput<'a> {
    /// The calibration.
    pub homography: &'a Homography,
    /// Surveyed image points, px.
    pub image_points_px: &'a [[f64; 2]],
    /// Their ground points, m (same order).
    pub world_points_m: &'a [[f64; 2]],
    /// The zone polygon, px.
    pub zone_px: &'a [[f64; 2]],
    /// Per point: flagged as an outlier (may be empty: none flagged).
    pub outliers: &'a [bool],
}

/// Draws grid, zone and points (see the module docs) onto `img`.
pub fn draw_overlay(img: &mut RgbImage, input: &OverlayInput<'_>) {
    let extent = ground_extent_m(input.homography, input.world_points_m, input.zone_px);
    draw_ground_grid(img, input.homography, &extent);
    draw_polygon(img, input.zone_px, ZONE_RGB, 2);
    let reprojected: Vec<Option<[f64; 2]>> = input
        .world_points_m
        .iter()
        .map(|&w| input.homography.world_to_image(w))
        .collect();
    for (p, r) in input.image_points_px.iter().zip(&reprojected) {
        if let Some(r) = r {
            draw_line(img, *p, *r, LINK_RGB, 1);
        }
    }
    for (i, p) in input.image_points_px.iter().enumerate() {
        let bad = input.outliers.get(i).copied().unwrap_or(false);
        let (colour, radius) = if bad {
            (OUTLIER_RGB, POINT_RADIUS_PX + 3.0)
        } else {
            (POINT_RGB, POINT_RADIUS_PX)
        };
        draw_circle(img, *p, radius, colour);
    }
    for r in reprojected.iter().flatten() {
        draw_cross(img, *r, CROSS_HALF_PX, REPROJECTED_RGB);
    }
    for (i, p) in input.image_points_px.iter().enumerate() {
        draw_number(
            img,
            i,
            [p[0] + POINT_RADIUS_PX + 2.0, p[1] - POINT_RADIUS_PX - 12.0],
        );
    }
}

/// The ground rectangle the grid covers: the calibration points and the zone's ground footprint
/// (vertices below the horizon), plus [`GRID_MARGIN_M`], widened to whole multiples of 5 m and at
/// most [`GRID_MAX_SPAN_M`] on a side (centred on the calibration points when cut).
pub(crate) fn ground_extent_m(
    h: &Homography,
    world_points_m: &[[f64; 2]],
    zone_px: &[[f64; 2]],
) -> GroundExtent {
    let pts: Vec<[f64; 2]> = world_points_m
        .iter()
        .copied()
        .chain(zone_px.iter().filter_map(|&p| h.image_to_world(p)))
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    if pts.is_empty() {
        return GroundExtent {
            x_min_m: 0.0,
            x_max_m: 0.0,
            y_min_m: 0.0,
            y_max_m: 0.0,
        };
    }
    let n = world_points_m.len().max(1) as f64;
    let centre = world_points_m
        .iter()
        .fold([0.0, 0.0], |a, p| [a[0] + p[0] / n, a[1] + p[1] / n]);
    let range = |k: usize| {
        let lo = pts.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min) - GRID_MARGIN_M;
        let hi = pts.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max) + GRID_MARGIN_M;
        let half = GRID_MAX_SPAN_M / 2.0;
        let (lo, hi) = (lo.max(centre[k] - half), hi.min(centre[k] + half));
        ((lo / 5.0).floor() * 5.0, (hi / 5.0).ceil() * 5.0)
    };
    let (x_min_m, x_max_m) = range(0);
    let (y_min_m, y_max_m) = range(1);
    GroundExtent {
        x_min_m,
        x_max_m,
        y_min_m,
        y_max_m,
    }
}

/// Draws the metric grid over `extent`: every metre thin grey, every 5 m yellow, the axes orange.
pub(crate) fn draw_ground_grid(img: &mut RgbImage, h: &Homography, extent: &GroundExtent) {
    let m = h.inverse_matrix();
    let to_image = Matrix3::from_fn(|r, c| m[r][c]);
    let style = |v: i64| {
        if v == 0 {
            (AXIS_RGB, 2)
        } else if v % 5 == 0 {
            (MAJOR_RGB, 2)
        } else {
            (MINOR_RGB, 1)
        }
    };
    let xs = extent.x_min_m.ceil() as i64..=extent.x_max_m.floor() as i64;
    let ys = extent.y_min_m.ceil() as i64..=extent.y_max_m.floor() as i64;
    // Minor lines first so major lines and axes stay on top where they cross.
    for pass in 0..3 {
        let wanted = |v: i64| match pass {
            0 => v % 5 != 0,
            1 => v % 5 == 0 && v != 0,
            _ => v == 0,
        };
        for x in xs.clone().filter(|&v| wanted(v)) {
            let (c, t) = style(x);
            let (a, b) = ([x as f64, extent.y_min_m], [x as f64, extent.y_max_m]);
            draw_ground_segment(img, &to_image, a, b, c, t);
        }
        for y in ys.clone().filter(|&v| wanted(v)) {
            let (c, t) = style(y);
            let (a, b) = ([extent.x_min_m, y as f64], [extent.x_max_m, y as f64]);
            draw_ground_segment(img, &to_image, a, b, c, t);
        }
    }
}

/// Draws the part of the ground segment `a_m`-`b_m` that lies in front of the camera. The weight
/// of a ground point is linear along the segment, so the visible part is one sub-segment; its
/// image is a straight segment (which may reach far outside the image and is clipped there).
fn draw_ground_segment(
    img: &mut RgbImage,
    to_image: &Matrix3<f64>,
    a_m: [f64; 2],
    b_m: [f64; 2],
    colour: [u8; 3],
    thickness: u32,
) {
    let va = to_image * Vector3::new(a_m[0], a_m[1], 1.0);
    let vb = to_image * Vector3::new(b_m[0], b_m[1], 1.0);
    let (wa, wb) = (va[2], vb[2]);
    let w_min = 1e-9 * (wa.abs() + wb.abs());
    if wa <= w_min && wb <= w_min {
        return;
    }
    // Move the endpoint(s) behind the camera to just in front of it.
    let clip = |inside: Vector3<f64>, outside: Vector3<f64>| {
        let t = (inside[2] - 2.0 * w_min) / (inside[2] - outside[2]);
        inside + (outside - inside) * t
    };
    let (va, vb) = if wa <= w_min {
        (clip(vb, va), vb)
    } else if wb <= w_min {
        (va, clip(va, vb))
    } else {
        (va, vb)
    };
    let pa = [va[0] / va[2], va[1] / va[2]];
    let pb = [vb[0] / vb[2], vb[1] / vb[2]];
    draw_line(img, pa, pb, colour, thickness);
}

/// Draws a closed polygon.
pub(crate) fn draw_polygon(
    img: &mut RgbImage,
    pts_px: &[[f64; 2]],
    colour: [u8; 3],
    thickness: u32,
) {
    for (i, &a) in pts_px.iter().enumerate() {
        let b = pts_px[(i + 1) % pts_px.len()];
        draw_line(img, a, b, colour, thickness);
    }
}

/// Draws a straight line from `a_px` to `b_px` (any coordinates: clipped to the image first).
/// A thickness `t` paints a `t x t` square at each step, extending right and down from the line.
pub(crate) fn draw_line(
    img: &mut RgbImage,
    a_px: [f64; 2],
    b_px: [f64; 2],
    colour: [u8; 3],
    thickness: u32,
) {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let Some((a, b)) = clip_to_rect(a_px, b_px, [-2.0, -2.0], [w + 2.0, h + 2.0]) else {
        return;
    };
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let steps = dx.abs().max(dy.abs()).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (a[0] + dx * t, a[1] + dy * t);
        for oy in 0..thickness.max(1) {
            for ox in 0..thickness.max(1) {
                put(
                    img,
                    x.floor() as i64 + ox as i64,
                    y.floor() as i64 + oy as i64,
                    colour,
                );
            }
        }
    }
}

/// Liang-Barsky: the part of segment a-b inside the rectangle [lo, hi], if any.
fn clip_to_rect(
    a: [f64; 2],
    b: [f64; 2],
    lo: [f64; 2],
    hi: [f64; 2],
) -> Option<([f64; 2], [f64; 2])> {
    if !(a.iter().chain(&b).all(|v| v.is_finite())) {
        return None;
    }
    let d = [b[0] - a[0], b[1] - a[1]];
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for k in 0..2 {
        for (p, q) in [(-d[k], a[k] - lo[k]), (d[k], hi[k] - a[k])] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
    }
    (t0 <= t1).then(|| {
        (
            [a[0] + d[0] * t0, a[1] + d[1] * t0],
            [a[0] + d[0] * t1, a[1] + d[1] * t1],
        )
    })
}

/// A 2 px wide ring of radius `radius_px` around `c_px`.
pub(crate) fn draw_circle(img: &mut RgbImage, c_px: [f64; 2], radius_px: f64, colour: [u8; 3]) {
    let r = radius_px.ceil() as i64 + 1;
    let (cx, cy) = (c_px[0].round() as i64, c_px[1].round() as i64);
    for y in cy - r..=cy + r {
        for x in cx - r..=cx + r {
            let d = ((x as f64 - c_px[0]).powi(2) + (y as f64 - c_px[1]).powi(2)).sqrt();
            if (d - radius_px).abs() <= 1.0 {
                put(img, x, y, colour);
            }
        }
    }
}

/// An x-shaped cross of half-size `half_px` centred on `c_px`.
pub(crate) fn draw_cross(img: &mut RgbImage, c_px: [f64; 2], half_px: f64, colour: [u8; 3]) {
    let (x, y) = (c_px[0], c_px[1]);
    draw_line(
        img,
        [x - half_px, y - half_px],
        [x + half_px, y + half_px],
        colour,
        2,
    );
    draw_line(
        img,
        [x - half_px, y + half_px],
        [x + half_px, y - half_px],
        colour,
        2,
    );
}

/// 3 x 5 pixel glyphs of the digits 0-9, one row per entry, bit 2 = left column.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 3, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 2, 2, 2],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];
/// Size of one glyph pixel, px.
const DIGIT_SCALE: i64 = 2;

/// Writes `n` in white 6 x 10 px digits on a black box whose top-left corner is `at_px`.
pub(crate) fn draw_number(img: &mut RgbImage, n: usize, at_px: [f64; 2]) {
    let text = n.to_string();
    let (x0, y0) = (at_px[0].round() as i64, at_px[1].round() as i64);
    let advance = 4 * DIGIT_SCALE;
    let width = advance * text.len() as i64 + DIGIT_SCALE;
    for y in y0..y0 + 7 * DIGIT_SCALE {
        for x in x0..x0 + width {
            put(img, x, y, [0, 0, 0]);
        }
    }
    for (i, ch) in text.bytes().enumerate() {
        let glyph = DIGITS[(ch - b'0') as usize];
        let gx = x0 + DIGIT_SCALE + i as i64 * advance;
        let gy = y0 + DIGIT_SCALE;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for sy in 0..DIGIT_SCALE {
                        for sx in 0..DIGIT_SCALE {
                            let x = gx + col * DIGIT_SCALE + sx;
                            let y = gy + row as i64 * DIGIT_SCALE + sy;
                            put(img, x, y, LINK_RGB);
                        }
                    }
                }
            }
        }
    }
}

/// Sets a pixel if it is inside the image.
fn put(img: &mut RgbImage, x: i64, y: i64, colour: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u64) < img.width() as u64 && (y as u64) < img.height() as u64 {
        img.put_pixel(x as u32, y as u32, Rgb(colour));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::test_camera::Camera;

    /// A camera looking almost level, so the horizon is in the picture (row ~259 of 1080).
    fn level_camera() -> Camera {
        Camera {
            pitch_deg: 8.0,
            ..Camera::default()
        }
    }

    fn fitted(cam: &Camera) -> (Homography, Vec<[f64; 2]>, Vec<[f64; 2]>) {
        let world = vec![
            [20.0, -3.5],
            [20.0, 3.5],
            [40.0, 3.5],
            [40.0, -3.5],
            [30.0, 0.0],
        ];
        let image: Vec<[f64; 2]> = world.iter().map(|&w| cam.project(w).unwrap()).collect();
        let (h, _) = Homography::fit(&image, &world).unwrap();
        (h, image, world)
    }

    fn blank(cam: &Camera) -> RgbImage {
        RgbImage::new(cam.width_px() as u32, cam.height_px() as u32)
    }

    /// The colours of the 3 x 3 pixels around `p` (rounding may put a line one pixel off).
    fn around(img: &RgbImage, p: [f64; 2]) -> Vec<[u8; 3]> {
        let (x, y) = (p[0].floor() as u32, p[1].floor() as u32);
        (y - 1..=y + 1)
            .flat_map(|y| (x - 1..=x + 1).map(move |x| img.get_pixel(x, y).0))
            .collect()
    }

    /// Whether `colour` is painted at `p` (to within a pixel).
    fn painted(img: &RgbImage, p: [f64; 2], colour: [u8; 3]) -> bool {
        around(img, p).contains(&colour)
    }

    /// Whether nothing is painted at `p` (to within a pixel).
    fn untouched(img: &RgbImage, p: [f64; 2]) -> bool {
        around(img, p).iter().all(|&c| c == [0, 0, 0])
    }

    #[test]
    fn grid_lines_land_on_their_ground_lines() {
        let cam = level_camera();
        let (h, _, world) = fitted(&cam);
        let extent = ground_extent_m(&h, &world, &[]);
        assert_eq!(
            extent,
            GroundExtent {
                x_min_m: 15.0,
                x_max_m: 45.0,
                y_min_m: -10.0,
                y_max_m: 10.0
            }
        );
        let mut img = blank(&cam);
        draw_ground_grid(&mut img, &h, &extent);
        // On the minor line x = 23, the major line x = 25, the axis y = 0.
        assert!(painted(&img, cam.project([23.0, 1.5]).unwrap(), MINOR_RGB));
        assert!(painted(&img, cam.project([25.0, 1.5]).unwrap(), MAJOR_RGB));
        assert!(painted(&img, cam.project([22.5, 0.0]).unwrap(), AXIS_RGB));
        // Between lines, and outside the extent, the frame is untouched.
        assert!(untouched(&img, cam.project([22.5, 1.5]).unwrap()));
        assert!(untouched(&img, cam.project([55.0, 0.0]).unwrap()));
    }

    #[test]
    fn nothing_is_drawn_at_or_above_the_horizon() {
        let cam = level_camera();
        let (h, _, _) = fitted(&cam);
        // A grid reaching behind the camera and almost to the horizon.
        let extent = GroundExtent {
            x_min_m: -50.0,
            x_max_m: 2000.0,
            y_min_m: -30.0,
            y_max_m: 30.0,
        };
        let mut img = blank(&cam);
        draw_ground_grid(&mut img, &h, &extent);
        let horizon = cam.horizon_y_px();
        assert!(horizon > 100.0 && horizon < 400.0, "{horizon}");
        let painted_rows: Vec<u32> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 != [0, 0, 0])
            .map(|(_, y, _)| y)
            .collect();
        assert!(!painted_rows.is_empty());
        let top = painted_rows.iter().min().copied().unwrap_or_default();
        assert!(
            top as f64 >= horizon.floor(),
            "painted row {top}, horizon {horizon}"
        );
        // The far lines do approach it.
        assert!(
            (top as f64) < horizon + 20.0,
            "painted row {top}, horizon {horizon}"
        );
    }

    #[test]
    fn overlay_marks_zone_points_and_reprojections() {
        let cam = level_camera();
        let (h, mut image, world) = fitted(&cam);
        image[4][0] += 30.0; // a misplaced survey point: circle and cross apart
        let zone = [
            cam.project([22.0, -2.0]).unwrap(),
            cam.project([22.0, 2.0]).unwrap(),
            cam.project([38.0, 2.0]).unwrap(),
            cam.project([38.0, -2.0]).unwrap(),
        ];
        let mut img = blank(&cam);
        let outliers = [false, false, false, false, true];
        draw_overlay(
            &mut img,
            &OverlayInput {
                homography: &h,
                image_points_px: &image,
                world_points_m: &world,
                zone_px: &zone,
                outliers: &outliers,
            },
        );
        let mid = [
            (zone[0][0] + zone[1][0]) / 2.0,
            (zone[0][1] + zone[1][1]) / 2.0,
        ];
        assert!(painted(&img, mid, ZONE_RGB));
        let p = image[0];
        assert!(painted(&img, [p[0] - POINT_RADIUS_PX, p[1]], POINT_RGB));
        let p = image[4];
        assert!(painted(
            &img,
            [p[0] - POINT_RADIUS_PX - 3.0, p[1]],
            OUTLIER_RGB
        ));
        let r = h.world_to_image(world[4]).unwrap();
        assert!(painted(&img, r, REPROJECTED_RGB));
        assert!(painted(
            &img,
            [(p[0] + r[0]) / 2.0, (p[1] + r[1]) / 2.0],
            LINK_RGB
        ));
    }

    #[test]
    fn digits_and_clipping() {
        let mut img = RgbImage::new(40, 20);
        draw_number(&mut img, 17, [1.0, 1.0]);
        let white = img.pixels().filter(|p| p.0 == LINK_RGB).count();
        // "1" has 8 lit glyph pixels and "7" 7, each 2 x 2 px.
        assert_eq!(white, (8 + 7) * 4);
        // Lines far outside are clipped away or drawn only inside, never panicking.
        draw_line(&mut img, [-1e12, 5.0], [1e12, 5.0], MAJOR_RGB, 2);
        assert!(img.get_pixel(39, 5).0 == MAJOR_RGB && img.get_pixel(0, 6).0 == MAJOR_RGB);
        draw_line(&mut img, [-50.0, -50.0], [-10.0, -60.0], MAJOR_RGB, 1);
        draw_line(&mut img, [f64::NAN, 1.0], [3.0, 4.0], MAJOR_RGB, 1);
        draw_circle(&mut img, [-100.0, -100.0], 5.0, POINT_RGB);
        assert!(img.pixels().all(|p| p.0 != POINT_RGB));
    }
}
