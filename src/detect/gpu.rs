//! GPU preprocessing (`--features cuda`): a decoded frame in host memory -> letterboxed, normalised
//! NCHW tensor in device memory, ready for an inference provider to bind without a host round trip.
//!
//! The kernels ([`super::gpu_kernel::KERNEL_SRC`]) are compiled once per [`GpuPreprocessor`] with
//! NVRTC for the device's compute capability, so the build needs no CUDA toolkit and the binary
//! runs on any driver new enough for CUDA 12.6 bindings (JetPack 6, desktop drivers). They compute
//! exactly [`super::preprocess_ref`]: tests pin them to it.
//!
//! cudarc loads libcuda and libnvrtc at run time and panics when either is missing, so
//! [`cuda_available`] probes first, every cudarc call runs under `catch_unwind`, and callers only
//! ever see a [`GpuError`].

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use super::engine::PreprocessSpec;
use super::gpu_kernel::{launch_dims, KernelParams, KERNEL_F16, KERNEL_F32, KERNEL_SRC};
use super::letterbox::LetterboxMap;
use super::preprocess_ref::{PreprocessError, SrcFrame, TensorData, TensorDtype};

// SAFETY: KernelParams is #[repr(C)], Copy, made of 4-byte scalars only, and matches the kernel's
// `LetterboxParams` field for field (checked by the host emulation test in gpu_kernel).
unsafe impl DeviceRepr for KernelParams {}

/// What this machine lacks for GPU preprocessing.
#[derive(Debug, thiserror::Error)]
pub enum CudaMissing {
    /// libcuda cannot be loaded: no NVIDIA driver.
    #[error("no CUDA driver (libcuda.so.1 not found)")]
    NoDriver,
    /// The driver loads but sees no device.
    #[error("CUDA driver loaded but it reports {devices} devices")]
    NoDevice {
        /// Devices the driver reports.
        devices: i32,
    },
    /// The driver loads but does not initialise (or lacks a symbol cudarc needs).
    #[error("CUDA driver loaded but unusable: {cause}")]
    DriverUnusable {
        /// What the driver call did.
        cause: Box<GpuError>,
    },
    /// libnvrtc cannot be loaded.
    #[error(
        "no NVRTC (libnvrtc.so.12 not found; install the CUDA toolkit's nvrtc or put its lib \
         directory on LD_LIBRARY_PATH)"
    )]
    NoNvrtc,
}

/// Why GPU preprocessing is not possible or failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No usable driver, device or NVRTC on this machine.
    #[error("CUDA unavailable: {cause}")]
    Unavailable {
        /// What is missing.
        cause: CudaMissing,
    },
    /// A CUDA driver call failed.
    #[error("CUDA {what} failed: {cause}")]
    Driver {
        /// The operation, e.g. "memcpy host to device".
        what: &'static str,
        /// The driver's error code.
        cause: DriverError,
    },
    /// A download asked for a tensor that no run produced.
    #[error("CUDA download failed: no output buffer (the run that made this input failed)")]
    NoOutput,
    /// NVRTC rejected the kernel source (a bug in this crate, or an NVRTC too old).
    #[error("NVRTC could not compile the letterbox kernels: {cause}")]
    Compile {
        /// NVRTC's error (with its log).
        cause: CompileError,
    },
    /// NVRTC rejected the kernels for the device's architecture and for its default one.
    #[error(
        "NVRTC could not compile the letterbox kernels: {cause} (for {arch}); default arch: \
         {fallback}"
    )]
    CompileForArch {
        /// The architecture option tried first.
        arch: String,
        /// NVRTC's error for it.
        cause: CompileError,
        /// NVRTC's error for its default architecture.
        fallback: CompileError,
    },
    /// cudarc panicked (e.g. a driver lacking a symbol of the CUDA 12.6 API); caught here.
    #[error("cudarc panicked in {what}: {message}")]
    Panic {
        /// The operation that panicked.
        what: &'static str,
        /// The panic message.
        message: String,
    },
    /// The frame or input size is invalid.
    #[error(transparent)]
    Input(#[from] PreprocessError),
}

/// Maps a cudarc driver error into [`GpuError::Driver`] for `what`.
fn drv(what: &'static str) -> impl Fn(DriverError) -> GpuError {
    move |cause| GpuError::Driver { what, cause }
}

/// Runs `f`, turning a panic inside it (cudarc's way of reporting a missing library or symbol)
/// into [`GpuError::Panic`].
fn guard<T>(what: &'static str, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            Err(GpuError::Panic { what, message })
        }
    }
}

/// Checks that libnvrtc can be loaded (it is part of the CUDA toolkit, not of the driver).
pub fn nvrtc_available() -> Result<(), CudaMissing> {
    // SAFETY: only dlopen()s candidate names and closes them again.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaMissing::NoNvrtc)
    }
}

/// Checks, without panicking, that GPU preprocessing can work here: the driver library loads,
/// the driver initialises and sees at least one device, and NVRTC loads. The error says what is
/// missing ([`CudaMissing::NoDriver`] on machines without a GPU driver).
pub fn cuda_available() -> Result<(), CudaMissing> {
    // SAFETY: only dlopen()s candidate names and closes them again.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaMissing::NoDriver);
    }
    match guard("cuInit", || {
        CudaContext::device_count().map_err(drv("cuInit / cuDeviceGetCount"))
    }) {
        Ok(n) if n > 0 => {}
        Ok(devices) => return Err(CudaMissing::NoDevice { devices }),
        Err(e) => return Err(CudaMissing::DriverUnusable { cause: Box::new(e) }),
    }
    nvrtc_available()
}

/// Compiles [`KERNEL_SRC`] to PTX with NVRTC: for `compute_capability` (major, minor) when given
/// (falling back to NVRTC's default architecture when this NVRTC does not know it), with
/// multiply-add contraction off so results match [`super::preprocess_ref`] bit for bit.
pub fn compile_kernels_ptx(compute_capability: Option<(i32, i32)>) -> Result<Ptx, GpuError> {
    nvrtc_available().map_err(|cause| GpuError::Unavailable { cause })?;
    guard("NVRTC compile", || {
        let opts = |arch: Option<String>| CompileOptions {
            fmad: Some(false),
            options: arch.into_iter().collect(),
            name: Some("speedcam_letterbox.cu".into()),
            ..Default::default()
        };
        let arch =
            compute_capability.map(|(ma, mi)| format!("--gpu-architecture=compute_{ma}{mi}"));
        let first = cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SRC, opts(arch.clone()));
        match first {
            Ok(ptx) => Ok(ptx),
            Err(cause) => match arch {
                None => Err(GpuError::Compile { cause }),
                Some(arch) => cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SRC, opts(None)).map_err(
                    |fallback| GpuError::CompileForArch {
                        arch,
                        cause,
                        fallback,
                    },
                ),
            },
        }
    })
}

/// Letterboxes frames into a device tensor on one GPU. Keeps the compiled kernels, the frame
/// buffer and the output tensor between frames; buffers are reallocated only when a frame grows
/// or the tensor size or dtype changes. Not `Sync`: one preprocessor per inference thread.
pub struct GpuPreprocessor {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernel_f32: CudaFunction,
    kernel_f16: CudaFunction,
    frame: Option<CudaSlice<u8>>,
    out_f32: Option<CudaSlice<f32>>,
    out_f16: Option<CudaSlice<u16>>,
    /// Timing events: before upload, after upload, after the kernel.
    events: [CudaEvent; 3],
    device_index: usize,
}

impl std::fmt::Debug for GpuPreprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuPreprocessor")
            .field("device_index", &self.device_index)
            .finish_non_exhaustive()
    }
}

/// A preprocessed input tensor in device memory, valid until the next
/// [`GpuPreprocessor::run`] (the borrow enforces it). The kernel has finished when this is
/// returned, so any stream may read it.
#[derive(Debug)]
pub struct GpuInput<'a> {
    /// Device address of the first element (a `CUdeviceptr`).
    pub device_ptr: u64,
    /// [1, 3, S, S].
    pub shape: [usize; 4],
    /// Element type.
    pub dtype: TensorDtype,
    /// Mapping from frame px to input px, for turning boxes back.
    pub map: LetterboxMap,
    /// CUDA device ordinal holding the tensor.
    pub device_index: usize,
    /// Host -> device copy of the frame, ms (CUDA events).
    pub upload_ms: f32,
    /// The letterbox kernel, ms (CUDA events).
    pub kernel_ms: f32,
    owner: &'a GpuPreprocessor,
}

impl GpuInput<'_> {
    /// The device address as a pointer, for C APIs (e.g. ONNX Runtime's `CreateTensor` on CUDA memory).
    pub fn as_mut_ptr(&self) -> *mut c_void {
        self.device_ptr as usize as *mut c_void
    }

    /// Number of elements, `3 * S * S`.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Always false (a tensor has at least 3 elements); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the tensor, bytes.
    pub fn size_bytes(&self) -> usize {
        self.len() * self.dtype.size_bytes()
    }

    /// Copies the tensor to the host (tests and debugging; the hot path never does this).
    pub fn download(&self) -> Result<TensorData, GpuError> {
        let o = self.owner;
        guard("download", || match self.dtype {
            TensorDtype::F32 => {
                let buf = o.out_f32.as_ref().ok_or_else(missing_output)?;
                let v = o
                    .stream
                    .clone_dtoh(buf)
                    .map_err(drv("memcpy device to host"))?;
                Ok(TensorData::F32(v))
            }
            TensorDtype::F16 => {
                let buf = o.out_f16.as_ref().ok_or_else(missing_output)?;
                let v = o
                    .stream
                    .clone_dtoh(buf)
                    .map_err(drv("memcpy device to host"))?;
                Ok(TensorData::F16(
                    v.into_iter().map(half::f16::from_bits).collect(),
                ))
            }
        })
    }
}

fn missing_output() -> GpuError {
    GpuError::NoOutput
}

impl GpuPreprocessor {
    /// Opens CUDA device `device_index` (its primary context, shared with ONNX Runtime's CUDA and
    /// TensorRT providers) and compiles the kernels. Fails, never panics, when there is no driver,
    /// no such device or no NVRTC.
    pub fn new(device_index: usize) -> Result<GpuPreprocessor, GpuError> {
        cuda_available().map_err(|cause| GpuError::Unavailable { cause })?;
        guard("GpuPreprocessor::new", || {
            let ctx = CudaContext::new(device_index).map_err(drv("context creation"))?;
            let cc = ctx.compute_capability().ok();
            let ptx = compile_kernels_ptx(cc)?;
            let module = ctx.load_module(ptx).map_err(drv("module load"))?;
            let kernel_f32 = module
                .load_function(KERNEL_F32)
                .map_err(drv("kernel lookup"))?;
            let kernel_f16 = module
                .load_function(KERNEL_F16)
                .map_err(drv("kernel lookup"))?;
            let event = || {
                ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                    .map_err(drv("event creation"))
            };
            let events = [event()?, event()?, event()?];
            Ok(GpuPreprocessor {
                stream: ctx.default_stream(),
                ctx,
                kernel_f32,
                kernel_f16,
                frame: None,
                out_f32: None,
                out_f16: None,
                events,
                device_index,
            })
        })
    }

    /// The CUDA device ordinal this preprocessor runs on.
    pub fn device_index(&self) -> usize {
        self.device_index
    }

    /// Device name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3" or "Orin".
    pub fn device_name(&self) -> Result<String, GpuError> {
        guard("device name", || {
            self.ctx.name().map_err(drv("device name"))
        })
    }

    /// Uploads `src`, runs the letterbox kernel for an `size_px` square input of `dtype` laid out
    /// per `spec`, waits for it and returns the device tensor. Fails on an invalid frame layout
    /// (before touching the GPU) or a CUDA error.
    pub fn run(
        &mut self,
        src: &SrcFrame<'_>,
        spec: &PreprocessSpec,
        size_px: u32,
        dtype: TensorDtype,
    ) -> Result<GpuInput<'_>, GpuError> {
        let (params, map) = KernelParams::new(src, spec, size_px)?;
        let n = 3 * (size_px as usize).pow(2);
        let result = guard("GpuPreprocessor::run", || {
            self.launch(src.data, &params, n, dtype)
        });
        let (device_ptr, upload_ms, kernel_ms) = match result {
            Ok(v) => v,
            Err(e) => {
                // State after a failure is unknown: start over with fresh buffers next time.
                self.frame = None;
                self.out_f32 = None;
                self.out_f16 = None;
                return Err(e);
            }
        };
        let s = size_px as usize;
        Ok(GpuInput {
            device_ptr,
            shape: [1, 3, s, s],
            dtype,
            map,
            device_index: self.device_index,
            upload_ms,
            kernel_ms,
            owner: self,
        })
    }

    /// Upload + launch + wait; returns (device pointer, upload ms, kernel ms).
    fn launch(
        &mut self,
        data: &[u8],
        params: &KernelParams,
        n: usize,
        dtype: TensorDtype,
    ) -> Result<(u64, f32, f32), GpuError> {
        let stream = &self.stream;
        // Frame buffer: grows, never shrinks (decoders keep one size; a camera change grows it).
        if self.frame.as_ref().is_none_or(|b| b.len() < data.len()) {
            self.frame = None;
            // SAFETY: the upload below overwrites the bytes the kernel reads.
            self.frame = Some(unsafe { stream.alloc::<u8>(data.len()) }.map_err(drv("alloc"))?);
        }
        let frame = self.frame.as_mut().ok_or_else(missing_output)?;
        let [e0, e1, e2] = &self.events;
        e0.record(stream).map_err(drv("event record"))?;
        stream
            .memcpy_htod(data, frame)
            .map_err(drv("memcpy host to device"))?;
        e1.record(stream).map_err(drv("event record"))?;
        let ((gx, gy, gz), block) = launch_dims(params.size_px);
        let cfg = LaunchConfig {
            grid_dim: (gx, gy, gz),
            block_dim: block,
            shared_mem_bytes: 0,
        };
        let ptr = match dtype {
            TensorDtype::F32 => {
                if self.out_f32.as_ref().is_none_or(|b| b.len() != n) {
                    self.out_f32 = None;
                    // SAFETY: the kernel writes every element (one thread per output pixel).
                    self.out_f32 = Some(unsafe { stream.alloc::<f32>(n) }.map_err(drv("alloc"))?);
                }
                let out = self.out_f32.as_mut().ok_or_else(missing_output)?;
                let mut b = stream.launch_builder(&self.kernel_f32);
                b.arg(&*frame).arg(params).arg(&mut *out);
                // SAFETY: argument types match the kernel signature (const u8*, LetterboxParams,
                // float*); the grid covers S x S and the kernel bounds-checks; the buffers hold
                // the validated frame and 3*S*S outputs.
                unsafe { b.launch(cfg) }.map_err(drv("kernel launch"))?;
                out.device_ptr(stream).0
            }
            TensorDtype::F16 => {
                if self.out_f16.as_ref().is_none_or(|b| b.len() != n) {
                    self.out_f16 = None;
                    // SAFETY: the kernel writes every element (one thread per output pixel).
                    self.out_f16 = Some(unsafe { stream.alloc::<u16>(n) }.map_err(drv("alloc"))?);
                }
                let out = self.out_f16.as_mut().ok_or_else(missing_output)?;
                let mut b = stream.launch_builder(&self.kernel_f16);
                b.arg(&*frame).arg(params).arg(&mut *out);
                // SAFETY: as above, with unsigned short* (IEEE half bits) output.
                unsafe { b.launch(cfg) }.map_err(drv("kernel launch"))?;
                out.device_ptr(stream).0
            }
        };
        e2.record(stream).map_err(drv("event record"))?;
        stream.synchronize().map_err(drv("stream synchronize"))?;
        self.ctx.check_err().map_err(drv("deferred error"))?;
        let upload_ms = e0.elapsed_ms(e1).map_err(drv("event timing"))?;
        let kernel_ms = e1.elapsed_ms(e2).map_err(drv("event timing"))?;
        Ok((ptr, upload_ms, kernel_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What CUDA lacks, and the driver's error inside it, are printed once by `{e:#}`.
    #[test]
    fn an_unusable_driver_prints_its_cause_once() {
        let err = GpuError::Unavailable {
            cause: CudaMissing::DriverUnusable {
                cause: Box::new(GpuError::NoOutput),
            },
        };
        let shown = speedcam_core::error_chain::assert_cause_printed_once(&err);
        assert_eq!(shown.matches("no output buffer").count(), 1, "{shown}");
        assert!(shown.contains("unusable"), "{shown}");
    }
}
