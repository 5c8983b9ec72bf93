#!/usr/bin/env bash
# bench-ab.sh - two builds of the service, runs interleaved (A, B, A, B, ...)
# so that both see the same machine: this 2-core VM's speed drifts by up to
# 1.7x within minutes, so figures from different times do not compare.
# build/loadgen plays the cluster manager; per run it prints results/s,
# latency and the CPU time every process used per job (the service's
# processes and Redis from /proc/<pid>/stat, loadgen from its rusage), the
# figure that moves least with the machine's speed.
#
#   scripts/bench-ab.sh BIN_A BIN_B [--pairs K] [--jobs M] [--rate R]
#                       [--nodes N] [--workers W] [--mode embedded|redis]
#                       [--threads T] [--connections C]
#
#   --pairs K    A/B pairs (default 3)
#   --jobs M     deploys per run (default 60000; 20000 in Redis mode)
#   --rate R     jobs/s offered, open loop (default 0: as fast as possible)
#   --nodes N    cluster size (default 5000)
#   --workers W  embedded: worker threads (default 2); redis: worker
#                processes (default 2), each of --threads threads (default 1)
#   --connections C  loadgen's kept-alive connections (default 8; 32
#                shows Redis mode's capacity, see bench-service.sh)
#   --mode M     embedded (default), or redis: a private redis-server
#                (appendonly yes, appendfsync everysec), one --role api
#                process and W --role worker processes, as bench-service.sh
# A build to compare against: `git worktree add /tmp/base <commit>`, then
# `cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=RelWithDebInfo`
# and `cmake --build /tmp/base/build`. BUILD_DIR (default build) picks the
# loadgen used for both.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

PAIRS=3
JOBS=
RATE=0
NODES=5000
WORKERS=2
THREADS=1
MODE=embedded
CONNS=8
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --pairs) need $# "$1"; PAIRS="$2"; shift 2 ;;
    --jobs) need $# "$1"; JOBS="$2"; shift 2 ;;
    --rate) need $# "$1"; RATE="$2"; shift 2 ;;
    --nodes) need $# "$1"; NODES="$2"; shift 2 ;;
    --workers) need $# "$1"; WORKERS="$2"; shift 2 ;;
    --threads) need $# "$1"; THREADS="$2"; shift 2 ;;
    --mode) need $# "$1"; MODE="$2"; shift 2 ;;
    --connections) need $# "$1"; CONNS="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) die_usage "unknown option '$1'" ;;
    *) BINS+=("$1"); shift ;;
    esac
done
[ "${#BINS[@]}" -eq 2 ] || die_usage "two service binaries are needed (A and B)"
for b in "${BINS[@]}"; do [ -x "$b" ] || die_usage "'$b' is not an executable"; done
case "$MODE" in
embedded) JOBS="${JOBS:-60000}" ;;
redis)
    JOBS="${JOBS:-20000}"
    command -v redis-server >/dev/null || die_usage "--mode redis needs redis-server"
    ;;
*) die_usage "--mode: '$MODE' is neither embedded nor redis" ;;
esac
for v in PAIRS JOBS NODES WORKERS THREADS CONNS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die_usage "${v,,}: '${!v}' is not a positive integer"
done
[[ "$RATE" =~ ^[0-9]+$ ]] || die_usage "--rate: '$RATE' is not a whole number"
[ -x "$BUILD_DIR/loadgen" ] || die_usage "$BUILD_DIR/loadgen is missing (build first)"
command -v python3 >/dev/null || die_usage "python3 is needed"

WORK="$(mktemp -d)"
trap 'cleanup; rm -rf "$WORK"' EXIT
TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts one build: sets API (its port) and SVC_PIDS (service processes);
# REDIS_PID in Redis mode.
start_service() { # binary manager-port
    local bin="$1" rp="$2"
    local common=(env CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT="$rp" LOG_LEVEL=warn)
    API=$(free_port)
    SVC_PIDS=()
    REDIS_PID=
    rm -rf "$WORK/data" "$WORK/redis"
    if [ "$MODE" = embedded ]; then
        "${common[@]}" DATA_DIR="$WORK/data" MY_PORT="$API" WORKERS="$WORKERS" "$bin" \
            >"$WORK/svc.log" 2>&1 &
        SVC_PIDS+=($!)
        PIDS+=($!)
        wait_status "$API" bench-ab "$!" "$WORK/svc.log"
        return
    fi
    local rport url
    rport=$(free_port)
    mkdir -p "$WORK/redis"
    redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes \
        --appendfsync everysec --dir "$WORK/redis" --daemonize no >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=($!)
    wait_redis "$rport"
    url="redis://127.0.0.1:$rport"
    "${common[@]}" REDIS_ADDR="$url" MY_PORT="$API" "$bin" --role api >"$WORK/svc.log" 2>&1 &
    SVC_PIDS+=($!)
    PIDS+=($!)
    for i in $(seq 1 "$WORKERS"); do
        "${common[@]}" REDIS_ADDR="$url" MY_PORT="$(free_port)" WORKERS="$THREADS" "$bin" \
            --role worker >"$WORK/worker-$i.log" 2>&1 &
        SVC_PIDS+=($!)
        PIDS+=($!)
    done
    wait_status "$API" bench-ab "${SVC_PIDS[0]}" "$WORK/svc.log"
}

# CPU ticks used so far by the service's processes, and by Redis.
svc_ticks() {
    local t=0 p
    for p in "${SVC_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}
redis_ticks() { if [ -n "$REDIS_PID" ]; then cpu_ticks "$REDIS_PID"; else echo 0; fi; }

one_run() { # label binary
    local label="$1" bin="$2" rp c0 c1 r0 r1
    rp=$(free_port)
    start_service "$bin" "$rp"
    c0=$(svc_ticks)
    r0=$(redis_ticks)
    python3 - "$BUILD_DIR/loadgen" "$WORK/lg.json" "$WORK/lg.cpu" --target "127.0.0.1:$API" \
        --receiver-port "$rp" --nodes "$NODES" --jobs "$JOBS" --rate "$RATE" \
        --connections "$CONNS" --json --quiet <<'PY' || true
import resource, subprocess, sys
with open(sys.argv[2], "w") as out:
    subprocess.run([sys.argv[1]] + sys.argv[4:], stdout=out, timeout=3600)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[3], "w").write("%f\n" % (ru.ru_utime + ru.ru_stime))
PY
    c1=$(svc_ticks)
    r1=$(redis_ticks)
    cleanup
    python3 - "$label" "$WORK/lg.json" "$WORK/lg.cpu" "$c0" "$c1" "$r0" "$r1" "$TCK" "$JOBS" <<'PY'
import json, sys
label, lg, lgcpu = sys.argv[1:4]
c0, c1, r0, r1, tck, jobs = (int(x) for x in sys.argv[4:10])
try:
    d = json.load(open(lg))
except (OSError, ValueError):
    print("%s  loadgen gave no result" % label)
    sys.exit(0)
svc = (c1 - c0) / tck * 1e6 / jobs
red = (r1 - r0) / tck * 1e6 / jobs
lgc = float(open(lgcpu).read()) * 1e6 / jobs
print("%s %9.0f %9.0f %8.2f %8.2f %5d %9.1f %9.1f %9.1f %9.1f" % (
    label, d["accepted_per_s"], d["results_per_s"], d["p50_ms"], d["p99_ms"], d["lost"],
    svc, red, lgc, svc + red + lgc))
PY
}

echo "A = ${BINS[0]}"
echo "B = ${BINS[1]}"
echo "mode = $MODE, $JOBS jobs, $NODES nodes"
printf '%s %9s %9s %8s %8s %5s %9s %9s %9s %9s\n' "-" "accept/s" "results/s" "p50_ms" \
    "p99_ms" "lost" "svc_us/job" "redis_us" "lg_us/job" "cpu_us/job"
for _ in $(seq 1 "$PAIRS"); do
    one_run A "${BINS[0]}"
    one_run B "${BINS[1]}"
done
