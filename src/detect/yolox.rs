//! Decoder for YOLOX raw outputs (official `tools/export_onnx.py`, `decode_in_inference` off).
//!
//! The single output is `[1, N, 5 + C]`, one row per grid cell of the strides 8, 16 and 32 heads
//! (each grid row-major, heads in that order). Columns: `tx, ty, tw, th`, objectness, then C class
//! scores; objectness and class scores are already sigmoid. A cell `(gx, gy)` of stride `s`
//! decodes to centre `((tx + gx) * s, (ty + gy) * s)` and size `(exp(tw) * s, exp(th) * s)` in
//! input px; a class's score is objectness x class score.

use super::decode_util::{best_class, check_len, dims_str, label, shape_str};
use super::engine::OutputTensor;
use super::{BBox, DetectError, Detection};

/// Head strides, px of input per grid cell, in output row order.
pub const STRIDES_PX: [u32; 3] = [8, 16, 32];
/// Columns before the class scores: tx, ty, tw, th, objectness.
pub const BOX_COLS: usize = 5;
/// Largest `tw` / `th` used in `exp`, so a wild logit gives a huge box, not an infinite one.
const MAX_LOG_SIZE: f32 = 16.0;

/// Output rows (grid cells) for a square `input_size_px` input.
pub fn output_rows(input_size_px: u32) -> usize {
    STRIDES_PX
        .iter()
        .map(|&s| (input_size_px.div_ceil(s) as usize).pow(2))
        .sum()
}

/// Checks the model's declared outputs for a square `input_size_px` input: one output
/// `[1, output_rows, 5 + C]`. Returns C when known, or why the layout does not match.
pub fn check_outputs(
    outputs: &[(String, Vec<Option<usize>>)],
    input_size_px: u32,
) -> Result<Option<usize>, String> {
    let rows = output_rows(input_size_px);
    let bad = |dims: &[Option<usize>]| {
        format!(
            "output 0 has shape {}, expected [1, {rows}, 5+C] ({rows} grid cells at strides \
             8/16/32 for a {input_size_px} px input; tx, ty, tw, th, objectness, C class scores)",
            dims_str(dims)
        )
    };
    let [(_, dims)] = outputs else {
        return Err(format!(
            "expected 1 output [1, {rows}, 5+C], found {} outputs",
            outputs.len()
        ));
    };
    let &[b, n, c] = dims.as_slice() else {
        return Err(bad(dims));
    };
    if b.is_some_and(|b| b != 1) || n.is_some_and(|n| n != rows) || c.is_some_and(|c| c <= 5) {
        return Err(bad(dims));
    }
    Ok(c.map(|c| c - BOX_COLS))
}

/// Decodes `out` for a square `input_size_px` input into candidates in input px. The class count
/// C is `labels.len()`; a candidate's class is the best of the `wanted` ids by objectness x class
/// score, kept when that is at least `score_threshold`. No NMS here: see [`super::nms`].
pub fn decode(
    out: &OutputTensor,
    input_size_px: u32,
    labels: &[&'static str],
    wanted: &[u16],
    score_threshold: f32,
) -> Result<Vec<Detection>, DetectError> {
    check_len(out, "yolox")?;
    let classes = labels.len();
    let cols = BOX_COLS + classes;
    let rows = output_rows(input_size_px);
    if out.shape != [1, rows, cols] {
        return Err(DetectError::OutputLayout {
            family: "yolox",
            reason: format!(
                "output {:?} has shape {}, expected [1, {rows}, {cols}] ({rows} grid cells for a \
                 {input_size_px} px input, 5 + {classes} classes)",
                out.name,
                shape_str(&out.shape)
            ),
        });
    }
    let cells = STRIDES_PX.into_iter().flat_map(|s| {
        let g = input_size_px.div_ceil(s);
        (0..g).flat_map(move |gy| (0..g).map(move |gx| (s as f32, gx as f32, gy as f32)))
    });
    let mut dets = Vec::new();
    for ((s, gx, gy), row) in cells.zip(out.data.chunks_exact(cols)) {
        let obj = row[4];
        let Some((class_id, score)) = best_class(wanted, classes, |c| obj * row[BOX_COLS + c])
        else {
            return Ok(dets); // nothing wanted is in range
        };
        if score.is_nan() || score < score_threshold {
            continue;
        }
        let cx = (row[0] + gx) * s;
        let cy = (row[1] + gy) * s;
        let w = row[2].min(MAX_LOG_SIZE).exp() * s;
        let h = row[3].min(MAX_LOG_SIZE).exp() * s;
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

    const LABELS: [&str; 2] = ["car", "truck"];

    /// A 64 px model: grids 8, 4, 2 = 84 rows of 7 columns, with one box on the stride-16 head
    /// at cell (1, 2): centre (24, 36), 32 x 16, objectness 0.9, car 0.5, truck 0.8.
    fn tensor() -> OutputTensor {
        let mut data = vec![0.0f32; 84 * 7];
        let row = 64 + 2 * 4 + 1;
        data[row * 7..row * 7 + 7].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0, 0.9, 0.5, 0.8]);
        // A weak car at stride 8.
        data[3 * 7 + 4] = 0.5;
        data[3 * 7 + 5] = 0.1;
        OutputTensor {
            name: "output".into(),
            shape: vec![1, 84, 7],
            data,
        }
    }

    #[test]
    fn rows_for_640_are_8400() {
        assert_eq!(output_rows(640), 8400);
        assert_eq!(output_rows(64), 84);
    }

    #[test]
    fn decodes_a_constructed_tensor() {
        let out = tensor();
        let dets = decode(&out, 64, &LABELS, &[0, 1], 0.3).unwrap();
        assert_eq!(dets.len(), 1, "{dets:?}");
        let d = &dets[0];
        assert_eq!((d.class_id, d.class), (1, "truck"));
        assert!((d.score - 0.72).abs() < 1e-6);
        let want = BBox {
            x1: 8.0,
            y1: 28.0,
            x2: 40.0,
            y2: 44.0,
        };
        assert!(d.bbox.iou(&want) > 0.9999, "{:?}", d.bbox);
        // Only cars wanted: the same cell is a 0.45 car; the weak car shows below 0.3.
        let cars = decode(&out, 64, &LABELS, &[0], 0.01).unwrap();
        assert_eq!(cars.len(), 2);
        assert!(cars.iter().all(|d| d.class == "car"));
        assert!(decode(&out, 64, &LABELS, &[0, 1], 0.73).unwrap().is_empty());
    }

    #[test]
    fn wrong_shapes_name_expected_and_got() {
        let out = tensor();
        let e = decode(&out, 96, &LABELS, &[0], 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[1, 189, 7]") && e.contains("[1, 84, 7]"), "{e}");
        let e = check_outputs(&[("o".into(), vec![Some(1), Some(84), Some(7)])], 96).unwrap_err();
        assert!(
            e.contains("[1, 189, 5+C]") && e.contains("[1, 84, 7]"),
            "{e}"
        );
        assert_eq!(
            check_outputs(&[("o".into(), vec![Some(1), Some(8400), Some(85)])], 640),
            Ok(Some(80))
        );
    }
}
