//! [`V4l2Source`]: frames from a Linux V4L2 capture device (USB webcam, CSI camera, HDMI grabber).
//!
//! # Formats
//! Three capture formats are used ([`CaptureFormat`]): NV12, YUYV and MJPEG. Each buffer is
//! converted to the pipeline's I420 by [`super::convert`]. Devices that offer only other formats
//! (H.264, raw Bayer, RGB) are refused with the list of what they offer.
//!
//! # Negotiation
//! [`negotiate`] is a pure function over what the device lists ([`Mode`]s, one per format and
//! size, with their frame rates); the ioctl code only enumerates and applies. Rules:
//! - Configured `format`, `width`, `height` are hard constraints.
//! - A configured `fps` is a ceiling: the highest offered rate not above it is chosen (rates are
//!   compared rounded to whole frames per second, so 29.97 counts as 30). When format, width,
//!   height and fps are *all* configured the rate must match, i.e. the mode is an exact match.
//!   Without a configured rate the target is `DEFAULT_FPS`: more frames than that cost CPU
//!   without helping the speed fit much; a device offering only faster rates gets its slowest.
//! - Rate ranks before size when the size is not configured (a speed camera needs samples more
//!   than pixels): among the rates reached, the largest picture up to 1920x1080 wins (above that
//!   the detector only downscales), else the smallest one above.
//! - Among formats reaching that rate at that size: NV12, then YUYV, then MJPEG. The raw formats
//!   cost a copy (under a millisecond at 720p) where MJPEG costs a JPEG decode (several ms) and
//!   adds compression artefacts; a webcam whose raw modes are too slow at that size (USB 2
//!   bandwidth) still gets MJPEG, because rate ranks first.
//!
//! Nothing matching gives [`SourceError::Format`] listing what the device offers in a compact
//! form (`MJPG 1280x720@30,15 640x480@30; YUYV 640x480@30`). Drivers adjust S_FMT and S_PARM
//! silently: the format and size they actually set must equal the chosen ones (else
//! [`SourceError::Format`]); a rate they set differently is logged as a warning, because
//! timestamps, not the nominal rate, carry the timing.
//!
//! # Timestamps
//! `pts_ns` comes from the driver's buffer timestamp (`v4l2_buffer.timestamp`), which
//! `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC` marks as CLOCK_MONOTONIC (every modern driver, UVC
//! included, which stamps the start of exposure or the first USB packet). It is taken relative
//! to the first frame, so a stream starts at 0. Frames whose time does not move forward are
//! dropped and counted in `pts_backwards_dropped`. Drivers that do not flag monotonic
//! timestamps (or stamp 0) get CLOCK_MONOTONIC read at dequeue instead, with a warning: later
//! and jittered by scheduling, but on the same clock. `wall` is the wall clock read at dequeue
//! minus the frame's age on CLOCK_MONOTONIC (`now_mono - buffer_time`), i.e. the UTC time the
//! driver stamped the buffer; an age that is negative or over `MAX_FRAME_AGE_NS` (a driver
//! clock that is not CLOCK_MONOTONIC after all) is ignored and the dequeue time used.
//!
//! # Unplug, stalls and errors
//! A device unplugged while streaming fails poll/DQBUF with ENODEV (or EIO, ENXIO): the source
//! returns [`SourceError::Disconnected`], the supervisor drops it and opens a new one with
//! backoff; opening retries fail with [`SourceError::Connect`] until the node is back, then
//! capture resumes with a fresh stream (pts restart at 0). `next_frame` never waits more than
//! `stall_timeout`: with no frame in that time it returns [`SourceError::Stalled`] (and restarts
//! the stream if called again). Buffers flagged `V4L2_BUF_FLAG_ERROR`, empty, truncated or
//! undecodable are skipped and counted in `decode_errors`.
//!
//! # Tested without a camera
//! The unit tests cover negotiation, the applied-format check, timestamp mapping, errno
//! classification and conversion. `tests/vivid/run.sh` boots Debian's kernel under qemu with the
//! `vivid` test driver and runs `examples/v4l2_capture.rs` through the real ioctl path: default
//! negotiation (NV12 640x360@30), explicit YUYV and NV12 modes, a refused MJPEG request, a
//! missing node, a simulated unplug (vivid's `Disconnect` control: `Disconnected` with ENODEV
//! within milliseconds) and a capture after reloading the module. About 16 s of boot and
//! capture once built.
//!
//! # What still needs a real device
//! MJPEG capture (vivid has no compressed formats: the MJPEG path is covered by unit tests on
//! encoded JPEGs only), UVC quirks beyond missing Huffman tables, the errno a real USB unplug
//! gives on a given driver, a real stall (a camera that stops delivering), drivers that only
//! offer stepwise sizes, and SoC drivers whose single-planar NV12 pads the luma plane's height
//! (the UV plane is taken at `bytes_per_line * height`, as the V4L2 spec defines it). `v4l2-ctl --list-formats-ext` shows what a camera offers.

use super::convert::{mjpeg_to_i420, nv12_to_i420, yuyv_to_i420, ConvertError};
use super::link::LinkError;
use super::SourceError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

/// Rate aimed at when none is configured, frames per second.
pub(crate) const DEFAULT_FPS: u32 = 30;
/// Largest picture preferred when the size is not configured (1920x1080), pixels.
pub(crate) const PREFERRED_MAX_AREA_PX: u64 = 1920 * 1080;
/// Why a V4L2 source cannot open in a build without the `v4l2` feature, and the fix.
pub const NOT_BUILT: &str = "this speedcamd was built without V4L2 support: rebuild with \
`cargo build --release --features v4l2` (needs libclang: `apt-get install libclang-dev`), or \
install the .deb, which has it";

/// Largest believable age of a frame at dequeue; beyond it the driver clock is not trusted, ns.
pub(crate) const MAX_FRAME_AGE_NS: i64 = 5_000_000_000;

/// The capture formats this source can convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Motion JPEG (FourCC `MJPG`): one JPEG per buffer, usually 4:2:2.
    Mjpeg,
    /// Packed YUV 4:2:2 (FourCC `YUYV`, a.k.a. YUY2).
    Yuyv,
    /// YUV 4:2:0, Y plane then interleaved UV (FourCC `NV12`).
    Nv12,
}

impl CaptureFormat {
    /// All formats, in preference order (cheapest conversion first).
    #[cfg(test)]
    const PREFERENCE: [CaptureFormat; 3] = [
        CaptureFormat::Nv12,
        CaptureFormat::Yuyv,
        CaptureFormat::Mjpeg,
    ];

    /// The V4L2 FourCC code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            CaptureFormat::Mjpeg => *b"MJPG",
            CaptureFormat::Yuyv => *b"YUYV",
            CaptureFormat::Nv12 => *b"NV12",
        }
    }

    /// The format for a V4L2 FourCC code, if supported (`JPEG` is taken as MJPEG).
    pub(crate) fn from_fourcc(code: [u8; 4]) -> Option<CaptureFormat> {
        match &code {
            b"MJPG" | b"JPEG" => Some(CaptureFormat::Mjpeg),
            b"YUYV" => Some(CaptureFormat::Yuyv),
            b"NV12" => Some(CaptureFormat::Nv12),
            _ => None,
        }
    }

    /// Rank in the preference order (cheapest conversion first), lower is preferred.
    fn rank(self) -> usize {
        match self {
            CaptureFormat::Nv12 => 0,
            CaptureFormat::Yuyv => 1,
            CaptureFormat::Mjpeg => 2,
        }
    }
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fourcc_str(self.fourcc()))
    }
}

impl FromStr for CaptureFormat {
    type Err = String;

    /// Parses config spellings: `mjpeg`/`mjpg`, `yuyv`/`yuy2`, `nv12` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mjpeg" | "mjpg" => Ok(CaptureFormat::Mjpeg),
            "yuyv" | "yuy2" => Ok(CaptureFormat::Yuyv),
            "nv12" => Ok(CaptureFormat::Nv12),
            _ => Err(format!(
                "unknown capture format `{s}`; use one of mjpeg, yuyv, nv12"
            )),
        }
    }
}

/// A FourCC as text, non-printable bytes as `?`.
fn fourcc_str(code: [u8; 4]) -> String {
    code.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect::<String>()
        .trim_end_matches('?')
        .to_string()
}

/// What to capture from which device; unset fields are chosen by [`negotiate`].
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Options {
    /// Device node, e.g. `/dev/video0` (or a stable `/dev/v4l/by-id/...` link).
    pub device: PathBuf,
    /// Picture width in pixels.
    pub width: Option<u32>,
    /// Picture height in pixels.
    pub height: Option<u32>,
    /// Frame rate in frames per second (a ceiling, see the module docs).
    pub fps: Option<u32>,
    /// Capture format.
    pub format: Option<CaptureFormat>,
    /// Longest wait for a frame before `next_frame` returns [`SourceError::Stalled`].
    pub stall_timeout: Duration,
}

impl V4l2Options {
    /// Options for `device` with everything negotiated and a 5 s stall timeout.
    pub fn new(device: impl Into<PathBuf>) -> Self {
        Self {
            device: device.into(),
            width: None,
            height: None,
            fps: None,
            format: None,
            stall_timeout: Duration::from_secs(5),
        }
    }

    /// What the options ask for, e.g. `YUYV 1280x720@30` or `any format any size@any fps`.
    pub fn wanted(&self) -> String {
        let format = self
            .format
            .map_or_else(|| "any format".to_string(), |f| f.to_string());
        let dim = |d: Option<u32>| d.map_or_else(|| "any".to_string(), |d| d.to_string());
        let size = match (self.width, self.height) {
            (None, None) => "any size".to_string(),
            (w, h) => format!("{}x{}", dim(w), dim(h)),
        };
        let fps = self
            .fps
            .map_or_else(|| "any fps".to_string(), |f| f.to_string());
        format!("{format} {size}@{fps}")
    }
}

/// A frame interval (seconds per frame as a fraction), as V4L2 lists and sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Numerator, seconds.
    pub numerator: u32,
    /// Denominator.
    pub denominator: u32,
}

impl Interval {
    /// The interval of a whole `fps` rate.
    pub fn from_fps(fps: u32) -> Self {
        Self {
            numerator: 1,
            denominator: fps,
        }
    }

    /// Frames per second; 0 for a degenerate interval.
    pub fn fps(self) -> f64 {
        if self.numerator == 0 {
            0.0
        } else {
            f64::from(self.denominator) / f64::from(self.numerator)
        }
    }

    /// Frames per second rounded to a whole number (29.97 -> 30), for comparisons.
    pub(crate) fn fps_rounded(self) -> u32 {
        self.fps().round() as u32
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fps = self.fps();
        if (fps - fps.round()).abs() < 0.005 {
            write!(f, "{}", fps.round())
        } else {
            write!(f, "{fps:.2}")
        }
    }
}

/// One capture mode a device lists: a pixel format at one size, with the rates offered there.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    /// V4L2 FourCC of the pixel format (supported or not).
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame intervals offered at this size (empty when the driver does not say).
    pub intervals: Vec<Interval>,
}

/// The mode [`negotiate`] picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// Capture format.
    pub format: CaptureFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame interval to request with S_PARM; `None` when the device lists no rate.
    pub interval: Option<Interval>,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.format, self.width, self.height)?;
        match self.interval {
            Some(i) => write!(f, "@{i}"),
            None => f.write_str("@?"),
        }
    }
}

/// What the device offers, compactly: `MJPG 1280x720@30,15 640x480@30; YUYV 640x480@30`.
/// Formats this source cannot convert are only named, at the end (`other formats, not
/// supported: H264, UYVY`): test drivers and ISPs list dozens.
pub(crate) fn describe_offered(modes: &[Mode]) -> String {
    if modes.is_empty() {
        return "no video capture formats".into();
    }
    let mut groups: Vec<([u8; 4], Vec<String>)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for m in modes {
        if CaptureFormat::from_fourcc(m.fourcc).is_none() {
            let name = fourcc_str(m.fourcc);
            if !others.contains(&name) {
                others.push(name);
            }
            continue;
        }
        let rates: Vec<String> = m.intervals.iter().map(|i| i.to_string()).collect();
        let rates = if rates.is_empty() {
            "?".to_string()
        } else {
            rates.join(",")
        };
        let entry = format!("{}x{}@{rates}", m.width, m.height);
        match groups.iter_mut().find(|(code, _)| *code == m.fourcc) {
            Some((_, sizes)) => sizes.push(entry),
            None => groups.push((m.fourcc, vec![entry])),
        }
    }
    let mut parts: Vec<String> = groups
        .into_iter()
        .map(|(code, sizes)| format!("{} {}", fourcc_str(code), sizes.join(" ")))
        .collect();
    if parts.is_empty() {
        parts.push("no format this source can convert (MJPG, YUYV, NV12)".into());
    }
    if !others.is_empty() {
        parts.push(format!(
            "other formats, not supported: {}",
            others.join(", ")
        ));
    }
    parts.join("; ")
}

/// Picks the mode to capture from what the device offers, per the rules in the module docs.
/// Errors with [`SourceError::Format`] naming what was wanted and what is offered.
pub fn negotiate(opts: &V4l2Options, offered: &[Mode]) -> Result<Chosen, SourceError> {
    let no_match = || SourceError::Format {
        uri: opts.device.display().to_string(),
        wanted: opts.wanted(),
        offered: describe_offered(offered),
    };
    let size_given = opts.width.is_some() || opts.height.is_some();
    let exact = opts.format.is_some() && opts.width.is_some() && opts.height.is_some();
    let target = opts.fps.unwrap_or(DEFAULT_FPS);
    // (format, mode, interval) candidates meeting the hard constraints.
    let mut candidates: Vec<(CaptureFormat, &Mode, Option<Interval>)> = Vec::new();
    for m in offered {
        let Some(format) = CaptureFormat::from_fourcc(m.fourcc) else {
            continue;
        };
        if opts.format.is_some_and(|f| f != format)
            || opts.width.is_some_and(|w| w != m.width)
            || opts.height.is_some_and(|h| h != m.height)
            || m.width == 0
            || m.height == 0
        {
            continue;
        }
        let usable = m.intervals.iter().filter(|i| i.numerator > 0);
        match opts.fps {
            Some(fps) => {
                for &i in usable {
                    let r = i.fps_rounded();
                    if (exact && r == fps) || (!exact && r <= fps && r > 0) {
                        candidates.push((format, m, Some(i)));
                    }
                }
            }
            None if m.intervals.is_empty() => candidates.push((format, m, None)),
            None => candidates.extend(usable.map(|&i| (format, m, Some(i)))),
        }
    }
    // Lexicographic key, smaller is better.
    let key = |&(format, m, interval): &(CaptureFormat, &Mode, Option<Interval>)| {
        let rate = interval.map_or(0, Interval::fps_rounded);
        let over = rate > target;
        // Highest rate up to the target; above it, the slowest.
        let rate_key = if over {
            i64::from(rate)
        } else {
            -i64::from(rate)
        };
        let area = u64::from(m.width) * u64::from(m.height);
        let size_key = if size_given {
            (false, 0)
        } else if area <= PREFERRED_MAX_AREA_PX {
            (false, -(area as i64))
        } else {
            (true, area as i64)
        };
        (over, rate_key, size_key, format.rank())
    };
    candidates
        .iter()
        .min_by_key(|c| key(c))
        .map(|&(format, m, interval)| Chosen {
            format,
            width: m.width,
            height: m.height,
            interval,
        })
        .ok_or_else(no_match)
}

/// Compares what the driver set after S_FMT / S_PARM with what was chosen.
///
/// A different format or size is an error (the conversion and the calibration depend on it);
/// a different rate is returned as a warning to log.
pub fn check_applied(
    device: &Path,
    chosen: &Chosen,
    set_fourcc: [u8; 4],
    set_width: u32,
    set_height: u32,
    set_interval: Option<Interval>,
) -> Result<Option<String>, SourceError> {
    if CaptureFormat::from_fourcc(set_fourcc) != Some(chosen.format)
        || (set_width, set_height) != (chosen.width, chosen.height)
    {
        return Err(SourceError::Format {
            uri: device.display().to_string(),
            wanted: chosen.to_string(),
            offered: format!(
                "{} {set_width}x{set_height} (what the driver set instead; it listed the \
                 requested mode but would not apply it)",
                fourcc_str(set_fourcc)
            ),
        });
    }
    let Some(want) = chosen.interval else {
        return Ok(None);
    };
    match set_interval {
        Some(got) if got.fps_rounded() == want.fps_rounded() => Ok(None),
        Some(got) => Ok(Some(format!(
            "driver set {got} fps instead of the requested {want}; timing uses frame timestamps, \
             so speeds stay right, but check exposure settings (auto-exposure can lower the rate \
             in low light)"
        ))),
        None => Ok(Some(format!(
            "driver did not report its frame rate after asking for {want} fps"
        ))),
    }
}

/// A failed open of `device`: [`LinkError::Device`] names the remedy for missing, not
/// permitted and busy devices.
pub fn open_error(device: &Path, cause: io::Error) -> SourceError {
    SourceError::Connect {
        uri: device.display().to_string(),
        cause: LinkError::Device { cause },
    }
}

/// What a failed poll / QBUF / DQBUF means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// No buffer within the timeout.
    Timeout,
    /// Interrupted or spuriously not ready: restart the stream and try again.
    Retry,
    /// The device is gone or broken (unplugged, USB error): reopen it.
    Gone,
}

/// Classifies a streaming error by errno (pure, for tests): ENODEV, EIO, ENXIO, ESHUTDOWN and
/// anything unknown mean the device must be reopened.
pub fn classify_stream_error(err: &io::Error) -> StreamFault {
    if err.kind() == io::ErrorKind::TimedOut {
        return StreamFault::Timeout;
    }
    match err.raw_os_error() {
        Some(libc::EINTR) | Some(libc::EAGAIN) => StreamFault::Retry,
        _ if err.kind() == io::ErrorKind::Interrupted => StreamFault::Retry,
        _ => StreamFault::Gone,
    }
}

/// A V4L2 `timeval` timestamp in nanoseconds; `None` for 0 (not stamped) or out of range.
pub fn timeval_ns(sec: i64, usec: i64) -> Option<i64> {
    let ns = sec
        .checked_mul(1_000_000_000)?
        .checked_add(usec.checked_mul(1_000)?)?;
    (ns > 0).then_some(ns)
}

/// Turns capture times into frame times: pts relative to the first frame, strictly increasing.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    first_ns: Option<i64>,
    last_pts_ns: Option<i64>,
}

impl Timeline {
    /// The pts of a frame captured at `capture_ns` (CLOCK_MONOTONIC), or `None` when it does
    /// not move forward (the frame is dropped).
    pub fn pts_ns(&mut self, capture_ns: i64) -> Option<i64> {
        let first = *self.first_ns.get_or_insert(capture_ns);
        let pts = capture_ns.saturating_sub(first);
        if self.last_pts_ns.is_some_and(|last| pts <= last) {
            return None;
        }
        self.last_pts_ns = Some(pts);
        Some(pts)
    }
}

/// The capture time on CLOCK_MONOTONIC (ns) and wall time of a buffer.
///
/// `driver_ns` is the buffer timestamp when the driver flags it monotonic (else `None`);
/// `mono_now_ns`/`wall_now` are read together at dequeue. The wall time is `wall_now` minus the
/// frame's age, unless the age is negative or over `MAX_FRAME_AGE_NS`.
pub fn capture_times(
    driver_ns: Option<i64>,
    mono_now_ns: i64,
    wall_now: OffsetDateTime,
) -> (i64, OffsetDateTime) {
    match driver_ns {
        Some(t) => {
            let age = mono_now_ns.saturating_sub(t);
            if (0..=MAX_FRAME_AGE_NS).contains(&age) {
                (t, wall_now - time::Duration::nanoseconds(age))
            } else {
                (t, wall_now)
            }
        }
        None => (mono_now_ns, wall_now),
    }
}

/// CLOCK_MONOTONIC now, nanoseconds (the clock V4L2 buffer timestamps use).
#[allow(clippy::unnecessary_cast)] // time_t and c_long are 32-bit on some targets
pub fn monotonic_now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer given; CLOCK_MONOTONIC
    // always exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as i64)
}

/// Converts one captured buffer to I420 for the chosen format.
pub fn convert_buffer(
    chosen: &Chosen,
    bytes_per_line: usize,
    data: &[u8],
) -> Result<Vec<u8>, ConvertError> {
    match chosen.format {
        CaptureFormat::Yuyv => yuyv_to_i420(data, chosen.width, chosen.height, bytes_per_line),
        CaptureFormat::Nv12 => nv12_to_i420(data, chosen.width, chosen.height, bytes_per_line),
        CaptureFormat::Mjpeg => mjpeg_to_i420(data, chosen.width, chosen.height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(code: &[u8; 4], w: u32, h: u32, fps: &[u32]) -> Mode {
        Mode {
            fourcc: *code,
            width: w,
            height: h,
            intervals: fps.iter().map(|&f| Interval::from_fps(f)).collect(),
        }
    }

    /// A typical USB 2 webcam: raw YUYV is slow at large sizes, MJPEG reaches 30 everywhere.
    fn webcam() -> Vec<Mode> {
        vec![
            mode(b"MJPG", 1920, 1080, &[30, 15]),
            mode(b"MJPG", 1280, 720, &[30, 15]),
            mode(b"MJPG", 640, 480, &[30, 15]),
            mode(b"YUYV", 1920, 1080, &[5]),
            mode(b"YUYV", 1280, 720, &[10]),
            mode(b"YUYV", 640, 480, &[30, 15]),
            mode(b"H264", 1920, 1080, &[30]),
        ]
    }

    fn opts() -> V4l2Options {
        V4l2Options::new("/dev/video0")
    }

    fn pick(o: &V4l2Options, modes: &[Mode]) -> String {
        negotiate(o, modes).map_or_else(|e| format!("error: {e}"), |c| c.to_string())
    }

    #[test]
    fn fourcc_mapping_and_config_spellings() {
        for f in CaptureFormat::PREFERENCE {
            assert_eq!(CaptureFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(f.to_string().parse::<CaptureFormat>(), Ok(f));
        }
        assert_eq!(
            CaptureFormat::from_fourcc(*b"JPEG"),
            Some(CaptureFormat::Mjpeg)
        );
        assert_eq!(CaptureFormat::from_fourcc(*b"H264"), None);
        assert_eq!("YUY2".parse(), Ok(CaptureFormat::Yuyv));
        assert_eq!("mjpeg".parse(), Ok(CaptureFormat::Mjpeg));
        assert!("rgb"
            .parse::<CaptureFormat>()
            .unwrap_err()
            .contains("mjpeg, yuyv, nv12"));
    }

    #[test]
    fn exact_request_matches_exactly() {
        let mut o = opts();
        (o.format, o.width, o.height, o.fps) =
            (Some(CaptureFormat::Mjpeg), Some(1280), Some(720), Some(15));
        assert_eq!(pick(&o, &webcam()), "MJPG 1280x720@15");
        o.fps = Some(20); // offered 30 and 15, not 20: no ceiling when everything is configured
        let err = negotiate(&o, &webcam()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SourceError::Format { .. }), "{msg}");
        assert!(msg.contains("MJPG 1280x720@20"), "{msg}");
        assert!(
            msg.contains("MJPG 1920x1080@30,15 1280x720@30,15 640x480@30,15; YUYV 1920x1080@5"),
            "{msg}"
        );
        assert!(
            msg.ends_with(
                "; other formats, not supported: H264; set one of those in the camera's config"
            ),
            "{msg}"
        );
    }

    #[test]
    fn size_given_rate_first_then_cheapest_format() {
        let mut o = opts();
        (o.width, o.height) = (Some(1280), Some(720));
        // YUYV reaches only 10 at 720p: MJPEG at 30 wins because rate ranks before format.
        assert_eq!(pick(&o, &webcam()), "MJPG 1280x720@30");
        // At 640x480 both reach 30: the raw format is cheaper.
        (o.width, o.height) = (Some(640), Some(480));
        assert_eq!(pick(&o, &webcam()), "YUYV 640x480@30");
        // A fps ceiling: highest offered rate not above it.
        (o.width, o.height, o.fps) = (Some(1280), Some(720), Some(20));
        assert_eq!(pick(&o, &webcam()), "MJPG 1280x720@15");
        o.fps = Some(10);
        assert_eq!(pick(&o, &webcam()), "YUYV 1280x720@10");
        o.fps = Some(4);
        assert!(pick(&o, &webcam()).starts_with("error"));
    }

    #[test]
    fn nothing_configured_prefers_rate_then_size_up_to_1080p() {
        assert_eq!(pick(&opts(), &webcam()), "MJPG 1920x1080@30");
        let modes = vec![
            mode(b"YUYV", 3840, 2160, &[30]),
            mode(b"YUYV", 1920, 1080, &[5]),
            mode(b"NV12", 1280, 720, &[30, 60]),
        ];
        // 60 is above the default target of 30; 4K is above the preferred size.
        assert_eq!(pick(&opts(), &modes), "NV12 1280x720@30");
        // Only faster than the target: the slowest of them.
        assert_eq!(
            pick(&opts(), &[mode(b"NV12", 640, 480, &[120, 60])]),
            "NV12 640x480@60"
        );
        // Only larger than 1080p: the smallest of them.
        let big = [
            mode(b"YUYV", 4096, 2160, &[30]),
            mode(b"YUYV", 3840, 2160, &[30]),
        ];
        assert_eq!(pick(&opts(), &big), "YUYV 3840x2160@30");
    }

    #[test]
    fn ntsc_rates_count_as_whole_rates() {
        let ntsc = Interval {
            numerator: 1001,
            denominator: 30000,
        };
        assert_eq!(ntsc.fps_rounded(), 30);
        assert_eq!(ntsc.to_string(), "29.97");
        let modes = [Mode {
            fourcc: *b"YUYV",
            width: 720,
            height: 480,
            intervals: vec![ntsc],
        }];
        let mut o = opts();
        (o.format, o.width, o.height, o.fps) =
            (Some(CaptureFormat::Yuyv), Some(720), Some(480), Some(30));
        assert_eq!(negotiate(&o, &modes).unwrap().interval, Some(ntsc));
    }

    #[test]
    fn format_or_width_alone_constrain() {
        let mut o = opts();
        o.format = Some(CaptureFormat::Yuyv);
        assert_eq!(pick(&o, &webcam()), "YUYV 640x480@30");
        o.format = Some(CaptureFormat::Nv12);
        let msg = pick(&o, &webcam());
        assert!(
            msg.contains("cannot capture NV12 any size@any fps"),
            "{msg}"
        );
        o.format = None;
        o.width = Some(1280);
        assert_eq!(pick(&o, &webcam()), "MJPG 1280x720@30");
    }

    #[test]
    fn modes_without_rates_and_unsupported_only_devices() {
        let modes = [Mode {
            fourcc: *b"YUYV",
            width: 640,
            height: 480,
            intervals: vec![],
        }];
        assert_eq!(pick(&opts(), &modes), "YUYV 640x480@?");
        let mut o = opts();
        o.fps = Some(30);
        assert!(pick(&o, &modes).contains("YUYV 640x480@?"));
        let msg = pick(
            &opts(),
            &[
                mode(b"RG10", 1920, 1080, &[30]),
                mode(b"RG10", 640, 480, &[30]),
            ],
        );
        assert!(
            msg.contains("offers no format this source can convert (MJPG, YUYV, NV12); other formats, not supported: RG10;"),
            "{msg}"
        );
        assert!(pick(&opts(), &[]).contains("no video capture formats"));
    }

    #[test]
    fn applied_format_is_checked() {
        let dev = Path::new("/dev/video0");
        let chosen = Chosen {
            format: CaptureFormat::Yuyv,
            width: 1280,
            height: 720,
            interval: Some(Interval::from_fps(30)),
        };
        let ok = check_applied(
            dev,
            &chosen,
            *b"YUYV",
            1280,
            720,
            Some(Interval::from_fps(30)),
        );
        assert_eq!(ok.unwrap(), None);
        let slow = check_applied(
            dev,
            &chosen,
            *b"YUYV",
            1280,
            720,
            Some(Interval::from_fps(15)),
        );
        assert!(slow
            .unwrap()
            .unwrap()
            .contains("15 fps instead of the requested 30"));
        let resized = check_applied(dev, &chosen, *b"YUYV", 640, 480, None).unwrap_err();
        let msg = resized.to_string();
        assert!(
            msg.contains("YUYV 640x480 (what the driver set instead"),
            "{msg}"
        );
        assert!(check_applied(dev, &chosen, *b"MJPG", 1280, 720, None).is_err());
    }

    #[test]
    fn open_errors_name_the_remedy() {
        let dev = Path::new("/dev/video7");
        let msg = |errno| open_error(dev, io::Error::from_raw_os_error(errno)).to_string();
        assert!(msg(libc::ENOENT).contains("v4l2-ctl --list-devices"));
        assert!(msg(libc::ENOENT).contains("/dev/video7"));
        assert!(msg(libc::EACCES).contains("group `video`"));
        assert!(msg(libc::EBUSY).contains("another program"));
        assert!(matches!(
            open_error(dev, io::Error::from_raw_os_error(libc::EINVAL)),
            SourceError::Connect {
                cause: LinkError::Device { .. },
                ..
            }
        ));
    }

    #[test]
    fn stream_errors_are_classified() {
        let e = |errno| classify_stream_error(&io::Error::from_raw_os_error(errno));
        assert_eq!(e(libc::ENODEV), StreamFault::Gone);
        assert_eq!(e(libc::EIO), StreamFault::Gone);
        assert_eq!(e(libc::ENXIO), StreamFault::Gone);
        assert_eq!(e(libc::EINVAL), StreamFault::Gone);
        assert_eq!(e(libc::EINTR), StreamFault::Retry);
        assert_eq!(e(libc::EAGAIN), StreamFault::Retry);
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "VIDIOC_DQBUF");
        assert_eq!(classify_stream_error(&timeout), StreamFault::Timeout);
        let reason = |errno, node_exists| {
            LinkError::Capture {
                cause: io::Error::from_raw_os_error(errno),
                node_exists,
            }
            .to_string()
        };
        assert!(reason(libc::ENOSPC, true).contains("USB bandwidth"));
        assert!(reason(libc::ENODEV, false).contains("node is gone"));
        assert!(!reason(libc::EIO, true).contains("gone"));
    }

    #[test]
    fn timestamps_start_at_zero_and_only_move_forward() {
        assert_eq!(timeval_ns(12, 345_678), Some(12_345_678_000));
        assert_eq!(timeval_ns(0, 0), None);
        assert_eq!(timeval_ns(i64::MAX, 0), None);
        let mut t = Timeline::default();
        assert_eq!(t.pts_ns(5_000_000_000), Some(0));
        assert_eq!(t.pts_ns(5_033_000_000), Some(33_000_000));
        assert_eq!(t.pts_ns(5_033_000_000), None); // repeated
        assert_eq!(t.pts_ns(5_010_000_000), None); // backwards
        assert_eq!(t.pts_ns(5_066_000_000), Some(66_000_000));
    }

    #[test]
    fn wall_time_is_dequeue_time_minus_frame_age() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let (mono, wall) = capture_times(Some(100_000_000_000), 100_040_000_000, now);
        assert_eq!(mono, 100_000_000_000);
        assert_eq!(now - wall, time::Duration::milliseconds(40));
        // A timestamp from the future or from long ago is not a CLOCK_MONOTONIC time: keep now.
        assert_eq!(
            capture_times(Some(200_000_000_000), 100_000_000_000, now).1,
            now
        );
        assert_eq!(capture_times(Some(1), 100_000_000_000, now).1, now);
        // No driver timestamp: the dequeue time on both clocks.
        assert_eq!(capture_times(None, 7, now), (7, now));
        assert!(monotonic_now_ns() > 0);
    }

    #[test]
    fn buffers_convert_per_chosen_format() {
        let chosen = |format| Chosen {
            format,
            width: 4,
            height: 2,
            interval: None,
        };
        let yuyv = [9u8; 16];
        assert_eq!(
            convert_buffer(&chosen(CaptureFormat::Yuyv), 0, &yuyv).unwrap(),
            vec![9u8; 12]
        );
        assert!(convert_buffer(&chosen(CaptureFormat::Nv12), 0, &yuyv[..11]).is_err());
        assert!(convert_buffer(&chosen(CaptureFormat::Mjpeg), 0, &yuyv).is_err());
    }
}
