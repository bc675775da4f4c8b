//! `speedcamd replay`: one video through one camera's pipeline, every verdict stored (and
//! published when `[mqtt]` is configured), then a bounded wait for the outbox to drain.

use super::SYSTEM_CONFIG;
use crate::config::{CameraConfig, Config};
use crate::service::{
    camera_loop, open_detector, open_store, pick_camera, run_source, start_sink, LoopEnd, LoopEnv,
    LoopOptions, RunSummary, SharedDetector, Verdict,
};
use crate::source::{DefaultOpener, Opener};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// `replay` logs under the target it had in `service`, so log filters and the journal's TARGET
/// field stay the same.
const LOG_TARGET: &str = "speedcam::service";

/// Process a video file as fast as possible (or in real time with --realtime) and exit when
/// it is done and the outbox is drained.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video (H.264 MP4; B-frames, H.265, MKV, TS with --features ffmpeg); overrides the camera's configured source.
    pub video: PathBuf,
    /// Config file.
    #[arg(long, default_value = SYSTEM_CONFIG)]
    pub config: PathBuf,
    /// Camera whose calibration and zone apply (default: the first).
    #[arg(long)]
    pub camera: Option<String>,
    /// Print one JSON object per line per measurement / speeding event on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait at the end for the MQTT outbox to drain.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Play the video at its own pace, like a live camera: frames are released at their
    /// timestamps and the detector takes the newest (frames it cannot keep up with are dropped).
    #[arg(long)]
    pub realtime: bool,
}

/// Replays the video, prints each verdict on stdout and the summary on stderr; the exit status
/// says whether everything was stored (else 1) and sent (else 3).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load(&args.config)?;
    check_video(&args.video)?;
    let opts = ReplayOptions {
        camera: args.camera,
        video: Some(args.video),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout.max(0.0)),
        realtime: args.realtime,
    };
    let mut out = std::io::stdout().lock();
    let sum = replay(&cfg, &opts, &mut |v: &Verdict| {
        super::print_event(&mut out, &v.event, args.json);
    })?;
    eprint!("{}", super::summary_text(&sum));
    Ok(super::exit_for(&sum))
}

/// Options of `replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Camera whose calibration and zone apply (default: the first).
    pub camera: Option<String>,
    /// The video; None uses the camera's configured source.
    pub video: Option<PathBuf>,
    /// How long to wait at the end for the outbox to drain.
    pub drain_timeout: Duration,
    /// Release frames at their timestamps like a live camera (latest frame wins) instead of as
    /// fast as possible (`replay --realtime`).
    pub realtime: bool,
}

/// Replays a video through one camera's pipeline as fast as possible, stores every verdict,
/// publishes over MQTT when configured and waits (bounded) for the outbox to drain.
pub fn replay(
    cfg: &Config,
    opts: &ReplayOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    pick_camera(cfg, opts.camera.as_deref())?;
    let detector = open_detector(cfg)?;
    replay_with(cfg, opts, &detector, on_verdict)
}

/// [`replay`] with a detector the caller opened, so a run over many videos (the rendered-video
/// accuracy benchmark, `examples/video_accuracy`) loads the model once. `cfg.detector` is not
/// read: `detector` is what runs.
pub fn replay_with(
    cfg: &Config,
    opts: &ReplayOptions,
    detector: &SharedDetector,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> anyhow::Result<RunSummary> {
    let cam = pick_camera(cfg, opts.camera.as_deref())?;
    let span = tracing::info_span!(target: LOG_TARGET, "camera", camera = %cam.id);
    let _entered = span.enter();
    let uri = match &opts.video {
        Some(v) => v.display().to_string(),
        None => cam.source.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = open_store(cfg)?;
    let paced = crate::source::replay::ReplaySettings {
        realtime: opts.realtime,
        looped: false,
    };
    let source = DefaultOpener::for_camera(cam)
        .with_replay(paced)
        .open(&uri, cam.id.as_str().into())
        .with_context(|| format!("opening video {uri} for camera {}", cam.id))?;
    let mut sink = start_sink(cfg, &store, rt.handle())?;
    let stop = AtomicBool::new(false);
    // The file actually replayed is the recording its events come from.
    let cam = &CameraConfig {
        source: uri.clone(),
        ..cam.clone()
    };
    let env = LoopEnv {
        cam,
        cfg,
        detector,
        sink: &sink,
        stop: &stop,
        clock: &crate::clock::RealClock::default(),
        // Real time: latest frame wins, as a live camera; else every frame, no stall limit.
        opts: LoopOptions::for_source(opts.realtime, cam.reconnect.stall_timeout),
    };
    let mut sum = if opts.realtime {
        let (sum, end) = run_source(&env, source, on_verdict);
        match end {
            LoopEnd::EndOfStream | LoopEnd::Stopped => sum,
            LoopEnd::Stalled { after_s } => bail!("replay stalled: no frame for {after_s:.1} s"),
            LoopEnd::Failed(e) => return Err(e.into()),
        }
    } else {
        camera_loop(&env, source, on_verdict)?
    };
    sum.drained = match sink.take_publisher() {
        Some(p) => {
            let start = Instant::now();
            let drained = p.shutdown_blocking(opts.drain_timeout);
            tracing::info!(
                target: LOG_TARGET,
                drained,
                outbox = store.outbox_len(),
                "publisher stopped after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            drained
        }
        None => true,
    };
    store.flush().context("flushing the store")?;
    Ok(sum)
}

/// Checks that a video path exists before handing it to the source (a clearer error).
pub fn check_video(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "video {} not found: pass an existing MP4 file",
            path.display()
        );
    }
    Ok(())
}
