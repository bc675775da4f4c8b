//! [`OrtEngine`]: an [`Engine`] on ONNX Runtime with TensorRT, CUDA or CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::logging::LogLevel;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{DynValue, Shape, TensorElementType, TensorRef, TensorRefMut, ValueType};

use super::{
    cache_root, fnv1a64, install_hint, is_native_trt_calibration, probe, provider_label,
    trt_cache_dir, OrtProvider, OrtSettings, TrtPrecision,
};
use crate::detect::engine::{Engine, ModelInfo, OutputTensor};
use crate::detect::DetectError;

/// The process-wide ONNX Runtime environment and the library it came from. ONNX Runtime allows
/// one library per process, so a second engine with another `library` uses the first one.
static ENV: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

/// A model loaded into an ONNX Runtime session on the first execution provider that works.
pub struct OrtEngine {
    session: Session,
    info: ModelInfo,
    provider: String,
    /// Input element type: f32, or f16 for models with a half-precision input.
    input_f16: bool,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("provider", &self.provider)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The environment on the library `settings` name (loading it on first use).
fn environment(
    settings: &OrtSettings,
    load_err: &dyn Fn(String) -> DetectError,
) -> Result<Environment, DetectError> {
    let env_var = std::env::var("ORT_DYLIB_PATH").ok();
    let path = probe::library_path(settings.library.as_deref(), env_var.as_deref());
    // Checked on every load, so a bad path is reported even when another engine already loaded
    // a good library in this process.
    probe::check_library(&path).map_err(&load_err)?;
    let mut guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((env, loaded)) = guard.as_ref() {
        if *loaded != path {
            tracing::warn!(
                loaded = %loaded.display(),
                configured = %path.display(),
                "ONNX Runtime is already loaded in this process: the configured library is used \
                 only after a restart"
            );
        }
        return Ok(env.clone());
    }
    let env = ort::init_from(&path)
        .map_err(|e| {
            load_err(format!(
                "cannot use the ONNX Runtime library {} ({e}): {}",
                path.display(),
                install_hint(std::env::consts::ARCH)
            ))
        })?
        .with_name("speedcam")
        .build()
        .map_err(|e| load_err(format!("cannot start ONNX Runtime: {e}")))?;
    // ONNX Runtime's info messages (every graph transformer) would flood the daemon's log.
    env.set_log_level(LogLevel::Warning);
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    *guard = Some((env.clone(), path));
    Ok(env)
}

/// What to install for a provider that failed, for the warning and the final error.
fn provider_hint(p: OrtProvider) -> &'static str {
    match p {
        OrtProvider::TensorRt => {
            "TensorRT needs an ONNX Runtime built with the TensorRT provider (onnxruntime-gpu; on \
             Jetson NVIDIA's build for JetPack 6) plus TensorRT (libnvinfer), CUDA and cuDNN"
        }
        OrtProvider::Cuda => {
            "CUDA needs an ONNX Runtime built with the CUDA provider (onnxruntime-gpu; on Jetson \
             NVIDIA's build for JetPack 6) plus the CUDA runtime and cuDNN"
        }
        OrtProvider::Cpu => "the CPU provider is part of every ONNX Runtime build",
    }
}

/// Engine-cache options for TensorRT: the directory (created here) and the calibration table
/// copied into it (ONNX Runtime looks the table up by name inside the cache directory).
struct TrtCache {
    dir: PathBuf,
    calibration: Option<(String, bool)>,
}

/// The engine directory for this model, TensorRT and GPU (see [`trt_cache_dir`]).
fn trt_dir(settings: &OrtSettings, model_bytes: &[u8]) -> PathBuf {
    let env = std::env::var("CACHE_DIRECTORY").ok();
    let root = cache_root(settings.cache_dir.as_deref(), env.as_deref());
    trt_cache_dir(
        &root,
        fnv1a64(model_bytes),
        &probe::trt_version(),
        &probe::gpu(settings.device_id),
    )
}

fn trt_cache(settings: &OrtSettings, model_bytes: &[u8]) -> Result<TrtCache, String> {
    let dir = trt_dir(settings, model_bytes);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "cannot create the TensorRT engine cache {} ({e}): make it writable for the daemon \
             or set [detector.onnxruntime] cache_dir",
            dir.display()
        )
    })?;
    let calibration = match (&settings.int8_calibration_table, settings.precision) {
        (Some(table), TrtPrecision::Int8) => {
            let bytes = std::fs::read(table).map_err(|e| {
                format!(
                    "cannot read int8_calibration_table {} ({e})",
                    table.display()
                )
            })?;
            let native = is_native_trt_calibration(&bytes);
            let name = if native {
                "calibration.cache"
            } else {
                "calibration.flatbuffers"
            };
            std::fs::write(dir.join(name), &bytes).map_err(|e| {
                format!(
                    "cannot copy the calibration table into {} ({e})",
                    dir.display()
                )
            })?;
            Some((name.to_string(), native))
        }
        _ => None,
    };
    Ok(TrtCache { dir, calibration })
}

/// The execution providers for one attempt: `primary` with `error_on_failure`, and for TensorRT
/// the CUDA provider behind it (when listed) for the nodes TensorRT does not take.
fn providers_for(
    primary: OrtProvider,
    listed: &[OrtProvider],
    settings: &OrtSettings,
    cache: Option<&TrtCache>,
) -> Vec<ExecutionProviderDispatch> {
    let cuda = || ep::CUDA::default().with_device_id(settings.device_id);
    match primary {
        OrtProvider::TensorRt => {
            let dir = cache
                .map(|c| c.dir.display().to_string())
                .unwrap_or_default();
            let mut trt = ep::TensorRT::default()
                .with_device_id(settings.device_id)
                .with_fp16(settings.precision != TrtPrecision::Fp32)
                .with_int8(settings.precision == TrtPrecision::Int8)
                .with_engine_cache(true)
                .with_engine_cache_path(&dir)
                .with_engine_cache_prefix(format!("speedcam_{}", settings.precision.name()))
                .with_timing_cache(true)
                .with_timing_cache_path(&dir);
            if let Some((name, native)) = cache.and_then(|c| c.calibration.as_ref()) {
                trt = trt
                    .with_int8_calibration_table_name(name)
                    .with_int8_use_native_calibration_table(*native);
            }
            let mut eps = vec![trt.build().error_on_failure()];
            if listed.contains(&OrtProvider::Cuda) {
                eps.push(cuda().build().fail_silently());
            }
            eps
        }
        OrtProvider::Cuda => vec![cuda().build().error_on_failure()],
        OrtProvider::Cpu => vec![ep::CPU::default().build().error_on_failure()],
    }
}

/// Dimensions from an ONNX Runtime shape: `-1` (symbolic) becomes None.
fn dims(shape: &Shape) -> Vec<Option<usize>> {
    shape.iter().map(|&d| usize::try_from(d).ok()).collect()
}

fn tensor_dims(ty: &ValueType) -> Vec<Option<usize>> {
    ty.tensor_shape().map(dims).unwrap_or_default()
}

/// Every output of a run as an f32 [`OutputTensor`], in graph order (host and IoBinding runs).
fn collect_outputs(
    outputs: &ort::session::SessionOutputs<'_>,
) -> Result<Vec<OutputTensor>, DetectError> {
    let mut result = Vec::with_capacity(outputs.len());
    for (name, value) in outputs {
        let (shape, data) = to_f32(name, &value)?;
        result.push(OutputTensor {
            name: name.to_string(),
            shape,
            data,
        });
    }
    Ok(result)
}

/// Output `name`'s value as f32 (integer and half outputs converted).
fn to_f32(name: &str, value: &DynValue) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
    let reading = |e: ort::Error| DetectError::Inference {
        step: format!("reading output {name:?}"),
        cause: Box::new(e),
    };
    macro_rules! conv {
        ($t:ty) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(reading)?;
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            (shape, data.iter().map(|&v| v as f32).collect())
        }};
    }
    let ty = value
        .dtype()
        .tensor_type()
        .ok_or_else(|| DetectError::OutputType {
            output: name.to_string(),
            reason: "not a tensor".into(),
        })?;
    Ok(match ty {
        TensorElementType::Float32 => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(reading)?;
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                data.to_vec(),
            )
        }
        TensorElementType::Float16 => {
            let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(reading)?;
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                data.iter().map(|v| v.to_f32()).collect(),
            )
        }
        TensorElementType::Float64 => conv!(f64),
        TensorElementType::Int64 => conv!(i64),
        TensorElementType::Int32 => conv!(i32),
        TensorElementType::Uint8 => conv!(u8),
        TensorElementType::Int8 => conv!(i8),
        other => {
            return Err(DetectError::OutputType {
                output: name.to_string(),
                reason: format!("element type {other:?} is not supported"),
            })
        }
    })
}

impl OrtEngine {
    /// Loads `model` on the first of `settings.providers` that works and runs
    /// `settings.warmup_runs` zero inputs through it.
    ///
    /// `fallback_size` is the square input side (px) used when the model leaves it symbolic
    /// (config `detector.input_size`). Fails with [`DetectError::Load`] when the library or the
    /// model cannot be loaded or no listed provider works; the message names what to install.
    pub fn load(
        model: &Path,
        settings: &OrtSettings,
        fallback_size: Option<u32>,
    ) -> Result<OrtEngine, DetectError> {
        let path = model.display().to_string();
        let load_err = |reason: String| DetectError::Load {
            path: path.clone(),
            reason,
        };
        if settings.providers.is_empty() {
            return Err(load_err(
                "no execution provider listed: set [detector.onnxruntime] providers, e.g. \
                 [\"tensorrt\", \"cuda\", \"cpu\"]"
                    .into(),
            ));
        }
        let bytes = std::fs::read(model)
            .map_err(|e| load_err(format!("{e}; check the detector model path")))?;
        let env = environment(settings, &load_err)?;
        let threads = settings
            .intra_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut failures = Vec::new();
        let mut loaded = None;
        for &p in &settings.providers {
            let t0 = Instant::now();
            let attempt = (|| -> Result<Session, String> {
                let cache = match p {
                    OrtProvider::TensorRt => Some(trt_cache(settings, &bytes)?),
                    _ => None,
                };
                let eps = providers_for(p, &settings.providers, settings, cache.as_ref());
                let mut builder = Session::builder(&env)
                    .map_err(|e| e.to_string())?
                    .with_intra_threads(threads)
                    .map_err(|e| e.to_string())?
                    .with_log_level(LogLevel::Warning)
                    .map_err(|e| e.to_string())?
                    .with_execution_providers(eps)
                    .map_err(|e| format!("cannot register the provider: {e}"))?;
                builder
                    .commit_from_memory(&bytes)
                    .map_err(|e| format!("cannot load the model with it: {e}"))
            })();
            if attempt.is_err() && p == OrtProvider::TensorRt {
                // Leave no empty engine directory behind for a provider that never ran
                // (remove_dir only removes an empty one).
                let _ = std::fs::remove_dir(trt_dir(settings, &bytes));
            }
            match attempt {
                Ok(session) => {
                    loaded = Some((p, session, t0.elapsed()));
                    break;
                }
                Err(reason) => {
                    tracing::warn!(
                        provider = p.name(),
                        %reason,
                        "ONNX Runtime execution provider unavailable, trying the next listed one; {}",
                        provider_hint(p)
                    );
                    failures.push(format!("{}: {reason}", p.name()));
                }
            }
        }
        let Some((p, session, load_time)) = loaded else {
            let hints: Vec<&str> = settings
                .providers
                .iter()
                .map(|&p| provider_hint(p))
                .collect();
            return Err(load_err(format!(
                "none of the execution providers {:?} works ({}); {}. Add \"cpu\" to \
                 [detector.onnxruntime] providers to run on the CPU",
                settings
                    .providers
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
                failures.join("; "),
                hints.join("; ")
            )));
        };
        let info = model_info(&session).map_err(&load_err)?;
        let input_f16 = session
            .inputs()
            .first()
            .and_then(|i| i.dtype().tensor_type())
            == Some(TensorElementType::Float16);
        let provider = provider_label(p, settings.precision);
        let mut engine = OrtEngine {
            session,
            info,
            provider,
            input_f16,
        };
        tracing::info!(
            provider = %engine.provider,
            model = %path,
            load_ms = load_time.as_millis() as u64,
            "detector model loaded"
        );
        engine.warm_up(settings.warmup_runs, fallback_size)?;
        Ok(engine)
    }

    /// Runs `runs` zero inputs (TensorRT builds or loads its engine on the first) and logs the time.
    fn warm_up(&mut self, runs: u32, fallback_size: Option<u32>) -> Result<(), DetectError> {
        if runs == 0 {
            return Ok(());
        }
        let size = match self.info.input_shape.as_slice() {
            [_, _, Some(h), Some(w)] if h == w => *h as u32,
            _ => fallback_size.unwrap_or(416),
        };
        let zeros = vec![0.0f32; 3 * (size as usize).pow(2)];
        let t0 = Instant::now();
        let mut first_ms = 0.0;
        for i in 0..runs {
            self.run(&zeros, size)?;
            if i == 0 {
                first_ms = t0.elapsed().as_secs_f64() * 1e3;
            }
        }
        tracing::info!(
            provider = %self.provider,
            runs,
            first_ms = format!("{first_ms:.1}"),
            total_ms = format!("{:.1}", t0.elapsed().as_secs_f64() * 1e3),
            "detector warm-up done"
        );
        Ok(())
    }

    /// Runs the model on a CUDA device buffer without a host copy: `ptr` points to an NCHW
    /// `[1, 3, size, size]` tensor (f16 when `f16`, else f32) in the memory of GPU `device_id`,
    /// bound as the input with an ONNX Runtime IoBinding; outputs come back in host memory.
    ///
    /// Built and type-checked in CI but not run there (no GPU): it needs the CUDA or TensorRT
    /// provider on the same device.
    ///
    /// # Safety
    /// `ptr` must be a live CUDA allocation on `device_id` of at least `3 * size * size`
    /// elements of the given type, not written by anyone else until this returns.
    pub unsafe fn run_device(
        &mut self,
        ptr: *mut std::ffi::c_void,
        size: u32,
        f16: bool,
        device_id: i32,
    ) -> Result<Vec<OutputTensor>, DetectError> {
        let name = |f16: bool| if f16 { "f16" } else { "f32" };
        if f16 != self.input_f16 {
            return Err(DetectError::InputType {
                given: name(f16),
                model: name(self.input_f16),
            });
        }
        let run = failed("binding the device input");
        let cuda = MemoryInfo::new(
            AllocationDevice::CUDA,
            device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(run)?;
        let host = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::CPUOutput,
        )
        .map_err(run)?;
        let shape = Shape::new([1, 3, i64::from(size), i64::from(size)]);
        let mut binding = self.session.create_binding().map_err(run)?;
        if f16 {
            // SAFETY: the caller guarantees a device buffer of this shape and type.
            let t =
                unsafe { TensorRefMut::<half::f16>::from_raw(cuda, ptr, shape) }.map_err(run)?;
            binding.bind_input(&self.info.input_name, &t).map_err(run)?;
        } else {
            // SAFETY: as above, f32.
            let t = unsafe { TensorRefMut::<f32>::from_raw(cuda, ptr, shape) }.map_err(run)?;
            binding.bind_input(&self.info.input_name, &t).map_err(run)?;
        }
        for (name, _) in &self.info.outputs {
            binding.bind_output_to_device(name, &host).map_err(run)?;
        }
        let outputs = self
            .session
            .run_binding(&binding)
            .map_err(failed("running the model"))?;
        collect_outputs(&outputs)
    }
}

/// Maps an ONNX Runtime error at `step` of a run into [`DetectError::Inference`].
fn failed(step: &'static str) -> impl Fn(ort::Error) -> DetectError + Copy {
    move |e| DetectError::Inference {
        step: step.into(),
        cause: Box::new(e),
    }
}

/// Input, outputs and custom metadata of a loaded session.
fn model_info(session: &Session) -> Result<ModelInfo, String> {
    let input = match session.inputs() {
        [one] => one,
        many => {
            return Err(format!(
                "expected 1 image input [1,3,S,S], the model has {}",
                many.len()
            ))
        }
    };
    let mut metadata = BTreeMap::new();
    if let Ok(meta) = session.metadata() {
        for key in meta.custom_keys().unwrap_or_default() {
            if let Some(v) = meta.custom(&key) {
                metadata.insert(key, v);
            }
        }
    }
    Ok(ModelInfo {
        input_name: input.name().to_string(),
        input_shape: tensor_dims(input.dtype()),
        outputs: session
            .outputs()
            .iter()
            .map(|o| (o.name().to_string(), tensor_dims(o.dtype())))
            .collect(),
        metadata,
    })
}

impl Engine for OrtEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    unsafe fn run_device(
        &mut self,
        ptr: *mut std::ffi::c_void,
        size: u32,
        f16: bool,
        device_id: i32,
    ) -> Option<Result<Vec<OutputTensor>, DetectError>> {
        // SAFETY: the caller upholds the trait's contract, which is the inherent method's.
        Some(unsafe { OrtEngine::run_device(self, ptr, size, f16, device_id) })
    }

    fn run(&mut self, input: &[f32], size: u32) -> Result<Vec<OutputTensor>, DetectError> {
        let s = size as usize;
        if input.len() != 3 * s * s {
            return Err(DetectError::InputLength {
                size_px: size,
                values: input.len(),
                expected: 3 * s * s,
            });
        }
        let run = failed("building the input tensor");
        let shape = [1usize, 3, s, s];
        let half_input: Vec<half::f16>;
        let value = if self.input_f16 {
            half_input = input.iter().map(|&v| half::f16::from_f32(v)).collect();
            TensorRef::from_array_view((shape, half_input.as_slice()))
                .map_err(run)?
                .into_dyn()
        } else {
            TensorRef::from_array_view((shape, input))
                .map_err(run)?
                .into_dyn()
        };
        let outputs = self
            .session
            .run(ort::inputs![self.info.input_name.as_str() => value])
            .map_err(failed("running the model"))?;
        collect_outputs(&outputs)
    }

    fn provider(&self) -> String {
        self.provider.clone()
    }
}
