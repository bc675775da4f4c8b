#!/usr/bin/env bash
# Captures from the kernel's `vivid` test driver with the real V4l2Source, without a camera:
# boots Debian's 6.1 kernel under qemu (TCG, no KVM needed) with a busybox initramfs holding the
# vivid module and the `v4l2_capture` example, and checks that every frame arrived.
#
# Needs (Debian): qemu-system-x86 busybox-static cpio kmod, and network access to Debian's
# archive for `apt-get download linux-image-6.1.0-*-amd64` (cached in $WORK).
# Usage: tests/vivid/run.sh            (exit 0 when every capture run printed PASS)
# Without qemu-system-x86_64 it prints `SKIPPED: qemu` and exits 0, unless SPEEDCAM_REQUIRE names
# `qemu` (or is `all`): the integration tests' skip rule (tests/it/util/mod.rs).
set -euo pipefail

if ! command -v qemu-system-x86_64 >/dev/null; then
    case ",${SPEEDCAM_REQUIRE:-}," in
    *,qemu,* | *,all,*)
        echo "qemu is missing (qemu-system-x86_64 not found) and SPEEDCAM_REQUIRE=$SPEEDCAM_REQUIRE requires it: install qemu-system-x86" >&2
        exit 1
        ;;
    esac
    echo "SKIPPED: qemu (the vivid capture test does not run): qemu-system-x86_64 not found; install qemu-system-x86 (SPEEDCAM_REQUIRE=qemu makes this a failure)" >&2
    exit 0
fi

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/speedcam-vivid}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
mkdir -p "$WORK"
cd "$WORK"

# 1. Kernel and modules, unpacked (not installed).
if ! ls kernel/boot/vmlinuz-* >/dev/null 2>&1; then
    pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
    [ -n "$pkg" ] || { echo "no linux-image-6.1.0-*-amd64 package found (apt-get update?)"; exit 1; }
    apt-get download "$pkg"
    dpkg-deb -x "$pkg"_*.deb kernel
fi
KVER=$(ls kernel/lib/modules | head -1)
[ -f "kernel/lib/modules/$KVER/modules.dep" ] || depmod -b kernel "$KVER"

# 2. The capture binary.
(cd "$REPO" && cargo build --example v4l2_capture --features "${SPEEDCAM_VIVID_FEATURES:-speedcam/v4l2}")
BIN="$TARGET_DIR/debug/examples/v4l2_capture"

# 3. Initramfs: busybox, the binary with its shared libraries, vivid and its dependencies.
rm -rf initrd && mkdir -p initrd/{bin,dev,proc,sys,lib/modules,tmp}
cp /bin/busybox initrd/bin/busybox
for app in sh mount insmod rmmod poweroff ls cat sleep echo; do ln -sf busybox "initrd/bin/$app"; done
cp "$BIN" initrd/bin/v4l2_capture
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
    mkdir -p "initrd$(dirname "$lib")" && cp -L "$lib" "initrd$lib"
done
deps=$(grep '/vivid.ko:' "kernel/lib/modules/$KVER/modules.dep" | cut -d: -f2)
order=""
for m in $deps; do order="$m $order"; done   # deepest dependency first
i=0
for m in $order kernel/drivers/media/test-drivers/vivid/vivid.ko; do
    i=$((i + 1))
    cp "kernel/lib/modules/$KVER/$m" "initrd/lib/modules/$(printf %02d $i)-$(basename "$m")"
done
cat > initrd/init <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do insmod "$m" || echo "insmod $m failed"; done
sleep 1
ls /dev/video*
cat /sys/class/video4linux/video0/name
# Negotiated defaults, then each raw format explicitly, then a mode vivid lacks.
/bin/v4l2_capture /dev/video0 20
/bin/v4l2_capture /dev/video0 20 yuyv 640x360 30
/bin/v4l2_capture /dev/video0 10 nv12 1280x720
/bin/v4l2_capture /dev/video0 1 mjpeg 1280x720 30 || true
/bin/v4l2_capture /dev/video99 1 || true
# A corrupt buffer (counted, skipped) and a stall (Stalled, then capture resumes).
V4L2CAPTURE_FAULTS=1 /bin/v4l2_capture /dev/video0
# Simulated unplug: Disconnected while streaming, Connect while gone, then re-plug and capture.
V4L2CAPTURE_UNPLUG_AFTER=5 /bin/v4l2_capture /dev/video0
rmmod vivid && insmod /lib/modules/*-vivid.ko && sleep 1
/bin/v4l2_capture /dev/video0 10
echo VIVID-DONE
poweroff -f
INIT
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1) > initrd.cpio.gz

# 4. Boot.
start=$(date +%s)
timeout 600 qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
    -kernel kernel/boot/vmlinuz-"$KVER" -initrd initrd.cpio.gz \
    -append "console=ttyS0 quiet panic=-1" | tee qemu.log | grep --line-buffered 'V4L2CAPTURE\|VIVID\|video\|insmod'
echo "qemu ran $(( $(date +%s) - start )) s"
passes=$(grep -c 'V4L2CAPTURE PASS' qemu.log || true)
grep -q 'VIVID-DONE' qemu.log || { echo "the guest did not finish"; exit 1; }
[ "$passes" -eq 6 ] || { echo "expected 6 passing captures, got $passes"; exit 1; }
echo "vivid capture: all passed"
