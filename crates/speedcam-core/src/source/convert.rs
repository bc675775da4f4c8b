//! Conversions of captured camera buffers to the pipeline's [`PixelFormat::I420`] layout.
//!
//! V4L2 devices deliver one of three layouts that matter for cheap USB and CSI cameras; each
//! is turned into packed I420 (Y plane, then U, then V, strides equal to widths, chroma
//! `(w + 1) / 2 x (h + 1) / 2`), the layout the H.264 decoders emit, so every later stage sees
//! one format:
//!
//! - **YUYV** (`YUY2`, packed 4:2:2: `Y0 U Y1 V` per pair of pixels). Luma is copied; the chroma
//!   of each I420 sample is the rounded *average* of the two rows' chroma (rows `2k` and
//!   `2k + 1`), not the upper row alone: averaging costs one add per sample and halves the
//!   vertical chroma aliasing that picking would keep. A picture whose two rows carry the same
//!   chroma (what an I420 -> YUYV expansion produces) converts back exactly.
//! - **NV12** (Y plane, then one interleaved `U V` plane at 4:2:0). Single-planar V4L2 NV12 puts
//!   the UV plane right after `bytes_per_line * height` bytes of luma, with the same
//!   bytes-per-line; both planes are de-strided, chroma de-interleaved. Exact.
//! - **MJPEG** (one baseline JPEG per buffer, usually 4:2:2 from webcams). Decoded by
//!   `zune-jpeg` straight to full-resolution YCbCr (no RGB step), then chroma is averaged over
//!   2x2 blocks and both are mapped from JPEG's full range (0..=255) to the limited range
//!   (luma 16..=235, chroma 16..=240) that [`crate::frame::yuv_to_rgb`] assumes. I420 rather
//!   than RGB: half the bytes for every later stage, and one pass over the picture after the
//!   decoder. Webcam MJPEG often omits the Huffman tables (the AVI1 convention); the standard
//!   tables are supplied then. A buffer that does not end with the JPEG end-of-image marker
//!   (after the zero padding some cameras add) is a truncated transfer and an error.
//!
//! Every function checks sizes and strides before touching the buffer and returns a
//! [`ConvertError`] for short, mis-sized or corrupt input; none panics on captured data.
//! A `bytes_per_line` of 0 means "rows are tightly packed".

use crate::frame::{buffer_len, PixelFormat};

/// Why a captured buffer could not be converted; the source counts these as decode errors.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Zero width or height.
    #[error("zero picture size ({width}x{height})")]
    Empty {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
    },
    /// The stated bytes per line cannot hold one row of pixels.
    #[error(
        "{format} bytes per line {bytes_per_line} is less than the {row_bytes} bytes of one row"
    )]
    Stride {
        /// Layout name, e.g. `YUYV`.
        format: &'static str,
        /// Bytes per line the driver reported.
        bytes_per_line: usize,
        /// Bytes one row needs.
        row_bytes: usize,
    },
    /// The buffer is shorter than the picture (truncated transfer).
    #[error("{format} {width}x{height} needs {want} bytes, the buffer holds {got}")]
    Short {
        /// Layout name, e.g. `NV12`.
        format: &'static str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes needed.
        want: usize,
        /// Bytes present.
        got: usize,
    },
    /// The buffer does not start with a JPEG start-of-image marker.
    #[error("corrupt MJPEG frame: no start-of-image marker ({bytes} bytes)")]
    JpegNoStart {
        /// Bytes in the buffer.
        bytes: usize,
    },
    /// The buffer does not end with an end-of-image marker (a truncated transfer).
    #[error("corrupt MJPEG frame: no end-of-image marker: truncated transfer ({bytes} bytes)")]
    JpegTruncated {
        /// Bytes in the buffer.
        bytes: usize,
    },
    /// The JPEG's header is malformed (found while walking its markers).
    #[error("corrupt MJPEG frame: {reason}")]
    JpegHeader {
        /// What is wrong, and where.
        reason: String,
    },
    /// The JPEG decoder rejected the frame.
    #[error("corrupt MJPEG frame: {cause}")]
    JpegDecode {
        /// The decoder's error.
        cause: zune_jpeg::errors::DecodeErrors,
    },
    /// The JPEG decoded to another size than the one negotiated with the device.
    #[error("MJPEG frame is {got_width}x{got_height}, the device was set to {width}x{height}")]
    JpegSize {
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
        /// Width in the JPEG header.
        got_width: usize,
        /// Height in the JPEG header.
        got_height: usize,
    },
}

fn dims(width: u32, height: u32) -> Result<(usize, usize), ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::Empty { width, height });
    }
    Ok((width as usize, height as usize))
}

/// Resolves the stride (0 = packed) and checks that `len` bytes hold `rows` rows of it.
fn check_rows(
    format: &'static str,
    (width, height): (u32, u32),
    bytes_per_line: usize,
    row_bytes: usize,
    rows: usize,
    len: usize,
) -> Result<usize, ConvertError> {
    let stride = if bytes_per_line == 0 {
        row_bytes
    } else {
        bytes_per_line
    };
    if stride < row_bytes {
        return Err(ConvertError::Stride {
            format,
            bytes_per_line,
            row_bytes,
        });
    }
    // The last row need not carry its padding.
    let want = stride
        .checked_mul(rows.saturating_sub(1))
        .and_then(|b| b.checked_add(row_bytes))
        .unwrap_or(usize::MAX);
    if len < want {
        return Err(ConvertError::Short {
            format,
            width,
            height,
            want,
            got: len,
        });
    }
    Ok(stride)
}

/// Packed YUYV 4:2:2 (`Y0 U Y1 V`) -> I420; chroma of each row pair is averaged (rounded).
///
/// A row holds `ceil(width / 2) * 4` bytes; with an odd width the last pair's second luma is
/// ignored. `bytes_per_line` 0 means packed rows.
pub fn yuyv_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    bytes_per_line: usize,
) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = dims(width, height)?;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let row = cw * 4;
    let stride = check_rows("YUYV", (width, height), bytes_per_line, row, h, src.len())?;
    let mut out = vec![0u8; buffer_len(PixelFormat::I420, width, height)];
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let rows = |y: usize| &src[y * stride..y * stride + row];
    for cy in 0..ch {
        let top = rows(2 * cy);
        let bottom = if 2 * cy + 1 < h {
            rows(2 * cy + 1)
        } else {
            top
        };
        for (yy, r) in [(2 * cy, top), (2 * cy + 1, bottom)] {
            if yy < h {
                let dst = &mut y_plane[yy * w..(yy + 1) * w];
                for (d, s) in dst.iter_mut().zip(r.chunks_exact(2)) {
                    *d = s[0];
                }
            }
        }
        let u_row = &mut u_plane[cy * cw..(cy + 1) * cw];
        let v_row = &mut v_plane[cy * cw..(cy + 1) * cw];
        for (((u, v), a), b) in u_row
            .iter_mut()
            .zip(v_row.iter_mut())
            .zip(top.chunks_exact(4))
            .zip(bottom.chunks_exact(4))
        {
            *u = ((u16::from(a[1]) + u16::from(b[1]) + 1) >> 1) as u8;
            *v = ((u16::from(a[3]) + u16::from(b[3]) + 1) >> 1) as u8;
        }
    }
    Ok(out)
}

/// Single-planar NV12 (Y plane, then interleaved `U V` at 4:2:0, both with `bytes_per_line`)
/// -> I420. Exact. The UV plane starts at `bytes_per_line * height`; `bytes_per_line` 0 means
/// packed rows (`width` rounded up to even).
pub fn nv12_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    bytes_per_line: usize,
) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = dims(width, height)?;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let row = cw * 2;
    // Luma rows plus chroma rows, all with the same stride.
    let stride = check_rows(
        "NV12",
        (width, height),
        bytes_per_line,
        row,
        h + ch,
        src.len(),
    )?;
    let mut out = vec![0u8; buffer_len(PixelFormat::I420, width, height)];
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    for (y, dst) in y_plane.chunks_exact_mut(w).enumerate() {
        dst.copy_from_slice(&src[y * stride..y * stride + w]);
    }
    let uv_base = stride * h;
    for cy in 0..ch {
        let uv = &src[uv_base + cy * stride..uv_base + cy * stride + row];
        let u_row = &mut u_plane[cy * cw..(cy + 1) * cw];
        let v_row = &mut v_plane[cy * cw..(cy + 1) * cw];
        for ((u, v), s) in u_row
            .iter_mut()
            .zip(v_row.iter_mut())
            .zip(uv.chunks_exact(2))
        {
            *u = s[0];
            *v = s[1];
        }
    }
    Ok(out)
}

/// Full-range to limited-range lookup: `offset + round(x * span / 255)`.
const fn range_lut(span: u32, offset: u32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        lut[i] = (offset + (i as u32 * span + 127) / 255) as u8;
        i += 1;
    }
    lut
}

/// JPEG (JFIF, full range) luma -> limited range 16..=235.
const LUMA_TO_LIMITED: [u8; 256] = range_lut(219, 16);
/// JPEG (JFIF, full range) chroma -> limited range 16..=240 (128 stays 128).
const CHROMA_TO_LIMITED: [u8; 256] = range_lut(224, 16);

/// Largest JPEG side accepted (pixels), above any camera mode.
const MAX_JPEG_SIDE: usize = 16_384;

/// APP0 segment marking AVI1-style MJPEG, which makes zune-jpeg supply the standard Huffman
/// tables that such frames omit.
const AVI1_APP0: [u8; 9] = [0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// The JPEG without trailing zero padding; errors unless it starts with SOI and ends with EOI.
fn jpeg_body(src: &[u8]) -> Result<&[u8], ConvertError> {
    if src.len() < 4 || src[0] != 0xFF || src[1] != 0xD8 {
        return Err(ConvertError::JpegNoStart { bytes: src.len() });
    }
    let end = src.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || src[end - 2] != 0xFF || src[end - 1] != 0xD9 {
        return Err(ConvertError::JpegTruncated { bytes: src.len() });
    }
    Ok(&src[..end])
}

/// Whether the JPEG header (SOI up to the first SOS) lacks a Huffman table segment (DHT).
fn lacks_huffman_tables(jpeg: &[u8]) -> Result<bool, ConvertError> {
    let header = |reason: String| Err(ConvertError::JpegHeader { reason });
    let mut i = 2;
    loop {
        let (Some(&ff), Some(&marker)) = (jpeg.get(i), jpeg.get(i + 1)) else {
            return header("header ends before the scan".into());
        };
        if ff != 0xFF {
            return header(format!("expected a marker at byte {i}, found {ff:#04x}"));
        }
        match marker {
            0xFF => i += 1, // fill byte
            0xC4 => return Ok(false),
            0xDA => return Ok(true),
            0xD9 => return header("end of image before any scan".into()),
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let len = match (jpeg.get(i + 2), jpeg.get(i + 3)) {
                    (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
                    _ => return header("header segment cut short".into()),
                };
                if len < 2 {
                    return header(format!("segment {marker:#04x} has length {len}"));
                }
                i += 2 + len;
            }
        }
    }
}

/// One MJPEG buffer -> I420 at limited range; the JPEG must be `width x height`.
///
/// Accepts baseline and progressive JPEGs at any chroma subsampling (4:2:2 from webcams, 4:2:0,
/// 4:4:4) and greyscale (chroma set to neutral 128). Frames without Huffman tables get the
/// standard ones. Truncated, corrupt or mis-sized frames are errors.
pub fn mjpeg_to_i420(src: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ConvertError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    use zune_jpeg::JpegDecoder;

    let (w, h) = dims(width, height)?;
    let body = jpeg_body(src)?;
    let patched;
    let jpeg = if lacks_huffman_tables(body)? {
        let mut v = Vec::with_capacity(body.len() + AVI1_APP0.len());
        v.extend_from_slice(&body[..2]);
        v.extend_from_slice(&AVI1_APP0);
        v.extend_from_slice(&body[2..]);
        patched = v;
        &patched[..]
    } else {
        body
    };
    let jpeg_err = |cause| ConvertError::JpegDecode { cause };
    // Limits keep a corrupt header from asking for a huge allocation; the size is compared with
    // the negotiated one before any pixel is decoded.
    let options = DecoderOptions::default()
        .set_max_width(MAX_JPEG_SIDE)
        .set_max_height(MAX_JPEG_SIDE);
    let mut probe = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    probe.decode_headers().map_err(jpeg_err)?;
    let (got_width, got_height) = probe.dimensions().ok_or_else(|| ConvertError::JpegHeader {
        reason: "no frame header".into(),
    })?;
    if (got_width, got_height) != (w, h) {
        return Err(ConvertError::JpegSize {
            width,
            height,
            got_width,
            got_height,
        });
    }
    let grey = probe.input_colorspace() == Some(ColorSpace::Luma);
    let out_space = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::YCbCr
    };
    let mut decoder = JpegDecoder::new_with_options(
        ZCursor::new(jpeg),
        options.jpeg_set_out_colorspace(out_space),
    );
    let pixels = decoder.decode().map_err(jpeg_err)?;
    let channels = if grey { 1 } else { 3 };
    if pixels.len() != w * h * channels {
        return Err(ConvertError::JpegHeader {
            reason: format!(
                "decoder returned {} bytes for {w}x{h}x{channels}",
                pixels.len()
            ),
        });
    }
    Ok(full_range_to_i420(&pixels, w, h, grey))
}

/// Interleaved full-range YCbCr (or luma only when `grey`) -> limited-range I420, chroma
/// averaged over 2x2 blocks (clipped at odd edges).
fn full_range_to_i420(pixels: &[u8], w: usize, h: usize, grey: bool) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![128u8; w * h + 2 * cw * ch];
    let (y_plane, chroma) = out.split_at_mut(w * h);
    if grey {
        for (d, &s) in y_plane.iter_mut().zip(pixels) {
            *d = LUMA_TO_LIMITED[usize::from(s)];
        }
        return out;
    }
    for (d, s) in y_plane.iter_mut().zip(pixels.chunks_exact(3)) {
        *d = LUMA_TO_LIMITED[usize::from(s[0])];
    }
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let row = w * 3;
    for cy in 0..ch {
        let top = &pixels[2 * cy * row..(2 * cy + 1) * row];
        let bottom = if 2 * cy + 1 < h {
            &pixels[(2 * cy + 1) * row..(2 * cy + 2) * row]
        } else {
            top
        };
        for cx in 0..cw {
            let x0 = 2 * cx * 3;
            let x1 = if 2 * cx + 1 < w { x0 + 3 } else { x0 };
            let sum = |c: usize| {
                u32::from(top[x0 + c])
                    + u32::from(top[x1 + c])
                    + u32::from(bottom[x0 + c])
                    + u32::from(bottom[x1 + c])
            };
            u_plane[cy * cw + cx] = CHROMA_TO_LIMITED[((sum(1) + 2) >> 2) as usize];
            v_plane[cy * cw + cx] = CHROMA_TO_LIMITED[((sum(2) + 2) >> 2) as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{rgb_to_yuv, yuv_to_rgb, Frame};
    use proptest::prelude::*;

    /// A deterministic test picture with edges, gradients and saturated colours.
    fn picture(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            let band = (x * 4 / w.max(1)) as u8;
            image::Rgb([
                (x * 255 / w.max(1)) as u8,
                (y * 255 / h.max(1)) as u8,
                band.wrapping_mul(80) ^ ((x / 8 + y / 8) % 2 * 60) as u8,
            ])
        })
    }

    fn i420_of(img: &image::RgbImage) -> Vec<u8> {
        Frame::i420_from_rgb_image("t".into(), 0, 0, img)
            .data
            .to_vec()
    }

    /// I420 -> YUYV with `stride` bytes per line (padding filled with 0xAB), chroma repeated on
    /// both rows of a pair.
    fn yuyv_from_i420(i420: &[u8], w: usize, h: usize, stride: usize) -> Vec<u8> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = vec![0xABu8; stride * h];
        for y in 0..h {
            for cx in 0..cw {
                let x0 = 2 * cx;
                let x1 = (x0 + 1).min(w - 1);
                let c = (y / 2) * cw + cx;
                let o = y * stride + cx * 4;
                out[o] = i420[y * w + x0];
                out[o + 1] = i420[w * h + c];
                out[o + 2] = i420[y * w + x1];
                out[o + 3] = i420[w * h + cw * ch + c];
            }
        }
        out
    }

    /// I420 -> single-planar NV12 with `stride` bytes per line (padding 0xCD).
    fn nv12_from_i420(i420: &[u8], w: usize, h: usize, stride: usize) -> Vec<u8> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = vec![0xCDu8; stride * (h + ch)];
        for y in 0..h {
            out[y * stride..y * stride + w].copy_from_slice(&i420[y * w..(y + 1) * w]);
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let o = stride * h + cy * stride + 2 * cx;
                out[o] = i420[w * h + cy * cw + cx];
                out[o + 1] = i420[w * h + cw * ch + cy * cw + cx];
            }
        }
        out
    }

    fn jpeg_of(img: &image::RgbImage, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 95);
        enc.set_sampling_factor(sampling);
        enc.encode(
            img.as_raw(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
        out
    }

    /// Largest per-channel RGB difference between two I420 pictures, and the mean over pixels.
    fn rgb_error(a: &[u8], b: &[u8], w: u32, h: u32) -> (i32, f64) {
        let fa = Frame::new(
            "a".into(),
            0,
            0,
            time::OffsetDateTime::UNIX_EPOCH,
            w,
            h,
            PixelFormat::I420,
            bytes::Bytes::copy_from_slice(a),
        )
        .unwrap();
        let fb = Frame::new(
            "b".into(),
            0,
            0,
            time::OffsetDateTime::UNIX_EPOCH,
            w,
            h,
            PixelFormat::I420,
            bytes::Bytes::copy_from_slice(b),
        )
        .unwrap();
        let (mut max, mut sum) = (0, 0i64);
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let (p, q) = (fa.rgb_at(x, y), fb.rgb_at(x, y));
                for c in 0..3 {
                    let d = (p[c] as i32 - q[c] as i32).abs();
                    max = max.max(d);
                    sum += d as i64;
                }
            }
        }
        (max, sum as f64 / (3 * w * h) as f64)
    }

    #[test]
    fn yuyv_round_trip_is_exact_with_padding_and_odd_sizes() {
        for (w, h, pad) in [
            (64, 48, 0),
            (33, 17, 12),
            (1, 1, 0),
            (2, 3, 4),
            (640, 480, 64),
        ] {
            let i420 = i420_of(&picture(w, h));
            let stride = (w as usize).div_ceil(2) * 4 + pad;
            let yuyv = yuyv_from_i420(&i420, w as usize, h as usize, stride);
            let bpl = if pad == 0 { 0 } else { stride };
            assert_eq!(
                yuyv_to_i420(&yuyv, w, h, bpl).unwrap(),
                i420,
                "{w}x{h}+{pad}"
            );
        }
    }

    #[test]
    fn yuyv_chroma_is_the_rounded_row_pair_average() {
        // 2x2: one pair of pixels per row, U 10/21 -> 16 (rounded up), V 200/201 -> 201.
        let src = [1, 10, 2, 200, 3, 21, 4, 201];
        let out = yuyv_to_i420(&src, 2, 2, 0).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4, 16, 201]);
    }

    #[test]
    fn nv12_round_trip_is_exact_with_padding_and_odd_sizes() {
        for (w, h, pad) in [
            (64, 48, 0),
            (33, 17, 7),
            (1, 1, 0),
            (3, 2, 1),
            (1280, 720, 0),
        ] {
            let i420 = i420_of(&picture(w, h));
            let stride = (w as usize).div_ceil(2) * 2 + pad;
            let nv12 = nv12_from_i420(&i420, w as usize, h as usize, stride);
            let bpl = if pad == 0 { 0 } else { stride };
            assert_eq!(
                nv12_to_i420(&nv12, w, h, bpl).unwrap(),
                i420,
                "{w}x{h}+{pad}"
            );
        }
    }

    #[test]
    fn short_buffers_and_bad_strides_are_errors() {
        let i420 = i420_of(&picture(16, 8));
        let yuyv = yuyv_from_i420(&i420, 16, 8, 32);
        assert!(matches!(
            yuyv_to_i420(&yuyv[..yuyv.len() - 1], 16, 8, 0),
            Err(ConvertError::Short {
                want: 256,
                got: 255,
                ..
            })
        ));
        assert!(matches!(
            yuyv_to_i420(&yuyv, 16, 8, 31),
            Err(ConvertError::Stride { row_bytes: 32, .. })
        ));
        assert!(matches!(
            yuyv_to_i420(&yuyv, 0, 8, 0),
            Err(ConvertError::Empty { .. })
        ));
        let nv12 = nv12_from_i420(&i420, 16, 8, 16);
        assert!(matches!(
            nv12_to_i420(&nv12[..nv12.len() - 1], 16, 8, 0),
            Err(ConvertError::Short { .. })
        ));
        assert!(matches!(
            nv12_to_i420(&nv12, 16, 8, 15),
            Err(ConvertError::Stride { .. })
        ));
        assert!(yuyv_to_i420(&[], 4000, 3000, usize::MAX).is_err());
        assert!(nv12_to_i420(&[0; 10], u32::MAX, u32::MAX, 0).is_err());
    }

    #[test]
    fn mjpeg_422_420_444_decode_close_to_the_source() {
        use jpeg_encoder::SamplingFactor as S;
        for (w, h) in [(64, 48), (37, 23), (320, 240)] {
            let img = picture(w, h);
            let reference = i420_of(&img);
            for sampling in [S::F_2_1, S::F_2_2, S::F_1_1] {
                let jpeg = jpeg_of(&img, sampling);
                let out = mjpeg_to_i420(&jpeg, w, h).unwrap();
                let (max, mean) = rgb_error(&out, &reference, w, h);
                // q95 JPEG of a picture with hard edges: small mean, bounded worst case.
                assert!(mean < 4.0, "{w}x{h} {sampling:?}: mean {mean}");
                assert!(max < 100, "{w}x{h} {sampling:?}: max {max}");
            }
        }
    }

    #[test]
    fn mjpeg_flat_colours_map_full_to_limited_range() {
        for rgb in [[0u8, 0, 0], [255, 255, 255], [200, 30, 90], [10, 240, 128]] {
            let img = image::RgbImage::from_pixel(32, 16, image::Rgb(rgb));
            let out =
                mjpeg_to_i420(&jpeg_of(&img, jpeg_encoder::SamplingFactor::F_2_1), 32, 16).unwrap();
            let want = rgb_to_yuv(rgb[0], rgb[1], rgb[2]);
            let got = [out[0], out[32 * 16], out[32 * 16 + 16 * 8]];
            for c in 0..3 {
                assert!(
                    (want[c] as i32 - got[c] as i32).abs() <= 2,
                    "{rgb:?}: yuv {got:?}, want {want:?}"
                );
            }
            let back = yuv_to_rgb(got[0], got[1], got[2]);
            for c in 0..3 {
                assert!(
                    (back[c] as i32 - rgb[c] as i32).abs() <= 4,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }

    /// Removes every DHT segment, as AVI1-style webcam MJPEG does.
    fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while jpeg[i + 1] != 0xDA {
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    #[test]
    fn mjpeg_without_huffman_tables_and_with_padding_decodes() {
        let img = picture(64, 32);
        let jpeg = jpeg_of(&img, jpeg_encoder::SamplingFactor::F_2_1);
        let want = mjpeg_to_i420(&jpeg, 64, 32).unwrap();
        let mut stripped = strip_huffman_tables(&jpeg);
        assert!(stripped.len() < jpeg.len());
        assert!(lacks_huffman_tables(&stripped).unwrap());
        assert_eq!(mjpeg_to_i420(&stripped, 64, 32).unwrap(), want);
        // UVC buffers are often zero-padded after the end-of-image marker.
        stripped.extend_from_slice(&[0; 300]);
        assert_eq!(mjpeg_to_i420(&stripped, 64, 32).unwrap(), want);
    }

    #[test]
    fn mjpeg_greyscale_has_neutral_chroma() {
        let img = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(img.as_raw(), 16, 8, jpeg_encoder::ColorType::Luma)
            .unwrap();
        let out = mjpeg_to_i420(&jpeg, 16, 8).unwrap();
        assert!(out[16 * 8..].iter().all(|&c| c == 128));
        assert!((out[0] as i32 - 16).abs() <= 2, "{}", out[0]);
    }

    #[test]
    fn mjpeg_truncated_corrupt_and_mis_sized_frames_are_errors() {
        let jpeg = jpeg_of(&picture(64, 48), jpeg_encoder::SamplingFactor::F_2_1);
        for cut in [0, 1, 3, 10, 100, jpeg.len() / 2, jpeg.len() - 1] {
            assert!(
                matches!(
                    mjpeg_to_i420(&jpeg[..cut], 64, 48),
                    Err(ConvertError::JpegNoStart { .. } | ConvertError::JpegTruncated { .. })
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            mjpeg_to_i420(&jpeg, 32, 48),
            Err(ConvertError::JpegSize { got_width: 64, .. })
        ));
        // A frame header of width 0 passes the marker walk; the decoder's refusal is kept typed
        // and printed once.
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline frame header");
        let mut zero_width = jpeg.clone();
        zero_width[sof + 7..sof + 9].fill(0);
        let err = mjpeg_to_i420(&zero_width, 64, 48).expect_err("width 0");
        let ConvertError::JpegDecode { cause } = &err else {
            panic!("expected the decoder's error, got {err:?}");
        };
        let shown = crate::error_chain::assert_cause_printed_once(&err);
        assert_eq!(shown.matches(&cause.to_string()).count(), 1, "{shown}");
        // Header garbage: the marker walk or the decoder rejects it.
        let mut bad = jpeg.clone();
        bad[2] = 0x12;
        assert!(mjpeg_to_i420(&bad, 64, 48).is_err());
        // A frame header claiming a huge picture is refused before allocating it.
        assert!(mjpeg_to_i420(&jpeg, 64, 48).is_ok());
        let sof = jpeg.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
        let mut huge = jpeg.clone();
        huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(mjpeg_to_i420(&huge, 64, 48).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn yuyv_and_nv12_round_trip_any_size_and_stride(
            w in 1u32..40, h in 1u32..30, pad in 0usize..9, seed in any::<u64>()
        ) {
            let mut s = seed | 1;
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
            });
            let i420 = i420_of(&img);
            let (wu, hu) = (w as usize, h as usize);
            let ys = wu.div_ceil(2) * 4 + pad;
            let yuyv = yuyv_from_i420(&i420, wu, hu, ys);
            prop_assert_eq!(&yuyv_to_i420(&yuyv, w, h, ys).unwrap(), &i420);
            let ns = wu.div_ceil(2) * 2 + pad;
            let nv12 = nv12_from_i420(&i420, wu, hu, ns);
            prop_assert_eq!(&nv12_to_i420(&nv12, w, h, ns).unwrap(), &i420);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            w in 0u32..64, h in 0u32..64, bpl in 0usize..300
        ) {
            let _ = yuyv_to_i420(&data, w, h, bpl);
            let _ = nv12_to_i420(&data, w, h, bpl);
            let _ = mjpeg_to_i420(&data, w, h);
            let mut jpeg = vec![0xFF, 0xD8];
            jpeg.extend_from_slice(&data);
            jpeg.extend_from_slice(&[0xFF, 0xD9]);
            let _ = mjpeg_to_i420(&jpeg, w, h);
        }

        #[test]
        fn corrupted_mjpeg_never_panics(pos in 0usize..4096, byte in any::<u8>()) {
            let jpeg = jpeg_of(&picture(48, 32), jpeg_encoder::SamplingFactor::F_2_1);
            let mut bad = jpeg.clone();
            let i = pos % bad.len();
            bad[i] = byte;
            if let Ok(out) = mjpeg_to_i420(&bad, 48, 32) {
                prop_assert_eq!(out.len(), buffer_len(PixelFormat::I420, 48, 32));
            }
        }
    }

    /// Conversion cost at 1280x720; run with `cargo test --release --lib source::convert::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing figures, not a check"]
    fn timing_1280x720() {
        let (w, h) = (1280u32, 720u32);
        let img = picture(w, h);
        let i420 = i420_of(&img);
        let yuyv = yuyv_from_i420(&i420, 1280, 720, 2560);
        let nv12 = nv12_from_i420(&i420, 1280, 720, 1280);
        let jpeg = jpeg_of(&img, jpeg_encoder::SamplingFactor::F_2_1);
        let time = |name: &str, f: &dyn Fn() -> Vec<u8>| {
            let _ = f();
            let n = 50;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(f());
            }
            println!(
                "{name} 1280x720: {:.2} ms",
                t.elapsed().as_secs_f64() * 1e3 / n as f64
            );
        };
        time("YUYV->I420", &|| yuyv_to_i420(&yuyv, w, h, 0).unwrap());
        time("NV12->I420", &|| nv12_to_i420(&nv12, w, h, 0).unwrap());
        time("MJPEG 4:2:2->I420", &|| mjpeg_to_i420(&jpeg, w, h).unwrap());
    }
}
