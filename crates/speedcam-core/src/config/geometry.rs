//! Geometry checks that are warnings, not errors: the config works, but measurements may be
//! missing or less accurate than the operator expects. `check-config` and `calibrate` print them.
//!
//! Hard geometry errors (fewer than 4 points, duplicate or collinear points, points or zone
//! outside a known image size, a zone above the horizon) are reported by config validation and
//! [`super::check_image_size`]; the checks here are:
//! - the zone is too short to collect `min_samples_in_zone` detections of a vehicle at
//!   `max_speed_kmh` (`zone_transit`);
//! - the zone reaches outside the ground area enclosed by the calibration points, where the
//!   calibration is extrapolated;
//! - the calibration's RMS reprojection error is large (`MAX_RMS_M`, `MAX_RMS_PX`) or a point
//!   looks like a survey mistake (the leave-one-out rule of [`crate::speed::calibrate`]).

use super::CameraConfig;
use crate::speed::calibrate::check_calibration;
use crate::speed::SpeedMethod;

/// Calibration RMS reprojection error on the ground above which check-config warns, m.
pub(crate) const MAX_RMS_M: f64 = 0.1;
/// Calibration RMS reprojection error in the image above which check-config warns, px.
pub(crate) const MAX_RMS_PX: f64 = 2.0;
/// A zone vertex farther than this outside the calibration points' convex hull is warned about, m.
pub(crate) const HULL_TOLERANCE_M: f64 = 0.25;
/// Detection rate assumed when nothing better is known, Hz.
pub const DEFAULT_DETECTION_HZ: f64 = 10.0;

/// How often the detector sees each vehicle, and where that figure came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionRate {
    /// Detections per second of one vehicle, Hz.
    pub hz: f64,
    /// Where `hz` came from, e.g. "the frame rate of scene.mp4" or "--detection-hz".
    pub source: String,
}

/// How a vehicle at `max_speed_kmh` crosses the zone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ZoneTransit {
    /// Zone length on the ground, m.
    pub zone_length_m: f64,
    /// The speed assumed (`max_speed_kmh`), km/h.
    pub speed_kmh: f64,
    /// Time to cross the zone at that speed, s.
    pub transit_s: f64,
    /// Expected in-zone detections: `transit_s x rate`.
    pub expected_detections: f64,
    /// `min_samples_in_zone`.
    pub min_samples: u32,
}

impl ZoneTransit {
    /// Whether the fastest plausible vehicle yields too few detections to be measured.
    pub(crate) fn too_short(&self) -> bool {
        self.expected_detections < self.min_samples as f64
    }
}

/// Transit of the zone at `max_speed_kmh`; None when the zone has no ground length.
pub(crate) fn zone_transit(cam: &CameraConfig, rate_hz: f64) -> Option<ZoneTransit> {
    let zone_length_m = cam.zone_length_m()?;
    let speed_kmh = cam.speed.max_speed_kmh;
    let transit_s = zone_length_m / (speed_kmh / 3.6);
    Some(ZoneTransit {
        zone_length_m,
        speed_kmh,
        transit_s,
        expected_detections: transit_s * rate_hz,
        min_samples: cam.speed.min_samples,
    })
}

/// Every geometry warning for `cam` (see the module docs), each a full sentence that names the
/// camera, the numbers and what to change.
pub fn geometry_warnings(cam: &CameraConfig, rate: &DetectionRate) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(zone_length_warning(cam, rate));
    out.extend(zone_extrapolation_warning(cam));
    out.extend(calibration_warnings(cam));
    out.extend(lines_margin_warnings(cam, rate));
    out
}

/// Method `lines`: a line too close to the zone edge. Detections are taken inside the zone only,
/// so a vehicle needs at least one detection between the zone edge and the line before it
/// crosses; at `max_speed_kmh` it moves `speed / rate` between detections, and the tracker may
/// need one more before it is confirmed, so each line should be two such steps inside the zone.
pub(crate) fn lines_margin_warnings(cam: &CameraConfig, rate: &DetectionRate) -> Vec<String> {
    let SpeedMethod::Lines(lines) = &cam.speed.method else {
        return Vec::new();
    };
    let h = &cam.homography;
    let Some(zone_m) = cam
        .zone_polygon
        .iter()
        .map(|&p| h.image_to_world(p))
        .collect::<Option<Vec<_>>>()
    else {
        return Vec::new();
    };
    let step_m = cam.speed.max_speed_kmh / 3.6 / rate.hz;
    let mut out = Vec::new();
    for (name, [a, b]) in [("first", lines.first_px), ("second", lines.second_px)] {
        let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
        let Some(g) = h.image_to_world(mid) else {
            continue;
        };
        let margin_m = crate::speed::polygon_edge_distance(&zone_m, g);
        if margin_m < 2.0 * step_m {
            out.push(format!(
                "camera {}: lines.{name} is {margin_m:.1} m inside the zone edge, but a vehicle at max_speed_kmh = {:.0} moves {step_m:.1} m between detections at {:.1} Hz ({}): it may cross the line before its first detection in the zone and get no measurement. Leave at least {:.1} m between the zone edge and each line (enlarge the zone), or lower max_speed_kmh",
                cam.id,
                cam.speed.max_speed_kmh,
                rate.hz,
                rate.source,
                2.0 * step_m
            ));
        }
    }
    out
}

/// The zone-too-short warning, if the zone is too short for `rate`.
pub fn zone_length_warning(cam: &CameraConfig, rate: &DetectionRate) -> Option<String> {
    let t = zone_transit(cam, rate.hz)?;
    if !t.too_short() {
        return None;
    }
    let speed_ms = t.speed_kmh / 3.6;
    let n = t.min_samples as f64;
    let need_length_m = n / rate.hz * speed_ms;
    let max_speed_kmh = t.zone_length_m * rate.hz / n * 3.6;
    let need_hz = n * speed_ms / t.zone_length_m;
    // A lower max_speed_kmh is advice only while it stays above the speeding threshold.
    let slower = if max_speed_kmh.floor() > cam.threshold_kmh() {
        format!(", lower max_speed_kmh to {:.0}", max_speed_kmh.floor())
    } else {
        String::new()
    };
    let fewer = t.expected_detections.floor() as u32;
    let fewer = if fewer >= 2 {
        format!(", lower min_samples_in_zone to {fewer}")
    } else {
        String::new()
    };
    Some(format!(
        "camera {}: the zone is too short for max_speed_kmh: it is {:.1} m long, a vehicle at {:.0} km/h \
         crosses it in {:.2} s and is detected about {:.1} times at {:.1} Hz ({}), fewer than \
         min_samples_in_zone = {}, so it gets no measurement. Make the zone at least {:.1} m long\
         {slower}{fewer}, or detect at {:.1} Hz or more",
        cam.id,
        t.zone_length_m,
        t.speed_kmh,
        t.transit_s,
        t.expected_detections,
        rate.hz,
        rate.source,
        t.min_samples,
        need_length_m,
        need_hz,
    ))
}

/// The warning for zone vertices outside the calibration points' convex hull on the ground.
pub fn zone_extrapolation_warning(cam: &CameraConfig) -> Option<String> {
    let hull = convex_hull(&cam.world_points);
    if hull.len() < 3 {
        return None;
    }
    let outside: Vec<String> = cam
        .zone_polygon
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| {
            let g = cam.homography.image_to_world(p)?;
            let d = distance_outside(&hull, g);
            (d > HULL_TOLERANCE_M).then(|| format!("{i} ({d:.1} m)"))
        })
        .collect();
    if outside.is_empty() {
        return None;
    }
    Some(format!(
        "camera {}: zone vertices {} lie outside the ground area enclosed by the calibration points: \
         positions there come from an extrapolated calibration and can be off. Survey calibration \
         points around the whole zone (beyond its corners), or shrink the zone to the surveyed area",
        cam.id,
        outside.join(", ")
    ))
}

/// Warnings about the calibration's accuracy: large RMS error, points that look like mistakes.
pub fn calibration_warnings(cam: &CameraConfig) -> Vec<String> {
    let mut out = Vec::new();
    let r = &cam.calibration_report;
    if r.rms_m > MAX_RMS_M || r.rms_px > MAX_RMS_PX {
        out.push(format!(
            "camera {}: the calibration's RMS reprojection error is {:.3} m / {:.2} px (above \
             {MAX_RMS_M} m or {MAX_RMS_PX} px): speeds inherit this error. Check the points with \
             `speedcamd calibrate` (per-point residuals, outliers, overlay) and re-measure the bad ones",
            cam.id, r.rms_m, r.rms_px
        ));
    }
    if let Ok((_, check)) = check_calibration(&cam.image_points, &cam.world_points) {
        for p in check.points.iter().filter(|p| p.outlier) {
            out.push(format!(
                "camera {}: calibration point {} (image [{:.1}, {:.1}] px, ground [{:.2}, {:.2}] m) looks \
                 like a survey mistake: a fit without it misplaces it by {:.1} px while the other \
                 points fit to {:.2} px RMS. Check its pixel and ground coordinates",
                cam.id,
                p.index,
                p.image_px[0],
                p.image_px[1],
                p.world_m[0],
                p.world_m[1],
                p.loo_error_px.unwrap_or(f64::NAN),
                p.loo_others_rms_px.unwrap_or(f64::NAN),
            ));
        }
    }
    out
}

/// Convex hull (Andrew's monotone chain), counter-clockwise, without collinear points.
fn convex_hull(pts: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut p: Vec<[f64; 2]> = pts.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop(); // the last point starts the other chain
    }
    hull
}

/// Distance from `q` to a counter-clockwise convex polygon, m; 0 inside.
fn distance_outside(hull: &[[f64; 2]], q: [f64; 2]) -> f64 {
    let n = hull.len();
    let inside = (0..n).all(|i| {
        let (a, b) = (hull[i], hull[(i + 1) % n]);
        (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]) >= 0.0
    });
    if inside {
        return 0.0;
    }
    crate::speed::polygon_edge_distance(hull, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::{Homography, SpeedConfig, Zone};

    /// The reference camera: a 20 m x 30 m ground rectangle seen as a trapezoid in 1280 x 720.
    fn reference() -> Homography {
        let image = [
            [100.0, 600.0],
            [1180.0, 600.0],
            [900.0, 300.0],
            [380.0, 300.0],
        ];
        let world = [[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]];
        Homography::fit(&image, &world).unwrap().0
    }

    /// A camera surveyed at `world` (imaged by the reference camera, then `nudge`d) with `zone`.
    fn camera(world: &[[f64; 2]], nudge: &[(usize, [f64; 2])], zone: &[[f64; 2]]) -> CameraConfig {
        let h0 = reference();
        let mut image: Vec<[f64; 2]> = world
            .iter()
            .map(|&w| h0.world_to_image(w).unwrap())
            .collect();
        for &(i, d) in nudge {
            image[i] = [image[i][0] + d[0], image[i][1] + d[1]];
        }
        let (homography, calibration_report) = Homography::fit(&image, world).unwrap();
        CameraConfig {
            id: "cam1".into(),
            source: "/nonexistent.mp4".into(),
            speed_limit_kmh: 50.0,
            tolerance_kmh: 3.0,
            strict: false,
            image_size: Some((1280, 720)),
            image_points: image,
            world_points: world.to_vec(),
            zone_polygon: zone.to_vec(),
            homography,
            calibration_report,
            zone: Zone::new(zone.to_vec()).unwrap(),
            speed: SpeedConfig {
                min_samples: 5,
                max_speed_kmh: 250.0,
                ..SpeedConfig::default()
            },
            reconnect: Default::default(),
            schedule: Default::default(),
            live: Default::default(),
        }
    }

    fn corners() -> Vec<[f64; 2]> {
        vec![[0.0, 0.0], [20.0, 0.0], [20.0, 30.0], [0.0, 30.0]]
    }

    fn grid() -> Vec<[f64; 2]> {
        let mut w = Vec::new();
        for x in [0.0, 10.0, 20.0] {
            for y in [0.0, 10.0, 20.0, 30.0] {
                w.push([x, y]);
            }
        }
        w
    }

    /// The zone over ground x 2..18, y 5..25 (20 m along y), in image px.
    fn inner_zone() -> Vec<[f64; 2]> {
        let h0 = reference();
        [[2.0, 5.0], [18.0, 5.0], [18.0, 25.0], [2.0, 25.0]]
            .iter()
            .map(|&w| h0.world_to_image(w).unwrap())
            .collect()
    }

    fn rate(hz: f64) -> DetectionRate {
        DetectionRate {
            hz,
            source: "test rate".into(),
        }
    }

    #[test]
    fn short_zone_is_warned_with_its_numbers() {
        let cam = camera(&corners(), &[], &inner_zone());
        let t = zone_transit(&cam, 10.0).unwrap();
        assert!((t.zone_length_m - 20.0).abs() < 0.01, "{t:?}");
        assert!((t.transit_s - 20.0 / (250.0 / 3.6)).abs() < 1e-3, "{t:?}");
        assert!((t.expected_detections - 2.88).abs() < 0.01, "{t:?}");
        assert!(t.too_short());
        let w = geometry_warnings(&cam, &rate(10.0));
        assert_eq!(w.len(), 1, "{w:#?}");
        for part in [
            "camera cam1",
            "20.0 m long",
            "250 km/h",
            "0.29 s",
            "2.9 times at 10.0 Hz (test rate)",
            "min_samples_in_zone = 5",
            "at least 34.7 m",
            "lower max_speed_kmh to 144",
            "lower min_samples_in_zone to 2",
            "17.4 Hz or more",
        ] {
            assert!(w[0].contains(part), "{part:?} missing in {}", w[0]);
        }
        // At 30 Hz the same zone gives 8.6 detections: enough.
        assert!(geometry_warnings(&cam, &rate(30.0)).is_empty());
        // At 2 Hz, a max_speed_kmh low enough (28) would be below the 53 km/h threshold: not
        // offered; nor is min_samples_in_zone 1 (below the allowed 2).
        let w = geometry_warnings(&cam, &rate(2.0));
        assert!(w[0].contains("about 0.6 times at 2.0 Hz"), "{}", w[0]);
        assert!(!w[0].contains("lower max_speed_kmh"), "{}", w[0]);
        assert!(!w[0].contains("lower min_samples_in_zone"), "{}", w[0]);
        assert!(w[0].contains("at least 173.6 m"), "{}", w[0]);
    }

    #[test]
    fn zone_beyond_the_survey_is_warned() {
        // Points over ground y 0..12 only; the zone reaches y = 25.
        let world = [[0.0, 0.0], [20.0, 0.0], [20.0, 12.0], [0.0, 12.0]];
        let cam = camera(&world, &[], &inner_zone());
        let w = zone_extrapolation_warning(&cam).expect("warned");
        assert!(w.contains("vertices 2 (13.0 m), 3 (13.0 m)"), "{w}");
        assert!(w.contains("extrapolated"), "{w}");
        let cam = camera(&corners(), &[], &inner_zone());
        assert_eq!(zone_extrapolation_warning(&cam), None);
    }

    #[test]
    fn large_rms_and_outliers_are_warned() {
        let zone = inner_zone();
        let clean = camera(&grid(), &[], &zone);
        assert!(calibration_warnings(&clean).is_empty());

        let bad = camera(&grid(), &[(6, [20.0, 0.0])], &zone);
        let w = calibration_warnings(&bad);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w[0].contains("RMS reprojection error"), "{}", w[0]);
        assert!(w[0].contains("speedcamd calibrate"), "{}", w[0]);
        assert!(w[1].contains("calibration point 6 "), "{}", w[1]);
        assert!(w[1].contains("survey mistake"), "{}", w[1]);
    }

    #[test]
    fn lines_near_the_zone_edge_are_warned() {
        use crate::speed::SpeedLines;
        let h0 = reference();
        let line = |y: f64| {
            [
                h0.world_to_image([4.0, y]).unwrap(),
                h0.world_to_image([16.0, y]).unwrap(),
            ]
        };
        let with_lines = |y1: f64, y2: f64| {
            let mut cam = camera(&corners(), &[], &inner_zone());
            cam.speed.max_speed_kmh = 100.0;
            cam.speed.method = SpeedMethod::Lines(SpeedLines {
                first_px: line(y1),
                second_px: line(y2),
                distance_m: y2 - y1,
            });
            cam
        };
        // 100 km/h at 10 Hz: 2.8 m between detections, so lines want 5.6 m of margin.
        let w = lines_margin_warnings(&with_lines(7.0, 23.0), &rate(10.0));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("lines.first is 2.0 m inside") && w[0].contains("2.8 m between"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("lines.second"), "{}", w[1]);
        assert!(lines_margin_warnings(&with_lines(12.0, 18.0), &rate(10.0)).is_empty());
        // The fit method has no lines to check.
        let fit = camera(&corners(), &[], &inner_zone());
        assert!(lines_margin_warnings(&fit, &rate(1.0)).is_empty());
    }

    #[test]
    fn hull_and_distance() {
        let hull = convex_hull(&[
            [0.0, 0.0],
            [2.0, 0.0],
            [1.0, 1.0],
            [2.0, 2.0],
            [0.0, 2.0],
            [1.0, 0.0],
        ]);
        assert_eq!(hull, [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]);
        assert_eq!(distance_outside(&hull, [1.0, 1.5]), 0.0);
        assert!((distance_outside(&hull, [3.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((distance_outside(&hull, [3.0, 3.0]) - 2f64.sqrt()).abs() < 1e-12);
    }
}
