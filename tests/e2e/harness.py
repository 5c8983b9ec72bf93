"""harness.py - helpers for the end-to-end tests of cluster-scheduler.

Standard library only. Everything listens on 127.0.0.1 and every wait is
bounded in time. Pieces:

  free_port()        a free loopback TCP port (bind to port 0, read it back)
  wait_until(...)    poll a predicate with small sleeps, bounded
  http_request(...)  one HTTP request on a fresh connection -> Response
  ResultReceiver     a threaded HTTP server that plays the cluster manager:
                     records every POST /api/result/<job>/<inst>, can answer
                     503 or be stopped and started again on the same port
  Service            the real binary (CS_BIN) with a temp DATA_DIR, stderr
                     captured to a file; SIGTERM (exit code checked) or SIGKILL
  RedisServer        a throw-away redis-server on a free loopback port with
                     its own dir (AOF, fsync always), stop/kill/restart on
                     the same port and data, and a tiny RESP client (cmd)
  E2ETestCase        unittest.TestCase with helpers that register cleanups,
                     so everything is stopped even when a test fails

Set CS_E2E_KEEP=1 to keep the temp directories (data dirs, logs).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"

# CS_WRAPPER runs the binary under a tool, e.g. "valgrind --leak-check=full"
# (scripts/valgrind-e2e.sh); CS_TIME_SCALE stretches every bound below for
# such slow runs.
WRAPPER = os.environ.get("CS_WRAPPER", "").split()
TIME_SCALE = float(os.environ.get("CS_TIME_SCALE", "1") or 1)

# Bounds used throughout (seconds). Sanitizer builds start and stop slower.
READY_TIMEOUT = 30.0 * TIME_SCALE
STOP_TIMEOUT = 20.0 * TIME_SCALE
REQUEST_TIMEOUT = 15.0 * TIME_SCALE
RESULT_TIMEOUT = 30.0 * TIME_SCALE

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)
# valgrind -q writes nothing but its reports (errors, leaks), each line
# tagged ==pid==; the summary lines count too, should -q be left out.
VALGRIND_MARKERS = (
    re.compile(r"^==\d+== (?!Memcheck|Copyright|Using Valgrind|Command|$|"
               r"HEAP SUMMARY|    in use at exit|  total heap usage|All heap blocks|"
               r"For lists of|ERROR SUMMARY: 0 |LEAK SUMMARY|    (still reachable|suppressed|"
               r"definitely lost: 0|indirectly lost: 0|possibly lost)|Rerun with|"
               r"Reachable blocks|To see them|For counts)", re.M),
)


def cs_bin():
    """Path of the binary under test: $CS_BIN, else a build dir next to the
    sources. None when nothing is found (tests then skip)."""
    p = os.environ.get("CS_BIN")
    if p:
        return p
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for d in ("build", "build-h4"):
        cand = os.path.join(root, d, "cluster-scheduler")
        if os.access(cand, os.X_OK):
            return cand
    return None


def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05, msg=None):
    """Calls pred() until it returns a truthy value (returned) or timeout
    seconds have passed (AssertionError; msg may be a callable)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            if callable(msg):
                msg = msg()
            raise AssertionError(msg or "condition not met within %.1f s" % timeout)
        time.sleep(interval)


# --------------------------------------------------------------------------
# HTTP client


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body  # bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        b = self.text
        if len(b) > 400:
            b = b[:400] + "..."
        return "<Response %d %r>" % (self.status, b)


def http_request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """One request on a fresh connection. body: dict/list (sent as JSON),
    str or bytes (sent as is), or None."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The cluster manager stand-in


class Result:
    """One POST the receiver got."""

    def __init__(self, path, job, inst, raw, status, headers=None):
        self.path = path
        self.headers = headers or {}  # lower-case names
        self.job = job
        self.inst = inst
        self.raw = raw
        self.status = status  # what the receiver answered
        self.at = time.monotonic()
        try:
            self.body = json.loads(raw.decode("utf-8"))
        except ValueError:
            self.body = None

    @property
    def accepted(self):
        return 200 <= self.status < 300

    def __repr__(self):
        return "<Result %s/%s %d %s>" % (self.job, self.inst, self.status, self.raw[:300])


class _ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl reuses connections

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # the answer goes out in two writes (headers, body): without this,
        # Nagle and delayed ACKs add ~40 ms to every result
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        t = self.rfile.readline(1024)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                out += self.rfile.read(size)
                self.rfile.readline(8)
            return out
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        raw = self._read_body()
        owner = self.server.owner
        if owner.mode == "hang":
            # recorded as not accepted; never answers: waits until the mode
            # changes (bounded), then drops the connection
            owner._record(self.path, raw, status=0, headers=self.headers)
            owner._unhang.wait(20)
            self.close_connection = True
            return
        # recorded once the answer is written: a POST whose connection stop()
        # cut before the answer never reached the service as accepted, and
        # counting it would make the service's retry look like a duplicate
        status = owner._status_for(self.path)
        self._answer(status, "ok" if status < 300 else "unavailable")
        self.wfile.flush()
        owner._record(self.path, raw, status=status, headers=self.headers)

    def do_PUT(self):
        self.do_POST()

    def do_GET(self):
        self._answer(200, "cluster manager stand-in")


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # connections cut by stop() or by the service are expected


class ResultReceiver:
    """Plays the cluster manager: records every POST /api/result/<job>/<inst>.
    mode "ok" answers 200, "503" answers 503 (the result is recorded as not
    accepted). stop() closes the listener and every open connection (the
    service then sees connection refused); start() listens on the same port.
    """

    def __init__(self, port=None):
        self.port = port or free_port()
        self.mode = "ok"
        self._cv = threading.Condition()
        self._all = []  # every Result, in arrival order
        self._conns = set()
        self._unhang = threading.Event()
        self._server = None
        self._thread = None

    # -- lifecycle --
    def start(self):
        if self._server is not None:
            return self
        deadline = time.monotonic() + 10
        while True:
            try:
                srv = _Server((HOST, self.port), _ReceiverHandler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        srv.owner = self
        if self.mode == "hang":
            self._unhang.clear()
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                         daemon=True)
        self._thread.start()
        return self

    def stop(self):
        srv, self._server = self._server, None
        if srv is None:
            return
        self._unhang.set()
        srv.shutdown()
        srv.server_close()
        with self._cv:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._thread.join(5)

    @property
    def running(self):
        return self._server is not None

    def set_mode(self, mode):
        """ok: 200; 503: 503; hang: read the request, never answer."""
        assert mode in ("ok", "503", "hang")
        if mode == "hang":
            self._unhang.clear()
        self.mode = mode
        if mode != "hang":
            self._unhang.set()

    def _track(self, conn, add):
        with self._cv:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    @staticmethod
    def _parse(path):
        parts = path.split("?")[0].strip("/").split("/")
        job = inst = None
        if len(parts) == 4 and parts[0] == "api" and parts[1] == "result":
            job = parts[2]
            try:
                inst = int(parts[3])
            except ValueError:
                inst = parts[3]
        return job, inst

    def _status_for(self, path):
        job, _ = self._parse(path)
        if job is None:
            return 404
        return 200 if self.mode == "ok" else 503

    def _record(self, path, raw, status=None, headers=None):
        job, inst = self._parse(path)
        if status is None:
            status = self._status_for(path)
        with self._cv:
            hdrs = {k.lower(): v for k, v in headers.items()} if headers else {}
            self._all.append(Result(path, job, inst, raw, status, hdrs))
            self._cv.notify_all()
        return status

    # -- queries --
    def all(self):
        with self._cv:
            return list(self._all)

    def accepted(self, job=None, inst=None):
        with self._cv:
            return [r for r in self._all if r.accepted and (job is None or r.job == job)
                    and (inst is None or r.inst == inst)]

    def rejected(self, job=None):
        with self._cv:
            return [r for r in self._all if not r.accepted and (job is None or r.job == job)]

    def wait_for(self, count, timeout=RESULT_TIMEOUT, job=None, inst=None, pred=None):
        """Waits until at least count accepted results (optionally for one
        job / instance and matching pred(result)) arrived; returns them."""
        def sel():
            return [r for r in self._all if r.accepted and (job is None or r.job == job)
                    and (inst is None or r.inst == inst) and (pred is None or pred(r))]
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                got = sel()
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "receiver: %d of %d results (job=%s inst=%s) within %.1f s; all: %r"
                        % (len(got), count, job, inst, timeout, self._all[-20:]))
                self._cv.wait(min(left, 0.2))

    def wait_attempts(self, count, timeout=RESULT_TIMEOUT, job=None):
        """Waits until at least count POSTs (accepted or not) arrived."""
        def n():
            with self._cv:
                return len([r for r in self._all if job is None or r.job == job])
        wait_until(lambda: n() >= count, timeout,
                   msg=lambda: "receiver: %d of %d attempts within %.1f s" % (n(), count, timeout))
        return self.all()


# --------------------------------------------------------------------------
# The service under test


class Service:
    """Runs the binary with env configuration and a DATA_DIR.

    settings: dict of environment variables added to the defaults below
    (values are str()'d; a value of None removes the variable).
    """

    def __init__(self, workdir, manager_port, data_dir=None, port=None, workers=2,
                 node_ttl=15, settings=None, args=None, name="svc"):
        self.binary = cs_bin()
        self.workdir = workdir
        self.port = port or free_port()
        self.manager_port = manager_port
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="data-", dir=workdir)
        self.name = name
        self.args = list(args or [])
        env = dict(os.environ)
        for k in ("REDIS_ADDR", "MY_PORT", "BIND_ADDR", "CLUSTER_MANAGER_URL",
                  "CLUSTER_MANAGER_PORT", "DATA_DIR", "WORKERS", "NODE_TTL",
                  "SCHEDULER_TOKEN", "SCHEDULER_TOKEN_FILE"):
            env.pop(k, None)
        env.update({
            "MY_PORT": str(self.port),
            "BIND_ADDR": HOST,
            "CLUSTER_MANAGER_URL": HOST,
            "CLUSTER_MANAGER_PORT": str(manager_port),
            "DATA_DIR": self.data_dir,
            "WORKERS": str(workers),
            "NODE_TTL": str(node_ttl),
        })
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        for k, v in (settings or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        self.env = env
        self.proc = None
        self.returncode = None
        self.starts = 0
        self.stderr_path = None

    # -- lifecycle --
    def start(self, ready_timeout=READY_TIMEOUT):
        assert self.proc is None, "already running"
        self.starts += 1
        self.stderr_path = os.path.join(self.workdir, "%s-%d.stderr" % (self.name, self.starts))
        out_path = os.path.join(self.workdir, "%s-%d.stdout" % (self.name, self.starts))
        with open(self.stderr_path, "wb") as err, open(out_path, "wb") as out:
            self.proc = subprocess.Popen(WRAPPER + [self.binary] + self.args, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.workdir)
        self.returncode = None
        deadline = time.monotonic() + ready_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.proc = None
                raise AssertionError("%s exited with %d before answering /status:\n%s"
                                     % (self.name, rc, self.tail()))
            try:
                r = self.request("GET", "/status", timeout=2)
                if r.status == 200 and r.text.strip() == "ok":
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("%s did not answer GET /status ok within %.0f s:\n%s"
                                     % (self.name, ready_timeout, self.tail()))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal_stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit; returns the exit code (or raises
        AssertionError after SIGKILL if it does not exit in time)."""
        if self.proc is None:
            return self.returncode
        p = self.proc
        try:
            p.send_signal(sig)
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            self.proc = None
            self.returncode = -9
            raise AssertionError("%s did not exit within %.0f s of signal %d:\n%s"
                                 % (self.name, timeout, sig, self.tail()))
        self.proc = None
        self.returncode = rc
        return rc

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM, asserting exit code 0."""
        rc = self.signal_stop(signal.SIGTERM, timeout)
        if rc != 0:
            raise AssertionError("%s exited with %r on SIGTERM (expected 0):\n%s"
                                 % (self.name, rc, self.tail()))
        return rc

    def kill(self):
        """SIGKILL (kill -9) and reap."""
        if self.proc is None:
            return
        p = self.proc
        try:
            p.kill()
        except OSError:
            pass
        p.wait(10)
        self.proc = None
        self.returncode = -9

    # -- logs --
    def stderr_text(self):
        texts = []
        for i in range(1, self.starts + 1):
            path = os.path.join(self.workdir, "%s-%d.stderr" % (self.name, i))
            try:
                with open(path, "rb") as f:
                    texts.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(texts)

    def tail(self, n=40):
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "--- %s stderr (last %d lines) ---\n%s" % (self.name, n, "\n".join(lines[-n:]))

    def sanitizer_report(self):
        text = self.stderr_text()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        for rx in VALGRIND_MARKERS:
            m = rx.search(text)
            if m:
                return text[max(0, m.start() - 3000):m.start() + 500]
        return None

    # -- HTTP --
    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def get_json(self, path, expect=200):
        r = self.request("GET", path)
        if r.status != expect:
            raise AssertionError("GET %s: expected %d, got %r" % (path, expect, r))
        return r.json()

    def put_node(self, node_id, doc, expect=(200, 201)):
        r = self.request("PUT", "/api/v1/nodes/" + node_id, doc)
        if expect is not None:
            exp = expect if isinstance(expect, tuple) else (expect,)
            if r.status not in exp:
                raise AssertionError("PUT node %s: expected %s, got %r" % (node_id, exp, r))
        return r

    def deploy(self, job, inst=0, job_id=None, method="POST"):
        jid = job_id or job["_id"]
        r = self.request(method, "/api/calculate/deploy/%s/%d" % (jid, inst), job)
        if r.status != 200 or r.text.strip() != "ok":
            raise AssertionError("deploy %s/%d: expected 200 ok, got %r" % (jid, inst, r))
        return r

    def node(self, node_id):
        return self.get_json("/api/v1/nodes/" + node_id)

    def job_status(self, job_id, inst=0):
        return self.get_json("/api/v1/jobs/%s/%d" % (job_id, inst))

    def wait_job_state(self, job_id, inst=0, states=("placed",), timeout=RESULT_TIMEOUT):
        last = [None]

        def check():
            r = self.request("GET", "/api/v1/jobs/%s/%d" % (job_id, inst))
            last[0] = r
            if r.status == 200 and r.json().get("state") in states:
                return r.json()
            return None
        return wait_until(check, timeout, interval=0.05,
                          msg=lambda: "job %s/%d not in %s within %.0f s; last %r"
                          % (job_id, inst, states, timeout, last[0]))

    def metrics(self):
        r = self.get("/metrics")
        if r.status != 200:
            raise AssertionError("GET /metrics: %r" % r)
        return parse_metrics(r.text)


def parse_metrics(text):
    """Prometheus text -> {sample name with labels: value}, and the # TYPE
    lines as {"__types__": {family: type}}."""
    samples = {}
    types = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        # name{labels} value [timestamp]
        if "}" in line:
            i = line.rindex("}")
            name, rest = line[:i + 1], line[i + 1:].split()
        else:
            name, *rest = line.split()
        if rest:
            try:
                samples[name] = float(rest[0])
            except ValueError:
                pass
    samples["__types__"] = types
    return samples


def metric_sum(samples, family):
    """Sum of every sample of a family (name with or without labels),
    excluding histogram sub-series."""
    total = 0.0
    found = False
    for k, v in samples.items():
        if k == "__types__":
            continue
        base = k.split("{")[0]
        if base == family:
            total += v
            found = True
    return total if found else None


# --------------------------------------------------------------------------
# Documents


def node_doc(vcpus=4, memory=4096, virt=("container",), host=None, arch="amd64", **extra):
    d = {"virtualization": list(virt), "vcpus": vcpus, "memory": memory, "architecture": arch}
    if host:
        d["host"] = host
    d.update(extra)
    return d


def job_doc(job_id, vcpus=1, memory=512, virt="container", **extra):
    d = {"_id": job_id, "virtualization": virt, "vcpus": vcpus, "memory": memory}
    d.update(extra)
    return d


class Heartbeat:
    """A thread that PUTs a node's report every interval seconds until
    stopped (a worker node that is alive)."""

    def __init__(self, svc, node_id, doc, interval=0.5):
        self.svc, self.node_id, self.doc, self.interval = svc, node_id, doc, interval
        self._stop = threading.Event()
        self.sent = 0
        self.failures = 0
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                r = self.svc.request("PUT", "/api/v1/nodes/" + self.node_id, self.doc, timeout=5)
                if r.status in (200, 201):
                    self.sent += 1
                else:
                    self.failures += 1
            except OSError:
                self.failures += 1
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join(10)


# --------------------------------------------------------------------------
# Redis


class RedisError(Exception):
    """An error reply (-ERR ..., -NOAUTH ...) from Redis."""


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8")
        elif not isinstance(a, bytes):
            a = str(a).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("redis closed the connection")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """One reply: str (simple/bulk, utf-8), int, None, list, or a
        RedisError instance (returned, not raised, so arrays keep going)."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode("utf-8", "replace")
        if t == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("unexpected RESP reply %r" % line[:100])


class RedisServer:
    """redis-server for one test: loopback only, its own dir, no RDB, AOF
    with fsync always (so stop/kill and restart keep every acknowledged
    write). redis-server must be on PATH: its absence fails the test.

    url            redis://[:pw@]127.0.0.1:P (url_for() for other forms)
    start()        runs it and waits (bounded) for PING to answer
    stop()/kill()  SIGTERM (SIGKILL after a bound) / SIGKILL
    pause()/resume() SIGSTOP / SIGCONT (a Redis that hangs)
    restart()      stop then start on the same port and dir
    cmd(*args)     one command on a kept connection (AUTH first when a
                   password is set; a SELECT sticks until reconnect, which
                   selects the same db again); error replies raise
                   RedisError
    """

    def __init__(self, workdir, port=None, password=None, name="redis"):
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="%s-data-" % name, dir=workdir)
        self.proc = None
        self.starts = 0
        self.log_path = None
        self._sock = None
        self._reader = None
        self._db = 0
        self._lock = threading.Lock()

    # -- addresses --
    @property
    def url(self):
        return self.url_for()

    def url_for(self, password=None, user=None, db=None):
        """A URL naming this server; password defaults to the server's."""
        pw = self.password if password is None else password
        cred = ""
        if pw:
            cred = "%s:%s@" % (user or "", pw)
        return "redis://%s%s:%d%s" % (cred, HOST, self.port, "" if db is None else "/%d" % db)

    # -- lifecycle --
    def start(self, timeout=10.0):
        assert self.proc is None, "redis already running"
        binary = shutil.which("redis-server")
        if not binary:
            raise AssertionError("redis-server not found on PATH: the Redis-mode tests need it "
                                 "(Debian/Ubuntu: apt-get install redis-server)")
        self.starts += 1
        self.log_path = os.path.join(self.workdir, "%s-%d.log" % (self.name, self.starts))
        argv = [binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
                "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError("redis-server exited with %d at start:\n%s"
                                     % (rc, self.tail()))
            if self._ping_ready():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("redis-server did not answer PING within %.0f s:\n%s"
                                     % (timeout, self.tail()))
            time.sleep(0.05)

    def _ping_ready(self):
        """True when PING answers +PONG (or -NOAUTH with a password set);
        -LOADING (AOF replay) and connection errors mean not yet."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(_resp_encode(["PING"]))
                r = _RespReader(s).read()
        except (OSError, ValueError):
            return False
        if r == "PONG":
            return True
        return isinstance(r, RedisError) and str(r).upper().startswith("NOAUTH")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP: still accepts connections (the kernel does), answers
        nothing until resume()."""
        assert self.proc is not None, "redis not running"
        self._disconnect()
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout=10.0):
        self._disconnect()
        if self.proc is None:
            return
        p = self.proc
        try:
            p.send_signal(signal.SIGCONT)  # in case it was paused
            p.send_signal(signal.SIGTERM)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        except OSError:
            pass
        self.proc = None

    def kill(self):
        self._disconnect()
        if self.proc is None:
            return
        p = self.proc
        try:
            p.kill()
        except OSError:
            pass
        p.wait(10)
        self.proc = None

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except (OSError, TypeError):
            return ""
        return "--- %s log (last %d lines) ---\n%s" % (self.name, n, "\n".join(lines[-n:]))

    # -- client --
    def _disconnect(self):
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass
            self._sock = self._reader = None

    def _connect(self):
        s = socket.create_connection((HOST, self.port), timeout=REQUEST_TIMEOUT)
        rd = _RespReader(s)
        try:
            if self.password:
                s.sendall(_resp_encode(["AUTH", self.password]))
                r = rd.read()
                if isinstance(r, RedisError):
                    raise r
            if self._db:
                s.sendall(_resp_encode(["SELECT", self._db]))
                r = rd.read()
                if isinstance(r, RedisError):
                    raise r
        except BaseException:
            s.close()
            raise
        self._sock, self._reader = s, rd

    def cmd(self, *args):
        """Sends one command, returns the reply (str, int, None, list);
        an error reply raises RedisError."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._sock is None:
                        self._connect()
                    self._sock.sendall(_resp_encode(args))
                    r = self._reader.read()
                    break
                except (OSError, ConnectionError):
                    if self._sock is not None:
                        try:
                            self._sock.close()
                        except OSError:
                            pass
                    self._sock = self._reader = None
                    if attempt:
                        raise
        if isinstance(r, RedisError):
            raise r
        if args and str(args[0]).upper() == "SELECT":
            self._db = int(args[1])
        return r


# --------------------------------------------------------------------------
# Test case base


class E2ETestCase(unittest.TestCase):
    """Each test gets a temp dir; services and receivers made through the
    helpers are stopped in cleanups (LIFO) even when the test fails. A
    service still running at cleanup is stopped with SIGTERM and must exit
    0; its stderr must hold no sanitizer report."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if not cs_bin():
            raise unittest.SkipTest("CS_BIN not set and no built cluster-scheduler found")
        if not os.access(cs_bin(), os.X_OK):
            raise AssertionError("CS_BIN=%s is not an executable" % cs_bin())

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="cs-e2e-%s-" % self._testMethodName)
        if not os.environ.get("CS_E2E_KEEP"):
            self.addCleanup(shutil.rmtree, self.workdir, True)
        self._services = []

    # -- factories --
    def receiver(self, start=True, port=None):
        r = ResultReceiver(port)
        if start:
            r.start()
        self.addCleanup(r.stop)
        return r

    def service(self, receiver, start=True, **kw):
        kw.setdefault("name", "svc%d" % (len(self._services) + 1))
        port = receiver.port if isinstance(receiver, ResultReceiver) else receiver
        svc = Service(self.workdir, port, **kw)
        self._services.append(svc)
        self.addCleanup(self._stop_service, svc)
        if start:
            svc.start()
        return svc

    def redis(self, start=True, port=None, password=None, name=None):
        """A RedisServer for this test (stopped in a cleanup)."""
        r = RedisServer(self.workdir, port=port, password=password, name=name or "redis")
        self.addCleanup(r.stop)
        if start:
            r.start()
        return r

    def _stop_service(self, svc):
        problems = []
        if svc.alive():
            try:
                svc.terminate()
            except AssertionError as e:
                problems.append(str(e))
        elif svc.proc is not None:
            rc = svc.proc.poll()
            svc.proc = None
            if rc not in (0, None):
                problems.append("%s had exited by itself with %r:\n%s" % (svc.name, rc, svc.tail()))
        rep = svc.sanitizer_report()
        if rep:
            problems.append("%s: sanitizer report in stderr:\n%s" % (svc.name, rep))
        if problems:
            raise AssertionError("\n".join(problems))

    # -- assertions --
    def assertJSONError(self, resp, status, field=None, msg=""):
        """resp has the given status and a body {"error": {"field": str,
        "message": str}}; field (str: must occur in the field name; tuple:
        one of them must occur) when given."""
        ctx = "%s: %r" % (msg, resp)
        self.assertEqual(resp.status, status, ctx)
        try:
            body = resp.json()
        except ValueError:
            self.fail("error body is not JSON: " + ctx)
        self.assertIsInstance(body, dict, ctx)
        err = body.get("error")
        self.assertIsInstance(err, dict, ctx)
        self.assertIsInstance(err.get("field"), str, ctx)
        self.assertIsInstance(err.get("message"), str, ctx)
        self.assertTrue(err["message"], ctx)
        if field is not None:
            fields = field if isinstance(field, tuple) else (field,)
            self.assertTrue(any(f in err["field"] for f in fields),
                            "error field %r does not name %r; %s" % (err["field"], fields, ctx))
        return err

    def assertAlive(self, svc):
        self.assertTrue(svc.alive(), "service died:\n" + svc.tail())
        r = svc.get("/status", timeout=5)
        self.assertEqual((r.status, r.text.strip()), (200, "ok"))


class SharedServiceTestCase(E2ETestCase):
    """One service for the whole class (table-driven files stay fast); every
    test checks at its end that the service is still alive, and the class's
    cleanup fails on a sanitizer or valgrind report in its stderr."""

    @classmethod
    def start_class_service(cls, name, settings=None):
        cls.cls_dir = tempfile.mkdtemp(prefix="cs-e2e-%s-" % name)
        if not os.environ.get("CS_E2E_KEEP"):
            cls.addClassCleanup(shutil.rmtree, cls.cls_dir, True)
        cls.recv = ResultReceiver().start()
        cls.addClassCleanup(cls.recv.stop)
        cls.svc = Service(cls.cls_dir, cls.recv.port, workers=2, name=name, settings=settings)
        cls.addClassCleanup(cls._stop_class_service)
        cls.svc.start()

    @classmethod
    def _stop_class_service(cls):
        if cls.svc.alive():
            cls.svc.terminate()
        rep = cls.svc.sanitizer_report()
        if rep:
            raise AssertionError("sanitizer report:\n" + rep)

    def tearDown(self):
        self.assertAlive(self.svc)
        super().tearDown()
