//! The benchmark's command line, shared by `speedcam-synth accuracy` (no daemon build needed) and
//! `cargo bench --bench accuracy` (the root package): options, the run, the printed report.

use super::{
    evaluate_case, format_group_table, format_table, generate_case, summarize, summarize_groups,
    write_case, BenchConfig, BenchError, CaseEval, Family,
};
use speedcam_core::speed::SpeedConfig;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Options, as `--help` prints them.
pub const USAGE: &str = "\
options (all optional):
  --family standard|hard|heldout   which cases (default standard; heldout: never tune on it)
  --cases N                        cameras per condition (family default 300)
  --seed S                         master seed (family default)
  --vehicles N                     vehicles per case (family default)
  --condition NAME                 only this condition (repeatable; default all)
  --case I                         only case I of each condition
  --box-noise-px P                 box edge noise, px (hard families: its floor)
  --box-noise-rel R                hard families: edge noise as a share of the box height
  --miss-rate R                    share of detections missed
  --calibration-noise-px P         calibration point noise, px
  --fit-margin-share S             the estimator's SpeedConfig::fit_margin_share
  --per-vehicle                    also print one line per crossing vehicle
  --jobs N                         cases evaluated in parallel (default 1)
  --out DIR                        also write every case's det.txt, timestamps.txt, truth.json
                                   and camera.toml under DIR/case-NNN/<condition>/";

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// The cases.
    pub cfg: BenchConfig,
    /// The estimator's settings.
    pub speed: SpeedConfig,
    /// Where to write the cases, if anywhere.
    pub out: Option<PathBuf>,
    /// Conditions to run (empty: all).
    pub conditions: Vec<String>,
    /// Only this case index.
    pub case: Option<u32>,
    /// Print one line per crossing vehicle.
    pub per_vehicle: bool,
    /// Threads.
    pub jobs: usize,
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag} {v:?}: not a valid value"))
}

/// Parses the options (without the program name); `--bench`, which `cargo bench` adds, is
/// ignored. The family's defaults come first, whatever the order of the options.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<BenchArgs, String> {
    let mut family = Family::Standard;
    let mut overrides: Vec<(String, Option<String>)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--per-vehicle" => overrides.push((a, None)),
            "--family" => family = value(&a, args.next())?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--cases"
            | "--seed"
            | "--vehicles"
            | "--condition"
            | "--case"
            | "--box-noise-px"
            | "--box-noise-rel"
            | "--miss-rate"
            | "--calibration-noise-px"
            | "--fit-margin-share"
            | "--jobs"
            | "--out" => {
                let v = args.next();
                overrides.push((a, v));
            }
            _ => return Err(format!("unknown option {a:?}\n{USAGE}")),
        }
    }
    let mut b = BenchArgs {
        cfg: BenchConfig::for_family(family),
        // The standard family's vehicles are flat billboards (the box bottom is the contact);
        // the others are 3-D, as the daemon's default assumes.
        speed: family.speed_config(),
        out: None,
        conditions: Vec::new(),
        case: None,
        per_vehicle: false,
        jobs: 1,
    };
    for (flag, v) in overrides {
        let f = flag.as_str();
        match f {
            "--per-vehicle" => b.per_vehicle = true,
            "--cases" => b.cfg.cases = value(f, v)?,
            "--seed" => b.cfg.seed = value(f, v)?,
            "--vehicles" => b.cfg.vehicles_per_case = value(f, v)?,
            "--condition" => b.conditions.push(value(f, v)?),
            "--case" => b.case = Some(value(f, v)?),
            "--box-noise-px" => b.cfg.noise.box_sigma_px = value(f, v)?,
            "--box-noise-rel" => b.cfg.noise.box_rel_sigma = value(f, v)?,
            "--miss-rate" => b.cfg.noise.miss_rate = value(f, v)?,
            "--calibration-noise-px" => b.cfg.noise.calibration_sigma_px = value(f, v)?,
            "--fit-margin-share" => b.speed.fit_margin_share = value(f, v)?,
            "--jobs" => b.jobs = value::<usize>(f, v)?.max(1),
            "--out" => b.out = Some(value::<String>(f, v)?.into()),
            _ => return Err(format!("unknown option {f:?}")),
        }
    }
    if let Some(bad) = b
        .conditions
        .iter()
        .find(|c| !b.cfg.conditions.iter().any(|k| &k.name == *c))
    {
        let names: Vec<&str> = b.cfg.conditions.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "no condition {bad:?} in family {}: give one of {names:?}",
            b.cfg.family.name()
        ));
    }
    Ok(b)
}

/// Generates and evaluates the cases of one condition (case indices `cases`) on `jobs` threads,
/// in index order.
fn run_condition(
    args: &BenchArgs,
    condition: &super::Condition,
    cases: &[u32],
) -> Result<Vec<CaseEval>, BenchError> {
    let jobs = args.jobs.clamp(1, cases.len().max(1));
    let one = |i: u32| -> Result<CaseEval, BenchError> {
        let case = generate_case(&args.cfg, condition, i)?;
        if let Some(dir) = &args.out {
            write_case(&case, &dir.join(&case.name))?;
        }
        evaluate_case(&case, &args.speed)
    };
    let mut slots: Vec<Option<Result<CaseEval, BenchError>>> = Vec::new();
    slots.resize_with(cases.len(), || None);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|k| {
                let one = &one;
                s.spawn(move || {
                    (k..cases.len())
                        .step_by(jobs)
                        .map(|j| (j, one(cases[j])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking worker is a bug in the generator: let it surface.
            let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (j, r) in done {
                slots[j] = Some(r);
            }
        }
    });
    slots.into_iter().flatten().collect()
}

/// Runs the benchmark and returns the report: a header, the per-condition table, the
/// per-class table and (with `per_vehicle`) one line per crossing vehicle.
pub fn run(args: &BenchArgs) -> Result<String, BenchError> {
    let start = Instant::now();
    let cfg = &args.cfg;
    let cases: Vec<u32> = match args.case {
        Some(i) => vec![i],
        None => (0..cfg.cases).collect(),
    };
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    let mut vehicles = String::new();
    for condition in cfg
        .conditions
        .iter()
        .filter(|c| args.conditions.is_empty() || args.conditions.contains(&c.name))
    {
        let evals = run_condition(args, condition, &cases)?;
        rows.push(summarize(&condition.name, &evals));
        groups.extend(summarize_groups(&condition.name, &evals));
        if args.per_vehicle {
            for e in &evals {
                for v in &e.outcomes {
                    let err = |kmh: f64| format!("{kmh:.2} ({:+.2})", kmh - v.zone_speed_kmh);
                    let _ = writeln!(
                        vehicles,
                        "{} v{} {} {} a {:+.2} m/s^2 truth {:.2} km/h stopped {:.1} s: {} verdicts \
                         ({} with speed), measured {}, est-only {}",
                        e.name,
                        v.id,
                        v.class.name(),
                        v.profile.map_or("-", |p| p.name()),
                        v.accel_mps2,
                        v.zone_speed_kmh,
                        v.stopped_s,
                        v.verdicts,
                        v.verdicts_with_speed,
                        v.measured.as_ref().map_or("-".into(), |m| err(m.speed_kmh)),
                        v.est_only_kmh.map_or("-".into(), |(kmh, _)| err(kmh)),
                    );
                }
            }
        }
    }
    let noise = &cfg.noise;
    let box_noise = if cfg.family == Family::Standard {
        format!("{} px", noise.box_sigma_px)
    } else {
        format!(
            "max({} px, {}% of the box height)",
            noise.box_sigma_px,
            100.0 * noise.box_rel_sigma
        )
    };
    let mut out = format!(
        "speed accuracy, family {}: {} cameras x {} vehicles per condition, seed {}, box noise {}, \
         {:.0}% misses, calibration noise {} px\n",
        cfg.family.name(),
        cases.len(),
        cfg.vehicles_per_case,
        cfg.seed,
        box_noise,
        100.0 * noise.miss_rate,
        noise.calibration_sigma_px
    );
    out.push_str(&format_table(&rows));
    out.push('\n');
    out.push_str(&format_group_table(&groups));
    if args.per_vehicle {
        out.push('\n');
        out.push_str(&vehicles);
    }
    let _ = writeln!(out, "({:.1} s)", start.elapsed().as_secs_f64());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn family_defaults_come_first_and_options_override_them() {
        let a = parse(&["--cases", "3", "--family", "hard", "--bench", "--seed", "5"])
            .expect("valid options");
        assert_eq!(a.cfg.family, Family::Hard);
        assert_eq!((a.cfg.cases, a.cfg.seed), (3, 5));
        assert_eq!(a.cfg.noise, super::super::hard::hard_noise());
        assert_eq!(parse(&[]).expect("no options").cfg, BenchConfig::default());
        assert!(parse(&["--family", "easy"]).is_err());
        assert!(parse(&["--cases"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        let e = parse(&["--family", "heldout", "--condition", "every-frame"]).expect_err("name");
        assert!(e.contains("every-frame@30fps"), "{e}");
    }

    #[test]
    fn one_case_runs_and_reports_every_group() {
        let a = parse(&[
            "--family",
            "hard",
            "--case",
            "2",
            "--condition",
            "every-3rd+jitter5ms@30fps",
            "--per-vehicle",
            "--jobs",
            "2",
        ])
        .expect("valid options");
        let report = run(&a).expect("runs");
        for group in ["all", "car", "van", "truck", "bus", "queued", "braking"] {
            assert!(
                report
                    .lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(group)),
                "{report}"
            );
        }
        assert!(
            report.contains("case-002/every-3rd+jitter5ms@30fps v1 "),
            "{report}"
        );
    }
}
