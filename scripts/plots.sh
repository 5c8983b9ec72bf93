#!/usr/bin/env bash
# plots.sh - draws the two performance plots with gnuplot (installed from
# Debian, gnuplot-nox, when missing) from the benchmarks' JSON lines.
#
#   scripts/plots.sh [--engine FILE] [--latency FILE] [--data-dir DIR] [--outdir DIR]
#
#   --engine FILE    raw runs of `scripts/bench-engine.sh --out FILE`
#                    (default DATA_DIR/engine.jsonl)
#   --latency FILE   medians of `scripts/bench-latency.sh --out FILE`
#                    (default DATA_DIR/latency.jsonl)
#   --data-dir DIR   where the inputs and the plotted data are kept (default docs/data)
#   --outdir DIR     where the PNGs go (default docs)
#
# Writes OUTDIR/decision-time.png (time per decision against cluster size,
# ours and the original, log-log, medians over the runs) and
# OUTDIR/latency-vs-load.png (p50 and p99 request-to-result latency against
# offered load, log y). An input given from elsewhere is copied into
# DATA_DIR (as engine.jsonl / latency.jsonl) once plotted, and the tables actually plotted
# are kept beside it (decision-time.dat, latency-vs-load.dat), so the plots
# can be made again with no argument. A plot whose default input is missing
# is skipped; an input given on the command line must exist.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
DATA_DIR="$ROOT/docs/data"
OUTDIR="$ROOT/docs"
ENGINE=""
LATENCY=""

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
    --engine) need $# "$1"; ENGINE="$2"; shift 2 ;;
    --engine=*) ENGINE="${1#*=}"; shift ;;
    --latency) need $# "$1"; LATENCY="$2"; shift 2 ;;
    --latency=*) LATENCY="${1#*=}"; shift ;;
    --data-dir) need $# "$1"; DATA_DIR="$2"; shift 2 ;;
    --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
    --outdir) need $# "$1"; OUTDIR="$2"; shift 2 ;;
    --outdir=*) OUTDIR="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
    esac
done

# Resolve the inputs: given ones must exist and are copied into DATA_DIR;
# defaults are used when they are there.
mkdir -p "$DATA_DIR" "$OUTDIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
OUTDIR="$(cd "$OUTDIR" && pwd)"
take() { # given-file default-name -> path to read, or "" to skip
    local given="$1" dflt="$DATA_DIR/$2"
    if [ -n "$given" ]; then
        [ -s "$given" ] || { echo "plots: $given: missing or empty" >&2; exit 1; }
        echo "$given"
    elif [ -s "$dflt" ]; then
        echo "$dflt"
    else
        echo "plots: no $dflt; skipping its plot" >&2
        echo ""
    fi
}
keep() { # input default-name: once plotted, keep the input in DATA_DIR
    local dflt="$DATA_DIR/$2"
    if [ "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" != "$dflt" ]; then
        cat "$1" >"$dflt"
    fi
}
ENGINE="$(take "$ENGINE" engine.jsonl)"
LATENCY="$(take "$LATENCY" latency.jsonl)"
[ -n "$ENGINE" ] || [ -n "$LATENCY" ] || {
    echo "plots: nothing to plot (run scripts/bench.sh, or give --engine / --latency)" >&2
    exit 1
}

if ! command -v gnuplot >/dev/null; then
    echo "plots: installing gnuplot-nox" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
if ! command -v python3 >/dev/null; then
    "$ROOT/scripts/deps.sh"
fi

# pngcairo (antialiased, UTF-8 labels) when this gnuplot has it, else png (libgd).
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
    TERM_LINE='set terminal pngcairo size 960,640 enhanced font "DejaVu Sans,11" linewidth 1.5'
else
    TERM_LINE='set terminal png size 960,640 enhanced font "DejaVu Sans,11"'
fi

# JSON lines -> gnuplot tables (one row per x, medians over the runs).
# Prints key=value facts for the titles on stdout.
to_dat() { # kind input output kept-name
    python3 - "$@" <<'EOF'
import json, os, statistics, sys

kind, src, dst = sys.argv[1:4]
rows = [json.loads(l) for l in open(src) if l.strip()]

def med(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None

def fmt(v, f="%.6g"):
    return "?" if v is None else f % v

name = sys.argv[4]  # the name it is kept under in DATA_DIR
part = dst + ".part"
try:
    with open(part, "w") as out:
        if kind == "engine":
            ours, orig = {}, {}
            for r in rows:
                if r.get("src") == "ours" and r.get("op", "rank") == "rank":
                    ours.setdefault(r["nodes"], []).append(r)
                elif r.get("src") == "original":
                    orig.setdefault(r["nodes"], []).append(r)
            if not ours and not orig:
                sys.exit("plots: %s has no engine rows (expected bench-engine.sh --out lines)" % src)
            runs = max(len(v) for v in list(ours.values()) + list(orig.values()))
            out.write("# time per placement decision, medians over the runs in %s\n" % name)
            out.write("# nodes ours_median_us ours_p99_us original_median_us original_p99_us "
                      "speedup ours_runs original_runs\n")
            for n in sorted(set(ours) | set(orig)):
                o, b = ours.get(n, []), orig.get(n, [])
                om, bm = med(r["median_us"] for r in o), med(r["median_us"] for r in b)
                sp = bm / om if om and bm else None
                out.write("%d %s %s %s %s %s %d %d\n" % (
                    n, fmt(om), fmt(med(r.get("p99_us") for r in o)), fmt(bm),
                    fmt(med(r.get("p99_us") for r in b)), fmt(sp, "%.0f"), len(o), len(b)))
            top = {r.get("top_k") for v in ours.values() for r in v} - {None}
            print("runs=%d" % runs)
            sizes = sorted(set(ours) | set(orig))
            print("xmin=%g" % (sizes[0] / 2))
            print("xmax=%g" % (sizes[-1] * 2))
            print("top_k=%s" % (",".join(str(t) for t in sorted(top)) or "10"))
        else:
            by = {}
            for r in rows:
                rate = r.get("rate")
                if rate is None or "p50_ms" not in r:
                    continue
                by.setdefault(rate, []).append(r)
            if not by:
                sys.exit("plots: %s has no latency rows (expected bench-latency.sh --out lines)" % src)
            out.write("# request-to-result latency against offered load, from %s\n" % name)
            out.write("# rate_per_s p50_ms p90_ms p99_ms max_ms results_per_s lost errors runs\n")
            for rate in sorted(by):
                rs = by[rate]
                out.write("%g %s %s %s %s %s %s %s %d\n" % (
                    rate, *(fmt(med(r.get(k) for r in rs)) for k in
                            ("p50_ms", "p90_ms", "p99_ms", "max_ms", "results_per_s", "lost", "errors")),
                    sum(r.get("runs", 1) for r in rs) // len(rs)))
            first = by[min(by)][0]
            print("runs=%d" % first.get("runs", 1))
            print("workers=%s" % first.get("workers", "?"))
            print("duration=%s" % first.get("duration_s", "?"))
            print("nodes=%s" % first.get("nodes", "?"))
except SystemExit:
    os.remove(part)
    raise
os.replace(part, dst)
EOF
}
fact() { sed -n "s/^$1=//p" <<<"$2"; }

if [ -n "$ENGINE" ]; then
    dat="$DATA_DIR/decision-time.dat"
    facts="$(to_dat engine "$ENGINE" "$dat" engine.jsonl)"
    runs="$(fact runs "$facts")"
    topk="$(fact top_k "$facts")"
    gnuplot <<EOF
$TERM_LINE
set output "$OUTDIR/decision-time.png"
set datafile missing "?"
set title "Time per placement decision against cluster size\n{/*0.85 one job ranked over every node, top $topk; median of $runs run$([ "$runs" = 1 ] || echo s)}"
set xlabel "cluster size (nodes)"
set ylabel "time per decision (µs)"
set logscale xy
set xrange [$(fact xmin "$facts"):$(fact xmax "$facts")]
set format x "%.0f"
set format y "%g"
set grid xtics ytics lc rgb "#cccccc"
set key top left Left reverse box opaque
plot "$dat" using 1:4 with linespoints pt 5 ps 1.3 lc rgb "#d62728" title "original (Python)", \
     "$dat" using 1:2 with linespoints pt 7 ps 1.3 lc rgb "#1f77b4" title "ours (C engine)", \
     "$dat" using 1:2:(\$6 > 0 ? sprintf("%.0f× faster", \$6) : "") with labels offset 0,-1.3 font ",9" notitle
EOF
    keep "$ENGINE" engine.jsonl
    echo "plots: wrote $OUTDIR/decision-time.png (data: $dat)" >&2
fi

if [ -n "$LATENCY" ]; then
    dat="$DATA_DIR/latency-vs-load.dat"
    facts="$(to_dat latency "$LATENCY" "$dat" latency.jsonl)"
    runs="$(fact runs "$facts")"
    workers="$(fact workers "$facts")"
    duration="$(fact duration "$facts")"
    nodes="$(fact nodes "$facts")"
    gnuplot <<EOF
$TERM_LINE
set output "$OUTDIR/latency-vs-load.png"
set datafile missing "?"
set title "Request-to-result latency against offered load\n{/*0.85 embedded mode, $workers worker thread$([ "$workers" = 1 ] || echo s), $nodes nodes, ${duration} s per rate; median of $runs run$([ "$runs" = 1 ] || echo s)}"
set xlabel "offered load (jobs/s, open loop)"
set ylabel "request-to-result latency (ms)"
set logscale y
set format y "%g"
set xrange [0:*]
set grid xtics ytics lc rgb "#cccccc"
set key top left Left reverse box opaque
set offsets 0, graph 0.05, 0, 0
plot "$dat" using 1:4 with linespoints pt 5 ps 1.3 lc rgb "#d62728" title "p99", \
     "$dat" using 1:2 with linespoints pt 7 ps 1.3 lc rgb "#1f77b4" title "p50 (median)"
EOF
    keep "$LATENCY" latency.jsonl
    echo "plots: wrote $OUTDIR/latency-vs-load.png (data: $dat)" >&2
fi
