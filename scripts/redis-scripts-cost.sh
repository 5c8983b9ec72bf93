#!/usr/bin/env bash
# redis-scripts-cost.sh - Redis's own CPU time per job spent in the Redis
# store's Lua scripts (intake, read, placement, claim, done), measured
# without the service: scripts/redis_scripts_cost.py plays a job's life
# through them, pipelined, against a private redis-server (appendonly yes,
# appendfsync everysec, as the benchmarks run it). Several versions of
# src/service/store_redis.c (e.g. one from `git show REV:src/service/store_redis.c`)
# are run interleaved, so that they see the same machine.
#
#   scripts/redis-scripts-cost.sh [--jobs N] [--runs K] [STORE_REDIS_C ...]
#
#   --jobs N   instances per run (default 10000: the AOF stays under
#              64 MB, so no rewrite lands in one run and not another)
#   --runs K   rounds (default 3)
# Default source: this checkout's src/service/store_redis.c. Prints, per
# run, µs of Redis CPU per job for each phase and their total.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

JOBS=10000
RUNS=3
SRCS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --jobs) need $# "$1"; JOBS="$2"; shift 2 ;;
    --runs) need $# "$1"; RUNS="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) die_usage "unknown option '$1'" ;;
    *) SRCS+=("$1"); shift ;;
    esac
done
for v in JOBS RUNS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die_usage "${v,,}: '${!v}' is not a positive integer"
done
[ "${#SRCS[@]}" -gt 0 ] || SRCS=("$ROOT/src/service/store_redis.c")
command -v redis-server >/dev/null || die_usage "redis-server is needed (scripts/deps.sh)"
command -v python3 >/dev/null || die_usage "python3 is needed"

WORK="$(mktemp -d)"
trap 'cleanup; rm -rf "$WORK"' EXIT

i=0
for src in "${SRCS[@]}"; do
    [ -f "$src" ] || die_usage "'$src' is not a file"
    cc -E -P -I"$ROOT/src/service" -I"$ROOT/src/core" "$src" >"$WORK/pre.$i.c" 2>"$WORK/cc.err" ||
        { cat "$WORK/cc.err" >&2; exit 1; }
    python3 "$ROOT/scripts/redis_scripts_cost.py" extract "$src" "$WORK/pre.$i.c" "$WORK/s.$i.json"
    i=$((i + 1))
done

for run in $(seq 1 "$RUNS"); do
    for k in $(seq 0 $((${#SRCS[@]} - 1))); do
        port=$(free_port)
        mkdir -p "$WORK/r"
        rm -rf "$WORK/r"/*
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes \
            --appendfsync everysec --dir "$WORK/r" --daemonize no >"$WORK/redis.log" 2>&1 &
        PIDS+=($!)
        wait_redis "$port"
        printf '%s run %d: ' "$(basename "${SRCS[$k]}")#$k" "$run"
        python3 "$ROOT/scripts/redis_scripts_cost.py" run "$WORK/s.$k.json" "$port" "$JOBS"
        cleanup
    done
done
