//! Per-class greedy non-maximum suppression.
//!
//! Suppression only happens within a class: a car box never removes an overlapping truck box,
//! because the model often scores one vehicle as both and the tracker resolves which holds.

use super::{BBox, Detection};

/// Default IoU above which a lower-scoring box of the same class is dropped.
#[cfg(test)]
const DEFAULT_NMS_IOU: f32 = 0.6;

/// Keeps, per class, the highest-scoring boxes and drops every box whose IoU with a kept box of
/// the same class exceeds `iou_threshold`. Returns the survivors sorted by descending score.
pub fn nms_per_class(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    // One stable sort (equal scores keep their decode order), then one greedy pass that filters
    // in place: no second vector of detections, only the survivors' (class, box) pairs, which
    // is what every later candidate is compared against.
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<(u16, BBox)> = Vec::with_capacity(dets.len().min(64));
    dets.retain(|d| {
        let suppressed = kept
            .iter()
            .any(|(class, b)| *class == d.class_id && b.iou(&d.bbox) > iou_threshold);
        if !suppressed {
            kept.push((d.class_id, d.bbox));
        }
        !suppressed
    });
    dets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{BBox, COCO_CLASSES};
    use proptest::prelude::*;

    fn det(x1: f32, y1: f32, w: f32, h: f32, score: f32, class_id: u16) -> Detection {
        Detection {
            bbox: BBox {
                x1,
                y1,
                x2: x1 + w,
                y2: y1 + h,
            },
            score,
            class_id,
            class: COCO_CLASSES[class_id as usize],
        }
    }

    #[test]
    fn suppresses_within_a_class_only() {
        let dets = vec![
            det(0.0, 0.0, 100.0, 50.0, 0.5, 2),
            det(2.0, 1.0, 100.0, 50.0, 0.9, 2), // same car, higher score: wins
            det(1.0, 0.0, 100.0, 50.0, 0.4, 7), // same object as truck: kept
            det(300.0, 0.0, 100.0, 50.0, 0.3, 2), // another car: kept
        ];
        let kept = nms_per_class(dets, DEFAULT_NMS_IOU);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.4, 0.3]);
    }

    #[test]
    fn threshold_decides_partial_overlap() {
        // IoU of these two is 50 / 150 = 1/3.
        let a = det(0.0, 0.0, 100.0, 1.0, 0.9, 2);
        let b = det(50.0, 0.0, 100.0, 1.0, 0.8, 2);
        assert_eq!(nms_per_class(vec![a.clone(), b.clone()], 0.3).len(), 1);
        assert_eq!(nms_per_class(vec![a, b], 0.4).len(), 2);
    }

    fn arb_det() -> impl Strategy<Value = Detection> {
        (
            0f32..200.0,
            0f32..200.0,
            1f32..80.0,
            1f32..80.0,
            0f32..1.0,
            0u16..3,
        )
            .prop_map(|(x, y, w, h, s, c)| det(x, y, w, h, s, c))
    }

    proptest! {
        #[test]
        fn survivors_are_sorted_disjoint_and_cover_the_dropped(
            dets in proptest::collection::vec(arb_det(), 0..40), thr in 0.1f32..0.9) {
            let kept = nms_per_class(dets.clone(), thr);
            prop_assert!(kept.windows(2).all(|w| w[0].score >= w[1].score));
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(a.class_id != b.class_id || a.bbox.iou(&b.bbox) <= thr);
                }
            }
            // Every dropped box has a kept, same-class, at-least-as-good box overlapping it.
            for d in &dets {
                if !kept.contains(d) {
                    prop_assert!(kept.iter().any(|k| k.class_id == d.class_id
                        && k.score >= d.score && k.bbox.iou(&d.bbox) > thr));
                }
            }
        }
    }
}
