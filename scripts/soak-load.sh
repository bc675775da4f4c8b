#!/usr/bin/env bash
# Load soak of the daemon (issue 7, "Load"): N cameras (default 4) replaying the demo scene in real
# time (media/demo/scene.mp4, 1280x720 H.264 at 30 fps, 12 s, looped with continuous timestamps via
# [cameras.replay] realtime + loop: frames are released at their timestamps like a live camera's
# and handed off "latest wins") on the default CPU backend (tract), for DURATION_S (default 600 s).
# Not for CI in full: it builds release and runs 10 minutes. A short run (`scripts/soak-load.sh 60`)
# exercises the same checks in ~1.5 min after the build.
#
# What it does:
#   1. `cargo build --release` (skip with SPEEDCAMD=/path/to/speedcamd).
#   2. Writes a config into a temp dir: the demo camera N times (cam1..camN), data_dir there,
#      [metrics] listen on a free loopback port, and [mqtt] on a private mosquitto broker when
#      `mosquitto` is installed (events and measurements published; without it, no [mqtt]).
#   3. Runs `speedcamd run`, waits until every camera streams, then samples every INTERVAL_S
#      (default 5 s): RSS (VmRSS of /proc/PID/status), CPU (utime+stime), load average, and from
#      /metrics per camera frames in / detected / skipped / dropped, the end-to-end latency
#      histogram speedcam_frame_age_seconds (capture -> detections handled), the stage histograms
#      (mean detection time) and the outbox depth. One CSV row per sample: OUT_DIR/samples.csv.
#   4. After DURATION_S: SIGTERM, and the daemon must exit 0 within 40 s.
#   5. Checks, written to OUT_DIR/summary.txt (exit status 1 when one fails):
#      - memory: slope of the RSS floor by least squares over the second half of the run,
#        KiB/min, at most RSS_SLOPE_MAX_KIB_MIN (default 256: a leak of one 1280x720 frame
#        (1350 KiB) every ~5 min fails). The floor of a sample is the lowest of the RSS reads
#        taken every 0.25 s since the previous sample: frames in flight and the allocator's
#        not-yet-purged pages swing RSS by +-10 MB from one read to the next (too much for the
#        limit over 5 min), and they raise the peaks, while a leak raises the floor. The slope of
#        the plain 5 s samples, RSS start / end / max and growth are reported too;
#      - no deadlock: the process lived through the run, every scrape of /metrics answered
#        (5 s timeout; at most one miss), and every camera's frame counter grew in every
#        STALL_WINDOW_S (default 30 s);
#      - bounded latency: each camera's p99 frame age over the run (after a 30 s warm-up) at
#        most LATENCY_P99_MAX_MS, by default 2 x ((N + OVERTAKES) x t_detect + 1 frame
#        interval) + 100 ms, where t_detect is the mean detection time measured during the run
#        and OVERTAKES (default 4) is the detector gate's MAX_OVERTAKES (crates/speedcam-core/src/schedule/gate.rs).
#        Why: with latest-wins hand-off a frame is at most one interval old when its camera loop
#        takes it; then it waits for at most the other N-1 cameras' detections plus OVERTAKES
#        urgent ones (cameras with a vehicle in their zone go first, a bounded number of times),
#        then its own; the factor 2 absorbs CPU contention (other processes, decode threads) and
#        detection times above the mean. A queue building up (every-frame hand-off on a live
#        source, a leak of work) grows without bound over minutes and fails it.
# Environment: DURATION_S, CAMERAS, INTERVAL_S, OUT_DIR (kept; default a new /tmp/speedcam-soak.*),
# LATENCY_P99_MAX_MS, OVERTAKES, RSS_SLOPE_MAX_KIB_MIN, STALL_WINDOW_S, SPEEDCAMD, KEEP_DATA=1 (keep the sled
# data dir), NO_MQTT=1. The first argument, when given, is DURATION_S.
# Usage: scripts/soak-load.sh [DURATION_S]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${1:-${DURATION_S:-600}}
cameras=${CAMERAS:-4}
interval=${INTERVAL_S:-5}
out=${OUT_DIR:-$(mktemp -d /tmp/speedcam-soak.XXXXXX)}
mkdir -p "$out"
log() { echo "soak: $*" >&2; }

if [ -n "${SPEEDCAMD:-}" ]; then
    bin=$(readlink -f "$SPEEDCAMD")
else
    log "building release (cargo build --release)"
    (cd "$root" && cargo build --release --quiet)
    bin=${CARGO_TARGET_DIR:-$root/target}/release/speedcamd
fi
[ -x "$bin" ] || { log "no speedcamd binary at $bin"; exit 1; }
# A private copy: a shared target dir may be rebuilt by someone else during the run.
cp "$bin" "$out/speedcamd"
bin=$out/speedcamd

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$out/data" "$out/mosquitto" "$out/speedcamd"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metrics_port=$(free_port)
mqtt_url=""
if [ -z "${NO_MQTT:-}" ] && command -v mosquitto >/dev/null; then
    mqtt_port=$(free_port)
    mkdir -p "$out/mosquitto"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" >"$out/mosquitto/mosquitto.conf"
    mosquitto -c "$out/mosquitto/mosquitto.conf" >"$out/mosquitto.log" 2>&1 &
    pids+=($!)
    mqtt_url="mqtt://127.0.0.1:$mqtt_port"
    if command -v mosquitto_sub >/dev/null; then
        sleep 0.5
        mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t 'speedcam/#' -F '%t' >"$out/mqtt.txt" 2>/dev/null &
        pids+=($!)
    fi
    log "mosquitto on $mqtt_url"
else
    log "no mosquitto (or NO_MQTT set): running without [mqtt]"
fi

# The config: config/demo.toml's header (detector) and its camera, N times, paced and looped.
python3 - "$root" "$out" "$cameras" "$metrics_port" "$mqtt_url" <<'EOF'
import sys, re
root, out, n, port, mqtt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(f"{root}/config/demo.toml").read()
head, cam = text.split("[[cameras]]", 1)
head = re.sub(r'(?m)^device_id = .*$', 'device_id = "soak"', head)
head = re.sub(r'(?m)^data_dir = .*$', f'data_dir = "{out}/data"', head)
head = head.replace('"../models/', f'"{root}/models/')
cam = cam.replace('"../media/demo/scene.mp4"', f'"{root}/media/demo/scene.mp4"')
parts = [head.rstrip() + "\n"]
if mqtt:
    parts.append(f'\n[mqtt]\nurl = "{mqtt}"\npublish_measurements = true\n')
parts.append(f'\n[metrics]\nlisten = "127.0.0.1:{port}"\nstats_interval_s = 10\n')
for i in range(1, n + 1):
    c = re.sub(r'(?m)^id = .*$', f'id = "cam{i}"', cam)
    parts.append("\n[[cameras]]" + c.rstrip() + "\n\n[cameras.replay]\nrealtime = true\nloop = true\n")
open(f"{out}/soak.toml", "w").write("".join(parts))
EOF

log "config $out/soak.toml; daemon log $out/daemon.log"
RUST_LOG=${RUST_LOG:-info} "$bin" run --config "$out/soak.toml" >"$out/daemon.log" 2>&1 &
daemon=$!
pids+=($daemon)

set +e
python3 - "$out" "$daemon" "$metrics_port" "$duration" "$interval" "$cameras" <<'EOF'
import math, os, re, signal, sys, time, urllib.request

out, pid, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
duration, interval, ncam = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
fps = 30.0  # media/demo/scene.mp4 (check-config: 1280x720, 360 frames, 12.0 s)
warmup_s = min(30.0, duration / 4)
stall_window = float(os.environ.get("STALL_WINDOW_S", 30))
slope_max = float(os.environ.get("RSS_SLOPE_MAX_KIB_MIN", 256))
cams = [f"cam{i}" for i in range(1, ncam + 1)]
url = f"http://127.0.0.1:{port}/metrics"
tick = os.sysconf("SC_CLK_TCK")

def alive():
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False

def rss_now():
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))

def proc():
    rss = rss_now()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / tick
    with open(f"/proc/{pid}/status") as f:
        threads = int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))
    return rss, cpu_s, threads

LINE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
def scrape():
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    ms = (time.monotonic() - t) * 1e3
    with open(f"{out}/metrics-last.txt", "w") as f:
        f.write(text)
    m = {}
    for line in text.splitlines():
        g = LINE.match(line)
        if not g:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', g.group(2) or ""))
        m[(g.group(1), tuple(sorted(labels.items())))] = float(g.group(3))
    return m, ms

def get(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)

def buckets(m, name, **labels):
    """Cumulative (le, count) pairs of a histogram series, sorted by le."""
    out = []
    for (n, lab), v in m.items():
        d = dict(lab)
        if n == name + "_bucket" and all(d.get(k) == v2 for k, v2 in labels.items()):
            out.append((float(d["le"]), v))
    return sorted(out)

def quantile(bs, q):
    """histogram_quantile: linear interpolation inside the bucket holding rank q."""
    if not bs or bs[-1][1] <= 0:
        return float("nan")
    total, prev_le, prev_c = bs[-1][1], 0.0, 0.0
    rank = q * total
    for le, c in bs:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return prev_le

def diff(a, b):
    return [(le, cb - ca) for (le, ca), (_, cb) in zip(a, b)]

AGE = "speedcam_frame_age_seconds"
STAGE = "speedcam_stage_duration_seconds"

# Wait for every camera to stream (model load + warm-up).
deadline = time.monotonic() + 180
while True:
    if not alive():
        print("soak: the daemon exited during start-up; see daemon.log", file=sys.stderr)
        sys.exit(1)
    try:
        m, _ = scrape()
        if all(get(m, "speedcam_source_state", camera=c, state="streaming") == 1 for c in cams):
            break
    except Exception:
        pass
    if time.monotonic() > deadline:
        print("soak: cameras not streaming after 180 s", file=sys.stderr)
        sys.exit(1)
    time.sleep(1)

start = time.monotonic()
print(f"soak: {ncam} cameras streaming; sampling every {interval:g} s for {duration:g} s", file=sys.stderr)
cols = ["t_s", "rss_kib", "rss_floor_kib", "cpu_pct", "threads", "load1", "scrape_ms", "outbox_depth"]
for c in cams:
    cols += [f"{c}_{k}" for k in ("frames", "detected", "skipped", "dropped", "fps_in", "fps_detected",
                                  "fps_dropped", "age_p50_ms", "age_p99_ms", "state")]
csv = open(f"{out}/samples.csv", "w")
csv.write(",".join(cols) + "\n")
samples, misses, died = [], 0, False
prev = None
floor = None  # the lowest RSS read since the last sample
next_t = start
while True:
    now = time.monotonic()
    t = now - start
    if not alive():
        died = True
        break
    try:
        rss, cpu_s, threads = proc()
    except (OSError, AttributeError):
        died = True
        break
    try:
        m, scrape_ms = scrape()
    except Exception as e:
        misses += 1
        print(f"soak: t={t:.0f} s: /metrics did not answer: {e}", file=sys.stderr)
        m, scrape_ms = None, float("nan")
    load1 = float(open("/proc/loadavg").read().split()[0])
    if m is not None:
        rss_floor = rss if floor is None else min(floor, rss)
        floor = None
        s = {"t": t, "rss": rss, "floor": rss_floor, "cpu_s": cpu_s, "m": m}
        row = [f"{t:.1f}", str(rss), str(rss_floor), "", str(threads), f"{load1:.2f}", f"{scrape_ms:.1f}",
               f"{get(m, 'speedcam_outbox_depth'):.0f}"]
        if prev is not None:
            dt = t - prev["t"]
            row[3] = f"{100 * (cpu_s - prev['cpu_s']) / dt:.0f}"
        for c in cams:
            f, d, k, dr = (get(m, n, camera=c) for n in ("speedcam_frames_total", "speedcam_frames_detected_total",
                                                         "speedcam_frames_skipped_total", "speedcam_frames_dropped_total"))
            state = next((dict(lab)["state"] for (n, lab), v in m.items()
                          if n == "speedcam_source_state" and dict(lab).get("camera") == c and v == 1), "?")
            if prev is not None:
                pm = prev["m"]
                rate = lambda n, now_v: (now_v - get(pm, n, camera=c)) / dt
                win = diff(buckets(pm, AGE, camera=c), buckets(m, AGE, camera=c))
                row += [f"{f:.0f}", f"{d:.0f}", f"{k:.0f}", f"{dr:.0f}",
                        f"{rate('speedcam_frames_total', f):.2f}", f"{rate('speedcam_frames_detected_total', d):.2f}",
                        f"{rate('speedcam_frames_dropped_total', dr):.2f}",
                        f"{1e3 * quantile(win, 0.5):.0f}", f"{1e3 * quantile(win, 0.99):.0f}", state]
            else:
                row += [f"{f:.0f}", f"{d:.0f}", f"{k:.0f}", f"{dr:.0f}", "", "", "", "", "", state]
        csv.write(",".join(row) + "\n")
        csv.flush()
        samples.append(s)
        prev = s
    if t >= duration:
        break
    next_t += interval
    wait_until = min(next_t, start + duration)
    while (left := wait_until - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        try:
            r = rss_now()
        except (OSError, AttributeError):
            break
        floor = r if floor is None else min(floor, r)
csv.close()

# Stop: SIGTERM; the daemon must be gone within 40 s (cameras stop, outbox drains, store
# flushes). Its exit status is checked by the shell, its parent.
stop_s, stopped = float("nan"), False
if not died:
    os.kill(pid, signal.SIGTERM)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:
        if not alive():
            stopped = True
            break
        time.sleep(0.1)
    stop_s = time.monotonic() - t0
    if not stopped:
        os.kill(pid, signal.SIGKILL)

# ---- analysis ----
fails, lines = [], []
def say(s=""):
    lines.append(s)
first, last = samples[0], samples[-1]
span_min = (last["t"] - first["t"]) / 60
load = open("/proc/loadavg").read().split()[:3]
say(f"speedcam load soak: {ncam} cameras x {fps:g} fps real-time replay of media/demo/scene.mp4 (looped), "
    f"tract CPU backend, {last['t']:.0f} s sampled every {interval:g} s; {os.cpu_count()} CPUs, "
    f"load average at the end {' '.join(load)}")
# Memory.
half = [s for s in samples if s["t"] >= last["t"] / 2]

def ls_slope(key):
    """Least-squares slope of samples[key] over the second half, KiB/min."""
    xs = [s["t"] / 60 for s in half]
    ys = [s[key] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else float("nan")

slope, raw_slope = ls_slope("floor"), ls_slope("rss")
rss_max = max(s["rss"] for s in samples)
floors = [s["floor"] for s in half]
say(f"RSS: start {first['rss'] / 1024:.1f} MiB, end {last['rss'] / 1024:.1f} MiB, max {rss_max / 1024:.1f} MiB, "
    f"growth {(last['rss'] - first['rss']) / 1024:+.1f} MiB; second half: floor {min(floors) / 1024:.1f}-"
    f"{max(floors) / 1024:.1f} MiB, floor slope {slope:+.1f} KiB/min (limit {slope_max:g}), "
    f"sampled-RSS slope {raw_slope:+.1f} KiB/min (least squares over {len(half)} samples)")
if not slope <= slope_max:
    fails.append(f"RSS grows {slope:.1f} KiB/min over the second half (limit {slope_max:g})")
cpu = 100 * (last["cpu_s"] - first["cpu_s"]) / (last["t"] - first["t"])
say(f"CPU: {cpu:.0f}% of one core on average")
# Liveness.
say(f"process: {'alive through the run' if not died else 'DIED during the run'}; "
    f"/metrics misses {misses}; gone {stop_s:.1f} s after SIGTERM")
if died:
    fails.append("the daemon died during the run")
if misses > 1:
    fails.append(f"/metrics did not answer {misses} times")
if not died and not stopped:
    fails.append("the daemon was still running 40 s after SIGTERM (killed)")
# Per camera.
warm = next((s for s in samples if s["t"] >= warmup_s), first)
m0, m1 = warm["m"], last["m"]
dt = last["t"] - warm["t"]
det_sum = det_n = 0.0
for st in ("preprocess", "inference", "postprocess"):
    for c in cams:
        det_sum += get(m1, STAGE + "_sum", camera=c, stage=st) - get(m0, STAGE + "_sum", camera=c, stage=st)
    if st == "inference":
        det_n = sum(get(m1, STAGE + "_count", camera=c, stage=st) - get(m0, STAGE + "_count", camera=c, stage=st) for c in cams)
t_det_ms = 1e3 * det_sum / det_n if det_n else float("nan")
overtakes = int(os.environ.get("OVERTAKES", 4))
bound = float(os.environ.get("LATENCY_P99_MAX_MS", 0)) or 2 * ((ncam + overtakes) * t_det_ms + 1e3 / fps) + 100
say(f"detection: {t_det_ms:.1f} ms mean (preprocess + inference + postprocess) over {det_n:.0f} detections; "
    f"latency p99 limit {bound:.0f} ms" + ("" if os.environ.get("LATENCY_P99_MAX_MS") else
    f" = 2 x (({ncam} + {overtakes}) x {t_det_ms:.0f} + {1e3 / fps:.0f}) + 100"))
say(f"after a {warm['t']:.0f} s warm-up, over {dt:.0f} s:")
say(f"{'camera':<7} {'fps in':>7} {'det/s':>6} {'skip/s':>6} {'drop/s':>6} {'offered':>7} "
    f"{'age p50':>8} {'p99':>6} {'max win p99':>11} {'meas':>5} {'longest stall':>13}")
tot = {"f": 0, "d": 0, "k": 0, "dr": 0}
for c in cams:
    g = lambda n, mm: get(mm, n, camera=c)
    f = g("speedcam_frames_total", m1) - g("speedcam_frames_total", m0)
    d = g("speedcam_frames_detected_total", m1) - g("speedcam_frames_detected_total", m0)
    k = g("speedcam_frames_skipped_total", m1) - g("speedcam_frames_skipped_total", m0)
    dr = g("speedcam_frames_dropped_total", m1) - g("speedcam_frames_dropped_total", m0)
    meas = g("speedcam_measurements_total", m1)
    for key, v in zip("f d k dr".split(), (f, d, k, dr)):
        tot[key] += v
    age = diff(buckets(m0, AGE, camera=c), buckets(m1, AGE, camera=c))
    p50, p99 = 1e3 * quantile(age, 0.5), 1e3 * quantile(age, 0.99)
    win_p99 = 0.0
    longest, since = 0.0, samples[0]
    for a, b in zip(samples, samples[1:]):
        if b["t"] >= warm["t"]:
            w = diff(buckets(a["m"], AGE, camera=c), buckets(b["m"], AGE, camera=c))
            q = quantile(w, 0.99)
            if not math.isnan(q):
                win_p99 = max(win_p99, 1e3 * q)
        if get(b["m"], "speedcam_frames_total", camera=c) > get(since["m"], "speedcam_frames_total", camera=c):
            since = b
        longest = max(longest, b["t"] - since["t"])
    offered = (f + dr) / (fps * dt)
    say(f"{c:<7} {f / dt:7.2f} {d / dt:6.2f} {k / dt:6.2f} {dr / dt:6.2f} {100 * offered:6.1f}% "
        f"{p50:6.0f}ms {p99:4.0f}ms {win_p99:9.0f}ms {meas:5.0f} {longest:11.0f} s")
    if not p99 <= bound:
        fails.append(f"{c}: frame age p99 {p99:.0f} ms above the limit {bound:.0f} ms")
    if longest >= stall_window:
        fails.append(f"{c}: no new frame for {longest:.0f} s (stall window {stall_window:g} s): deadlock or wedge")
    if d == 0:
        fails.append(f"{c}: no frame detected after the warm-up")
say(f"all    {tot['f'] / dt:7.2f} {tot['d'] / dt:6.2f} {tot['k'] / dt:6.2f} {tot['dr'] / dt:6.2f} "
    f"{100 * (tot['f'] + tot['dr']) / (ncam * fps * dt):6.1f}%")
say("fps in: frames the camera loop took; drop/s: frames replaced before it took them (latest wins) "
    "or skipped by the replay when its decoder fell behind; offered: (in + dropped) / (30 fps x time): "
    "below 100% means the decode threads themselves lagged the clock (CPU starved); drops are "
    "counted when the loop takes its next frame, so a starved camera can read a little over 100%.")
say(f"outbox depth: end {get(m1, 'speedcam_outbox_depth'):.0f}, max "
    f"{max(get(s['m'], 'speedcam_outbox_depth') for s in samples):.0f}")
if os.path.exists(f"{out}/mqtt.txt"):
    topics = {}
    for line in open(f"{out}/mqtt.txt", errors="replace"):
        # One topic per line (-F %t); payloads (JPEG thumbnails) never reach this file, but skip
        # anything that is not a topic all the same.
        topic = line.strip().split(" ", 1)[0]
        if not topic.startswith("speedcam/"):
            continue
        topic = topic.split("/")[-1]
        topics[topic] = topics.get(topic, 0) + 1
    say("MQTT messages received by topic: " + ", ".join(f"{k} {v}" for k, v in sorted(topics.items())))
say()
say("RESULT: " + ("PASS" if not fails else "FAIL"))
for f in fails:
    say("  - " + f)
text = "\n".join(lines) + "\n"
open(f"{out}/summary.txt", "w").write(text)
print(text)
sys.exit(1 if fails else 0)
EOF
status=$?
wait "$daemon"
code=$?
set -e
echo "daemon exit status after SIGTERM: $code" >>"$out/summary.txt"
if [ "$code" -ne 0 ] && [ -f "$out/summary.txt" ]; then
    sed -i 's/^RESULT: PASS$/RESULT: FAIL/' "$out/summary.txt"
    echo "  - the daemon exited with status $code" >>"$out/summary.txt"
    status=1
fi
log "daemon exit status after SIGTERM: $code"
log "samples: $out/samples.csv, summary: $out/summary.txt"
exit $status
