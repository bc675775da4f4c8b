//! Optimal one-to-one matching of track boxes to detection boxes by IoU.
//!
//! Greedy matching can steal a detection from the track it belongs to when two vehicles overlap
//! (the moment of a crossing, where ids swap); an optimal assignment minimises the total cost
//! `1 - IoU` instead. Pairs below the IoU gate must stay unmatched, so the rectangular problem is
//! embedded in a square one of size `tracks + detections` where every row and column may also
//! take a "leave unmatched" slot costing half the gate (the `cost_limit` construction of the
//! `lap` package ByteTrack uses); that square problem is solved with `lapjv`.

use crate::detect::BBox;

/// Cost of a forbidden pair: larger than any sum of allowed costs on one row or column.
const FORBIDDEN: f64 = 1.0e3;

/// Matches `tracks` to `detections` maximising the total of `IoU - min_iou` over matched pairs
/// (so one more good match beats a slightly better fit of another); every pair has IoU >= `min_iou`.
/// Returns `(track_index, detection_index)` pairs sorted by track index.
pub fn match_by_iou(tracks: &[BBox], detections: &[BBox], min_iou: f32) -> Vec<(usize, usize)> {
    let (n, m) = (tracks.len(), detections.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let iou: Vec<Vec<f64>> = tracks
        .iter()
        .map(|t| detections.iter().map(|d| t.iou(d) as f64).collect())
        .collect();
    let gate = min_iou as f64;
    // A pair exactly at the gate is worth matching: make "unmatched" a hair dearer.
    let half_limit = (1.0 - gate) / 2.0 + 1e-9;
    let size = n + m;
    let mut costs = vec![FORBIDDEN; size * size];
    for i in 0..size {
        for j in 0..size {
            let c = &mut costs[i * size + j];
            match (i < n, j < m) {
                (true, true) if iou[i][j] >= gate => *c = 1.0 - iou[i][j],
                (true, false) if j - m == i => *c = half_limit,
                (false, true) if i - n == j => *c = half_limit,
                (false, false) => *c = 0.0,
                _ => {}
            }
        }
    }
    let solved = lapjv::Matrix::from_shape_vec((size, size), costs)
        .ok()
        .and_then(|matrix| lapjv::lapjv(&matrix).ok());
    let mut pairs: Vec<(usize, usize)> = match solved {
        Some((row_to_col, _)) => row_to_col
            .iter()
            .take(n)
            .enumerate()
            .filter(|&(i, &j)| j < m && iou[i][j] >= gate)
            .map(|(i, &j)| (i, j))
            .collect(),
        None => {
            tracing::warn!("lapjv failed on a {size}x{size} cost matrix; using greedy matching");
            greedy(&iou, gate)
        }
    };
    pairs.sort_unstable();
    pairs
}

/// Greedy fallback: repeatedly take the highest remaining IoU above the gate.
fn greedy(iou: &[Vec<f64>], gate: f64) -> Vec<(usize, usize)> {
    let mut cand: Vec<(f64, usize, usize)> = iou
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &v)| (v, i, j)))
        .filter(|&(v, _, _)| v >= gate)
        .collect();
    cand.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut row_used = vec![false; iou.len()];
    let mut col_used = vec![false; iou.first().map_or(0, Vec::len)];
    let mut pairs = Vec::new();
    for (_, i, j) in cand {
        if !row_used[i] && !col_used[j] {
            row_used[i] = true;
            col_used[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox {
            x1: x,
            y1: y,
            x2: x + w,
            y2: y + h,
        }
    }

    /// Best total `IoU - gate` over all gated matchings, by exhaustive search (small inputs only).
    fn brute_best(iou: &[Vec<f64>], gate: f64, row: usize, used: &mut Vec<bool>) -> f64 {
        if row == iou.len() {
            return 0.0;
        }
        let mut best = brute_best(iou, gate, row + 1, used);
        for j in 0..used.len() {
            if !used[j] && iou[row][j] >= gate {
                used[j] = true;
                best = best.max(iou[row][j] - gate + brute_best(iou, gate, row + 1, used));
                used[j] = false;
            }
        }
        best
    }

    #[test]
    fn optimal_beats_greedy_on_overlap() {
        // Greedy would give track 0 detection 0 (IoU highest) and leave track 1 with nothing.
        let tracks = [b(0.0, 0.0, 10.0, 10.0), b(4.0, 0.0, 10.0, 10.0)];
        let dets = [b(2.0, 0.0, 10.0, 10.0), b(-3.0, 0.0, 10.0, 10.0)];
        let pairs = match_by_iou(&tracks, &dets, 0.2);
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn empty_inputs_match_nothing() {
        assert!(match_by_iou(&[], &[b(0.0, 0.0, 1.0, 1.0)], 0.2).is_empty());
        assert!(match_by_iou(&[b(0.0, 0.0, 1.0, 1.0)], &[], 0.2).is_empty());
    }

    proptest! {
        #[test]
        fn matches_brute_force_optimum(
            tracks in proptest::collection::vec((0.0f32..60.0, 0.0f32..60.0, 5.0f32..30.0, 5.0f32..30.0), 0..5),
            dets in proptest::collection::vec((0.0f32..60.0, 0.0f32..60.0, 5.0f32..30.0, 5.0f32..30.0), 0..5),
            gate in 0.05f32..0.6,
        ) {
            let tb: Vec<BBox> = tracks.iter().map(|&(x, y, w, h)| b(x, y, w, h)).collect();
            let db: Vec<BBox> = dets.iter().map(|&(x, y, w, h)| b(x, y, w, h)).collect();
            let pairs = match_by_iou(&tb, &db, gate);
            let iou: Vec<Vec<f64>> =
                tb.iter().map(|t| db.iter().map(|d| t.iou(d) as f64).collect()).collect();
            let mut seen_d = vec![false; db.len()];
            let mut total = 0.0;
            for &(i, j) in &pairs {
                prop_assert!(iou[i][j] >= gate as f64);
                prop_assert!(!seen_d[j]);
                seen_d[j] = true;
                total += iou[i][j] - gate as f64;
            }
            let best = brute_best(&iou, gate as f64, 0, &mut vec![false; db.len()]);
            prop_assert!(total >= best - 1e-6, "total {total} < best {best}");
        }
    }
}
