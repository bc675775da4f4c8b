#!/usr/bin/env bash
# Device check for `--features cuda`: the GPU letterbox kernels against the CPU reference
# (max abs diff per layout / dtype / spec) and the kernel times (median of 50), on a machine with
# an NVIDIA GPU. Fails unless a GPU actually ran (SPEEDCAM_REQUIRE=cuda).
#
# 1. On the build machine (Rust, no GPU needed), from the repository root:
#      scripts/device_check.sh --build [NVRTC_LIB_DIR]
#    builds the integration-test binary with tests/it/gpu_preprocess.rs
#    (`cargo test --features cuda --test it --no-run`) and puts a stripped, xz-compressed copy of
#    it in target/device-check/ (needs glibc >= 2.35 on the device). Only its gpu_preprocess::
#    tests run there.
#    NVRTC_LIB_DIR (optional) is a directory holding libnvrtc.so.12 + libnvrtc-builtins.so.12.*,
#    e.g. from `python3 -m pip download --no-deps nvidia-cuda-nvrtc-cu12==12.X.* -d W` unzipped
#    (nvidia/cuda_nvrtc/lib); it is packed as target/device-check/nvrtc.tar.xz (~31 MB) for devices
#    without a CUDA toolkit. Pick an NVRTC no newer than the device driver's CUDA version, or the
#    PTX it emits is rejected (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
# 2. On the GPU machine (no Rust, no internet), with target/device-check carried over:
#      bash scripts/device_check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/device-check
cd "$root"

if [ "${1:-}" = --build ]; then
    mkdir -p "$out"
    exe=$(cargo test --features cuda --test it --no-run --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\/it-[^"/]*\)".*/\1/p' | tail -1)
    [ -x "$exe" ] || { echo "device_check: no test binary built" >&2; exit 1; }
    # Stripped and xz-compressed: the device tool carries at most 64 MiB, working tree included.
    rm -f "$out/it" "$out/it.xz" "$out/gpu_preprocess" "$out/gpu_preprocess.xz"
    strip --strip-all -o "$out/it" "$exe" 2>/dev/null || cp "$exe" "$out/it"
    xz -T0 -9 "$out/it"
    if [ -n "${2:-}" ]; then
        tar -C "$2" -cJf "$out/nvrtc.tar.xz" $(cd "$2" && ls libnvrtc.so.* libnvrtc-builtins.so.*)
    fi
    du -sh "$out"/*
    echo "carry: target/device-check; run: bash scripts/device_check.sh"
    exit 0
fi

bin=$out/it
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then
    xz -dc "$bin.xz" >"$bin" 2>/dev/null ||
        python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' "$bin.xz" "$bin"
    chmod +x "$bin"
fi
[ -x "$bin" ] || { echo "device_check: $bin missing: run scripts/device_check.sh --build first" >&2; exit 1; }

# NVRTC: the device's own (matches its driver) first, the carried one last.
nvrtc_dir=""
for d in "${SPEEDCAM_NVRTC_DIR:-}" /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib \
    /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu "$out/nvrtc"; do
    if [ -n "$d" ] && compgen -G "$d/libnvrtc.so*" >/dev/null; then nvrtc_dir=$d; break; fi
done
if [ -z "$nvrtc_dir" ]; then
    found=$(timeout 30 find / -xdev -name 'libnvrtc.so.1*' -not -path "$out/*" 2>/dev/null | head -1 || true)
    [ -n "$found" ] && nvrtc_dir=$(dirname "$found")
fi
if [ -z "$nvrtc_dir" ] && [ -f "$out/nvrtc.tar.xz" ]; then
    mkdir -p "$out/nvrtc"
    tar -C "$out/nvrtc" -xJf "$out/nvrtc.tar.xz" 2>/dev/null ||
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$out/nvrtc.tar.xz" "$out/nvrtc"
    nvrtc_dir=$out/nvrtc
fi
echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
echo "== NVRTC: ${nvrtc_dir:-not found}"
[ -n "$nvrtc_dir" ] && export LD_LIBRARY_PATH=$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

export SPEEDCAM_REQUIRE=cuda
# The gpu_preprocess module's tests, with the #[ignore]d timing printout (kernel_times). One
# thread: the timing test must not share the GPU with the comparison test.
exec "$bin" gpu_preprocess:: --include-ignored --nocapture --test-threads=1
