//! CPU reference of the GPU preprocessing kernels (letterbox + normalise into NCHW).
//!
//! The production CPU path is [`super::letterbox::Letterboxer`]: it averages areas when it shrinks
//! a frame by more than 2x, so a 1080p frame does not alias into a 416 px input. The GPU kernels
//! (`--features cuda`, [`super::gpu_kernel`]) do one bilinear sample per output pixel instead, which
//! is what fits one thread per pixel. This module is the plain, slow, obviously-correct statement
//! of exactly that transform, written with the same f32 operations in the same order as the kernel
//! source, so tests can pin the kernels to it (max abs diff <= 1e-3) on a machine with a GPU and
//! pin it to `Letterboxer` everywhere else.
//!
//! The transform, for an `S x S` input and a `w x h` frame:
//! - placement: [`letterbox_map`] = [`LetterboxMap::placed`] (aspect kept, centred or top-left as
//!   the spec says), so boxes map back exactly as on the CPU path;
//! - sampling: output pixel `o` of the picture reads the source at `(o + 0.5) / scale - 0.5`
//!   (pixel centres), clamped into `[0, w - 1]`, bilinear between the two neighbours on each axis.
//!   4:2:0 chroma planes are sampled the same way in their own coordinates (`ratio / 2`), i.e.
//!   chroma sits at the centre of each 2x2 luma block, as in [`crate::frame::Frame::i420_from_rgb_image`];
//! - colour: YUV is interpolated first and converted after with BT.601 limited range, the matrix
//!   of [`crate::frame::yuv_to_rgb`] and of `Letterboxer` (affine, so it commutes with averaging);
//! - normalisation: `(v - mean[c]) * (1 / std[c])` in tensor channel order; the border holds
//!   `(pad_value - mean[c]) * (1 / std[c])`;
//! - f16 output is the f32 output rounded to nearest-even.

use super::engine::PreprocessSpec;
use super::letterbox::LetterboxMap;
use crate::frame::{Frame, PixelFormat};

/// Largest frame side and model input side this module (and the GPU kernels) accept, px.
pub const MAX_SIDE_PX: u32 = 16384;

/// Pixel layout of a source frame handed to the preprocessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrcFormat {
    /// Y plane, then one plane of interleaved U, V at half resolution (NVDEC / V4L2 hardware output).
    Nv12,
    /// Y plane, then U and V planes at half resolution (software H.264 decoders).
    I420,
    /// Packed 8-bit R, G, B.
    Rgb,
    /// Packed 8-bit B, G, R (OpenCV order).
    Bgr,
}

impl SrcFormat {
    /// The code the kernels switch on (`LAYOUT_*` in the kernel source).
    pub fn code(self) -> u32 {
        match self {
            SrcFormat::Nv12 => 0,
            SrcFormat::I420 => 1,
            SrcFormat::Rgb => 2,
            SrcFormat::Bgr => 3,
        }
    }

    /// How many planes of [`SrcFrame::planes`] the format uses.
    pub fn plane_count(self) -> usize {
        match self {
            SrcFormat::Nv12 => 2,
            SrcFormat::I420 => 3,
            SrcFormat::Rgb | SrcFormat::Bgr => 1,
        }
    }
}

/// Where one plane sits in the frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaneLayout {
    /// Offset of the plane's first byte from the start of the buffer, bytes.
    pub offset_bytes: usize,
    /// Distance between the starts of two rows, bytes (>= the row's payload).
    pub stride_bytes: usize,
}

/// A borrowed frame in one of the [`SrcFormat`] layouts, with explicit plane offsets and strides
/// (decoders pad rows and align planes).
#[derive(Debug, Clone, Copy)]
pub struct SrcFrame<'a> {
    /// All planes' bytes.
    pub data: &'a [u8],
    /// Pixel layout.
    pub format: SrcFormat,
    /// Width, px.
    pub width_px: u32,
    /// Height, px.
    pub height_px: u32,
    /// Plane 0: Y or the packed pixels; plane 1: U (I420) or UV (NV12); plane 2: V (I420).
    /// Unused planes are ignored.
    pub planes: [PlaneLayout; 3],
}

/// Chroma plane size of a 4:2:0 frame, (width, height) in chroma samples.
fn chroma_dims(width_px: u32, height_px: u32) -> (usize, usize) {
    (
        (width_px as usize).div_ceil(2),
        (height_px as usize).div_ceil(2),
    )
}

impl<'a> SrcFrame<'a> {
    /// Packed RGB with rows `stride_bytes` apart.
    pub fn rgb(data: &'a [u8], width_px: u32, height_px: u32, stride_bytes: usize) -> Self {
        Self::packed(data, SrcFormat::Rgb, width_px, height_px, stride_bytes)
    }

    /// Packed BGR with rows `stride_bytes` apart.
    pub fn bgr(data: &'a [u8], width_px: u32, height_px: u32, stride_bytes: usize) -> Self {
        Self::packed(data, SrcFormat::Bgr, width_px, height_px, stride_bytes)
    }

    fn packed(
        data: &'a [u8],
        format: SrcFormat,
        width_px: u32,
        height_px: u32,
        stride_bytes: usize,
    ) -> Self {
        let p = PlaneLayout {
            offset_bytes: 0,
            stride_bytes,
        };
        SrcFrame {
            data,
            format,
            width_px,
            height_px,
            planes: [p, PlaneLayout::default(), PlaneLayout::default()],
        }
    }

    /// NV12 with the UV plane right after `height_px` rows of Y.
    pub fn nv12(
        data: &'a [u8],
        width_px: u32,
        height_px: u32,
        y_stride_bytes: usize,
        uv_stride_bytes: usize,
    ) -> Self {
        SrcFrame {
            data,
            format: SrcFormat::Nv12,
            width_px,
            height_px,
            planes: [
                PlaneLayout {
                    offset_bytes: 0,
                    stride_bytes: y_stride_bytes,
                },
                PlaneLayout {
                    offset_bytes: y_stride_bytes * height_px as usize,
                    stride_bytes: uv_stride_bytes,
                },
                PlaneLayout::default(),
            ],
        }
    }

    /// I420 with U right after `height_px` rows of Y and V right after the U rows.
    pub fn i420(
        data: &'a [u8],
        width_px: u32,
        height_px: u32,
        y_stride_bytes: usize,
        u_stride_bytes: usize,
        v_stride_bytes: usize,
    ) -> Self {
        let (_, ch) = chroma_dims(width_px, height_px);
        let u_offset = y_stride_bytes * height_px as usize;
        SrcFrame {
            data,
            format: SrcFormat::I420,
            width_px,
            height_px,
            planes: [
                PlaneLayout {
                    offset_bytes: 0,
                    stride_bytes: y_stride_bytes,
                },
                PlaneLayout {
                    offset_bytes: u_offset,
                    stride_bytes: u_stride_bytes,
                },
                PlaneLayout {
                    offset_bytes: u_offset + u_stride_bytes * ch,
                    stride_bytes: v_stride_bytes,
                },
            ],
        }
    }

    /// A view of a pipeline [`Frame`] (tight I420 or packed RGB).
    pub fn from_frame(frame: &'a Frame) -> Self {
        let w = frame.width as usize;
        match frame.format {
            PixelFormat::Rgb8 => Self::rgb(&frame.data, frame.width, frame.height, w * 3),
            PixelFormat::I420 => {
                let cw = w.div_ceil(2);
                Self::i420(&frame.data, frame.width, frame.height, w, cw, cw)
            }
        }
    }

    /// (payload bytes per row, rows) of each used plane.
    fn plane_extents(&self) -> Vec<(usize, usize)> {
        let (w, h) = (self.width_px as usize, self.height_px as usize);
        let (cw, ch) = chroma_dims(self.width_px, self.height_px);
        match self.format {
            SrcFormat::Rgb | SrcFormat::Bgr => vec![(w * 3, h)],
            SrcFormat::Nv12 => vec![(w, h), (cw * 2, ch)],
            SrcFormat::I420 => vec![(w, h), (cw, ch), (cw, ch)],
        }
    }

    /// Checks that the size is sane and every used plane lies inside `data` with a stride at
    /// least its row payload. Both the reference and the GPU path call this before reading.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        if self.width_px == 0
            || self.height_px == 0
            || self.width_px > MAX_SIDE_PX
            || self.height_px > MAX_SIDE_PX
        {
            return Err(PreprocessError::FrameSize {
                width_px: self.width_px,
                height_px: self.height_px,
            });
        }
        if self.data.len() > i32::MAX as usize {
            return Err(PreprocessError::BufferTooLarge {
                len_bytes: self.data.len(),
            });
        }
        for (i, (row_bytes, rows)) in self.plane_extents().into_iter().enumerate() {
            let p = self.planes[i];
            if p.stride_bytes < row_bytes {
                return Err(PreprocessError::Stride {
                    plane: i,
                    stride_bytes: p.stride_bytes,
                    row_bytes,
                });
            }
            let end = p
                .stride_bytes
                .checked_mul(rows - 1)
                .and_then(|v| v.checked_add(row_bytes))
                .and_then(|v| v.checked_add(p.offset_bytes));
            match end {
                Some(end) if end <= self.data.len() => {}
                _ => {
                    return Err(PreprocessError::PlaneOutOfBounds {
                        plane: i,
                        offset_bytes: p.offset_bytes,
                        stride_bytes: p.stride_bytes,
                        rows,
                        len_bytes: self.data.len(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Element type of the model input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorDtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision (TensorRT FP16 engines take it without a cast node).
    F16,
}

impl TensorDtype {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            TensorDtype::F32 => 4,
            TensorDtype::F16 => 2,
        }
    }
}

/// A host copy of an NCHW [1, 3, S, S] input tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<half::f16>),
}

impl TensorData {
    /// The values widened to f32 (exact for f16).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a frame cannot be preprocessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// Zero or oversized frame.
    #[error("frame size {width_px}x{height_px} is not in 1..={MAX_SIDE_PX}")]
    FrameSize {
        /// Declared width, px.
        width_px: u32,
        /// Declared height, px.
        height_px: u32,
    },
    /// Zero or oversized model input.
    #[error("model input side {size_px} is not in 1..={MAX_SIDE_PX}")]
    InputSize {
        /// Requested side, px.
        size_px: u32,
    },
    /// The buffer is larger than the kernels index (2 GiB).
    #[error("frame buffer of {len_bytes} bytes is larger than 2 GiB")]
    BufferTooLarge {
        /// Buffer length, bytes.
        len_bytes: usize,
    },
    /// A row stride shorter than the row's pixels.
    #[error(
        "plane {plane}: stride {stride_bytes} bytes is shorter than a row ({row_bytes} bytes)"
    )]
    Stride {
        /// Plane index (0 = Y or packed).
        plane: usize,
        /// Declared stride, bytes.
        stride_bytes: usize,
        /// Bytes one row of pixels needs.
        row_bytes: usize,
    },
    /// A plane that reaches past the end of the buffer.
    #[error("plane {plane} (offset {offset_bytes}, stride {stride_bytes}, {rows} rows) does not fit in a {len_bytes}-byte buffer")]
    PlaneOutOfBounds {
        /// Plane index.
        plane: usize,
        /// Declared offset, bytes.
        offset_bytes: usize,
        /// Declared stride, bytes.
        stride_bytes: usize,
        /// Rows the plane has.
        rows: usize,
        /// Buffer length, bytes.
        len_bytes: usize,
    },
}

/// Where a `width_px x height_px` frame lands in a `size_px` square for `spec`: exactly
/// [`LetterboxMap::placed`] (centred or top-left per `spec.centred`), as `Letterboxer` uses.
pub fn letterbox_map(
    width_px: u32,
    height_px: u32,
    size_px: u32,
    spec: &PreprocessSpec,
) -> LetterboxMap {
    LetterboxMap::placed(width_px, height_px, size_px, spec.centred)
}

/// Per-channel constants the transform needs, in tensor channel order; shared with the GPU path
/// so both compute them identically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormConsts {
    /// Mean subtracted per channel, pixel units.
    pub mean: [f32; 3],
    /// `1 / std` per channel.
    pub inv_std: [f32; 3],
    /// The border value after normalisation, per channel.
    pub pad: [f32; 3],
}

impl NormConsts {
    /// The constants of `spec`.
    pub fn new(spec: &PreprocessSpec) -> NormConsts {
        let inv_std = spec.std.map(|s| 1.0 / s);
        let pad = [0, 1, 2].map(|c| (spec.pad_value - spec.mean[c]) * inv_std[c]);
        NormConsts {
            mean: spec.mean,
            inv_std,
            pad,
        }
    }
}

/// Source coordinate of output pixel `o` for `ratio` source px per output px, clamped into
/// `[0, last]`; returns (lower index, upper index, weight of the upper one).
#[inline]
fn axis(o: u32, ratio: f32, last: u32) -> (usize, usize, f32) {
    let s = ((o as f32 + 0.5) * ratio - 0.5).clamp(0.0, last as f32);
    let f0 = s.floor();
    let i0 = f0 as u32;
    let i1 = (i0 + 1).min(last);
    (i0 as usize, i1 as usize, s - f0)
}

/// Bilinear blend of four samples, in the kernel's operation order.
#[inline]
fn lerp2(p00: f32, p01: f32, p10: f32, p11: f32, fx: f32, fy: f32) -> f32 {
    let top = p00 + (p01 - p00) * fx;
    let bottom = p10 + (p11 - p10) * fx;
    top + (bottom - top) * fy
}

/// Reads plane byte `(x * step + channel, y)`.
#[inline]
fn px(data: &[u8], p: PlaneLayout, x: usize, y: usize, step: usize, channel: usize) -> f32 {
    data[p.offset_bytes + y * p.stride_bytes + x * step + channel] as f32
}

/// One bilinear sample of a plane.
#[inline]
fn sample(
    data: &[u8],
    p: PlaneLayout,
    (x0, x1, fx): (usize, usize, f32),
    (y0, y1, fy): (usize, usize, f32),
    step: usize,
    channel: usize,
) -> f32 {
    lerp2(
        px(data, p, x0, y0, step, channel),
        px(data, p, x1, y0, step, channel),
        px(data, p, x0, y1, step, channel),
        px(data, p, x1, y1, step, channel),
        fx,
        fy,
    )
}

/// BT.601 limited-range YUV -> RGB in f32: the matrix of [`crate::frame::yuv_to_rgb`] and of
/// `Letterboxer` (coefficients /256, all exact in binary), written as the kernel writes it.
#[inline]
pub fn yuv_to_rgb_f32(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = (y - 16.0).max(0.0) * (298.0 / 256.0);
    let d = u - 128.0;
    let e = v - 128.0;
    [
        (c + (409.0 / 256.0) * e).clamp(0.0, 255.0),
        (c - (100.0 / 256.0) * d - (208.0 / 256.0) * e).clamp(0.0, 255.0),
        (c + (516.0 / 256.0) * d).clamp(0.0, 255.0),
    ]
}

/// Letterboxes and normalises `src` into an NCHW [1, 3, `size_px`, `size_px`] tensor of `dtype`
/// the way the GPU kernels do (see the module doc), and returns the mapping for boxes.
pub fn preprocess_reference(
    src: &SrcFrame<'_>,
    spec: &PreprocessSpec,
    size_px: u32,
    dtype: TensorDtype,
) -> Result<(TensorData, LetterboxMap), PreprocessError> {
    let (values, map) = preprocess_reference_f32(src, spec, size_px)?;
    let data = match dtype {
        TensorDtype::F32 => TensorData::F32(values),
        TensorDtype::F16 => TensorData::F16(values.into_iter().map(half::f16::from_f32).collect()),
    };
    Ok((data, map))
}

/// [`preprocess_reference`] with f32 output.
pub fn preprocess_reference_f32(
    src: &SrcFrame<'_>,
    spec: &PreprocessSpec,
    size_px: u32,
) -> Result<(Vec<f32>, LetterboxMap), PreprocessError> {
    src.validate()?;
    if size_px == 0 || size_px > MAX_SIDE_PX {
        return Err(PreprocessError::InputSize { size_px });
    }
    let map = letterbox_map(src.width_px, src.height_px, size_px, spec);
    let norm = NormConsts::new(spec);
    let s = size_px as usize;
    let plane = s * s;
    let mut out = vec![0.0f32; 3 * plane];
    for (c, chunk) in out.chunks_exact_mut(plane).enumerate() {
        chunk.fill(norm.pad[c]);
    }
    let ratio = 1.0 / map.scale;
    let cratio = ratio * 0.5;
    let (w, h) = (src.width_px, src.height_px);
    let (cw, ch) = chroma_dims(w, h);
    let (pad_x, pad_y) = (map.pad_x_px as usize, map.pad_y_px as usize);
    let d = src.data;
    let [p0, p1, p2] = src.planes;
    for oy in 0..map.content_h_px {
        let ay = axis(oy, ratio, h - 1);
        let cy = axis(oy, cratio, ch as u32 - 1);
        for ox in 0..map.content_w_px {
            let ax = axis(ox, ratio, w - 1);
            let rgb = match src.format {
                SrcFormat::Rgb | SrcFormat::Bgr => {
                    let v = [0, 1, 2].map(|k| sample(d, p0, ax, ay, 3, k));
                    if src.format == SrcFormat::Rgb {
                        v
                    } else {
                        [v[2], v[1], v[0]]
                    }
                }
                SrcFormat::I420 | SrcFormat::Nv12 => {
                    let cx = axis(ox, cratio, cw as u32 - 1);
                    let y = sample(d, p0, ax, ay, 1, 0);
                    let (u, v) = if src.format == SrcFormat::I420 {
                        (sample(d, p1, cx, cy, 1, 0), sample(d, p2, cx, cy, 1, 0))
                    } else {
                        (sample(d, p1, cx, cy, 2, 0), sample(d, p1, cx, cy, 2, 1))
                    };
                    yuv_to_rgb_f32(y, u, v)
                }
            };
            let t = if spec.bgr {
                [rgb[2], rgb[1], rgb[0]]
            } else {
                rgb
            };
            let at = (pad_y + oy as usize) * s + pad_x + ox as usize;
            for c in 0..3 {
                out[c * plane + at] = (t[c] - norm.mean[c]) * norm.inv_std[c];
            }
        }
    }
    Ok((out, map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::letterbox::Letterboxer;
    use crate::frame::rgb_to_yuv;
    use proptest::prelude::*;

    const YOLOX: PreprocessSpec = PreprocessSpec::YOLOX;
    const YOLOV8: PreprocessSpec = PreprocessSpec::YOLOV8;

    /// Packed RGB bytes with `stride` bytes per row (padding bytes = 0xEE, never read).
    fn packed(img: &image::RgbImage, stride: usize, bgr: bool) -> Vec<u8> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut d = vec![0xEE; stride * h];
        for (x, y, p) in img.enumerate_pixels() {
            let at = y as usize * stride + x as usize * 3;
            let v = if bgr { [p[2], p[1], p[0]] } else { p.0 };
            d[at..at + 3].copy_from_slice(&v);
        }
        assert!(stride >= w * 3);
        d
    }

    /// Y, U, V planes (tight) of an image, chroma from 2x2 averages like the crate's encoder.
    fn yuv_planes(img: &image::RgbImage) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let f = Frame::i420_from_rgb_image("t".into(), 0, 0, img);
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let d = &f.data;
        (
            d[..w * h].to_vec(),
            d[w * h..w * h + cw * ch].to_vec(),
            d[w * h + cw * ch..].to_vec(),
        )
    }

    /// I420 bytes with the given strides (padding 0xEE).
    fn i420_bytes(img: &image::RgbImage, ys: usize, cs: usize) -> Vec<u8> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, u, v) = yuv_planes(img);
        let mut d = vec![0xEE; ys * h + 2 * cs * ch];
        for r in 0..h {
            d[r * ys..r * ys + w].copy_from_slice(&y[r * w..(r + 1) * w]);
        }
        for r in 0..ch {
            let (uo, vo) = (ys * h + r * cs, ys * h + cs * ch + r * cs);
            d[uo..uo + cw].copy_from_slice(&u[r * cw..(r + 1) * cw]);
            d[vo..vo + cw].copy_from_slice(&v[r * cw..(r + 1) * cw]);
        }
        d
    }

    /// NV12 bytes with the given strides (padding 0xEE).
    fn nv12_bytes(img: &image::RgbImage, ys: usize, uvs: usize) -> Vec<u8> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, u, v) = yuv_planes(img);
        let mut d = vec![0xEE; ys * h + uvs * ch];
        for r in 0..h {
            d[r * ys..r * ys + w].copy_from_slice(&y[r * w..(r + 1) * w]);
        }
        for r in 0..ch {
            for c in 0..cw {
                let o = ys * h + r * uvs + 2 * c;
                d[o] = u[r * cw + c];
                d[o + 1] = v[r * cw + c];
            }
        }
        d
    }

    fn gradient(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w.max(2)) as u8,
                (y * 255 / h.max(2)) as u8,
                ((x * 7 + y * 13) % 256) as u8,
            ])
        })
    }

    fn run_f32(src: &SrcFrame<'_>, spec: &PreprocessSpec, size: u32) -> (Vec<f32>, LetterboxMap) {
        preprocess_reference_f32(src, spec, size).unwrap()
    }

    /// Checks every value: inside the picture `inside[c]`, outside `pad[c]`, exactly.
    fn assert_uniform(out: &[f32], size: u32, map: &LetterboxMap, inside: [f32; 3], pad: [f32; 3]) {
        let s = size as usize;
        let (px, py) = (map.pad_x_px as usize, map.pad_y_px as usize);
        let (cw, ch) = (map.content_w_px as usize, map.content_h_px as usize);
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let pic = x >= px && x < px + cw && y >= py && y < py + ch;
                    let want = if pic { inside[c] } else { pad[c] };
                    let got = out[c * s * s + y * s + x];
                    assert_eq!(got, want, "c={c} x={x} y={y} pic={pic}");
                }
            }
        }
    }

    #[test]
    fn uniform_colour_gives_the_exact_normalised_value_and_pad_outside() {
        let (r, g, b) = (200u8, 60u8, 25u8);
        let img = image::RgbImage::from_pixel(97, 41, image::Rgb([r, g, b]));
        for spec in [PreprocessSpec::NANODET, YOLOX, YOLOV8] {
            let n = NormConsts::new(&spec);
            let norm = |v: [f32; 3]| {
                let t = if spec.bgr { [v[2], v[1], v[0]] } else { v };
                [0, 1, 2].map(|c| (t[c] - n.mean[c]) * n.inv_std[c])
            };
            // Packed: the exact pixel value.
            let rgb_want = norm([r as f32, g as f32, b as f32]);
            let d = packed(&img, 97 * 3 + 5, false);
            let (out, map) = run_f32(&SrcFrame::rgb(&d, 97, 41, 97 * 3 + 5), &spec, 64);
            assert_uniform(&out, 64, &map, rgb_want, n.pad);
            // YUV: the float conversion of the frame's (uniform) Y, U, V.
            let [y, u, v] = rgb_to_yuv(r, g, b);
            let yuv_want = norm(yuv_to_rgb_f32(y as f32, u as f32, v as f32));
            let d = nv12_bytes(&img, 100, 102);
            let (out, map) = run_f32(&SrcFrame::nv12(&d, 97, 41, 100, 102), &spec, 64);
            assert_uniform(&out, 64, &map, yuv_want, n.pad);
        }
    }

    #[test]
    fn pad_value_is_normalised() {
        let n = NormConsts::new(&YOLOX);
        assert_eq!(n.pad, [114.0; 3]);
        let n = NormConsts::new(&YOLOV8);
        assert!((n.pad[0] - 114.0 / 255.0).abs() < 1e-7);
        let n = NormConsts::new(&PreprocessSpec::NANODET);
        assert!((n.pad[0] + 103.53 / 57.375).abs() < 1e-6);
    }

    #[test]
    fn nv12_and_i420_of_the_same_picture_are_identical() {
        for (w, h) in [(640u32, 272u32), (101, 57), (33, 80)] {
            let img = gradient(w, h);
            let cw = (w as usize).div_ceil(2);
            let ys = w as usize + 7;
            let i = i420_bytes(&img, ys, cw + 3);
            let n = nv12_bytes(&img, ys, 2 * cw + 6);
            for spec in [PreprocessSpec::NANODET, YOLOX] {
                let a = run_f32(&SrcFrame::i420(&i, w, h, ys, cw + 3, cw + 3), &spec, 96);
                let b = run_f32(&SrcFrame::nv12(&n, w, h, ys, 2 * cw + 6), &spec, 96);
                assert_eq!(a, b, "{w}x{h}");
            }
        }
    }

    #[test]
    fn rgb_and_bgr_inputs_and_channel_order_swap() {
        let img = gradient(150, 90);
        let stride = 150 * 3 + 2;
        let rgb = packed(&img, stride, false);
        let bgr = packed(&img, stride, true);
        let a = run_f32(&SrcFrame::rgb(&rgb, 150, 90, stride), &YOLOX, 80);
        let b = run_f32(&SrcFrame::bgr(&bgr, 150, 90, stride), &YOLOX, 80);
        assert_eq!(a, b);
        // An RGB-order spec puts the planes the other way round.
        let rgb_spec = PreprocessSpec {
            bgr: false,
            ..YOLOX
        };
        let c = run_f32(&SrcFrame::rgb(&rgb, 150, 90, stride), &rgb_spec, 80);
        let p = 80 * 80;
        assert_eq!(a.0[..p], c.0[2 * p..]);
        assert_eq!(a.0[p..2 * p], c.0[p..2 * p]);
        assert_eq!(a.0[2 * p..], c.0[..p]);
    }

    #[test]
    fn f16_is_the_f32_output_rounded() {
        let img = gradient(123, 77);
        let d = nv12_bytes(&img, 124, 124);
        let src = SrcFrame::nv12(&d, 123, 77, 124, 124);
        let (a, ma) =
            preprocess_reference(&src, &PreprocessSpec::NANODET, 64, TensorDtype::F32).unwrap();
        let (b, mb) =
            preprocess_reference(&src, &PreprocessSpec::NANODET, 64, TensorDtype::F16).unwrap();
        assert_eq!(ma, mb);
        let (TensorData::F32(a), TensorData::F16(b)) = (a, b) else {
            panic!("wrong dtypes")
        };
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(half::f16::from_f32(*x), *y);
            assert!((x - y.to_f32()).abs() <= x.abs() * 1e-3 + 1e-7);
        }
    }

    /// (mean, max) |reference - Letterboxer| over the whole tensor (picture and border), in
    /// pixel units (0..255 grey levels, i.e. the normalised difference times std), for `spec`.
    fn vs_letterboxer(
        img: &image::RgbImage,
        size: u32,
        i420: bool,
        spec: PreprocessSpec,
    ) -> (f32, f32) {
        let frame = if i420 {
            Frame::i420_from_rgb_image("t".into(), 0, 0, img)
        } else {
            Frame::from_rgb_image("t".into(), 0, 0, img)
        };
        let mut lb = Letterboxer::with_spec(size, spec);
        let mut want = vec![0.0; lb.input_len()];
        let lmap = lb.run(&frame, &mut want).unwrap();
        let (got, map) = run_f32(&SrcFrame::from_frame(&frame), &spec, size);
        assert_eq!(map, lmap);
        let (mut sum, mut max) = (0.0f64, 0.0f32);
        let plane = got.len() / 3;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            // Back to pixel units (grey levels), so specs with different std compare alike.
            let d = (a - b).abs() * spec.std[i / plane];
            sum += d as f64;
            max = max.max(d);
        }
        ((sum / got.len() as f64) as f32, max)
    }

    #[test]
    fn close_to_letterboxer_when_upscaling_or_mildly_downscaling() {
        let photo = image::open("tests/data/images/darknet_dog.jpg")
            .unwrap()
            .to_rgb8();
        // Bilinear in both (ratio <= 2): the same samples up to f32 rounding.
        for (img, size) in [
            (photo.clone(), 416u32),                             // 768x576 -> 416, 1.85x
            (image::imageops::thumbnail(&photo, 300, 225), 416), // upscale 1.39x
            (image::imageops::thumbnail(&photo, 640, 480), 416), // 1.54x
            (gradient(200, 120), 320),                           // upscale
        ] {
            for (i420, spec) in [
                (false, PreprocessSpec::NANODET),
                (true, PreprocessSpec::NANODET),
                (false, YOLOX),
                (true, YOLOV8),
            ] {
                let (mean, max) = vs_letterboxer(&img, size, i420, spec);
                let (w, h) = img.dimensions();
                eprintln!(
                    "{w}x{h} -> {size} i420={i420} centred={}: mean {mean:e} max {max:e}",
                    spec.centred
                );
                // Measured: mean <= 6e-6, max <= 1e-4 grey levels (f32 rounding of the same
                // samples; normalised: mean <= 1.1e-7, max <= 1.7e-6 for NanoDet).
                assert!(mean < 1e-4, "mean {mean}");
                assert!(max < 1e-3, "max {max}");
            }
        }
        // Area average vs one bilinear sample (3x shrink): close on average, not per pixel.
        let big = image::imageops::resize(&photo, 1280, 720, image::imageops::FilterType::Triangle);
        let (mean, max) = vs_letterboxer(&big, 416, false, PreprocessSpec::NANODET);
        eprintln!("1280x720 -> 416 (area vs bilinear): mean {mean:e} max {max:e}");
        // Measured: mean 1.0 grey level over the tensor (max 53 on sharp edges).
        assert!(mean < 3.0, "mean {mean}");
    }

    #[test]
    fn rejects_bad_layouts() {
        let d = vec![0u8; 100];
        let e = preprocess_reference_f32(&SrcFrame::rgb(&d, 10, 4, 29), &YOLOX, 8).unwrap_err();
        assert!(matches!(e, PreprocessError::Stride { plane: 0, .. }));
        let e = preprocess_reference_f32(&SrcFrame::rgb(&d, 10, 4, 30), &YOLOX, 8).unwrap_err();
        assert!(matches!(
            e,
            PreprocessError::PlaneOutOfBounds { plane: 0, .. }
        ));
        let e =
            preprocess_reference_f32(&SrcFrame::nv12(&d[..95], 8, 8, 8, 8), &YOLOX, 8).unwrap_err();
        assert!(matches!(
            e,
            PreprocessError::PlaneOutOfBounds { plane: 1, .. }
        ));
        let e = preprocess_reference_f32(&SrcFrame::rgb(&d, 0, 4, 30), &YOLOX, 8).unwrap_err();
        assert!(matches!(e, PreprocessError::FrameSize { .. }));
        let e = preprocess_reference_f32(&SrcFrame::rgb(&d, 3, 3, 9), &YOLOX, 0).unwrap_err();
        assert!(matches!(e, PreprocessError::InputSize { size_px: 0 }));
        // Exactly fitting planes are fine: 8x8 NV12 = 64 + 32 bytes.
        assert!(preprocess_reference_f32(&SrcFrame::nv12(&d[..96], 8, 8, 8, 8), &YOLOX, 8).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The non-border pixels are exactly LetterboxMap's picture rectangle, for both placements.
        #[test]
        fn picture_rectangle_matches_letterbox_map(w in 1u32..300, h in 1u32..300, size in 1u32..72,
                                                   centred in any::<bool>()) {
            let spec = PreprocessSpec { pad_value: 7.0, centred, ..YOLOX };
            let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 100, 50]));
            let d = packed(&img, w as usize * 3, false);
            let (out, map) = run_f32(&SrcFrame::rgb(&d, w, h, w as usize * 3), &spec, size);
            let base = LetterboxMap::new(w, h, size);
            prop_assert_eq!(map.scale, base.scale);
            prop_assert_eq!((map.content_w_px, map.content_h_px), (base.content_w_px, base.content_h_px));
            if centred {
                prop_assert_eq!((map.pad_x_px, map.pad_y_px), (base.pad_x_px, base.pad_y_px));
            } else {
                prop_assert_eq!((map.pad_x_px, map.pad_y_px), (0.0, 0.0));
            }
            // Blue channel first (BGR): 50 inside, 7 outside.
            let s = size as usize;
            let (px, py) = (map.pad_x_px as usize, map.pad_y_px as usize);
            for y in 0..s {
                for x in 0..s {
                    let inside = x >= px && x < px + map.content_w_px as usize
                        && y >= py && y < py + map.content_h_px as usize;
                    prop_assert_eq!(out[y * s + x], if inside { 50.0 } else { 7.0 });
                }
            }
        }
    }
}
