//! [`RtspSource`]: H.264 video from an RTSP camera, received with the pure-Rust `retina` client
//! and decoded in-process by the same openh264 decoder as the file source.
//!
//! # Transport
//! [`RtspTransport::Tcp`] (the default) interleaves RTP in the RTSP TCP connection: nothing is
//! lost or reordered, it needs one outgoing connection (NAT and firewalls pass it), and the
//! connection closing tells us at once that the camera went away. [`RtspTransport::Udp`] uses
//! separate RTP/RTCP ports; `retina` has no reorder buffer, so it is for a clean LAN only, and a
//! lost packet costs a frame (the decoder conceals or reports it).
//!
//! # Timestamps
//! `Frame::pts_ns` comes from the RTP timestamp of each access unit: the 32-bit value is
//! extended to 64 bits (so the 13-hour wrap of a 90 kHz clock is invisible), converted to
//! nanoseconds and made relative to the first frame handed to the decoder. It is the camera's own
//! capture clock, so network jitter does not reach speed, which uses `pts_ns` only. A frame whose
//! pts does not move forward is decoded (later frames may reference it) but not handed out, and
//! is counted in `pts_backwards_dropped`; 30 such frames in a row mean the camera restarted its
//! RTP clock, and the session ends with `Disconnected` so that a reopen starts pts afresh.
//!
//! `Frame::wall` is the camera's NTP wall time when the camera sends RTCP sender reports (the
//! latest report maps RTP time to NTP time; a report dated before 2000 means an unset camera clock
//! and is ignored); before the first report, and for cameras that send none, it is the local time
//! the frame's first packet arrived. Wall time labels events; it never enters a measurement.
//!
//! # Credentials and redaction
//! Credentials come from [`RtspOptions::credentials`] (e.g. read with [`read_credentials_file`]
//! from a systemd `LoadCredential=` file) or from the URL (`rtsp://user:pw@host/...`); explicit
//! credentials win. They are stripped from the URL before it reaches `retina`, and only the
//! stripped URL appears in logs, errors and [`Source::describe`]. `Debug` of [`Credentials`]
//! never shows the password, and no error message quotes the credentials file.
//!
//! # Decoding and broken data
//! `retina` reassembles access units and hands them out in Annex B form with SPS/PPS (from the
//! SDP or in-band, whichever is newest) in front of every key frame, which is what openh264
//! needs. Access units before the first key frame cannot be decoded and are counted as
//! `samples_without_picture`. RTP packets that `retina` cannot depacketise (bad NAL headers,
//! broken fragmentation) and access units openh264 rejects are counted in `decode_errors` and
//! skipped; the session goes on. Only a broken connection ends it.
//!
//! # Errors and reopening
//! [`RtspSource::open`] fails with [`SourceError::Connect`] (server unreachable, refused,
//! authentication failed, no answer within `stall_timeout`). [`Source::next_frame`] returns
//! within `stall_timeout`: [`SourceError::Stalled`] when no frame arrived in that time (the
//! camera froze, the network dropped packets silently, or a served file ended),
//! [`SourceError::Disconnected`] when the server closed or reset the connection. It never returns
//! `Ok(None)`: a live stream has no end. After `Stalled` the session is still up (frames flow
//! again if the camera recovers); after `Disconnected` every call returns `Disconnected`. Either
//! way the caller may drop the source and open a new one; dropping sends `TEARDOWN` and waits at
//! most half a second for it.
//!
//! # H.265
//! Not supported by this source: openh264 decodes H.264 only. A camera offering only H.265 is
//! refused at open with [`SourceError::Unsupported`]; the fix is to set the camera's stream to
//! H.264, or to use the `ffmpeg` (libavcodec) build once its RTSP path exists. B-frames are refused
//! the same way when the SPS announces them (openh264 would drop most frames).
//!
//! # Threading
//! Each source owns a current-thread tokio runtime and blocks on it in `next_frame`, so call it
//! from a plain thread (or `spawn_blocking`), not from async code.

use super::{redact_uri, Source, SourceCounters, SourceError};
use crate::frame::{Frame, PixelFormat};
use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Demuxed, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions, SessionGroup,
    SessionIdPolicy, SessionOptions, SetupOptions, UnassignedChannelDataPolicy,
    UnknownRtcpSsrcPolicy,
};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef};
use speedcam_core::source::decode::H264Decoder;
use speedcam_core::source::link::{one_line, LinkError};
use speedcam_core::source::sps::parse_sps;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;
use url::Url;

/// Frames in a row whose pts goes back before the session is taken as broken (the camera reset
/// its RTP clock) and ended, so that a reopen starts pts afresh; 30 is about a second of video.
const MAX_BACKWARDS_IN_A_ROW: u32 = 30;

/// How long dropping a source waits for its `TEARDOWN` to be sent before giving up.
const TEARDOWN_WAIT: Duration = Duration::from_millis(500);

pub use speedcam_core::source::RtspTransport;

/// A username and password for RTSP (basic or digest) authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password; never printed (`Debug` shows `***`).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Reads RTSP credentials from a file, e.g. one passed with systemd `LoadCredential=`.
///
/// Format (UTF-8): either one line `username:password` (split at the first `:`, so the password
/// may contain `:`), or two lines, the username then the password. A trailing newline (`\n` or
/// `\r\n`) and trailing empty lines are ignored; nothing else is trimmed, so spaces are part of
/// the password. The username must not be empty. Errors name the file and the expected format,
/// never its contents.
pub fn read_credentials_file(path: &Path) -> Result<Credentials, SourceError> {
    let bytes = std::fs::read(path).map_err(|cause| SourceError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_credentials(&bytes).map_err(|reason| SourceError::Credentials {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the credentials file format of [`read_credentials_file`]; errors never quote it.
fn parse_credentials(bytes: &[u8]) -> Result<Credentials, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let (username, password) = match lines.as_slice() {
        [] => return Err("it is empty".into()),
        [line] => line
            .split_once(':')
            .ok_or_else(|| "its only line has no `:` between username and password".to_string())?,
        [user, pass] => (*user, *pass),
        more => return Err(format!("it has {} lines", more.len())),
    };
    if username.is_empty() {
        return Err("the username is empty".into());
    }
    Ok(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// What to connect to and how.
#[derive(Debug, Clone)]
pub struct RtspOptions {
    /// `rtsp://host[:port]/path`; may embed `user:password@` (stripped before use, never logged).
    pub url: String,
    /// How RTP travels; TCP unless the network is known to be clean.
    pub transport: RtspTransport,
    /// Credentials; take precedence over any in the URL.
    pub credentials: Option<Credentials>,
    /// Longest wait for a frame in `next_frame`, and for the whole DESCRIBE/SETUP/PLAY at open.
    pub stall_timeout: Duration,
}

/// Splits `raw` into a URL without credentials and the credentials it embedded (percent-decoded).
fn split_url_credentials(raw: &str) -> Result<(Url, Option<Credentials>), SourceError> {
    let bad = |cause: LinkError| SourceError::Connect {
        uri: redact_uri(raw),
        cause,
    };
    let mut url = Url::parse(raw).map_err(|e| bad(LinkError::InvalidUrl { cause: Box::new(e) }))?;
    match url.scheme() {
        "rtsp" => {}
        "rtsps" => {
            return Err(SourceError::Unsupported {
                uri: redact_uri(raw),
                reason:
                    "RTSP over TLS (rtsps://) is not supported by the RTSP client; use rtsp:// \
                         on a trusted network"
                        .into(),
            })
        }
        other => {
            return Err(bad(LinkError::Scheme {
                scheme: other.to_string(),
            }))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(LinkError::NoHost));
    }
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |s: &str, part: &'static str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad(LinkError::CredentialsNotUtf8 { part }))
        };
        let username = decode(url.username(), "username")?;
        let password = decode(url.password().unwrap_or(""), "password")?;
        if url.set_username("").is_err() || url.set_password(None).is_err() {
            return Err(bad(LinkError::CredentialsNotStripped));
        }
        Some(Credentials { username, password })
    };
    Ok((url, credentials))
}

/// Extends a 32-bit RTP timestamp to 64 bits: the value congruent to `ts` (mod 2^32) nearest to
/// `reference` (within ±2^31 ticks).
pub(crate) fn extend_rtp_timestamp(reference: i64, ts: u32) -> i64 {
    let delta = ts.wrapping_sub(reference as u32) as i32;
    reference.saturating_add(i64::from(delta))
}

/// Turns the RTP timestamps of successive frames into nanoseconds from the first frame, and
/// decides which frames move time forward.
#[derive(Debug, Clone)]
pub(crate) struct RtpClock {
    clock_rate_hz: u32,
    /// Extended timestamp of the latest frame seen: the reference for extending the next one.
    last_ticks: Option<i64>,
    /// Extended timestamp that is pts 0.
    first_ticks: Option<i64>,
    /// pts of the last frame handed out.
    last_pts_ns: Option<i64>,
}

impl RtpClock {
    /// A clock for an RTP stream ticking at `clock_rate_hz` (90 kHz for video); 0 is taken as 1.
    pub(crate) fn new(clock_rate_hz: u32) -> Self {
        Self {
            clock_rate_hz: clock_rate_hz.max(1),
            last_ticks: None,
            first_ticks: None,
            last_pts_ns: None,
        }
    }

    /// Extends `rtp_ts` against the previous frame's timestamp and remembers it as the next
    /// reference. The first timestamp is taken as is.
    pub(crate) fn extend(&mut self, rtp_ts: u32) -> i64 {
        let ticks = match self.last_ticks {
            Some(last) => extend_rtp_timestamp(last, rtp_ts),
            None => i64::from(rtp_ts),
        };
        self.last_ticks = Some(ticks);
        ticks
    }

    /// Extends a timestamp from elsewhere (an RTCP sender report) against the latest frame,
    /// without moving the reference.
    pub(crate) fn extend_other(&self, rtp_ts: u32) -> i64 {
        match self.last_ticks {
            Some(last) => extend_rtp_timestamp(last, rtp_ts),
            None => i64::from(rtp_ts),
        }
    }

    /// `ticks` converted to nanoseconds.
    pub(crate) fn ticks_to_ns(&self, ticks: i64) -> i64 {
        let ns = i128::from(ticks) * 1_000_000_000 / i128::from(self.clock_rate_hz);
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Nanoseconds of the extended timestamp `ticks` from the first one passed here.
    pub(crate) fn pts_ns(&mut self, ticks: i64) -> i64 {
        let first = *self.first_ticks.get_or_insert(ticks);
        self.ticks_to_ns(ticks.saturating_sub(first))
    }

    /// Whether a frame at `pts_ns` moves time forward; if so it becomes the last one handed out.
    pub(crate) fn advance(&mut self, pts_ns: i64) -> bool {
        if self.last_pts_ns.is_some_and(|last| pts_ns <= last) {
            return false;
        }
        self.last_pts_ns = Some(pts_ns);
        true
    }

    /// pts of the last frame handed out.
    pub(crate) fn last_pts_ns(&self) -> Option<i64> {
        self.last_pts_ns
    }
}

/// NTP time (RFC 5905 64-bit fixed point, seconds since 1900) as UTC wall time; `None` for
/// times before 2000-01-01, which mean a camera whose clock was never set.
pub(crate) fn ntp_to_wall(ntp: u64) -> Option<OffsetDateTime> {
    const NTP_UNIX_OFFSET_S: i64 = 2_208_988_800;
    const UNIX_2000_S: i64 = 946_684_800;
    let unix_s = (ntp >> 32) as i64 - NTP_UNIX_OFFSET_S;
    if unix_s < UNIX_2000_S {
        return None;
    }
    let frac_ns = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    let ns = i128::from(unix_s) * 1_000_000_000 + i128::from(frac_ns);
    OffsetDateTime::from_unix_timestamp_nanos(ns).ok()
}

/// The latest RTCP sender report: which wall time an RTP timestamp stood for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SenderReport {
    /// Wall time of the report.
    pub wall: OffsetDateTime,
    /// Extended RTP timestamp of the report.
    pub ticks: i64,
}

impl SenderReport {
    /// Wall time of the extended RTP timestamp `ticks` on `clock`.
    pub(crate) fn wall_at(&self, clock: &RtpClock, ticks: i64) -> OffsetDateTime {
        let ns = clock.ticks_to_ns(ticks.saturating_sub(self.ticks));
        self.wall
            .checked_add(time::Duration::nanoseconds(ns))
            .unwrap_or(self.wall)
    }
}

/// Whether a `retina` error concerns one packet (the session can go on) rather than the
/// connection. `retina`'s errors are opaque: 0.4 offers `status_code()` and nothing else to
/// inspect, so its packet errors (bad RTP header, wrong SSRC, depacketisation, bad RTCP) are told
/// by the packet context line `pkt: ...` their message carries. A retina upgrade that changes this
/// fails `tests::a_bad_packet_is_skipped_and_a_closed_connection_ends_the_session`.
fn is_packet_error(e: &retina::Error) -> bool {
    e.to_string().contains("\npkt: ")
}

/// Whether the `n`th occurrence of something is worth a log line (the first few, then powers of 2).
fn worth_logging(n: u64) -> bool {
    n <= 5 || n.is_power_of_two()
}

/// Why an H.264 stream cannot be decoded by openh264, judged from its Annex B parameter sets.
fn reordering_evidence(annexb: &[u8]) -> Option<String> {
    let sps = annexb_nals(annexb).find(|nal| nal.first().map(|b| b & 0x1f) == Some(7))?;
    let info = parse_sps(sps).ok()?;
    info.announces_reordering().then(|| {
        format!(
            "the SPS announces max_num_reorder_frames = {}",
            info.max_num_reorder_frames.unwrap_or(0)
        )
    })
}

/// The NAL units of an Annex B buffer (3- or 4-byte start codes).
fn annexb_nals(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= buf.len() {
        if buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            let mut e = s - 3;
            while e > 0 && buf[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(buf.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| s < e)
        .map(move |(s, e)| &buf[s..e])
}

/// What the stream's current parameters say, for `describe`.
#[derive(Debug, Clone, Default)]
struct StreamInfo {
    /// RFC 6381 codec, e.g. `avc1.640028`.
    codec: String,
    width_px: u32,
    height_px: u32,
}

/// H.264 video from an RTSP server, decoded in-process. See the module docs for transport,
/// timestamps, credentials and error behaviour.
pub struct RtspSource {
    /// Always `Some` until dropped; `Option` so `Drop` can shut it down without blocking.
    rt: Option<tokio::runtime::Runtime>,
    /// `None` once the session ended.
    session: Option<Demuxed>,
    group: Arc<SessionGroup>,
    stream_id: usize,
    /// The URL without credentials.
    url: String,
    transport: RtspTransport,
    camera: Arc<str>,
    stall_timeout: Duration,
    decoder: H264Decoder,
    clock: RtpClock,
    sender_report: Option<SenderReport>,
    info: StreamInfo,
    awaiting_keyframe: bool,
    /// Decoded frames dropped in a row because their pts did not move forward.
    backwards_in_a_row: u32,
    /// Whether the session ended (the next read says so instead of reading).
    ended: bool,
    seq: u64,
    counters: SourceCounters,
}

impl RtspSource {
    /// Connects to `opts.url` (DESCRIBE, SETUP, PLAY within `opts.stall_timeout`) and picks its
    /// first H.264 video stream. Fails with `Connect` when the server cannot be reached or refuses
    /// (authentication, unknown path), `Unsupported` when it offers no H.264 video (e.g. H.265
    /// only) or announces B-frames.
    pub fn open(opts: RtspOptions, camera: Arc<str>) -> Result<Self, SourceError> {
        let (url, url_credentials) = split_url_credentials(&opts.url)?;
        let shown = redact_uri(url.as_str());
        let credentials = opts.credentials.or(url_credentials);
        let connect = |cause: LinkError| SourceError::Connect {
            uri: shown.clone(),
            cause,
        };
        // Before connecting: a session must not be dropped outside its runtime.
        let decoder = H264Decoder::new().map_err(|reason| SourceError::Decoder {
            path: PathBuf::from(&shown),
            reason,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|cause| {
                connect(LinkError::Io {
                    step: "starting the network runtime",
                    cause,
                })
            })?;
        let group = Arc::new(SessionGroup::default());
        let session_options = SessionOptions::default()
            .creds(credentials.map(|c| retina::client::Credentials {
                username: c.username,
                password: c.password,
            }))
            .user_agent(format!("speedcam/{}", env!("CARGO_PKG_VERSION")))
            .session_group(group.clone())
            // Tolerate what cheap cameras do: data on channels we did not set up, session ids
            // that change between SETUP answers.
            .unassigned_channel_data(UnassignedChannelDataPolicy::Ignore)
            .session_id(SessionIdPolicy::UseFirst);
        let transport = match opts.transport {
            RtspTransport::Tcp => retina::client::Transport::Tcp(Default::default()),
            RtspTransport::Udp => retina::client::Transport::Udp(Default::default()),
        };
        let timeout = opts.stall_timeout;
        // Inside the runtime, so that a half-built session dropped on timeout can spawn its
        // teardown.
        let started = rt.block_on(async {
            tokio::time::timeout(timeout, start_session(url, session_options, transport)).await
        });
        let (session, stream_id, info) = match started {
            Err(_) => {
                return Err(connect(LinkError::NoAnswer {
                    after_s: timeout.as_secs_f64(),
                }));
            }
            Ok(Err(Refusal::Connect(cause))) => return Err(connect(cause)),
            Ok(Err(Refusal::Unsupported(reason))) => {
                return Err(SourceError::Unsupported { uri: shown, reason })
            }
            Ok(Ok(s)) => s,
        };
        tracing::info!(
            url = %shown,
            transport = ?opts.transport,
            codec = %info.codec,
            width = info.width_px,
            height = info.height_px,
            "RTSP session playing"
        );
        Ok(Self {
            rt: Some(rt),
            session: Some(session),
            group,
            stream_id,
            url: shown,
            transport: opts.transport,
            camera,
            stall_timeout: opts.stall_timeout,
            decoder,
            clock: RtpClock::new(90_000),
            sender_report: None,
            info,
            awaiting_keyframe: true,
            backwards_in_a_row: 0,
            ended: false,
            seq: 0,
            counters: SourceCounters::default(),
        })
    }

    /// Marks the session ended, dropping it inside the runtime (its teardown is spawned there).
    fn close_session(&mut self, why: &dyn std::fmt::Display) {
        if let Some(session) = self.session.take() {
            match &self.rt {
                Some(rt) => {
                    let _entered = rt.enter();
                    drop(session);
                }
                None => std::mem::forget(session),
            }
        }
        tracing::warn!(url = %self.url, err = %why, "RTSP session ended");
        self.ended = true;
    }

    /// Ends the session because of `cause` and builds the error.
    fn end(&mut self, cause: LinkError) -> SourceError {
        self.close_session(&cause);
        SourceError::Disconnected {
            uri: self.url.clone(),
            cause,
        }
    }

    /// Takes a new sender report of our stream into account.
    fn on_rtcp(&mut self, pkt: &retina::rtcp::ReceivedCompoundPacket) {
        if pkt.stream_id() != self.stream_id || pkt.rtp_timestamp().is_none() {
            return;
        }
        let Some(Ok(Some(sr))) = pkt.pkts().next().map(|p| p.as_sender_report()) else {
            return;
        };
        let Some(wall) = ntp_to_wall(sr.ntp_timestamp().0) else {
            if self.sender_report.is_none() {
                tracing::debug!("RTCP sender report with an unset clock ignored");
            }
            return;
        };
        let ticks = self.clock.extend_other(sr.rtp_timestamp());
        if self.sender_report.is_none() {
            let local = OffsetDateTime::from(SystemTime::from(pkt.ctx().received_wall()));
            tracing::info!(
                camera_minus_local_s = (wall - local).as_seconds_f64(),
                "RTCP sender reports present: frame wall times follow the camera clock"
            );
        }
        self.sender_report = Some(SenderReport { wall, ticks });
    }

    /// Notes new parameters; errors when they announce B-frames.
    fn on_new_parameters(&mut self) -> Result<(), SourceError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let Some(ParametersRef::Video(params)) = session
            .streams()
            .get(self.stream_id)
            .and_then(|s| s.parameters())
        else {
            return Ok(());
        };
        let (w, h) = params.pixel_dimensions();
        self.info = StreamInfo {
            codec: params.rfc6381_codec().to_string(),
            width_px: w,
            height_px: h,
        };
        if let Some(evidence) = reordering_evidence(params.extra_data()) {
            let reason = bframes_reason(&evidence);
            self.close_session(&reason);
            return Err(SourceError::Unsupported {
                uri: self.url.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// Decodes one access unit, guarding against decoder panics; `None` when no picture came out.
    fn decode(&mut self, annexb: &[u8]) -> Option<super::decode::Picture> {
        let started = Instant::now();
        let decoded = catch_unwind(AssertUnwindSafe(|| self.decoder.decode(annexb)));
        self.counters.decode_time_ns += started.elapsed().as_nanos() as u64;
        match decoded {
            Ok(Ok(Some(p))) => Some(p),
            Ok(Ok(None)) => {
                self.counters.samples_without_picture += 1;
                None
            }
            Ok(Err(e)) => {
                self.counters.decode_errors += 1;
                if worth_logging(self.counters.decode_errors) {
                    tracing::warn!(errors = self.counters.decode_errors, err = %e, "H.264 decode error, access unit skipped");
                }
                None
            }
            Err(_) => {
                self.counters.decode_errors += 1;
                tracing::error!("H.264 decoder panicked; restarting it at the next key frame");
                match H264Decoder::new() {
                    Ok(d) => self.decoder = d,
                    Err(e) => {
                        tracing::error!(err = %e, "cannot restart the decoder")
                    }
                }
                self.awaiting_keyframe = true;
                None
            }
        }
    }

    /// Turns one received access unit into a frame, or `None` when it yields none.
    fn on_video_frame(
        &mut self,
        vf: &retina::codec::VideoFrame,
    ) -> Result<Option<Frame>, SourceError> {
        self.counters.samples_read += 1;
        if vf.has_new_parameters() {
            self.on_new_parameters()?;
        }
        let ticks = self.clock.extend(vf.timestamp().timestamp() as u32);
        if self.awaiting_keyframe {
            if !vf.is_random_access_point() {
                self.counters.samples_without_picture += 1;
                return Ok(None);
            }
            self.awaiting_keyframe = false;
        }
        let pts_ns = self.clock.pts_ns(ticks);
        let picture = match self.decode(vf.data()) {
            Some(p) => p,
            None => return Ok(None),
        };
        if !self.clock.advance(pts_ns) {
            self.counters.pts_backwards_dropped += 1;
            if worth_logging(self.counters.pts_backwards_dropped) {
                tracing::warn!(
                    pts_ns,
                    last_pts_ns = self.clock.last_pts_ns(),
                    "RTP timestamp does not move forward, frame dropped"
                );
            }
            self.backwards_in_a_row += 1;
            if self.backwards_in_a_row >= MAX_BACKWARDS_IN_A_ROW {
                // The camera restarted its RTP clock: a new session starts pts afresh.
                return Err(self.end(LinkError::ClockReset {
                    frames: self.backwards_in_a_row,
                }));
            }
            return Ok(None);
        }
        self.backwards_in_a_row = 0;
        let wall = match &self.sender_report {
            Some(sr) => sr.wall_at(&self.clock, ticks),
            None => OffsetDateTime::from(SystemTime::from(vf.start_ctx().received_wall())),
        };
        match Frame::new(
            self.camera.clone(),
            self.seq,
            pts_ns,
            wall,
            picture.width,
            picture.height,
            PixelFormat::I420,
            Bytes::from(picture.data),
        ) {
            Ok(frame) => {
                self.seq += 1;
                self.counters.frames_decoded += 1;
                Ok(Some(frame))
            }
            Err(e) => {
                self.counters.decode_errors += 1;
                tracing::warn!(err = %e, "decoded picture unusable");
                Ok(None)
            }
        }
    }
}

fn bframes_reason(evidence: &str) -> String {
    format!(
        "the H.264 stream uses B-frames ({evidence}), which the built-in decoder (openh264) cannot \
         decode; turn B-frames off in the camera's encoder settings (e.g. Baseline or Main \
         profile without B-frames), or use the `ffmpeg` build"
    )
}

/// Why a session could not be started.
enum Refusal {
    /// Network or server failure (retried by the caller).
    Connect(LinkError),
    /// The stream is not one this source can decode.
    Unsupported(String),
}

/// DESCRIBE, pick the first H.264 video stream, SETUP it, PLAY.
async fn start_session(
    url: Url,
    options: SessionOptions,
    transport: retina::client::Transport,
) -> Result<(Demuxed, usize, StreamInfo), Refusal> {
    let step = |step: &'static str| {
        move |e: retina::Error| {
            Refusal::Connect(LinkError::Rtsp {
                step,
                status: e.status_code(),
                cause: Box::new(e),
            })
        }
    };
    let mut session = retina::client::Session::describe(url, options)
        .await
        .map_err(step("DESCRIBE"))?;
    let streams = session.streams();
    let Some(stream_id) = streams
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
    else {
        let found: Vec<String> = streams
            .iter()
            .map(|s| format!("{}:{}", s.media(), s.encoding_name()))
            .collect();
        let found = if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        };
        let reason = if streams.iter().any(|s| s.encoding_name() == "h265") {
            format!(
                "the server offers no H.264 video, only H.265 (streams: {found}); the built-in \
                 decoder (openh264) decodes H.264 only: set the camera's stream to H.264, or use \
                 the `ffmpeg` (libavcodec) build for H.265"
            )
        } else {
            format!("the server offers no H.264 video stream (streams: {found})")
        };
        return Err(Refusal::Unsupported(reason));
    };
    let mut info = StreamInfo {
        codec: "H.264".into(),
        ..StreamInfo::default()
    };
    if let Some(ParametersRef::Video(params)) = streams[stream_id].parameters() {
        let (w, h) = params.pixel_dimensions();
        info = StreamInfo {
            codec: params.rfc6381_codec().to_string(),
            width_px: w,
            height_px: h,
        };
    }
    let format = FrameFormat {
        h26x_framing: retina::codec::h26x::Framing::AnnexB,
        parameter_set_insertion: ParameterSetInsertion::EachKeyFrame,
        ..FrameFormat::SIMPLE
    };
    session
        .setup(
            stream_id,
            SetupOptions::default()
                .transport(transport)
                .frame_format(format),
        )
        .await
        .map_err(step("SETUP"))?;
    // Parameters announced in the SDP can be checked for B-frames before any data flows
    // (after SETUP, so the Annex B framing applies to them).
    if let Some(ParametersRef::Video(params)) = session.streams()[stream_id].parameters() {
        if let Some(evidence) = reordering_evidence(params.extra_data()) {
            return Err(Refusal::Unsupported(bframes_reason(&evidence)));
        }
    }
    let playing = session
        .play(
            // pts comes from our own RTP clock, so the PLAY answer's rtptime/seq (often wrong
            // on cameras) are not needed; RTCP from unknown sources is dropped, not fatal.
            PlayOptions::default()
                .initial_timestamp(InitialTimestampPolicy::Ignore)
                .initial_seq(InitialSequenceNumberPolicy::Ignore)
                .unknown_rtcp_ssrc(UnknownRtcpSsrcPolicy::DropPackets),
        )
        .await
        .map_err(step("PLAY"))?;
    let demuxed = playing.demuxed().map_err(step("demuxing the stream"))?;
    Ok((demuxed, stream_id, info))
}

impl Source for RtspSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.ended {
            return Err(SourceError::Disconnected {
                uri: self.url.clone(),
                cause: LinkError::Ended,
            });
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.stall_timeout;
        loop {
            let (Some(rt), Some(session)) = (&self.rt, &mut self.session) else {
                return Err(self.end(LinkError::Ended));
            };
            let polled = catch_unwind(AssertUnwindSafe(|| {
                // The timer is built inside the runtime: it needs its time driver.
                rt.block_on(async { tokio::time::timeout_at(deadline, session.next()).await })
            }));
            let item = match polled {
                Err(_) => {
                    return Err(self.end(LinkError::Panicked));
                }
                Ok(Err(_elapsed)) => {
                    return Err(SourceError::Stalled {
                        uri: self.url.clone(),
                        after_s: started.elapsed().as_secs_f64(),
                    });
                }
                Ok(Ok(None)) => return Err(self.end(LinkError::Closed)),
                Ok(Ok(Some(Err(e)))) => {
                    if is_packet_error(&e) {
                        self.counters.decode_errors += 1;
                        if worth_logging(self.counters.decode_errors) {
                            tracing::warn!(errors = self.counters.decode_errors, err = %one_line(&e), "bad RTP packet skipped");
                        }
                        continue;
                    }
                    return Err(self.end(LinkError::Rtsp {
                        step: "reading the stream",
                        status: e.status_code(),
                        cause: Box::new(e),
                    }));
                }
                Ok(Ok(Some(Ok(item)))) => item,
            };
            match item {
                CodecItem::VideoFrame(vf) if vf.stream_id() == self.stream_id => {
                    if let Some(frame) = self.on_video_frame(&vf)? {
                        return Ok(Some(frame));
                    }
                }
                CodecItem::Rtcp(pkt) => self.on_rtcp(&pkt),
                _ => {}
            }
        }
    }

    fn describe(&self) -> String {
        let size = if self.info.width_px > 0 {
            format!(" {}x{}", self.info.width_px, self.info.height_px)
        } else {
            String::new()
        };
        format!(
            "camera {}: RTSP {} ({}, H.264 {}{size})",
            self.camera,
            self.url,
            match self.transport {
                RtspTransport::Tcp => "TCP",
                RtspTransport::Udp => "UDP",
            },
            self.info.codec,
        )
    }

    fn counters(&self) -> SourceCounters {
        self.counters
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        let Some(rt) = self.rt.take() else { return };
        // Dropping a session spawns its TEARDOWN on the runtime: give it a moment when this
        // thread may block, else shut down without waiting (blocking inside async code panics).
        let may_block = tokio::runtime::Handle::try_current().is_err();
        if let Some(session) = self.session.take() {
            let _entered = rt.enter();
            drop(session);
        }
        if may_block {
            let group = self.group.clone();
            // A panic here (inside retina's teardown bookkeeping) must not abort the process.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async move {
                    tokio::time::timeout(TEARDOWN_WAIT, group.await_teardown()).await
                })
            }));
            drop(rt);
        } else {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_util::temp_file as creds_file;
    use std::io::Write;

    #[test]
    fn credentials_files_in_both_layouts() {
        for (text, user, pass) in [
            (&b"admin:s3cret"[..], "admin", "s3cret"),
            (b"admin:s3cret\n", "admin", "s3cret"),
            (b"admin:s3:c:ret\r\n\n", "admin", "s3:c:ret"),
            (b"admin\ns3cret\n", "admin", "s3cret"),
            (
                b"admin\r\n pass with spaces \r\n",
                "admin",
                " pass with spaces ",
            ),
            (b"admin:", "admin", ""),
        ] {
            let f = creds_file(text);
            let c = read_credentials_file(f.path()).unwrap();
            assert_eq!((c.username.as_str(), c.password.as_str()), (user, pass));
        }
    }

    #[test]
    fn malformed_credentials_files_name_the_file_never_the_password() {
        for (text, why) in [
            (&b""[..], "empty"),
            (b"\n\n", "empty"),
            (b"hunter2-no-colon\n", "no `:`"),
            (b":hunter2\n", "username is empty"),
            (b"a\nhunter2\nc\n", "3 lines"),
            (b"adm\xffin:hunter2", "not UTF-8"),
        ] {
            let f = creds_file(text);
            let err = read_credentials_file(f.path()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SourceError::Credentials { .. }), "{msg}");
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains("username:password"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[test]
    fn missing_credentials_file_is_an_io_error() {
        let err = read_credentials_file(Path::new("/nonexistent/cam.cred")).unwrap_err();
        assert!(matches!(err, SourceError::Io { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/cam.cred"), "{err}");
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            username: "admin".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("admin") && !shown.contains("hunter2"),
            "{shown}"
        );
        let opts = RtspOptions {
            url: "rtsp://cam/s".into(),
            transport: RtspTransport::Tcp,
            credentials: Some(c),
            stall_timeout: Duration::from_secs(5),
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[test]
    fn url_credentials_are_stripped_and_decoded() {
        let (url, c) =
            split_url_credentials("rtsp://admin:p%40ss:w@10.0.0.5:554/stream1?x=1").unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.5:554/stream1?x=1");
        let c = c.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss:w")
        );
        // An unescaped `@` in the password: the last `@` ends the user info.
        let (url, c) = split_url_credentials("rtsp://admin:p@ss@cam/s").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam/s");
        assert_eq!(c.unwrap().password, "p@ss");
        let (url, c) = split_url_credentials("rtsp://cam:8554/live").unwrap();
        assert_eq!(url.as_str(), "rtsp://cam:8554/live");
        assert!(c.is_none());
        let (_, c) = split_url_credentials("rtsp://viewer@cam/live").unwrap();
        assert_eq!(c.unwrap().password, "");
    }

    #[test]
    fn bad_urls_are_refused_redacted() {
        for (raw, variant_ok) in [
            ("rtsps://u:hunter2@cam/s", "Unsupported"),
            ("http://u:hunter2@cam/s", "Connect"),
            ("rtsp://u:hunter2@[::1/s", "Connect"),
            ("not a url hunter2", "Connect"),
        ] {
            let err = split_url_credentials(raw).unwrap_err();
            let name = match err {
                SourceError::Unsupported { .. } => "Unsupported",
                SourceError::Connect { .. } => "Connect",
                _ => "other",
            };
            assert_eq!(name, variant_ok, "{raw}: {err}");
            let msg = err.to_string();
            if raw.contains('@') {
                assert!(!msg.contains("hunter2"), "{msg}");
            }
        }
    }

    #[test]
    fn open_errors_never_show_credentials() {
        // Nothing listens on port 1 of loopback: connection refused, quickly.
        let opts = RtspOptions {
            url: "rtsp://admin:hunter2@127.0.0.1:1/stream".into(),
            transport: RtspTransport::Tcp,
            credentials: None,
            stall_timeout: Duration::from_secs(3),
        };
        let err = RtspSource::open(opts, "cam".into()).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
        assert!(msg.contains("rtsp://127.0.0.1:1/stream"), "{msg}");
        assert!(!msg.contains("hunter2") && !msg.contains("admin"), "{msg}");
    }

    /// A server that accepts and never answers: `open` gives up after `stall_timeout` (tiny
    /// here) with `NoAnswer`, the kind the supervisor reports. The minute the test waits for
    /// the result only turns a hang into a failure.
    #[test]
    fn open_times_out_on_a_silent_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = RtspOptions {
            url: format!("rtsp://127.0.0.1:{port}/s"),
            transport: RtspTransport::Tcp,
            credentials: None,
            stall_timeout: Duration::from_millis(50),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(RtspSource::open(opts, "cam".into()).err());
        });
        let err = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("open returned")
            .expect("open failed");
        match &err {
            SourceError::Connect {
                cause: LinkError::NoAnswer { after_s },
                ..
            } => assert_eq!(*after_s, 0.05),
            other => panic!("expected no answer, got {other:?}"),
        }
        assert!(err.to_string().contains("no answer"), "{err}");
        drop(listener);
    }

    /// A one-connection RTSP server answering every request with `respond(method, cseq)`: the
    /// bytes to write, and whether to close the connection after them.
    fn fake_server(
        respond: fn(&str, &str) -> (Vec<u8>, bool),
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let Ok((stream, _)) = listener.accept() else {
                return seen;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            loop {
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return seen,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => head.push(line.trim_end().to_string()),
                    }
                }
                let method = head[0].split(' ').next().unwrap_or("").to_string();
                let cseq = head
                    .iter()
                    .find_map(|h| h.strip_prefix("CSeq: "))
                    .unwrap_or("0")
                    .to_string();
                seen.push(head.join("\n"));
                let (bytes, close) = respond(&method, &cseq);
                if writer.write_all(&bytes).is_err() || close {
                    return seen;
                }
            }
        });
        (format!("127.0.0.1:{port}"), handle)
    }

    #[test]
    fn h265_only_streams_are_refused_naming_the_fix() {
        let (addr, server) = fake_server(|_, cseq| {
            let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n\
                       m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=control:trackID=1\r\n";
            let answer = format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            );
            (answer.into_bytes(), false)
        });
        let opts = RtspOptions {
            url: format!("rtsp://{addr}/h265"),
            transport: RtspTransport::Tcp,
            credentials: None,
            stall_timeout: Duration::from_secs(5),
        };
        let err = RtspSource::open(opts, "cam".into()).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, SourceError::Unsupported { .. }), "{msg}");
        assert!(msg.contains("H.265") && msg.contains("`ffmpeg`"), "{msg}");
        assert!(msg.contains("video:h265"), "{msg}");
        let requests = server.join().unwrap();
        assert!(requests[0].starts_with("DESCRIBE "), "{requests:?}");
    }

    #[test]
    fn refused_authentication_is_a_connect_error_without_the_password() {
        let (addr, server) = fake_server(|_, cseq| {
            let answer = format!(
                "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n\
                 WWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\n\r\n"
            );
            (answer.into_bytes(), false)
        });
        let opts = RtspOptions {
            url: format!("rtsp://admin:hunter2@{addr}/s"),
            transport: RtspTransport::Tcp,
            credentials: None,
            stall_timeout: Duration::from_secs(5),
        };
        let err = RtspSource::open(opts, "cam".into()).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
        assert!(msg.contains("authentication failed"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains(&format!("rtsp://{addr}/s")), "{msg}");
        // The credentials went to the server (as Basic auth), never in the request line.
        let requests = server.join().unwrap();
        assert!(requests
            .iter()
            .all(|r| !r.lines().next().unwrap_or("").contains("hunter2")));
        assert!(
            requests.iter().any(|r| r.contains("Authorization: Basic")),
            "{requests:?}"
        );
    }

    /// One interleaved RTP packet on channel 0: H.264 payload type 96, no marker, an access
    /// unit delimiter NAL as payload.
    fn interleaved_rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut rtp = vec![0x80, 96];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend_from_slice(&[0x09, 0xf0]);
        let mut out = vec![b'$', 0];
        out.extend_from_slice(&(rtp.len() as u16).to_be_bytes());
        out.extend_from_slice(&rtp);
        out
    }

    /// Pins how this crate reads the retina version in Cargo.lock (its errors have no kind to ask
    /// for): an RTP packet with a wrong SSRC is a packet error, counted and skipped, and the
    /// server closing the connection ends the session with `Disconnected`.
    #[test]
    fn a_bad_packet_is_skipped_and_a_closed_connection_ends_the_session() {
        let (addr, server) = fake_server(|method, cseq| match method {
            "DESCRIBE" => {
                let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n\
                           m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                           a=fmtp:96 packetization-mode=1\r\na=control:trackID=1\r\n";
                let answer = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n\
                     Content-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                );
                (answer.into_bytes(), false)
            }
            "SETUP" => {
                let answer = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\
                     Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
                     Session: 12345678;timeout=60\r\nContent-Length: 0\r\n\r\n"
                );
                (answer.into_bytes(), false)
            }
            "PLAY" => {
                let mut answer = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\n\
                     Content-Length: 0\r\n\r\n"
                )
                .into_bytes();
                answer.extend(interleaved_rtp(1, 0x1111_1111));
                answer.extend(interleaved_rtp(2, 0x2222_2222));
                (answer, true)
            }
            _ => (
                format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n")
                    .into_bytes(),
                false,
            ),
        });
        let opts = RtspOptions {
            url: format!("rtsp://{addr}/s"),
            transport: RtspTransport::Tcp,
            credentials: None,
            stall_timeout: Duration::from_secs(10),
        };
        let mut source = RtspSource::open(opts, "cam".into()).expect("session starts");
        let err = source
            .next_frame()
            .expect_err("the server closed the connection");
        assert!(
            matches!(
                err,
                SourceError::Disconnected {
                    cause: LinkError::Closed | LinkError::Rtsp { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(source.counters().decode_errors, 1, "{err}");
        // Once ended, the source says so instead of reading.
        assert!(matches!(
            source.next_frame(),
            Err(SourceError::Disconnected {
                cause: LinkError::Ended,
                ..
            })
        ));
        let requests = server.join().unwrap();
        assert!(
            requests.iter().any(|r| r.starts_with("PLAY ")),
            "{requests:?}"
        );
    }

    #[test]
    fn rtp_timestamps_unwrap_across_the_32_bit_boundary() {
        assert_eq!(extend_rtp_timestamp(100, 3100), 3100);
        assert_eq!(extend_rtp_timestamp(100, 50), 50);
        let near_wrap = i64::from(u32::MAX) - 1000;
        assert_eq!(
            extend_rtp_timestamp(near_wrap, 2000),
            i64::from(u32::MAX) + 1 + 2000
        );
        assert_eq!(extend_rtp_timestamp(1 << 32, u32::MAX - 9), (1 << 32) - 10);

        let mut clock = RtpClock::new(90_000);
        let start = u32::MAX - 3000 * 2;
        let pts: Vec<i64> = (0..5u32)
            .map(|i| {
                let ticks = clock.extend(start.wrapping_add(i * 3000));
                clock.pts_ns(ticks)
            })
            .collect();
        let want: Vec<i64> = (0..5).map(|i| i * 100_000_000 / 3).collect();
        assert_eq!(pts, want);
    }

    #[test]
    fn pts_starts_at_zero_and_only_moves_forward() {
        let mut clock = RtpClock::new(90_000);
        let mut out = Vec::new();
        for ts in [90_000u32, 93_000, 96_000, 94_500, 96_000, 99_000] {
            let ticks = clock.extend(ts);
            let pts = clock.pts_ns(ticks);
            if clock.advance(pts) {
                out.push(pts);
            }
        }
        assert_eq!(out, vec![0, 33_333_333, 66_666_666, 100_000_000]);
        assert_eq!(clock.last_pts_ns(), Some(100_000_000));
    }

    #[test]
    fn sender_reports_map_rtp_time_to_wall_time() {
        // 2024-01-01T00:00:00.5Z in NTP.
        let unix = 1_704_067_200i64;
        let ntp = (((unix + 2_208_988_800) as u64) << 32) | (1u64 << 31);
        let wall = ntp_to_wall(ntp).unwrap();
        assert_eq!(
            wall.unix_timestamp_nanos(),
            i128::from(unix) * 1_000_000_000 + 500_000_000
        );
        // An unset camera clock (1900 or 1970) is ignored.
        assert!(ntp_to_wall(0).is_none());
        assert!(ntp_to_wall(2_208_988_800u64 << 32).is_none());

        let mut clock = RtpClock::new(90_000);
        let frame_ticks = clock.extend(u32::MAX - 100);
        // The report's timestamp wrapped already: it is 45_000 ticks (0.5 s) after the frame.
        let sr = SenderReport {
            wall,
            ticks: clock.extend_other(44_899),
        };
        let at = sr.wall_at(&clock, frame_ticks);
        assert_eq!((wall - at).whole_milliseconds(), 500);
    }

    #[test]
    fn annexb_splitting_finds_parameter_sets() {
        let buf = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        let nals: Vec<&[u8]> = annexb_nals(&buf).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 0]]);
        assert_eq!(annexb_nals(&[]).count(), 0);
        assert_eq!(annexb_nals(&[0, 0, 1]).count(), 0);
        assert!(reordering_evidence(&[0, 0, 0, 1, 0x67, 0xff]).is_none());
    }

    #[test]
    fn packet_error_logging_is_rate_limited() {
        let logged = (1..=1000u64).filter(|&n| worth_logging(n)).count();
        assert_eq!(logged, 5 + 7); // 1..=5, then 8, 16, ..., 512
    }
}
