//! [`ReplaySource`]: a recorded file played back like a live camera (`[cameras.replay]`).
//!
//! - `realtime`: each frame is released when the injected [`Clock`] reaches its container
//!   timestamp (relative to the first frame), never earlier. Like a camera, the replay does not
//!   wait for its reader: when the reader (or the decoder, on a loaded machine) falls behind, the
//!   frames whose successor is already due are skipped and counted
//!   ([`SourceCounters::frames_superseded`]), so the reader always gets the newest frame and the
//!   clock never slows down. The daemon pairs it with the live hand-off (latest frame wins).
//! - `loop`: at the end of the file it is opened again and played from the start, with
//!   timestamps (and sequence numbers) continuing monotonically: the next pass starts one mean
//!   frame interval after the last frame, so tracking and speed never see time step back.
//!
//! Useful for demos, kiosks, integration tests of consumers and load tests (`scripts/soak-load.sh`)
//! with recorded video standing in for cameras. Only the daemon honours the block; `replay`,
//! `bench` and `snapshot` read files as fast as possible.

use super::{Source, SourceCounters, SourceError};
use crate::clock::Clock;
use crate::frame::Frame;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How a file source is played back (`[cameras.replay]` of a camera with a file source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySettings {
    /// Release frames at their timestamps against the clock, skipping frames a slow reader
    /// missed (`realtime`, default false: as fast as the pipeline takes them).
    pub realtime: bool,
    /// Start over at the end of the file, timestamps continuing (`loop`, default false).
    pub looped: bool,
}

impl ReplaySettings {
    /// Whether the file is read any differently from a plain replay.
    pub fn is_active(&self) -> bool {
        self.realtime || self.looped
    }
}

/// Frame interval assumed after the last pass of a file that held a single frame, ns.
const SINGLE_FRAME_INTERVAL_NS: i64 = 1_000_000_000 / 30;

/// Opens the underlying file again for each pass of a loop.
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn Source>, SourceError> + Send>;

/// A file source played back in real time and/or in a loop; see the [module docs](self).
pub struct ReplaySource {
    settings: ReplaySettings,
    clock: Arc<dyn Clock>,
    reopen: Reopen,
    inner: Box<dyn Source>,
    /// Counters of the passes before the current one.
    done: SourceCounters,
    superseded: u64,
    pacing_wait_ns: u64,
    /// Added to the current pass's timestamps, ns.
    offset_ns: i64,
    /// First and last timestamp of the current pass (as the file has them) and its frame count.
    pass_first_ns: Option<i64>,
    pass_last_ns: i64,
    pass_frames: u64,
    passes: u64,
    /// Clock reading at which the first frame was released (realtime only).
    origin: Option<Duration>,
    /// A frame decoded ahead (when the previous one was late), already restamped.
    pending: Option<Frame>,
    seq: u64,
    wall_base: OffsetDateTime,
    never: AtomicBool,
}

impl ReplaySource {
    /// Plays `first` (the opened file) per `settings` against `clock`; `reopen` opens the file
    /// again for the next pass of a loop.
    pub fn new(
        first: Box<dyn Source>,
        reopen: Reopen,
        settings: ReplaySettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ReplaySource {
            settings,
            clock,
            reopen,
            inner: first,
            done: SourceCounters::default(),
            superseded: 0,
            pacing_wait_ns: 0,
            offset_ns: 0,
            pass_first_ns: None,
            pass_last_ns: 0,
            pass_frames: 0,
            passes: 1,
            origin: None,
            pending: None,
            seq: 0,
            wall_base: OffsetDateTime::now_utc(),
            never: AtomicBool::new(false),
        }
    }

    /// Next frame of the file, restamped onto the continuous timeline; opens the next pass at
    /// the end when looping.
    fn pull(&mut self) -> Result<Option<Frame>, SourceError> {
        let mut reopened = false;
        let mut frame = loop {
            if let Some(f) = self.inner.next_frame()? {
                break f;
            }
            // An empty pass right after a reopen would loop forever: end there.
            if !self.settings.looped || reopened || self.pass_frames == 0 {
                return Ok(None);
            }
            self.next_pass()?;
            reopened = true;
        };
        let first = *self.pass_first_ns.get_or_insert(frame.pts_ns);
        self.pass_last_ns = frame.pts_ns;
        self.pass_frames += 1;
        let pts_ns = self.offset_ns.saturating_add(frame.pts_ns - first);
        frame.pts_ns = pts_ns;
        frame.seq = self.seq;
        frame.wall = self.wall_base + time::Duration::nanoseconds(pts_ns);
        self.seq += 1;
        Ok(Some(frame))
    }

    /// Opens the file again; its first frame follows the last one by the mean frame interval.
    fn next_pass(&mut self) -> Result<(), SourceError> {
        let first = self.pass_first_ns.unwrap_or(0);
        let span = self.pass_last_ns - first;
        let interval = if self.pass_frames > 1 {
            (span / (self.pass_frames as i64 - 1)).max(1)
        } else {
            SINGLE_FRAME_INTERVAL_NS
        };
        let c = self.inner.counters();
        self.done = add_counters(self.done, c);
        self.inner = (self.reopen)()?;
        self.offset_ns = self.offset_ns.saturating_add(span + interval);
        self.pass_first_ns = None;
        self.pass_frames = 0;
        self.passes += 1;
        tracing::debug!(
            pass = self.passes,
            offset_s = self.offset_ns as f64 * 1e-9,
            "replay loops to the start of the file"
        );
        Ok(())
    }

    /// When the frame at `pts_ns` (restamped: the replay starts at 0) is due on the clock; the
    /// first frame sets the origin, so it is due at once.
    fn due(&mut self, pts_ns: i64) -> Duration {
        let origin = *self.origin.get_or_insert_with(|| self.clock.now());
        origin + Duration::from_nanos(pts_ns.max(0) as u64)
    }
}

fn add_counters(a: SourceCounters, b: SourceCounters) -> SourceCounters {
    SourceCounters {
        samples_read: a.samples_read + b.samples_read,
        frames_decoded: a.frames_decoded + b.frames_decoded,
        decode_errors: a.decode_errors + b.decode_errors,
        pts_backwards_dropped: a.pts_backwards_dropped + b.pts_backwards_dropped,
        samples_without_picture: a.samples_without_picture + b.samples_without_picture,
        decode_time_ns: a.decode_time_ns + b.decode_time_ns,
        frames_superseded: a.frames_superseded + b.frames_superseded,
        pacing_wait_ns: a.pacing_wait_ns + b.pacing_wait_ns,
    }
}

impl Source for ReplaySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let mut frame = match self.pending.take() {
            Some(f) => f,
            None => match self.pull()? {
                Some(f) => f,
                None => return Ok(None),
            },
        };
        if !self.settings.realtime {
            return Ok(Some(frame));
        }
        loop {
            let due = self.due(frame.pts_ns);
            let now = self.clock.now();
            if now < due {
                let wait = due - now;
                self.clock.sleep_unless(wait, &self.never);
                self.pacing_wait_ns += wait.as_nanos() as u64;
                return Ok(Some(frame));
            }
            // Late: a camera would have captured the next frame already if it is due too.
            match self.pull()? {
                Some(next) if self.due(next.pts_ns) <= now => {
                    self.superseded += 1;
                    frame = next;
                }
                Some(next) => {
                    self.pending = Some(next);
                    return Ok(Some(frame));
                }
                None => return Ok(Some(frame)),
            }
        }
    }

    fn describe(&self) -> String {
        let mode = match (self.settings.realtime, self.settings.looped) {
            (true, true) => "real-time, looped",
            (true, false) => "real-time",
            (false, true) => "looped",
            (false, false) => "as fast as possible",
        };
        format!(
            "{} (replay: {mode}, pass {})",
            self.inner.describe(),
            self.passes
        )
    }

    fn counters(&self) -> SourceCounters {
        let mut c = add_counters(self.done, self.inner.counters());
        c.frames_superseded += self.superseded;
        c.pacing_wait_ns += self.pacing_wait_ns;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;
    use crate::frame::PixelFormat;

    /// A 2x2 frame at `t_s`.
    fn tiny_frame(seq: u64, t_s: f64) -> Frame {
        Frame {
            camera: "cam".into(),
            seq,
            pts_ns: (t_s * 1e9).round() as i64,
            wall: OffsetDateTime::UNIX_EPOCH,
            width: 2,
            height: 2,
            format: PixelFormat::Rgb8,
            data: vec![0u8; 12].into(),
        }
    }

    /// `n` frames at `fps`, timestamps from `start_ns`.
    struct Canned {
        frames: Vec<Frame>,
        at: usize,
    }

    impl Canned {
        fn new(n: u64, fps: f64, start_ns: i64) -> Self {
            let frames = (0..n)
                .map(|i| {
                    let mut f = tiny_frame(i, i as f64 / fps);
                    f.pts_ns += start_ns;
                    f
                })
                .collect();
            Canned { frames, at: 0 }
        }
    }

    impl Source for Canned {
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            let f = self.frames.get(self.at).cloned();
            self.at += 1;
            Ok(f)
        }
        fn describe(&self) -> String {
            "canned".into()
        }
        fn counters(&self) -> SourceCounters {
            SourceCounters {
                frames_decoded: self.at.min(self.frames.len()) as u64,
                ..SourceCounters::default()
            }
        }
    }

    fn replay(n: u64, fps: f64, settings: ReplaySettings) -> (ReplaySource, Arc<SimulatedClock>) {
        let clock = Arc::new(SimulatedClock::default());
        let reopen: Reopen = Box::new(move || Ok(Box::new(Canned::new(n, fps, 0))));
        let src = ReplaySource::new(
            Box::new(Canned::new(n, fps, 0)),
            reopen,
            settings,
            clock.clone(),
        );
        (src, clock)
    }

    const REALTIME: ReplaySettings = ReplaySettings {
        realtime: true,
        looped: false,
    };

    #[test]
    fn frames_are_never_released_before_their_timestamp() {
        let (mut src, clock) = replay(30, 30.0, REALTIME);
        clock.advance(Duration::from_secs(100));
        let mut released = Vec::new();
        while let Some(f) = src.next_frame().unwrap() {
            let since_start = clock.now() - Duration::from_secs(100);
            assert!(
                since_start.as_nanos() as i64 >= f.pts_ns,
                "frame {} at {} ns released at {since_start:?}",
                f.seq,
                f.pts_ns
            );
            released.push((f.seq, since_start));
        }
        // A punctual reader gets every frame, each exactly on time (the simulated clock only
        // moves when the source waits).
        assert_eq!(released.len(), 30);
        for (seq, at) in &released {
            let due = Duration::from_nanos((*seq as f64 / 30.0 * 1e9).round() as u64);
            assert_eq!(*at, due, "frame {seq}");
        }
        let c = src.counters();
        assert_eq!(c.frames_superseded, 0);
        assert_eq!(
            c.pacing_wait_ns,
            clock
                .sleeps()
                .iter()
                .map(|d| d.as_nanos() as u64)
                .sum::<u64>()
        );
        assert_eq!(clock.sleeps().len(), 29, "no wait for the first frame");
    }

    #[test]
    fn a_late_reader_gets_the_latest_due_frame_and_the_rest_are_counted() {
        let (mut src, clock) = replay(30, 30.0, REALTIME);
        assert_eq!(src.next_frame().unwrap().map(|f| f.seq), Some(0));
        // The reader was busy for 110 ms: frames 1..=3 (33, 67, 100 ms) are all due.
        clock.advance(Duration::from_millis(110));
        let f = src.next_frame().unwrap().expect("frame");
        assert_eq!(f.seq, 3, "the newest due frame");
        assert_eq!(src.counters().frames_superseded, 2);
        assert_eq!(
            clock.now(),
            Duration::from_millis(110),
            "a late frame does not wait"
        );
        // Back on schedule: frame 4 is released at 133 ms, not earlier.
        let f = src.next_frame().unwrap().expect("frame");
        assert_eq!(f.seq, 4);
        assert_eq!(clock.now().as_nanos() as i64, f.pts_ns);
        // A reader far behind the end of the file gets the last frame, then the end.
        clock.advance(Duration::from_secs(60));
        assert_eq!(src.next_frame().unwrap().map(|f| f.seq), Some(29));
        assert!(src.next_frame().unwrap().is_none());
        assert_eq!(src.counters().frames_superseded, 2 + 24);
    }

    #[test]
    fn a_loop_continues_timestamps_and_sequence_numbers_monotonically() {
        let settings = ReplaySettings {
            realtime: false,
            looped: true,
        };
        let (mut src, _) = replay(10, 25.0, settings);
        let frames: Vec<Frame> = (0..35)
            .map(|_| src.next_frame().unwrap().unwrap())
            .collect();
        for pair in frames.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
            let dt_ns = pair[1].pts_ns - pair[0].pts_ns;
            // 40 ms apart, across the seams too (mean interval of the pass).
            assert_eq!(dt_ns, 40_000_000, "{} -> {}", pair[0].seq, pair[1].seq);
            assert!(pair[1].wall > pair[0].wall);
        }
        assert_eq!(frames[34].pts_ns, 34 * 40_000_000);
        assert!(src.describe().contains("pass 4"), "{}", src.describe());
        assert_eq!(src.counters().frames_decoded, 35);
    }

    #[test]
    fn a_looped_realtime_replay_keeps_pace_across_the_seam() {
        let settings = ReplaySettings {
            realtime: true,
            looped: true,
        };
        let (mut src, clock) = replay(5, 10.0, settings);
        for k in 0..12 {
            let f = src.next_frame().unwrap().unwrap();
            assert_eq!(f.pts_ns, k * 100_000_000);
            assert_eq!(clock.now().as_nanos() as i64, f.pts_ns, "frame {k}");
        }
    }

    #[test]
    fn a_file_not_starting_at_zero_is_paced_from_its_first_frame() {
        let clock = Arc::new(SimulatedClock::default());
        let reopen: Reopen = Box::new(|| Ok(Box::new(Canned::new(3, 10.0, 5_000_000_000))));
        let mut src = ReplaySource::new(
            Box::new(Canned::new(3, 10.0, 5_000_000_000)),
            reopen,
            REALTIME,
            clock.clone(),
        );
        let pts: Vec<i64> = std::iter::from_fn(|| src.next_frame().unwrap())
            .map(|f| f.pts_ns)
            .collect();
        assert_eq!(pts, [0, 100_000_000, 200_000_000]);
        assert_eq!(clock.now(), Duration::from_millis(200));
    }

    #[test]
    fn an_empty_file_ends_a_loop_instead_of_spinning() {
        let settings = ReplaySettings {
            realtime: true,
            looped: true,
        };
        let (mut src, _) = replay(0, 30.0, settings);
        assert!(src.next_frame().unwrap().is_none());
    }
}
