//! The ONNX Runtime backend's engine, with the `onnxruntime` cargo feature. Its settings and
//! pure helpers (provider names, cache keys) are in [`speedcam_core::detect::onnxruntime`],
//! re-exported here, so a config written for it parses in every build.

pub use speedcam_core::detect::onnxruntime::*;

#[cfg(feature = "onnxruntime")]
mod engine;
#[cfg(feature = "onnxruntime")]
mod probe;

#[cfg(feature = "onnxruntime")]
pub use engine::OrtEngine;
