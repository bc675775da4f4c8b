//! INTERIM: a NanoDet detector on [`OrtEngine`], the same steps as `tract.rs` (letterbox ->
//! engine -> `nanodet::decode` -> per-class NMS -> frame px). To be replaced by the generic
//! `ModelDetector::new(Box<dyn Engine>, cfg)` when that lands; keep it this small until then.

use std::time::Instant;

use super::{fnv1a64, OrtEngine};
use crate::detect::engine::Engine;
use crate::detect::letterbox::Letterboxer;
use crate::detect::nanodet::{self, OUTPUT_COLS};
use crate::detect::nms::nms_per_class;
use crate::detect::{
    class_ids, BBox, DetectError, DetectTimings, Detection, Detector, DetectorConfig,
};

/// A NanoDet-family detector running on ONNX Runtime.
#[derive(Debug)]
pub struct OrtDetector {
    engine: OrtEngine,
    letterbox: Letterboxer,
    input: Vec<f32>,
    wanted: Vec<u16>,
    score_threshold: f32,
    nms_iou: f32,
    model_id: String,
}

impl OrtDetector {
    /// Loads `cfg.model` with `cfg.onnxruntime` settings and checks NanoDet's output layout.
    pub fn load(cfg: &DetectorConfig) -> Result<OrtDetector, DetectError> {
        let wanted = class_ids(&cfg.classes)?;
        let engine = OrtEngine::load(&cfg.model, &cfg.onnxruntime, cfg.input_size)?;
        let path = cfg.model.display().to_string();
        let layout_err = |reason: String| DetectError::Layout {
            path: path.clone(),
            family: cfg.family.clone(),
            reason,
        };
        let info = engine.info();
        let size = match info.input_shape.as_slice() {
            [_, Some(3), Some(h), Some(w)] if h == w => *h as u32,
            [_, _, None, None] => cfg.input_size.ok_or_else(|| {
                layout_err("the model's input size is not fixed: set detector input_size (a multiple of 32, e.g. 416)".into())
            })?,
            other => return Err(layout_err(format!("input has shape {other:?}, expected [1,3,S,S]"))),
        };
        let rows = nanodet::output_rows(size);
        let want = [Some(1), Some(rows), Some(OUTPUT_COLS)];
        match info.outputs.first() {
            Some((_, shape))
                if shape.iter().zip(want).all(|(d, w)| d.is_none() || *d == w)
                    && shape.len() == 3 => {}
            other => {
                return Err(layout_err(format!(
                    "output 0 has shape {:?}, expected [1, {rows}, {OUTPUT_COLS}]",
                    other.map(|o| &o.1)
                )))
            }
        }
        let bytes = std::fs::read(&cfg.model).map_err(|e| DetectError::Load {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let name = cfg
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone());
        Ok(OrtDetector {
            engine,
            letterbox: Letterboxer::new(size),
            input: vec![0.0; 3 * (size as usize).pow(2)],
            wanted,
            score_threshold: cfg.score_threshold,
            nms_iou: cfg.nms_iou,
            model_id: format!("{name}@{:08x}", fnv1a64(&bytes) >> 32),
        })
    }

    /// Which execution provider runs the model, e.g. `onnxruntime-cpu`.
    pub fn provider(&self) -> String {
        self.engine.provider()
    }
}

impl Detector for OrtDetector {
    fn detect(
        &mut self,
        frame: &crate::frame::Frame,
    ) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
        let t0 = Instant::now();
        let size = self.letterbox.input_size();
        let map = self
            .letterbox
            .run(frame, &mut self.input)
            .map_err(|e| DetectError::Run(format!("bad frame: {e}")))?;
        let t1 = Instant::now();
        let outputs = self.engine.run(&self.input, size)?;
        let t2 = Instant::now();
        let out = outputs
            .first()
            .ok_or_else(|| DetectError::Run("model returned no output".into()))?;
        let cands = nanodet::decode(&out.data, size, &self.wanted, self.score_threshold)?;
        let (w, h) = (frame.width as f32, frame.height as f32);
        let dets = nms_per_class(cands, self.nms_iou)
            .into_iter()
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
            .collect();
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        Ok((
            dets,
            DetectTimings {
                preprocess_ms: ms(t0, t1),
                inference_ms: ms(t1, t2),
                postprocess_ms: ms(t2, t3),
            },
        ))
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}
