//! Decoder for YOLOv8 / YOLO11 (Ultralytics) raw outputs.
//!
//! The single output is `[1, 4 + C, N]`: per anchor, rows `cx, cy, w, h` in input px and then C
//! class scores that are already sigmoid (no objectness). Some exports transpose it to
//! `[1, N, 4 + C]`; both are read. The layout is told apart by which dimension equals `4 + C`,
//! C being the length of the label list, so a model with N < 4 + C anchors still decodes.

use super::decode_util::{best_class, check_len, dims_str, label, shape_str};
use super::engine::OutputTensor;
use super::{BBox, DetectError, Detection};

/// Box columns before the class scores: cx, cy, w, h.
pub const BOX_COLS: usize = 4;

/// Checks the model's declared outputs: one output `[1, 4 + C, N]` or `[1, N, 4 + C]`. Returns C
/// when the shape says it (the smaller of the two known dimensions is taken as `4 + C`: real
/// models have thousands of anchors and at most a few hundred classes), or why it does not
/// match.
pub fn check_outputs(outputs: &[(String, Vec<Option<usize>>)]) -> Result<Option<usize>, String> {
    let [(_, dims)] = outputs else {
        return Err(format!(
            "expected 1 output [1, 4+C, N] (or [1, N, 4+C]), found {} outputs",
            outputs.len()
        ));
    };
    let bad = || {
        format!(
            "output 0 has shape {}, expected [1, 4+C, N] or [1, N, 4+C] (box cx, cy, w, h and C \
             class scores per anchor)",
            dims_str(dims)
        )
    };
    let &[b, a, n] = dims.as_slice() else {
        return Err(bad());
    };
    if b.is_some_and(|b| b != 1) {
        return Err(bad());
    }
    let cols = match (a, n) {
        (Some(a), Some(n)) => Some(a.min(n)),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    match cols {
        Some(c) if c <= BOX_COLS => Err(bad()),
        c => Ok(c.map(|c| c - BOX_COLS)),
    }
}

/// Decodes `out` into candidates in input px. The class count C is `labels.len()`; a candidate's
/// class is the best of the `wanted` ids, kept when its score is at least `score_threshold`.
/// No NMS here: see [`super::nms`]. A shape that is neither `[1, 4+C, N]` nor `[1, N, 4+C]` is a
/// [`DetectError::OutputLayout`] naming both.
pub fn decode(
    out: &OutputTensor,
    labels: &[&'static str],
    wanted: &[u16],
    score_threshold: f32,
) -> Result<Vec<Detection>, DetectError> {
    check_len(out, "yolov8")?;
    let classes = labels.len();
    let cols = BOX_COLS + classes;
    // value(row, anchor) = data[row * row_stride + anchor * anchor_stride]
    let (n, row_stride, anchor_stride) = match out.shape[..] {
        [1, a, n] if a == cols => (n, n, 1),
        [1, n, a] if a == cols => (n, 1, cols),
        _ => {
            return Err(DetectError::OutputLayout {
                family: "yolov8",
                reason: format!(
                    "output {:?} has shape {}, expected [1, {cols}, N] or [1, N, {cols}] (4 box values \
                     + {classes} class scores)",
                    out.name,
                    shape_str(&out.shape)
                ),
            })
        }
    };
    let d = &out.data;
    let at = |row: usize, anchor: usize| d[row * row_stride + anchor * anchor_stride];
    let mut dets = Vec::new();
    for i in 0..n {
        let Some((class_id, score)) = best_class(wanted, classes, |c| at(BOX_COLS + c, i)) else {
            return Ok(dets); // nothing wanted is in range: no anchor can match
        };
        if score.is_nan() || score < score_threshold {
            continue;
        }
        let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
        dets.push(Detection {
            bbox: BBox::from_center(cx, cy, w, h),
            score,
            class_id,
            class: label(labels, class_id),
        });
    }
    Ok(dets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: [&str; 3] = ["car", "truck", "person"];

    /// A `[1, 7, 10]` tensor with one box at anchor 4: centre (100, 50), 40 x 20, scores
    /// car 0.1, truck 0.7, person 0.9.
    fn channels_first() -> OutputTensor {
        let n = 10;
        let mut data = vec![0.0f32; 7 * n];
        for (row, v) in [100.0, 50.0, 40.0, 20.0, 0.1, 0.7, 0.9]
            .into_iter()
            .enumerate()
        {
            data[row * n + 4] = v;
        }
        // A weak car elsewhere.
        data[4 * n + 7] = 0.05;
        OutputTensor {
            name: "output0".into(),
            shape: vec![1, 7, n],
            data,
        }
    }

    fn transposed(t: &OutputTensor) -> OutputTensor {
        let (rows, n) = (t.shape[1], t.shape[2]);
        let mut data = vec![0.0; t.data.len()];
        for r in 0..rows {
            for a in 0..n {
                data[a * rows + r] = t.data[r * n + a];
            }
        }
        OutputTensor {
            name: t.name.clone(),
            shape: vec![1, n, rows],
            data,
        }
    }

    #[test]
    fn decodes_a_box_in_either_layout() {
        let t = channels_first();
        for out in [t.clone(), transposed(&t)] {
            let dets = decode(&out, &LABELS, &[0, 1], 0.3).unwrap();
            assert_eq!(dets.len(), 1, "{dets:?}");
            let d = &dets[0];
            assert_eq!((d.class_id, d.class), (1, "truck"));
            assert!((d.score - 0.7).abs() < 1e-6);
            assert_eq!(
                d.bbox,
                BBox {
                    x1: 80.0,
                    y1: 40.0,
                    x2: 120.0,
                    y2: 60.0
                }
            );
            // The threshold is respected, the unwanted person never comes.
            assert!(decode(&out, &LABELS, &[0, 1], 0.71).unwrap().is_empty());
            let all = decode(&out, &LABELS, &[0, 1], 0.01).unwrap();
            assert_eq!(all.len(), 2);
            assert!(all.iter().all(|d| d.class != "person"));
            let p = decode(&out, &LABELS, &[2], 0.5).unwrap();
            assert_eq!(p[0].class, "person");
        }
    }

    #[test]
    fn wrong_shapes_name_expected_and_got() {
        let mut t = channels_first();
        t.shape = vec![1, 10, 7];
        let e = decode(&t, &LABELS[..2], &[0], 0.1).unwrap_err().to_string();
        assert!(e.contains("[1, 6, N]") && e.contains("[1, 10, 7]"), "{e}");
        t.data.pop();
        let e = decode(&t, &LABELS, &[0], 0.1).unwrap_err().to_string();
        assert!(e.contains("69 values") && e.contains("expected 70"), "{e}");
    }

    #[test]
    fn layout_check_derives_the_class_count() {
        let o = |d: Vec<Option<usize>>| vec![("output0".to_string(), d)];
        assert_eq!(
            check_outputs(&o(vec![Some(1), Some(84), Some(8400)])),
            Ok(Some(80))
        );
        assert_eq!(
            check_outputs(&o(vec![Some(1), Some(8400), Some(84)])),
            Ok(Some(80))
        );
        assert_eq!(check_outputs(&o(vec![Some(1), Some(6), None])), Ok(Some(2)));
        assert_eq!(check_outputs(&o(vec![None, None, None])), Ok(None));
        let e = check_outputs(&o(vec![Some(1), Some(3549), Some(124), Some(1)])).unwrap_err();
        assert!(
            e.contains("[1, 3549, 124, 1]") && e.contains("[1, 4+C, N]"),
            "{e}"
        );
        assert!(check_outputs(&o(vec![Some(1), Some(4), Some(8400)])).is_err());
        assert!(check_outputs(&[]).is_err());
    }
}
