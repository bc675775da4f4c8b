//! Vehicle detection: a backend runs the model, a family decoder turns its tensors into boxes.
//!
//! Backends sit behind [`Detector`] so the pipeline and tests can swap them (tract on CPU today,
//! ONNX Runtime / TensorRT later). A backend only loads and runs the model ([`engine::Engine`]);
//! a model [`family::Family`] says how to fill the input and read the outputs, and
//! [`pipeline::ModelDetector`] joins the two, so every backend runs every family. Preprocessing
//! (letterbox) and postprocessing (decode + NMS) are timed separately because the timing
//! breakdown is a product feature.
//!
//! Why the pieces look the way they do:
//! - [`letterbox`]: the model wants a square input; cameras deliver 16:9. Stretching a wide frame
//!   into a square squashes cars horizontally and the detector misses most of them, so the frame
//!   is scaled to fit with its aspect kept, centred, and padded. The returned mapping turns boxes
//!   back into frame pixels.
//! - [`nanodet`]: NanoDet heads predict, per grid cell, a discrete distribution over distances to
//!   each box side (Generalized Focal Loss). The decoded distance is the expectation of that
//!   distribution, which is smoother and more accurate than a single regressed number.
//! - [`yolov8`], [`yolox`], [`end2end`]: the other families' decoders, each on its own so it can
//!   be tested on constructed tensors.
//! - [`labels`]: label lists come from the model file when it has them (Ultralytics metadata),
//!   else from `detector.class_names`, else COCO-80.
//! - [`nms`]: suppression runs per class, so a car box never removes an overlapping truck box;
//!   the tracker downstream sees every hypothesis and keeps the consistent one.

pub use speedcam_core::detect::*;

pub mod box_correction;
mod decode_util;
pub mod end2end;
pub mod engine;
pub mod family;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod gpu_kernel;
pub mod labels;
pub mod letterbox;
pub mod nanodet;
pub mod nms;
pub mod onnxruntime;
pub mod pipeline;
pub mod preprocess_ref;
pub mod tract;
pub mod yolov8;
pub mod yolox;

pub use box_correction::BoxCorrection;
pub use family::Family;
pub use pipeline::ModelDetector;
/// Builds the detector `cfg` describes: the backend's engine plus the family's decoder in a
/// [`ModelDetector`]. Fails with a message listing the allowed values when the backend or family
/// is unknown, with [`DetectError::Layout`] when the model does not fit the family, and with
/// [`DetectError::ClassNotInModel`] for a class name the model does not have.
pub fn open(cfg: &DetectorConfig) -> Result<Box<dyn Detector>, DetectError> {
    let family = Family::from_name(&cfg.family)?;
    match cfg.backend.as_str() {
        "tract" => {
            let engine = tract::TractEngine::load(cfg)?;
            let id = engine.model_id().to_string();
            let det = corrected(ModelDetector::new(Box::new(engine), family, cfg, id)?, cfg)?;
            Ok(Box::new(det))
        }
        #[cfg(feature = "onnxruntime")]
        "onnxruntime" => {
            let engine =
                onnxruntime::OrtEngine::load(&cfg.model, &cfg.onnxruntime, cfg.input_size)?;
            let bytes = std::fs::read(&cfg.model).map_err(|e| DetectError::Load {
                path: cfg.model.display().to_string(),
                reason: format!("{e}; check the detector model path"),
            })?;
            let id = model_id_of(&cfg.model, &bytes);
            #[allow(unused_mut)]
            let mut det = corrected(ModelDetector::new(Box::new(engine), family, cfg, id)?, cfg)?;
            #[cfg(feature = "cuda")]
            if !det.provider().ends_with("-cpu") {
                // A GPU provider runs the model: letterbox on the GPU too and hand the device
                // tensor over, so frames make no host round trip. Without a usable GPU the CPU
                // letterbox stays (logged, not fatal).
                let device = cfg.onnxruntime.device_id as usize;
                match det.enable_gpu_preprocessing(device) {
                    Ok(()) => tracing::info!(device, "preprocessing on the GPU"),
                    Err(e) => {
                        tracing::warn!(err = %e, "GPU preprocessing unavailable; it stays on the CPU")
                    }
                }
            }
            Ok(Box::new(det))
        }
        #[cfg(not(feature = "onnxruntime"))]
        "onnxruntime" => Err(DetectError::NotBuilt {
            backend: "onnxruntime".into(),
            feature: "onnxruntime",
        }),
        other => Err(DetectError::Unsupported {
            what: "backend",
            got: other.to_string(),
            allowed: BACKENDS,
        }),
    }
}

/// `det` with the box correction `cfg.box_correction` selects for its model (see
/// `box_correction.rs`).
fn corrected(mut det: ModelDetector, cfg: &DetectorConfig) -> Result<ModelDetector, DetectError> {
    det.set_box_correction(BoxCorrection::for_setting(
        &cfg.box_correction,
        &cfg.model,
        det.model_id(),
    )?);
    Ok(det)
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "onnxruntime"))]
    #[test]
    fn open_without_the_feature_says_how_to_rebuild() {
        let cfg = crate::detect::DetectorConfig {
            backend: "onnxruntime".into(),
            ..crate::detect::DetectorConfig::default()
        };
        let Err(err) = crate::detect::open(&cfg) else {
            panic!("onnxruntime opened without the feature")
        };
        assert!(err.to_string().contains("--features onnxruntime"), "{err}");
    }
}
