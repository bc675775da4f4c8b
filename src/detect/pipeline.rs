//! [`ModelDetector`]: any [`Engine`] plus any [`Family`], as the [`Detector`] the pipeline runs.
//!
//! The detector letterboxes the frame as the family's [`PreprocessSpec`] says, runs the engine,
//! decodes the outputs with the family's decoder, suppresses duplicates (unless the model already
//! did), and maps boxes back to frame pixels. Everything that can be checked before the first
//! frame (input size, output layout, labels, wanted classes) is checked in [`ModelDetector::new`],
//! so a wrong model fails at start-up with a message, not on every frame.
//!
//! [`PreprocessSpec`]: super::engine::PreprocessSpec

use std::time::Instant;

use super::box_correction::BoxCorrection;
use super::engine::{Engine, ModelInfo, OutputTensor};
use super::family::Family;
use super::labels;
#[cfg(test)]
use super::labels::LabelSource;
use super::letterbox::{LetterboxMap, Letterboxer};
use super::nms::nms_per_class;
use super::{BBox, DetectError, DetectTimings, Detection, Detector, DetectorConfig};

/// A detector made of an inference engine and a model family.
pub struct ModelDetector {
    engine: Box<dyn Engine>,
    family: Family,
    letterbox: Letterboxer,
    /// Input tensor buffer, reused between frames.
    input: Vec<f32>,
    labels: Vec<&'static str>,
    #[cfg(test)]
    label_source: LabelSource,
    wanted: Vec<u16>,
    score_threshold: f32,
    nms_iou: f32,
    model_id: String,
    /// Per-class box-edge correction learnt for this model, applied after NMS in frame px.
    correction: Option<BoxCorrection>,
    /// GPU letterboxing into device memory, handed to the engine without a host copy
    /// (`cuda` feature, GPU execution providers only).
    #[cfg(feature = "cuda")]
    gpu: Option<super::gpu::GpuPreprocessor>,
}

impl std::fmt::Debug for ModelDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDetector")
            .field("model_id", &self.model_id)
            .field("family", &self.family)
            .field("provider", &self.engine.provider())
            .field("input_size", &self.letterbox.input_size())
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

/// The square input side in px: fixed in the model's input shape, else the model's `imgsz`
/// metadata (Ultralytics), else `configured` (`detector.input_size`, a multiple of 32).
///
/// The error says what to set. Backends that must fix the size before building a plan (tract)
/// call this on the declared [`ModelInfo`] too, so both agree.
pub fn input_size_px(info: &ModelInfo, configured: Option<u32>) -> Result<u32, String> {
    let dims = &info.input_shape;
    if !dims.is_empty() && dims.len() != 4 {
        return Err(format!(
            "input {:?} has rank {}, expected [1, 3, S, S]",
            info.input_name,
            dims.len()
        ));
    }
    let dim = |i: usize| dims.get(i).copied().flatten();
    if let Some(c) = dim(1).filter(|&c| c != 3) {
        return Err(format!(
            "input {:?} has {c} channels, expected [1, 3, S, S]",
            info.input_name
        ));
    }
    match (dim(2), dim(3)) {
        (Some(h), Some(w)) if h == w && h > 0 => {
            let h = u32::try_from(h).map_err(|_| format!("input side {h} is too large"))?;
            if let Some(c) = configured.filter(|&c| c != h) {
                tracing::warn!(
                    model = h,
                    configured = c,
                    "detector input_size ignored: the model fixes its input size"
                );
            }
            return Ok(h);
        }
        (Some(h), Some(w)) => {
            return Err(format!(
                "input is {w}x{h}, expected a square [1, 3, S, S] input"
            ))
        }
        _ => {}
    }
    if let Some(s) = info
        .metadata
        .get("imgsz")
        .and_then(|s| labels::parse_imgsz(s))
    {
        return Ok(s);
    }
    match configured {
        Some(c) if c >= 32 && c % 32 == 0 => Ok(c),
        Some(c) => Err(format!(
            "input_size {c} is not a multiple of 32: set detector input_size to e.g. 416"
        )),
        None => Err(
            "the model's input size is not fixed: set detector input_size (a multiple of 32, \
             e.g. 416)"
                .to_string(),
        ),
    }
}

impl ModelDetector {
    /// Pairs `engine` with `family` using the thresholds and class settings of `cfg`.
    ///
    /// Checks, in order: the input size ([`input_size_px`]), the engine's outputs against the
    /// family ([`Family::check_outputs`]), the label list (model `names` metadata, else
    /// `cfg.class_names`, else COCO-80; see [`labels::resolve`]) — all
    /// [`DetectError::Layout`] — and that every `cfg.classes` name is a label
    /// ([`DetectError::ClassNotInModel`], listing the labels). `model_id` is what
    /// [`Detector::model_id`] reports (see [`super::model_id_of`]).
    pub fn new(
        engine: Box<dyn Engine>,
        family: Family,
        cfg: &DetectorConfig,
        model_id: String,
    ) -> Result<ModelDetector, DetectError> {
        let layout_err = |reason: String| DetectError::Layout {
            path: cfg.model.display().to_string(),
            family: family.name().to_string(),
            reason,
        };
        let info = engine.info();
        let size = input_size_px(info, cfg.input_size).map_err(layout_err)?;
        let num_classes = family
            .check_outputs(&info.outputs, size)
            .map_err(layout_err)?;
        let (labels, label_source) = labels::resolve(
            info.metadata.get("names").map(String::as_str),
            cfg.class_names.as_deref(),
            num_classes,
        )
        .map_err(layout_err)?;
        let wanted = labels::wanted_ids(&cfg.classes, &labels)?;
        let letterbox = Letterboxer::with_spec(size, family.preprocess());
        tracing::debug!(
            family = family.name(),
            provider = %engine.provider(),
            input_size = size,
            classes = labels.len(),
            labels_from = ?label_source,
            "detector ready"
        );
        Ok(ModelDetector {
            input: vec![0.0; letterbox.input_len()],
            engine,
            family,
            letterbox,
            labels,
            #[cfg(test)]
            label_source,
            wanted,
            score_threshold: cfg.score_threshold,
            nms_iou: cfg.nms_iou,
            model_id,
            correction: None,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Runs the model `runs` times on a blank (pad-valued) input and decodes the result, so
    /// one-time costs (allocation, kernel selection, GPU engine build) are paid before the first
    /// real frame. Returns the mean inference time of those runs in ms (0 for `runs == 0`).
    /// [`Detector::warm_up`] calls this and logs the time.
    pub(crate) fn warm_up_timed(&mut self, runs: usize) -> Result<f64, DetectError> {
        let size = self.letterbox.input_size();
        self.letterbox.fill_blank(&mut self.input);
        let mut total_ms = 0.0;
        for _ in 0..runs {
            let t = Instant::now();
            let outputs = self.engine.run(&self.input, size)?;
            total_ms += t.elapsed().as_secs_f64() * 1e3;
            self.family.decode(
                &outputs,
                size,
                &self.labels,
                &self.wanted,
                self.score_threshold,
            )?;
        }
        Ok(if runs == 0 {
            0.0
        } else {
            total_ms / runs as f64
        })
    }

    /// Corrects every box from now on with `correction` (None: boxes as detected).
    pub fn set_box_correction(&mut self, correction: Option<BoxCorrection>) {
        self.correction = correction;
    }

    /// The box correction in use.
    pub fn box_correction(&self) -> Option<&BoxCorrection> {
        self.correction.as_ref()
    }

    /// Side of the square model input, px.
    pub fn input_size(&self) -> u32 {
        self.letterbox.input_size()
    }

    /// The model family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The model's class labels, indexed by class id.
    pub fn labels(&self) -> &[&'static str] {
        &self.labels
    }

    /// Where [`ModelDetector::labels`] came from.
    #[cfg(test)]
    fn label_source(&self) -> LabelSource {
        self.label_source
    }

    /// The class ids reported (the configured `classes`).
    pub fn wanted(&self) -> &[u16] {
        &self.wanted
    }
}

impl ModelDetector {
    /// Decode, NMS (for families without it in the graph) and the mapping back to frame px.
    fn postprocess(
        &self,
        outputs: &[OutputTensor],
        size: u32,
        map: &LetterboxMap,
        frame: &crate::frame::Frame,
    ) -> Result<Vec<Detection>, DetectError> {
        let cands = self.family.decode(
            outputs,
            size,
            &self.labels,
            &self.wanted,
            self.score_threshold,
        )?;
        let dets = if self.family.needs_nms() {
            nms_per_class(cands, self.nms_iou)
        } else {
            let mut c = cands;
            c.sort_by(|a, b| b.score.total_cmp(&a.score));
            c
        };
        let mut dets = to_frame(dets, map, frame);
        if let Some(c) = &self.correction {
            let (w, h) = (frame.width as f32, frame.height as f32);
            for d in &mut dets {
                c.apply(d, w, h);
            }
        }
        Ok(dets)
    }

    /// Uses the GPU for preprocessing from now on (device `device_index`), when the engine can
    /// take device input. Errors leave the CPU path in place; the caller logs them.
    #[cfg(feature = "cuda")]
    pub fn enable_gpu_preprocessing(&mut self, device_index: usize) -> Result<(), DetectError> {
        let gpu = super::gpu::GpuPreprocessor::new(device_index)
            .map_err(|e| DetectError::GpuUnavailable { cause: Box::new(e) })?;
        self.gpu = Some(gpu);
        Ok(())
    }

    /// The `cuda` path: letterbox on the GPU, run the engine on the device tensor. None when
    /// there is no GPU preprocessor or the engine takes host input only.
    #[cfg(feature = "cuda")]
    fn detect_on_gpu(
        &mut self,
        frame: &crate::frame::Frame,
        t0: Instant,
    ) -> Option<Result<(Vec<Detection>, DetectTimings), DetectError>> {
        use super::preprocess_ref::{SrcFrame, TensorDtype};
        let size = self.letterbox.input_size();
        let spec = *self.letterbox.spec();
        let gpu = self.gpu.as_mut()?;
        let src = SrcFrame::from_frame(frame);
        let input = match gpu.run(&src, &spec, size, TensorDtype::F32) {
            Ok(i) => i,
            Err(e) => return Some(Err(DetectError::Gpu { cause: Box::new(e) })),
        };
        let map = input.map;
        let t1 = Instant::now();
        // SAFETY: `input` borrows the preprocessor's device buffer for this whole call, so
        // nothing writes it while the engine reads it; shape and dtype are what `run` made.
        let outputs = unsafe {
            self.engine
                .run_device(input.as_mut_ptr(), size, false, input.device_index as i32)
        };
        let outputs = match outputs? {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        let t2 = Instant::now();
        Some(
            self.postprocess(&outputs, size, &map, frame)
                .map(|dets| (dets, timings(t0, t1, t2))),
        )
    }
}

/// Stage times from the three instants and now.
fn timings(t0: Instant, t1: Instant, t2: Instant) -> DetectTimings {
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    DetectTimings {
        preprocess_ms: ms(t0, t1),
        inference_ms: ms(t1, t2),
        postprocess_ms: ms(t2, Instant::now()),
    }
}

impl Detector for ModelDetector {
    fn detect(
        &mut self,
        frame: &crate::frame::Frame,
    ) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
        let t0 = Instant::now();
        let size = self.letterbox.input_size();
        #[cfg(feature = "cuda")]
        if let Some(r) = self.detect_on_gpu(frame, t0) {
            return r;
        }
        let map = self
            .letterbox
            .run(frame, &mut self.input)
            .map_err(|e| DetectError::Frame { cause: Box::new(e) })?;
        let t1 = Instant::now();
        let outputs = self.engine.run(&self.input, size)?;
        let t2 = Instant::now();
        let dets = self.postprocess(&outputs, size, &map, frame)?;
        Ok((dets, timings(t0, t1, t2)))
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn provider(&self) -> String {
        self.engine.provider()
    }

    fn warm_up(&mut self, runs: usize) -> Result<(), DetectError> {
        let mean_ms = self.warm_up_timed(runs)?;
        tracing::debug!(
            runs,
            mean_ms,
            provider = %self.engine.provider(),
            "detector warmed up"
        );
        Ok(())
    }
}

/// Maps boxes from input px to frame px, clipped to the frame; drops boxes left empty.
fn to_frame(
    dets: Vec<Detection>,
    map: &LetterboxMap,
    frame: &crate::frame::Frame,
) -> Vec<Detection> {
    let (w, h) = (frame.width as f32, frame.height as f32);
    dets.into_iter()
        .filter_map(|mut d| {
            let b = map.to_frame(&d.bbox);
            d.bbox = BBox {
                x1: b.x1.clamp(0.0, w),
                y1: b.y1.clamp(0.0, h),
                x2: b.x2.clamp(0.0, w),
                y2: b.y2.clamp(0.0, h),
            };
            (d.bbox.area() > 0.0).then_some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::engine::OutputTensor;
    use crate::frame::Frame;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An engine that returns fixed outputs and counts its runs.
    struct FixedEngine {
        info: ModelInfo,
        outputs: Vec<OutputTensor>,
        runs: Arc<AtomicUsize>,
    }

    impl Engine for FixedEngine {
        fn info(&self) -> &ModelInfo {
            &self.info
        }
        fn run(&mut self, input: &[f32], size: u32) -> Result<Vec<OutputTensor>, DetectError> {
            assert_eq!(input.len(), 3 * (size as usize).pow(2));
            self.runs.fetch_add(1, Ordering::SeqCst);
            Ok(self.outputs.clone())
        }
        fn provider(&self) -> String {
            "fixed-test".into()
        }
    }

    /// A 64 px YOLOv8 engine with 3 classes and one truck at input (24, 28)-(40, 36).
    fn yolo_engine(names: Option<&str>) -> (FixedEngine, Arc<AtomicUsize>) {
        let n = 10;
        let mut data = vec![0.0f32; 7 * n];
        for (row, v) in [32.0, 32.0, 16.0, 8.0, 0.1, 0.9, 0.2]
            .into_iter()
            .enumerate()
        {
            data[row * n + 2] = v;
        }
        let mut metadata = BTreeMap::new();
        if let Some(names) = names {
            metadata.insert("names".to_string(), names.to_string());
        }
        metadata.insert("imgsz".to_string(), "[64, 64]".to_string());
        let runs = Arc::new(AtomicUsize::new(0));
        let engine = FixedEngine {
            info: ModelInfo {
                input_name: "images".into(),
                input_shape: vec![Some(1), Some(3), None, None],
                outputs: vec![("output0".into(), vec![Some(1), Some(7), Some(n)])],
                metadata,
            },
            outputs: vec![OutputTensor {
                name: "output0".into(),
                shape: vec![1, 7, n],
                data,
            }],
            runs: runs.clone(),
        };
        (engine, runs)
    }

    fn cfg(classes: &[&str]) -> DetectorConfig {
        DetectorConfig {
            family: "yolov8".into(),
            classes: classes.iter().map(|s| s.to_string()).collect(),
            ..DetectorConfig::default()
        }
    }

    const NAMES: &str = "{0: 'car', 1: 'lorry', 2: 'tractor'}";

    #[test]
    fn detects_in_frame_px_with_model_labels() {
        let (engine, runs) = yolo_engine(Some(NAMES));
        let mut det = ModelDetector::new(
            Box::new(engine),
            Family::YoloV8,
            &cfg(&["car", "lorry"]),
            "m@0".into(),
        )
        .unwrap();
        assert_eq!(det.input_size(), 64); // from imgsz
        assert_eq!(det.labels(), ["car", "lorry", "tractor"]);
        assert_eq!(det.label_source(), LabelSource::Model);
        assert_eq!(det.provider(), "fixed-test");
        assert!(det.warm_up_timed(3).unwrap() >= 0.0);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        det.warm_up(2).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        // 128 x 64 frame: scale 0.5, picture 64 x 32 centred at y 16.
        let img = image::RgbImage::from_pixel(128, 64, image::Rgb([90, 90, 90]));
        let frame = Frame::from_rgb_image("t".into(), 0, 0, &img);
        let (dets, t) = det.detect(&frame).unwrap();
        assert!(t.preprocess_ms > 0.0);
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!((dets[0].class, dets[0].class_id), ("lorry", 1));
        let want = BBox {
            x1: 48.0,
            y1: 24.0,
            x2: 80.0,
            y2: 40.0,
        };
        assert!(dets[0].bbox.iou(&want) > 0.999, "{:?}", dets[0].bbox);
    }

    #[test]
    fn box_correction_moves_the_boxes_of_its_classes_after_nms() {
        use crate::detect::box_correction::{BoxCorrection, ClassFit, EdgeFit};
        let (engine, _) = yolo_engine(Some(NAMES));
        let mut det = ModelDetector::new(
            Box::new(engine),
            Family::YoloV8,
            &cfg(&["car", "lorry"]),
            "m@0".into(),
        )
        .unwrap();
        let img = image::RgbImage::from_pixel(128, 64, image::Rgb([90, 90, 90]));
        let frame = Frame::from_rgb_image("t".into(), 0, 0, &img);
        let (plain, _) = det.detect(&frame).unwrap();
        // The lorry's bottom 1 px + 25% of its height higher (16 px tall: 5 px).
        let fit = ClassFit {
            boxes: 1,
            bottom: EdgeFit {
                offset_px: -1.0,
                per_size: -0.25,
                mad_px: 0.0,
            },
            ..ClassFit::default()
        };
        det.set_box_correction(Some(BoxCorrection {
            schema: 1,
            model: "m@0".into(),
            command: String::new(),
            scenes: 0,
            classes: [("lorry".to_string(), fit)].into(),
        }));
        let (fixed, _) = det.detect(&frame).unwrap();
        assert_eq!(fixed.len(), plain.len());
        let (a, b) = (plain[0].bbox, fixed[0].bbox);
        assert!((b.y2 - (a.y2 - 5.0)).abs() < 1e-3, "{a:?} -> {b:?}");
        assert_eq!((a.x1, a.y1, a.x2), (b.x1, b.y1, b.x2));
        // Another class in the correction file: the lorry is left alone.
        det.set_box_correction(Some(BoxCorrection {
            classes: [("car".to_string(), fit)].into(),
            ..det.box_correction().unwrap().clone()
        }));
        assert_eq!(det.detect(&frame).unwrap().0[0].bbox, a);
    }

    #[test]
    fn unknown_class_lists_the_model_labels() {
        let (engine, _) = yolo_engine(Some(NAMES));
        let err = ModelDetector::new(
            Box::new(engine),
            Family::YoloV8,
            &cfg(&["truck"]),
            "m".into(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(&err, DetectError::ClassNotInModel { class, .. } if class == "truck"));
        assert!(msg.contains("car, lorry, tractor"), "{msg}");
    }

    #[test]
    fn labels_fall_back_to_class_names_and_must_match_the_count() {
        let (engine, _) = yolo_engine(None);
        let err = ModelDetector::new(Box::new(engine), Family::YoloV8, &cfg(&["car"]), "m".into())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("3 classes") && msg.contains("class_names"),
            "{msg}"
        );
        let (engine, _) = yolo_engine(None);
        let c = DetectorConfig {
            class_names: Some(vec!["van".into(), "car".into(), "bus".into()]),
            ..cfg(&["car"])
        };
        let det = ModelDetector::new(Box::new(engine), Family::YoloV8, &c, "m".into()).unwrap();
        assert_eq!(det.wanted(), [1]);
        assert_eq!(det.label_source(), LabelSource::Config);
    }

    #[test]
    fn wrong_layout_for_the_family_is_a_layout_error() {
        let (engine, _) = yolo_engine(Some(NAMES));
        let err = ModelDetector::new(
            Box::new(engine),
            Family::NanoDet,
            &cfg(&["car"]),
            "m".into(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DetectError::Layout { .. }), "{msg}");
        assert!(
            msg.contains("[1, 84, 124]") && msg.contains("nanodet"),
            "{msg}"
        );
    }

    #[test]
    fn input_size_sources_and_errors() {
        let mut info = ModelInfo {
            input_shape: vec![Some(1), Some(3), Some(416), Some(416)],
            ..ModelInfo::default()
        };
        assert_eq!(input_size_px(&info, Some(320)), Ok(416));
        info.input_shape = vec![Some(1), Some(3), None, None];
        assert_eq!(input_size_px(&info, Some(320)), Ok(320));
        assert!(input_size_px(&info, Some(100))
            .unwrap_err()
            .contains("multiple of 32"));
        assert!(input_size_px(&info, None)
            .unwrap_err()
            .contains("input_size"));
        info.metadata.insert("imgsz".into(), "[640, 640]".into());
        assert_eq!(input_size_px(&info, None), Ok(640));
        info.input_shape = vec![Some(1), Some(3), Some(480), Some(640)];
        assert!(input_size_px(&info, None).unwrap_err().contains("640x480"));
        info.input_shape = vec![Some(1), Some(1), Some(64), Some(64)];
        assert!(input_size_px(&info, None)
            .unwrap_err()
            .contains("1 channels"));
    }
}
