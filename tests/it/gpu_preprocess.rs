//! GPU letterbox kernels vs the CPU reference (`--features cuda`).
//!
//! Without a CUDA driver (or NVRTC) the tests print `SKIPPED: cuda` (visible even without
//! `--nocapture`) and pass, unless `SPEEDCAM_REQUIRE` names `cuda`, which turns the skip into a
//! failure (the device check, scripts/device_check.sh, sets it; see `util/mod.rs`). The timing
//! printout, `kernel_times`, is `#[ignore]`d: the device check runs it with `--include-ignored
//! --nocapture` for the median kernel times per layout and dtype.

use crate::util::{need, say, Tool};
use std::time::Instant;

use speedcam::detect::engine::PreprocessSpec;
use speedcam::detect::gpu::{
    compile_kernels_ptx, cuda_available, nvrtc_available, CudaMissing, GpuError, GpuPreprocessor,
};
use speedcam::detect::preprocess_ref::{
    preprocess_reference, PlaneLayout, SrcFormat, SrcFrame, TensorData, TensorDtype,
};
use speedcam::frame::Frame;

const YOLOX: PreprocessSpec = PreprocessSpec::YOLOX;

/// A preprocessor on device 0, or None after `SKIPPED: cuda` (the skip rule).
fn gpu_or_skip() -> Option<GpuPreprocessor> {
    need(Tool::Cuda, cuda_available().map_err(|e| e.to_string()))?;
    Some(GpuPreprocessor::new(0).expect("CUDA is available but new(0) failed"))
}

/// The test photo scaled to `w x h` (real content: edges, textures, saturated colours).
fn picture(w: u32, h: u32) -> image::RgbImage {
    let photo = image::open("tests/data/images/darknet_dog.jpg")
        .expect("test photo")
        .to_rgb8();
    image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle)
}

/// Bytes + plane layouts of `img` in `format`, with `extra` padding bytes per row (0xEE filler,
/// never read) and, for NV12, a gap before the UV plane as NVDEC surfaces have.
fn encode(img: &image::RgbImage, format: SrcFormat, extra: usize) -> (Vec<u8>, [PlaneLayout; 3]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let pl = |offset_bytes, stride_bytes| PlaneLayout {
        offset_bytes,
        stride_bytes,
    };
    match format {
        SrcFormat::Rgb | SrcFormat::Bgr => {
            let s = w * 3 + extra;
            let mut d = vec![0xEE; s * h];
            for (x, y, p) in img.enumerate_pixels() {
                let at = y as usize * s + x as usize * 3;
                let v = if format == SrcFormat::Bgr {
                    [p[2], p[1], p[0]]
                } else {
                    p.0
                };
                d[at..at + 3].copy_from_slice(&v);
            }
            (d, [pl(0, s), pl(0, 0), pl(0, 0)])
        }
        SrcFormat::I420 | SrcFormat::Nv12 => {
            let f = Frame::i420_from_rgb_image("t".into(), 0, 0, img);
            let (y, rest) = f.data.split_at(w * h);
            let (u, v) = rest.split_at(cw * ch);
            let ys = w + extra;
            let mut d = vec![0xEE; ys * (h + 4)];
            for r in 0..h {
                d[r * ys..r * ys + w].copy_from_slice(&y[r * w..(r + 1) * w]);
            }
            if format == SrcFormat::I420 {
                let cs = cw + extra;
                let (uo, vo) = (d.len(), d.len() + cs * ch);
                d.resize(vo + cs * ch, 0xEE);
                for r in 0..ch {
                    d[uo + r * cs..uo + r * cs + cw].copy_from_slice(&u[r * cw..(r + 1) * cw]);
                    d[vo + r * cs..vo + r * cs + cw].copy_from_slice(&v[r * cw..(r + 1) * cw]);
                }
                (d, [pl(0, ys), pl(uo, cs), pl(vo, cs)])
            } else {
                let uvs = 2 * cw + extra;
                let uvo = d.len();
                d.resize(uvo + uvs * ch, 0xEE);
                for r in 0..ch {
                    for c in 0..cw {
                        d[uvo + r * uvs + 2 * c] = u[r * cw + c];
                        d[uvo + r * uvs + 2 * c + 1] = v[r * cw + c];
                    }
                }
                (d, [pl(0, ys), pl(uvo, uvs), pl(0, 0)])
            }
        }
    }
}

const FORMATS: [SrcFormat; 4] = [
    SrcFormat::Nv12,
    SrcFormat::I420,
    SrcFormat::Rgb,
    SrcFormat::Bgr,
];

/// One f16 unit in the last place at `v` (the spacing above |v|).
fn f16_ulp(v: f32) -> f32 {
    let h = half::f16::from_f32(v.abs());
    half::f16::from_bits(h.to_bits() + 1).to_f32() - h.to_f32()
}

#[test]
fn nvrtc_compiles_the_kernels() {
    if need(Tool::Cuda, nvrtc_available().map_err(|e| e.to_string())).is_none() {
        return;
    }
    // Orin (8.7), H100 (9.0) and NVRTC's default architecture.
    for cc in [Some((8, 7)), Some((9, 0)), None] {
        let ptx = compile_kernels_ptx(cc).unwrap_or_else(|e| panic!("{cc:?}: {e}"));
        let text = ptx.to_src();
        for entry in ["letterbox_f32", "letterbox_f16"] {
            assert!(
                text.contains(&format!(".entry {entry}")),
                "{cc:?}: no {entry}"
            );
        }
        assert!(text.contains("cvt.rn.f16.f32"), "f16 rounding instruction");
        let target = text
            .lines()
            .find(|l| l.starts_with(".target"))
            .unwrap_or("?");
        println!("{cc:?}: {} bytes of PTX, {target}", text.len());
        if let Ok(dir) = std::env::var("SPEEDCAM_PTX_DUMP_DIR") {
            let name = cc.map_or("default".into(), |(a, b)| format!("sm{a}{b}"));
            std::fs::write(format!("{dir}/letterbox_{name}.ptx"), &text).unwrap();
        }
    }
}

/// The detector runs on its own thread: the preprocessor must be able to move there.
#[test]
fn preprocessor_is_send() {
    fn is_send<T: Send>() {}
    is_send::<GpuPreprocessor>();
}

#[test]
fn new_reports_a_missing_driver_as_an_error() {
    if cuda_available().is_ok() {
        // With a GPU: an absent device ordinal is an error too, not a panic.
        assert!(GpuPreprocessor::new(4096).is_err());
        return;
    }
    match GpuPreprocessor::new(0) {
        // As expected; the missing driver is announced (or required) by the skip rule.
        Err(GpuError::Unavailable { cause }) => {
            need::<()>(Tool::Cuda, Err(cause.to_string()));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn kernels_match_the_reference() {
    let Some(mut gpu) = gpu_or_skip() else {
        return;
    };
    println!("device: {}", gpu.device_name().unwrap_or_default());
    // (w, h, extra row bytes, input side): 720p, an odd-ish 640x272 with odd strides, square.
    let cases = [
        (1280u32, 720u32, 0usize, 416u32),
        (640, 272, 13, 416),
        (416, 416, 5, 416),
        (640, 272, 3, 320),
    ];
    let mut worst = (0.0f32, String::new());
    for (w, h, extra, size) in cases {
        let img = picture(w, h);
        for format in FORMATS {
            let (data, planes) = encode(&img, format, extra);
            let src = SrcFrame {
                data: &data,
                format,
                width_px: w,
                height_px: h,
                planes,
            };
            for (spec_name, spec) in [("nanodet", PreprocessSpec::NANODET), ("yolox", YOLOX)] {
                for dtype in [TensorDtype::F32, TensorDtype::F16] {
                    let (want, want_map) = preprocess_reference(&src, &spec, size, dtype).unwrap();
                    let input = gpu.run(&src, &spec, size, dtype).unwrap();
                    assert_eq!(input.map, want_map);
                    assert_eq!(input.shape, [1, 3, size as usize, size as usize]);
                    assert_ne!(input.device_ptr, 0);
                    let got = input.download().unwrap();
                    let label =
                        format!("{format:?} {w}x{h}+{extra} -> {size} {spec_name} {dtype:?}");
                    let (got, want) = match (&got, &want) {
                        (TensorData::F32(_), TensorData::F32(_))
                        | (TensorData::F16(_), TensorData::F16(_)) => (got.to_f32(), want.to_f32()),
                        _ => panic!("{label}: dtype mismatch"),
                    };
                    let mut max = 0.0f32;
                    for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                        let d = (g - r).abs();
                        // f16: a GPU value a hair away from an f16 rounding midpoint may round
                        // the other way: allow one f16 ulp where that exceeds 1e-3.
                        let tol = match dtype {
                            TensorDtype::F32 => 1e-3,
                            TensorDtype::F16 => f16_ulp(*r).max(1e-3),
                        };
                        assert!(d <= tol, "{label}: element {i}: gpu {g} vs reference {r}");
                        max = max.max(d);
                    }
                    println!("{label}: max |gpu - reference| = {max:e}");
                    if max >= worst.0 {
                        worst = (max, label);
                    }
                }
            }
        }
    }
    println!("worst case: {} ({:e})", worst.1, worst.0);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A timing printout, not a check (it asserts nothing): `#[ignore]`d, and run by
/// scripts/device_check.sh (`--include-ignored --nocapture`) on a machine with a GPU.
#[test]
#[ignore = "timing printout, run by scripts/device_check.sh"]
fn kernel_times() {
    let Some(mut gpu) = gpu_or_skip() else {
        return;
    };
    let img = picture(1280, 720);
    println!(
        "kernel times, 1280x720 -> 416, median of 50 ({})",
        gpu.device_name().unwrap_or_default()
    );
    println!("layout dtype   kernel_ms upload_ms run_total_ms");
    for format in FORMATS {
        let (data, planes) = encode(&img, format, 0);
        let src = SrcFrame {
            data: &data,
            format,
            width_px: 1280,
            height_px: 720,
            planes,
        };
        for dtype in [TensorDtype::F32, TensorDtype::F16] {
            let (mut k, mut u, mut t) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..55 {
                let start = Instant::now();
                let input = gpu.run(&src, &PreprocessSpec::NANODET, 416, dtype).unwrap();
                let total = start.elapsed().as_secs_f64() * 1e3;
                if i >= 5 {
                    k.push(input.kernel_ms as f64);
                    u.push(input.upload_ms as f64);
                    t.push(total);
                }
            }
            println!(
                "{:<6} {:<6} {:>9.4} {:>9.4} {:>12.4}",
                format!("{format:?}"),
                format!("{dtype:?}"),
                median(k),
                median(u),
                median(t)
            );
        }
    }
}

#[test]
fn rejects_a_bad_layout_before_touching_the_gpu() {
    let Some(mut gpu) = gpu_or_skip() else {
        return;
    };
    let d = vec![0u8; 100];
    let src = SrcFrame::nv12(&d, 8, 8, 8, 8);
    assert!(gpu.run(&src, &YOLOX, 8, TensorDtype::F32).is_ok());
}

/// A libcuda.so.1 that loads but has none of the driver's symbols makes cudarc panic on its
/// first call; cuda_available() and new() must turn that into an error. The check runs in a
/// child process (the loader reads LD_LIBRARY_PATH at start-up) with a stub built by `cc`, on
/// machines with and without a real driver.
#[test]
fn a_broken_driver_library_is_an_error_not_a_panic() {
    if std::env::var_os("SPEEDCAM_STUB_CUDA_CHILD").is_some() {
        let reason = cuda_available().expect_err("stub libcuda must not count as available");
        assert!(
            matches!(reason, CudaMissing::DriverUnusable { .. }),
            "{reason}"
        );
        assert!(matches!(
            GpuPreprocessor::new(0),
            Err(GpuError::Unavailable { .. })
        ));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let c = dir.path().join("stub.c");
    std::fs::write(&c, "int speedcam_stub(void) { return 0; }\n").expect("write stub");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.path().join("libcuda.so"))
        .arg(&c)
        .status();
    // cudarc tries libcuda.so first, then versioned names: shadow both on a machine with a driver.
    let linked = std::fs::copy(
        dir.path().join("libcuda.so"),
        dir.path().join("libcuda.so.1"),
    );
    if !built.is_ok_and(|s| s.success()) || linked.is_err() {
        say("SKIPPED: no C compiler for the stub libcuda");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "gpu_preprocess::a_broken_driver_library_is_an_error_not_a_panic",
        ])
        .env("SPEEDCAM_STUB_CUDA_CHILD", "1")
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
