# bench-lib.sh - sourced by the bench-*.sh scripts: free loopback ports,
# the processes a script started (stopped on exit), and waiting for a
# service to answer. Callers set WORK (a temp dir) before trapping EXIT.

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
