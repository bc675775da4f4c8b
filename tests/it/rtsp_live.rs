//! The RTSP source against a real RTSP server: GStreamer's GstRtspServer, run by
//! `tests/support/rtsp_server.py` with Debian's `/usr/bin/python3` on a free loopback port.
//!
//! Packages: see `util/rtsp.rs`; without them the tests print `SKIPPED: gst-rtsp-server` and
//! pass, unless `SPEEDCAM_REQUIRE` names it (see `util/mod.rs`).

use crate::util::free_port;
use crate::util::rtsp::{self, scene, Server};
use speedcam::frame::Frame;
use speedcam::source::rtsp::{RtspOptions, RtspSource, RtspTransport};
use speedcam::source::{Mp4Source, Source, SourceError};
use std::process::Command;
use std::time::{Duration, Instant};

/// One tick of the 90 kHz RTP video clock, in nanoseconds (rounded up).
const RTP_TICK_NS: i64 = 11_112;

fn options(url: String, transport: RtspTransport) -> RtspOptions {
    RtspOptions {
        url,
        transport,
        credentials: None,
        stall_timeout: Duration::from_secs(5),
    }
}

fn read_frames(src: &mut dyn Source, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| match src.next_frame() {
            Ok(Some(f)) => f,
            other => panic!("frame {i}: {other:?} ({:?})", src.counters()),
        })
        .collect()
}

/// (a) Over TCP the decoded frames are those of the file: same pixels, same pts steps.
#[test]
fn tcp_frames_match_the_file_source() {
    if !rtsp::available() {
        return;
    }
    const N: usize = 90; // 3 s of the 30 fps scene, served in real time
    let mut file = Mp4Source::open(&scene(), "file".into()).expect("open scene.mp4");
    let want = read_frames(&mut file, N);

    let server = Server::start(free_port(), "clean");
    let mut src = RtspSource::open(options(server.url(), RtspTransport::Tcp), "cam".into())
        .expect("open RTSP");
    println!("{}", src.describe());
    let got = read_frames(&mut src, N);
    let c = src.counters();
    println!("rtsp counters after {N} frames: {c:?}");

    let mut identical = 0;
    let mut worst_pts_err_ns = 0i64;
    let mut worst_step_err_ns = 0i64;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!((g.width, g.height), (w.width, w.height), "frame {i} size");
        if g.data == w.data {
            identical += 1;
        } else {
            let differing = g
                .data
                .iter()
                .zip(w.data.iter())
                .filter(|(a, b)| a != b)
                .count();
            println!("frame {i}: {differing} of {} bytes differ", g.data.len());
        }
        worst_pts_err_ns = worst_pts_err_ns.max((g.pts_ns - w.pts_ns).abs());
        if i > 0 {
            let step_g = g.pts_ns - got[i - 1].pts_ns;
            let step_w = w.pts_ns - want[i - 1].pts_ns;
            worst_step_err_ns = worst_step_err_ns.max((step_g - step_w).abs());
        }
    }
    // With RTCP sender reports, wall steps equal pts steps; with local receive times they jitter.
    let wall_jitter_ns: Vec<i64> = got
        .windows(2)
        .map(|p| {
            ((p[1].wall - p[0].wall).whole_nanoseconds() as i64 - (p[1].pts_ns - p[0].pts_ns)).abs()
        })
        .collect();
    let exact_from = wall_jitter_ns
        .iter()
        .rposition(|&j| j > 1_000)
        .map_or(0, |i| i + 1);
    println!("wall steps equal pts steps (sender-report time) from frame {exact_from} of {N}");
    let wall_offset_s = (got[N - 1].wall - time::OffsetDateTime::now_utc()).as_seconds_f64();
    println!(
        "RTSP vs file, first {N} frames: {identical} pixel-identical, pts error <= {worst_pts_err_ns} ns, \
         pts step error <= {worst_step_err_ns} ns; last frame wall - now = {wall_offset_s:.3} s"
    );
    assert_eq!(got[0].pts_ns, 0);
    assert_eq!(identical, N, "every frame should be pixel-identical");
    assert!(worst_step_err_ns <= RTP_TICK_NS, "{worst_step_err_ns} ns");
    assert!(worst_pts_err_ns <= RTP_TICK_NS, "{worst_pts_err_ns} ns");
    assert_eq!(c.decode_errors, 0, "{c:?}");
    assert_eq!(c.pts_backwards_dropped, 0, "{c:?}");
    assert!(got.windows(2).all(|p| p[1].seq == p[0].seq + 1));
    assert!(
        wall_offset_s.abs() < 5.0,
        "wall time off by {wall_offset_s} s"
    );
}

/// (b) Killing the server ends the session promptly; a fresh open after the restart streams.
#[test]
fn reconnects_after_a_server_restart() {
    if !rtsp::available() {
        return;
    }
    let port = free_port();
    let mut server = Server::start(port, "clean");
    let mut opts = options(server.url(), RtspTransport::Tcp);
    opts.stall_timeout = Duration::from_secs(1);
    let mut src = RtspSource::open(opts, "cam".into()).expect("open RTSP");
    read_frames(&mut src, 10);

    // A frozen server (SIGSTOP): the connection stays up, no frame comes: Stalled.
    let pid = server.pid().to_string();
    let stopped = Command::new("kill").args(["-STOP", &pid]).status();
    assert!(stopped.is_ok_and(|s| s.success()), "kill -STOP {pid}");
    let frozen = Instant::now();
    let err = loop {
        match src.next_frame() {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let stall_s = frozen.elapsed().as_secs_f64();
    println!("after SIGSTOP: {err:?} in {stall_s:.3} s (stall_timeout 1 s)");
    // The kind and its own figure say that the stall limit ended the wait; the wall-clock bound
    // only guards against a hang (a loaded machine may take longer than the limit to notice).
    match &err {
        Err(SourceError::Stalled { after_s, .. }) => assert!(*after_s >= 1.0, "{after_s}"),
        other => panic!("expected a stall, got {other:?}"),
    }
    assert!(stall_s < 60.0, "{stall_s} s");
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    // Stalled does not end the session: frames flow again once the server wakes up.
    read_frames(&mut src, 3);

    server.kill();
    let killed = Instant::now();
    let err = loop {
        // Frames already buffered on our side may still come out.
        match src.next_frame() {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let detect_s = killed.elapsed().as_secs_f64();
    println!("after kill: {err:?} in {detect_s:.3} s");
    // Disconnected, not Stalled: the closed connection was noticed before the 1 s stall limit
    // could end the wait (the wall-clock bound only guards against a hang).
    assert!(
        matches!(err, Err(SourceError::Disconnected { .. })),
        "{err:?}"
    );
    assert!(detect_s < 60.0, "{detect_s} s");
    // Once ended, it stays ended.
    assert!(matches!(
        src.next_frame(),
        Err(SourceError::Disconnected { .. })
    ));
    drop(src);

    let restarted = Instant::now();
    let server = Server::start(port, "clean");
    let listening_s = restarted.elapsed().as_secs_f64();
    let mut src = RtspSource::open(options(server.url(), RtspTransport::Tcp), "cam".into())
        .expect("reopen after restart");
    let opened_s = restarted.elapsed().as_secs_f64();
    let first = read_frames(&mut src, 1);
    let first_frame_s = restarted.elapsed().as_secs_f64();
    println!(
        "server restart -> port listening {listening_s:.3} s, session open {opened_s:.3} s, \
         first frame {first_frame_s:.3} s"
    );
    assert_eq!(first[0].pts_ns, 0);
    let more = read_frames(&mut src, 10);
    assert!(more.windows(2).all(|p| p[1].pts_ns > p[0].pts_ns));
}

/// (c) Corrupted H.264 data: errors are counted, frames keep coming, nothing panics.
#[test]
fn garbage_nal_units_are_counted_and_skipped() {
    if !rtsp::available() {
        return;
    }
    let server = Server::start(free_port(), "garbage");
    let mut src = RtspSource::open(options(server.url(), RtspTransport::Tcp), "cam".into())
        .expect("open RTSP");
    let until = Instant::now() + Duration::from_secs(6);
    let mut frames = Vec::new();
    let mut errors = Vec::new();
    while Instant::now() < until {
        match src.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => panic!("a live stream never ends"),
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        }
    }
    let c = src.counters();
    let gaps: Vec<String> = frames
        .windows(2)
        .filter(|p| p[1].pts_ns - p[0].pts_ns > 50_000_000)
        .map(|p| format!("{:.2}-{:.2} s", p[0].pts_s(), p[1].pts_s()))
        .collect();
    println!("garbage stream: frames missing between {gaps:?}");
    println!(
        "garbage stream: {} frames, {c:?}, errors {errors:?}",
        frames.len()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(c.decode_errors > 0, "{c:?}");
    // Decoding recovers (at the next key frame) after the first broken access unit.
    let first_gap_end = frames
        .windows(2)
        .find(|p| p[1].pts_ns - p[0].pts_ns > 50_000_000)
        .map(|p| p[1].pts_ns);
    assert!(
        first_gap_end.is_some(),
        "no frame was lost: corruption too mild"
    );
    assert!(frames.last().map(|f| f.pts_ns) >= first_gap_end);
    assert!(frames.len() >= 60, "{} frames, {c:?}", frames.len());
    assert!(frames.windows(2).all(|p| p[1].pts_ns > p[0].pts_ns));
}

/// (d) UDP transport on loopback.
#[test]
fn udp_transport_streams() {
    if !rtsp::available() {
        return;
    }
    let server = Server::start(free_port(), "clean");
    let mut src = RtspSource::open(options(server.url(), RtspTransport::Udp), "cam".into())
        .expect("open RTSP over UDP");
    println!("{}", src.describe());
    let frames = read_frames(&mut src, 30);
    let c = src.counters();
    println!("UDP: {} frames, {c:?}", frames.len());
    assert_eq!(frames[0].pts_ns, 0);
    assert!(frames.windows(2).all(|p| p[1].pts_ns > p[0].pts_ns));
    assert_eq!((frames[0].width, frames[0].height), (1280, 720));
}
