#!/usr/bin/env bash
# soak.sh - the soak test (not part of CI): runs the service for a given
# time at a steady job rate while faults are injected on a schedule (node
# churn, cluster-manager outages, Redis restarts, worker kills), then checks
# that no accepted job lost its result, no node is over capacity and memory
# stayed flat. Everything runs on free loopback ports and is stopped on exit.
#
#   scripts/soak.sh [--mode embedded|redis] [--duration SECONDS] [--rate R]
#                   [--json FILE] [--workdir DIR] [more: --help]
#
# Defaults: embedded mode, 1800 s, 100 intake requests/s. Prints a summary,
# writes a JSON report (default WORKDIR/soak.json) and exits 1 on any
# violation (2 when the set-up fails). Two runs (one per mode) may run at
# the same time. BUILD_DIR (default build) picks the release build; it is
# built when missing. What is checked and how: scripts/soak_driver.py and
# docs/reliability.md ("Soak").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

for arg in "$@"; do
    case "$arg" in
    -h | --help)
        sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        echo
        exec python3 "$ROOT/scripts/soak_driver.py" --bin /dev/null --help
        ;;
    esac
done

if [ ! -x "$BUILD_DIR/cluster-scheduler" ]; then
    "$ROOT/scripts/deps.sh"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j2 --target cluster-scheduler >/dev/null
fi
if [[ " $* " == *" redis "* || " $* " == *"--mode=redis"* ]] && ! command -v redis-server >/dev/null; then
    "$ROOT/scripts/deps.sh"
fi

exec python3 "$ROOT/scripts/soak_driver.py" --bin "$BUILD_DIR/cluster-scheduler" "$@"
