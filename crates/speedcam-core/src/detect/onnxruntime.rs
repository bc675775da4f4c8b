//! The ONNX Runtime backend: settings (always compiled, so a config written for it parses in
//! every build) and, with the `onnxruntime` cargo feature, the [`OrtEngine`].
//!
//! Why it looks the way it does:
//! - ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`), so one binary works with the
//!   CPU-only library on x86 and NVIDIA's CUDA/TensorRT build on Jetson. The library is probed
//!   with `dlopen` first: `ort`'s lazy loader panics on a missing library, we want an error that
//!   says what to install.
//! - Execution providers are tried in the configured order, each registered with
//!   `error_on_failure`: ONNX Runtime otherwise skips a provider it cannot register (TensorRT on a
//!   CPU-only library) without a word, and the operator would think TensorRT runs.
//! - TensorRT builds an engine for the exact model, TensorRT version and GPU; that takes minutes
//!   on a Jetson, so engines and the timing cache go to a directory keyed by all three
//!   ([`trt_cache_dir`]) and are reused on the next start. Warm-up runs at load make the daemon
//!   report ready only after that build.

use std::path::{Path, PathBuf};

/// Execution provider names accepted in `providers`, in the order they are usually listed.
#[cfg(test)]
const PROVIDERS: [&str; 3] = ["tensorrt", "cuda", "cpu"];
/// TensorRT precisions accepted in `precision`.
#[cfg(test)]
const PRECISIONS: [&str; 3] = ["fp16", "int8", "fp32"];
/// Cache root when neither `cache_dir` nor `$CACHE_DIRECTORY` is set.
pub(crate) const DEFAULT_CACHE_ROOT: &str = "/var/cache/speedcam";
/// Default number of zero-input runs at load.
pub(crate) const DEFAULT_WARMUP_RUNS: u32 = 3;

/// One ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrtProvider {
    /// NVIDIA TensorRT (builds an optimised engine; FP16 / INT8).
    TensorRt,
    /// NVIDIA CUDA (cuDNN kernels, FP32).
    Cuda,
    /// The default CPU provider (MLAS; fast with the INT8 U8 model).
    Cpu,
}

impl OrtProvider {
    /// Parses a config name (`"tensorrt"`, `"cuda"`, `"cpu"`).
    pub fn parse(name: &str) -> Option<OrtProvider> {
        match name {
            "tensorrt" => Some(OrtProvider::TensorRt),
            "cuda" => Some(OrtProvider::Cuda),
            "cpu" => Some(OrtProvider::Cpu),
            _ => None,
        }
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            OrtProvider::TensorRt => "tensorrt",
            OrtProvider::Cuda => "cuda",
            OrtProvider::Cpu => "cpu",
        }
    }
}

/// Precision TensorRT builds its engine in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrtPrecision {
    /// FP16 kernels where faster (the usual choice on Jetson).
    #[default]
    Fp16,
    /// INT8: from a QDQ model (explicit quantization, e.g. `nanodet-g-416.int8-qdq-s8sym.onnx`) or
    /// from an FP32 model plus `int8_calibration_table`; FP16 stays enabled for the float layers.
    Int8,
    /// FP32 only (reference accuracy, slowest).
    Fp32,
}

impl TrtPrecision {
    /// Parses a config name (`"fp16"`, `"int8"`, `"fp32"`).
    pub fn parse(name: &str) -> Option<TrtPrecision> {
        match name {
            "fp16" => Some(TrtPrecision::Fp16),
            "int8" => Some(TrtPrecision::Int8),
            "fp32" => Some(TrtPrecision::Fp32),
            _ => None,
        }
    }

    /// The config name, also the suffix of [`OrtProvider::TensorRt`]'s provider string.
    pub fn name(self) -> &'static str {
        match self {
            TrtPrecision::Fp16 => "fp16",
            TrtPrecision::Int8 => "int8",
            TrtPrecision::Fp32 => "fp32",
        }
    }
}

/// `[detector.onnxruntime]`: how the ONNX Runtime backend loads and runs the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrtSettings {
    /// Execution providers to try, in order; the first that registers and loads the model runs it.
    pub providers: Vec<OrtProvider>,
    /// TensorRT engine precision (ignored by CUDA and CPU).
    pub precision: TrtPrecision,
    /// TensorRT INT8 calibration table for a non-QDQ model (`calibration.flatbuffers` from
    /// models/make_int8.py, or a native TensorRT cache starting with `TRT-`); needs `Int8`.
    pub int8_calibration_table: Option<PathBuf>,
    /// Root of the engine cache; None: `$CACHE_DIRECTORY` (systemd `CacheDirectory=`), else
    /// `DEFAULT_CACHE_ROOT`. Engines go to `<root>/tensorrt/<key>/`, see [`trt_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Path of libonnxruntime.so; None: `$ORT_DYLIB_PATH`, else the system library search path.
    pub library: Option<PathBuf>,
    /// Threads for one inference on the CPU provider; None: one per core.
    pub intra_threads: Option<usize>,
    /// Zero-input runs at load, so TensorRT builds (or loads) its engine before the daemon reports
    /// ready and the first frame is not slow.
    pub warmup_runs: u32,
    /// CUDA device index of the GPU that runs TensorRT / CUDA.
    pub device_id: i32,
}

impl Default for OrtSettings {
    fn default() -> Self {
        OrtSettings {
            providers: vec![OrtProvider::TensorRt, OrtProvider::Cuda, OrtProvider::Cpu],
            precision: TrtPrecision::Fp16,
            int8_calibration_table: None,
            cache_dir: None,
            library: None,
            intra_threads: None,
            warmup_runs: DEFAULT_WARMUP_RUNS,
            device_id: 0,
        }
    }
}

/// The provider string an engine reports (`onnxruntime-tensorrt-int8`, `onnxruntime-cuda`,
/// `onnxruntime-cpu`): the precision is part of it only for TensorRT.
pub fn provider_label(provider: OrtProvider, precision: TrtPrecision) -> String {
    match provider {
        OrtProvider::TensorRt => format!("onnxruntime-tensorrt-{}", precision.name()),
        other => format!("onnxruntime-{}", other.name()),
    }
}

/// The cache root: `configured`, else the first entry of `$CACHE_DIRECTORY` (`cache_directory_env`,
/// colon-separated when systemd grants several), else `DEFAULT_CACHE_ROOT`.
pub fn cache_root(configured: Option<&Path>, cache_directory_env: Option<&str>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    cache_directory_env
        .and_then(|v| v.split(':').find(|s| !s.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_ROOT))
}

/// Where TensorRT keeps engines and its timing cache for one model on one TensorRT and GPU:
/// `<root>/tensorrt/<model hash, 16 hex>-trt<version>-<gpu>/`. A new model file, TensorRT
/// upgrade or GPU gets a fresh directory instead of a stale engine TensorRT would reject.
pub fn trt_cache_dir(root: &Path, model_hash: u64, trt_version: &str, gpu: &str) -> PathBuf {
    root.join("tensorrt").join(format!(
        "{model_hash:016x}-trt{}-{}",
        path_safe(trt_version),
        path_safe(gpu)
    ))
}

/// `s` as one path component: ASCII letters, digits, `.` and `_` kept, runs of anything else
/// become one `-`, trimmed, at most 64 bytes; `unknown` when nothing is left.
pub(crate) fn path_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    out.truncate(64);
    let out = out.trim_end_matches(['-', '.']).to_string();
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

/// TensorRT's `getInferLibVersion()` number as `major.minor.patch`: TensorRT 10 encodes
/// `major * 10000 + minor * 100 + patch` (100300 = 10.3.0), TensorRT 8 `major * 1000 + minor *
/// 100 + patch` (8602 = 8.6.2).
pub fn trt_version_string(v: i32) -> String {
    if v <= 0 {
        return "unknown".into();
    }
    let (major, rest) = if v >= 100_000 {
        (v / 10_000, v % 10_000)
    } else {
        (v / 1_000, v % 1_000)
    };
    format!("{major}.{}.{}", rest / 100, rest % 100)
}

/// The GPU's name from the NVIDIA driver's `/proc/driver/nvidia/gpus/*/information` texts
/// (`nvidia_infos`, in PCI bus order; entry `device_id` is used, the `Model:` line), else the
/// Jetson's `/proc/device-tree/model` (`device_tree_model`, NUL-terminated), path-safe; `unknown`
/// when neither names one.
pub fn gpu_name(
    nvidia_infos: &[String],
    device_tree_model: Option<&str>,
    device_id: i32,
) -> String {
    let from_driver = usize::try_from(device_id)
        .ok()
        .and_then(|i| nvidia_infos.get(i))
        .and_then(|info| {
            info.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "Model").then(|| v.trim().to_string())
            })
        })
        .filter(|m| !m.is_empty());
    let name = from_driver.or_else(|| {
        device_tree_model
            .map(|m| {
                m.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_string()
            })
            .filter(|m| !m.is_empty())
    });
    path_safe(name.as_deref().unwrap_or("unknown"))
}

/// 64-bit FNV-1a of `bytes`: the model fingerprint in cache keys and model ids (not a security
/// hash; it only has to change when the file does).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether `head` (the first bytes of a calibration table) is TensorRT's own calibration cache
/// format (`TRT-<version>-<calibrator>` first line) rather than ONNX Runtime's flatbuffers table.
pub fn is_native_trt_calibration(head: &[u8]) -> bool {
    head.starts_with(b"TRT-")
}

/// What to install when the ONNX Runtime library cannot be loaded, for this machine's
/// architecture (`aarch64` is taken to be a Jetson).
pub fn install_hint(arch: &str) -> String {
    if arch == "aarch64" {
        "install NVIDIA's onnxruntime-gpu build for JetPack 6 (its wheel carries \
         onnxruntime/capi/libonnxruntime.so.*) and point [detector.onnxruntime] library (or \
         ORT_DYLIB_PATH) at libonnxruntime.so"
            .into()
    } else {
        "install the official ONNX Runtime release (libonnxruntime.so), or `pip download \
         --no-deps onnxruntime==1.32.0` and unzip onnxruntime/capi/libonnxruntime.so.* from the \
         wheel; then point [detector.onnxruntime] library (or ORT_DYLIB_PATH) at it"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_root_prefers_config_then_systemd_then_default() {
        let conf = Path::new("/srv/cache");
        assert_eq!(cache_root(Some(conf), Some("/var/cache/x")), conf);
        assert_eq!(
            cache_root(None, Some("/var/cache/speedcam:/var/cache/other")),
            Path::new("/var/cache/speedcam")
        );
        assert_eq!(cache_root(None, Some("")), Path::new(DEFAULT_CACHE_ROOT));
        assert_eq!(cache_root(None, None), Path::new(DEFAULT_CACHE_ROOT));
    }

    #[test]
    fn trt_cache_dir_keys_model_version_and_gpu() {
        let d = trt_cache_dir(
            Path::new("/var/cache/speedcam"),
            0x9018_c96d_fa49_0207,
            "10.3.0",
            "NVIDIA Jetson AGX Orin",
        );
        assert_eq!(
            d,
            Path::new(
                "/var/cache/speedcam/tensorrt/9018c96dfa490207-trt10.3.0-NVIDIA-Jetson-AGX-Orin"
            )
        );
        let other = trt_cache_dir(Path::new("/c"), 1, "8.6.2", "unknown");
        assert_eq!(
            other,
            Path::new("/c/tensorrt/0000000000000001-trt8.6.2-unknown")
        );
        // Nothing from the outside can climb out of the cache directory.
        let evil = trt_cache_dir(Path::new("/c"), 1, "../..", "../../etc/x");
        assert_eq!(evil.parent(), Some(Path::new("/c/tensorrt")));
        assert!(!evil.to_string_lossy().contains(".."), "{evil:?}");
    }

    #[test]
    fn path_safe_keeps_names_readable() {
        assert_eq!(path_safe("NVIDIA H100 80GB HBM3"), "NVIDIA-H100-80GB-HBM3");
        assert_eq!(path_safe("  a//b  "), "a-b");
        assert_eq!(path_safe(""), "unknown");
        assert_eq!(path_safe("///"), "unknown");
        assert_eq!(path_safe(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn trt_version_decodes_both_encodings() {
        assert_eq!(trt_version_string(100_300), "10.3.0");
        assert_eq!(trt_version_string(101_302), "10.13.2");
        assert_eq!(trt_version_string(8_602), "8.6.2");
        assert_eq!(trt_version_string(8_502), "8.5.2");
        assert_eq!(trt_version_string(0), "unknown");
    }

    #[test]
    fn gpu_name_from_driver_or_device_tree() {
        let infos = vec![
            "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   42\n".to_string(),
            "Model:   NVIDIA A2\n".to_string(),
        ];
        assert_eq!(gpu_name(&infos, None, 0), "NVIDIA-H100-80GB-HBM3");
        assert_eq!(gpu_name(&infos, None, 1), "NVIDIA-A2");
        let jetson = "NVIDIA Jetson Orin Nano Developer Kit\0";
        assert_eq!(
            gpu_name(&[], Some(jetson), 0),
            "NVIDIA-Jetson-Orin-Nano-Developer-Kit"
        );
        // A device id the driver does not list falls back to the board name.
        assert_eq!(
            gpu_name(&infos, Some(jetson), 5),
            "NVIDIA-Jetson-Orin-Nano-Developer-Kit"
        );
        assert_eq!(gpu_name(&[], None, 0), "unknown");
        assert_eq!(gpu_name(&["IRQ: 1".into()], Some("\0"), 0), "unknown");
    }

    #[test]
    fn labels_and_names_round_trip() {
        assert_eq!(
            provider_label(OrtProvider::TensorRt, TrtPrecision::Int8),
            "onnxruntime-tensorrt-int8"
        );
        assert_eq!(
            provider_label(OrtProvider::Cuda, TrtPrecision::Int8),
            "onnxruntime-cuda"
        );
        assert_eq!(
            provider_label(OrtProvider::Cpu, TrtPrecision::Fp16),
            "onnxruntime-cpu"
        );
        for p in PROVIDERS {
            assert_eq!(OrtProvider::parse(p).map(|p| p.name()), Some(p));
        }
        for p in PRECISIONS {
            assert_eq!(TrtPrecision::parse(p).map(|p| p.name()), Some(p));
        }
        assert!(OrtProvider::parse("rocm").is_none());
        assert!(is_native_trt_calibration(b"TRT-8602-EntropyCalibration2\n"));
        assert!(!is_native_trt_calibration(b"\x10\x00\x00\x00"));
        assert!(install_hint("aarch64").contains("JetPack 6"));
        assert!(install_hint("x86_64").contains("onnxruntime==1.32.0"));
    }
}
