//! Why the speed estimator alone (each vehicle's true boxes as one track, no tracker: the report's
//! `est-only` column) measures a vehicle or not, tallied per class (vehicles that do not queue)
//! and for queued vehicles, from the estimator's debug reasons.
//!
//! `cargo run --release -p speedcam-synth --example estimator_reasons -- [FAMILY [CASES
//! [CONDITION]]]` (default: hard, 100 cases, the family's first condition).

use speedcam_synth::accuracy::{
    case_camera_config, generate_case, oracle_passage, BenchConfig, Family,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The debug log, captured so each vehicle's reason can be read after its track ends.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("log lock poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn take(&self) -> String {
        self.0
            .lock()
            .map(|mut b| String::from_utf8_lossy(&std::mem::take(&mut *b)).into_owned())
            .unwrap_or_default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let family: Family = args.next().unwrap_or_else(|| "hard".into()).parse()?;
    let cases: u32 = args.next().map_or(Ok(100), |s| s.parse())?;
    let cfg = BenchConfig {
        cases,
        ..BenchConfig::for_family(family)
    };
    let condition = match args.next() {
        Some(name) => cfg
            .conditions
            .iter()
            .find(|c| c.name == name)
            .ok_or(format!("no condition {name:?}"))?,
        None => cfg.conditions.first().ok_or("no conditions")?,
    };
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("speedcam_core::speed=debug")
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .init();
    let mut tally: BTreeMap<(String, String), u32> = BTreeMap::new();
    for i in 0..cfg.cases {
        let case = generate_case(&cfg, condition, i)?;
        let cam = case_camera_config(&case, &family.speed_config())?;
        let mut est = speedcam_core::pipeline::camera::speed_estimator(&cam);
        for v in case.vehicles.iter().filter(|v| v.crossed_zone) {
            log.take();
            let m = oracle_passage(&mut est, &case, v);
            let reason = match m {
                Some(speedcam_core::speed::Passage::Measured(_)) => "measured".to_string(),
                Some(speedcam_core::speed::Passage::Unmeasured(u)) => {
                    format!("no speed: {}", u.reason.as_str())
                }
                None => log
                    .take()
                    .lines()
                    .filter_map(|l| l.split("no passage: ").nth(1))
                    .next_back()
                    .and_then(|r| r.split(" track_id").next())
                    .unwrap_or("fewer than min_samples box bottom-centres in the zone")
                    .to_string(),
            };
            let group = if v.queue.is_some() {
                "queued"
            } else {
                v.class.name()
            };
            *tally.entry((group.to_string(), reason)).or_default() += 1;
        }
    }
    println!(
        "estimator alone on the true boxes, family {}, {} cases, {}:",
        family.name(),
        cfg.cases,
        condition.name
    );
    for ((group, reason), n) in tally {
        println!("{group:7} {n:6}  {reason}");
    }
    Ok(())
}
