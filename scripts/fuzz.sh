#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan) and runs
# each for a while, one after the other, starting from the seed corpus in
# fuzz/corpus/<target> and the inputs found by earlier runs
# (build-fuzz/corpus/<target>). Prints per target the executions, their
# rate, the coverage (cov: edges, ft: features, from libFuzzer's last
# status line), the corpus size, the crash count (crash, leak, timeout and
# out-of-memory reproducers written) and the first problem reported; exits non-zero on any crash, leak,
# timeout or out-of-memory. Reproducers land in build-fuzz/artifacts/<target>/;
# a fixed one belongs in fuzz/regress/<target>/, which the unit tests replay.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS_ALL=(job node router redis)
TIME=600
BUILD=build-fuzz

usage() {
    cat <<EOF
usage: scripts/fuzz.sh [--time SECONDS] [--build-dir DIR] [target...]
  targets: ${TARGETS_ALL[*]} (default: all, one after the other)
  --time SECONDS   how long each target runs (default 600)
  --build-dir DIR  the clang build (default build-fuzz)
Each run: -max_total_time=SECONDS -timeout=5 -rss_limit_mb=2048
-detect_leaks=1 -max_len=4096 with fuzz/dict/<target>.dict. Logs in
DIR/logs/<target>.log. Exit status 1 when any target found a problem.
EOF
}

targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --time) TIME="${2:?--time needs a number of seconds}"; shift 2 ;;
    --time=*) TIME="${1#--time=}"; shift ;;
    --build-dir) BUILD="${2:?--build-dir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[[ "$TIME" =~ ^[0-9]+$ ]] && [ "$TIME" -gt 0 ] || { echo "fuzz: --time wants whole seconds > 0" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")
for t in "${targets[@]}"; do
    [[ " ${TARGETS_ALL[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (${TARGETS_ALL[*]})" >&2; exit 2; }
done

scripts/deps.sh
echo "== building the fuzz targets (clang, $BUILD)"
cmake -S . -B "$BUILD" -DFUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target "${targets[@]/#/fuzz_}"

mkdir -p "$BUILD/logs"
# Symbolised reports; a UBSan finding is fatal like an ASan one.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

summary=()
failed=0
for t in "${targets[@]}"; do
    corpus="$BUILD/corpus/$t"
    artifacts="$BUILD/artifacts/$t"
    log="$BUILD/logs/$t.log"
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    echo "== fuzz_$t for ${TIME}s (log: $log)"
    rc=0
    # New inputs go to the first directory; the seeds are only read.
    "$BUILD/fuzz_$t" -max_total_time="$TIME" -timeout=5 -rss_limit_mb=2048 -detect_leaks=1 \
        -max_len=4096 -print_final_stats=1 -dict="fuzz/dict/$t.dict" \
        -artifact_prefix="$artifacts/" "$corpus" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    after=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    files=$(find "$corpus" -type f | wc -l)
    found=$((after - before))
    problem="none"
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        failed=1
        problem=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+|runtime error: .*|property broken: .*' "$log" || echo "exit $rc")
        echo "   FOUND: $problem; reproducers:" >&2
        find "$artifacts" -type f -newer "$BUILD/fuzz_$t" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) >&2 || true
    fi
    line=$(printf '%-7s %12s %9s %7s %7s %8s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
        "${ft:-?}" "$files" "$found" "$problem")
    echo "   $line"
    summary+=("$line")
done

echo
echo "== summary (${TIME}s per target; corpus = $BUILD/corpus/<target> files)"
printf '%-7s %12s %9s %7s %7s %8s %8s  %s\n' target execs exec/s cov ft corpus crashes problem
for l in "${summary[@]}"; do echo "$l"; done
exit $failed
