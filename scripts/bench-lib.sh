# bench-lib.sh - sourced by the benchmark scripts: errors in their options,
# free loopback ports, the processes a script started (stopped on exit),
# and waiting for a service or a redis-server to answer. Callers set WORK
# (a temp dir) before trapping EXIT.

# A bad option: exit 2, naming the script and where its help is.
die_usage() {
    local name
    name="$(basename "$0" .sh)"
    echo "$name: $*" >&2
    echo "(see scripts/$name.sh --help)" >&2
    exit 2
}
# need $# OPTION: the option is followed by a value.
need() { [ "$1" -ge 2 ] || die_usage "$2 needs a value"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Every process a script starts goes into PIDS; cleanup stops them all.
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# wait_status PORT WHO [PID [LOG]]: until GET /status answers (10 s at
# most); gives up early when PID exits; on failure prints LOG's tail.
wait_status() {
    local port="$1" who="$2" pid="${3:-}" log="${4:-}"
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$port/status" >/dev/null 2>&1 && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "$who: service on port $port did not start" >&2
    [ -z "$log" ] || tail -20 "$log" >&2 || true
    return 1
}

# wait_redis PORT: until redis-server answers PING (10 s at most).
wait_redis() {
    for _ in $(seq 1 200); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "$(basename "$0" .sh): redis-server on port $1 did not start" >&2
    return 1
}
