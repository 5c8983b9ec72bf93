#!/usr/bin/env bash
# bench.sh - the headline figures in one command: the engine against the
# original algorithm, the service end to end (embedded, full speed), latency
# against offered load, the service on Redis with 1, 2 and 4 worker
# processes, the two plots, and a summary table at the end.
#
#   scripts/bench.sh [--runs K] [--nodes N] [--no-redis] [--data-dir DIR] [--outdir DIR]
#   scripts/bench.sh --quick     # smoke test of the whole chain, under a minute
#
#   --runs K        runs per figure, each figure the median (default 3)
#   --nodes N       cluster size for the service figures (default 5000, the
#                   issue's condition; the engine has its own sizes)
#   --no-redis      skip the Redis-mode runs
#   --data-dir DIR  raw data, plotted tables, machine.txt (default docs/data)
#   --outdir DIR    the PNGs (default docs)
#   --quick         tiny parameters (1 run, small sizes, short load) and, unless
#                   told otherwise, output to BUILD_DIR/bench-quick/ instead of docs/
#
# Steps (each tool's own table is printed as it goes):
#   1. scripts/bench-engine.sh --runs K --sizes 1000,10000,100000 --out DATA/engine.jsonl
#   2. scripts/bench-service.sh --mode embedded --workers 2 --nodes N --runs K --json
#                                                               > DATA/service-embedded.jsonl
#   3. scripts/bench-latency.sh --workers 2 --nodes N --rates 50,500,...,8000 --runs K
#                                                               --out DATA/latency.jsonl
#   4. scripts/bench-service.sh --mode redis --workers 1,2,4 --threads 1 --nodes N --runs K --json
#                                                               > DATA/service-redis.jsonl
#      scripts/bench-service.sh --mode redis --workers 2 --threads 1 --nodes N --runs K
#                               --connections 32 --json        >> DATA/service-redis.jsonl
#      (8 connections, one request in flight on each, cannot offer Redis
#      mode more than its intake round trip allows; 32 measure capacity)
#   5. scripts/plots.sh --data-dir DATA --outdir OUTDIR
# About 8 minutes on a 2-core machine with the defaults. BUILD_DIR (default
# build) picks the release build directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
export BUILD_DIR

RUNS=3
NODES=5000
REDIS=1
QUICK=0
DATA_DIR=""
OUTDIR=""

usage() { sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
    --runs) need $# "$1"; RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --nodes) need $# "$1"; NODES="$2"; shift 2 ;;
    --nodes=*) NODES="${1#*=}"; shift ;;
    --no-redis) REDIS=0; shift ;;
    --data-dir) need $# "$1"; DATA_DIR="$2"; shift 2 ;;
    --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
    --outdir) need $# "$1"; OUTDIR="$2"; shift 2 ;;
    --outdir=*) OUTDIR="${1#*=}"; shift ;;
    --quick) QUICK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die_usage "--runs: '$RUNS' is not a positive integer"
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die_usage "--nodes: '$NODES' is not a positive integer"

if [ "$QUICK" = 1 ]; then
    RUNS=1
    SIZES=1000,10000
    ENGINE_EXTRA=(-- --time 0.3)
    SERVICE_JOBS=(--jobs 2000)
    LATENCY_ARGS=(--rates "500,1000" --duration 2)
    REDIS_WORKERS=1
    REDIS_SATURATE=1
    DATA_DIR="${DATA_DIR:-$BUILD_DIR/bench-quick/data}"
    OUTDIR="${OUTDIR:-$BUILD_DIR/bench-quick}"
else
    SIZES=1000,10000,100000
    ENGINE_EXTRA=()
    SERVICE_JOBS=()
    LATENCY_ARGS=(--rates 50,500,1000,2000,4000,6000,8000)
    REDIS_WORKERS=1,2,4
    REDIS_SATURATE=2
    DATA_DIR="${DATA_DIR:-$ROOT/docs/data}"
    OUTDIR="${OUTDIR:-$ROOT/docs}"
fi
mkdir -p "$DATA_DIR" "$OUTDIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
OUTDIR="$(cd "$OUTDIR" && pwd)"

"$ROOT/scripts/deps.sh"
START=$(date +%s)
step() { echo; echo "== bench: $* ($(($(date +%s) - START)) s in) =="; }

# The machine, for the "machine" column of the tables.
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
        git -C "$ROOT" diff --quiet HEAD -- src bench CMakeLists.txt 2>/dev/null || echo ' (with local changes)')"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "cores: $(nproc)"
    echo "memory: $(awk '/^MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
    # shellcheck source=/dev/null
    echo "os: $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}"), kernel $(uname -r)"
    echo "toolchain: $(cc --version | head -1), $(cmake --version | head -1), $(python3 --version)"
    echo "redis: $(redis-server --version 2>/dev/null | sed 's/ sha=.*//' || echo none)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$DATA_DIR/machine.txt"

step "1/5 engine against the original (sizes $SIZES, $RUNS run(s))"
"$ROOT/scripts/bench-engine.sh" --runs "$RUNS" --sizes "$SIZES" --out "$DATA_DIR/engine.jsonl" \
    ${ENGINE_EXTRA[@]+"${ENGINE_EXTRA[@]}"}

step "2/5 service, embedded mode, full speed ($RUNS run(s))"
"$ROOT/scripts/bench-service.sh" --mode embedded --workers 2 --nodes "$NODES" --runs "$RUNS" --json \
    ${SERVICE_JOBS[@]+"${SERVICE_JOBS[@]}"} >"$DATA_DIR/service-embedded.jsonl"
cat "$DATA_DIR/service-embedded.jsonl"

step "3/5 latency against offered load ($RUNS run(s) per rate)"
"$ROOT/scripts/bench-latency.sh" --workers 2 --nodes "$NODES" --runs "$RUNS" --out "$DATA_DIR/latency.jsonl" \
    ${LATENCY_ARGS[@]+"${LATENCY_ARGS[@]}"}

if [ "$REDIS" = 1 ]; then
    step "4/5 service, Redis mode, worker processes $REDIS_WORKERS ($RUNS run(s))"
    "$ROOT/scripts/bench-service.sh" --mode redis --workers "$REDIS_WORKERS" --threads 1 --nodes "$NODES" --runs "$RUNS" \
        --json ${SERVICE_JOBS[@]+"${SERVICE_JOBS[@]}"} >"$DATA_DIR/service-redis.jsonl"
    "$ROOT/scripts/bench-service.sh" --mode redis --workers "$REDIS_SATURATE" --threads 1 --nodes "$NODES" \
        --runs "$RUNS" --connections 32 --json ${SERVICE_JOBS[@]+"${SERVICE_JOBS[@]}"} \
        >>"$DATA_DIR/service-redis.jsonl"
    cat "$DATA_DIR/service-redis.jsonl"
else
    step "4/5 Redis mode skipped (--no-redis)"
    rm -f "$DATA_DIR/service-redis.jsonl"
fi

step "5/5 plots"
"$ROOT/scripts/plots.sh" --data-dir "$DATA_DIR" --outdir "$OUTDIR"

ELAPSED=$(($(date +%s) - START))
echo
python3 - "$DATA_DIR" "$OUTDIR" "$ELAPSED" <<'EOF'
import json, os, statistics, sys

data, outdir, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3])

def lines(name):
    p = os.path.join(data, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.strip()]

def med(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None

def n(v, fmt=",.0f"):
    return "-" if v is None else format(v, fmt)

machine = dict(l.rstrip("\n").split(": ", 1) for l in open(os.path.join(data, "machine.txt"))
               if ": " in l)
print("== summary: every figure the median of the runs ==")
print("machine: %s, %s cores, %s; %s" % (machine.get("cpu"), machine.get("cores"),
      machine.get("memory"), machine.get("os")))
print("commit %s, %s, took %d min %d s" % (machine.get("commit"), machine.get("date"),
      elapsed // 60, elapsed % 60))

eng = lines("engine.jsonl")
ours, orig = {}, {}
for r in eng:
    if r.get("src") == "ours" and r.get("op", "rank") == "rank":
        ours.setdefault(r["nodes"], []).append(r)
    elif r.get("src") == "original":
        orig.setdefault(r["nodes"], []).append(r)
if ours:
    runs = max(len(v) for v in ours.values())
    print()
    print("engine_rank, top 10, one core (%d run%s)" % (runs, "" if runs == 1 else "s"))
    print("%9s %11s %11s %12s %10s %13s %14s %9s" % ("nodes", "ours µs", "ours p99",
          "ours dec/s", "bytes/node", "original µs", "original dec/s", "ratio"))
    for size in sorted(ours):
        o, b = ours[size], orig.get(size, [])
        om = med(r["median_us"] for r in o)
        bm = med(r["median_us"] for r in b)
        print("%9s %11s %11s %12s %10s %13s %14s %9s" % (
            n(size), n(om, ".3f"), n(med(r["p99_us"] for r in o), ".3f"),
            n(med(r["decisions_per_s"] for r in o)), n(med(r["bytes_per_node"] for r in o), ".1f"),
            n(bm, ",.1f"), n(med(r["decisions_per_s"] for r in b), ",.1f"),
            "-" if not (om and bm) else "%.0fx" % (bm / om)))
    print("ratio = original median / ours median, per decision")

svc = [("embedded", r) for r in lines("service-embedded.jsonl")] + \
      [("redis", r) for r in lines("service-redis.jsonl")]
if svc:
    print()
    print("service end to end, full speed, %s nodes (build/loadgen as the cluster manager)"
          % n(svc[0][1].get("nodes")))
    print("%-9s %8s %6s %6s %12s %11s %10s %10s %7s %5s" % ("mode", "workers", "conns", "jobs",
          "accepted/s", "results/s", "p50 ms", "p99 ms", "errors", "lost"))
    for mode, r in svc:
        print("%-9s %8s %6s %6s %12s %11s %10s %10s %7s %5s" % (
            mode, r.get("workers"), r.get("connections", 8), r.get("jobs"), n(r.get("accepted_per_s")),
            n(r.get("results_per_s")), n(r.get("p50_ms"), ",.1f"), n(r.get("p99_ms"), ",.1f"),
            n(r.get("errors"), "g"), n(r.get("lost"), "g")))

lat = lines("latency.jsonl")
if lat:
    d0 = lat[0]
    print()
    print("request-to-result latency against offered load (embedded, %s worker thread(s), "
          "%s nodes, %s s per rate)" % (d0.get("workers"), n(d0.get("nodes")), d0.get("duration_s")))
    print("%8s %11s %10s %9s %9s %9s %9s %7s %5s" % ("rate/s", "accepted/s", "results/s",
          "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "lost"))
    for d in lat:
        print("%8s %11s %10s %9s %9s %9s %9s %7s %5s" % (
            n(d["rate"]), n(d.get("accepted_per_s")), n(d.get("results_per_s")),
            n(d.get("p50_ms"), ".2f"), n(d.get("p90_ms"), ".2f"), n(d.get("p99_ms"), ".2f"),
            n(d.get("max_ms"), ".1f"), n(d.get("errors"), "g"), n(d.get("lost"), "g")))

print()
print("plots: %s, %s" % (os.path.join(outdir, "decision-time.png"),
                         os.path.join(outdir, "latency-vs-load.png")))
print("data:  %s/ (engine.jsonl, service-*.jsonl, latency.jsonl, *.dat, machine.txt)" % data)
EOF
