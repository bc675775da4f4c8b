#!/usr/bin/env bash
# Static checks of systemd/speedcamd.service (no running systemd needed; ~0.2 s):
# 1. `systemd-analyze verify` on a temporary copy whose ExecStart= points at an existing executable
#    (the given speedcamd binary, else a stub), because /usr/bin/speedcamd does not exist on a build
#    machine. verify only warns on stderr for most problems (bad keys, bad values) and its exit status
#    is not reliable, so ANY stderr output fails the check.
# 2. `systemd-analyze security --offline=true`: the overall exposure level must be <= MAX_EXPOSURE
#    (default 3.0; the unit rates 1.8 with systemd 252).
# 3. systemd/speedcam.sysusers and speedcam.tmpfiles applied to an empty scratch root (--root=):
#    the user and the directories with their owner and mode must come out, with no complaint.
# Usage: scripts/check-systemd.sh [path/to/speedcamd]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
unit=$root/systemd/speedcamd.service
max=${MAX_EXPOSURE:-3.0}
command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${1:-}" ]; then
    exe=$(readlink -f "$1")
    [ -x "$exe" ] || { echo "check-systemd: $1 is not executable" >&2; exit 1; }
else
    exe=$tmp/speedcamd
    printf '#!/bin/sh\nexit 0\n' >"$exe"
    chmod +x "$exe"
fi
# The copy keeps the unit's name: verify and security look at it as speedcamd.service.
mkdir "$tmp/unit"
sed "s#^ExecStart=/usr/bin/speedcamd #ExecStart=$exe #" "$unit" >"$tmp/unit/speedcamd.service"
grep -q "^ExecStart=$exe " "$tmp/unit/speedcamd.service" || {
    echo "check-systemd: ExecStart= no longer starts with /usr/bin/speedcamd: update this script" >&2; exit 1; }

rc=0
systemd-analyze verify "$tmp/unit/speedcamd.service" >"$tmp/verify.out" 2>"$tmp/verify.err" || rc=$?
if [ -s "$tmp/verify.err" ] || [ "$rc" -ne 0 ]; then
    echo "check-systemd: systemd-analyze verify speedcamd.service (exit $rc) complained:" >&2
    sed "s#$tmp/unit/#systemd/#g; s#$exe#/usr/bin/speedcamd#g" "$tmp/verify.err" >&2
    exit 1
fi
echo "check-systemd: verify OK"

systemd-analyze security --offline=true --no-pager "$tmp/unit/speedcamd.service" >"$tmp/security.out" 2>"$tmp/security.err" || true
level=$(sed -n 's/.*Overall exposure level for speedcamd.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
if [ -z "$level" ]; then
    echo "check-systemd: no exposure level in systemd-analyze security's output:" >&2
    cat "$tmp/security.out" "$tmp/security.err" >&2
    exit 1
fi
if awk -v l="$level" -v m="$max" 'BEGIN { exit !(l > m) }'; then
    echo "check-systemd: exposure level $level is above $max; the findings:" >&2
    grep '^✗' "$tmp/security.out" >&2 || true
    exit 1
fi
echo "check-systemd: exposure level $level (<= $max)"

mkdir -p "$tmp/root/etc"
systemd-sysusers --root="$tmp/root" "$root/systemd/speedcam.sysusers" 2>"$tmp/sysusers.err" ||
    { cat "$tmp/sysusers.err" >&2; echo "check-systemd: systemd-sysusers failed" >&2; exit 1; }
systemd-tmpfiles --root="$tmp/root" --create "$root/systemd/speedcam.tmpfiles" 2>"$tmp/tmpfiles.err" ||
    { cat "$tmp/tmpfiles.err" >&2; echo "check-systemd: systemd-tmpfiles failed" >&2; exit 1; }
# sysusers reports what it creates on stderr ("Creating group 'video' ..."): anything else is a problem.
if grep -v "^Creating \(user\|group\) " "$tmp/sysusers.err" "$tmp/tmpfiles.err" | grep -q .; then
    grep -hv "^Creating \(user\|group\) " "$tmp/sysusers.err" "$tmp/tmpfiles.err" >&2
    echo "check-systemd: sysusers/tmpfiles complained" >&2
    exit 1
fi
uid=$(awk -F: '$1 == "speedcam" { print $3 }' "$tmp/root/etc/passwd")
[ -n "$uid" ] || { echo "check-systemd: sysusers created no speedcam user" >&2; exit 1; }
for d in var/lib/speedcam var/cache/speedcam; do
    got=$(stat -c '%a %u' "$tmp/root/$d" 2>/dev/null || echo missing)
    [ "$got" = "750 $uid" ] || { echo "check-systemd: /$d is '$got', expected mode 750 owned by speedcam ($uid)" >&2; exit 1; }
done
echo "check-systemd: sysusers + tmpfiles OK (speedcam uid $uid, /var/lib/speedcam, /var/cache/speedcam)"
