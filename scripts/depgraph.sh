#!/usr/bin/env bash
# depgraph.sh - draws the module dependency graph of the C code from its
# #include "..." lines (the C counterpart of the original's pydeps graph):
# one box per module (a .c with its .h, or a lone header), an arrow from a
# module to each module it includes, one cluster per directory (src/core,
# src/service, src/ctl). Graphviz's dot draws it (Debian's graphviz is
# installed when missing).
#
#   scripts/depgraph.sh [--out FILE] [--dot]
#
#   --out FILE   the SVG to write (default docs/depgraph.svg)
#   --dot        print the graph in dot language instead of drawing it
#
# System headers (#include <...>) and generated sources are left out. An
# include is resolved as the compiler does here: the including file's own
# directory first, then src/core, src/service, src/ctl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/docs/depgraph.svg"
DOT_ONLY=0
DIRS=(src/core src/service src/ctl)

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die_usage() {
    echo "depgraph: $*" >&2
    echo "(see scripts/depgraph.sh --help)" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
    --out) [ $# -ge 2 ] || die_usage "--out needs a value"; OUT="$2"; shift 2 ;;
    --dot) DOT_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done

# One line per include: "<dir> <module> <included header>".
edges_raw() {
    local d f
    for d in "${DIRS[@]}"; do
        [ -d "$ROOT/$d" ] || continue
        for f in "$ROOT/$d"/*.c "$ROOT/$d"/*.h; do
            [ -e "$f" ] || continue
            local base
            base="$(basename "$f")"
            sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
                while read -r inc; do echo "$d ${base%.*} $inc"; done
        done
    done
}

# dir/module of a header, searched as the build's include path does.
resolve() {
    local from="$1" inc="$2" d
    for d in "$from" "${DIRS[@]}"; do
        if [ -e "$ROOT/$d/$inc" ]; then
            echo "$d/${inc%.*}"
            return
        fi
    done
}

graph() {
    local tmp
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' RETURN
    edges_raw | while read -r dir mod inc; do
        to="$(resolve "$dir" "$inc")"
        [ -n "$to" ] || continue # generated or system header
        [ "$to" != "$dir/$mod" ] || continue # a module's .c including its .h
        echo "$dir/$mod $to"
    done | sort -u >"$tmp"

    echo 'digraph modules {'
    echo '  graph [rankdir=LR, concentrate=true, fontname="Helvetica", fontsize=12, nodesep=0.25, ranksep=0.7];'
    echo '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];'
    echo '  edge [color="#7a8294", arrowsize=0.6];'
    local i=0 colors=("#dbe8fb" "#fdebd3" "#dff3e4") d f m
    for d in "${DIRS[@]}"; do
        [ -d "$ROOT/$d" ] || continue
        echo "  subgraph \"cluster_${d//\//_}\" {"
        echo "    label=\"$d\"; style=\"rounded\"; color=\"#9aa3b5\";"
        for f in "$ROOT/$d"/*.c "$ROOT/$d"/*.h; do
            [ -e "$f" ] || continue
            m="$(basename "$f")"
            m="${m%.*}"
            echo "    \"$d/$m\" [label=\"$m\", fillcolor=\"${colors[$i]}\"];"
        done | sort -u
        echo '  }'
        i=$((i + 1))
    done
    awk '{ printf "  \"%s\" -> \"%s\";\n", $1, $2 }' "$tmp"
    echo '}'
}

if [ "$DOT_ONLY" = 1 ]; then
    graph
    exit 0
fi

if ! command -v dot >/dev/null; then
    echo "depgraph: installing graphviz" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi
mkdir -p "$(dirname "$OUT")"
graph | dot -Tsvg -o "$OUT"
echo "depgraph: wrote $OUT ($(graph | grep -c -- '->') dependencies)" >&2
