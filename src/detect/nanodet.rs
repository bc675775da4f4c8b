//! Decoder for the NanoDet output layout `[1, rows, 80 + 4 * 11]`.
//!
//! Rows are grid cells of the three heads (strides 8, 16, 32), each grid row-major. Columns
//! 0..80 are sigmoid class scores; columns 80..124 hold, per box side (left, top, right, bottom),
//! 11 logits of a discrete distance distribution (Generalized Focal Loss). The distance is the
//! expectation of the softmax over those bins times the stride, measured from the cell centre.

use super::{BBox, DetectError, Detection, COCO_CLASSES};

/// Number of class score columns (COCO-80).
pub(crate) const NUM_CLASSES: usize = 80;
/// Bins per box side in the distance distribution (`reg_max + 1`).
pub(crate) const REG_BINS: usize = 11;
/// Columns per output row.
pub(crate) const OUTPUT_COLS: usize = NUM_CLASSES + 4 * REG_BINS;
/// Head strides, px of input per grid cell, in output row order.
pub const STRIDES_PX: [u32; 3] = [8, 16, 32];

/// Grid side (cells) of each head for a square `input_size` px input, `ceil(size / stride)`.
pub(crate) fn grid_sizes(input_size: u32) -> [u32; 3] {
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
/// count (always `NUM_CLASSES`) or why the layout does not match.
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
            super::decode_util::dims_str(got)
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

/// Hints the CPU to fetch the class scores of the row [`PREFETCH_ROWS`] after `row`.
///
/// After inference the output tensor is mostly out of cache and the scan reads one cache line
/// per 496-byte row: too sparse for the hardware prefetcher to run ahead across pages, so the
/// scan waits on memory row after row. A prefetch is only a hint (it never faults, even past the
/// end of the tensor), so the address need not be valid.
#[inline(always)]
fn prefetch_ahead(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let ahead = row.as_ptr().wrapping_add(PREFETCH_ROWS * OUTPUT_COLS);
        // SAFETY: SSE is part of the x86_64 baseline; prefetching does not dereference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// How many rows ahead [`prefetch_ahead`] fetches (about the memory latency over the time the
/// scan spends on a row). Only the x86_64 prefetch uses it.
#[cfg(target_arch = "x86_64")]
const PREFETCH_ROWS: usize = 12;

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
        return Err(DetectError::OutputLayout {
            family: "nanodet",
            reason: format!(
                "output has {} values, a {input_size} px input needs {rows} x {OUTPUT_COLS}: the model \
                 does not match the configured input size",
                output.len()
            ),
        });
    }
    // Class columns to scan, as column indices; a handful (the vehicle classes), so a linear
    // scan per row beats anything cleverer.
    let wanted: Vec<usize> = wanted
        .iter()
        .map(|&c| c as usize)
        .filter(|&c| c < NUM_CLASSES)
        .collect();
    let mut dets = Vec::new();
    let mut rows = output.chunks_exact(OUTPUT_COLS);
    for (stride, grid) in STRIDES_PX.into_iter().zip(grid_sizes(input_size)) {
        let stride_px = stride as f32;
        for gy in 0..grid {
            for (gx, row) in (0..grid).zip(rows.by_ref()) {
                prefetch_ahead(row);
                // Best wanted class; on equal scores the later id wins (as `Iterator::max_by`).
                let mut best: Option<(usize, f32)> = None;
                for &c in &wanted {
                    let v = row[c];
                    if best.is_none_or(|(_, b)| v.total_cmp(&b).is_ge()) {
                        best = Some((c, v));
                    }
                }
                let Some((class, score)) = best else { continue };
                // Most rows stop here: the softmax below only runs for candidates.
                if score < score_threshold {
                    continue;
                }
                let reg = &row[NUM_CLASSES..];
                let [l, t, r, b] = [0, 1, 2, 3]
                    .map(|k| expected_bins(&reg[k * REG_BINS..(k + 1) * REG_BINS]) * stride_px);
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
        }
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
            Err(DetectError::OutputLayout {
                family: "nanodet",
                ..
            })
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

    /// The decoder and NMS as they were before the rewrite, the definition the current ones must
    /// reproduce exactly.
    mod reference {
        use super::super::{expected_bins, grid_sizes, output_rows, NUM_CLASSES, OUTPUT_COLS};
        use super::super::{REG_BINS, STRIDES_PX};
        use crate::detect::{BBox, Detection, COCO_CLASSES};

        pub(crate) fn decode(
            output: &[f32],
            input_size: u32,
            wanted: &[u16],
            thr: f32,
        ) -> Vec<Detection> {
            assert_eq!(output.len(), output_rows(input_size) * OUTPUT_COLS);
            let wanted: Vec<usize> = wanted
                .iter()
                .map(|&c| c as usize)
                .filter(|&c| c < NUM_CLASSES)
                .collect();
            let mut dets = Vec::new();
            let cells =
                STRIDES_PX
                    .into_iter()
                    .zip(grid_sizes(input_size))
                    .flat_map(|(stride, grid)| {
                        (0..grid)
                            .flat_map(move |gy| (0..grid).map(move |gx| (stride as f32, gx, gy)))
                    });
            for ((stride_px, gx, gy), row) in cells.zip(output.chunks_exact(OUTPUT_COLS)) {
                let best = wanted
                    .iter()
                    .map(|&c| (c, row[c]))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let Some((class, score)) = best else { continue };
                if score < thr {
                    continue;
                }
                let reg = &row[NUM_CLASSES..];
                let [l, t, r, b] = [0, 1, 2, 3]
                    .map(|k| expected_bins(&reg[k * REG_BINS..(k + 1) * REG_BINS]) * stride_px);
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
            dets
        }

        pub(crate) fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
            dets.sort_by(|a, b| b.score.total_cmp(&a.score));
            let mut kept: Vec<Detection> = Vec::with_capacity(dets.len().min(64));
            for d in dets {
                let suppressed = kept
                    .iter()
                    .any(|k| k.class_id == d.class_id && k.bbox.iou(&d.bbox) > iou_threshold);
                if !suppressed {
                    kept.push(d);
                }
            }
            kept
        }
    }

    /// A random NanoDet-like output: class scores mostly low with blobs of high ones (objects
    /// light up neighbouring cells), regression logits spread over -8..8; scores repeat often
    /// so ties between classes and between rows are exercised.
    fn random_output(seed: u64, size: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut out = vec![0.0f32; output_rows(size) * OUTPUT_COLS];
        for row in out.chunks_exact_mut(OUTPUT_COLS) {
            let hot = next() < 0.03;
            for v in &mut row[..NUM_CLASSES] {
                let x = next();
                *v = if hot {
                    (x * 8.0).round() / 8.0
                } else {
                    x * 0.2
                };
            }
            for v in &mut row[NUM_CLASSES..] {
                *v = next() * 16.0 - 8.0;
            }
        }
        out
    }

    #[test]
    fn decode_and_nms_match_the_reference() {
        let wanted_sets: [&[u16]; 5] = [&[2, 3, 5, 7], &[2], &[7, 2, 2, 300], &[], &[0, 1, 2, 79]];
        for seed in 1..6 {
            for size in [416, 320] {
                let out = random_output(seed, size);
                for wanted in wanted_sets {
                    for thr in [0.1, 0.35, 0.5, 0.9] {
                        let got = decode(&out, size, wanted, thr).unwrap();
                        let want = reference::decode(&out, size, wanted, thr);
                        assert_eq!(got, want, "seed {seed} size {size} {wanted:?} {thr}");
                        for iou in [0.3, 0.6] {
                            assert_eq!(
                                crate::detect::nms::nms_per_class(got.clone(), iou),
                                reference::nms(want.clone(), iou)
                            );
                        }
                    }
                }
            }
        }
    }

    /// Times the reference and the current decode + NMS on a real output (the bundled model run
    /// once on a street photo), interleaved, 200 runs each, with the tensor out of cache as after
    /// inference; prints median and minimum.
    /// `cargo test --release --lib nanodet::tests::postprocess_timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, not a check: run with --release --ignored --nocapture"]
    fn postprocess_timing() {
        use crate::detect::engine::Engine;
        use crate::detect::letterbox::Letterboxer;
        use crate::detect::nms::nms_per_class;
        use std::time::Instant;
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cfg = crate::detect::DetectorConfig {
            model: root.join("models/nanodet-g-416.onnx"),
            ..Default::default()
        };
        let mut engine = crate::detect::tract::TractEngine::load(&cfg).expect("model loads");
        let (wanted, thr, iou) = ([2u16, 3, 5, 7], 0.35, 0.6); // config/demo.toml
        for name in [
            "node-opencv_car1.jpg",
            "node-opencv_car2.jpg",
            "darknet_dog.jpg",
        ] {
            let img = image::open(root.join("tests/data/images").join(name))
                .unwrap()
                .to_rgb8();
            let frame = crate::frame::Frame::i420_from_rgb_image("t".into(), 0, 0, &img);
            let mut lb = Letterboxer::new(416);
            let mut input = vec![0.0; lb.input_len()];
            lb.run(&frame, &mut input).unwrap();
            let out = engine.run(&input, 416).unwrap().swap_remove(0).data;
            let (mut old, mut new) = (Vec::new(), Vec::new());
            let (mut n_cand, mut n_kept) = (0, 0);
            // Inference leaves the output tensor mostly out of cache; sweeping a buffer larger
            // than the caches before each run reproduces that.
            let mut evict = vec![0u8; 64 << 20];
            let mut cold = |i: usize| {
                for p in evict.iter_mut().step_by(64) {
                    *p = p.wrapping_add(i as u8);
                }
                std::hint::black_box(&evict);
            };
            for i in 0..210 {
                cold(i);
                let t = Instant::now();
                let a = reference::nms(reference::decode(&out, 416, &wanted, thr), iou);
                let t_old = t.elapsed().as_secs_f64() * 1e3;
                cold(i);
                let t = Instant::now();
                let cands = decode(&out, 416, &wanted, thr).unwrap();
                n_cand = cands.len();
                let b = nms_per_class(cands, iou);
                let t_new = t.elapsed().as_secs_f64() * 1e3;
                assert_eq!(a, b);
                n_kept = b.len();
                if i >= 10 {
                    old.push(t_old);
                    new.push(t_new);
                }
            }
            old.sort_by(f64::total_cmp);
            new.sort_by(f64::total_cmp);
            println!(
                "decode+nms {name} ({n_cand} candidates, {n_kept} kept): reference median \
                 {:.4} ms min {:.4} ms; current median {:.4} ms min {:.4} ms",
                old[old.len() / 2],
                old[0],
                new[new.len() / 2],
                new[0]
            );
        }
    }
}
