//! JPEG thumbnails of vehicles: the crop an operator looks at to check a speeding event.

use crate::detect::BBox;
use crate::frame::Frame;

/// Longest side of a stored thumbnail, px: enough to recognise the vehicle, small enough for MQTT.
pub const MAX_SIDE_PX: u32 = 320;

/// Errors encoding a thumbnail.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode thumbnail as JPEG: {0}")]
pub struct ThumbnailError(String);

/// Crops `bbox` (grown by 10% on each side, clipped to the frame) out of `frame` as RGB,
/// downscaled so its longest side is at most [`MAX_SIDE_PX`].
pub fn crop(frame: &Frame, bbox: &BBox) -> image::RgbImage {
    let mx = bbox.width() * 0.1;
    let my = bbox.height() * 0.1;
    let x1 = (bbox.x1 - mx).max(0.0) as u32;
    let y1 = (bbox.y1 - my).max(0.0) as u32;
    let x2 = (bbox.x2 + mx).max(0.0) as u32;
    let y2 = (bbox.y2 + my).max(0.0) as u32;
    let img = frame.crop_rgb(x1, y1, x2.saturating_sub(x1), y2.saturating_sub(y1));
    let longest = img.width().max(img.height());
    if longest <= MAX_SIDE_PX {
        return img;
    }
    let s = MAX_SIDE_PX as f32 / longest as f32;
    let w = ((img.width() as f32 * s).round() as u32).max(1);
    let h = ((img.height() as f32 * s).round() as u32).max(1);
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
}

/// Encodes an RGB image as a baseline JPEG at `quality` (1-100).
pub fn encode_jpeg(img: &image::RgbImage, quality: u8) -> Result<Vec<u8>, ThumbnailError> {
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    let (w, h) = (img.width(), img.height());
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(ThumbnailError(format!(
            "{w}x{h} is larger than JPEG allows"
        )));
    }
    enc.encode(
        img.as_raw(),
        w as u16,
        h as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .map_err(|e| ThumbnailError(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_grown_clipped_and_decodable() {
        let img = image::RgbImage::from_fn(640, 360, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let f = Frame::from_rgb_image("c".into(), 0, 0, &img);
        let b = BBox {
            x1: 600.0,
            y1: 100.0,
            x2: 640.0,
            y2: 140.0,
        };
        let c = crop(&f, &b);
        assert_eq!((c.width(), c.height()), (44, 48));
        let jpeg = encode_jpeg(&c, 85).unwrap();
        let back = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (44, 48));
    }

    #[test]
    fn large_crops_are_downscaled() {
        let img = image::RgbImage::new(1280, 720);
        let f = Frame::from_rgb_image("c".into(), 0, 0, &img);
        let b = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 1280.0,
            y2: 600.0,
        };
        let c = crop(&f, &b);
        assert_eq!(c.width(), MAX_SIDE_PX);
    }
}
