#!/usr/bin/env bash
# The test command: installs what is missing, builds everything under
# AddressSanitizer + UndefinedBehaviorSanitizer and runs every test (unit and
# end-to-end), then builds under ThreadSanitizer and runs the threaded tests
# and the end-to-end tests against that binary, then runs the end-to-end tests
# once more against a plain build under valgrind memcheck. Exits non-zero on
# the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

JOBS=$(nproc)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

echo "== ASan + UBSan build"
cmake -S . -B build-asan -DSANITIZE=asan -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$JOBS"
echo "== unit tests (ASan + UBSan)"
ctest --test-dir build-asan -L unit -j"$JOBS" --output-on-failure
echo "== end-to-end tests (ASan + UBSan)"
ctest --test-dir build-asan -L e2e --output-on-failure

echo "== ThreadSanitizer build"
cmake -S . -B build-tsan -DSANITIZE=tsan -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$JOBS"
echo "== threaded tests (TSan)"
# Some kernels randomise mmap more than this TSan runtime expects; running
# without address randomisation avoids its "unexpected memory mapping" abort.
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    setarch "$(uname -m)" -R ctest --test-dir build-tsan -L threads --output-on-failure
echo "== end-to-end tests against the ThreadSanitizer binary"
# Every e2e test fails on a ThreadSanitizer report in the service's stderr.
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    setarch "$(uname -m)" -R ctest --test-dir build-tsan -L e2e -j2 --output-on-failure

echo "== end-to-end tests against a plain build under valgrind memcheck"
scripts/valgrind-e2e.sh

echo "== release build (benchmarks compile)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"
echo "all tests passed"
