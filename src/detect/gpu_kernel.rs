//! The CUDA C++ source of the letterbox kernels and the parameter block they take.
//!
//! Always compiled (no `cuda` feature needed) because none of it touches CUDA: the source is a
//! string that [`super::gpu`] hands to NVRTC at run time, and the tests here compile the very same
//! string with the host C++ compiler (a few macros stand in for CUDA's built-ins) and run it over
//! every thread of the grid, so indexing, strides, bounds and the arithmetic are checked against
//! [`super::preprocess_ref`] on machines without a GPU.
//!
//! The kernel follows the reference operation by operation (same f32 operations in the same order);
//! NVRTC compiles it with `--fmad=false` so no multiply-add is contracted and the results match the
//! CPU bit for bit up to NVRTC's choice of instructions.

use super::engine::PreprocessSpec;
use super::letterbox::LetterboxMap;
use super::preprocess_ref::{letterbox_map, NormConsts, PreprocessError, SrcFrame, MAX_SIDE_PX};

/// Entry point writing f32 output.
pub const KERNEL_F32: &str = "letterbox_f32";
/// Entry point writing f16 output (as IEEE half bit patterns).
pub const KERNEL_F16: &str = "letterbox_f16";
/// Threads per block along x (output columns); 32 keeps a warp on one output row (coalesced stores).
pub(crate) const BLOCK_X: u32 = 32;
/// Threads per block along y (output rows).
pub(crate) const BLOCK_Y: u32 = 8;

/// CUDA C++ source of both kernels. Needs no headers (NVRTC without a CUDA include directory):
/// the f32 -> f16 conversion is the one instruction `__float2half_rn` compiles to.
pub const KERNEL_SRC: &str = r#"
// speedcam: letterbox + normalise one frame into an NCHW [1,3,S,S] tensor.
// One thread per output pixel (all three channels). Mirrors src/detect/preprocess_ref.rs.
#define LAYOUT_NV12 0u
#define LAYOUT_I420 1u
#define LAYOUT_RGB 2u
#define LAYOUT_BGR 3u

struct LetterboxParams {
    unsigned int layout;     // LAYOUT_*
    unsigned int width;      // frame width, px (>= 1)
    unsigned int height;     // frame height, px (>= 1)
    unsigned int off0;       // plane 0 (Y or packed) offset, bytes
    unsigned int stride0;    // plane 0 row stride, bytes
    unsigned int off1;       // plane 1 (U or UV) offset, bytes
    unsigned int stride1;
    unsigned int off2;       // plane 2 (V, I420 only) offset, bytes
    unsigned int stride2;
    unsigned int size;       // S, output side, px
    unsigned int pad_x;      // picture's left edge in the output, px
    unsigned int pad_y;      // picture's top edge in the output, px
    unsigned int content_w;  // picture width in the output, px
    unsigned int content_h;  // picture height in the output, px
    unsigned int bgr_out;    // 1: tensor channels B,G,R; 0: R,G,B
    float ratio;             // frame px per output px (1 / scale)
    float mean[3];           // per tensor channel, pixel units
    float inv_std[3];        // 1 / std per tensor channel
    float pad[3];            // normalised border value per tensor channel
};

struct Axis {
    unsigned int i0;  // lower source index
    unsigned int i1;  // upper source index (clamped)
    float f;          // weight of i1
};

// Source coordinate of output pixel o at its centre, clamped into [0, last].
__device__ __forceinline__ Axis axis_of(unsigned int o, float ratio, unsigned int last) {
    float s = ((float)o + 0.5f) * ratio - 0.5f;
    s = fminf(fmaxf(s, 0.0f), (float)last);
    float f0 = floorf(s);
    Axis a;
    a.i0 = (unsigned int)f0;
    a.i1 = (a.i0 + 1u < last) ? (a.i0 + 1u) : last;
    a.f = s - f0;
    return a;
}

__device__ __forceinline__ float texel(const unsigned char* __restrict__ src, unsigned int off,
                                       unsigned int stride, unsigned int x, unsigned int y,
                                       unsigned int step, unsigned int ch) {
    unsigned long long at = (unsigned long long)off + (unsigned long long)y * stride
                          + (unsigned long long)x * step + ch;
    return (float)src[at];
}

__device__ __forceinline__ float bilerp(const unsigned char* __restrict__ src, unsigned int off,
                                        unsigned int stride, Axis ax, Axis ay,
                                        unsigned int step, unsigned int ch) {
    float p00 = texel(src, off, stride, ax.i0, ay.i0, step, ch);
    float p01 = texel(src, off, stride, ax.i1, ay.i0, step, ch);
    float p10 = texel(src, off, stride, ax.i0, ay.i1, step, ch);
    float p11 = texel(src, off, stride, ax.i1, ay.i1, step, ch);
    float top = p00 + (p01 - p00) * ax.f;
    float bottom = p10 + (p11 - p10) * ax.f;
    return top + (bottom - top) * ay.f;
}

// The three normalised tensor values of output pixel (ox, oy).
__device__ __forceinline__ void letterbox_pixel(const unsigned char* __restrict__ src,
                                                const LetterboxParams& p, unsigned int ox,
                                                unsigned int oy, float v[3]) {
    if (ox < p.pad_x || ox >= p.pad_x + p.content_w || oy < p.pad_y || oy >= p.pad_y + p.content_h) {
        v[0] = p.pad[0];
        v[1] = p.pad[1];
        v[2] = p.pad[2];
        return;
    }
    unsigned int cx = ox - p.pad_x;
    unsigned int cy = oy - p.pad_y;
    Axis ax = axis_of(cx, p.ratio, p.width - 1u);
    Axis ay = axis_of(cy, p.ratio, p.height - 1u);
    float r, g, b;
    if (p.layout == LAYOUT_RGB || p.layout == LAYOUT_BGR) {
        float c0 = bilerp(src, p.off0, p.stride0, ax, ay, 3u, 0u);
        float c1 = bilerp(src, p.off0, p.stride0, ax, ay, 3u, 1u);
        float c2 = bilerp(src, p.off0, p.stride0, ax, ay, 3u, 2u);
        if (p.layout == LAYOUT_RGB) { r = c0; g = c1; b = c2; } else { r = c2; g = c1; b = c0; }
    } else {
        // 4:2:0 chroma: half resolution, sample sited at the centre of each 2x2 luma block.
        float cratio = p.ratio * 0.5f;
        Axis bx = axis_of(cx, cratio, (p.width + 1u) / 2u - 1u);
        Axis by = axis_of(cy, cratio, (p.height + 1u) / 2u - 1u);
        float y = bilerp(src, p.off0, p.stride0, ax, ay, 1u, 0u);
        float u, w;
        if (p.layout == LAYOUT_I420) {
            u = bilerp(src, p.off1, p.stride1, bx, by, 1u, 0u);
            w = bilerp(src, p.off2, p.stride2, bx, by, 1u, 0u);
        } else {
            u = bilerp(src, p.off1, p.stride1, bx, by, 2u, 0u);
            w = bilerp(src, p.off1, p.stride1, bx, by, 2u, 1u);
        }
        // BT.601 limited range, coefficients /256 as in src/frame.rs yuv_to_rgb.
        float c = fmaxf(y - 16.0f, 0.0f) * 1.1640625f;
        float d = u - 128.0f;
        float e = w - 128.0f;
        r = fminf(fmaxf(c + 1.59765625f * e, 0.0f), 255.0f);
        g = fminf(fmaxf(c - 0.390625f * d - 0.8125f * e, 0.0f), 255.0f);
        b = fminf(fmaxf(c + 2.015625f * d, 0.0f), 255.0f);
    }
    float t0 = p.bgr_out ? b : r;
    float t2 = p.bgr_out ? r : b;
    v[0] = (t0 - p.mean[0]) * p.inv_std[0];
    v[1] = (g - p.mean[1]) * p.inv_std[1];
    v[2] = (t2 - p.mean[2]) * p.inv_std[2];
}

// Round to nearest even, as __float2half_rn (cuda_fp16.hpp implements it with this instruction).
__device__ __forceinline__ unsigned short f32_to_f16_bits(float x) {
#ifdef SPEEDCAM_HOST_EMULATION
    return speedcam_host_f16_bits(x);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
#endif
}

extern "C" __global__ void letterbox_f32(const unsigned char* __restrict__ src, LetterboxParams p,
                                         float* __restrict__ out) {
    unsigned int ox = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= p.size || oy >= p.size) return;
    float v[3];
    letterbox_pixel(src, p, ox, oy, v);
    unsigned long long plane = (unsigned long long)p.size * p.size;
    unsigned long long at = (unsigned long long)oy * p.size + ox;
    out[at] = v[0];
    out[plane + at] = v[1];
    out[2ull * plane + at] = v[2];
}

extern "C" __global__ void letterbox_f16(const unsigned char* __restrict__ src, LetterboxParams p,
                                         unsigned short* __restrict__ out) {
    unsigned int ox = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= p.size || oy >= p.size) return;
    float v[3];
    letterbox_pixel(src, p, ox, oy, v);
    unsigned long long plane = (unsigned long long)p.size * p.size;
    unsigned long long at = (unsigned long long)oy * p.size + ox;
    out[at] = f32_to_f16_bits(v[0]);
    out[plane + at] = f32_to_f16_bits(v[1]);
    out[2ull * plane + at] = f32_to_f16_bits(v[2]);
}
"#;

/// The kernels' `LetterboxParams`, field for field (25 four-byte fields, no padding: 100 bytes).
/// Passed by value as one kernel argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelParams {
    /// [`super::preprocess_ref::SrcFormat::code`].
    pub layout: u32,
    /// Frame width, px.
    pub width_px: u32,
    /// Frame height, px.
    pub height_px: u32,
    /// Plane 0 offset, bytes.
    pub off0_bytes: u32,
    /// Plane 0 row stride, bytes.
    pub stride0_bytes: u32,
    /// Plane 1 offset, bytes (0 when unused).
    pub off1_bytes: u32,
    /// Plane 1 row stride, bytes (0 when unused).
    pub stride1_bytes: u32,
    /// Plane 2 offset, bytes (0 when unused).
    pub off2_bytes: u32,
    /// Plane 2 row stride, bytes (0 when unused).
    pub stride2_bytes: u32,
    /// Output side S, px.
    pub size_px: u32,
    /// Picture's left edge in the output, px.
    pub pad_x_px: u32,
    /// Picture's top edge in the output, px.
    pub pad_y_px: u32,
    /// Picture width in the output, px.
    pub content_w_px: u32,
    /// Picture height in the output, px.
    pub content_h_px: u32,
    /// 1 for B, G, R tensor channels, 0 for R, G, B.
    pub bgr_out: u32,
    /// Frame px per output px (`1 / scale`).
    pub ratio: f32,
    /// Mean per tensor channel, pixel units.
    pub mean: [f32; 3],
    /// `1 / std` per tensor channel.
    pub inv_std: [f32; 3],
    /// Normalised border value per tensor channel.
    pub pad: [f32; 3],
}

impl KernelParams {
    /// Size of the struct as the kernel sees it, bytes.
    #[cfg(test)]
    const SIZE_BYTES: usize = 100;

    /// Validates `src` and builds the parameters for an `size_px` square input for `spec`, with
    /// the mapping boxes go back through.
    pub fn new(
        src: &SrcFrame<'_>,
        spec: &PreprocessSpec,
        size_px: u32,
    ) -> Result<(KernelParams, LetterboxMap), PreprocessError> {
        src.validate()?;
        if size_px == 0 || size_px > MAX_SIDE_PX {
            return Err(PreprocessError::InputSize { size_px });
        }
        let map = letterbox_map(src.width_px, src.height_px, size_px, spec);
        let norm = NormConsts::new(spec);
        // validate() bounds every used plane by the buffer length (<= i32::MAX), so these fit.
        let used = src.format.plane_count();
        let mut off = [0u32; 3];
        let mut stride = [0u32; 3];
        for i in 0..used {
            let p = src.planes[i];
            let too_large = PreprocessError::BufferTooLarge {
                len_bytes: src.data.len(),
            };
            off[i] = u32::try_from(p.offset_bytes).map_err(|_| too_large.clone())?;
            stride[i] = u32::try_from(p.stride_bytes).map_err(|_| too_large)?;
        }
        let params = KernelParams {
            layout: src.format.code(),
            width_px: src.width_px,
            height_px: src.height_px,
            off0_bytes: off[0],
            stride0_bytes: stride[0],
            off1_bytes: off[1],
            stride1_bytes: stride[1],
            off2_bytes: off[2],
            stride2_bytes: stride[2],
            size_px,
            pad_x_px: map.pad_x_px as u32,
            pad_y_px: map.pad_y_px as u32,
            content_w_px: map.content_w_px,
            content_h_px: map.content_h_px,
            bgr_out: u32::from(spec.bgr),
            ratio: 1.0 / map.scale,
            mean: norm.mean,
            inv_std: norm.inv_std,
            pad: norm.pad,
        };
        Ok((params, map))
    }

    /// The struct's bytes in the order the kernel reads them (little-endian, as on every CUDA
    /// host); used by the host emulation test.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let ints = [
            self.layout,
            self.width_px,
            self.height_px,
            self.off0_bytes,
            self.stride0_bytes,
            self.off1_bytes,
            self.stride1_bytes,
            self.off2_bytes,
            self.stride2_bytes,
            self.size_px,
            self.pad_x_px,
            self.pad_y_px,
            self.content_w_px,
            self.content_h_px,
            self.bgr_out,
        ];
        let floats = std::iter::once(self.ratio)
            .chain(self.mean)
            .chain(self.inv_std)
            .chain(self.pad);
        let mut out: Vec<u8> = ints.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.extend(floats.flat_map(|v| v.to_le_bytes()));
        out
    }
}

/// Grid and block dimensions covering an `size_px x size_px` output, one thread per pixel:
/// `(grid, block)` as (x, y, z) triples.
pub fn launch_dims(size_px: u32) -> ((u32, u32, u32), (u32, u32, u32)) {
    (
        (size_px.div_ceil(BLOCK_X), size_px.div_ceil(BLOCK_Y), 1),
        (BLOCK_X, BLOCK_Y, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::preprocess_ref::{preprocess_reference_f32, PlaneLayout, SrcFormat};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    #[test]
    fn params_are_packed_like_the_kernel_struct() {
        assert_eq!(
            std::mem::size_of::<KernelParams>(),
            KernelParams::SIZE_BYTES
        );
        let d = vec![0u8; 64 * 48 * 3];
        let (p, map) = KernelParams::new(
            &SrcFrame::rgb(&d, 64, 48, 192),
            &PreprocessSpec::NANODET,
            32,
        )
        .unwrap();
        assert_eq!(p.to_le_bytes().len(), KernelParams::SIZE_BYTES);
        assert_eq!((p.pad_x_px, p.pad_y_px), (0, 4));
        assert_eq!((p.content_w_px, p.content_h_px), (32, 24));
        assert_eq!(map.pad_y_px, 4.0);
        assert_eq!(p.ratio, 2.0);
        assert_eq!((p.off1_bytes, p.stride1_bytes), (0, 0));
    }

    #[test]
    fn grid_covers_the_output() {
        for s in [1u32, 31, 32, 33, 320, 416, 640] {
            let ((gx, gy, gz), (bx, by, bz)) = launch_dims(s);
            assert!(gx * bx >= s && gy * by >= s && gz == 1 && bz == 1);
            assert!((gx - 1) * bx < s && (gy - 1) * by < s);
            assert!(bx * by <= 1024);
        }
    }

    /// Host harness: CUDA built-ins as plain C++, then the kernel source, then a main that runs
    /// every (block, thread) of the launch grid.
    const HOST_PRELUDE: &str = r#"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define SPEEDCAM_HOST_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
struct speedcam_uint3 { unsigned int x, y, z; };
static speedcam_uint3 blockIdx, blockDim, threadIdx;
static unsigned short speedcam_host_f16_bits(float x) {
    _Float16 h = (_Float16)x;
    unsigned short b;
    memcpy(&b, &h, 2);
    return b;
}
"#;

    const HOST_MAIN: &str = r#"
static_assert(sizeof(LetterboxParams) == 100, "LetterboxParams layout");
static void* slurp(const char* path, long* len) {
    FILE* f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END); *len = ftell(f); fseek(f, 0, SEEK_SET);
    void* buf = malloc(*len > 0 ? *len : 1);
    if (fread(buf, 1, *len, f) != (size_t)*len) { perror(path); exit(2); }
    fclose(f);
    return buf;
}
// usage: emu f32|f16 params.bin src.bin out.bin grid_x grid_y block_x block_y
int main(int argc, char** argv) {
    if (argc != 9) return 2;
    long plen, slen;
    LetterboxParams p;
    void* pb = slurp(argv[2], &plen);
    if (plen != sizeof p) return 3;
    memcpy(&p, pb, sizeof p);
    const unsigned char* src = (const unsigned char*)slurp(argv[3], &slen);
    int f16 = strcmp(argv[1], "f16") == 0;
    size_t n = 3ull * p.size * p.size, esz = f16 ? 2 : 4;
    unsigned char* out = (unsigned char*)malloc(n * esz);
    memset(out, 0xAB, n * esz);  // any pixel the grid misses shows up as garbage
    blockDim.x = atoi(argv[7]); blockDim.y = atoi(argv[8]); blockDim.z = 1;
    unsigned gx = atoi(argv[5]), gy = atoi(argv[6]);
    for (blockIdx.y = 0; blockIdx.y < gy; blockIdx.y++)
    for (blockIdx.x = 0; blockIdx.x < gx; blockIdx.x++)
    for (threadIdx.y = 0; threadIdx.y < blockDim.y; threadIdx.y++)
    for (threadIdx.x = 0; threadIdx.x < blockDim.x; threadIdx.x++) {
        if (f16) letterbox_f16(src, p, (unsigned short*)out);
        else letterbox_f32(src, p, (float*)out);
    }
    FILE* f = fopen(argv[4], "wb");
    if (!f || fwrite(out, 1, n * esz, f) != n * esz) return 4;
    fclose(f);
    return 0;
}
"#;

    /// Builds the host emulator, or None (with a SKIPPED line) where no C++ compiler works.
    fn build_emulator(dir: &Path) -> Option<PathBuf> {
        let cpp = dir.join("emu.cpp");
        let exe = dir.join("emu");
        std::fs::write(&cpp, format!("{HOST_PRELUDE}{KERNEL_SRC}{HOST_MAIN}")).ok()?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        match Command::new(&cxx)
            .args(["-O1", "-std=c++17", "-Wall", "-Werror", "-o"])
            .arg(&exe)
            .arg(&cpp)
            .output()
        {
            Ok(o) if o.status.success() => Some(exe),
            Ok(o) => panic!(
                "kernel source does not compile as host C++:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => {
                eprintln!("SKIPPED: no host C++ compiler ({cxx}: {e})");
                None
            }
        }
    }

    fn emulate(
        exe: &Path,
        dir: &Path,
        src: &SrcFrame<'_>,
        spec: &PreprocessSpec,
        size: u32,
        f16: bool,
    ) -> Vec<f32> {
        let (p, _) = KernelParams::new(src, spec, size).unwrap();
        std::fs::write(dir.join("p.bin"), p.to_le_bytes()).unwrap();
        std::fs::write(dir.join("s.bin"), src.data).unwrap();
        let ((gx, gy, _), (bx, by, _)) = launch_dims(size);
        let st = Command::new(exe)
            .arg(if f16 { "f16" } else { "f32" })
            .args([dir.join("p.bin"), dir.join("s.bin"), dir.join("o.bin")])
            .args([gx, gy, bx, by].map(|v| v.to_string()))
            .status()
            .unwrap();
        assert!(st.success(), "emulator failed: {st}");
        let raw = std::fs::read(dir.join("o.bin")).unwrap();
        if f16 {
            raw.chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect()
        } else {
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
    }

    /// Deterministic noise bytes (every byte of every plane and of the row padding differs).
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn kernel_source_run_on_the_host_matches_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let Some(exe) = build_emulator(dir.path()) else {
            return;
        };
        let (yolox, yolov8) = (PreprocessSpec::YOLOX, PreprocessSpec::YOLOV8);
        let mut cases = 0;
        // (w, h, extra stride bytes, output side): odd sizes, padded rows, up- and downscale.
        for (w, h, extra, size) in [
            (129u32, 73u32, 5usize, 96u32),
            (64, 80, 0, 100),
            (37, 3, 3, 40),
        ] {
            let (ws, hs) = (w as usize, h as usize);
            let (cw, ch) = (ws.div_ceil(2), hs.div_ceil(2));
            for format in [
                SrcFormat::Nv12,
                SrcFormat::I420,
                SrcFormat::Rgb,
                SrcFormat::Bgr,
            ] {
                let (data, planes) = match format {
                    SrcFormat::Rgb | SrcFormat::Bgr => {
                        let s = ws * 3 + extra;
                        (noise(s * hs, w), [(0, s), (0, 0), (0, 0)])
                    }
                    SrcFormat::Nv12 => {
                        let (ys, uvs) = (ws + extra, 2 * cw + extra + 1);
                        // An aligned UV plane start with a gap after Y, as NVDEC surfaces have.
                        let uv_off = ys * (hs + 2);
                        (
                            noise(uv_off + uvs * ch, h),
                            [(0, ys), (uv_off, uvs), (0, 0)],
                        )
                    }
                    SrcFormat::I420 => {
                        let (ys, cs) = (ws + extra, cw + extra);
                        let (uo, vo) = (ys * hs, ys * hs + cs * ch + 7);
                        (noise(vo + cs * ch, w + h), [(0, ys), (uo, cs), (vo, cs)])
                    }
                };
                let src = SrcFrame {
                    data: &data,
                    format,
                    width_px: w,
                    height_px: h,
                    planes: planes.map(|(o, s)| PlaneLayout {
                        offset_bytes: o,
                        stride_bytes: s,
                    }),
                };
                for spec in [PreprocessSpec::NANODET, yolox, yolov8] {
                    let (want, _) = preprocess_reference_f32(&src, &spec, size).unwrap();
                    let got = emulate(&exe, dir.path(), &src, &spec, size, false);
                    assert_eq!(got, want, "f32 {format:?} {w}x{h} -> {size} {spec:?}");
                    let got = emulate(&exe, dir.path(), &src, &spec, size, true);
                    let want16: Vec<f32> = want
                        .iter()
                        .map(|&v| half::f16::from_f32(v).to_f32())
                        .collect();
                    assert_eq!(got, want16, "f16 {format:?} {w}x{h} -> {size} {spec:?}");
                    cases += 2;
                }
            }
        }
        eprintln!("kernel source on the host: {cases} cases bit-identical to the reference");
    }
}
