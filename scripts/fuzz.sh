#!/usr/bin/env bash
# Fuzz the parsers of outside input with cargo-fuzz (libFuzzer + AddressSanitizer): fuzz/.
#   scripts/fuzz.sh [SECONDS [TARGET...]]   each target (default: all) for SECONDS (default
#                                           $FUZZ_SECONDS, else 30); exit 1 on any crash, with
#                                           the reproducer's path and the command that replays it.
# Targets: config (config loader + validator), mot (analyze on a MOTChallenge file), nal (NAL
# splitting, avcC/SPS parsing, openh264 decode), mp4 (the MP4 file source), frame (V4L2
# YUYV/NV12/MJPEG converters).
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take cargo-fuzz's -Z flags,
# and stable ships the AddressSanitizer runtime (librustc-stable_rt.asan.a). FUZZ_SANITIZER=none
# builds without ASan (faster; panics, hangs and OOMs are still found, memory errors in C code
# are not). cargo-fuzz is installed once into ~/.cache/speedcam/cargo-fuzz-<version>; the build
# goes to ~/.cache/speedcam/fuzz-target-* (its own: every crate is built with sanitizer flags, nothing is shared
# with target/). Seed corpora are made from the repository's files (config/, media/demo/,
# tests/data/) into fuzz/corpus/<target>/ on first use; findings land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
CARGO_FUZZ_VERSION=0.13.1
seconds=${1:-${FUZZ_SECONDS:-30}}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config mot nal mp4 frame)
sanitizer=${FUZZ_SANITIZER:-address}

fuzz_root="${HOME:-/root}/.cache/speedcam/cargo-fuzz-$CARGO_FUZZ_VERSION"
if [ ! -x "$fuzz_root/bin/cargo-fuzz" ]; then
    t0=$(date +%s)
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$fuzz_root"
    echo "fuzz: installed cargo-fuzz $CARGO_FUZZ_VERSION in $(( $(date +%s) - t0 )) s"
fi
export RUSTC_BOOTSTRAP=1
# fuzz/ has its own target dir; a CARGO_TARGET_DIR meant for the main package would mix the two.
unset CARGO_TARGET_DIR
cargo_fuzz() { "$fuzz_root/bin/cargo-fuzz" "$@"; }
# Release build with debug assertions and overflow checks (cargo-fuzz's default); 16 codegen
# units cut the build of the dependency tree at a small cost in executions per second.
# The build tree is a rebuildable cache under ~/.cache (like the aarch64 one), keyed by the
# toolchain, so CI on a clean checkout rebuilds only speedcam itself (~5 min), not every crate
# with sanitizer flags (50 min cold on this 2-core machine). FUZZ_TARGET_DIR overrides it.
fuzz_target=${FUZZ_TARGET_DIR:-${HOME:-/root}/.cache/speedcam/fuzz-target-$(rustc --version | cut -d' ' -f2)-$sanitizer}
build_flags=(--sanitizer "$sanitizer" --codegen-units 16 --target-dir "$fuzz_target")

t0=$(date +%s)
cargo_fuzz build "${build_flags[@]}"
echo "fuzz: built the targets in $(( $(date +%s) - t0 )) s"

# ---- seed corpora ------------------------------------------------------------------------
seed() { # TARGET NAME: writes stdin to fuzz/corpus/TARGET/seed-NAME
    mkdir -p "fuzz/corpus/$1"
    cat >"fuzz/corpus/$1/seed-$2"
}
seeds_tmp=$(mktemp -d)
trap 'rm -rf "$seeds_tmp"' EXIT
make_seeds() { # TARGET
    case $1 in
    config)
        for f in config/*.toml packaging/speedcam.toml; do
            seed config "$(basename "$f")" <"$f"
        done
        ;;
    mot)
        # data[0] picks the frame rate; `\n--\n` starts a timestamps file.
        printf '\0001,-1,100,200,50,40,0.9,-1,-1,-1\n2,-1,110,200,50,40,0.8\n3,7,120,201,50,40,1\n' |
            seed mot rate25
        printf '\0001,-1,100,200,50,40,0.9\n2,-1,110,200,50,40,0.8\n--\n0\n0.04\n' | seed mot times
        printf '\001# comment\n\n5 1 10.5 20 3 4 -1\n' | seed mot spaces
        ;;
    nal | mp4)
        # A 3-frame 64x48 Baseline clip; its avcC and first sample become the NAL seeds.
        if [ ! -s "$seeds_tmp/clip.mp4" ]; then
            command -v ffmpeg >/dev/null || { echo "fuzz: no ffmpeg, $1 starts without real seeds"; return 0; }
            ffmpeg -loglevel error -y -i media/demo/scene.mp4 -frames:v 3 -vf scale=64:48 \
                -c:v libx264 -profile:v baseline -bf 0 -g 2 "$seeds_tmp/clip.mp4"
        fi
        if [ "$1" = mp4 ]; then
            seed mp4 clip <"$seeds_tmp/clip.mp4"
        else
            python3 - "$seeds_tmp/clip.mp4" fuzz/corpus/nal <<'PY'
import os, struct, sys
data = open(sys.argv[1], "rb").read()
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
def boxes(buf, start, end):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[start:start + 8])
        yield kind, start + 8, start + size
        start += size
def find(path, start=0, end=len(data)):
    for kind, body, stop in boxes(data, start, end):
        if kind == path[0]:
            return (body, stop) if len(path) == 1 else find(path[1:], body, stop)
    raise SystemExit("fuzz seeds: no " + path[0].decode())
stbl = find([b"moov", b"trak", b"mdia", b"minf", b"stbl"])
stsd, _ = find([b"stsd"], *stbl)
avc1 = stsd + 8  # version/flags + entry count
avcc_body, avcc_end = find([b"avcC"], avc1 + 8 + 78, avc1 + struct.unpack(">I", data[avc1:avc1 + 4])[0])
avcc = data[avcc_body:avcc_end]
stsz, _ = find([b"stsz"], *stbl)
size1 = struct.unpack(">I", data[stsz + 12:stsz + 16])[0]
stco, _ = find([b"stco"], *stbl)
off1 = struct.unpack(">I", data[stco + 8:stco + 12])[0]
sample = data[off1:off1 + size1]
length_size = (avcc[4] & 3) + 1
sets = b""
pos = 5
for mask in (0x1F, 0xFF):
    count = avcc[pos] & mask
    pos += 1
    for _ in range(count):
        n = struct.unpack(">H", avcc[pos:pos + 2])[0]
        sets += n.to_bytes(length_size, "big") + avcc[pos + 2:pos + 2 + n]
        pos += 2 + n
def annexb(lp):
    out, i = b"", 0
    while i < len(lp):
        n = int.from_bytes(lp[i:i + length_size], "big")
        out += b"\0\0\0\1" + lp[i + length_size:i + length_size + n]
        i += length_size + n
    return out
seeds = {
    "avcc": bytes([0x04]) + avcc,
    "idr-length-prefixed": bytes([length_size - 1]) + sets + sample,
    "idr-annexb": bytes([0x08]) + annexb(sets + sample),
    "sps-only": bytes([length_size - 1]) + sets,
}
for name, blob in seeds.items():
    open(os.path.join(out, "seed-" + name), "wb").write(blob)
PY
        fi
        ;;
    frame)
        # data: kind (0 YUYV, 1 NV12, 2 MJPEG), width, height, bytes per line, buffer.
        { printf '\000\004\002\000'; head -c 16 /dev/zero | tr '\0' '\200'; } | seed frame yuyv-4x2
        { printf '\001\004\002\000'; head -c 12 /dev/zero | tr '\0' '\200'; } | seed frame nv12-4x2
        if command -v ffmpeg >/dev/null; then
            ffmpeg -loglevel error -y -i tests/data/images/darknet_dog.jpg -vf scale=32:24 \
                "$seeds_tmp/small.jpg"
            { printf '\002\040\030\000'; cat "$seeds_tmp/small.jpg"; } | seed frame mjpeg-32x24
        fi
        ;;
    esac
}
for t in "${targets[@]}"; do
    ls "fuzz/corpus/$t"/seed-* >/dev/null 2>&1 || make_seeds "$t"
done

# ---- runs --------------------------------------------------------------------------------
# Per-input limits: 10 s (a hang), 2 GiB of memory (a runaway allocation). Inputs up to 64 KiB
# (the MP4 seeds are a few KiB; real-size videos are slow per run, not more interesting).
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t" fuzz/logs
    log="fuzz/logs/$t.log"
    t0=$(date +%s)
    if cargo_fuzz run "${build_flags[@]}" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz: $t OK, $execs runs in $(( $(date +%s) - t0 )) s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
    else
        tail -n 60 "$log" >&2
        repro=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
        echo "fuzz: $t FAILED after $(( $(date +%s) - t0 )) s; reproducer: ${repro:-none written (see $log)}" >&2
        [ -n "$repro" ] && echo "fuzz: replay it with: RUSTC_BOOTSTRAP=1 $fuzz_root/bin/cargo-fuzz run $t $repro" >&2
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
