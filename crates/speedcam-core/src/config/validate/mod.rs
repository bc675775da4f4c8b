//! Validation: turns the parsed file ([`RawConfig`]) into a [`Config`], checking ranges and
//! how values fit together, and records *every* problem (key, line, what is allowed) instead of
//! stopping at the first. One file per section of speedcam.toml; this one holds the
//! [`Validator`], the checks the sections share and the top-level walk.

mod camera;
mod detector;
mod metrics;
mod mqtt;
mod storage;

use super::raw::RawConfig;
use super::{resolve_path, valid_topic_id, Config, Problem, DEFAULT_BOX_BOTTOM_SD_PX};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Collects problems while building the validated config.
pub(super) struct Validator<'a> {
    text: &'a str,
    /// The problems found so far, in the order the file is walked.
    pub(super) problems: Vec<Problem>,
    /// `detector.box_bottom_sd_px`, copied into every camera's speed settings.
    box_bottom_sd_px: f64,
}

impl<'a> Validator<'a> {
    /// A validator for the config text `text`, which the values' spans index into.
    pub(super) fn new(text: &'a str) -> Self {
        Validator {
            text,
            problems: Vec::new(),
            box_bottom_sd_px: DEFAULT_BOX_BOTTOM_SD_PX,
        }
    }
}

impl Validator<'_> {
    /// 1-based line where `span` starts; 0 for the empty span of a missing key.
    fn line(&self, span: Range<usize>) -> usize {
        if span.end == 0 {
            return 0;
        }
        let start = span.start.min(self.text.len());
        self.text[..start].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// Records a problem with `key` at `span`.
    fn problem(&mut self, key: impl Into<String>, span: Range<usize>, message: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    /// One of `allowed` (or `default` when absent); anything else is a problem at its span that
    /// names every allowed value.
    fn one_of(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        default: &str,
        allowed: &[&str],
    ) -> String {
        let v = value
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| default.into());
        if !allowed.contains(&v.as_str()) {
            let span = value.as_ref().map(|s| s.span()).unwrap_or(0..0);
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            self.problem(
                key,
                span,
                format!("{v:?} is not supported: allowed {}", list.join(", ")),
            );
        }
        v
    }

    /// A float in `lo..=hi` (or the default when absent).
    fn float(
        &mut self,
        key: &str,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> f64 {
        // NaN is outside every range; infinities are caught by the bounds.
        self.ranged(key, v, default, lo, hi)
    }

    /// An integer in `lo..=hi` (or the default when absent).
    fn int(&mut self, key: &str, v: &Option<Spanned<i64>>, default: i64, lo: i64, hi: i64) -> i64 {
        self.ranged(key, v, default, lo, hi)
    }

    /// A value in `lo..=hi` (or the default when absent); out of range is a problem at its span.
    fn ranged<T>(&mut self, key: &str, v: &Option<Spanned<T>>, default: T, lo: T, hi: T) -> T
    where
        T: PartialOrd + Copy + std::fmt::Display,
    {
        match v {
            None => default,
            Some(s) => {
                let x = *s.get_ref();
                if (lo..=hi).contains(&x) {
                    x
                } else {
                    self.problem(
                        key,
                        s.span(),
                        format!("{x} is out of range: allowed {lo} to {hi}"),
                    );
                    default
                }
            }
        }
    }

    /// The whole file, section by section in a fixed order (the order of the problems);
    /// `base` is the config's directory, which relative paths are resolved against.
    pub(super) fn config(&mut self, raw: RawConfig, path: &Path, base: &Path) -> Option<Config> {
        let device_id = raw.device_id.get_ref().clone();
        if !valid_topic_id(&device_id) {
            self.problem(
                "device_id",
                raw.device_id.span(),
                format!("{device_id:?} is not allowed: use 1-64 letters, digits, '-' or '_' (it becomes an MQTT topic level)"),
            );
        }
        let data_dir = resolve_path(base, raw.data_dir.get_ref());
        let log_level = raw.log_level.as_ref().map(|s| s.get_ref().clone());
        if let Some(l) = &raw.log_level {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                self.problem("log_level", l.span(), format!("{:?} is not a log filter: use error, warn, info, debug, trace or a RUST_LOG-style filter such as \"speedcam=debug\"", l.get_ref()));
            }
        }
        let (detector, high) = self.detector(&raw.detector, base);
        let tracker = self.tracker(&raw.tracker, high as f32, detector.score_threshold);
        let mqtt = raw.mqtt.as_ref().map(|m| self.mqtt(m, &device_id, base));
        let metrics = self.metrics(raw.metrics.as_ref());
        let storage = self.storage(raw.storage.as_ref());
        let cameras = self.cameras(&raw.cameras, base);
        Some(Config {
            path: path.to_path_buf(),
            device_id,
            data_dir,
            log_level,
            detector,
            tracker,
            mqtt,
            metrics,
            storage,
            cameras,
        })
    }
}
