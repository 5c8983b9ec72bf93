#!/usr/bin/env bash
# valgrind-e2e.sh - runs every end-to-end test against a plain (no
# sanitizer) debug build of the service started under valgrind memcheck.
# A test fails when valgrind reports anything about the service: an error or
# a definitely/indirectly lost block (-q: valgrind writes nothing else;
# tests/e2e/harness.py looks for its lines in the service's stderr at stop).
#
#   scripts/valgrind-e2e.sh [ctest -R regex]
#
# Bounds in the tests are stretched (CS_TIME_SCALE) since valgrind runs the
# service some 20-50 times slower. BUILD_DIR (default build-vg).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${BUILD_DIR:-build-vg}"
command -v valgrind >/dev/null || scripts/deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null  # the tests also run the ctl client and the install
export CS_WRAPPER="valgrind -q --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --num-callers=30 --track-origins=no"
export CS_TIME_SCALE="${CS_TIME_SCALE:-6}"
args=(--test-dir "$BUILD_DIR" -L e2e --output-on-failure)
[ $# -gt 0 ] && args+=(-R "$1")
ctest "${args[@]}"
echo "valgrind: every end-to-end test clean"
