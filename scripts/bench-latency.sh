#!/usr/bin/env bash
# bench-latency.sh - request-to-result latency of the service (embedded mode)
# against offered load: for each rate, a fresh service on free loopback ports
# and build/loadgen sending jobs open loop at that rate for --duration s.
#
#   scripts/bench-latency.sh [--rates LIST] [--duration S] [--runs K] [--out FILE]
#                            [--workers N] [--nodes N] [--timeout S] [--json]
#                            [--connections C]
#
#   --rates LIST   offered loads in jobs/s (default 500,1000,2000,4000,6000,8000)
#   --duration S   seconds of sending per rate and run: rate*S jobs (default 10)
#   --runs K       runs per rate, each from an empty store (default 3)
#   --out FILE     also write one JSON line per rate (medians) to FILE
#   --workers N    worker threads of the service (default 1, as bench-service.sh)
#   --nodes N      nodes loadgen registers (default 100)
#   --timeout S    loadgen's wait for outstanding results after the last send
#                  (default 30); jobs still without a result then count as lost
#   --json         print the JSON lines instead of the table
#   --connections C  loadgen's kept-alive connections (default 32); each
#                  carries one request at a time, so C must exceed the rate
#                  times the intake's answer time or loadgen, not the
#                  service, sets the pace (loadgen's sent_late counts jobs
#                  sent over 1 ms late; a few are the sending thread's own
#                  scheduling delays)
# Every figure is the median of the runs; latency counts from the time a job
# was due (start + n/rate) to its result's arrival at loadgen, which plays
# the cluster manager. BUILD_DIR (default build) picks the release build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

RATES="500,1000,2000,4000,6000,8000"
DURATION=10
RUNS=3
OUT=""
WORKERS=1
NODES=100
TIMEOUT=30
JSON=0
CONNS=32

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
    --rates) need $# "$1"; RATES="$2"; shift 2 ;;
    --rates=*) RATES="${1#*=}"; shift ;;
    --duration) need $# "$1"; DURATION="$2"; shift 2 ;;
    --duration=*) DURATION="${1#*=}"; shift ;;
    --runs) need $# "$1"; RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --out) need $# "$1"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --workers) need $# "$1"; WORKERS="$2"; shift 2 ;;
    --workers=*) WORKERS="${1#*=}"; shift ;;
    --nodes) need $# "$1"; NODES="$2"; shift 2 ;;
    --nodes=*) NODES="${1#*=}"; shift ;;
    --timeout) need $# "$1"; TIMEOUT="$2"; shift 2 ;;
    --timeout=*) TIMEOUT="${1#*=}"; shift ;;
    --json) JSON=1; shift ;;
    --connections) need $# "$1"; CONNS="$2"; shift 2 ;;
    --connections=*) CONNS="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
    esac
done
pos='^[1-9][0-9]*$'
[[ "$RATES" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die_usage "--rates: '$RATES' is not a list like 500,1000"
[[ "$DURATION" =~ $pos ]] || die_usage "--duration: '$DURATION' is not a positive integer"
[[ "$RUNS" =~ $pos ]] || die_usage "--runs: '$RUNS' is not a positive integer"
[[ "$WORKERS" =~ $pos ]] || die_usage "--workers: '$WORKERS' is not a positive integer"
[[ "$NODES" =~ $pos ]] || die_usage "--nodes: '$NODES' is not a positive integer"
[[ "$TIMEOUT" =~ $pos ]] || die_usage "--timeout: '$TIMEOUT' is not a positive integer"

if [ ! -x "$BUILD_DIR/cluster-scheduler" ] || [ ! -x "$BUILD_DIR/loadgen" ] ||
    ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    "$ROOT/scripts/deps.sh"
    echo "bench-latency: building $BUILD_DIR (RelWithDebInfo)" >&2
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j2 --target cluster-scheduler loadgen >/dev/null
fi


WORK="$(mktemp -d)"
SVC_PID=""
LG_PID=""
stop_service() {
    if [ -n "$LG_PID" ]; then
        kill "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
        LG_PID=""
    fi
    if [ -n "$SVC_PID" ]; then
        kill "$SVC_PID" 2>/dev/null || true
        wait "$SVC_PID" 2>/dev/null || true
        SVC_PID=""
    fi
}
trap 'stop_service; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

one_run() { # rate run -> appends loadgen's JSON line to $WORK/raw
    local rate="$1" run="$2" api rp line
    api=$(free_port)
    rp=$(free_port)
    rm -rf "$WORK/data"
    env CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT="$rp" LOG_LEVEL=warn \
        DATA_DIR="$WORK/data" MY_PORT="$api" WORKERS="$WORKERS" \
        "$BUILD_DIR/cluster-scheduler" >"$WORK/svc.log" 2>&1 &
    SVC_PID=$!
    wait_status "$api" bench-latency "$SVC_PID" "$WORK/svc.log"
    # In the background so that a signal stops the run at once; loadgen exits 1
    # when something was lost or failed: that is a figure here, not an error.
    "$BUILD_DIR/loadgen" --target "127.0.0.1:$api" --receiver-port "$rp" \
        --nodes "$NODES" --rate "$rate" --duration "$DURATION" --timeout "$TIMEOUT" \
        --connections "$CONNS" \
        --run-id "lat-$rate-$run-$$" --json --quiet >"$WORK/lg.out" 2>"$WORK/lg.err" &
    LG_PID=$!
    wait "$LG_PID" || true
    LG_PID=""
    stop_service
    line=$(tail -1 "$WORK/lg.out")
    case "$line" in
    "{"*) printf '%s\n' "$line" | sed "s/^{/{\"bench_rate\":$rate,\"bench_run\":$run,/" >>"$WORK/raw" ;;
    *)
        echo "bench-latency: rate $rate run $run: loadgen printed no result" >&2
        tail -5 "$WORK/lg.err" >&2 || true
        ;;
    esac
}

IFS=',' read -r -a RATE_LIST <<<"$RATES"
: >"$WORK/raw"
for rate in "${RATE_LIST[@]}"; do
    for run in $(seq 1 "$RUNS"); do
        echo "bench-latency: rate $rate jobs/s, run $run/$RUNS, $((rate * DURATION)) jobs" >&2
        one_run "$rate" "$run"
    done
done

python3 - "$WORK/raw" "$JSON" "$OUT" "$RUNS" "$DURATION" "$WORKERS" "$NODES" <<'EOF'
import json, statistics, sys

raw, as_json, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
runs, duration, workers, nodes = (int(v) for v in sys.argv[4:8])
by_rate = {}
for l in open(raw):
    if l.strip():
        r = json.loads(l)
        by_rate.setdefault(r["bench_rate"], []).append(r)

def med(rs, key):
    vals = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
    return round(statistics.median(vals), 3) if vals else None

rows = []
for rate in sorted(by_rate):
    rs = by_rate[rate]
    d = {"mode": "embedded", "rate": rate, "duration_s": duration,
         "jobs": rate * duration, "workers": workers, "nodes": nodes, "runs": len(rs)}
    for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms",
              "accepted_per_s", "results_per_s", "lost", "errors", "sent_late"):
        d[k] = med(rs, k)
    # a median can hide one bad run: keep the worst too
    d["lost_max"] = max(r.get("lost", 0) for r in rs)
    d["errors_max"] = max(r.get("errors", 0) for r in rs)
    rows.append(d)

if out:
    with open(out, "w") as f:
        for d in rows:
            f.write(json.dumps(d) + "\n")
if as_json:
    for d in rows:
        print(json.dumps(d))
    sys.exit(0)

def f(v, fmt=".1f"):
    return "-" if v is None else format(v, fmt)

print("embedded mode, %d worker thread%s, %d nodes, %d s per rate; median of %d run%s"
      % (workers, "" if workers == 1 else "s", nodes, duration, runs, "" if runs == 1 else "s"))
print("%8s %11s %10s %9s %9s %9s %9s %7s %7s %9s" % ("rate/s", "accepted/s", "results/s",
      "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors", "lost", "sent_late"))
for d in rows:
    print("%8d %11s %10s %9s %9s %9s %9s %7s %7s %9s" % (
        d["rate"], f(d["accepted_per_s"], ".0f"), f(d["results_per_s"], ".0f"),
        f(d["p50_ms"], ".2f"), f(d["p90_ms"], ".2f"), f(d["p99_ms"], ".2f"),
        f(d["max_ms"], ".1f"), f(d["errors"], "g"), f(d["lost"], "g"), f(d["sent_late"], "g")))
bad = [d for d in rows if d["lost_max"] or d["errors_max"]]
for d in bad:
    print("rate %d: worst run had %d errors, %d lost" % (d["rate"], d["errors_max"], d["lost_max"]))
EOF
got=$(python3 -c 'import sys; print(sum(1 for l in open(sys.argv[1]) if l.strip()))' "$WORK/raw")
if [ "$got" -lt $((${#RATE_LIST[@]} * RUNS)) ]; then
    echo "bench-latency: only $got of $((${#RATE_LIST[@]} * RUNS)) runs gave a result" >&2
    exit 1
fi
