//! The in-process H.264 decoder (openh264, built from source) and the copy of its strided output
//! into the packed I420 layout of [`crate::frame::PixelFormat::I420`].

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

/// A decoded picture in packed I420 (plane strides equal plane widths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y plane, then U, then V; chroma planes are `ceil(w/2) x ceil(h/2)`.
    pub data: Vec<u8>,
}

/// One openh264 decoder instance; feed it whole access units in Annex B form.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    /// Creates a decoder (openh264 compiled into the binary).
    pub fn new() -> Result<Self, String> {
        Decoder::new()
            .map(|decoder| Self { decoder })
            .map_err(|e| e.to_string())
    }

    /// Decodes one access unit; `Ok(None)` when it produced no picture.
    pub fn decode(&mut self, annexb: &[u8]) -> Result<Option<Picture>, String> {
        match self.decoder.decode(annexb) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                let (sy, su, sv) = yuv.strides();
                let planes = Planes {
                    width: w,
                    height: h,
                    y: (yuv.y(), sy),
                    u: (yuv.u(), su),
                    v: (yuv.v(), sv),
                };
                planes.to_packed_i420().map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Borrowed planes with their row strides, as decoders hand them out.
pub(crate) struct Planes<'a> {
    /// Luma width in pixels.
    pub width: usize,
    /// Luma height in pixels.
    pub height: usize,
    /// Y plane and its stride in bytes.
    pub y: (&'a [u8], usize),
    /// U plane and its stride in bytes.
    pub u: (&'a [u8], usize),
    /// V plane and its stride in bytes.
    pub v: (&'a [u8], usize),
}

impl Planes<'_> {
    /// Copies the visible pixels row by row into a packed I420 buffer; fails (instead of
    /// reading out of bounds) when a plane is shorter than its size and stride imply.
    pub(crate) fn to_packed_i420(&self) -> Result<Picture, String> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return Err(format!("decoder returned an empty {w}x{h} picture"));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = Vec::with_capacity(w * h + 2 * cw * ch);
        for (name, (plane, stride), pw, ph) in [
            ("Y", self.y, w, h),
            ("U", self.u, cw, ch),
            ("V", self.v, cw, ch),
        ] {
            if stride < pw {
                return Err(format!("{name} plane stride {stride} < width {pw}"));
            }
            for row in 0..ph {
                let line = plane.get(row * stride..row * stride + pw).ok_or_else(|| {
                    format!(
                        "{name} plane holds {} bytes, row {row} of {ph} (stride {stride}) is missing",
                        plane.len()
                    )
                })?;
                data.extend_from_slice(line);
            }
        }
        let width = u32::try_from(w).map_err(|_| format!("picture width {w} too large"))?;
        let height = u32::try_from(h).map_err(|_| format!("picture height {h} too large"))?;
        Ok(Picture {
            width,
            height,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{buffer_len, PixelFormat};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strided_copy_keeps_visible_pixels(
            w in 1usize..40, h in 1usize..40, pad_y in 0usize..9, pad_c in 0usize..9,
        ) {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let (sy, sc) = (w + pad_y, cw + pad_c);
            // Each visible byte encodes its plane and position; padding is 0xEE.
            let plane = |stride: usize, pw: usize, ph: usize, tag: usize| -> Vec<u8> {
                (0..stride * ph)
                    .map(|i| if i % stride < pw { ((i / stride * 7 + i % stride + tag) % 200) as u8 } else { 0xEE })
                    .collect()
            };
            let (y, u, v) = (plane(sy, w, h, 0), plane(sc, cw, ch, 50), plane(sc, cw, ch, 100));
            let planes = Planes { width: w, height: h, y: (&y, sy), u: (&u, sc), v: (&v, sc) };
            let pic = planes.to_packed_i420().unwrap();
            prop_assert_eq!(pic.data.len(), buffer_len(PixelFormat::I420, w as u32, h as u32));
            prop_assert!(!pic.data.contains(&0xEE));
            let last_y = pic.data[w * h - 1];
            prop_assert_eq!(last_y, y[(h - 1) * sy + w - 1]);
            let first_v = pic.data[w * h + cw * ch];
            prop_assert_eq!(first_v, v[0]);
        }
    }

    #[test]
    fn short_planes_are_errors() {
        let y = vec![0u8; 16];
        let c = vec![0u8; 3];
        let planes = Planes {
            width: 4,
            height: 4,
            y: (&y, 4),
            u: (&c, 2),
            v: (&c, 2),
        };
        let err = planes.to_packed_i420().unwrap_err();
        assert!(err.contains("U plane"), "{err}");
    }

    #[test]
    fn garbage_input_is_an_error_or_no_picture() {
        let mut dec = H264Decoder::new().unwrap();
        let garbage: Vec<u8> = (0..500u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut annexb = vec![0, 0, 0, 1, 0x65];
        annexb.extend_from_slice(&garbage);
        // Slice data without SPS/PPS cannot produce a picture.
        assert!(!matches!(dec.decode(&annexb), Ok(Some(_))));
    }
}
