//! H.264 (openh264, no B-frames) in MP4 (the `mp4` crate's writer) with exact per-sample times.
//!
//! The track timescale is 90 kHz and every sample's duration is the difference of consecutive
//! frame times in ticks, so a reader's presentation times are exactly the frame times we rendered
//! (jittered timestamps included). SPS/PPS go into the `avcC` box; samples are length-prefixed
//! NAL units; IDR frames are flagged as sync samples.

use super::SynthError;
use mp4::{AvcConfig, MediaConfig, Mp4Config, Mp4Sample, Mp4Writer, TrackConfig, TrackType};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Track timescale: ticks per second.
pub const TIMESCALE_HZ: u32 = 90_000;

/// Writes RGB frames as an H.264 MP4 file.
pub struct Mp4Out {
    encoder: Encoder,
    width_px: u32,
    height_px: u32,
    writer: Option<Mp4Writer<BufWriter<File>>>,
    file: Option<File>,
    sps: Vec<u8>,
    pps: Vec<u8>,
    samples: u32,
}

/// Encoder settings: bit rate for the frame size and the nominal rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeSettings {
    /// Target bit rate (bit/s).
    pub bitrate_bps: u32,
    /// Nominal frame rate (Hz), for rate control only: sample times come from the frame times.
    pub fps: f64,
    /// Frames between IDR frames.
    pub idr_period_frames: u32,
}

impl EncodeSettings {
    /// About 4 Mbit/s at 1280x720 and 30 fps, scaled by pixel rate; an IDR every 2 s.
    pub fn for_size(width_px: u32, height_px: u32, fps: f64) -> Self {
        let px_rate = f64::from(width_px) * f64::from(height_px) * fps;
        let bps = (px_rate / (1280.0 * 720.0 * 30.0) * 4.0e6).clamp(300e3, 20e6);
        Self {
            bitrate_bps: bps as u32,
            fps,
            idr_period_frames: (2.0 * fps).round().max(1.0) as u32,
        }
    }
}

/// Splits an Annex B byte stream into NAL units (without start codes).
fn annexb_nals(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A four-byte start code leaves one zero byte before the next three-byte marker.
        while end > s && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(&stream[s..end]);
        }
    }
    nals
}

fn enc_err(e: openh264::Error) -> SynthError {
    SynthError::Encode(e.to_string())
}

fn mp4_err(e: mp4::Error) -> SynthError {
    SynthError::Encode(format!("MP4 writer: {e}"))
}

impl Mp4Out {
    /// Creates `path` and an encoder for `width_px x height_px` frames (both even).
    pub fn create(
        path: &Path,
        width_px: u32,
        height_px: u32,
        settings: EncodeSettings,
    ) -> Result<Self, SynthError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.idr_period_frames,
            ));
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(enc_err)?;
        let file = File::create(path).map_err(|source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            encoder,
            width_px,
            height_px,
            writer: None,
            file: Some(file),
            sps: Vec::new(),
            pps: Vec::new(),
            samples: 0,
        })
    }

    /// Encodes one packed-RGB frame shown for `duration_ticks` (90 kHz) from its start time.
    pub fn push_rgb(&mut self, rgb: &[u8], duration_ticks: u32) -> Result<(), SynthError> {
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(
            rgb,
            (self.width_px as usize, self.height_px as usize),
        ));
        let bitstream = self.encoder.encode(&yuv).map_err(enc_err)?;
        let is_sync = bitstream.frame_type() == FrameType::IDR;
        let stream = bitstream.to_vec();
        let mut payload = Vec::with_capacity(stream.len() + 16);
        for nal in annexb_nals(&stream) {
            match nal[0] & 0x1f {
                7 => {
                    if self.sps.is_empty() {
                        self.sps = nal.to_vec();
                    } else if self.sps != nal {
                        return Err(SynthError::Encode(
                            "encoder changed its SPS mid-stream; keep one resolution per file"
                                .into(),
                        ));
                    }
                }
                8 => {
                    if self.pps.is_empty() {
                        self.pps = nal.to_vec();
                    }
                }
                _ => {
                    payload.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    payload.extend_from_slice(nal);
                }
            }
        }
        if payload.is_empty() {
            return Err(SynthError::Encode(format!(
                "encoder produced no picture for frame {}; frame skipping must stay off",
                self.samples
            )));
        }
        let writer = self.writer()?;
        let sample = Mp4Sample {
            start_time: 0,
            duration: duration_ticks,
            rendering_offset: 0,
            is_sync,
            bytes: payload.into(),
        };
        // The writer derives start times from the running sum of durations.
        writer.write_sample(1, &sample).map_err(mp4_err)?;
        self.samples += 1;
        Ok(())
    }

    /// The MP4 writer, created on the first frame once SPS/PPS are known.
    fn writer(&mut self) -> Result<&mut Mp4Writer<BufWriter<File>>, SynthError> {
        if self.writer.is_none() {
            if self.sps.len() < 4 || self.pps.is_empty() {
                return Err(SynthError::Encode(
                    "first encoded frame carried no SPS/PPS".into(),
                ));
            }
            let file = self
                .file
                .take()
                .ok_or_else(|| SynthError::Encode("MP4 file already closed".into()))?;
            let mut w = Mp4Writer::write_start(
                BufWriter::new(file),
                &Mp4Config {
                    major_brand: "isom".parse().map_err(mp4_err)?,
                    minor_version: 512,
                    compatible_brands: ["isom", "iso2", "avc1", "mp41"]
                        .iter()
                        .map(|b| b.parse())
                        .collect::<Result<_, _>>()
                        .map_err(mp4_err)?,
                    timescale: 1000,
                },
            )
            .map_err(mp4_err)?;
            w.add_track(&TrackConfig {
                track_type: TrackType::Video,
                timescale: TIMESCALE_HZ,
                language: "und".into(),
                media_conf: MediaConfig::AvcConfig(AvcConfig {
                    width: self.width_px as u16,
                    height: self.height_px as u16,
                    seq_param_set: self.sps.clone(),
                    pic_param_set: self.pps.clone(),
                }),
            })
            .map_err(mp4_err)?;
            self.writer = Some(w);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| SynthError::Encode("MP4 writer missing".into()))
    }

    /// Writes the index (`moov`) and flushes the file. Returns the number of samples written.
    pub fn finish(mut self) -> Result<u32, SynthError> {
        let mut w = self
            .writer
            .take()
            .ok_or_else(|| SynthError::Encode("no frame was encoded; give at least one".into()))?;
        w.write_end().map_err(mp4_err)?;
        let mut inner = w.into_writer();
        std::io::Write::flush(&mut inner)
            .map_err(|e| SynthError::Encode(format!("flushing MP4: {e}")))?;
        Ok(self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_split_handles_three_and_four_byte_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = annexb_nals(&s);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }

    #[test]
    fn settings_scale_with_pixel_rate() {
        let hd = EncodeSettings::for_size(1280, 720, 30.0);
        let small = EncodeSettings::for_size(320, 180, 30.0);
        assert!(hd.bitrate_bps > small.bitrate_bps);
        assert_eq!(hd.idr_period_frames, 60);
    }
}
