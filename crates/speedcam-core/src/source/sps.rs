//! What the sequence parameter set says about a stream: picture size, profile, and whether the
//! encoder announced frame reordering (B-frames). Parsed with `h264-reader`.

use h264_reader::nal::sps::{PicOrderCntType, Profile, SeqParameterSet};
use h264_reader::rbsp::{BitReader, ByteReader};

/// The SPS facts the file source needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    /// Picture width in pixels, cropping applied.
    pub width: u32,
    /// Picture height in pixels, cropping applied.
    pub height: u32,
    /// Profile and level, e.g. `High L3.0`.
    pub profile: String,
    /// `max_num_reorder_frames` from the VUI bitstream restrictions, when present.
    pub max_num_reorder_frames: Option<u32>,
    /// `pic_order_cnt_type` (0, 1 or 2; 2 means output order equals decoding order).
    pub poc_type: u8,
}

impl SpsInfo {
    /// True when the SPS itself proves that frames are reordered (B-frames or pyramids).
    /// POC types 0 and 1 merely allow reordering, so they do not count on their own.
    pub fn announces_reordering(&self) -> bool {
        self.poc_type != 2 && self.max_num_reorder_frames.is_some_and(|n| n > 0)
    }
}

/// Parses one SPS NAL unit (with its one-byte NAL header, without start code or length).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, String> {
    if nal.first().map(|b| b & 0x1f) != Some(7) {
        return Err("parameter set is not an SPS (NAL type 7)".into());
    }
    let sps = SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(nal)))
        .map_err(|e| format!("invalid SPS: {e:?}"))?;
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| format!("invalid SPS picture size: {e:?}"))?;
    let poc_type = match sps.pic_order_cnt {
        PicOrderCntType::TypeZero { .. } => 0,
        PicOrderCntType::TypeOne { .. } => 1,
        PicOrderCntType::TypeTwo => 2,
    };
    let max_num_reorder_frames = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref())
        .map(|b| b.max_num_reorder_frames);
    let level = sps.level_idc;
    let profile = match sps.profile() {
        Profile::Unknown(idc) => format!("profile_idc {idc}"),
        known => format!("{known:?}"),
    };
    Ok(SpsInfo {
        width,
        height,
        profile: format!("{profile} L{}.{}", level / 10, level % 10),
        max_num_reorder_frames,
        poc_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_sps_and_garbage() {
        assert!(parse_sps(&[0x68, 0xce, 0x3c, 0x80]).is_err());
        assert!(parse_sps(&[]).is_err());
        assert!(parse_sps(&[0x67, 0xff]).is_err());
    }

    #[test]
    fn reordering_needs_vui_evidence() {
        let mut info = SpsInfo {
            width: 16,
            height: 16,
            profile: String::new(),
            max_num_reorder_frames: None,
            poc_type: 0,
        };
        assert!(!info.announces_reordering());
        info.max_num_reorder_frames = Some(2);
        assert!(info.announces_reordering());
        info.poc_type = 2;
        assert!(!info.announces_reordering());
    }
}
