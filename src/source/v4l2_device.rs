//! The device layer: enumeration, S_FMT/S_PARM and mmap streaming through the `v4l` crate.
//! Only in builds with the `v4l2` feature (bindgen, so libclang at build time); the pure logic
//! it applies (negotiation, the applied-format check, timestamps, errno classification,
//! conversion) is in `speedcam_core::source::capture` and tested in every build.

use super::*;
use crate::frame::{Frame, PixelFormat};
use crate::source::convert::ConvertError;
use crate::source::SourceCounters;
use bytes::Bytes;
use speedcam_core::source::link::LinkError;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Buffers requested from the driver for mmap streaming.
const BUFFER_COUNT: u32 = 4;

use v4l::buffer::{Flags as BufFlags, Type as BufType};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

/// Lists every (format, size, rates) the device offers. Stepwise sizes contribute their
/// smallest and largest sizes plus the configured one when it fits.
fn enumerate_modes(dev: &Device, opts: &V4l2Options) -> io::Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for desc in dev.enum_formats()? {
        let fourcc = desc.fourcc;
        let sizes: Vec<(u32, u32)> = match dev.enum_framesizes(fourcc) {
            Ok(list) => list
                .into_iter()
                .flat_map(|fs| match fs.size {
                    FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                    FrameSizeEnum::Stepwise(s) => {
                        let fits = |w: u32, h: u32| {
                            (s.min_width..=s.max_width).contains(&w)
                                && (s.min_height..=s.max_height).contains(&h)
                                && (w - s.min_width).is_multiple_of(s.step_width.max(1))
                                && (h - s.min_height).is_multiple_of(s.step_height.max(1))
                        };
                        let mut v = vec![(s.min_width, s.min_height), (s.max_width, s.max_height)];
                        if let (Some(w), Some(h)) = (opts.width, opts.height) {
                            if fits(w, h) {
                                v.push((w, h));
                            }
                        }
                        v
                    }
                })
                .collect(),
            // Drivers without ENUM_FRAMESIZES: the current size is all we know.
            Err(_) => match dev.format() {
                Ok(f) if f.fourcc == fourcc => vec![(f.width, f.height)],
                _ => Vec::new(),
            },
        };
        for (width, height) in sizes {
            let intervals = match dev.enum_frameintervals(fourcc, width, height) {
                Ok(list) => list
                    .into_iter()
                    .flat_map(|fi| match fi.interval {
                        FrameIntervalEnum::Discrete(f) => vec![interval_of(f)],
                        FrameIntervalEnum::Stepwise(s) => {
                            // min interval = max rate.
                            let mut v = vec![interval_of(s.min), interval_of(s.max)];
                            if let Some(fps) = opts.fps {
                                let want = Interval::from_fps(fps);
                                let (fast, slow) =
                                    (interval_of(s.min).fps(), interval_of(s.max).fps());
                                if (slow..=fast).contains(&want.fps()) {
                                    v.push(want);
                                }
                            }
                            v
                        }
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            modes.push(Mode {
                fourcc: fourcc.repr,
                width,
                height,
                intervals,
            });
        }
    }
    Ok(modes)
}

fn interval_of(f: Fraction) -> Interval {
    Interval {
        numerator: f.numerator,
        denominator: f.denominator,
    }
}

/// Drops a `v4l` object whose `Drop` panics on unexpected ioctl/close errors (the crate only
/// tolerates ENODEV): a camera that misbehaves while being closed must not take the daemon down.
fn drop_quietly<T>(value: T) {
    if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::warn!("closing the V4L2 device failed (ignored)");
    }
}

/// Frames from a V4L2 capture device, converted to I420, stamped with driver timestamps.
///
/// Open it with [`V4l2Source::open`]; see the module docs for negotiation, timestamps and
/// unplug handling.
pub struct V4l2Source {
    opts: V4l2Options,
    camera: Arc<str>,
    /// `None` after a stall or interruption: the next call starts a fresh stream.
    stream: Option<MmapStream<'static>>,
    device: Option<Device>,
    chosen: Chosen,
    bytes_per_line: usize,
    card: String,
    timeline: Timeline,
    seq: u64,
    counters: SourceCounters,
    warned_clock: bool,
}

impl V4l2Source {
    /// Opens `opts.device` for `camera`, negotiates format/size/rate and maps the buffers.
    /// Streaming starts with the first [`Source::next_frame`].
    pub fn open(opts: V4l2Options, camera: Arc<str>) -> Result<Self, SourceError> {
        let path = opts.device.clone();
        let uri = path.display().to_string();
        let connect = |cause: LinkError| SourceError::Connect {
            uri: uri.clone(),
            cause,
        };
        let device = Device::with_path(&path).map_err(|e| open_error(&path, e))?;
        let caps = device.query_caps().map_err(|cause| {
            connect(LinkError::Io {
                step: "VIDIOC_QUERYCAP (is it a V4L2 device?)",
                cause,
            })
        })?;
        let modes = enumerate_modes(&device, &opts).map_err(|cause| {
            connect(LinkError::Io {
                step: "listing its formats (VIDIOC_ENUM_FMT)",
                cause,
            })
        })?;
        if modes.is_empty() {
            return Err(connect(LinkError::NoCaptureFormats {
                card: caps.card,
                driver: caps.driver,
            }));
        }
        let chosen = negotiate(&opts, &modes)?;
        let set = device
            .set_format(&Format::new(
                chosen.width,
                chosen.height,
                FourCC::new(&chosen.format.fourcc()),
            ))
            .map_err(|e| open_error_or(&path, e, "VIDIOC_S_FMT"))?;
        let set_interval = match chosen.interval {
            Some(i) => device
                .set_params(&v4l::video::capture::Parameters::new(Fraction::new(
                    i.numerator,
                    i.denominator,
                )))
                .ok()
                .map(|p| interval_of(p.interval)),
            None => None,
        };
        if let Some(warning) = check_applied(
            &path,
            &chosen,
            set.fourcc.repr,
            set.width,
            set.height,
            set_interval,
        )? {
            tracing::warn!(device = %uri, "{warning}");
        }
        let stream = new_stream(&device, opts.stall_timeout)
            .map_err(|e| open_error_or(&path, e, "mapping the buffers (mmap)"))?;
        tracing::info!(
            device = %uri,
            card = %caps.card,
            driver = %caps.driver,
            mode = %chosen,
            bytes_per_line = set.stride,
            "opened V4L2 source"
        );
        Ok(Self {
            opts,
            camera,
            stream: Some(stream),
            device: Some(device),
            chosen,
            bytes_per_line: set.stride as usize,
            card: caps.card,
            timeline: Timeline::default(),
            seq: 0,
            counters: SourceCounters::default(),
            warned_clock: false,
        })
    }

    /// The mode negotiated with the device.
    pub fn mode(&self) -> Chosen {
        self.chosen
    }

    /// Stops and unmaps the stream; the next `next_frame` starts a new one.
    fn stop_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            drop_quietly(stream);
        }
    }

    fn disconnected(&self, cause: LinkError) -> SourceError {
        SourceError::Disconnected {
            uri: self.opts.device.display().to_string(),
            cause,
        }
    }

    /// Logs a skipped buffer: the first and then every 100th, to keep a broken camera from
    /// flooding the log at 30 fps.
    fn skip(&mut self, why: &str) {
        self.counters.decode_errors += 1;
        let n = self.counters.decode_errors;
        if n == 1 || n.is_multiple_of(100) {
            tracing::warn!(skipped = n, err = %why, "V4L2 buffer skipped");
        }
    }
}

/// Maps the buffers of a new mmap stream with a poll timeout of `timeout`.
fn new_stream(device: &Device, timeout: Duration) -> io::Result<MmapStream<'static>> {
    let mut stream = MmapStream::with_buffers(device, BufType::VideoCapture, BUFFER_COUNT)?;
    stream.set_timeout(timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600)));
    Ok(stream)
}

/// A setup ioctl failure: busy/permission/missing as for open, else naming the step.
fn open_error_or(device: &Path, cause: io::Error, step: &'static str) -> SourceError {
    match cause.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENODEV) => {
            open_error(device, cause)
        }
        _ => SourceError::Connect {
            uri: device.display().to_string(),
            cause: LinkError::Io { step, cause },
        },
    }
}

/// What one dequeue produced, copied out of the mmap buffer.
struct Dequeued {
    flags: BufFlags,
    driver_ns: Option<i64>,
    converted: Result<Vec<u8>, ConvertError>,
    convert_ns: u64,
    empty: bool,
}

impl V4l2Source {
    /// Dequeues one buffer from the running stream, waiting at most `left`, and converts it.
    /// None when the dequeue timed out or must be retried (the stream is dropped: the caller
    /// reports the stall or starts a new one); an error when the device is gone.
    fn dequeue(&mut self, left: Duration) -> Result<Option<Dequeued>, SourceError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        stream.set_timeout(left.max(Duration::from_millis(1)));
        let (chosen, bpl) = (self.chosen, self.bytes_per_line);
        let got = stream.next().map(|(buf, meta)| {
            let used = (meta.bytesused as usize).min(buf.len());
            let started = Instant::now();
            let monotonic = meta.flags & BufFlags::TIMESTAMP_MASK == BufFlags::TIMESTAMP_MONOTONIC;
            let driver_ns = if monotonic {
                timestamp_ns(meta.timestamp)
            } else {
                None
            };
            let flags = meta.flags;
            let skip = flags.contains(BufFlags::ERROR) || used == 0;
            let converted = if skip {
                Ok(Vec::new())
            } else {
                convert_buffer(&chosen, bpl, &buf[..used])
            };
            Dequeued {
                flags,
                driver_ns,
                converted,
                convert_ns: started.elapsed().as_nanos() as u64,
                empty: used == 0,
            }
        });
        match got {
            Ok(d) => Ok(Some(d)),
            Err(e) => match classify_stream_error(&e) {
                // The crate's stream cannot resume after a failed dequeue (its buffer is still
                // queued): drop it.
                StreamFault::Timeout | StreamFault::Retry => {
                    self.stop_stream();
                    Ok(None)
                }
                StreamFault::Gone => {
                    self.stop_stream();
                    let node_exists = self.opts.device.exists();
                    Err(self.disconnected(LinkError::Capture {
                        cause: e,
                        node_exists,
                    }))
                }
            },
        }
    }

    /// The next frame from converted I420 `data`, stamped with the driver's capture time (else
    /// the dequeue time); None when its time does not move forward (the frame is dropped).
    fn stamp(
        &mut self,
        driver_ns: Option<i64>,
        data: Vec<u8>,
    ) -> Result<Option<Frame>, SourceError> {
        let (capture_ns, wall) =
            capture_times(driver_ns, monotonic_now_ns(), OffsetDateTime::now_utc());
        let Some(pts_ns) = self.timeline.pts_ns(capture_ns) else {
            self.counters.pts_backwards_dropped += 1;
            tracing::warn!(capture_ns, "timestamp does not move forward, frame dropped");
            return Ok(None);
        };
        let frame = Frame::new(
            self.camera.clone(),
            self.seq,
            pts_ns,
            wall,
            self.chosen.width,
            self.chosen.height,
            PixelFormat::I420,
            Bytes::from(data),
        )
        .map_err(|e| {
            self.disconnected(LinkError::Internal {
                what: "frame size",
                cause: Box::new(e),
            })
        })?;
        self.seq += 1;
        self.counters.frames_decoded += 1;
        Ok(Some(frame))
    }
}

impl Source for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let call_start = Instant::now();
        loop {
            let waited = call_start.elapsed();
            if waited >= self.opts.stall_timeout {
                self.stop_stream();
                return Err(SourceError::Stalled {
                    uri: self.opts.device.display().to_string(),
                    after_s: waited.as_secs_f64(),
                });
            }
            if self.stream.is_none() {
                let Some(device) = self.device.as_ref() else {
                    return Err(self.disconnected(LinkError::Ended));
                };
                match new_stream(device, self.opts.stall_timeout - waited) {
                    Ok(s) => self.stream = Some(s),
                    Err(cause) => {
                        return Err(self.disconnected(LinkError::Io {
                            step: "restarting capture",
                            cause,
                        }))
                    }
                }
            }
            let Some(d) = self.dequeue(self.opts.stall_timeout - waited)? else {
                continue;
            };
            self.counters.samples_read += 1;
            self.counters.decode_time_ns += d.convert_ns;
            if d.flags.contains(BufFlags::ERROR) {
                self.skip("the driver flagged the buffer as corrupt (V4L2_BUF_FLAG_ERROR)");
                continue;
            }
            if d.empty {
                self.skip("empty buffer (0 bytes used)");
                continue;
            }
            let data = match d.converted {
                Ok(data) => data,
                Err(e) => {
                    self.skip(&e.to_string());
                    continue;
                }
            };
            if d.driver_ns.is_none() && !self.warned_clock {
                self.warned_clock = true;
                tracing::warn!(
                    flags = %d.flags,
                    "driver gives no monotonic buffer timestamps; using the dequeue time \
                     (jitter of a few ms on speeds)"
                );
            }
            if let Some(frame) = self.stamp(d.driver_ns, data)? {
                return Ok(Some(frame));
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "camera {}: V4L2 {} ({}) {}",
            self.camera,
            self.opts.device.display(),
            self.card,
            self.chosen
        )
    }

    fn counters(&self) -> SourceCounters {
        self.counters
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // Stream first (STREAMOFF, unmap), then the device (close).
        self.stop_stream();
        if let Some(device) = self.device.take() {
            drop_quietly(device);
        }
    }
}

/// A `v4l` buffer timestamp in nanoseconds (see [`timeval_ns`]).
#[allow(clippy::unnecessary_cast)] // time_t is 32-bit on some targets
fn timestamp_ns(ts: v4l::Timestamp) -> Option<i64> {
    timeval_ns(ts.sec as i64, ts.usec as i64)
}
