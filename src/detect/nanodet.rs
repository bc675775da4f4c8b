//! Decoder for the NanoDet output layout `[1, rows, 80 + 4 * 11]`.
//!
//! Rows are grid cells of the three heads (strides 8, 16, 32), each grid row-major. Columns
//! 0..80 are sigmoid class scores; columns 80..124 hold, per box side (left, top, right, bottom),
//! 11 logits of a discrete distance distribution (Generalized Focal Loss). The distance is the
//! expectation of the softmax over those bins times the stride, measured from the cell centre.

use super::{BBox, DetectError, Detection, COCO_CLASSES};

/// Number of class score columns (COCO-80).
pub const NUM_CLASSES: usize = 80;
/// Bins per box side in the distance distribution (`reg_max + 1`).
pub const REG_BINS: usize = 11;
/// Columns per output row.
pub const OUTPUT_COLS: usize = NUM_CLASSES + 4 * REG_BINS;
/// Head strides, px of input per grid cell, in output row order.
pub const STRIDES_PX: [u32; 3] = [8, 16, 32];

/// Grid side (cells) of each head for a square `input_size` px input, `ceil(size / stride)`.
pub fn grid_sizes(input_size: u32) -> [u32; 3] {
    STRIDES_PX.map(|s| input_size.div_ceil(s))
}

/// Output rows the model must produce for a square `input_size` input: total grid cells.
pub fn output_rows(input_size: u32) -> usize {
    grid_sizes(input_size)
        .iter()
        .map(|&g| (g as usize).pow(2))
        .sum()
}

/// Checks the model's declared outputs for a square `input_size` px input: output 0 must be
/// `[1, output_rows(input_size), OUTPUT_COLS]` (symbolic dimensions pass). Returns the class
/// count (always [`NUM_CLASSES`]) or why the layout does not match.
pub fn check_outputs(
    outputs: &[(String, Vec<Option<usize>>)],
    input_size: u32,
) -> Result<usize, String> {
    let rows = output_rows(input_size);
    let want = [1, rows, OUTPUT_COLS];
    let got = outputs.first().map(|(_, d)| d.as_slice()).unwrap_or(&[]);
    let fits = got.len() == 3 && got.iter().zip(want).all(|(g, w)| g.is_none_or(|g| g == w));
    if fits {
        Ok(NUM_CLASSES)
    } else {
        Err(format!(
            "output 0 has shape {}, expected [1, {rows}, {OUTPUT_COLS}] ({rows} grid cells at \
             strides 8/16/32 for a {input_size} px input, 80 class scores + 4 x 11 distance bins)",
            super::family::dims_str(got)
        ))
    }
}

/// Expected distance in bins from one side's logits (softmax, then sum of index x probability).
#[inline]
fn expected_bins(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

/// Decodes `output` (row-major `[rows, OUTPUT_COLS]`) of a model with a square `input_size` px
/// input into boxes in input px. A row becomes a candidate when its best score among the
/// `wanted` class ids is at least `score_threshold`; that class is the candidate's class.
/// No NMS here: see [`super::nms`].
pub fn decode(
    output: &[f32],
    input_size: u32,
    wanted: &[u16],
    score_threshold: f32,
) -> Result<Vec<Detection>, DetectError> {
    let rows = output_rows(input_size);
    if output.len() != rows * OUTPUT_COLS {
        return Err(DetectError::Run(format!(
            "nanodet output has {} values, a {input_size} px input needs {rows} x {OUTPUT_COLS}: \
             the model does not match the configured input size",
            output.len()
        )));
    }
    let wanted: Vec<usize> = wanted
        .iter()
        .map(|&c| c as usize)
        .filter(|&c| c < NUM_CLASSES)
        .collect();
    let mut dets = Vec::new();
    let cells = STRIDES_PX
        .into_iter()
        .zip(grid_sizes(input_size))
        .flat_map(|(stride, grid)| {
            (0..grid).flat_map(move |gy| (0..grid).map(move |gx| (stride as f32, gx, gy)))
        });
    for ((stride_px, gx, gy), row) in cells.zip(output.chunks_exact(OUTPUT_COLS)) {
        let best = wanted
            .iter()
            .map(|&c| (c, row[c]))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((class, score)) = best else { continue };
        if score < score_threshold {
            continue;
        }
        let reg = &row[NUM_CLASSES..];
        let [l, t, r, b] =
            [0, 1, 2, 3].map(|k| expected_bins(&reg[k * REG_BINS..(k + 1) * REG_BINS]) * stride_px);
        let cx = (gx as f32 + 0.5) * stride_px;
        let cy = (gy as f32 + 0.5) * stride_px;
        dets.push(Detection {
            bbox: BBox {
                x1: cx - l,
                y1: cy - t,
                x2: cx + r,
                y2: cy + b,
            },
            score,
            class_id: class as u16,
            class: COCO_CLASSES[class],
        });
    }
    Ok(dets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grid_for_416_matches_the_published_layout() {
        assert_eq!(grid_sizes(416), [52, 26, 13]);
        assert_eq!(output_rows(416), 3549);
        assert_eq!(OUTPUT_COLS, 124);
        assert_eq!(grid_sizes(320), [40, 20, 10]);
    }

    /// Logits that put all mass on bin `d` (distance `d * stride`).
    fn one_hot(d: usize) -> [f32; REG_BINS] {
        let mut l = [-30.0; REG_BINS];
        l[d] = 30.0;
        l
    }

    /// Row index of cell (gx, gy) in head `h` for a 416 input.
    fn row_of(h: usize, gx: usize, gy: usize) -> usize {
        let g = grid_sizes(416);
        let before: usize = g[..h].iter().map(|&s| (s as usize).pow(2)).sum();
        before + gy * g[h] as usize + gx
    }

    #[test]
    fn decodes_a_constructed_tensor() {
        let mut out = vec![0.0f32; output_rows(416) * OUTPUT_COLS];
        let mut set = |row: usize, class: usize, score: f32, sides: [usize; 4]| {
            let r = &mut out[row * OUTPUT_COLS..(row + 1) * OUTPUT_COLS];
            r[class] = score;
            for (k, d) in sides.into_iter().enumerate() {
                r[NUM_CLASSES + k * REG_BINS..NUM_CLASSES + (k + 1) * REG_BINS]
                    .copy_from_slice(&one_hot(d));
            }
        };
        // A car on the stride-16 head at cell (3, 5): centre (56, 88), sides 2,1,3,4 bins.
        set(row_of(1, 3, 5), 2, 0.8, [2, 1, 3, 4]);
        // A person (not wanted) on stride 8, and a weak truck on stride 32.
        set(row_of(0, 10, 10), 0, 0.9, [1, 1, 1, 1]);
        set(row_of(2, 12, 0), 7, 0.05, [1, 1, 1, 1]);
        let dets = decode(&out, 416, &[2, 3, 5, 7], 0.1).unwrap();
        assert_eq!(dets.len(), 1, "{dets:?}");
        let d = &dets[0];
        assert_eq!((d.class_id, d.class), (2, "car"));
        assert!((d.score - 0.8).abs() < 1e-6);
        let want = BBox {
            x1: 56.0 - 32.0,
            y1: 88.0 - 16.0,
            x2: 56.0 + 48.0,
            y2: 88.0 + 64.0,
        };
        assert!(d.bbox.iou(&want) > 0.999, "{:?} vs {want:?}", d.bbox);
        // Lowering the threshold brings back the weak truck; the person never comes.
        let dets = decode(&out, 416, &[2, 3, 5, 7], 0.01).unwrap();
        assert_eq!(dets.len(), 2);
        assert!(dets.iter().all(|d| d.class_id != 0));
    }

    #[test]
    fn picks_the_best_wanted_class_of_a_cell() {
        let mut out = vec![0.0f32; output_rows(416) * OUTPUT_COLS];
        out[2] = 0.4; // car
        out[7] = 0.6; // truck
        out[0] = 0.99; // person, not wanted
        let dets = decode(&out, 416, &[2, 7], 0.3).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, "truck");
        let dets = decode(&out, 416, &[2], 0.3).unwrap();
        assert_eq!(dets[0].class, "car");
    }

    #[test]
    fn layout_check_names_expected_and_got() {
        let ok = [("out".to_string(), vec![Some(1), None, Some(124)])];
        assert_eq!(check_outputs(&ok, 416), Ok(80));
        let bad = [(
            "out".to_string(),
            vec![Some(1), Some(3), Some(416), Some(416)],
        )];
        let e = check_outputs(&bad, 416).unwrap_err();
        assert!(
            e.contains("[1, 3549, 124]") && e.contains("[1, 3, 416, 416]"),
            "{e}"
        );
        assert!(check_outputs(&[], 416).is_err());
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(matches!(
            decode(&[0.0; 10], 416, &[2], 0.1),
            Err(DetectError::Run(_))
        ));
    }

    proptest! {
        #[test]
        fn expectation_lies_within_bins_and_is_shift_invariant(
            logits in proptest::array::uniform11(-20f32..20.0), shift in -50f32..50.0) {
            let e = expected_bins(&logits);
            prop_assert!((0.0..=(REG_BINS - 1) as f32).contains(&e));
            let shifted = logits.map(|l| l + shift);
            prop_assert!((expected_bins(&shifted) - e).abs() < 1e-3);
        }
    }
}
