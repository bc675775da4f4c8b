//! Entry points for the cargo-fuzz targets in `fuzz/` (not an API): they drive the crate-private
//! H.264 path (NAL splitting, `avcC` and SPS parsing, the openh264 decoder) and the capture
//! converters with arbitrary bytes. Every error is ignored; a panic, hang or runaway allocation
//! is the finding.

use super::convert::{mjpeg_to_i420, nv12_to_i420, yuyv_to_i420};
#[cfg(feature = "openh264")]
use super::{
    annexb::{append_sample, split_nals},
    container::parse_avcc,
    decode::H264Decoder,
    sps::parse_sps,
};
use crate::frame::{Frame, PixelFormat};
use bytes::Bytes;
use std::sync::Arc;
use time::OffsetDateTime;

/// The compressed path: `data[0]` picks the framing of the rest: bits 0-1 the NAL length size
/// (1-4 bytes), bit 2 an `avcC` record instead of a sample, bit 3 raw Annex B (as an RTSP
/// depacketiser hands it over) instead of length-prefixed NAL units. Every SPS found is parsed,
/// the access unit is decoded, and a decoded picture is wrapped into a [`Frame`].
#[cfg(feature = "openh264")]
pub fn nal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let length_size = usize::from(mode & 0x03) + 1;
    let mut annexb = Vec::new();
    if mode & 0x04 != 0 {
        let Ok(config) = parse_avcc(rest) else {
            return;
        };
        for sps in &config.sps {
            let _ = parse_sps(sps);
        }
        for set in config.sps.iter().chain(&config.pps) {
            super::annexb::push_nal(&mut annexb, set);
        }
    } else if mode & 0x08 != 0 {
        annexb.extend_from_slice(rest);
    } else {
        if let Ok(nals) = split_nals(rest, length_size) {
            for nal in nals
                .iter()
                .filter(|n| n.first().map(|b| b & 0x1f) == Some(7))
            {
                let _ = parse_sps(nal);
            }
        }
        if append_sample(&mut annexb, rest, length_size).is_err() {
            return;
        }
    }
    let Ok(mut decoder) = H264Decoder::new() else {
        return;
    };
    if let Ok(Some(picture)) = decoder.decode(&annexb) {
        let frame = Frame::new(
            Arc::from("fuzz"),
            0,
            0,
            OffsetDateTime::UNIX_EPOCH,
            picture.width,
            picture.height,
            PixelFormat::I420,
            Bytes::from(picture.data),
        );
        if let Ok(frame) = frame {
            let _ = frame.rgb_at(i64::from(frame.width), -1);
        }
    }
}

/// The capture converters (V4L2 frames): `data[0]` picks YUYV, NV12 or MJPEG, `data[1..3]`
/// the width and height (0..=255 px, zero included), `data[3]` the bytes per line (0 = packed);
/// the rest is the captured buffer.
pub fn frame(data: &[u8]) {
    let [kind, w, h, stride, buf @ ..] = data else {
        return;
    };
    let (w, h, stride) = (u32::from(*w), u32::from(*h), usize::from(*stride));
    let out = match kind % 3 {
        0 => yuyv_to_i420(buf, w, h, stride),
        1 => nv12_to_i420(buf, w, h, stride),
        _ => mjpeg_to_i420(buf, w, h),
    };
    if let Ok(i420) = out {
        // A converted buffer must make a frame of the declared size.
        let frame = Frame::new(
            Arc::from("fuzz"),
            0,
            0,
            OffsetDateTime::UNIX_EPOCH,
            w,
            h,
            PixelFormat::I420,
            Bytes::from(i420),
        );
        if let Err(e) = frame {
            panic!("converter output does not fit a {w}x{h} I420 frame: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_take_empty_short_and_garbage_input() {
        for data in [
            &[][..],
            &[0],
            &[4, 1, 0x64],
            &[8, 0, 0, 0, 1, 0x67, 0xff],
            &[1, 2, 2, 0],
        ] {
            #[cfg(feature = "openh264")]
            nal(data);
            frame(data);
        }
    }
}
