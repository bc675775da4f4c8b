//! The unit that flows through the pipeline: one decoded picture with its capture time.

use bytes::Bytes;
use std::sync::Arc;
use time::OffsetDateTime;

/// Pixel layout of [`Frame::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Planar YUV 4:2:0: full-size Y plane, then quarter-size U and V planes (what H.264 decoders emit).
    /// Plane strides equal their widths; chroma width/height are `(w + 1) / 2`, `(h + 1) / 2`.
    I420,
    /// Packed 8-bit RGB, 3 bytes per pixel, rows without padding.
    Rgb8,
}

/// One decoded frame. Cheap to clone: pixels are shared, never copied between stages.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Camera this frame came from.
    pub camera: Arc<str>,
    /// Sequence number within the source, from 0, counting every decoded frame.
    pub seq: u64,
    /// Capture timestamp in nanoseconds from the source's clock (container PTS from the start of
    /// a file, RTP/RTCP time, V4L2 buffer time). Speed is computed from this, never from a frame rate.
    pub pts_ns: i64,
    /// Wall-clock time the frame was captured (or decoded, when the source has no better time).
    pub wall: OffsetDateTime,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of `data`.
    pub format: PixelFormat,
    /// The pixels, laid out per `format`.
    pub data: Bytes,
}

impl Frame {
    /// Capture time in seconds.
    pub fn pts_s(&self) -> f64 {
        self.pts_ns as f64 * 1e-9
    }
}

/// Errors building a frame from raw pixels.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer does not hold `width x height` pixels of the stated format.
    #[error("frame buffer holds {got} bytes, {format:?} {width}x{height} needs {want}")]
    Size {
        /// Declared format.
        format: PixelFormat,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Bytes the layout needs.
        want: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// Zero width or height.
    #[error("frame has zero size ({width}x{height})")]
    Empty {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
}

/// Bytes needed for a `width x height` picture in `format`.
pub fn buffer_len(format: PixelFormat, width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    match format {
        PixelFormat::Rgb8 => w * h * 3,
        PixelFormat::I420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
    }
}

/// BT.601 limited-range YUV -> RGB, the matrix H.264 streams from cameras use by default.
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// RGB -> BT.601 limited-range YUV (inverse of [`yuv_to_rgb`]), used by encoders of synthetic video.
#[inline]
pub fn rgb_to_yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [
        y.clamp(0, 255) as u8,
        u.clamp(0, 255) as u8,
        v.clamp(0, 255) as u8,
    ]
}

impl Frame {
    /// Wraps raw pixels, checking that the buffer matches the declared size and format.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        camera: Arc<str>,
        seq: u64,
        pts_ns: i64,
        wall: OffsetDateTime,
        width: u32,
        height: u32,
        format: PixelFormat,
        data: Bytes,
    ) -> Result<Frame, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let want = buffer_len(format, width, height);
        if data.len() != want {
            return Err(FrameError::Size {
                format,
                width,
                height,
                want,
                got: data.len(),
            });
        }
        Ok(Frame {
            camera,
            seq,
            pts_ns,
            wall,
            width,
            height,
            format,
            data,
        })
    }

    /// RGB of the pixel at (x, y); coordinates are clamped into the frame.
    #[inline]
    pub fn rgb_at(&self, x: i64, y: i64) -> [u8; 3] {
        let (w, h) = (self.width as usize, self.height as usize);
        let x = x.clamp(0, w as i64 - 1) as usize;
        let y = y.clamp(0, h as i64 - 1) as usize;
        match self.format {
            PixelFormat::Rgb8 => {
                let i = (y * w + x) * 3;
                [self.data[i], self.data[i + 1], self.data[i + 2]]
            }
            PixelFormat::I420 => {
                let cw = w.div_ceil(2);
                let ch = h.div_ceil(2);
                let yv = self.data[y * w + x];
                let ci = (y / 2) * cw + x / 2;
                let u = self.data[w * h + ci];
                let v = self.data[w * h + cw * ch + ci];
                yuv_to_rgb(yv, u, v)
            }
        }
    }

    /// The whole frame as an RGB image (for snapshots and overlays; not for the hot path).
    pub fn to_rgb(&self) -> image::RgbImage {
        self.crop_rgb(0, 0, self.width, self.height)
    }

    /// A copy of the rectangle at (x, y) of size w x h as RGB, clipped to the frame (at least 1x1).
    /// Used for thumbnails: small crops are cheap, whole-frame conversion is not needed.
    pub fn crop_rgb(&self, x: u32, y: u32, w: u32, h: u32) -> image::RgbImage {
        let x = x.min(self.width - 1);
        let y = y.min(self.height - 1);
        let w = w.clamp(1, self.width - x);
        let h = h.clamp(1, self.height - y);
        let mut out = image::RgbImage::new(w, h);
        for (dx, dy, px) in out.enumerate_pixels_mut() {
            *px = image::Rgb(self.rgb_at((x + dx) as i64, (y + dy) as i64));
        }
        out
    }

    /// The luma (grey level) of the pixel at (x, y), clamped into the frame.
    #[inline]
    pub fn luma_at(&self, x: i64, y: i64) -> u8 {
        match self.format {
            PixelFormat::I420 => {
                let w = self.width as i64;
                let x = x.clamp(0, w - 1);
                let y = y.clamp(0, self.height as i64 - 1);
                self.data[(y * w + x) as usize]
            }
            PixelFormat::Rgb8 => rgb_to_yuv(
                self.rgb_at(x, y)[0],
                self.rgb_at(x, y)[1],
                self.rgb_at(x, y)[2],
            )[0],
        }
    }

    /// A frame of `img`'s size captured now; `data` must already match size and format.
    fn now(
        camera: Arc<str>,
        seq: u64,
        pts_ns: i64,
        img: &image::RgbImage,
        format: PixelFormat,
        data: Bytes,
    ) -> Frame {
        Frame {
            camera,
            seq,
            pts_ns,
            wall: OffsetDateTime::now_utc(),
            width: img.width(),
            height: img.height(),
            format,
            data,
        }
    }

    /// Builds an RGB frame from an image (tests, still images, synthetic scenes).
    pub fn from_rgb_image(camera: Arc<str>, seq: u64, pts_ns: i64, img: &image::RgbImage) -> Frame {
        let data = Bytes::copy_from_slice(img.as_raw());
        Self::now(camera, seq, pts_ns, img, PixelFormat::Rgb8, data)
    }

    /// Builds an I420 frame from an RGB image the way encoders do (BT.601 limited range, chroma
    /// from the 2x2 block average): the format decoded video arrives in, for tests and tools.
    pub fn i420_from_rgb_image(
        camera: Arc<str>,
        seq: u64,
        pts_ns: i64,
        img: &image::RgbImage,
    ) -> Frame {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![0u8; w * h + 2 * cw * ch];
        for (x, y, p) in img.enumerate_pixels() {
            data[y as usize * w + x as usize] = rgb_to_yuv(p[0], p[1], p[2])[0];
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut u, mut v, mut n) = (0u32, 0u32, 0u32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (px, py) = ((2 * cx + dx).min(w - 1), (2 * cy + dy).min(h - 1));
                    let p = img.get_pixel(px as u32, py as u32).0;
                    let [_, pu, pv] = rgb_to_yuv(p[0], p[1], p[2]);
                    (u, v, n) = (u + pu as u32, v + pv as u32, n + 1);
                }
                data[w * h + cy * cw + cx] = ((u + n / 2) / n) as u8;
                data[w * h + cw * ch + cy * cw + cx] = ((v + n / 2) / n) as u8;
            }
        }
        Self::now(
            camera,
            seq,
            pts_ns,
            img,
            PixelFormat::I420,
            Bytes::from(data),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_round_trip_is_close() {
        for &(r, g, b) in &[
            (0u8, 0u8, 0u8),
            (255, 255, 255),
            (200, 30, 90),
            (10, 240, 128),
        ] {
            let [y, u, v] = rgb_to_yuv(r, g, b);
            let [r2, g2, b2] = yuv_to_rgb(y, u, v);
            for (a, b) in [(r, r2), (g, g2), (b, b2)] {
                assert!((a as i32 - b as i32).abs() <= 3, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn rejects_wrong_buffer_size() {
        let err = Frame::new(
            "c".into(),
            0,
            0,
            OffsetDateTime::UNIX_EPOCH,
            4,
            4,
            PixelFormat::I420,
            Bytes::from(vec![0u8; 10]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FrameError::Size {
                want: 24,
                got: 10,
                ..
            }
        ));
    }

    #[test]
    fn crop_is_clipped_to_frame() {
        let img = image::RgbImage::from_pixel(8, 6, image::Rgb([1, 2, 3]));
        let f = Frame::from_rgb_image("c".into(), 0, 0, &img);
        let c = f.crop_rgb(6, 4, 10, 10);
        assert_eq!((c.width(), c.height()), (2, 2));
        assert_eq!(c.get_pixel(1, 1).0, [1, 2, 3]);
    }
}
