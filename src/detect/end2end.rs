//! Decoder for models with NMS inside the graph ("end-to-end" exports).
//!
//! Two layouts are read, told apart by the number of outputs:
//! - TensorRT EfficientNMS style, 4 outputs: `num_dets [1, 1]`, `det_boxes [1, K, 4]` (x1, y1,
//!   x2, y2 in input px), `det_scores [1, K]`, `det_classes [1, K]`. Only the first `num_dets`
//!   rows are valid. Outputs are matched by name (`num`, `box`, `score`, `class`) and, when the
//!   names say nothing, by shape in that order.
//! - Ultralytics `nms=True` style, one output `[1, K, 6]`: x1, y1, x2, y2, score, class per row;
//!   unused rows score 0.
//!
//! No further NMS runs on these boxes.

use super::decode_util::{check_len, dims_str, label, shape_str};
use super::engine::OutputTensor;
use super::{BBox, DetectError, Detection};

/// Which output holds what, for the EfficientNMS layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Index of `num_dets` `[1, 1]`.
    pub num_dets: usize,
    /// Index of `det_boxes` `[1, K, 4]`.
    pub boxes: usize,
    /// Index of `det_scores` `[1, K]`.
    pub scores: usize,
    /// Index of `det_classes` `[1, K]`.
    pub classes: usize,
}

/// The layout of an end-to-end model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Four outputs, TensorRT EfficientNMS style.
    EfficientNms(Roles),
    /// One `[1, K, 6]` output, Ultralytics `nms=True` style.
    Ultralytics,
}

const EXPECTED: &str = "expected either 4 outputs num_dets [1, 1], det_boxes [1, K, 4], \
                        det_scores [1, K], det_classes [1, K] (EfficientNMS) or 1 output \
                        [1, K, 6] with x1, y1, x2, y2, score, class (Ultralytics nms=True)";

/// Identifies the layout from output names and dimensions (None where symbolic).
pub fn layout(outputs: &[(&str, &[Option<usize>])]) -> Result<Layout, String> {
    let fits = |dims: &[Option<usize>], want: &[Option<usize>]| {
        dims.len() == want.len()
            && dims
                .iter()
                .zip(want)
                .all(|(d, w)| d.is_none() || w.is_none() || d == w)
    };
    let describe = || {
        outputs
            .iter()
            .map(|(n, d)| format!("{n} {}", dims_str(d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match outputs {
        [(_, dims)] if fits(dims, &[Some(1), None, Some(6)]) => Ok(Layout::Ultralytics),
        [_, _, _, _] => {
            let by_name = |key: &str| {
                let mut hits = outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n.to_ascii_lowercase().contains(key));
                match (hits.next(), hits.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            };
            let named = [
                by_name("num"),
                by_name("box"),
                by_name("score"),
                by_name("class"),
            ];
            let [num_dets, boxes, scores, classes] = match named {
                [Some(a), Some(b), Some(c), Some(d)] => [a, b, c, d],
                _ => [0, 1, 2, 3],
            };
            let r = Roles {
                num_dets,
                boxes,
                scores,
                classes,
            };
            let mut seen = [num_dets, boxes, scores, classes];
            seen.sort_unstable();
            let shapes_fit = seen == [0, 1, 2, 3]
                && fits(outputs[num_dets].1, &[Some(1), Some(1)])
                && fits(outputs[boxes].1, &[Some(1), None, Some(4)])
                && fits(outputs[scores].1, &[Some(1), None])
                && fits(outputs[classes].1, &[Some(1), None]);
            if shapes_fit {
                Ok(Layout::EfficientNms(r))
            } else {
                Err(format!("outputs are {}; {EXPECTED}", describe()))
            }
        }
        _ => Err(format!(
            "{} outputs ({}); {EXPECTED}",
            outputs.len(),
            describe()
        )),
    }
}

/// Checks the model's declared outputs; returns the layout or why none fits.
pub fn check_outputs(outputs: &[(String, Vec<Option<usize>>)]) -> Result<Layout, String> {
    let v: Vec<(&str, &[Option<usize>])> = outputs
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    layout(&v)
}

/// Decodes one run's `outputs` into detections in input px (already suppressed by the graph).
/// Rows of a class outside `wanted`, or scoring below `score_threshold`, are dropped; class ids
/// index `labels`. Shapes that fit neither layout are a [`DetectError::OutputLayout`] naming both.
pub fn decode(
    outputs: &[OutputTensor],
    labels: &[&'static str],
    wanted: &[u16],
    score_threshold: f32,
) -> Result<Vec<Detection>, DetectError> {
    for o in outputs {
        check_len(o, "end2end")?;
    }
    let dims: Vec<Vec<Option<usize>>> = outputs
        .iter()
        .map(|o| o.shape.iter().map(|&d| Some(d)).collect())
        .collect();
    let described: Vec<(&str, &[Option<usize>])> = outputs
        .iter()
        .zip(&dims)
        .map(|(o, d)| (o.name.as_str(), d.as_slice()))
        .collect();
    let layout = layout(&described).map_err(|reason| DetectError::OutputLayout {
        family: "end2end",
        reason,
    })?;
    let keep = |class: f32, score: f32| -> Option<u16> {
        if score.is_nan() || score < score_threshold || !(0.0..65536.0).contains(&class) {
            return None;
        }
        let id = class.round() as u16;
        wanted.contains(&id).then_some(id)
    };
    let det = |b: &[f32], score: f32, class_id: u16| Detection {
        bbox: BBox {
            x1: b[0],
            y1: b[1],
            x2: b[2],
            y2: b[3],
        },
        score,
        class_id,
        class: label(labels, class_id),
    };
    let mut dets = Vec::new();
    match layout {
        Layout::Ultralytics => {
            for row in outputs[0].data.chunks_exact(6) {
                if let Some(id) = keep(row[5], row[4]) {
                    dets.push(det(&row[..4], row[4], id));
                }
            }
        }
        Layout::EfficientNms(r) => {
            let k = outputs[r.boxes].shape[1];
            if outputs[r.scores].shape[1] != k || outputs[r.classes].shape[1] != k {
                return Err(DetectError::OutputLayout {
                    family: "end2end",
                    reason: format!(
                        "det_boxes {}, det_scores {} and det_classes {} disagree on K",
                        shape_str(&outputs[r.boxes].shape),
                        shape_str(&outputs[r.scores].shape),
                        shape_str(&outputs[r.classes].shape)
                    ),
                });
            }
            let n = outputs[r.num_dets].data[0];
            let n = if n.is_finite() && n > 0.0 {
                (n as usize).min(k)
            } else {
                0
            };
            let boxes = &outputs[r.boxes].data;
            for i in 0..n {
                let score = outputs[r.scores].data[i];
                if let Some(id) = keep(outputs[r.classes].data[i], score) {
                    dets.push(det(&boxes[i * 4..i * 4 + 4], score, id));
                }
            }
        }
    }
    Ok(dets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::COCO_CLASSES;

    fn t(name: &str, shape: &[usize], data: Vec<f32>) -> OutputTensor {
        OutputTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        }
    }

    /// EfficientNMS outputs: 2 valid of K = 3 (car, person), then a stale truck row.
    fn efficient_nms() -> Vec<OutputTensor> {
        vec![
            t("num_dets", &[1, 1], vec![2.0]),
            t(
                "det_boxes",
                &[1, 3, 4],
                vec![
                    10.0, 20.0, 110.0, 70.0, //
                    0.0, 0.0, 5.0, 5.0, //
                    1.0, 1.0, 2.0, 2.0,
                ],
            ),
            t("det_scores", &[1, 3], vec![0.8, 0.9, 0.95]),
            t("det_classes", &[1, 3], vec![2.0, 0.0, 7.0]),
        ]
    }

    #[test]
    fn decodes_efficient_nms_outputs() {
        let outs = efficient_nms();
        let dets = decode(&outs, &COCO_CLASSES, &[2, 7], 0.5).unwrap();
        assert_eq!(dets.len(), 1, "{dets:?}");
        let d = &dets[0];
        assert_eq!((d.class_id, d.class, d.score), (2, "car", 0.8));
        assert_eq!(
            d.bbox,
            BBox {
                x1: 10.0,
                y1: 20.0,
                x2: 110.0,
                y2: 70.0
            }
        );
        assert!(decode(&outs, &COCO_CLASSES, &[2, 7], 0.85)
            .unwrap()
            .is_empty());
        // Outputs in another order are found by name.
        let mut shuffled = outs.clone();
        shuffled.reverse();
        assert_eq!(decode(&shuffled, &COCO_CLASSES, &[2], 0.5).unwrap(), dets);
    }

    #[test]
    fn decodes_ultralytics_nms_output() {
        let out = t(
            "output0",
            &[1, 3, 6],
            vec![
                10.0, 20.0, 110.0, 70.0, 0.8, 7.0, //
                0.0, 0.0, 5.0, 5.0, 0.9, 0.0, //
                0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
        );
        let dets = decode(std::slice::from_ref(&out), &COCO_CLASSES, &[2, 7], 0.1).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!((dets[0].class, dets[0].score), ("truck", 0.8));
        assert_eq!(dets[0].bbox.x2, 110.0);
        assert!(decode(&[out], &COCO_CLASSES, &[2, 7], 0.81)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn wrong_shapes_name_expected_and_got() {
        let e = decode(
            &[t("o", &[1, 3, 5], vec![0.0; 15])],
            &COCO_CLASSES,
            &[2],
            0.1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[1, K, 6]") && e.contains("o [1, 3, 5]"), "{e}");
        let mut outs = efficient_nms();
        outs.pop();
        let e = decode(&outs, &COCO_CLASSES, &[2], 0.1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 outputs") && e.contains("num_dets [1, 1]"),
            "{e}"
        );
        let mut outs = efficient_nms();
        outs[3] = t("det_classes", &[1, 2], vec![0.0; 2]);
        let e = decode(&outs, &COCO_CLASSES, &[2], 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("disagree"), "{e}");
    }

    #[test]
    fn layout_by_shape_when_names_say_nothing() {
        let dims: Vec<Vec<Option<usize>>> = vec![
            vec![Some(1), Some(1)],
            vec![Some(1), None, Some(4)],
            vec![Some(1), None],
            vec![Some(1), None],
        ];
        let named: Vec<(String, Vec<Option<usize>>)> = dims
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("out{i}"), d))
            .collect();
        assert!(matches!(
            check_outputs(&named),
            Ok(Layout::EfficientNms(Roles { boxes: 1, .. }))
        ));
        assert_eq!(
            check_outputs(&[("output0".into(), vec![Some(1), Some(300), Some(6)])]),
            Ok(Layout::Ultralytics)
        );
    }
}
