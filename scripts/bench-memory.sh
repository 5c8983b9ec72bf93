#!/usr/bin/env bash
# bench-memory.sh - resident memory of the service (embedded mode): with a
# large cluster, and over a long steady-rate run.
#
#   scripts/bench-memory.sh [--nodes N] [--jobs M] [--rate R] [--rounds H] [--clients K] [--list]
#   scripts/bench-memory.sh --soak [S] [--soak-nodes N] [--soak-rate R]
#                           [--undeploy-after L] [--out FILE]
#
# Default (the cluster test): starts the service with NODE_TTL=3600 (so the
# nodes stay active without the 20,000 heartbeats/s that 100,000 nodes at a
# 5 s period would need on this machine), registers --nodes nodes (default
# 100000) with full reports (host, virtualization, architecture, vcpus,
# memory, vgpus, cpu_percent, memory_percent, supported_addons, csi_drivers,
# location and two fields the service does not know), reports every node a
# second time (a heartbeat round, new usage figures) while build/loadgen
# places --jobs jobs (default 5000) at --rate jobs/s (default 200), then
# makes --rounds - 1 more heartbeat rounds (--rounds default 1), and prints
# VmRSS / VmHWM of the service (from /proc/PID/status) at start, after
# registration and after each round. --clients K: client processes (2).
# --list: at the end, one GET /api/v1/nodes (all documents in one answer)
# and the RSS after it.
#
# --soak [S] (S seconds, default 600): the steady-rate test: --soak-nodes
# nodes (default 1000) heartbeating every 5 s (default NODE_TTL 15 s),
# loadgen sending --soak-rate jobs/s (default 500), and each job undeployed
# (DELETE /api/v1/jobs/ID/0) --undeploy-after seconds (default 60; 0: never)
# after it was sent, as a cluster manager does, so the live reservations
# reach a steady state. VmRSS is sampled every 10 s into --out (default
# bench-memory-soak.tsv in the current directory, columns: seconds, VmRSS kB,
# VmHWM kB, live reservations, queue depth, outbox depth); at the end it
# prints the start/end/max RSS and the slope (least squares, MB per minute,
# over the samples after the first minute, i.e. once the reservations are at
# their steady state).
#
# Environment: BUILD_DIR (default build) the release build directory;
# SVC_ENV extra VAR=VALUE settings for the service (e.g.
# SVC_ENV="MALLOC_ARENA_MAX=2"); WORKERS (default 2) scheduling threads.
# Everything listens on 127.0.0.1 (free ports); every process started is
# stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
WORKERS="${WORKERS:-2}"
SVC_ENV="${SVC_ENV:-}"

NODES=100000
JOBS=5000
RATE=200
CLIENTS=2
ROUNDS=1
LIST=0
SOAK=0
SOAK_S=600
SOAK_NODES=1000
SOAK_RATE=500
UNDEPLOY_AFTER=60
OUT="bench-memory-soak.tsv"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --list) LIST=1; shift ;;
    --soak)
        SOAK=1
        if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then SOAK_S="$2"; shift; fi
        shift ;;
    --soak-nodes) SOAK_NODES="$2"; shift 2 ;;
    --soak-rate) SOAK_RATE="$2"; shift 2 ;;
    --undeploy-after) UNDEPLOY_AFTER="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-memory: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$NODES" "$JOBS" "$CLIENTS" "$ROUNDS" "$SOAK_S" "$SOAK_NODES" "$UNDEPLOY_AFTER"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-memory: '$v' is not a whole number" >&2; exit 2; }
done

if [ ! -x "$BUILD_DIR/cluster-scheduler" ] || [ ! -x "$BUILD_DIR/loadgen" ]; then
    "$ROOT/scripts/deps.sh"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j2 >/dev/null
fi

# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

WORK="$(mktemp -d)"
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# ---- the HTTP client: node reports, heartbeats, undeploys -----------------
cat >"$WORK/client.py" <<'PY'
import http.client, json, multiprocessing, random, sys, time

def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def request(c, port, method, path, body=None):
    for attempt in range(3):
        try:
            c.request(method, path, body=body,
                      headers={"Content-Type": "application/json"} if body else {})
            r = c.getresponse()
            r.read()
            return c, r.status
        except (OSError, http.client.HTTPException):
            c.close()
            c = conn(port)
            time.sleep(0.05)
    return c, 0

ADDONS = ["gpu-driver", "image-builder", "wireguard", "local-storage", "tpm", "mqtt-bridge"]

def report(prefix, k, rnd, fixed_caps):
    """A worker's full report; the static part is a function of k alone,
    the usage figures change with the round."""
    r = random.Random(k * 7919 + 13)
    u = random.Random((k * 7919 + 13) ^ (rnd * 104729 + 1))
    x = r.random()
    virt = ["container"] if x < 0.85 else (["container", "unikernel"] if x < 0.95 else ["unikernel"])
    vcpus = 64 if fixed_caps else r.choice([2, 4, 8, 16, 32, 64])
    doc = {
        "host": "%s%d.edge-%d.example.net" % (prefix, k, k % 97),
        "virtualization": virt,
        "architecture": "amd64" if r.random() < 0.75 else "arm64",
        "vcpus": vcpus,
        "memory": 262144 if fixed_caps else vcpus * r.choice([1024, 2048, 4096]),
        "cpu_percent": round(u.uniform(0, 95), 1),
        "memory_percent": round(u.uniform(0, 95), 1),
        "supported_addons": r.sample(ADDONS, 2),
        "csi_drivers": ["csi.local.example"] if r.random() < 0.3 else [],
        "location": {"lat": round(r.uniform(-60, 70), 5), "lon": round(r.uniform(-180, 180), 5)},
        "node_address": "10.%d.%d.%d" % (k >> 16 & 255, k >> 8 & 255, k & 255),
        "node_port": 50000 + k % 1000,
    }
    if r.random() < 0.1:
        doc["vgpus"] = r.randint(1, 8)
    return json.dumps(doc, separators=(",", ":"))

def put_range(args):
    port, prefix, lo, hi, rnd, fixed = args
    c = conn(port)
    bad = 0
    for k in range(lo, hi):
        c, st = request(c, port, "PUT", "/api/v1/nodes/%s%d" % (prefix, k),
                        report(prefix, k, rnd, fixed))
        if st not in (200, 201):
            bad += 1
    c.close()
    return bad

def cmd_register(port, prefix, nodes, rnd, clients, fixed):
    t0 = time.time()
    step = (nodes + clients * 8 - 1) // (clients * 8)
    parts = [(port, prefix, lo, min(lo + step, nodes), rnd, fixed) for lo in range(0, nodes, step)]
    with multiprocessing.Pool(clients) as p:
        bad = sum(p.map(put_range, parts))
    dt = time.time() - t0
    print("%d reports in %.1f s (%.0f/s), %d errors" % (nodes, dt, nodes / dt, bad))
    return 1 if bad else 0

def cmd_heartbeat(port, prefix, nodes, period, duration, fixed):
    """Every node every `period` s, spread evenly, until `duration` s."""
    c = conn(port)
    t0 = time.time()
    n = bad = 0
    rnd = 1
    while time.time() - t0 < duration:
        start = time.time()
        for k in range(nodes):
            due = start + period * k / nodes
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            c, st = request(c, port, "PUT", "/api/v1/nodes/%s%d" % (prefix, k),
                            report(prefix, k, rnd, fixed))
            n += 1
            bad += st not in (200, 201)
        rnd += 1
        d = start + period - time.time()
        if d > 0:
            time.sleep(d)
    print("heartbeats: %d sent, %d errors" % (n, bad))

def cmd_undeploy(port, run_id, rate, after, duration):
    """Deletes job n (sent at t0 + n/rate) at t0 + n/rate + after, for the
    jobs sent in the first duration - after seconds (so it ends with the run;
    the jobs of the last `after` seconds stay)."""
    c = conn(port)
    t0 = time.time()
    total = int(rate * max(duration - after, 0))
    gone = missing = 0
    for n in range(total):
        due = t0 + n / rate + after
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        c, st = request(c, port, "DELETE", "/api/v1/jobs/%s-%d/0" % (run_id, n))
        if st == 404:  # not received yet: once more a little later
            time.sleep(0.5)
            c, st = request(c, port, "DELETE", "/api/v1/jobs/%s-%d/0" % (run_id, n))
        if st == 200:
            gone += 1
        else:
            missing += 1
    print("undeploys: %d jobs deleted, %d not found" % (gone, missing))

if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "register":
        sys.exit(cmd_register(int(a[1]), a[2], int(a[3]), int(a[4]), int(a[5]), a[6] == "1"))
    elif a[0] == "heartbeat":
        cmd_heartbeat(int(a[1]), a[2], int(a[3]), float(a[4]), float(a[5]), a[6] == "1")
    elif a[0] == "undeploy":
        cmd_undeploy(int(a[1]), a[2], float(a[3]), float(a[4]), float(a[5]))
PY

SVC_PID=
start_service() { # ttl
    API=$(free_port)
    RP=$(free_port)
    # shellcheck disable=SC2086
    env $SVC_ENV DATA_DIR="$WORK/data" MY_PORT="$API" BIND_ADDR=127.0.0.1 \
        CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT="$RP" WORKERS="$WORKERS" \
        NODE_TTL="$1" LOG_LEVEL=warn "$BUILD_DIR/cluster-scheduler" >"$WORK/svc.log" 2>&1 &
    SVC_PID=$!
    PIDS+=("$SVC_PID")
    wait_status "$API" bench-memory "$SVC_PID" "$WORK/svc.log" || exit 1
}
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SVC_PID/status"; }
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$SVC_PID/status"; }
metric() { # name -> value
    curl -fs "http://127.0.0.1:$API/metrics" | awk -v m="cluster_scheduler_$1" '$1 == m { print $2 }'
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
show() { # label
    local rss hwm
    rss=$(status_kb VmRSS)
    hwm=$(status_kb VmHWM)
    printf '%-34s VmRSS %8s MB   VmHWM %8s MB   threads %s\n' "$1" "$(mb "$rss")" "$(mb "$hwm")" "$(threads)"
    LAST_RSS=$rss
}

if [ "$SOAK" = 0 ]; then
    echo "cluster test: $NODES nodes, NODE_TTL=3600 (no periodic heartbeats: $ROUNDS heartbeat round(s) after registration), $JOBS jobs at $RATE/s, WORKERS=$WORKERS${SVC_ENV:+, $SVC_ENV}"
    start_service 3600
    show "started"
    base=$LAST_RSS
    python3 "$WORK/client.py" register "$API" node- "$NODES" 0 "$CLIENTS" 0
    show "after registering $NODES nodes"
    reg=$LAST_RSS
    echo "  $(awk -v a="$reg" -v b="$base" -v n="$NODES" 'BEGIN { printf "%.0f bytes per node over the empty service", (a - b) * 1024 / (n ? n : 1) }')"
    python3 "$WORK/client.py" register "$API" node- "$NODES" 1 "$CLIENTS" 0 &
    HB=$!
    PIDS+=("$HB")
    "$BUILD_DIR/loadgen" --target "127.0.0.1:$API" --receiver-port "$RP" --skip-nodes \
        --heartbeat 0 --jobs "$JOBS" --rate "$RATE" --connections 2 --quiet --json \
        >"$WORK/lg.json" || true
    wait "$HB" || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  jobs: %s accepted, %s placed, %s errors, %s lost, p50 %s ms" % (d.get("accepted"), d.get("found"), d.get("errors"), d.get("lost"), d.get("p50_ms")))' "$WORK/lg.json" 2>/dev/null || cat "$WORK/lg.json"
    show "after heartbeat round 1 + jobs"
    for r in $(seq 2 "$ROUNDS"); do
        python3 "$WORK/client.py" register "$API" node- "$NODES" "$r" "$CLIENTS" 0 >/dev/null
        show "after heartbeat round $r"
    done
    echo "  nodes_active $(metric nodes_active), reservations $(metric reservations)"
    if [ "$LIST" = 1 ]; then
        bytes=$(curl -fs "http://127.0.0.1:$API/api/v1/nodes" | wc -c)
        show "after GET /api/v1/nodes ($(mb $((bytes / 1024))) MB)"
    fi
    exit 0
fi

# ---- soak ------------------------------------------------------------------
echo "soak: $SOAK_S s, $SOAK_NODES nodes heartbeating every 5 s (NODE_TTL 15), $SOAK_RATE jobs/s, undeploy after ${UNDEPLOY_AFTER}s, WORKERS=$WORKERS${SVC_ENV:+, $SVC_ENV}"
start_service 15
python3 "$WORK/client.py" register "$API" loadgen-node- "$SOAK_NODES" 0 1 1 >/dev/null
python3 "$WORK/client.py" heartbeat "$API" loadgen-node- "$SOAK_NODES" 5 "$((SOAK_S + 30))" 1 &
PIDS+=($!)
RUN_ID="soak$$"
"$BUILD_DIR/loadgen" --target "127.0.0.1:$API" --receiver-port "$RP" --skip-nodes \
    --heartbeat 0 --rate "$SOAK_RATE" --duration "$SOAK_S" --run-id "$RUN_ID" \
    --connections 4 --quiet --json >"$WORK/lg.json" 2>"$WORK/lg.err" &
LG=$!
PIDS+=("$LG")
if [ "$UNDEPLOY_AFTER" -gt 0 ]; then
    python3 "$WORK/client.py" undeploy "$API" "$RUN_ID" "$SOAK_RATE" "$UNDEPLOY_AFTER" \
        "$SOAK_S" >"$WORK/undeploy.txt" 2>&1 &
    UNDEPLOY=$!
    PIDS+=("$UNDEPLOY")
fi
printf 'seconds\tvmrss_kb\tvmhwm_kb\treservations\tqueue_depth\toutbox_depth\n' >"$OUT"
t0=$(date +%s.%N)
next=0
while [ "$next" -le "$SOAK_S" ]; do
    while :; do
        now=$(date +%s.%N)
        el=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
        awk -v e="$el" -v n="$next" 'BEGIN { exit !(e >= n) }' && break
        sleep 0.2
    done
    kill -0 "$SVC_PID" 2>/dev/null || { echo "bench-memory: the service died" >&2; cat "$WORK/svc.log" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$next" "$(status_kb VmRSS)" "$(status_kb VmHWM)" \
        "$(metric reservations)" "$(metric queue_depth)" "$(metric outbox_depth)" >>"$OUT"
    next=$((next + 10))
done
wait "$LG" || true
[ "$UNDEPLOY_AFTER" -gt 0 ] && { wait "$UNDEPLOY" || true; }
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("jobs: %s accepted (%s/s), %s placed, %s errors, %s lost, p50 %s ms, p99 %s ms" % (d.get("accepted"), d.get("accepted_per_s"), d.get("found"), d.get("errors"), d.get("lost"), d.get("p50_ms"), d.get("p99_ms")))' "$WORK/lg.json" 2>/dev/null || cat "$WORK/lg.json" "$WORK/lg.err"
[ -s "$WORK/undeploy.txt" ] && cat "$WORK/undeploy.txt"
python3 - "$OUT" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
t = [float(r[0]) for r in rows]
rss = [int(r[1]) / 1024 for r in rows]
res = [r[3] for r in rows]
pts = [(a, b) for a, b in zip(t, rss) if a >= 60] or list(zip(t, rss))
n = len(pts)
mx = sum(a for a, _ in pts) / n
my = sum(b for _, b in pts) / n
den = sum((a - mx) ** 2 for a, _ in pts)
slope = sum((a - mx) * (b - my) for a, b in pts) / den * 60 if den else 0.0
print("samples   %d (every 10 s, in %s)" % (len(rows), sys.argv[1]))
print("VmRSS     start %.1f MB, end %.1f MB, max %.1f MB (VmHWM %.1f MB)" % (rss[0], rss[-1], max(rss), int(rows[-1][2]) / 1024))
print("slope     %+.3f MB/min over t >= 60 s (least squares); %.1f -> %.1f MB from 60 s to the end" % (slope, [b for a, b in pts][0], rss[-1]))
print("live reservations: start %s, 60 s %s, end %s" % (res[0], next((r[3] for r in rows if float(r[0]) >= 60), "-"), res[-1]))
PY
