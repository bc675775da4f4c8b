//! Looks at the machine before ONNX Runtime does: is the library loadable, which TensorRT and
//! which GPU are there (for the engine cache key).

use std::path::{Path, PathBuf};

use super::{gpu_name, install_hint, trt_version_string};

/// The library to load: `configured`, else `$ORT_DYLIB_PATH` (`env`), else the bare file name, which
/// `dlopen` looks up on the system library path. A relative path with a directory part is made
/// absolute against the working directory (`ort` would otherwise resolve it next to the executable).
pub(crate) fn library_path(configured: Option<&Path>, env: Option<&str>) -> PathBuf {
    let p = configured
        .map(Path::to_path_buf)
        .or_else(|| env.filter(|s| !s.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
    if p.is_relative() && p.components().count() > 1 {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(p);
        }
    }
    p
}

/// `e` and its sources, `: `-separated (libloading puts dlerror's text in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Checks that `path` can be `dlopen`ed and exports `OrtGetApiBase`; the error says what to
/// install. Runs before `ort` sees the path because `ort`'s lazy loader panics on failure.
pub(crate) fn check_library(path: &Path) -> Result<(), String> {
    // SAFETY: loading ONNX Runtime runs its static initialisers, which is what loading it for
    // inference does anyway; nothing else is called.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        format!(
            "cannot load the ONNX Runtime library {} ({}): {}",
            path.display(),
            error_chain(&e),
            install_hint(std::env::consts::ARCH)
        )
    })?;
    // SAFETY: only the symbol's presence is checked; it is not called.
    let has_api =
        unsafe { lib.get::<unsafe extern "C" fn() -> *const std::ffi::c_void>(b"OrtGetApiBase") }
            .is_ok();
    if !has_api {
        return Err(format!(
            "{} is not an ONNX Runtime library (no OrtGetApiBase): {}",
            path.display(),
            install_hint(std::env::consts::ARCH)
        ));
    }
    Ok(())
}

/// TensorRT's version from `getInferLibVersion` in libnvinfer (10, then 8), `unknown` without it.
pub(crate) fn trt_version() -> String {
    for name in ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"] {
        // SAFETY: libnvinfer's initialisers only register its own plugins; the one function
        // called takes no arguments and returns an int.
        let Ok(lib) = (unsafe { libloading::Library::new(name) }) else {
            continue;
        };
        let v = unsafe { lib.get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion") }
            .map(|f| unsafe { f() });
        if let Ok(v) = v {
            return trt_version_string(v);
        }
    }
    "unknown".into()
}

/// The name of GPU `device_id` from the NVIDIA driver's /proc files, else the board model
/// (Jetson), path-safe.
pub(crate) fn gpu(device_id: i32) -> String {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    let infos: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("information")).ok())
        .collect();
    let board = std::fs::read("/proc/device-tree/model")
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    gpu_name(&infos, board.as_deref(), device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_path_order() {
        let conf = Path::new("/opt/ort/libonnxruntime.so");
        assert_eq!(library_path(Some(conf), Some("/x.so")), conf);
        assert_eq!(library_path(None, Some("/x.so")), Path::new("/x.so"));
        assert_eq!(library_path(None, Some("")), Path::new("libonnxruntime.so"));
        assert_eq!(library_path(None, None), Path::new("libonnxruntime.so"));
        assert!(library_path(Some(Path::new("lib/a.so")), None).is_absolute());
    }

    #[test]
    fn missing_or_foreign_library_is_an_error_with_a_hint() {
        let err = check_library(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
        assert!(err.contains("onnxruntime"), "{err}");
        // libc loads but is not ONNX Runtime.
        let err = check_library(Path::new("libc.so.6")).unwrap_err();
        assert!(err.contains("not an ONNX Runtime library"), "{err}");
    }

    #[test]
    fn probes_do_not_fail_without_nvidia() {
        assert!(!trt_version().is_empty());
        assert!(!gpu(0).is_empty());
    }
}
