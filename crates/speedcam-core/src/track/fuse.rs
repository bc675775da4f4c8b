//! One vehicle, one candidate: boxes of different classes on the same vehicle are fused before
//! association.
//!
//! Why: detectors split big vehicles between classes (a bus at 0.46 as "bus" and 0.45 as "truck"
//! in the same frame, a van as car or truck), and per-class NMS keeps both boxes. Taken one by
//! one, neither may reach the score that starts a track, the track's box jumps between the two
//! (noise the speed fit then rejects), and a second track may start on the other box. Fused, the
//! vehicle has one box and one score that says "a vehicle is here", and its class votes keep both
//! classes.

use crate::detect::{BBox, Detection};

/// A detection after fusion: the fused box and score, with the score of every class it had.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Fused detection: score-weighted mean box, combined score, class of the best member.
    pub det: Detection,
    /// Score of each class among the fused members (the best per class), best first.
    pub class_scores: Vec<(&'static str, f32)>,
}

impl Candidate {
    fn single(det: &Detection) -> Self {
        Self {
            det: det.clone(),
            class_scores: vec![(det.class, det.score)],
        }
    }
}

/// Fuses detections of different classes whose boxes overlap by at least `min_iou` (best score
/// first; a detection joins the first kept candidate it overlaps that lacks its class). Boxes of
/// the same class are never fused: that is NMS's job, and two same-class boxes this close after
/// NMS are two vehicles. `min_iou > 1` disables fusion.
pub(crate) fn fuse_classes(dets: &[&Detection], min_iou: f32) -> Vec<Candidate> {
    let mut order: Vec<&Detection> = dets.to_vec();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Per candidate: the members, for the weighted box.
    let mut groups: Vec<Vec<&Detection>> = Vec::new();
    for d in order {
        let joins = (min_iou <= 1.0)
            .then(|| {
                groups.iter().position(|g| {
                    g.iter().all(|m| m.class != d.class) && g[0].bbox.iou(&d.bbox) >= min_iou
                })
            })
            .flatten();
        match joins {
            Some(i) => groups[i].push(d),
            None => groups.push(vec![d]),
        }
    }
    groups.into_iter().map(|g| fuse(&g)).collect()
}

/// One candidate from a group of overlapping detections (the first is the best scored).
fn fuse(group: &[&Detection]) -> Candidate {
    let best = group[0];
    if group.len() == 1 {
        return Candidate::single(best);
    }
    let w_sum: f32 = group.iter().map(|d| d.score.max(1e-6)).sum();
    let mean = |f: fn(&BBox) -> f32| {
        group
            .iter()
            .map(|d| d.score.max(1e-6) * f(&d.bbox))
            .sum::<f32>()
            / w_sum
    };
    let miss: f32 = group
        .iter()
        .map(|d| 1.0 - d.score.clamp(0.0, 1.0))
        .product();
    Candidate {
        det: Detection {
            bbox: BBox {
                x1: mean(|b| b.x1),
                y1: mean(|b| b.y1),
                x2: mean(|b| b.x2),
                y2: mean(|b| b.y2),
            },
            score: 1.0 - miss,
            class_id: best.class_id,
            class: best.class,
        },
        class_scores: group.iter().map(|d| (d.class, d.score)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: &'static str, score: f32, x1: f32, x2: f32) -> Detection {
        Detection {
            bbox: BBox {
                x1,
                y1: 100.0,
                x2,
                y2: 200.0,
            },
            score,
            class_id: if class == "bus" { 5 } else { 7 },
            class,
        }
    }

    #[test]
    fn a_bus_scored_as_bus_and_truck_becomes_one_confident_candidate() {
        let (bus, truck) = (
            det("bus", 0.46, 100.0, 400.0),
            det("truck", 0.45, 104.0, 404.0),
        );
        let out = fuse_classes(&[&truck, &bus], 0.7);
        assert_eq!(out.len(), 1);
        let c = &out[0];
        assert_eq!(c.det.class, "bus");
        assert!(
            (c.det.score - (1.0 - 0.54 * 0.55)).abs() < 1e-5,
            "{}",
            c.det.score
        );
        // Score-weighted mean box: between the two, nearer the bus.
        assert!(
            c.det.bbox.x1 > 100.0 && c.det.bbox.x1 < 102.0,
            "{:?}",
            c.det.bbox
        );
        assert_eq!(c.class_scores, vec![("bus", 0.46), ("truck", 0.45)]);
    }

    #[test]
    fn same_class_boxes_and_distinct_vehicles_stay_apart() {
        // Two trucks side by side in the same place after NMS: two vehicles.
        let (a, b) = (
            det("truck", 0.8, 100.0, 400.0),
            det("truck", 0.6, 110.0, 410.0),
        );
        assert_eq!(fuse_classes(&[&a, &b], 0.7).len(), 2);
        // A car behind a bus: little IoU.
        let (bus, car) = (det("bus", 0.8, 100.0, 400.0), det("car", 0.6, 300.0, 380.0));
        assert_eq!(fuse_classes(&[&bus, &car], 0.7).len(), 2);
        // Fusion off.
        let (bus, truck) = (
            det("bus", 0.46, 100.0, 400.0),
            det("truck", 0.45, 104.0, 404.0),
        );
        assert_eq!(fuse_classes(&[&bus, &truck], 1.01).len(), 2);
    }
}
