#!/usr/bin/env bash
# Debian packages of speedcam with cargo-deb ([package.metadata.deb] in Cargo.toml).
#   scripts/package-deb.sh --arm64   arm64 .deb from target/aarch64-unknown-linux-gnu/release/speedcamd
#                                    (run scripts/cross-aarch64.sh first; nothing is built here)
#   scripts/package-deb.sh --amd64   amd64 .deb; cargo-deb runs the host release build first
#   scripts/package-deb.sh           both
#   --fast (after the above): faster, larger compression (CI checks the package, ships nothing)
# Each package's file list is checked against the paths the install needs (see `expect` below).
# cargo-deb is installed once into ~/.cache/speedcam/cargo-deb-<version> (rebuildable cache).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
CARGO_DEB_VERSION=3.8.0
arches=${1:---both}
fast=""
[ "${2:-}" = --fast ] && fast=--fast

deb_root="${HOME:-/root}/.cache/speedcam/cargo-deb-$CARGO_DEB_VERSION"
if [ ! -x "$deb_root/bin/cargo-deb" ]; then
    t0=$(date +%s)
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION" --root "$deb_root"
    echo "package-deb: installed cargo-deb $CARGO_DEB_VERSION in $(( $(date +%s) - t0 )) s"
fi
cargo_deb() { "$deb_root/bin/cargo-deb" "$@"; }

# Paths every package must hold.
expect="./usr/bin/speedcamd
./usr/lib/systemd/system/speedcamd.service
./usr/lib/sysusers.d/speedcam.conf
./usr/lib/tmpfiles.d/speedcam.conf
./etc/speedcam/speedcam.toml
./usr/share/speedcam/models/nanodet-g-416.onnx
./usr/share/speedcam/models/README.md
./usr/share/doc/speedcam/README.md
./usr/share/doc/speedcam/speedcam.example.toml
./usr/share/doc/speedcam/copyright"

check_deb() { # DEB ARCH
    local deb=$1 arch=$2 listing missing=0
    [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] ||
        { echo "package-deb: $deb is not Architecture: $arch" >&2; return 1; }
    listing=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
    while read -r p; do
        grep -qxF "$p" <<<"$listing" || { echo "package-deb: $deb lacks $p" >&2; missing=1; }
    done <<<"$expect"
    dpkg-deb -I "$deb" conffiles | grep -qx /etc/speedcam/speedcam.toml ||
        { echo "package-deb: /etc/speedcam/speedcam.toml is not a conffile" >&2; missing=1; }
    for s in postinst prerm postrm; do
        dpkg-deb -I "$deb" "$s" >/dev/null 2>&1 || { echo "package-deb: no $s script" >&2; missing=1; }
    done
    [ "$missing" = 0 ] || return 1
    echo "package-deb: $deb OK ($(du -h "$deb" | cut -f1); $(dpkg-deb -f "$deb" Depends))"
}

if [ "$arches" = --arm64 ] || [ "$arches" = --both ]; then
    target=aarch64-unknown-linux-gnu
    bin=${CARGO_TARGET_DIR:-target}/$target/release/speedcamd
    [ -x "$bin" ] || { echo "package-deb: $bin missing: run scripts/cross-aarch64.sh first" >&2; exit 1; }
    t0=$(date +%s)
    deb=$(cargo_deb --target $target --no-build --strip $fast | tail -n 1)
    echo "package-deb: arm64 .deb in $(( $(date +%s) - t0 )) s"
    check_deb "$deb" arm64
fi
if [ "$arches" = --amd64 ] || [ "$arches" = --both ]; then
    t0=$(date +%s)
    deb=$(cargo_deb --locked --strip $fast | tail -n 1)
    echo "package-deb: amd64 .deb (with the release build) in $(( $(date +%s) - t0 )) s"
    check_deb "$deb" amd64
fi
