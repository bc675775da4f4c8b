#!/usr/bin/env bash
# Docker-free aarch64 (Jetson, JetPack 6) build: Debian bookworm's rustc-web/cargo-web (1.96) with
# its arm64 std, the aarch64 GNU linker, and qemu-user to run the unit tests.
#   scripts/cross-aarch64.sh            release build + library unit tests under qemu
#   scripts/cross-aarch64.sh --no-test  release build only
# Output: target/aarch64-unknown-linux-gnu/release/speedcamd (or under $CARGO_TARGET_DIR).
# Features: onnxruntime + cuda, what a Jetson needs; both load their native libraries at run time
# (ort load-dynamic, cudarc dynamic-loading), so the build needs no JetPack sysroot. ffmpeg is
# left out (it would need the arm64 libav*-dev packages and a pkg-config sysroot).
# Linker and runner come from .cargo/config.toml. See cross/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
target=aarch64-unknown-linux-gnu
features=${SPEEDCAM_AARCH64_FEATURES:-onnxruntime,cuda}
run_tests=1
[ "${1:-}" = --no-test ] && run_tests=0

# Packages (installed only when missing). rustc-web/cargo-web come from bookworm-security.
pkgs="rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
  libc6-dev-arm64-cross libc6:arm64 libstdc++6:arm64 qemu-user-static file"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Debian's cargo with Debian's rustc: without RUSTC, cargo would pick rustup's rustc from PATH,
# which has no aarch64 std ("can't find crate for `core`").
export RUSTC=/usr/bin/rustc
cargo=/usr/bin/cargo
# Build tree: $CARGO_TARGET_DIR when set; otherwise a cache under ~/.cache keyed by the compiler
# version (rebuildable: delete it and the next run rebuilds everything). Cold, the dependencies
# take most of the time (the test build compiles ~60 of them again with the dev-dependencies'
# features, see cross/README.md); warm, only the speedcam crate is rebuilt. The binary is copied to
# target/aarch64-unknown-linux-gnu/release/speedcamd either way.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    rustc_version=$($RUSTC --version | awk '{print $2}')
    CARGO_TARGET_DIR="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/speedcam/target-aarch64-rustc$rustc_version"
    export CARGO_TARGET_DIR
    copy_to=target/$target/release
fi
out=$CARGO_TARGET_DIR/$target/release/speedcamd

t0=$(date +%s)
$cargo build --release --locked --target $target --features "$features"
t1=$(date +%s)
echo "cross-aarch64: release build $((t1 - t0)) s ($CARGO_TARGET_DIR)"
if [ -n "${copy_to:-}" ]; then
    mkdir -p "$copy_to"
    cp "$out" "$copy_to/speedcamd"
    out=$copy_to/speedcamd
fi

if [ "$run_tests" = 1 ]; then
    # The library's unit tests, compiled in release so they reuse the release build's dependencies,
    # and run by qemu-aarch64-static (the runner in .cargo/config.toml). Integration tests (tests/)
    # stay native: they need mosquitto, GStreamer and video files and run in the main CI pass.
    $cargo test --release --locked --target $target --features "$features" --lib --no-run
    t2=$(date +%s)
    echo "cross-aarch64: test build $((t2 - t1)) s"
    # Unit tests left out under qemu only, each with its reason (none so far). Extra libtest
    # arguments (a filter, --test-threads=N) can be passed in SPEEDCAM_QEMU_TEST_ARGS.
    qemu_skip=()
    skip_args=()
    for t in "${qemu_skip[@]}"; do skip_args+=(--skip "$t"); done
    # shellcheck disable=SC2086
    $cargo test --release --locked --target $target --features "$features" --lib -- \
        "${skip_args[@]}" ${SPEEDCAM_QEMU_TEST_ARGS:-}
    t3=$(date +%s)
    echo "cross-aarch64: unit tests under qemu $((t3 - t2)) s"
fi

file "$out"
