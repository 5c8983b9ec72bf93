#!/usr/bin/env python3
"""soak_driver.py - the soak test of cluster-scheduler (run through
scripts/soak.sh; not part of CI).

Runs the real service for a given time at a steady rate of deploy jobs
while faults are injected on a schedule, then checks what came out:

  load      jobs at --rate per second, half on the drop-in route
            (POST /api/calculate/deploy/<job>/<inst>), half on the native
            one (POST /api/v1/jobs); a failed intake (503, refused, reset)
            is retried for up to 60 s, as a cluster manager would; 1% are
            repeats of a key accepted a moment ago (must answer 200 "known");
            every job is undeployed (DELETE /api/v1/jobs/<job>/<inst>) a
            while after its result arrived, so the cluster never fills up.
  nodes     --nodes nodes report every second (PUT /api/v1/nodes/<id>);
            a quarter are small, and 30% of the jobs ask for best-fit, so
            the small nodes run full and the capacity check has teeth.
  faults    node churn (nodes stop reporting for 3 x NODE_TTL, so the
            reaper takes them for dead and re-schedules their instances),
            cluster-manager outages (the receiver closes its socket, or
            answers 503), Redis restarts (SIGTERM; --redis-kill9 for kill -9),
            worker kills (Redis mode: kill -9 one --role worker process and
            start a new one; embedded: kill -9 the service and start it again
            on the same DATA_DIR).
  receiver  this script plays the cluster manager on a free loopback port
            and keeps, per job and instance, every result it accepted.

Checks at the end (after every fault is healed and the service is quiet):
  lost            every accepted job (2xx at intake) has at least one result
  final           the last result of a live (not deleted) job matches the
                  service's GET /api/v1/jobs state and names a registered,
                  active node (or is a not-found)
  moves           a result naming another decision than the one before is
                  explained only by a possible death of the earlier node
                  between intake and the new result: it was silenced on
                  purpose ("after churn"), or its reports failed for longer
                  than NODE_TTL - 1.5 s ("after a report gap"); a not-found
                  never moves
  duplicates      a result equal to the one before (same bytes) is a
                  redelivery (at least once is documented): counted, not
                  failed; the same node decided again (other bytes) must be
                  explained as a move is
  capacity        GET /api/v1/nodes every 10 s: reserved <= capacity; at the
                  end, per node, the sum of the final placements seen at the
                  receiver <= capacity and == the service's reserved figures
  memory          VmRSS of every service process every 10 s, per process
                  incarnation: start/end/max and the slope (MB/min, least
                  squares) after --warmup; a slope above --max-slope over an
                  incarnation with at least --min-span s after warm-up is a
                  violation
  crashes         a service process that exits without being killed

Prints a summary, writes JSON (--json), exits 1 on any violation, 2 when the
set-up fails. Standard library only.
"""

import argparse
import hashlib
import heapq
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
T0 = time.monotonic()


def now():
    """Seconds since the driver started (monotonic)."""
    return time.monotonic() - T0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class SetupError(Exception):
    """The soak could not be set up (exit 2, not a finding)."""


# --------------------------------------------------------------------------
# HTTP client: one keep-alive connection per thread


class Client:
    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def request(self, method, path, body=None):
        """(status, body bytes); raises OSError / http.client.HTTPException
        (the connection is closed then)."""
        data = None
        hdrs = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=hdrs)
            r = self.conn.getresponse()
            out = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
            return r.status, out
        except (OSError, http.client.HTTPException):
            self.close()
            raise


def get_json(port, path, timeout=10.0):
    c = Client(port, timeout)
    try:
        st, body = c.request("GET", path)
    finally:
        c.close()
    if st != 200:
        raise OSError("GET %s: HTTP %d %r" % (path, st, body[:200]))
    return json.loads(body)


def get_metrics(port):
    """A few Prometheus samples of one process as {name: value}."""
    c = Client(port, 5.0)
    try:
        st, body = c.request("GET", "/metrics")
    finally:
        c.close()
    if st != 200:
        raise OSError("GET /metrics: HTTP %d" % st)
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            continue
        name = parts[0]
        if name.endswith("_bucket") or "_bucket{" in name:
            continue
        name = name.replace("cluster_scheduler_", "")
        try:
            out[name] = float(parts[1])
        except ValueError:
            pass
    return out


# --------------------------------------------------------------------------
# The cluster manager stand-in


class Receiver:
    """Records every result POSTed to /api/result/<job>/<inst>. Modes: ok
    (200), 503 (answers 503, nothing recorded as accepted), closed (no
    listening socket; open connections are cut)."""

    def __init__(self, port, on_first, log_path=None):
        self.port = port
        self.log = open(log_path, "ab") if log_path else None  # every POST, for debugging
        self.on_first = on_first  # called (key, t) on a key's first accepted result
        self.lock = threading.Lock()
        self.results = {}  # key -> [(t, found, node, digest, cpu_milli, mem)]
        self.accepted = 0
        self.refused_503 = 0
        self.malformed = 0
        self.inactive_hist = {}  # nodes counted "inactive" in a result -> results
        self.mode = "ok"
        self._server = None
        self._thread = None
        self._conns = set()

    def start(self):
        if self._server is not None:
            return
        deadline = time.monotonic() + 10
        while True:
            try:
                srv = _RecvServer((HOST, self.port), _RecvHandler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        srv.owner = self
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="receiver")
        self._thread.start()

    def stop(self):
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def set_mode(self, mode):
        if mode == "closed":
            self.mode = "closed"
            self.stop()
        else:
            self.mode = mode
            self.start()

    def track(self, conn, add):
        with self.lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def record(self, path, raw):
        """The status to answer."""
        if self.mode == "503":
            with self.lock:
                self.refused_503 += 1
            return 503
        parts = path.split("?")[0].strip("/").split("/")
        try:
            if len(parts) != 4 or parts[:2] != ["api", "result"]:
                raise ValueError(path)
            key = (parts[2], int(parts[3]))
            body = json.loads(raw)
            found = body.get("found") is True
            node = body["node"]["_id"] if found else None
            job = body.get("job") or {}
            cpu = int(round(float(job.get("vcpus") or 0) * 1000))
            mem = float(job.get("memory") or 0)
            inactive = int((body.get("reasons") or {}).get("inactive") or 0)
        except (ValueError, KeyError, TypeError, AttributeError):
            with self.lock:
                self.malformed += 1
            return 400
        digest = hashlib.blake2b(raw, digest_size=8).digest()
        t = now()
        with self.lock:
            if self.log:
                self.log.write(b"%.3f %s " % (t, path.encode()) + raw + b"\n")
            lst = self.results.get(key)
            first = lst is None
            if first:
                lst = self.results[key] = []
            lst.append((t, found, node, digest, cpu, mem))
            self.accepted += 1
            self.inactive_hist[inactive] = self.inactive_hist.get(inactive, 0) + 1
        if first:
            self.on_first(key, t)
        return 200

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.results.items()}

    def keys_with_results(self):
        with self.lock:
            return set(self.results)


class _RecvHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl reuses connections

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner.track(self.connection, False)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        status = self.server.owner.record(self.path, raw)
        data = b"ok" if status == 200 else b"unavailable"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _RecvServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # connections cut by an outage are expected


# --------------------------------------------------------------------------
# Processes


class Proc:
    """One managed process (a service role or redis-server); every start is
    a new incarnation with its own log and RSS samples."""

    def __init__(self, soak, name, argv, env, port, kind="service", cwd=None):
        self.soak = soak
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.kind = kind
        self.cwd = cwd or soak.workdir
        self.proc = None
        self.inc = None
        self.starts = 0
        self.expect_exit = False
        self.lock = threading.Lock()

    def start(self, timeout=30.0):
        with self.lock:
            if self.proc is not None:
                return  # started meanwhile (the crash watcher and the healer may race)
            self.starts += 1
            log = os.path.join(self.soak.workdir, "%s-%d.log" % (self.name, self.starts))
            with open(log, "wb") as f:
                self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                             stdout=f, stderr=subprocess.STDOUT, cwd=self.cwd)
            self.expect_exit = False
            self.inc = {"process": self.name, "incarnation": self.starts, "pid": self.proc.pid,
                        "log": log, "started_at": now(), "ready_at": None, "ended_at": None,
                        "ended_by": None, "samples": []}
            self.soak.incarnations.append(self.inc)
        deadline = time.monotonic() + timeout
        while not self.ready():
            rc = self.proc.poll()
            if rc is not None:
                raise SetupError("%s exited with %d at start; see %s" % (self.name, rc, log))
            if time.monotonic() > deadline:
                raise SetupError("%s not ready within %.0f s; see %s" % (self.name, timeout, log))
            time.sleep(0.05)
        self.inc["ready_at"] = now()
        self.sample_rss()

    def ready(self):
        try:
            if self.kind == "redis":
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    return s.recv(64).startswith(b"+PONG")
            c = Client(self.port, 2.0)
            try:
                st, body = c.request("GET", "/status")
            finally:
                c.close()
            return st == 200 and body.strip() == b"ok"
        except (OSError, http.client.HTTPException):
            return False

    def pid(self):
        p = self.proc
        return p.pid if p is not None else None

    def sample_rss(self):
        with self.lock:
            p, inc = self.proc, self.inc
            if p is None or inc is None or self.kind != "service":
                return
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            inc["samples"].append((now(), int(line.split()[1])))
                            return
            except OSError:
                pass

    def stop(self, sig=signal.SIGTERM, why="SIGTERM", timeout=20.0):
        """Stops the process with sig and reaps it; returns the exit code."""
        if sig == signal.SIGKILL:
            self.sample_rss()  # the last figure before it goes
        with self.lock:
            p = self.proc
            if p is None:
                return None
            self.expect_exit = True
            try:
                p.send_signal(sig)
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait(10)
                why += " (then SIGKILL: did not exit in %.0f s)" % timeout
            self.inc["ended_at"] = now()
            self.inc["ended_by"] = why
            self.inc["exit_code"] = rc
            self.proc = None
            return rc

    def check_alive(self):
        """None while running (or stopped on purpose); else the exit code of
        an exit nobody asked for (the process is then marked stopped)."""
        with self.lock:
            p = self.proc
            if p is None or self.expect_exit:
                return None
            rc = p.poll()
            if rc is None:
                return None
            self.inc["ended_at"] = now()
            self.inc["ended_by"] = "exited by itself (%d)" % rc
            self.inc["exit_code"] = rc
            self.proc = None
            return rc


# --------------------------------------------------------------------------
# Worker nodes


class Node:
    def __init__(self, node_id, vcpus, memory):
        self.id = node_id
        self.cpu_milli = int(round(vcpus * 1000))
        self.memory = memory
        self.doc = {"host": "soak-" + node_id, "virtualization": ["container"],
                    "architecture": "amd64", "vcpus": vcpus, "memory": memory,
                    "zone": "soak"}
        self.silent_until = 0.0  # driver time
        self.silences = []  # (from, to): silenced on purpose
        self.last_ok = None
        self.gaps = []  # (from, to) between successful reports longer than the threshold
        self.sent = 0
        self.failed = 0
        self.registered = False


class Heartbeats:
    """One thread per node, a PUT every interval unless the node is silenced."""

    def __init__(self, soak, nodes, interval, gap_threshold):
        self.soak = soak
        self.nodes = nodes
        self.interval = interval
        self.gap_threshold = gap_threshold
        self.stop_ev = threading.Event()
        self.threads = []

    def start(self):
        for n in self.nodes:
            t = threading.Thread(target=self._run, args=(n,), daemon=True, name="hb-" + n.id)
            t.start()
            self.threads.append(t)

    def _run(self, n):
        c = Client(self.soak.api_port, 5.0)
        body = json.dumps(n.doc).encode()
        rnd = random.Random(n.id)
        next_t = now() + rnd.random() * self.interval
        while not self.stop_ev.is_set():
            if now() >= n.silent_until:
                try:
                    st, _ = c.request("PUT", "/api/v1/nodes/" + n.id, body)
                    ok = st in (200, 201)
                except (OSError, http.client.HTTPException):
                    ok = False
                t = now()
                if ok:
                    n.sent += 1
                    n.registered = True
                    if n.last_ok is not None and t - n.last_ok > self.gap_threshold:
                        n.gaps.append((n.last_ok, t))
                    n.last_ok = t
                else:
                    n.failed += 1
            next_t += self.interval
            self.stop_ev.wait(max(0.0, next_t - now()))
        c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(10)

    def dead_windows(self, n):
        """The windows in which the service may have taken n for dead."""
        w = list(n.gaps)
        if n.last_ok is not None and now() - n.last_ok > self.gap_threshold:
            w.append((n.last_ok, float("inf")))
        return w


# --------------------------------------------------------------------------
# Load


class Job:
    __slots__ = ("key", "route", "doc", "first_t", "acc_t", "attempts", "ambiguous", "statuses",
                 "given_up")

    def __init__(self, key, route, doc, t):
        self.key = key
        self.route = route
        self.doc = doc
        self.first_t = t
        self.acc_t = None
        self.attempts = 0
        self.ambiguous = False  # an attempt whose outcome is unknown (reset, timeout)
        self.statuses = []
        self.given_up = False


class Load:
    def __init__(self, soak, rate, threads, seed, give_up_s=60.0, repeat_p=0.01):
        self.soak = soak
        self.rate = rate
        self.nthreads = threads
        self.rnd = random.Random(seed)
        self.give_up_s = give_up_s
        self.repeat_p = repeat_p
        self.lock = threading.Lock()
        self.jobs = {}  # key -> Job
        self.retry = []  # heap (due, seq, job)
        self.seq = 0
        self.next_slot = None
        self.missed_slots = 0
        self.recent = []  # keys accepted lately (repeat probes)
        self.stop_ev = threading.Event()
        self.threads = []
        self.status_counts = {}
        self.repeats = 0
        self.repeat_statuses = {}
        self.repeat_forgotten = []  # repeats answered 202 (queued anew): the service forgot them
        self.unexpected = []  # (key, status, body) answers that are neither 2xx nor 503
        self.sent_requests = 0

    def start(self):
        self.next_slot = now()
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True, name="load-%d" % i)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)

    def _new_job(self):
        """Called under lock."""
        self.seq += 1
        s = self.seq
        r = self.rnd
        jid = "%s%d" % (self.soak.prefix, s)
        inst = s % 4
        u = r.random()
        doc = {"_id": jid, "image": "soak/app:1", "port": "80"}
        if u < 0.01:  # no node runs unikernels: a not-found by design
            doc.update({"virtualization": "unikernel", "arch": ["riscv64"], "vcpus": 0.1,
                        "memory": 64})
        elif u < 0.02:  # larger than any node: a not-found by design
            doc.update({"virtualization": "container", "vcpus": 1000, "memory": 64})
        else:
            doc.update({"virtualization": "container", "vcpus": r.randint(1, 10) * 0.05,
                        "memory": r.randint(1, 8) * 64})
            v = r.random()
            doc["strategy"] = "most-free" if v < 0.5 else ("best-fit" if v < 0.8 else "spread")
        route = "deploy" if r.random() < 0.5 else "native"
        job = Job((jid, inst), route, doc, now())
        self.jobs[job.key] = job
        return job

    def _next(self):
        """(kind, job) for the next slot: a due retry first, then now and
        then a repeat probe, else a new job."""
        with self.lock:
            t = now()
            if self.retry and self.retry[0][0] <= t:
                return "retry", heapq.heappop(self.retry)[2]
            if self.recent and self.rnd.random() < self.repeat_p:
                key = self.recent[self.rnd.randrange(len(self.recent))]
                return "repeat", self.jobs[key]
            return "new", self._new_job()

    def _slot(self):
        with self.lock:
            t = now()
            if self.next_slot < t - 1.0:  # fell behind: do not burst to catch up
                self.missed_slots += int((t - self.next_slot) * self.rate)
                self.next_slot = t
            s = self.next_slot
            self.next_slot += 1.0 / self.rate
            return s

    def _run(self):
        c = Client(self.soak.api_port, 10.0)
        while not self.stop_ev.is_set():
            s = self._slot()
            if self.stop_ev.wait(max(0.0, s - now())):
                break
            kind, job = self._next()
            if kind == "repeat":
                self._repeat(c, job)
            else:
                self._send(c, job)
        c.close()

    def _request(self, c, job, route):
        jid, inst = job.key
        if route == "deploy":
            return c.request("POST", "/api/calculate/deploy/%s/%d" % (jid, inst),
                             json.dumps(job.doc).encode())
        d = dict(job.doc)
        d["instance"] = inst
        return c.request("POST", "/api/v1/jobs", json.dumps(d).encode())

    def _send(self, c, job):
        job.attempts += 1
        try:
            st, body = self._request(c, job, job.route)
        except ConnectionRefusedError:
            st, body = "refused", b""
        except (OSError, http.client.HTTPException) as e:
            st, body = "error:" + type(e).__name__, b""
            job.ambiguous = True
        with self.lock:
            self.sent_requests += 1
            self.status_counts[str(st)] = self.status_counts.get(str(st), 0) + 1
            job.statuses.append(st)
            if isinstance(st, int) and 200 <= st < 300:
                job.acc_t = now()
                self.recent.append(job.key)
                if len(self.recent) > 200:
                    del self.recent[:100]
                return
            if isinstance(st, int) and st != 503:
                self.unexpected.append((job.key, st, body[:300].decode("utf-8", "replace")))
                job.given_up = True
                return
            if now() - job.first_t > self.give_up_s:
                job.given_up = True
                return
            delay = min(2.0, 0.25 * (2 ** min(job.attempts, 4)))
            heapq.heappush(self.retry, (now() + delay, id(job), job))

    def _repeat(self, c, job):
        """The same job again on the native route: must answer 200 (known);
        202 would mean the service forgot an accepted job."""
        with self.lock:
            if now() - (job.acc_t or 0) > 2.0:
                return  # too old: it may be undeployed meanwhile
        try:
            st, body = self._request(c, job, "native")
        except (OSError, http.client.HTTPException) as e:
            st, body = "error:" + type(e).__name__, b""
        with self.lock:
            self.repeats += 1
            self.repeat_statuses[str(st)] = self.repeat_statuses.get(str(st), 0) + 1
            if st == 202:
                self.repeat_forgotten.append(job.key)

    def pending_retries(self):
        with self.lock:
            return len(self.retry)

    def drain_retries(self, c, deadline):
        """After the load stops: resolve every job still being retried."""
        while time.monotonic() < deadline:
            with self.lock:
                if not self.retry:
                    return
                due, _, job = self.retry[0]
                if due > now():
                    job = None
                else:
                    heapq.heappop(self.retry)
            if job is None:
                time.sleep(0.05)
                continue
            self._send(c, job)


# --------------------------------------------------------------------------
# Undeploy


class Undeployer:
    """DELETE /api/v1/jobs/<job>/<inst> a while (lifetime, +-50%) after a
    key's first result arrived."""

    def __init__(self, soak, lifetime, threads, seed):
        self.soak = soak
        self.lifetime = lifetime
        self.nthreads = threads
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        self.heap = []
        self.accepting = True
        self.stop_ev = threading.Event()
        self.threads = []
        # key -> driver time of the 200 (or, for a 404 after an unclear try,
        # of that try: it is the one that deleted)
        self.deleted = {}
        self.attempts = {}  # key -> number of tries
        # key -> time of the first try whose outcome is unknown: a reset or
        # timeout, or a 503 (Redis may have run the delete and gone away
        # before its reply reached the service)
        self.unclear = {}
        self.history = {}  # key -> [(t, status)] for keys with any answer but 200
        self.statuses = {}
        self.unexpected_404 = []
        self.unexpected = []

    def schedule(self, key, t):
        with self.cv:
            if not self.accepting:
                return
            due = t + self.lifetime * (0.5 + self.rnd.random())
            heapq.heappush(self.heap, (due, key))
            self.cv.notify()

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True, name="undeploy-%d" % i)
            t.start()
            self.threads.append(t)

    def stop_new(self):
        """No new deletes; the ones tried already (unclear outcome) go on."""
        with self.cv:
            self.accepting = False
            self.heap = [(d, k) for d, k in self.heap if k in self.attempts]
            heapq.heapify(self.heap)
            self.cv.notify_all()

    def idle(self):
        with self.lock:
            return not self.heap

    def stop(self):
        self.stop_ev.set()
        with self.cv:
            self.cv.notify_all()
        for t in self.threads:
            t.join(30)

    def _run(self):
        c = Client(self.soak.api_port, 10.0)
        while not self.stop_ev.is_set():
            with self.cv:
                if not self.heap or self.heap[0][0] > now():
                    wait = 0.2 if not self.heap else min(0.2, self.heap[0][0] - now())
                    self.cv.wait(max(0.01, wait))
                    continue
                due, key = heapq.heappop(self.heap)
                self.attempts[key] = self.attempts.get(key, 0) + 1
            self._delete(c, key)
        c.close()

    def _delete(self, c, key):
        try:
            st, body = c.request("DELETE", "/api/v1/jobs/%s/%d" % key)
        except ConnectionRefusedError:
            st, body = "refused", b""
        except (OSError, http.client.HTTPException) as e:
            st, body = "error:" + type(e).__name__, b""
        t = now()
        with self.cv:
            self.statuses[str(st)] = self.statuses.get(str(st), 0) + 1
            if st != 200 or key in self.history:
                self.history.setdefault(key, []).append((round(t, 2), st))
            if st == 200:
                self.deleted[key] = t
            elif st == 404:
                if key in self.unclear:
                    self.deleted[key] = self.unclear[key]  # the unclear try did it
                else:
                    self.unexpected_404.append(key)
            elif isinstance(st, int) and st != 503:
                self.unexpected.append((key, st, body[:300].decode("utf-8", "replace")))
            else:
                if st != "refused":
                    self.unclear.setdefault(key, t)
                heapq.heappush(self.heap, (t + 1.0, key))
                self.cv.notify()


# --------------------------------------------------------------------------
# The soak


class Soak:
    def __init__(self, a):
        self.a = a
        self.mode = a.mode
        self.workdir = a.workdir or tempfile.mkdtemp(prefix="soak-%s-" % a.mode)
        os.makedirs(self.workdir, exist_ok=True)
        self.prefix = "soak-%s-" % ("e" if a.mode == "embedded" else "r")
        self.incarnations = []
        self.procs = []
        self.services = []  # Procs of the service (api first)
        self.workers = []
        self.redis = None
        self.api_port = free_port()
        self.recv_port = free_port()
        self.violations = []
        self.vlock = threading.Lock()
        self.faults = {}
        self.fault_log = []
        self.flock = threading.Lock()
        self.capacity_samples = 0
        self.capacity_bad = []
        self.node_peak = {}
        self.stop_ev = threading.Event()  # faults
        self.sampler_stop = threading.Event()
        self.fault_threads = []
        self.redis_down = False
        rnd = random.Random(a.seed)
        self.rnd = rnd
        self.nodes = []
        n_small = max(1, a.nodes // 4)
        for i in range(a.nodes):
            if i < n_small:
                self.nodes.append(Node("small-%02d" % i, 2, 2048))
            else:
                self.nodes.append(Node("big-%02d" % i, 64, 131072))
        self.receiver = Receiver(self.recv_port, self._on_first_result, a.results_log)
        self.undeployer = Undeployer(self, a.lifetime, 3, a.seed + 1)
        self.load = Load(self, a.rate, a.senders, a.seed + 2)
        self.hb = Heartbeats(self, self.nodes, 1.0, max(1.0, a.node_ttl - 1.5))

    # -- bookkeeping --
    def violation(self, kind, detail):
        with self.vlock:
            self.violations.append({"kind": kind, "at": round(now(), 1), "detail": detail})
        print("[%7.1f] VIOLATION %s: %s" % (now(), kind, detail), flush=True)

    def fault(self, kind, detail, start, end=None):
        with self.flock:
            self.faults[kind] = self.faults.get(kind, 0) + 1
            self.fault_log.append({"kind": kind, "detail": detail, "from": round(start, 1),
                                   "to": None if end is None else round(end, 1)})
        print("[%7.1f] fault %s %s" % (start, kind, detail), flush=True)

    def _on_first_result(self, key, t):
        self.undeployer.schedule(key, t)

    # -- processes --
    def service_env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_ADDR", "ROLE", "MY_PORT", "DATA_DIR", "WORKERS")}
        env.update({
            "BIND_ADDR": HOST,
            "CLUSTER_MANAGER_URL": HOST,
            "CLUSTER_MANAGER_PORT": str(self.recv_port),
            "NODE_TTL": str(self.a.node_ttl),
            "REAPER_INTERVAL": "1",
            "RESULT_RETRY_S": "3600",
            "RESULT_TIMEOUT": "5",
            "LOG_LEVEL": "warn",
        })
        env.update(extra or {})
        return env

    def start_processes(self):
        a = self.a
        if self.mode == "embedded":
            data = os.path.join(self.workdir, "data")
            env = self.service_env({"MY_PORT": str(self.api_port), "DATA_DIR": data,
                                    "WORKERS": str(a.workers)})
            svc = Proc(self, "service", [a.bin], env, self.api_port)
            self.procs.append(svc)
            self.services.append(svc)
            svc.start()
            return
        rport = free_port()
        rdir = os.path.join(self.workdir, "redis")
        os.makedirs(rdir, exist_ok=True)
        redis_bin = shutil.which("redis-server")
        if not redis_bin:
            raise SetupError("redis-server not found on PATH (apt-get install redis-server)")
        self.redis = Proc(self, "redis", [redis_bin, "--port", str(rport), "--bind", HOST,
                                          "--save", "", "--appendonly", "yes", "--appendfsync",
                                          a.redis_fsync, "--dir", rdir, "--daemonize", "no"],
                          dict(os.environ), rport, kind="redis", cwd=rdir)
        self.procs.append(self.redis)
        self.redis.start()
        common = {"REDIS_ADDR": "redis://%s:%d" % (HOST, rport), "CLAIM_IDLE": "5",
                  "RESULT_LEASE": "5", "DATA_DIR": os.path.join(self.workdir, "unused")}
        api = Proc(self, "api", [a.bin, "--role", "api"],
                   self.service_env(dict(common, MY_PORT=str(self.api_port), WORKERS="1")),
                   self.api_port)
        self.procs.append(api)
        self.services.append(api)
        api.start()
        for i in range(a.redis_workers):
            port = free_port()
            w = Proc(self, "worker%d" % i, [a.bin, "--role", "worker"],
                     self.service_env(dict(common, MY_PORT=str(port), WORKERS=str(a.workers))),
                     port)
            self.procs.append(w)
            self.services.append(w)
            self.workers.append(w)
            w.start()

    def stop_processes(self):
        for p in reversed(self.procs):
            try:
                rc = p.stop(signal.SIGTERM, "SIGTERM at the end")
                if rc not in (None, 0) and p.kind == "service":
                    self.violation("unclean_exit", "%s exited with %s on SIGTERM" % (p.name, rc))
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print("stopping %s: %s" % (p.name, e), file=sys.stderr)

    def kill_all(self):
        for p in self.procs:
            try:
                if p.proc is not None:
                    p.expect_exit = True
                    p.proc.kill()
                    p.proc.wait(10)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass

    # -- faults --
    def schedule(self):
        """[(t, kind)] for the whole run."""
        a = self.a
        ev = []

        def every(kind, first, period):
            if period and period > 0:
                t = first
                while t < a.duration - 5:
                    ev.append((t, kind))
                    t += period
        every("node_churn", a.churn_every / 2, a.churn_every)
        every("cm_outage", a.cm_every / 2, a.cm_every)
        every("worker_kill", a.kill_every * 0.7, a.kill_every)
        if self.mode == "redis":
            every("redis_restart", a.redis_every * 0.85, a.redis_every)
        ev.sort()
        return ev

    def run_faults(self, t_start):
        cm_kind = 0
        for t, kind in self.schedule():
            if self.stop_ev.wait(max(0.0, t_start + t - now())):
                return
            if kind == "node_churn":
                self.churn()
            elif kind == "cm_outage":
                how = ("closed", "503")[cm_kind % 2]
                cm_kind += 1
                self._bg(self.cm_outage, how)
            elif kind == "redis_restart":
                self._bg(self.redis_restart)
            elif kind == "worker_kill":
                self._bg(self.worker_kill)

    def _bg(self, fn, *args):
        t = threading.Thread(target=self._guard, args=(fn,) + args, daemon=True)
        t.start()
        self.fault_threads.append(t)

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except SetupError as e:
            self.violation("restart_failed", str(e))
        except Exception as e:  # noqa: BLE001 - a fault that failed is a finding
            self.violation("fault_failed", "%s: %r" % (fn.__name__, e))

    def churn(self):
        t = now()
        up = [n for n in self.nodes if n.silent_until <= t]
        k = min(self.a.churn_nodes, len(up))
        silence = 3 * self.a.node_ttl
        for n in self.rnd.sample(up, k):
            n.silent_until = t + silence
            n.silences.append((t, t + silence))
            self.fault("node_churn", "%s silent for %.0f s" % (n.id, silence), t, t + silence)

    def cm_outage(self, how):
        t = now()
        self.receiver.set_mode(how)
        self.stop_ev.wait(self.a.cm_down)
        self.receiver.set_mode("ok")
        self.fault("cm_outage_" + how, "receiver %s for %.0f s" % (how, self.a.cm_down), t,
                   now())

    def redis_restart(self):
        t = now()
        kill9 = self.a.redis_kill9
        self.redis_down = True
        try:
            if kill9:
                self.redis.stop(signal.SIGKILL, "kill -9 (fault)")
            else:
                self.redis.stop(signal.SIGTERM, "SIGTERM (fault)")
            time.sleep(self.a.redis_down)
            self.redis.start()
        finally:
            self.redis_down = False
        self.fault("redis_kill9" if kill9 else "redis_restart",
                   "down %.1f s" % (now() - t), t, now())

    def worker_kill(self):
        t = now()
        if self.mode == "embedded":
            svc = self.services[0]
            svc.stop(signal.SIGKILL, "kill -9 (fault)")
            svc.start()
            self.fault("service_kill9", "service restarted on the same DATA_DIR in %.1f s"
                       % (now() - t), t, now())
            return
        # Worker 0 lives through the whole run (its memory curve is one line);
        # the others take turns.
        victims = self.workers[1:] or self.workers
        w = victims[self.faults.get("worker_kill9", 0) % len(victims)]
        w.stop(signal.SIGKILL, "kill -9 (fault)")
        w.start()
        self.fault("worker_kill9", "%s killed and started again" % w.name, t, now())

    # -- samplers --
    def run_samplers(self):
        next_rss = now()
        next_cap = now() + 5
        while not self.sampler_stop.wait(1.0):
            for p in list(self.procs):
                rc = p.check_alive()
                if rc is not None:
                    self.violation("crash", "%s (pid %s) exited by itself with %d; see %s"
                                   % (p.name, p.inc["pid"], rc, p.inc["log"]))
                    try:
                        p.start()
                    except SetupError as e:
                        self.violation("restart_failed", str(e))
            t = now()
            if t >= next_rss:
                next_rss += self.a.rss_every
                for p in list(self.services):
                    p.sample_rss()
            if t >= next_cap:
                next_cap += 10
                self.check_capacity()

    def check_capacity(self, final=False):
        try:
            nodes = get_json(self.api_port, "/api/v1/nodes", 10.0)["nodes"]
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            return None  # an outage; the next sample will do
        self.capacity_samples += 1
        for n in nodes:
            res = n.get("reserved") or {}
            cap_cpu, cap_mem = float(n.get("vcpus", 0)), float(n.get("memory", 0))
            r_cpu, r_mem = float(res.get("vcpus", 0)), float(res.get("memory", 0))
            peak = self.node_peak.setdefault(n["_id"], [0.0, 0.0])
            if cap_cpu > 0:
                peak[0] = max(peak[0], r_cpu / cap_cpu)
            if cap_mem > 0:
                peak[1] = max(peak[1], r_mem / cap_mem)
            if r_cpu > cap_cpu + 1e-6 or r_mem > cap_mem + 1e-6:
                d = "%s reserved %.3f vcpus / %.0f MB of %.3f / %.0f" % (
                    n["_id"], r_cpu, r_mem, cap_cpu, cap_mem)
                self.capacity_bad.append(d)
                self.violation("over_capacity", d)
        return nodes

    # -- run --
    def run(self):
        a = self.a
        print("soak %s: workdir %s, receiver 127.0.0.1:%d, service 127.0.0.1:%d"
              % (self.mode, self.workdir, self.recv_port, self.api_port), flush=True)
        self.receiver.start()
        self.start_processes()
        self.hb.start()
        deadline = time.monotonic() + 15
        while not all(n.registered for n in self.nodes):
            if time.monotonic() > deadline:
                raise SetupError("nodes did not register within 15 s")
            time.sleep(0.1)
        self.started_wall = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.load_loadavg0 = os.getloadavg()
        samplers = threading.Thread(target=self.run_samplers, daemon=True, name="samplers")
        samplers.start()
        t_start = now()
        self.t_load = t_start
        self.undeployer.start()
        self.load.start()
        faults = threading.Thread(target=self.run_faults, args=(t_start,), daemon=True,
                                  name="faults")
        faults.start()
        last = t_start
        while now() < t_start + a.duration:
            time.sleep(min(1.0, t_start + a.duration - now()))
            if now() - last >= a.progress_every:
                last = now()
                self.progress()
        self.t_load_end = now()
        print("[%7.1f] load stops; healing every fault and draining" % now(), flush=True)
        self.undeployer.stop_new()
        self.load.stop()
        self.stop_ev.set()
        faults.join(5)
        for t in self.fault_threads:
            t.join(120)
        # heal: every node reports, the receiver answers, every process runs
        for n in self.nodes:
            n.silent_until = 0.0
        self.receiver.set_mode("ok")
        for p in self.procs:
            if p.proc is None:
                p.start()
        c = Client(self.api_port, 10.0)
        self.load.drain_retries(c, time.monotonic() + 90)
        c.close()
        d_deadline = time.monotonic() + 120
        while not self.undeployer.idle() and time.monotonic() < d_deadline:
            time.sleep(0.2)
        self.undeployer.stop()
        quiet = self.wait_quiet()
        self.t_quiet = now()
        report = self.check(quiet)
        self.sampler_stop.set()
        samplers.join(15)
        self.hb.stop()
        self.final_metrics = self.metrics_all()
        self.stop_processes()
        self.receiver.stop()
        return report

    def progress(self):
        L = self.load
        with L.lock:
            sent, seq = L.sent_requests, L.seq
        rss = []
        for p in self.services:
            inc = p.inc
            if inc and inc["samples"]:
                rss.append("%s %.1f MB" % (p.name, inc["samples"][-1][1] / 1024))
        print("[%7.1f] jobs %d, requests %d, results %d, deletes %d, faults %s; rss %s"
              % (now(), seq, sent, self.receiver.accepted, len(self.undeployer.deleted),
                 dict(self.faults), ", ".join(rss)), flush=True)

    def metrics_all(self):
        out = {}
        for p in self.services:
            try:
                out[p.name] = get_metrics(p.port)
            except (OSError, http.client.HTTPException) as e:
                out[p.name] = {"error": str(e)}
        return out

    def wait_quiet(self):
        """Until every accepted job has a result and the queue and outbox
        stay empty for NODE_TTL + 3 s (no reaping left to do)."""
        need = self.a.node_ttl + 3
        deadline = time.monotonic() + self.a.drain_timeout
        since = None
        while time.monotonic() < deadline:
            try:
                m = get_metrics(self.api_port)
                q, o = m.get("queue_depth", -1), m.get("outbox_depth", -1)
            except (OSError, http.client.HTTPException):
                q = o = -1
            with self.load.lock:
                acc = [k for k, j in self.load.jobs.items() if j.acc_t is not None]
            have = self.receiver.keys_with_results()
            missing = sum(1 for k in acc if k not in have)
            if q == 0 and o == 0 and missing == 0:
                if since is None:
                    since = now()
                if now() - since >= need:
                    print("[%7.1f] quiet: queue and outbox empty, every accepted job answered"
                          % now(), flush=True)
                    return True
            else:
                since = None
            time.sleep(0.5)
        print("[%7.1f] not quiet within %.0f s (queue %s, outbox %s, accepted jobs without a "
              "result %d)" % (now(), self.a.drain_timeout, q, o, missing), flush=True)
        self.violation("not_quiet", "queue %s, outbox %s, accepted without result %d after %.0f s"
                       % (q, o, missing, self.a.drain_timeout))
        return False

    # -- checks --
    def check(self, quiet):
        L, U, R = self.load, self.undeployer, self.receiver
        res = R.snapshot()
        node_by_id = {n.id: n for n in self.nodes}
        with L.lock:
            jobs = dict(L.jobs)
        accepted = {k for k, j in jobs.items() if j.acc_t is not None}
        deleted = dict(U.deleted)
        st = {"lost": 0, "lost_keys": [], "results_for_unaccepted": 0,
              "unaccepted_known_without_result": 0, "results_unknown_key": 0,
              "keys_with_result": len(res), "results_total": sum(len(v) for v in res.values()),
              "found_final": 0, "not_found_final": 0, "moves": 0, "moves_explained": 0,
              "moves_unexplained": 0, "moves_from_not_found": 0, "duplicates_identical": 0,
              "duplicates_same_decision": 0, "redecided_unexplained": 0,
              "redecided_after_churn": 0, "redecided_after_gap": 0, "moves_after_churn": 0,
              "moves_after_gap": 0,
              "keys_with_duplicates": 0,
              "late_after_delete": 0, "final_mismatch": 0, "final_on_dead_node": 0,
              "live_checked": 0, "deleted_checked": 0, "deleted_still_known": 0}
        examples = {}

        def ex(kind, item):
            lst = examples.setdefault(kind, [])
            if len(lst) < 10:
                lst.append(item)

        # lost
        for k in accepted:
            if k not in res:
                st["lost"] += 1
                ex("lost", self.trace(k, res, jobs))
        for k in res:
            j = jobs.get(k)
            if j is None:
                st["results_unknown_key"] += 1
                ex("results_unknown_key", "%s/%d" % k)
            elif j.acc_t is None:
                st["results_for_unaccepted"] += 1
        def maybe_dead(node_id, t_from, t_to):
            """Could the service have taken node_id for dead between t_from
            and t_to? "churn" when it was silenced on purpose then, "gap"
            when its reports only failed for longer than the threshold (an
            outage of the service or Redis), else None."""
            n = node_by_id.get(node_id)
            if n is None:
                return None
            if any(s0 <= t_to and s1 >= t_from for s0, s1 in n.silences):
                return "churn"
            if any(g0 <= t_to and g1 >= t_from for g0, g1 in self.hb.dead_windows(n)):
                return "gap"
            return None

        # per key: duplicates, moves, final
        final = {}
        for k, lst in res.items():
            t_del = deleted.get(k)
            dup_here = False
            for i in range(1, len(lst)):
                prev, cur = lst[i - 1], lst[i]
                if t_del is not None and cur[0] > t_del:
                    st["late_after_delete"] += 1
                j = jobs.get(k)
                t_from = j.first_t if j is not None else 0.0
                if (prev[1], prev[2]) == (cur[1], cur[2]):
                    dup_here = True
                    if prev[3] == cur[3]:
                        st["duplicates_identical"] += 1  # the same result sent again
                        continue
                    # decided again (other node documents, candidates) yet
                    # the same node: only after it may have been taken for dead
                    st["duplicates_same_decision"] += 1
                    why = cur[1] and maybe_dead(prev[2], t_from, cur[0])
                    if why:
                        st["redecided_after_" + why] += 1
                    else:
                        st["redecided_unexplained"] += 1
                        ex("redecided_unexplained", "%s again at %.1f s: %s" % (
                            cur[2] or "not found", cur[0], self.trace(k, res, jobs)))
                    continue
                st["moves"] += 1
                if not prev[1]:
                    st["moves_from_not_found"] += 1
                    ex("moves_from_not_found", "%s/%d: not found, then %s" % (k + (cur[2],)))
                    continue
                why = maybe_dead(prev[2], t_from, cur[0])
                if why:
                    st["moves_explained"] += 1
                    st["moves_after_" + why] += 1
                else:
                    st["moves_unexplained"] += 1
                    ex("moves_unexplained", "%s -> %s at %.1f s: %s" % (
                        prev[2], cur[2] or "not found", cur[0], self.trace(k, res, jobs)))
            if dup_here:
                st["keys_with_duplicates"] += 1
            if t_del is not None:
                before = [r for r in lst if r[0] <= t_del]
                final[k] = before[-1] if before else lst[0]
            else:
                final[k] = lst[-1]
        for k, r in final.items():
            st["found_final" if r[1] else "not_found_final"] += 1
        # unaccepted jobs with an unclear try: does the service know them?
        unclear = [k for k, j in jobs.items() if j.acc_t is None and j.ambiguous and k not in res]
        c = Client(self.api_port, 10.0)
        try:
            for k in unclear:
                s, _ = c.request("GET", "/api/v1/jobs/%s/%d" % k)
                if s == 200:
                    st["unaccepted_known_without_result"] += 1
                    ex("unaccepted_known_without_result", "%s/%d" % k)
            # live jobs: the service agrees with the last result
            live = [k for k in set(res) | accepted if k not in deleted]
            nodes_now = {}
            for n in get_json(self.api_port, "/api/v1/nodes")["nodes"]:
                nodes_now[n["_id"]] = n
            for k in live:
                s, body = c.request("GET", "/api/v1/jobs/%s/%d" % k)
                st["live_checked"] += 1
                r = final.get(k)
                if s != 200:
                    st["final_mismatch"] += 1
                    ex("final_mismatch", "GET answered %d: %s" % (s, self.trace(k, res, jobs)))
                    continue
                js = json.loads(body)
                if r is None:
                    st["final_mismatch"] += 1
                    ex("final_mismatch", "%s/%d: no result, state %s" % (k + (js.get("state"),)))
                    continue
                want = ("placed", r[2]) if r[1] else ("unschedulable", None)
                got = (js.get("state"), js.get("node_id"))
                if got != want:
                    st["final_mismatch"] += 1
                    ex("final_mismatch", "service %r, last result %r: %s"
                       % (got, want, self.trace(k, res, jobs)))
                if r[1]:
                    nd = nodes_now.get(r[2])
                    if nd is None or nd.get("active") is not True:
                        st["final_on_dead_node"] += 1
                        ex("final_on_dead_node", "%s/%d on %s (%s)" % (
                            k + (r[2], "unknown" if nd is None else "inactive")))
            # deleted jobs stay deleted (a sample)
            rnd = random.Random(7)
            dkeys = list(deleted)
            for k in rnd.sample(dkeys, min(len(dkeys), self.a.deleted_sample)):
                s, _ = c.request("GET", "/api/v1/jobs/%s/%d" % k)
                st["deleted_checked"] += 1
                if s != 404:
                    st["deleted_still_known"] += 1
                    ex("deleted_still_known", "%s/%d: GET %d" % (k + (s,)))
        finally:
            c.close()
        # capacity: the final placements seen at the receiver, per node
        sums = {}
        count = {}
        for k, r in final.items():
            if k in deleted or not r[1]:
                continue
            s = sums.setdefault(r[2], [0, 0.0])
            s[0] += r[4]
            s[1] += r[5]
            count[r[2]] = count.get(r[2], 0) + 1
        cap = {"samples": 0, "over_capacity": 0, "final_over_capacity": 0,
               "final_mismatch_with_service": 0, "nodes": {}}
        nodes_final = self.check_capacity(final=True) or []
        cap["samples"] = self.capacity_samples
        cap["over_capacity"] = len(self.capacity_bad)
        for n in nodes_final:
            nid = n["_id"]
            s = sums.get(nid, [0, 0.0])
            mine = node_by_id.get(nid)
            res_cpu = int(round(float(n["reserved"]["vcpus"]) * 1000))
            res_mem = float(n["reserved"]["memory"])
            row = {"capacity": [n["vcpus"], n["memory"]],
                   "receiver_sum": [s[0] / 1000, s[1]], "receiver_count": count.get(nid, 0),
                   "service_reserved": [n["reserved"]["vcpus"], res_mem],
                   "service_reservations": n.get("reservations"),
                   "peak_utilisation": [round(x, 3) for x in self.node_peak.get(nid, [0, 0])]}
            cap["nodes"][nid] = row
            if mine is not None and (s[0] > mine.cpu_milli or s[1] > mine.memory + 1e-6):
                cap["final_over_capacity"] += 1
                ex("final_over_capacity", "%s: %r" % (nid, row))
            if (s[0] != res_cpu or abs(s[1] - res_mem) > 1e-6
                    or count.get(nid, 0) != n.get("reservations")):
                cap["final_mismatch_with_service"] += 1
                ex("capacity_mismatch", "%s: %r" % (nid, row))
        for nid in set(sums) - {n["_id"] for n in nodes_final}:
            cap["final_mismatch_with_service"] += 1
            ex("capacity_mismatch", "%s: placements at the receiver, unknown to the service" % nid)

        # violations
        if not quiet:
            pass  # reported in wait_quiet
        for kind, n in (("lost", st["lost"]), ("moves_unexplained", st["moves_unexplained"]),
                        ("redecided_unexplained", st["redecided_unexplained"]),
                        ("moves_from_not_found", st["moves_from_not_found"]),
                        ("final_mismatch", st["final_mismatch"]),
                        ("final_on_dead_node", st["final_on_dead_node"]),
                        ("results_unknown_key", st["results_unknown_key"]),
                        ("unaccepted_known_without_result",
                         st["unaccepted_known_without_result"]),
                        ("deleted_still_known", st["deleted_still_known"]),
                        ("final_over_capacity", cap["final_over_capacity"]),
                        ("capacity_mismatch", cap["final_mismatch_with_service"])):
            if n:
                self.violation(kind, "%d; e.g. %s" % (n, examples.get(kind, [])[:3]))
        if L.unexpected:
            self.violation("intake_unexpected_status", "%d; e.g. %r"
                           % (len(L.unexpected), L.unexpected[:3]))
        if L.repeat_forgotten:
            self.violation("repeat_queued_anew", "%d accepted jobs were unknown when sent "
                           "again: %r" % (len(L.repeat_forgotten), L.repeat_forgotten[:5]))
        if U.unexpected_404:
            self.violation("delete_unknown", "%d jobs with a result were unknown to DELETE: %s"
                           % (len(U.unexpected_404), "; ".join(
                               self.trace(k, res, jobs) for k in U.unexpected_404[:5])))
        if U.unexpected:
            self.violation("delete_unexpected_status", "%d; e.g. %r"
                           % (len(U.unexpected), U.unexpected[:3]))
        given_up = [k for k, j in jobs.items() if j.given_up and j.acc_t is None]
        intake = {
            "jobs": len(jobs), "accepted": len(accepted),
            "accepted_deploy": sum(1 for k in accepted if jobs[k].route == "deploy"),
            "accepted_native": sum(1 for k in accepted if jobs[k].route == "native"),
            "requests": L.sent_requests, "statuses": L.status_counts,
            "accepted_after_retry": sum(1 for k in accepted if jobs[k].attempts > 1),
            "given_up": len(given_up), "unclear_tries": sum(1 for j in jobs.values()
                                                           if j.ambiguous),
            "repeats": L.repeats, "repeat_statuses": L.repeat_statuses,
            "missed_slots": L.missed_slots,
            "offered_rate": self.a.rate,
            "achieved_rate": round(L.sent_requests / max(1e-9, self.t_load_end - self.t_load), 1),
        }
        deletes = {"deleted": len(deleted), "statuses": U.statuses,
                   "unexpected_404": len(U.unexpected_404), "live_at_end": st["live_checked"]}
        half = len(self.nodes) / 2
        receiver = {"posts_accepted": R.accepted, "posts_refused_503": R.refused_503,
                    "malformed": R.malformed,
                    "inactive_nodes_in_results": {str(k): v for k, v in
                                                  sorted(R.inactive_hist.items())},
                    "decided_with_most_nodes_inactive": sum(
                        v for k, v in R.inactive_hist.items() if k > half)}
        return {"intake": intake, "results": st, "receiver": receiver, "deletes": deletes,
                "capacity": cap, "examples": examples}

    def trace(self, key, res, jobs):
        """What the driver saw of one job, for a violation's detail."""
        j = jobs.get(key)
        parts = ["%s/%d" % key]
        if j is not None:
            parts.append("sent %.2f via %s, accepted %s, intake answers %s" % (
                j.first_t, j.route, "no" if j.acc_t is None else "%.2f" % j.acc_t, j.statuses))
        parts.append("results %s" % [(round(r[0], 2), r[2] or "not found")
                                     for r in res.get(key, [])])
        parts.append("deletes %s" % self.undeployer.history.get(key, "200 at once"))
        return ", ".join(parts)

    def log_report(self):
        """Error lines of every service incarnation, grouped (numbers and
        ids blanked); a result given up is a violation."""
        groups = {}
        given_up = 0
        for inc in self.incarnations:
            if inc["process"] == "redis":
                continue
            try:
                with open(inc["log"], "rb") as f:
                    for raw in f:
                        line = raw.decode("utf-8", "replace")
                        if " error " not in line[:40]:
                            continue
                        if " given up after " in line:
                            given_up += 1
                        msg = re.sub(r"[0-9]+", "N", line.split(" error ", 1)[1].strip())
                        msg = re.sub(r"soak-[er]-N", "JOB", msg)
                        key = "%s: %s" % (inc["process"], msg)
                        groups[key] = groups.get(key, 0) + 1
            except OSError:
                pass
        if given_up:
            self.violation("results_given_up", "%d results given up (see the logs)" % given_up)
        return dict(sorted(groups.items(), key=lambda kv: -kv[1])[:20])

    def rss_report(self):
        out = []
        warm = self.a.warmup
        for inc in self.incarnations:
            if inc["process"] == "redis":
                continue
            s = inc["samples"]
            row = {"process": inc["process"], "incarnation": inc["incarnation"],
                   "pid": inc["pid"], "from": round(inc["started_at"], 1),
                   "to": round(inc["ended_at"] if inc["ended_at"] is not None else now(), 1),
                   "ended_by": inc["ended_by"], "samples": len(s)}
            if s:
                row.update({"start_mb": round(s[0][1] / 1024, 1),
                            "end_mb": round(s[-1][1] / 1024, 1),
                            "max_mb": round(max(x[1] for x in s) / 1024, 1)})
            row["rss_mb"] = [[round(t, 1), round(kb / 1024, 2)] for t, kb in s]
            t0 = inc["ready_at"] or inc["started_at"]
            late = [(t, kb / 1024) for t, kb in s if t - t0 >= warm]
            row["slope_mb_per_min"] = None
            if len(late) >= 6:
                n = len(late)
                mt = sum(t for t, _ in late) / n
                mv = sum(v for _, v in late) / n
                var = sum((t - mt) ** 2 for t, _ in late)
                if var > 0:
                    slope = sum((t - mt) * (v - mv) for t, v in late) / var * 60
                    row["slope_mb_per_min"] = round(slope, 3)
                    row["slope_span_s"] = round(late[-1][0] - late[0][0], 0)
            out.append(row)
        for row in out:
            judged = row.get("slope_span_s", 0) >= self.a.min_span
            if judged and row["slope_mb_per_min"] > self.a.max_slope:
                self.violation("memory_growth", "%s #%d grew %.2f MB/min over %.0f s after "
                               "warm-up (limit %.2f)" % (row["process"], row["incarnation"],
                                                          row["slope_mb_per_min"],
                                                          row["slope_span_s"],
                                                          self.a.max_slope))
        return out


def machine():
    info = {"hostname": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_mb"] = int(line.split()[1]) // 1024
                    break
    except OSError:
        pass
    return info


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="soak.sh",
        description="Soak test: the service under a steady job rate with faults injected on a "
                    "schedule; checks for lost results, double bookings and memory growth.")
    p.add_argument("--mode", choices=("embedded", "redis"), default="embedded")
    p.add_argument("--duration", type=float, default=1800, help="seconds of load (default 1800)")
    p.add_argument("--rate", type=float, default=100, help="intake requests per second")
    p.add_argument("--bin", required=True, help="the cluster-scheduler binary")
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--workers", type=int, default=2, help="worker threads per process")
    p.add_argument("--redis-workers", type=int, default=2, help="--role worker processes")
    p.add_argument("--senders", type=int, default=8, help="load threads")
    p.add_argument("--lifetime", type=float, default=20,
                   help="seconds from a job's first result to its DELETE (+-50%%)")
    p.add_argument("--node-ttl", type=float, default=5)
    p.add_argument("--churn-every", type=float, default=40, help="seconds between node churns")
    p.add_argument("--churn-nodes", type=int, default=2, help="nodes silenced per churn")
    p.add_argument("--cm-every", type=float, default=180,
                   help="seconds between cluster-manager outages")
    p.add_argument("--cm-down", type=float, default=20, help="length of one outage")
    p.add_argument("--kill-every", type=float, default=None,
                   help="seconds between worker kills (default 120 redis, 400 embedded)")
    p.add_argument("--redis-every", type=float, default=150,
                   help="seconds between Redis restarts")
    p.add_argument("--redis-down", type=float, default=3, help="seconds Redis stays down")
    p.add_argument("--redis-kill9", action="store_true",
                   help="restart Redis with kill -9 instead of SIGTERM")
    p.add_argument("--redis-fsync", choices=("always", "everysec"), default="always")
    p.add_argument("--rss-every", type=float, default=10)
    p.add_argument("--warmup", type=float, default=120,
                   help="seconds of each process's life left out of the RSS slope")
    p.add_argument("--max-slope", type=float, default=0.5,
                   help="MB/min of RSS growth after warm-up that counts as a violation")
    p.add_argument("--min-span", type=float, default=240,
                   help="seconds after warm-up an incarnation needs for its slope to be judged")
    p.add_argument("--drain-timeout", type=float, default=300)
    p.add_argument("--deleted-sample", type=int, default=1000,
                   help="deleted jobs checked to be gone at the end")
    p.add_argument("--progress-every", type=float, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results-log", default=None,
                   help="debugging: append every accepted result (time, path, body) to this file")
    p.add_argument("--workdir", default=None, help="logs and data (default: a new temp dir)")
    p.add_argument("--json", default=None, help="write the report here (default WORKDIR/soak.json)")
    a = p.parse_args(argv)
    if a.kill_every is None:
        a.kill_every = 120 if a.mode == "redis" else 400
    if a.rate <= 0 or a.duration <= 0:
        p.error("--rate and --duration must be > 0")
    return a


def summary(rep):
    i, r, d, c = rep["intake"], rep["results"], rep["deletes"], rep["capacity"]
    lines = [
        "soak %s: %.0f s at %.0f requests/s (achieved %.1f), %s" % (
            rep["mode"], rep["duration_s"], i["offered_rate"], i["achieved_rate"],
            "PASS" if not rep["violations"] else "FAIL (%d violations)" % len(rep["violations"])),
        "  intake   %d jobs, %d accepted (%d drop-in, %d native; %d after a retry), %d given up, "
        "%d repeats %s" % (i["jobs"], i["accepted"], i["accepted_deploy"], i["accepted_native"],
                           i["accepted_after_retry"], i["given_up"], i["repeats"],
                           i["repeat_statuses"]),
        "  faults   %s" % ", ".join("%s %d" % kv for kv in sorted(rep["faults"].items())),
        "  results  %d POSTs accepted (%d refused with 503) for %d jobs: %d placed, %d not found; "
        "moves %d (after churn %d, after a report gap %d, unexplained %d); duplicates %d "
        "identical + %d same node decided again (after churn %d, after a gap %d, unexplained "
        "%d); %d jobs with duplicates; late after delete %d" % (
            rep["receiver"]["posts_accepted"], rep["receiver"]["posts_refused_503"],
            r["keys_with_result"], r["found_final"], r["not_found_final"], r["moves"],
            r["moves_after_churn"], r["moves_after_gap"], r["moves_unexplained"],
            r["duplicates_identical"], r["duplicates_same_decision"],
            r["redecided_after_churn"], r["redecided_after_gap"], r["redecided_unexplained"],
            r["keys_with_duplicates"], r["late_after_delete"]),
        "  views    %d results decided while more than half the nodes looked inactive" % (
            rep["receiver"]["decided_with_most_nodes_inactive"]),
        "  lost     %d; final mismatches %d; finals on dead nodes %d; deleted still known %d "
        "(of %d checked)" % (r["lost"], r["final_mismatch"], r["final_on_dead_node"],
                             r["deleted_still_known"], r["deleted_checked"]),
        "  deletes  %d; live at the end %d" % (d["deleted"], d["live_at_end"]),
        "  capacity %d samples, over capacity %d; at the end over capacity %d, receiver vs "
        "service mismatches %d" % (c["samples"], c["over_capacity"], c["final_over_capacity"],
                                   c["final_mismatch_with_service"]),
        "  memory (RSS MB: start/end/max, slope MB/min after warm-up):",
    ]
    for row in rep["rss"]:
        lines.append("    %-8s #%-3d %6s/%6s/%6s  slope %s%s" % (
            row["process"], row["incarnation"], row.get("start_mb"), row.get("end_mb"),
            row.get("max_mb"),
            "n/a" if row["slope_mb_per_min"] is None else "%.3f" % row["slope_mb_per_min"],
            "" if row["slope_mb_per_min"] is None else " over %.0f s" % row["slope_span_s"]))
    if rep["log_errors"]:
        lines.append("  error lines in the service logs (most frequent first):")
        for k, n in list(rep["log_errors"].items())[:8]:
            lines.append("    %6d  %s" % (n, k[:150]))
    for v in rep["violations"][:30]:
        lines.append("  VIOLATION %s: %s" % (v["kind"], v["detail"]))
    return "\n".join(lines)


def main(argv):
    a = parse_args(argv)
    soak = Soak(a)

    def on_signal(sig, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        checks = soak.run()
        rep = {
            "mode": a.mode, "command": "scripts/soak.sh " + " ".join(sys.argv[1:]),
            "started_at": soak.started_wall,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": a.duration, "machine": machine(),
            "loadavg_start": soak.load_loadavg0, "loadavg_end": os.getloadavg(),
            "settings": {k: v for k, v in vars(a).items() if k not in ("json", "workdir")},
            "drain_s": round(soak.t_quiet - soak.t_load_end, 1),
            "faults": soak.faults, "fault_log": soak.fault_log,
            "final_metrics": soak.final_metrics,
        }
        rep.update(checks)
        rep["rss"] = soak.rss_report()
        rep["log_errors"] = soak.log_report()
        rep["violations"] = soak.violations
        rep["workdir"] = soak.workdir
        path = a.json or os.path.join(soak.workdir, "soak.json")
        with open(path, "w") as f:
            json.dump(rep, f, indent=1, sort_keys=True)
        print(summary(rep))
        print("report: %s; logs: %s" % (path, soak.workdir))
        rc = 1 if soak.violations else 0
    except SetupError as e:
        print("soak: set-up failed: %s" % e, file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        rc = 130
    finally:
        soak.hb.stop_ev.set()
        soak.load.stop_ev.set()
        soak.undeployer.stop_ev.set()
        soak.stop_ev.set()
        soak.sampler_stop.set()
        soak.kill_all()
        soak.receiver.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
