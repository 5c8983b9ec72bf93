#!/usr/bin/env bash
# bench-engine.sh - builds the release engine benchmark, runs it and the
# original placement algorithm (../shared/baseline/seed_algorithm.py) on the
# same cluster sizes, and prints ours against the original per size.
#
#   scripts/bench-engine.sh [--runs N] [--sizes 10,100,...] [--json] [--no-baseline]
#                           [--out FILE] [-- extra engine-bench options]
#
# With --runs N every figure is the median of N runs. --json prints one JSON
# object per size instead of the table; --out FILE also keeps every raw run
# (JSON lines, "src":"ours"|"original") for plots.
# BUILD_DIR (default build) picks the CMake build directory; BASELINE the script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
BASELINE="${BASELINE:-$(cd "$ROOT/.." && pwd)/shared/baseline/seed_algorithm.py}"

RUNS=1
SIZES="10,100,1000,10000,100000"
JSON=0
NO_BASELINE=0
OUT=""
EXTRA=()

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die_usage() {
    echo "bench-engine: $*" >&2
    echo "(see scripts/bench-engine.sh --help)" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --runs) [ $# -ge 2 ] || die_usage "--runs needs a value"; RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --sizes) [ $# -ge 2 ] || die_usage "--sizes needs a value"; SIZES="$2"; shift 2 ;;
    --sizes=*) SIZES="${1#*=}"; shift ;;
    --out) [ $# -ge 2 ] || die_usage "--out needs a value"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --json) JSON=1; shift ;;
    --no-baseline) NO_BASELINE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die_usage "unknown option '$1'" ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die_usage "--runs: '$RUNS' is not a positive integer"
[[ "$SIZES" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die_usage "--sizes: '$SIZES' is not a list like 1000,100000"

# Build tools missing on a fresh machine: install them the project's way.
if ! command -v cmake >/dev/null || ! command -v cc >/dev/null || ! command -v python3 >/dev/null; then
    "$ROOT/scripts/deps.sh"
fi

echo "bench-engine: building $BUILD_DIR/engine-bench (RelWithDebInfo)" >&2
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target engine-bench >/dev/null

if [ "$NO_BASELINE" -eq 0 ] && [ ! -f "$BASELINE" ]; then
    echo "bench-engine: original baseline not found at $BASELINE; printing ours only" >&2
    NO_BASELINE=1
fi

# Calls per size for the Python original: about 1-3 s each (0.75 us per node
# per decision on this kind of machine), never fewer than 30.
baseline_calls() {
    local n=$1 c
    c=$((2000000 / (n > 0 ? n : 1)))
    [ "$c" -gt 2000 ] && c=2000
    [ "$c" -lt 30 ] && c=30
    echo "$c"
}

RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT

IFS=',' read -r -a SIZE_LIST <<<"$SIZES"
for run in $(seq 1 "$RUNS"); do
    echo "bench-engine: run $run/$RUNS: ours, sizes $SIZES" >&2
    "$BUILD_DIR/engine-bench" --json --sizes "$SIZES" ${EXTRA[@]+"${EXTRA[@]}"} |
        sed "s/^{/{\"src\":\"ours\",\"run\":$run,/" >>"$RAW"
    if [ "$NO_BASELINE" -eq 0 ]; then
        for n in "${SIZE_LIST[@]}"; do
            calls=$(baseline_calls "$n")
            echo "bench-engine: run $run/$RUNS: original, $n nodes, $calls calls" >&2
            python3 "$BASELINE" --nodes "$n" --calls "$calls" --json |
                sed "s/^{/{\"src\": \"original\", \"run\": $run, /" >>"$RAW"
        done
    fi
done

[ -n "$OUT" ] && cp "$RAW" "$OUT"

python3 - "$RAW" "$JSON" "$RUNS" <<'EOF'
import json, statistics, sys

raw, as_json, runs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
rows = [json.loads(l) for l in open(raw) if l.strip()]
ours = {}   # (op, nodes) -> [row, ...]
orig = {}   # nodes -> [row, ...]
for r in rows:
    if r["src"] == "ours":
        ours.setdefault((r.get("op", "rank"), r["nodes"]), []).append(r)
    else:
        orig.setdefault(r["nodes"], []).append(r)

def med(rs, key):
    return statistics.median(r[key] for r in rs) if rs else None

out = []
for (op, n) in sorted(ours, key=lambda k: (k[0] != "rank", k[0], k[1])):
    o, b = ours[(op, n)], orig.get(n, []) if op == "rank" else []
    d = {"op": op, "nodes": n, "runs": len(o),
         "median_us": med(o, "median_us"), "p99_us": med(o, "p99_us"),
         "decisions_per_s": med(o, "decisions_per_s"),
         "bytes_per_node": med(o, "bytes_per_node")}
    if b:
        d["original_median_us"] = med(b, "median_us")
        d["original_p99_us"] = med(b, "p99_us")
        d["original_decisions_per_s"] = med(b, "decisions_per_s")
        d["speedup"] = d["original_median_us"] / d["median_us"] if d["median_us"] else None
    out.append(d)

if as_json:
    for d in out:
        print(json.dumps(d))
    sys.exit(0)

def f(v, fmt):
    return "-" if v is None else format(v, fmt)

print("median of %d run%s; ours: engine_rank top 10 unless told otherwise"
      % (runs, "" if runs == 1 else "s"))
hdr = ("op", "nodes", "ours med us", "ours p99 us", "ours dec/s", "bytes/node",
       "orig med us", "orig p99 us", "speed-up")
print("%-5s %8s %12s %12s %12s %10s %12s %12s %9s" % hdr)
for d in out:
    print("%-5s %8d %12s %12s %12s %10s %12s %12s %9s" % (
        d["op"], d["nodes"], f(d["median_us"], ".3f"), f(d["p99_us"], ".3f"),
        f(d["decisions_per_s"], ".0f"), f(d["bytes_per_node"], ".1f"),
        f(d.get("original_median_us"), ".1f"), f(d.get("original_p99_us"), ".1f"),
        f(d.get("speedup"), ".0f") + ("x" if d.get("speedup") else "")))
print("speed-up = original median / ours median, per decision")

# The targets of the placement-engine issue (one core, top 10).
rank = {d["nodes"]: d for d in out if d["op"] == "rank"}
def verdict(ok):
    return "met" if ok else "MISSED"
if 1000 in rank:
    v = rank[1000]["decisions_per_s"]
    print("target >= 200000 decisions/s at 1000 nodes: %.0f  %s" % (v, verdict(v >= 200000)))
if 100000 in rank:
    v = rank[100000]["median_us"]
    p = rank[100000]["p99_us"]
    print("target <= 1000 us per decision at 100000 nodes: median %.1f, p99 %.1f  %s"
          % (v, p, verdict(v <= 1000)))
if rank:
    over = [d for d in rank.values() if d["bytes_per_node"] > 512]
    if not over:
        worst = max(rank.values(), key=lambda d: d["bytes_per_node"])
        print("target <= 512 bytes per node: largest %.1f (at %d nodes)  met"
              % (worst["bytes_per_node"], worst["nodes"]))
    else:
        print("target <= 512 bytes per node: MISSED at %s"
              % ", ".join("%d nodes (%.1f)" % (d["nodes"], d["bytes_per_node"])
                          for d in sorted(over, key=lambda d: d["nodes"])))
EOF
