#!/usr/bin/env bash
# bench-service.sh - end-to-end throughput and latency of the real service,
# driven by build/loadgen (which plays the cluster manager), in embedded or
# Redis mode. Starts everything it needs on free loopback ports and stops it.
#
#   scripts/bench-service.sh [--mode embedded|redis] [--workers LIST] [--threads N]
#                            [--nodes N] [--jobs M] [--rate R] [--runs K]
#                            [--connections C] [--json]
#
# --workers LIST (default 1): embedded mode: worker threads of the one
#   process; Redis mode: separate `--role worker` processes (each with
#   --threads threads, default 1) behind one `--role api` process, e.g. 1,2,4.
# --connections C (default 8): the load generator's kept-alive connections,
#   one request in flight on each.
# Every figure printed is the median of --runs runs (default 3); each run
# starts from an empty store. Redis runs use a private redis-server with
# appendonly yes / appendfsync everysec (Redis's own durable default).
# BUILD_DIR (default build) picks the release build directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

MODE=embedded
WORKERS=1
THREADS=1
NODES=100
JOBS=20000
RATE=0
RUNS=3
CONNS=8
JSON=0

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --mode) MODE="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --nodes) NODES="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --json) JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-service: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$MODE" in embedded | redis) ;; *) echo "bench-service: --mode embedded|redis" >&2; exit 2 ;; esac

if [ ! -x "$BUILD_DIR/cluster-scheduler" ] || [ ! -x "$BUILD_DIR/loadgen" ]; then
    "$ROOT/scripts/deps.sh"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null
fi
if [ "$MODE" = redis ] && ! command -v redis-server >/dev/null; then
    "$ROOT/scripts/deps.sh"
fi

# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

WORK="$(mktemp -d)"
trap 'cleanup; rm -rf "$WORK"' EXIT

one_run() { # workers run -> JSON line on stdout
    local w="$1" run="$2" api rp
    api=$(free_port)
    rp=$(free_port)
    local common=(env CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT="$rp" LOG_LEVEL=warn)
    if [ "$MODE" = embedded ]; then
        "${common[@]}" DATA_DIR="$WORK/data-$w-$run" MY_PORT="$api" WORKERS="$w" \
            "$BUILD_DIR/cluster-scheduler" >"$WORK/svc.log" 2>&1 &
        PIDS+=($!)
    else
        local rport
        rport=$(free_port)
        mkdir -p "$WORK/redis-$w-$run"
        redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes \
            --appendfsync everysec --dir "$WORK/redis-$w-$run" --daemonize no \
            >"$WORK/redis.log" 2>&1 &
        PIDS+=($!)
        wait_redis "$rport"
        local url="redis://127.0.0.1:$rport"
        "${common[@]}" REDIS_ADDR="$url" MY_PORT="$api" "$BUILD_DIR/cluster-scheduler" \
            --role api >"$WORK/api.log" 2>&1 &
        PIDS+=($!)
        for i in $(seq 1 "$w"); do
            local wp
            wp=$(free_port)
            "${common[@]}" REDIS_ADDR="$url" MY_PORT="$wp" WORKERS="$THREADS" \
                "$BUILD_DIR/cluster-scheduler" --role worker >"$WORK/worker-$i.log" 2>&1 &
            PIDS+=($!)
        done
    fi
    wait_status "$api" bench-service
    "$BUILD_DIR/loadgen" --target "127.0.0.1:$api" --receiver-port "$rp" --nodes "$NODES" \
        --jobs "$JOBS" --rate "$RATE" --connections "$CONNS" --json --quiet || true
    cleanup
}

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),3))' "$@"; }

IFS=',' read -r -a WLIST <<<"$WORKERS"
[ "$JSON" = 1 ] || printf '%-9s %-8s %13s %13s %10s %10s %10s %7s %5s\n' mode workers \
    accepted/s results/s p50_ms p99_ms max_ms errors lost
for w in "${WLIST[@]}"; do
    lines=()
    for run in $(seq 1 "$RUNS"); do
        lines+=("$(one_run "$w" "$run" | tail -1)")
    done
    fields=(accepted_per_s results_per_s p50_ms p99_ms max_ms errors lost)
    declare -A med=()
    for f in "${fields[@]}"; do
        vals=()
        for l in "${lines[@]}"; do
            vals+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2],"nan"))' "$l" "$f" 2>/dev/null || echo nan)")
        done
        med[$f]=$(median "${vals[@]}")
    done
    if [ "$JSON" = 1 ]; then
        printf '{"mode":"%s","workers":%s,"threads":%s,"nodes":%s,"jobs":%s,"rate":%s,"connections":%s,"runs":%s' \
            "$MODE" "$w" "$THREADS" "$NODES" "$JOBS" "$RATE" "$CONNS" "$RUNS"
        for f in "${fields[@]}"; do printf ',"%s":%s' "$f" "${med[$f]}"; done
        printf '}\n'
    else
        printf '%-9s %-8s %13s %13s %10s %10s %10s %7s %5s\n' "$MODE" "$w" "${med[accepted_per_s]}" \
            "${med[results_per_s]}" "${med[p50_ms]}" "${med[p99_ms]}" "${med[max_ms]}" \
            "${med[errors]}" "${med[lost]}"
    fi
    unset med
done
