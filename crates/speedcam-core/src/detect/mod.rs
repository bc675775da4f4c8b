//! Detection types shared by every stage: boxes, detections, the [`Detector`] trait the
//! pipeline calls, and the detector's configuration. The backends that run models (tract,
//! ONNX Runtime) and the model families' decoders live in the daemon (`speedcam::detect`), so
//! no stage that only needs a box depends on an inference engine.

use crate::error_chain::{chain, BoxError};
use std::path::{Path, PathBuf};

pub mod onnxruntime;

/// An axis-aligned box in frame pixels (x1, y1) top-left, (x2, y2) bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BBox {
    /// Left edge, px.
    pub x1: f32,
    /// Top edge, px.
    pub y1: f32,
    /// Right edge, px.
    pub x2: f32,
    /// Bottom edge, px.
    pub y2: f32,
}

impl BBox {
    /// The box with centre (`cx`, `cy`) and size `w` x `h`, px (the YOLO output layout).
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        BBox {
            x1: cx - w * 0.5,
            y1: cy - h * 0.5,
            x2: cx + w * 0.5,
            y2: cy + h * 0.5,
        }
    }
    /// Width in px (0 for inverted boxes).
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    /// Height in px (0 for inverted boxes).
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    /// Area in px².
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    /// Area shared with `other`, px^2 (0 when disjoint).
    pub fn intersection(&self, other: &BBox) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        ix * iy
    }
    /// Intersection over union with `other`, 0 when disjoint.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
    /// Bottom centre: where a vehicle touches the ground plane (the speed reference point).
    pub fn bottom_center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, self.y2)
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Box in frame pixels.
    pub bbox: BBox,
    /// Confidence in 0..=1.
    pub score: f32,
    /// Class index in the model's label list (COCO-80 for the default model).
    pub class_id: u16,
    /// Class name, e.g. "car".
    pub class: &'static str,
}

/// Time spent in each detector stage for one frame, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectTimings {
    /// Letterbox + normalisation into the input tensor.
    pub preprocess_ms: f64,
    /// The model run itself.
    pub inference_ms: f64,
    /// Decode of the output tensor + NMS + class filter.
    pub postprocess_ms: f64,
}

/// Errors from loading or running a detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The model file could not be read or parsed.
    #[error("cannot load model {path}: {reason}")]
    Load {
        /// Model path as configured.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The box correction file (`detector.box_correction`) cannot be used.
    #[error("box correction {path}: {reason}")]
    BoxCorrection {
        /// The correction file.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The model's inputs or outputs are not what the configured family expects.
    #[error("model {path} does not match family {family}: {reason}")]
    Layout {
        /// Model path.
        path: String,
        /// Configured family.
        family: String,
        /// What differs.
        reason: String,
    },
    /// The inference library (tract, ONNX Runtime) failed at `step`; the message prints the
    /// library's error with its own causes.
    #[error("inference failed ({step}): {}", chain(cause.as_ref()))]
    Inference {
        /// What was being done, e.g. `running the model` or `reading output "boxes"`.
        step: String,
        /// The library's error.
        cause: BoxError,
    },
    /// The frame cannot be made into the model's input (its size or pixel format).
    #[error("bad frame: {cause}")]
    Frame {
        /// The preprocessor's error.
        cause: BoxError,
    },
    /// GPU preprocessing could not be set up (no driver, device or NVRTC; kernels rejected).
    #[error("GPU preprocessing unavailable: {cause}")]
    GpuUnavailable {
        /// The GPU preprocessor's error.
        cause: BoxError,
    },
    /// GPU preprocessing failed on a frame.
    #[error("GPU preprocessing: {cause}")]
    Gpu {
        /// The GPU preprocessor's error.
        cause: BoxError,
    },
    /// The engine was prepared for another input size (a caller bug).
    #[error("the model was prepared for a {expected_px} px input, got {got_px} px")]
    InputSize {
        /// Square input side the engine was built for, px.
        expected_px: u32,
        /// Side handed to it, px.
        got_px: u32,
    },
    /// The input buffer has the wrong number of values for `[1, 3, S, S]` (a caller bug).
    #[error("input has {values} values, [1, 3, {size_px}, {size_px}] needs {expected}")]
    InputLength {
        /// Square input side, px.
        size_px: u32,
        /// Values handed over.
        values: usize,
        /// Values the shape needs.
        expected: usize,
    },
    /// A device input of another element type than the model's (a caller bug).
    #[error("device input is {given} but the model's input is {model}")]
    InputType {
        /// Element type handed over: `f16` or `f32`.
        given: &'static str,
        /// The model's input element type.
        model: &'static str,
    },
    /// The model gave another number of output tensors than its family has.
    #[error("{family} expects {expected} output tensor(s), got {got}")]
    OutputCount {
        /// Configured family.
        family: &'static str,
        /// Outputs the family decodes.
        expected: usize,
        /// Outputs the model gave.
        got: usize,
    },
    /// An output tensor holds another number of values than its shape says.
    #[error(
        "{family} output {output:?} of shape {shape:?} holds {values} values, expected {expected}"
    )]
    OutputLength {
        /// Configured family.
        family: &'static str,
        /// Output name.
        output: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Values present.
        values: usize,
        /// Values the shape needs.
        expected: usize,
    },
    /// The model's outputs are not laid out as the configured family's.
    #[error("{family}: {reason}")]
    OutputLayout {
        /// Configured family.
        family: &'static str,
        /// What differs, naming the output, its shape and the expected one.
        reason: String,
    },
    /// An output cannot be read as numbers (not a tensor, or an unsupported element type).
    #[error("output {output:?}: {reason}")]
    OutputType {
        /// Output name.
        output: String,
        /// What it is instead.
        reason: String,
    },
    /// The configured backend or model family is not one this build knows.
    #[error("unknown detector {what} {got:?}: set it to one of {allowed:?}")]
    Unsupported {
        /// Which setting: "backend" or "family".
        what: &'static str,
        /// The configured value.
        got: String,
        /// The values this build accepts.
        allowed: &'static [&'static str],
    },
    /// The configured backend needs a cargo feature this binary was built without.
    #[error("detector backend {backend:?} is not in this build: rebuild with `cargo build --release --features {feature}`")]
    NotBuilt {
        /// The configured backend.
        backend: String,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// Unknown class name in the configured class list.
    #[error("unknown class {0:?}: the model's classes are COCO-80 names such as car, motorcycle, bus, truck")]
    UnknownClass(String),
    /// A name in `detector.classes` is not one of the loaded model's labels.
    #[error("detector.classes: {class:?} is not a class of this model; its classes are: {labels}")]
    ClassNotInModel {
        /// The configured name.
        class: String,
        /// The model's labels, comma-separated, in class id order.
        labels: String,
    },
}

/// A vehicle detector. `&mut self` because backends keep scratch buffers between frames.
pub trait Detector: Send {
    /// Detects the configured classes in `frame`; boxes are in frame pixels.
    fn detect(
        &mut self,
        frame: &crate::frame::Frame,
    ) -> Result<(Vec<Detection>, DetectTimings), DetectError>;
    /// A short identifier of the model (file name and content hash), stored with every event.
    fn model_id(&self) -> &str;
    /// Which backend and execution provider runs the model, e.g. `tract-cpu` (see
    /// the engine's provider name); logged and exposed in stats. `"unknown"` for detectors
    /// that are not built on an engine (test doubles).
    fn provider(&self) -> String {
        "unknown".to_string()
    }
    /// Runs the model `runs` times on a blank frame so one-time costs (allocation, kernel
    /// selection, GPU engine build) are paid before the first real frame, which would otherwise
    /// be slow and make a live source drop frames. The default does nothing (nothing to warm).
    fn warm_up(&mut self, runs: usize) -> Result<(), DetectError> {
        let _ = runs;
        Ok(())
    }
}

/// COCO-80 class names in model output order (the label list of the default NanoDet model).
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Backends the daemon's `detect::open` knows in this build (`onnxruntime` only with its cargo feature).
pub const BACKENDS: &[&str] = if cfg!(feature = "onnxruntime") {
    &["tract", "onnxruntime"]
} else {
    &["tract"]
};
/// Model families the daemon's `detect::open` knows (`detector.family`), in `Family::ALL` order.
pub const FAMILIES: [&str; 4] = ["nanodet", "yolov8", "yolox", "end2end"];

/// What detector to build: model file, how to read its tensors, and what to keep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Path of the ONNX model file.
    pub model: PathBuf,
    /// Output layout family; one of [`FAMILIES`] (`"nanodet"`, `"yolov8"`, `"yolox"`,
    /// `"end2end"`).
    pub family: String,
    /// Inference backend; one of [`BACKENDS`] (`"tract"`).
    pub backend: String,
    /// Candidates scoring below this are dropped before NMS. The pipeline passes the tracker's
    /// LOW threshold (about 0.1) so ByteTrack can still use weak boxes to keep tracks alive.
    pub score_threshold: f32,
    /// IoU above which a lower-scoring box of the same class is suppressed.
    pub nms_iou: f32,
    /// Labels of the classes to report (COCO names for COCO models); everything else is ignored.
    /// Checked against the model's label list when the model is loaded.
    pub classes: Vec<String>,
    /// The model's label list in class id order, for models whose file does not carry one
    /// (`names` metadata); None: COCO-80 when the model has 80 classes.
    pub class_names: Option<Vec<String>>,
    /// Square input side in px; used only when the model's input size is not fixed in the file.
    pub input_size: Option<u32>,
    /// `[detector.onnxruntime]`: providers, TensorRT precision and cache, library; used only by
    /// the `onnxruntime` backend.
    pub onnxruntime: onnxruntime::OrtSettings,
    /// `detector.box_correction`: the per-class box-edge correction learnt for this model
    /// (the daemon's `detect::box_correction`).
    pub box_correction: BoxCorrectionSetting,
}

/// Which box correction the detector applies (`detector.box_correction`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum BoxCorrectionSetting {
    /// `"auto"`: `<model file>.contact.toml` when it exists, else none.
    #[default]
    Auto,
    /// `"off"`: boxes as detected.
    Off,
    /// A file path: that correction (it must exist and match the model).
    Path(PathBuf),
}

impl From<String> for BoxCorrectionSetting {
    /// The config value: "auto", "off", else a path.
    fn from(s: String) -> Self {
        match s.as_str() {
            "auto" => BoxCorrectionSetting::Auto,
            "off" => BoxCorrectionSetting::Off,
            _ => BoxCorrectionSetting::Path(PathBuf::from(s)),
        }
    }
}

impl From<BoxCorrectionSetting> for String {
    fn from(s: BoxCorrectionSetting) -> Self {
        match s {
            BoxCorrectionSetting::Auto => "auto".into(),
            BoxCorrectionSetting::Off => "off".into(),
            BoxCorrectionSetting::Path(p) => p.display().to_string(),
        }
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            model: PathBuf::from("models/nanodet-g-416.onnx"),
            family: "nanodet".into(),
            backend: "tract".into(),
            score_threshold: 0.1,
            nms_iou: 0.6,
            classes: ["car", "motorcycle", "bus", "truck"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            class_names: None,
            input_size: None,
            onnxruntime: onnxruntime::OrtSettings::default(),
            box_correction: BoxCorrectionSetting::Auto,
        }
    }
}

/// 64-bit FNV-1a of `bytes`: a cheap, stable content fingerprint (not a security hash).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The model id stored with every event: `file-name@hash8`, where hash8 is the first 8 hex
/// digits of the file contents' FNV-1a, so two different files of the same name differ.
pub fn model_id_of(path: &Path, bytes: &[u8]) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    format!("{name}@{:08x}", fnv1a64(bytes) >> 32)
}
