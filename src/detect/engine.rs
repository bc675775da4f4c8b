//! The seam between inference backends and model families.
//!
//! A backend (tract, ONNX Runtime, ...) loads a model file into an [`Engine`]: something that runs
//! one NCHW float input and returns its output tensors. A model family (NanoDet, YOLOv8, YOLOX,
//! end-to-end) says how to fill that input ([`PreprocessSpec`]) and how to read the outputs. The
//! detector that the pipeline sees is an engine plus a family, so every backend runs every family
//! and each piece is tested on its own.

use std::collections::BTreeMap;

use super::DetectError;

/// How a family wants its input tensor filled from a frame.
///
/// The input is `(pixel - mean) / std` per channel in `channel order`, NCHW, with the frame scaled
/// to fit a square of the model's input size (aspect kept). The area outside the picture holds
/// `pad_value` *before* normalisation (0 = black, 114 = YOLO grey).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessSpec {
    /// Channel order of the tensor: true for B, G, R (NanoDet, YOLOX), false for R, G, B (YOLOv8).
    pub bgr: bool,
    /// Per-channel mean in tensor channel order, in 0..255 pixel units.
    pub mean: [f32; 3],
    /// Per-channel divisor in tensor channel order, in 0..255 pixel units (255 for 0..1 input).
    pub std: [f32; 3],
    /// Pixel value of the letterbox border, 0..255, before normalisation.
    pub pad_value: f32,
    /// True: the picture is centred in the square (NanoDet, YOLOv8). False: it sits in the
    /// top-left corner and the padding is right and bottom (YOLOX).
    pub centred: bool,
}

impl PreprocessSpec {
    /// NanoDet: BGR, ImageNet-style mean/std in pixel units, black border, centred.
    pub const NANODET: PreprocessSpec = PreprocessSpec {
        bgr: true,
        mean: [103.53, 116.28, 123.675],
        std: [57.375, 57.12, 58.395],
        pad_value: 0.0,
        centred: true,
    };

    /// YOLOv8 / YOLO11 (Ultralytics): RGB scaled to 0..1, grey 114 border, centred.
    pub const YOLOV8: PreprocessSpec = PreprocessSpec {
        bgr: false,
        mean: [0.0; 3],
        std: [255.0; 3],
        pad_value: 114.0,
        centred: true,
    };

    /// YOLOX (official export): BGR in raw 0..255 pixel values, grey 114 border, top-left.
    pub const YOLOX: PreprocessSpec = PreprocessSpec {
        bgr: true,
        mean: [0.0; 3],
        std: [1.0; 3],
        pad_value: 114.0,
        centred: false,
    };

    /// End-to-end exports (NMS in the graph) of YOLOv8-style models: the same input as YOLOv8.
    pub const END2END: PreprocessSpec = PreprocessSpec::YOLOV8;
}

/// One output tensor of a model run: f32 values, row-major in `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// The graph's output name.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values (integer outputs are converted to f32).
    pub data: Vec<f32>,
}

/// What the backend read from the model file at load time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    /// Name of the image input.
    pub input_name: String,
    /// Input dimensions [N, C, H, W]; None where the model leaves a dimension symbolic.
    pub input_shape: Vec<Option<usize>>,
    /// Output names and dimensions, in graph order; None for symbolic dimensions.
    pub outputs: Vec<(String, Vec<Option<usize>>)>,
    /// The model's `metadata_props` (e.g. Ultralytics exports store `names` and `imgsz`).
    pub metadata: BTreeMap<String, String>,
}

/// A loaded model that runs one NCHW f32 input of a fixed square size.
pub trait Engine: Send {
    /// What the model file declares.
    fn info(&self) -> &ModelInfo;
    /// Runs the model on `input` ([1, 3, size, size], `3 * size * size` values).
    fn run(&mut self, input: &[f32], size: u32) -> Result<Vec<OutputTensor>, DetectError>;
    /// Which backend and execution provider actually runs, e.g. `tract-cpu`,
    /// `onnxruntime-tensorrt-fp16`, `onnxruntime-cpu`. Logged and exposed in stats.
    fn provider(&self) -> String;

    /// Runs the model on an input tensor that is already in GPU memory (the `cuda` feature's
    /// preprocessing output), so frames never make a host round trip. None: this engine takes
    /// host input only, and the caller falls back to [`Engine::run`].
    ///
    /// # Safety
    /// `ptr` must be a live CUDA allocation on `device_id` holding an NCHW `[1, 3, size, size]`
    /// tensor (f16 when `f16`, else f32), not written by anyone else until this returns.
    unsafe fn run_device(
        &mut self,
        _ptr: *mut std::ffi::c_void,
        _size: u32,
        _f16: bool,
        _device_id: i32,
    ) -> Option<Result<Vec<OutputTensor>, DetectError>> {
        None
    }
}
