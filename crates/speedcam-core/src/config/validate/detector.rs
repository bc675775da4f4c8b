//! `[detector]` and `[tracker]`: the model, its backend (with `[detector.onnxruntime]`),
//! score thresholds and classes, and the tracker, which takes the detector's two thresholds.

use super::Validator;
use crate::config::raw::{RawDetector, RawOnnxRuntime, RawTracker};
use crate::config::{resolve_path, DEFAULT_BOX_BOTTOM_SD_PX, DEFAULT_CLASSES};
use crate::detect::onnxruntime::{OrtProvider, OrtSettings, TrtPrecision};
use crate::detect::{BoxCorrectionSetting, DetectorConfig, FAMILIES};
use crate::track::TrackerConfig;
use std::path::Path;
use toml::Spanned;

impl Validator<'_> {
    /// `[detector]`, and its high score threshold for the tracker (the returned config's
    /// `score_threshold` is the low one, `low_score_threshold`: the candidates' cut).
    pub(super) fn detector(&mut self, d: &RawDetector, base: &Path) -> (DetectorConfig, f64) {
        let family = self.one_of("detector.family", &d.family, "nanodet", &FAMILIES);
        let backend = self.backend(&d.backend);
        let onnxruntime = self.onnxruntime(d.onnxruntime.as_ref(), base);
        let (high, low) = self.score_thresholds(d);
        let nms_iou = self.float("detector.nms_iou", &d.nms_iou, 0.6, 0.05, 0.95);
        self.box_bottom_sd_px = self.float(
            "detector.box_bottom_sd_px",
            &d.box_bottom_sd_px,
            DEFAULT_BOX_BOTTOM_SD_PX,
            0.0,
            50.0,
        );
        let class_names = self.class_names(d);
        let classes = self.classes(d, &family, &class_names);
        let input_size = self.input_size(d);
        let model = resolve_path(base, d.model.get_ref());
        if !model.is_file() {
            self.problem("detector.model", d.model.span(), format!("file {} not found: give a path to an ONNX model, absolute or relative to the config file", model.display()));
        }
        let box_correction = self.box_correction(d, base);
        let detector = DetectorConfig {
            box_correction,
            model,
            family,
            backend,
            score_threshold: low as f32,
            nms_iou: nms_iou as f32,
            classes,
            class_names,
            input_size,
            onnxruntime,
        };
        (detector, high)
    }

    /// `detector.box_correction`: "auto" (default: the model's `<model>.contact.toml` when it
    /// exists), "off", or the path of a correction file, which must exist.
    fn box_correction(&mut self, d: &RawDetector, base: &Path) -> BoxCorrectionSetting {
        let Some(v) = &d.box_correction else {
            return BoxCorrectionSetting::Auto;
        };
        match v.get_ref().as_str() {
            "auto" => BoxCorrectionSetting::Auto,
            "off" => BoxCorrectionSetting::Off,
            "" => {
                self.problem(
                    "detector.box_correction",
                    v.span(),
                    "empty: give \"auto\", \"off\" or the path of a box correction file (<model>.contact.toml)",
                );
                BoxCorrectionSetting::Auto
            }
            other => {
                let path = resolve_path(base, other);
                if !path.is_file() {
                    self.problem(
                        "detector.box_correction",
                        v.span(),
                        format!(
                            "file {} not found: give \"auto\", \"off\" or the path of a box correction file (<model>.contact.toml), absolute or relative to the config file",
                            path.display()
                        ),
                    );
                }
                BoxCorrectionSetting::Path(path)
            }
        }
    }

    /// `score_threshold` (high) and `low_score_threshold` (low), which must not exceed it.
    fn score_thresholds(&mut self, d: &RawDetector) -> (f64, f64) {
        let high = self.float(
            "detector.score_threshold",
            &d.score_threshold,
            0.35,
            0.01,
            1.0,
        );
        let low = self.float(
            "detector.low_score_threshold",
            &d.low_score_threshold,
            0.1,
            0.01,
            1.0,
        );
        if low > high {
            let span = d
                .low_score_threshold
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(0..0);
            self.problem(
                "detector.low_score_threshold",
                span,
                format!(
                    "{low} is above detector.score_threshold ({high}): it must be lower or equal"
                ),
            );
        }
        (high, low)
    }

    /// `detector.class_names`: the model's labels in class id order, non-empty and distinct.
    fn class_names(&mut self, d: &RawDetector) -> Option<Vec<String>> {
        d.class_names.as_ref().map(|n| {
            let names = n.get_ref();
            if names.is_empty() {
                self.problem(
                    "detector.class_names",
                    n.span(),
                    "empty: list the model's labels in class id order, e.g. [\"car\", \"truck\"], or leave it out",
                );
            }
            for (i, name) in names.iter().enumerate() {
                if name.trim().is_empty() {
                    self.problem(
                        "detector.class_names",
                        n.span(),
                        format!("label {i} is empty: every class needs a name"),
                    );
                } else if names[..i].contains(name) {
                    self.problem(
                        "detector.class_names",
                        n.span(),
                        format!("{name:?} is listed twice: labels must be distinct"),
                    );
                }
            }
            names.clone()
        })
    }

    /// `detector.classes` (default [`DEFAULT_CLASSES`]): each must be a label of the model,
    /// where the labels are known before the model is read.
    fn classes(
        &mut self,
        d: &RawDetector,
        family: &str,
        class_names: &Option<Vec<String>>,
    ) -> Vec<String> {
        match &d.classes {
            None => DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect(),
            Some(c) => {
                for name in c.get_ref() {
                    // Labels known before the model is read: detector.class_names, or COCO-80
                    // for NanoDet (its head is fixed at COCO-80). Other families may carry their
                    // own names in the model file, so their classes are checked at model load.
                    if let Some(names) = class_names {
                        if !names.contains(name) {
                            self.problem("detector.classes", c.span(), format!("unknown class {name:?}: allowed are the labels in detector.class_names: {}", names.join(", ")));
                        }
                    } else if family == "nanodet"
                        && !crate::detect::COCO_CLASSES.contains(&name.as_str())
                    {
                        self.problem("detector.classes", c.span(), format!("unknown class {name:?}: allowed are the model's COCO class names, e.g. \"car\", \"motorcycle\", \"bus\", \"truck\""));
                    }
                }
                if c.get_ref().is_empty() {
                    self.problem(
                        "detector.classes",
                        c.span(),
                        "empty: list at least one class, e.g. [\"car\", \"truck\"]",
                    );
                }
                c.get_ref().clone()
            }
        }
    }

    /// `detector.input_size`: a multiple of 32 in 32..=2048 (None: the size fixed in the model).
    fn input_size(&mut self, d: &RawDetector) -> Option<u32> {
        let input_size = d
            .input_size
            .as_ref()
            .map(|_| self.int("detector.input_size", &d.input_size, 416, 32, 2048) as u32);
        if let (Some(s), Some(sp)) = (input_size, &d.input_size) {
            if s % 32 != 0 {
                self.problem(
                    "detector.input_size",
                    sp.span(),
                    format!("{s} is not a multiple of 32 (the model's largest stride)"),
                );
            }
        }
        input_size
    }

    /// `[tracker]`: matching and track life settings; `high` and `low` are the detector's
    /// score thresholds.
    pub(super) fn tracker(&mut self, t: &RawTracker, high: f32, low: f32) -> TrackerConfig {
        TrackerConfig {
            high_score: high,
            low_score: low,
            match_iou: self.float(
                "tracker.match_iou",
                &t.match_iou,
                TrackerConfig::default().match_iou as f64,
                0.01,
                0.99,
            ) as f32,
            min_hits: self.int(
                "tracker.min_hits",
                &t.min_hits,
                TrackerConfig::default().min_hits as i64,
                1,
                100,
            ) as u32,
            max_age_s: self.float(
                "tracker.max_age_s",
                &t.max_age_s,
                TrackerConfig::default().max_age_s,
                0.05,
                60.0,
            ),
            stationary_max_age_s: self.float(
                "tracker.stationary_max_age_s",
                &t.stationary_max_age_s,
                TrackerConfig::default().stationary_max_age_s,
                0.05,
                600.0,
            ),
            duplicate_overlap: self.float(
                "tracker.duplicate_overlap",
                &t.duplicate_overlap,
                TrackerConfig::default().duplicate_overlap as f64,
                0.0,
                1.0,
            ) as f32,
            tentative_buffer: self.float(
                "tracker.tentative_buffer",
                &t.tentative_buffer,
                TrackerConfig::default().tentative_buffer as f64,
                0.0,
                2.0,
            ) as f32,
            class_merge_iou: self.float(
                "tracker.class_merge_iou",
                &t.class_merge_iou,
                TrackerConfig::default().class_merge_iou as f64,
                0.3,
                1.01,
            ) as f32,
            ..TrackerConfig::default()
        }
    }

    /// `detector.backend`: "tract" (default) or "onnxruntime" (with its cargo feature).
    fn backend(&mut self, value: &Option<Spanned<String>>) -> String {
        let Some(v) = value else {
            return "tract".into();
        };
        let name = v.get_ref().clone();
        match name.as_str() {
            "tract" => {}
            "onnxruntime" if cfg!(feature = "onnxruntime") => {}
            "onnxruntime" => self.problem(
                "detector.backend",
                v.span(),
                "\"onnxruntime\" is not in this build: rebuild with `cargo build --release --features onnxruntime`, or use \"tract\"",
            ),
            other => self.problem(
                "detector.backend",
                v.span(),
                format!("{other:?} is not a backend: allowed \"tract\" (pure-Rust CPU) or \"onnxruntime\" (TensorRT / CUDA / CPU; cargo feature `onnxruntime`)"),
            ),
        }
        name
    }

    /// `[detector.onnxruntime]`; absent keys take [`OrtSettings::default`].
    fn onnxruntime(&mut self, raw: Option<&RawOnnxRuntime>, base: &Path) -> OrtSettings {
        let defaults = OrtSettings::default();
        let Some(r) = raw else {
            return defaults;
        };
        let providers = self.ort_providers(&r.providers, &defaults.providers);
        let precision = match &r.precision {
            None => defaults.precision,
            Some(p) => TrtPrecision::parse(p.get_ref()).unwrap_or_else(|| {
                self.problem(
                    "detector.onnxruntime.precision",
                    p.span(),
                    format!(
                        "{:?} is not a precision: allowed \"fp16\", \"int8\", \"fp32\"",
                        p.get_ref()
                    ),
                );
                defaults.precision
            }),
        };
        let int8_calibration_table = r.int8_calibration_table.as_ref().map(|t| {
            let path = resolve_path(base, t.get_ref());
            if !path.is_file() {
                self.problem(
                    "detector.onnxruntime.int8_calibration_table",
                    t.span(),
                    format!("file {} not found: give the calibration table made by models/make_int8.py (calibration.flatbuffers) or a TensorRT calibration cache", path.display()),
                );
            }
            if precision != TrtPrecision::Int8 {
                self.problem(
                    "detector.onnxruntime.int8_calibration_table",
                    t.span(),
                    format!("only used with precision = \"int8\" (precision is {:?}): set precision = \"int8\" or remove the table", precision.name()),
                );
            }
            path
        });
        let cache_dir = r
            .cache_dir
            .as_ref()
            .map(|c| resolve_path(base, c.get_ref()));
        let library = r.library.as_ref().map(|l| {
            let path = resolve_path(base, l.get_ref());
            if !path.is_file() {
                self.problem(
                    "detector.onnxruntime.library",
                    l.span(),
                    format!(
                        "file {} not found: {}",
                        path.display(),
                        crate::detect::onnxruntime::install_hint(std::env::consts::ARCH)
                    ),
                );
            }
            path
        });
        let intra_threads = r.intra_threads.as_ref().map(|_| {
            self.int(
                "detector.onnxruntime.intra_threads",
                &r.intra_threads,
                1,
                1,
                256,
            ) as usize
        });
        let warmup_runs = self.int(
            "detector.onnxruntime.warmup_runs",
            &r.warmup_runs,
            defaults.warmup_runs as i64,
            0,
            100,
        ) as u32;
        let device_id = self.int("detector.onnxruntime.device_id", &r.device_id, 0, 0, 63) as i32;
        OrtSettings {
            providers,
            precision,
            int8_calibration_table,
            cache_dir,
            library,
            intra_threads,
            warmup_runs,
            device_id,
        }
    }

    /// `detector.onnxruntime.providers`: known and distinct, tried in the order listed.
    fn ort_providers(
        &mut self,
        list: &Option<Spanned<Vec<Spanned<String>>>>,
        defaults: &[OrtProvider],
    ) -> Vec<OrtProvider> {
        let Some(list) = list else {
            return defaults.to_vec();
        };
        let mut providers = Vec::new();
        for p in list.get_ref() {
            match OrtProvider::parse(p.get_ref()) {
                Some(parsed) if providers.contains(&parsed) => self.problem(
                    "detector.onnxruntime.providers",
                    p.span(),
                    format!("{:?} is listed twice: list each provider once, in the order to try", p.get_ref()),
                ),
                Some(parsed) => providers.push(parsed),
                None => self.problem(
                    "detector.onnxruntime.providers",
                    p.span(),
                    format!("{:?} is not a provider: allowed \"tensorrt\", \"cuda\", \"cpu\" (tried in the order listed)", p.get_ref()),
                ),
            }
        }
        if list.get_ref().is_empty() {
            self.problem(
                "detector.onnxruntime.providers",
                list.span(),
                "empty: list the providers to try in order, e.g. [\"tensorrt\", \"cuda\", \"cpu\"]",
            );
        }
        providers
    }
}
