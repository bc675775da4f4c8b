//! Letterbox a frame into the square, normalised NCHW input of a detection model.
//!
//! The frame is scaled to fit the square with its aspect ratio kept, centred or in the top-left
//! corner, and the borders hold the family's pad value; channel order and normalisation come from
//! a [`PreprocessSpec`]. Resampling reads the source format directly (I420 planes or packed
//! RGB): bilinear when the scale factor is under 2x, an area average when shrinking more (so a
//! 1080p frame does not alias into 416 px). I420 planes are resampled separately and converted to
//! RGB only at output resolution, because the YUV -> RGB matrix is affine and commutes with
//! averaging; this avoids a full-frame colour conversion.

use super::engine::PreprocessSpec;
use super::BBox;
use crate::frame::{buffer_len, Frame, FrameError, PixelFormat};

/// Per-channel mean subtracted from B, G, R pixel values (NanoDet training normalisation).
pub const MEAN_BGR: [f32; 3] = [103.53, 116.28, 123.675];
/// Per-channel standard deviation dividing B, G, R pixel values after the mean is removed.
pub const STD_BGR: [f32; 3] = [57.375, 57.12, 58.395];

/// Where the frame landed inside the model input: `input_px = frame_px * scale + pad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxMap {
    /// Model input px per frame px (same on both axes: aspect is kept).
    pub scale: f32,
    /// Left border of the picture inside the input, px.
    pub pad_x_px: f32,
    /// Top border of the picture inside the input, px.
    pub pad_y_px: f32,
    /// Width of the scaled picture inside the input, px.
    pub content_w_px: u32,
    /// Height of the scaled picture inside the input, px.
    pub content_h_px: u32,
}

impl LetterboxMap {
    /// The mapping for a `frame_w x frame_h` frame centred in a `size x size` input.
    pub fn new(frame_w: u32, frame_h: u32, size: u32) -> LetterboxMap {
        LetterboxMap::placed(frame_w, frame_h, size, true)
    }

    /// The mapping for a `frame_w x frame_h` frame in a `size x size` input: centred when
    /// `centred`, else in the top-left corner (pad 0, borders right and bottom, as YOLOX).
    pub fn placed(frame_w: u32, frame_h: u32, size: u32, centred: bool) -> LetterboxMap {
        let (w, h, s) = (frame_w.max(1) as f32, frame_h.max(1) as f32, size as f32);
        let scale = (s / w).min(s / h);
        let content_w_px = ((w * scale).round() as u32).clamp(1, size);
        let content_h_px = ((h * scale).round() as u32).clamp(1, size);
        let pad = |content: u32| {
            if centred {
                ((size - content) / 2) as f32
            } else {
                0.0
            }
        };
        LetterboxMap {
            scale,
            pad_x_px: pad(content_w_px),
            pad_y_px: pad(content_h_px),
            content_w_px,
            content_h_px,
        }
    }

    /// A box in frame px -> the same box in model input px.
    #[cfg(test)]
    pub fn to_input(&self, b: &BBox) -> BBox {
        BBox {
            x1: b.x1 * self.scale + self.pad_x_px,
            y1: b.y1 * self.scale + self.pad_y_px,
            x2: b.x2 * self.scale + self.pad_x_px,
            y2: b.y2 * self.scale + self.pad_y_px,
        }
    }

    /// A box in model input px -> the same box in frame px (not clipped to the frame).
    pub fn to_frame(&self, b: &BBox) -> BBox {
        BBox {
            x1: (b.x1 - self.pad_x_px) / self.scale,
            y1: (b.y1 - self.pad_y_px) / self.scale,
            x2: (b.x2 - self.pad_x_px) / self.scale,
            y2: (b.y2 - self.pad_y_px) / self.scale,
        }
    }
}

/// Resampling weights along one axis: output `o` reads the `k` consecutive source samples
/// `first[o]..first[o] + k` with weights `w[o*k..o*k+k]`.
///
/// Source indices past the last sample stand for the last sample (edge clamping). Rather than
/// clamping per tap, the row buffers the horizontal pass reads are padded with `k - 1` copies of
/// their last sample, so every tap window is a contiguous slice; the vertical pass clamps its
/// (few) row indices instead.
#[derive(Debug, Clone, PartialEq)]
struct Taps {
    k: usize,
    first: Vec<usize>,
    w: Vec<f32>,
}

impl Taps {
    /// Taps for `n_out` outputs over a source axis of `src_len` samples, `ratio` source samples per
    /// output sample. Output `o` covers source `[o * ratio, (o + 1) * ratio)`.
    fn new(src_len: usize, ratio: f32, n_out: usize) -> Taps {
        let last = src_len.saturating_sub(1);
        if ratio <= 2.0 {
            // Bilinear between the two samples around the output centre.
            let mut t = Taps {
                k: 2,
                first: Vec::with_capacity(n_out),
                w: Vec::with_capacity(n_out * 2),
            };
            for o in 0..n_out {
                let c = ((o as f32 + 0.5) * ratio - 0.5).max(0.0);
                let i0 = c.floor();
                let f = c - i0;
                t.first.push((i0 as usize).min(last));
                t.w.extend([1.0 - f, f]);
            }
            t
        } else {
            // Area average: each source sample weighs by its overlap with the output footprint.
            let k = ratio.ceil() as usize + 1;
            let mut t = Taps {
                k,
                first: Vec::with_capacity(n_out),
                w: Vec::with_capacity(n_out * k),
            };
            for o in 0..n_out {
                let a = o as f32 * ratio;
                let b = a + ratio;
                let first = a.floor() as usize;
                for j in 0..k {
                    let i = first + j;
                    let overlap = (b.min(i as f32 + 1.0) - a.max(i as f32)).max(0.0);
                    t.w.push(overlap / ratio);
                }
                // Clamping `first` as well keeps every tap on the last sample when the footprint
                // starts past it (float rounding at the far edge), as per-tap clamping would.
                t.first.push(first.min(last));
            }
            t
        }
    }

    /// First source index and the `k` weights of output `o`.
    #[inline]
    fn at(&self, o: usize) -> (usize, &[f32]) {
        (self.first[o], &self.w[o * self.k..(o + 1) * self.k])
    }
}

/// Resampling plan for one source geometry, cached between frames of the same size.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    format: PixelFormat,
    width: u32,
    height: u32,
    map: LetterboxMap,
    /// Rgb8: the only plane; I420: luma.
    x0: Taps,
    y0: Taps,
    /// I420 chroma planes.
    x1: Taps,
    y1: Taps,
}

impl Plan {
    fn new(format: PixelFormat, width: u32, height: u32, size: u32, centred: bool) -> Plan {
        let map = LetterboxMap::placed(width, height, size, centred);
        let ratio = 1.0 / map.scale;
        let (nw, nh) = (map.content_w_px as usize, map.content_h_px as usize);
        let (w, h) = (width as usize, height as usize);
        let (x1, y1) = match format {
            PixelFormat::I420 => (
                Taps::new(w.div_ceil(2), ratio * 0.5, nw),
                Taps::new(h.div_ceil(2), ratio * 0.5, nh),
            ),
            PixelFormat::Rgb8 => (Taps::new(1, 1.0, 0), Taps::new(1, 1.0, 0)),
        };
        Plan {
            format,
            width,
            height,
            map,
            x0: Taps::new(w, ratio, nw),
            y0: Taps::new(h, ratio, nh),
            x1,
            y1,
        }
    }
}

/// Per tensor channel: which RGB component feeds it and the affine normalisation
/// `(v - mean) * inv_std`, precomputed from a [`PreprocessSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Norm {
    /// Index into [r, g, b] for tensor channel 0, 1, 2.
    src: [usize; 3],
    mean: [f32; 3],
    inv_std: [f32; 3],
    /// The border value per tensor channel, after normalisation.
    pad: [f32; 3],
}

impl Norm {
    fn new(spec: &PreprocessSpec) -> Norm {
        let inv_std = spec.std.map(|s| 1.0 / s);
        Norm {
            src: if spec.bgr { [2, 1, 0] } else { [0, 1, 2] },
            mean: spec.mean,
            inv_std,
            pad: [0, 1, 2].map(|c| (spec.pad_value - spec.mean[c]) * inv_std[c]),
        }
    }

    /// `(mean, inv_std)` of the tensor channel fed by RGB component `comp` (0 = R).
    fn of_component(&self, comp: usize) -> (f32, f32) {
        let c = (0..3).find(|&c| self.src[c] == comp).unwrap_or(comp);
        (self.mean[c], self.inv_std[c])
    }
}

/// Row buffers reused between frames: vertical-pass rows (padded, see [`Taps`]) and
/// horizontal-pass rows at output resolution.
#[derive(Debug, Clone, Default)]
struct Rows {
    /// Vertical pass output: luma / U / V (I420) or the packed RGB row (Rgb8, in `v[0]`).
    v: [Vec<f32>; 3],
    /// Horizontal pass output, one output row per component: Y, U, V or R, G, B.
    h: [Vec<f32>; 3],
}

/// Reusable letterboxer for one model input size and [`PreprocessSpec`]; keeps resampling tables
/// and row buffers between frames so the per-frame cost is the arithmetic only.
#[derive(Debug, Clone)]
pub struct Letterboxer {
    size: u32,
    spec: PreprocessSpec,
    norm: Norm,
    plan: Option<Plan>,
    rows: Rows,
}

/// `out[x] = sum_j w[j] * src[row_j * stride + x]` for `x < stride` (one source row is `stride`
/// values), in tap order, over the taps with non-zero weight (a footprint often covers one
/// sample fewer than `k`); `row_j = min(first + j, last)`. `out` may be longer than `stride`
/// (padding); that part is left alone.
///
/// Taps are applied in groups of up to four per sweep over the row, accumulating in registers,
/// instead of one read-modify-write sweep per tap: the row is 1280 wide, so sweeps cost more than
/// the arithmetic. The first group assigns, so no clearing pass is needed. The summation order is
/// the same as tap-by-tap accumulation, so the result is too.
#[inline(always)]
fn vertical(src: &[u8], stride: usize, first: usize, last: usize, w: &[f32], out: &mut [f32]) {
    let n = stride;
    let out = &mut out[..n];
    let row = |j: usize| {
        let i = (first + j).min(last);
        &src[i * stride..i * stride + n]
    };
    let mut group: [(&[u8], f32); 4] = [(&[], 0.0); 4];
    let (mut len, mut assign) = (0, true);
    for (j, &wj) in w.iter().enumerate() {
        if wj == 0.0 {
            continue;
        }
        group[len] = (row(j), wj);
        len += 1;
        if len == 4 {
            vertical_group(out, &group, assign);
            (len, assign) = (0, false);
        }
    }
    if len > 0 || assign {
        vertical_group(out, &group[..len], assign);
    }
}

/// One sweep of [`vertical`]: `out (=|+=) sum of w * row` over `taps` (at most four), with
/// every row at least `out.len()` long.
#[inline(always)]
fn vertical_group(out: &mut [f32], taps: &[(&[u8], f32)], assign: bool) {
    // A fixed tap count per loop lets the compiler keep the sum in registers and vectorise.
    #[inline(always)]
    fn sweep<const N: usize, const ASSIGN: bool>(out: &mut [f32], taps: &[(&[u8], f32)]) {
        let n = out.len();
        let rows: [&[u8]; N] = std::array::from_fn(|j| &taps[j].0[..n]);
        let w: [f32; N] = std::array::from_fn(|j| taps[j].1);
        for (x, o) in out.iter_mut().enumerate() {
            let mut acc = if ASSIGN { 0.0 } else { *o };
            for j in 0..N {
                let p = w[j] * rows[j][x] as f32;
                // Assigning the first product equals `0.0 + p` exactly (p is never -0.0).
                acc = if ASSIGN && j == 0 { p } else { acc + p };
            }
            *o = acc;
        }
    }
    match (taps.len(), assign) {
        (0, true) => out.fill(0.0),
        (0, false) => {}
        (1, true) => sweep::<1, true>(out, taps),
        (2, true) => sweep::<2, true>(out, taps),
        (3, true) => sweep::<3, true>(out, taps),
        (_, true) => sweep::<4, true>(out, taps),
        (1, false) => sweep::<1, false>(out, taps),
        (2, false) => sweep::<2, false>(out, taps),
        (3, false) => sweep::<3, false>(out, taps),
        (_, false) => sweep::<4, false>(out, taps),
    }
}

/// Copies the last `ch` values of `row[..n]` (one sample of `ch` channels) over the rest of
/// `row`, so tap windows that run past the edge read the edge sample (see [`Taps`]).
#[inline(always)]
fn pad_row(row: &mut [f32], n: usize, ch: usize) {
    let (body, pad) = row.split_at_mut(n);
    let edge = &body[n - ch..];
    for p in pad.chunks_exact_mut(ch) {
        p.copy_from_slice(edge);
    }
}

/// `out[o] = sum_j w[o*k + j] * row[first[o] + j]` for a single-channel, padded `row`.
#[inline(always)]
fn horizontal(row: &[f32], taps: &Taps, out: &mut [f32]) {
    // Monomorphised for the common tap counts so the window is a fixed-size slice (one bounds
    // check per output, unrolled sum); 2 = bilinear, 5 = area average at ~3x (1280 -> 416).
    #[inline(always)]
    fn fixed<const K: usize>(row: &[f32], taps: &Taps, out: &mut [f32]) {
        for ((o, &f), w) in out.iter_mut().zip(&taps.first).zip(taps.w.chunks_exact(K)) {
            let r = &row[f..f + K];
            let mut acc = w[0] * r[0];
            for j in 1..K {
                acc += w[j] * r[j];
            }
            *o = acc;
        }
    }
    match taps.k {
        2 => fixed::<2>(row, taps, out),
        3 => fixed::<3>(row, taps, out),
        4 => fixed::<4>(row, taps, out),
        5 => fixed::<5>(row, taps, out),
        6 => fixed::<6>(row, taps, out),
        k => {
            for ((o, &f), w) in out.iter_mut().zip(&taps.first).zip(taps.w.chunks_exact(k)) {
                *o = w.iter().zip(&row[f..f + k]).map(|(&wj, &p)| wj * p).sum();
            }
        }
    }
}

/// [`horizontal`] over a packed RGB `row` (padded by whole pixels), into one row per component.
#[inline(always)]
fn horizontal_rgb(row: &[f32], taps: &Taps, [r, g, b]: [&mut [f32]; 3]) {
    #[inline(always)]
    fn fixed<const K: usize>(
        row: &[f32],
        taps: &Taps,
        r: &mut [f32],
        g: &mut [f32],
        b: &mut [f32],
    ) {
        let outs = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
        for (((or, og), ob), (&f, w)) in outs.zip(taps.first.iter().zip(taps.w.chunks_exact(K))) {
            let p = &row[f * 3..f * 3 + K * 3];
            let mut acc = [w[0] * p[0], w[0] * p[1], w[0] * p[2]];
            for j in 1..K {
                acc[0] += w[j] * p[j * 3];
                acc[1] += w[j] * p[j * 3 + 1];
                acc[2] += w[j] * p[j * 3 + 2];
            }
            (*or, *og, *ob) = (acc[0], acc[1], acc[2]);
        }
    }
    match taps.k {
        2 => fixed::<2>(row, taps, r, g, b),
        5 => fixed::<5>(row, taps, r, g, b),
        k => {
            let outs = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
            for (((or, og), ob), (&f, w)) in outs.zip(taps.first.iter().zip(taps.w.chunks_exact(k)))
            {
                let mut acc = [0.0f32; 3];
                for (j, &wj) in w.iter().enumerate() {
                    let p = &row[(f + j) * 3..(f + j) * 3 + 3];
                    acc[0] += wj * p[0];
                    acc[1] += wj * p[1];
                    acc[2] += wj * p[2];
                }
                (*or, *og, *ob) = (acc[0], acc[1], acc[2]);
            }
        }
    }
}

impl Letterboxer {
    /// A letterboxer producing `size x size` NanoDet inputs ([`PreprocessSpec::NANODET`]).
    pub fn new(size: u32) -> Letterboxer {
        Letterboxer::with_spec(size, PreprocessSpec::NANODET)
    }

    /// A letterboxer producing `size x size` inputs filled as `spec` says (channel order,
    /// mean/std, pad value, placement).
    ///
    /// Panics when a `spec.std` entry is 0 or not finite (a programming error in a family's
    /// constant, not a data error).
    pub fn with_spec(size: u32, spec: PreprocessSpec) -> Letterboxer {
        assert!(
            spec.std.iter().all(|s| s.is_finite() && *s != 0.0),
            "preprocess std must be finite and non-zero: {:?}",
            spec.std
        );
        Letterboxer {
            size,
            spec,
            norm: Norm::new(&spec),
            plan: None,
            rows: Rows::default(),
        }
    }

    /// How inputs are filled.
    pub fn spec(&self) -> &PreprocessSpec {
        &self.spec
    }

    /// Fills `out` with an input holding only the pad value (a blank frame), e.g. to warm a model
    /// up. Panics when `out` is not [`Letterboxer::input_len`] long.
    pub fn fill_blank(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.input_len(), "letterbox output buffer size");
        let plane = (self.size as usize).pow(2);
        for (c, p) in out.chunks_exact_mut(plane).enumerate() {
            p.fill(self.norm.pad[c]);
        }
    }

    /// Side of the square model input, px.
    pub fn input_size(&self) -> u32 {
        self.size
    }

    /// Number of f32 values in one input tensor, `3 * size * size`.
    pub fn input_len(&self) -> usize {
        3 * (self.size as usize).pow(2)
    }

    /// Writes `frame` letterboxed into `out` (NCHW `[1, 3, S, S]`; channel order, normalisation
    /// and border as the spec says) and returns the mapping from frame px to input px.
    ///
    /// Fails when the frame's buffer does not match its declared size. Panics when `out` is not
    /// [`Letterboxer::input_len`] long (a programming error, not a data error).
    pub fn run(&mut self, frame: &Frame, out: &mut [f32]) -> Result<LetterboxMap, FrameError> {
        assert_eq!(out.len(), self.input_len(), "letterbox output buffer size");
        if frame.width == 0 || frame.height == 0 {
            return Err(FrameError::Empty {
                width: frame.width,
                height: frame.height,
            });
        }
        let want = buffer_len(frame.format, frame.width, frame.height);
        if frame.data.len() != want {
            return Err(FrameError::Size {
                format: frame.format,
                width: frame.width,
                height: frame.height,
                want,
                got: frame.data.len(),
            });
        }
        let stale = !matches!(&self.plan, Some(p)
            if p.format == frame.format && p.width == frame.width && p.height == frame.height);
        if stale {
            self.plan = None;
        }
        let (size, centred, norm) = (self.size, self.spec.centred, self.norm);
        let plan = self.plan.get_or_insert_with(|| {
            Plan::new(frame.format, frame.width, frame.height, size, centred)
        });
        fill_borders(out, self.size as usize, &plan.map, &norm.pad);
        match frame.format {
            PixelFormat::Rgb8 => rgb_into(plan, &norm, &frame.data, size, &mut self.rows, out),
            PixelFormat::I420 => i420_into(plan, &norm, &frame.data, size, &mut self.rows, out),
        }
        Ok(plan.map)
    }
}

/// Sets the letterbox borders (everything outside the picture) to the normalised pad value of
/// each plane; the picture itself is overwritten by the resampler, so it is not cleared.
fn fill_borders(out: &mut [f32], s: usize, map: &LetterboxMap, pad: &[f32; 3]) {
    let (px, py) = (map.pad_x_px as usize, map.pad_y_px as usize);
    let (cw, ch) = (map.content_w_px as usize, map.content_h_px as usize);
    for (plane, &v) in out.chunks_exact_mut(s * s).zip(pad) {
        plane[..py * s].fill(v);
        plane[(py + ch) * s..].fill(v);
        for row in plane[py * s..(py + ch) * s].chunks_exact_mut(s) {
            row[..px].fill(v);
            row[px + cw..].fill(v);
        }
    }
}

/// The three tensor rows of output row `oy` (content columns only), indexed by the RGB component
/// that feeds them (0 = R), with that channel's `(mean, inv_std)`.
#[inline(always)]
fn out_rows<'a>(
    out: &'a mut [f32],
    plan: &Plan,
    norm: &Norm,
    s: usize,
    oy: usize,
) -> [(&'a mut [f32], f32, f32); 3] {
    let (pad_x, pad_y) = (plan.map.pad_x_px as usize, plan.map.pad_y_px as usize);
    let at = (pad_y + oy) * s + pad_x;
    let n = plan.map.content_w_px as usize;
    let (p0, rest) = out.split_at_mut(s * s);
    let (p1, p2) = rest.split_at_mut(s * s);
    let mut by_channel = [Some(p0), Some(p1), Some(p2)];
    std::array::from_fn(|comp| {
        let c = (0..3).find(|&c| norm.src[c] == comp).unwrap_or(comp);
        let plane = by_channel[c].take().expect("norm.src is a permutation");
        let (mean, inv_std) = norm.of_component(comp);
        (&mut plane[at..at + n], mean, inv_std)
    })
}

/// Resamples packed RGB into the picture area of `out`.
fn rgb_into(plan: &Plan, norm: &Norm, data: &[u8], size: u32, rows: &mut Rows, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { rgb_into_avx2(plan, norm, data, size, rows, out) };
        return;
    }
    rgb_body(plan, norm, data, size, rows, out);
}

/// [`rgb_body`] compiled for AVX2 (see [`i420_into_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rgb_into_avx2(
    plan: &Plan,
    norm: &Norm,
    data: &[u8],
    size: u32,
    rows: &mut Rows,
    out: &mut [f32],
) {
    rgb_body(plan, norm, data, size, rows, out);
}

#[inline(always)]
fn rgb_body(plan: &Plan, norm: &Norm, data: &[u8], size: u32, rows: &mut Rows, out: &mut [f32]) {
    let s = size as usize;
    let n = plan.map.content_w_px as usize;
    let stride = plan.width as usize * 3;
    let last_y = plan.height as usize - 1;
    let row = &mut rows.v[0];
    row.resize(stride + (plan.x0.k - 1) * 3, 0.0);
    for h in &mut rows.h {
        h.resize(n, 0.0);
    }
    let [hr, hg, hb] = &mut rows.h;
    for oy in 0..plan.map.content_h_px as usize {
        let (fy, wy) = plan.y0.at(oy);
        vertical(data, stride, fy, last_y, wy, row);
        pad_row(row, stride, 3);
        horizontal_rgb(row, &plan.x0, [hr, hg, hb]);
        for ((dst, mean, inv_std), src) in out_rows(out, plan, norm, s, oy)
            .into_iter()
            .zip([&*hr, &*hg, &*hb])
        {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = (v - mean) * inv_std;
            }
        }
    }
}

/// Resamples I420 planes into the picture area of `out`.
fn i420_into(plan: &Plan, norm: &Norm, data: &[u8], size: u32, rows: &mut Rows, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { i420_into_avx2(plan, norm, data, size, rows, out) };
        return;
    }
    i420_body(plan, norm, data, size, rows, out);
}

/// [`i420_body`] compiled for AVX2: the build targets baseline x86-64 (SSE2), where widening
/// u8 -> f32 and 4-lane arithmetic make the vertical pass and the colour conversion about twice
/// as slow. Every helper the body calls is `#[inline(always)]`, so it is all compiled with AVX2.
/// FMA is deliberately not enabled: fused multiply-adds would round differently from the
/// portable path, and results must not depend on the CPU.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn i420_into_avx2(
    plan: &Plan,
    norm: &Norm,
    data: &[u8],
    size: u32,
    rows: &mut Rows,
    out: &mut [f32],
) {
    i420_body(plan, norm, data, size, rows, out);
}

#[inline(always)]
fn i420_body(plan: &Plan, norm: &Norm, data: &[u8], size: u32, rows: &mut Rows, out: &mut [f32]) {
    let s = size as usize;
    let n = plan.map.content_w_px as usize;
    let (w, h) = (plan.width as usize, plan.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (luma, chroma) = data.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    let [ry, ru, rv] = &mut rows.v;
    ry.resize(w + plan.x0.k - 1, 0.0);
    ru.resize(cw + plan.x1.k - 1, 0.0);
    rv.resize(cw + plan.x1.k - 1, 0.0);
    for h in &mut rows.h {
        h.resize(n, 0.0);
    }
    let [hy, hu, hv] = &mut rows.h;
    for oy in 0..plan.map.content_h_px as usize {
        let (fy, wy) = plan.y0.at(oy);
        vertical(luma, w, fy, h - 1, wy, ry);
        let (fcy, wcy) = plan.y1.at(oy);
        vertical(u_plane, cw, fcy, ch - 1, wcy, ru);
        vertical(v_plane, cw, fcy, ch - 1, wcy, rv);
        pad_row(ry, w, 1);
        pad_row(ru, cw, 1);
        pad_row(rv, cw, 1);
        horizontal(ry, &plan.x0, hy);
        horizontal(ru, &plan.x1, hu);
        horizontal(rv, &plan.x1, hv);
        let [(r, mr, sr), (g, mg, sg), (b, mb, sb)] = out_rows(out, plan, norm, s, oy);
        // A whole output row at a time, with the three planes as separate slices, so this
        // vectorises; the arithmetic is `yuv_to_rgb_f32` followed by the normalisation.
        let px = hy.iter().zip(hu.iter()).zip(hv.iter());
        for (((((&y, &u), &v), r), g), b) in px.zip(r).zip(g).zip(b) {
            let [cr, cg, cb] = yuv_to_rgb_f32(y, u, v);
            *r = (cr - mr) * sr;
            *g = (cg - mg) * sg;
            *b = (cb - mb) * sb;
        }
    }
}

/// `v` limited to `lo..=hi`, written with plain comparisons (unlike `f32::clamp` there is no
/// NaN bookkeeping, which lets the pixel loop vectorise; inputs here are never NaN).
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// BT.601 limited-range YUV -> RGB in float, the same matrix as [`crate::frame::yuv_to_rgb`].
#[inline(always)]
fn yuv_to_rgb_f32(y: f32, u: f32, v: f32) -> [f32; 3] {
    let l = y - 16.0;
    let c = (if l < 0.0 { 0.0 } else { l }) * (298.0 / 256.0);
    let d = u - 128.0;
    let e = v - 128.0;
    [
        clamp(c + (409.0 / 256.0) * e, 0.0, 255.0),
        clamp(c - (100.0 / 256.0) * d - (208.0 / 256.0) * e, 0.0, 255.0),
        clamp(c + (516.0 / 256.0) * d, 0.0, 255.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// The letterbox resampler as it was before the contiguous-window rewrite: per-tap index
    /// arrays, one read-modify-write sweep per vertical tap, per-pixel colour conversion. Kept as
    /// the definition the optimised code must reproduce (up to float rounding) and as the
    /// baseline of the timing test.
    pub(super) mod reference {
        #![allow(dead_code)]
        use super::super::{fill_borders, LetterboxMap, Norm};
        use crate::detect::engine::PreprocessSpec;
        use crate::frame::{Frame, PixelFormat};

        /// Resampling weights along one axis: output `o` reads `idx[o*k..o*k+k]` with `w[o*k..o*k+k]`.
        #[derive(Debug, Clone, PartialEq)]
        struct Taps {
            k: usize,
            idx: Vec<usize>,
            w: Vec<f32>,
        }

        impl Taps {
            /// Taps for `n_out` outputs over a source axis of `src_len` samples, `ratio` source samples per
            /// output sample. Output `o` covers source `[o * ratio, (o + 1) * ratio)`.
            fn new(src_len: usize, ratio: f32, n_out: usize) -> Taps {
                let last = src_len.saturating_sub(1);
                if ratio <= 2.0 {
                    // Bilinear between the two samples around the output centre.
                    let mut t = Taps {
                        k: 2,
                        idx: Vec::with_capacity(n_out * 2),
                        w: Vec::with_capacity(n_out * 2),
                    };
                    for o in 0..n_out {
                        let c = ((o as f32 + 0.5) * ratio - 0.5).max(0.0);
                        let i0 = c.floor();
                        let f = c - i0;
                        let i0 = (i0 as usize).min(last);
                        t.idx.extend([i0, (i0 + 1).min(last)]);
                        t.w.extend([1.0 - f, f]);
                    }
                    t
                } else {
                    // Area average: each source sample weighs by its overlap with the output footprint.
                    let k = ratio.ceil() as usize + 1;
                    let mut t = Taps {
                        k,
                        idx: Vec::with_capacity(n_out * k),
                        w: Vec::with_capacity(n_out * k),
                    };
                    for o in 0..n_out {
                        let a = o as f32 * ratio;
                        let b = a + ratio;
                        let first = a.floor() as usize;
                        for j in 0..k {
                            let i = first + j;
                            let overlap = (b.min(i as f32 + 1.0) - a.max(i as f32)).max(0.0);
                            t.idx.push(i.min(last));
                            t.w.push(overlap / ratio);
                        }
                    }
                    t
                }
            }

            #[inline]
            fn at(&self, o: usize) -> (&[usize], &[f32]) {
                let r = o * self.k..(o + 1) * self.k;
                (&self.idx[r.clone()], &self.w[r])
            }
        }

        /// Resampling plan for one source geometry, cached between frames of the same size.
        #[derive(Debug, Clone, PartialEq)]
        struct Plan {
            format: PixelFormat,
            width: u32,
            height: u32,
            map: LetterboxMap,
            /// Rgb8: the only plane; I420: luma.
            x0: Taps,
            y0: Taps,
            /// I420 chroma planes.
            x1: Taps,
            y1: Taps,
        }

        impl Plan {
            fn new(format: PixelFormat, width: u32, height: u32, size: u32, centred: bool) -> Plan {
                let map = LetterboxMap::placed(width, height, size, centred);
                let ratio = 1.0 / map.scale;
                let (nw, nh) = (map.content_w_px as usize, map.content_h_px as usize);
                let (w, h) = (width as usize, height as usize);
                let (x1, y1) = match format {
                    PixelFormat::I420 => (
                        Taps::new(w.div_ceil(2), ratio * 0.5, nw),
                        Taps::new(h.div_ceil(2), ratio * 0.5, nh),
                    ),
                    PixelFormat::Rgb8 => (Taps::new(1, 1.0, 0), Taps::new(1, 1.0, 0)),
                };
                Plan {
                    format,
                    width,
                    height,
                    map,
                    x0: Taps::new(w, ratio, nw),
                    y0: Taps::new(h, ratio, nh),
                    x1,
                    y1,
                }
            }
        }

        /// Accumulates `sum_k w[k] * src[idx[k] * stride + x]` for x in `0..out.len()` into `out`.
        #[inline]
        fn vertical(src: &[u8], stride: usize, idx: &[usize], w: &[f32], out: &mut [f32]) {
            out.fill(0.0);
            let n = out.len();
            for (&i, &wk) in idx.iter().zip(w) {
                if wk == 0.0 {
                    continue;
                }
                let row = &src[i * stride..i * stride + n];
                for (o, &p) in out.iter_mut().zip(row) {
                    *o += wk * p as f32;
                }
            }
        }

        #[inline]
        fn horizontal(row: &[f32], idx: &[usize], w: &[f32]) -> f32 {
            idx.iter().zip(w).map(|(&i, &wk)| wk * row[i]).sum()
        }

        /// Writes one pixel (R, G, B in 0..255) normalised, in the spec's channel order, at plane
        /// offset `at`.
        #[inline]
        fn put(out: &mut [f32], norm: &Norm, plane: usize, at: usize, rgb: [f32; 3]) {
            for c in 0..3 {
                out[c * plane + at] = (rgb[norm.src[c]] - norm.mean[c]) * norm.inv_std[c];
            }
        }

        fn rgb_into(
            plan: &Plan,
            norm: &Norm,
            data: &[u8],
            size: u32,
            rows: &mut [Vec<f32>; 3],
            out: &mut [f32],
        ) {
            let s = size as usize;
            let plane = s * s;
            let (pad_x, pad_y) = (plan.map.pad_x_px as usize, plan.map.pad_y_px as usize);
            let stride = plan.width as usize * 3;
            let row = &mut rows[0];
            row.resize(stride, 0.0);
            for oy in 0..plan.map.content_h_px as usize {
                let (iy, wy) = plan.y0.at(oy);
                vertical(data, stride, iy, wy, row);
                let base = (pad_y + oy) * s + pad_x;
                for ox in 0..plan.map.content_w_px as usize {
                    let (ix, wx) = plan.x0.at(ox);
                    let mut rgb = [0.0f32; 3];
                    for (&i, &wk) in ix.iter().zip(wx) {
                        let p = &row[i * 3..i * 3 + 3];
                        rgb[0] += wk * p[0];
                        rgb[1] += wk * p[1];
                        rgb[2] += wk * p[2];
                    }
                    put(out, norm, plane, base + ox, rgb);
                }
            }
        }

        fn i420_into(
            plan: &Plan,
            norm: &Norm,
            data: &[u8],
            size: u32,
            rows: &mut [Vec<f32>; 3],
            out: &mut [f32],
        ) {
            let s = size as usize;
            let plane = s * s;
            let (pad_x, pad_y) = (plan.map.pad_x_px as usize, plan.map.pad_y_px as usize);
            let (w, h) = (plan.width as usize, plan.height as usize);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let (luma, chroma) = data.split_at(w * h);
            let (u_plane, v_plane) = chroma.split_at(cw * ch);
            let [ry, ru, rv] = rows;
            ry.resize(w, 0.0);
            ru.resize(cw, 0.0);
            rv.resize(cw, 0.0);
            for oy in 0..plan.map.content_h_px as usize {
                let (iy, wy) = plan.y0.at(oy);
                vertical(luma, w, iy, wy, ry);
                let (icy, wcy) = plan.y1.at(oy);
                vertical(u_plane, cw, icy, wcy, ru);
                vertical(v_plane, cw, icy, wcy, rv);
                let base = (pad_y + oy) * s + pad_x;
                for ox in 0..plan.map.content_w_px as usize {
                    let (ix, wx) = plan.x0.at(ox);
                    let (icx, wcx) = plan.x1.at(ox);
                    let y = horizontal(ry, ix, wx);
                    let u = horizontal(ru, icx, wcx);
                    let v = horizontal(rv, icx, wcx);
                    put(out, norm, plane, base + ox, yuv_to_rgb_f32(y, u, v));
                }
            }
        }

        /// BT.601 limited-range YUV -> RGB in float, the same matrix as [`crate::frame::yuv_to_rgb`].
        #[inline]
        fn yuv_to_rgb_f32(y: f32, u: f32, v: f32) -> [f32; 3] {
            let c = (y - 16.0).max(0.0) * (298.0 / 256.0);
            let d = u - 128.0;
            let e = v - 128.0;
            [
                (c + (409.0 / 256.0) * e).clamp(0.0, 255.0),
                (c - (100.0 / 256.0) * d - (208.0 / 256.0) * e).clamp(0.0, 255.0),
                (c + (516.0 / 256.0) * d).clamp(0.0, 255.0),
            ]
        }

        /// Reusable state of the reference letterboxer.
        pub(crate) struct Reference {
            size: u32,
            norm: Norm,
            plan: Option<Plan>,
            rows: [Vec<f32>; 3],
        }

        impl Reference {
            pub(crate) fn new(size: u32, spec: PreprocessSpec) -> Reference {
                Reference {
                    size,
                    norm: Norm::new(&spec),
                    plan: None,
                    rows: Default::default(),
                }
            }

            /// Letterboxes `frame` (of a valid size) into `out`.
            pub(crate) fn run(
                &mut self,
                frame: &Frame,
                out: &mut [f32],
                centred: bool,
            ) -> LetterboxMap {
                let size = self.size;
                let stale = !matches!(&self.plan, Some(p)
                    if p.format == frame.format && p.width == frame.width
                        && p.height == frame.height);
                if stale {
                    self.plan = Some(Plan::new(
                        frame.format,
                        frame.width,
                        frame.height,
                        size,
                        centred,
                    ));
                }
                let plan = self.plan.as_ref().unwrap();
                fill_borders(out, size as usize, &plan.map, &self.norm.pad);
                match frame.format {
                    PixelFormat::Rgb8 => {
                        rgb_into(plan, &self.norm, &frame.data, size, &mut self.rows, out)
                    }
                    PixelFormat::I420 => {
                        i420_into(plan, &self.norm, &frame.data, size, &mut self.rows, out)
                    }
                }
                plan.map
            }
        }
    }

    fn i420(img: &image::RgbImage) -> Frame {
        Frame::i420_from_rgb_image("t".into(), 0, 0, img)
    }

    fn rgb_frame(img: &image::RgbImage) -> Frame {
        Frame::from_rgb_image("t".into(), 0, 0, img)
    }

    /// De-normalised B, G, R at input pixel (x, y).
    fn bgr_at(out: &[f32], size: usize, x: usize, y: usize) -> [f32; 3] {
        let plane = size * size;
        [0, 1, 2].map(|c| out[c * plane + y * size + x] * STD_BGR[c] + MEAN_BGR[c])
    }

    proptest! {
        #[test]
        fn box_round_trip(w in 1u32..4000, h in 1u32..4000, size in 32u32..1024,
                          x1 in 0f32..1.0, y1 in 0f32..1.0, bw in 0f32..1.0, bh in 0f32..1.0) {
            let map = LetterboxMap::new(w, h, size);
            let b = BBox { x1: x1 * w as f32, y1: y1 * h as f32,
                           x2: (x1 + bw) * w as f32, y2: (y1 + bh) * h as f32 };
            let back = map.to_frame(&map.to_input(&b));
            let tol = 1e-3 * (w.max(h) as f32);
            prop_assert!((back.x1 - b.x1).abs() < tol && (back.y1 - b.y1).abs() < tol);
            prop_assert!((back.x2 - b.x2).abs() < tol && (back.y2 - b.y2).abs() < tol);
        }

        #[test]
        fn frame_fits_centred(w in 1u32..4000, h in 1u32..4000, size in 32u32..1024) {
            let map = LetterboxMap::new(w, h, size);
            let full = map.to_input(&BBox { x1: 0.0, y1: 0.0, x2: w as f32, y2: h as f32 });
            // The picture stays inside the input and touches it on the long side.
            prop_assert!(full.x1 >= -1e-3 && full.y1 >= -1e-3);
            prop_assert!(full.x2 <= size as f32 + 0.51 && full.y2 <= size as f32 + 0.51);
            let long = full.width().max(full.height());
            prop_assert!((long - size as f32).abs() < 0.51 + 1e-3 * size as f32);
            // Centred: the borders differ by at most one pixel from flooring the pad plus one
            // from rounding the content to whole pixels (a content of 1 px stands for 0.4 px
            // when the frame is 1 px wide).
            let (left, right) = (full.x1, size as f32 - full.x2);
            let (top, bottom) = (full.y1, size as f32 - full.y2);
            prop_assert!((left - right).abs() <= 2.0 && (top - bottom).abs() <= 2.0);
        }
    }

    #[test]
    fn wide_frame_is_padded_top_and_bottom() {
        let map = LetterboxMap::new(1280, 720, 416);
        assert_eq!((map.content_w_px, map.content_h_px), (416, 234));
        assert_eq!((map.pad_x_px, map.pad_y_px), (0.0, 91.0));
        assert!((map.scale - 0.325).abs() < 1e-6);
    }

    /// Left half red, right half blue, over a frame whose aspect puts borders top and bottom.
    fn halves(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                image::Rgb([220, 30, 40])
            } else {
                image::Rgb([20, 60, 200])
            }
        })
    }

    fn check_halves(frame: &Frame, tol: f32) {
        let size = 64usize;
        let mut lb = Letterboxer::new(size as u32);
        let mut out = vec![f32::NAN; lb.input_len()];
        let map = lb.run(frame, &mut out).unwrap();
        let (px, py) = (map.pad_x_px as usize, map.pad_y_px as usize);
        let (cw, ch) = (map.content_w_px as usize, map.content_h_px as usize);
        assert!(py > 0, "test frame should be wider than tall");
        // Borders hold NanoDet's pad value, black, before normalisation.
        for at in [0, size * size - 1] {
            let bgr = [0, 1, 2].map(|c| out[c * size * size + at] * STD_BGR[c] + MEAN_BGR[c]);
            assert!(bgr.iter().all(|v| v.abs() < 1e-3), "border {bgr:?}");
        }
        // Interior pixels away from the colour edge keep their colour, in BGR order.
        let left = bgr_at(&out, size, px + 2, py + ch / 2);
        let right = bgr_at(&out, size, px + cw - 3, py + ch / 2);
        for (got, want) in [(left, [40.0, 30.0, 220.0]), (right, [200.0, 60.0, 20.0])] {
            for c in 0..3 {
                assert!((got[c] - want[c]).abs() <= tol, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn rgb_keeps_colours_and_order_when_downscaling() {
        check_halves(&rgb_frame(&halves(640, 360)), 0.5); // area average (10x)
        check_halves(&rgb_frame(&halves(100, 50)), 0.5); // bilinear (1.6x)
        check_halves(&rgb_frame(&halves(40, 20)), 0.5); // bilinear upscale
    }

    #[test]
    fn i420_matches_rgb_within_yuv_rounding() {
        check_halves(&i420(&halves(640, 360)), 4.0);
        check_halves(&i420(&halves(101, 51)), 4.0); // odd sizes: chroma rounds up
    }

    #[test]
    fn i420_and_rgb_give_close_tensors_on_a_photo() {
        let img = image::open("tests/data/images/darknet_dog.jpg")
            .unwrap()
            .to_rgb8();
        let mut lb = Letterboxer::new(416);
        let mut a = vec![0.0; lb.input_len()];
        let mut b = vec![0.0; lb.input_len()];
        let ma = lb.run(&rgb_frame(&img), &mut a).unwrap();
        let mb = lb.run(&i420(&img), &mut b).unwrap();
        assert_eq!(ma, mb);
        // Chroma is subsampled in I420, so single pixels differ at edges; the mean must not.
        let mean_abs = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        assert!(
            mean_abs < 0.05,
            "mean |rgb - i420| = {mean_abs} (normalised units)"
        );
    }

    #[test]
    fn rejects_a_buffer_of_the_wrong_size() {
        let mut f = rgb_frame(&halves(8, 4));
        f.data = Bytes::from(vec![0u8; 10]);
        let mut lb = Letterboxer::new(32);
        let mut out = vec![0.0; lb.input_len()];
        assert!(matches!(
            lb.run(&f, &mut out),
            Err(FrameError::Size {
                want: 96,
                got: 10,
                ..
            })
        ));
    }

    /// YOLOv8's spec: R, G, B in 0..1, grey 114 border, centred.
    const YOLO: PreprocessSpec = PreprocessSpec {
        bgr: false,
        mean: [0.0; 3],
        std: [255.0; 3],
        pad_value: 114.0,
        centred: true,
    };

    #[test]
    fn rgb_order_and_pad_114() {
        let size = 64usize;
        let mut lb = Letterboxer::with_spec(size as u32, YOLO);
        let mut out = vec![f32::NAN; lb.input_len()];
        for frame in [rgb_frame(&halves(640, 360)), i420(&halves(640, 360))] {
            let map = lb.run(&frame, &mut out).unwrap();
            assert!(map.pad_y_px > 0.0 && map.pad_x_px == 0.0);
            assert!(out.iter().all(|v| v.is_finite()));
            let plane = size * size;
            // Top-left and bottom-right corners are border: 114 / 255 in every channel.
            for at in [0, plane - 1] {
                for c in 0..3 {
                    assert!((out[c * plane + at] - 114.0 / 255.0).abs() < 1e-6);
                }
            }
            // Left half red (220, 30, 40): channel 0 is R.
            let y = map.pad_y_px as usize + map.content_h_px as usize / 2;
            let at = y * size + 2;
            let rgb = [0, 1, 2].map(|c| out[c * plane + at] * 255.0);
            for (got, want) in rgb.iter().zip([220.0, 30.0, 40.0]) {
                assert!((got - want).abs() < 4.0, "{rgb:?}");
            }
        }
    }

    #[test]
    fn top_left_placement_pads_right_and_bottom() {
        let map = LetterboxMap::placed(1280, 720, 416, false);
        assert_eq!((map.pad_x_px, map.pad_y_px), (0.0, 0.0));
        assert_eq!((map.content_w_px, map.content_h_px), (416, 234));
        let b = BBox {
            x1: 100.0,
            y1: 200.0,
            x2: 300.0,
            y2: 400.0,
        };
        let i = map.to_input(&b);
        assert!((i.x1 - 32.5).abs() < 1e-3 && (i.y1 - 65.0).abs() < 1e-3);
        let back = map.to_frame(&i);
        assert!(back.iou(&b) > 0.999);

        let spec = PreprocessSpec {
            bgr: true,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad_value: 114.0,
            centred: false,
        };
        let size = 64usize;
        let mut lb = Letterboxer::with_spec(size as u32, spec);
        let mut out = vec![f32::NAN; lb.input_len()];
        let map = lb.run(&rgb_frame(&halves(640, 360)), &mut out).unwrap();
        assert_eq!((map.pad_x_px, map.pad_y_px), (0.0, 0.0));
        let plane = size * size;
        // The picture starts at row 0: its top-left pixel is red in BGR order, unnormalised.
        let px = [0, 1, 2].map(|c| out[c * plane + size + 1]);
        assert!(
            (px[0] - 40.0).abs() < 1.0 && (px[2] - 220.0).abs() < 1.0,
            "{px:?}"
        );
        // Below the picture everything is 114.
        let below = map.content_h_px as usize * size;
        assert!((0..3).all(|c| out[c * plane + below..(c + 1) * plane]
            .iter()
            .all(|&v| v == 114.0)));
    }

    #[test]
    fn blank_input_is_the_normalised_pad_value() {
        let lb = Letterboxer::with_spec(32, YOLO);
        let mut out = vec![0.0; lb.input_len()];
        lb.fill_blank(&mut out);
        assert!(out.iter().all(|&v| (v - 114.0 / 255.0).abs() < 1e-6));
    }

    #[test]
    fn area_taps_sum_to_one_and_cover_the_footprint() {
        for (len, ratio, n) in [
            (1280usize, 1280.0 / 416.0, 416usize),
            (720, 3.0769, 234),
            (10, 2.5, 4),
        ] {
            let t = Taps::new(len, ratio, n);
            for o in 0..n {
                let (first, w) = t.at(o);
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-4, "o={o} sum={s}");
                assert!(first < len);
            }
        }
    }

    /// A deterministic pseudo-random byte stream (xorshift), for test frames.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// A `w x h` frame of `format` holding random bytes.
    fn random_frame(format: PixelFormat, w: u32, h: u32, seed: u64) -> Frame {
        let img = image::RgbImage::new(w, h);
        let mut f = match format {
            PixelFormat::Rgb8 => rgb_frame(&img),
            PixelFormat::I420 => i420(&img),
        };
        f.data = Bytes::from(noise(seed, buffer_len(format, w, h)));
        f
    }

    /// YOLOX's spec: B, G, R unnormalised, grey border, top-left.
    const YOLOX: PreprocessSpec = PreprocessSpec {
        bgr: true,
        mean: [0.0; 3],
        std: [1.0; 3],
        pad_value: 114.0,
        centred: false,
    };

    #[test]
    fn matches_the_reference_resampler() {
        let sizes = [
            (1280, 720),
            (1920, 1080),
            (640, 480),
            (416, 416),
            (300, 200),
            (101, 51),
            (37, 300),
            (7, 5),
            (1, 1),
        ];
        let mut worst = 0.0f32;
        for (i, &(w, h)) in sizes.iter().enumerate() {
            for format in [PixelFormat::I420, PixelFormat::Rgb8] {
                let frame = random_frame(format, w, h, i as u64 + 1);
                for spec in [PreprocessSpec::NANODET, YOLO, YOLOX] {
                    for size in [416, 320, 64] {
                        let mut lb = Letterboxer::with_spec(size, spec);
                        let mut reference = reference::Reference::new(size, spec);
                        let mut got = vec![f32::NAN; lb.input_len()];
                        let mut want = vec![f32::NAN; lb.input_len()];
                        // Twice: the second run reuses the cached plan and row buffers.
                        for _ in 0..2 {
                            let map = lb.run(&frame, &mut got).unwrap();
                            assert_eq!(map, reference.run(&frame, &mut want, spec.centred));
                            for (k, (g, r)) in got.iter().zip(&want).enumerate() {
                                let d = (g - r).abs();
                                worst = worst.max(d);
                                assert!(
                                    d <= 1e-4,
                                    "{format:?} {w}x{h} -> {size} {spec:?}: [{k}] {g} vs {r}"
                                );
                            }
                        }
                    }
                }
            }
        }
        eprintln!("max |new - reference| = {worst:e}");
    }

    /// The CPU-specific build of the resampler (AVX2 where available) and the portable one
    /// give the same bits.
    #[test]
    fn dispatched_and_portable_paths_agree() {
        for format in [PixelFormat::I420, PixelFormat::Rgb8] {
            let frame = random_frame(format, 1280, 720, 9);
            let norm = Norm::new(&PreprocessSpec::NANODET);
            let plan = Plan::new(format, 1280, 720, 416, true);
            let (mut a, mut b) = (vec![0.0; 3 * 416 * 416], vec![0.0; 3 * 416 * 416]);
            let mut rows = Rows::default();
            match format {
                PixelFormat::I420 => {
                    i420_into(&plan, &norm, &frame.data, 416, &mut rows, &mut a);
                    i420_body(&plan, &norm, &frame.data, 416, &mut rows, &mut b);
                }
                PixelFormat::Rgb8 => {
                    rgb_into(&plan, &norm, &frame.data, 416, &mut rows, &mut a);
                    rgb_body(&plan, &norm, &frame.data, 416, &mut rows, &mut b);
                }
            }
            assert!(a == b, "{format:?}");
        }
    }

    /// Median and minimum of `samples` (ms).
    fn median_min(mut samples: Vec<f64>) -> (f64, f64) {
        samples.sort_by(f64::total_cmp);
        (samples[samples.len() / 2], samples[0])
    }

    /// Times the reference and the optimised letterbox on a 1280x720 frame into a 416 NanoDet
    /// input, interleaved in one process (200 runs each), and prints median and minimum.
    /// `cargo test --release --lib letterbox::tests::preprocess_timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, not a check: run with --release --ignored --nocapture"]
    fn preprocess_timing() {
        use std::time::Instant;
        // A smooth picture with noise on top, like a camera frame (the content does not change
        // the work done, only realism).
        let img = image::RgbImage::from_fn(1280, 720, |x, y| {
            let n = ((x * 7 + y * 13) % 23) as u8;
            image::Rgb([(x / 5) as u8 ^ n, (y / 3) as u8, ((x + y) / 8) as u8 + n])
        });
        for frame in [i420(&img), rgb_frame(&img)] {
            let spec = PreprocessSpec::NANODET;
            let mut lb = Letterboxer::with_spec(416, spec);
            let mut reference = reference::Reference::new(416, spec);
            let mut a = vec![0.0; lb.input_len()];
            let mut b = vec![0.0; lb.input_len()];
            let (mut old, mut new) = (Vec::new(), Vec::new());
            for i in 0..210 {
                let t = Instant::now();
                reference.run(&frame, &mut a, true);
                let t_old = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                lb.run(&frame, &mut b).unwrap();
                let t_new = t.elapsed().as_secs_f64() * 1e3;
                if i >= 10 {
                    old.push(t_old);
                    new.push(t_new);
                }
            }
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            let (om, on) = median_min(old);
            let (nm, nn) = median_min(new);
            println!(
                "letterbox {:?} 1280x720 -> 416: reference median {om:.3} ms min {on:.3} ms; \
                 optimised median {nm:.3} ms min {nn:.3} ms; max |diff| {diff:e}",
                frame.format
            );
        }
    }
}
