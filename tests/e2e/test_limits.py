"""Limits (docs/API.md "Limits"): the server-side ones are configurable
and hold (MAX_CONNECTIONS, MAX_BODY, CONN_TIMEOUT), and for every bounded
input one request just inside the bound is accepted while one just
outside is a 4xx JSON error naming the field."""

import http.client
import json
import math
import select
import socket
import time
import unittest

from harness import HOST, E2ETestCase, SharedServiceTestCase, job_doc, node_doc, wait_until


def recv_until_closed(sock, timeout):
    """Reads until the peer closes; returns the seconds that took, or None
    when the connection is still open after timeout."""
    t0 = time.monotonic()
    sock.setblocking(False)
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([sock], [], [], 0.1)
        if not r:
            continue
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0
    return None


def raw_request(port, data, timeout=10.0):
    """Sends raw bytes; returns (status, body bytes) of the answer, read
    until the server closes or Content-Length is complete."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while True:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            buf += d
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                cl = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")[1:]
                      if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= cl[0]:
                    break
    head, _, body = buf.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    return status, body


class ServerLimitsTest(E2ETestCase):

    # ---- MAX_CONNECTIONS --------------------------------------------------
    def test_max_connections(self):
        limit = 4
        recv = self.receiver()
        # a long CONN_TIMEOUT, so the held connections stay for the test
        svc = self.service(recv, settings={"CONN_TIMEOUT": 60},
                           args=["--max-connections", str(limit)])
        held = []

        def hold_one():
            """A keep-alive connection that was served once (so the server
            counts it), or None when the server refused it."""
            c = http.client.HTTPConnection(HOST, svc.port, timeout=5)
            try:
                c.request("GET", "/status")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    return c
            except OSError:
                pass
            c.close()
            return None

        def refused():
            try:
                r = svc.request("GET", "/status", timeout=5)
            except OSError:
                return True  # closed without an answer
            if r.status == 503:
                self.assertJSONError(r, 503)
                return True
            return False

        try:
            for _ in range(limit):
                # a slot freed a moment ago may still be in use: retry
                held.append(wait_until(hold_one, 10, interval=0.1))
            # exactly `limit` connections are open: the next is refused,
            # however often it tries, and refusals do not flood the log
            t0 = time.monotonic()
            for i in range(30):
                self.assertTrue(refused(), "connection %d beyond MAX_CONNECTIONS=%d was served"
                                % (i + 1, limit))
            elapsed = time.monotonic() - t0
            self.assertTrue(svc.alive(), svc.tail())
            # the held connections still work
            for c in held:
                c.request("GET", "/status")
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (200, b"ok"))
            # one closed: one new one is served again
            held.pop().close()
            wait_until(lambda: not refused(), 10, interval=0.1,
                       msg="a freed connection slot was not reused")
        finally:
            for c in held:
                c.close()
        # all closed: the service is healthy and serves several clients
        # (the service frees a slot when the connection's thread has ended,
        # a moment after the close: until then it may still refuse)
        def healthy():
            try:
                return svc.get("/status", timeout=5).status == 200
            except OSError:
                return False
        wait_until(healthy, 10, interval=0.1)
        svc.put_node("n1", node_doc())
        for _ in range(limit):
            self.assertAlive(svc)
        log = svc.stderr_text()
        self.assertIn("max_connections=%d" % limit, log)
        lines = [l for l in log.splitlines() if "connection limit" in l]
        self.assertGreaterEqual(len(lines), 1, log[-2000:])
        self.assertLessEqual(len(lines), 5 * (math.ceil(elapsed) + 1), "log flooded:\n"
                             + "\n".join(lines))

    # ---- MAX_BODY ---------------------------------------------------------
    def test_max_body(self):
        limit = 4096
        recv = self.receiver()
        svc = self.service(recv, settings={"MAX_BODY": limit})

        def job_of_size(size, jid):
            head = '{"_id":"%s","virtualization":"container","vcpus":0,"pad":"' % jid
            tail = '"}'
            b = head + "p" * (size - len(head) - len(tail)) + tail
            self.assertEqual(len(b), size)
            return b

        def check_413(r, what):
            err = self.assertJSONError(r, 413, "body", msg=what)
            self.assertIn(str(limit), err["message"], what)
            self.assertIn("MAX_BODY", err["message"], what)

        # exactly the limit: accepted; one byte more: 413, nothing queued
        r = svc.request("POST", "/api/v1/jobs", job_of_size(limit, "at"))
        self.assertEqual(r.status, 202, r)
        check_413(svc.request("POST", "/api/v1/jobs", job_of_size(limit + 1, "over")),
                  "Content-Length limit+1")
        self.assertJSONError(svc.get("/api/v1/jobs/over/0"), 404)
        # the same without Content-Length (chunked): counted while reading
        for size, jid, want in ((limit, "chunk-at", 202), (limit + 1, "chunk-over", 413)):
            body = job_of_size(size, jid).encode()
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                              for i in range(0, len(body), 1000))
            st, rb = raw_request(svc.port, b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                 + chunks + b"0\r\n\r\n")
            self.assertEqual(st, want, rb)
            if want == 413:
                err = json.loads(rb)["error"]
                self.assertEqual(err["field"], "body")
                self.assertIn(str(limit), err["message"])
        self.assertJSONError(svc.get("/api/v1/jobs/chunk-over/0"), 404)
        # every route that reads a body applies it
        node = node_doc()
        node["pad"] = "p" * limit
        check_413(svc.request("PUT", "/api/v1/nodes/big", node), "node")
        check_413(svc.request("POST", "/api/v1/schedule", job_of_size(limit + 1, "s")), "schedule")
        check_413(svc.request("POST", "/api/calculate/deploy/d/0", job_of_size(limit + 1, "d")),
                  "deploy")
        check_413(svc.request("POST", "/api/calculate/replicate",
                              {"job": json.loads(job_of_size(limit, "r")), "replicas": 1}),
                  "replicate")
        self.assertAlive(svc)
        self.assertIn("max_body=%d" % limit, svc.stderr_text())

    # ---- CONN_TIMEOUT -----------------------------------------------------
    def stall_and_measure(self, svc, timeout, check_open_at=None):
        """Opens connections that stall mid-request (in the body, in the
        headers) or sit idle after an answer; checks others are served
        meanwhile; returns how long each took to be closed."""
        partials = [b"PUT /api/v1/nodes/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n"
                    b"\r\n{\"virtualization\": [\"container\"], ",
                    b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Le",
                    b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"]
        socks = []
        try:
            for p in partials:
                s = socket.create_connection((HOST, svc.port), timeout=5)
                s.sendall(p)
                socks.append(s)
            # the idle keep-alive one got its answer first
            self.assertIn(b"200", socks[2].recv(4096))
            t0 = time.monotonic()
            # the others are served promptly meanwhile
            for _ in range(5):
                t = time.monotonic()
                self.assertEqual(svc.get("/status", timeout=5).status, 200)
                self.assertLess(time.monotonic() - t, 1.0)
            svc.put_node("other", node_doc())
            if check_open_at is not None:
                time.sleep(max(0.0, check_open_at - (time.monotonic() - t0)))
                for s in socks:
                    r, _, _ = select.select([s], [], [], 0)
                    self.assertEqual(r, [], "closed before %.1f s (CONN_TIMEOUT=%d)"
                                     % (check_open_at, timeout))
            took = []
            for s in socks:
                left = recv_until_closed(s, timeout + 10 - (time.monotonic() - t0))
                self.assertIsNotNone(left, "a stalled connection outlived CONN_TIMEOUT=%d by "
                                     "10 s" % timeout)
                took.append(time.monotonic() - t0)
            return took
        finally:
            for s in socks:
                s.close()

    def test_conn_timeout(self):
        recv = self.receiver()
        svc = self.service(recv, settings={"CONN_TIMEOUT": 2})
        took = self.stall_and_measure(svc, 2)
        for t in took:
            self.assertGreaterEqual(t, 1.5, took)
        self.assertAlive(svc)
        # the half-sent report changed nothing
        self.assertJSONError(svc.get("/api/v1/nodes/stalled"), 404)
        # configurable: with --conn-timeout 5 the same connections are
        # still open after 3.5 s, and closed later
        svc2 = self.service(recv, args=["--conn-timeout", "5"])
        took = self.stall_and_measure(svc2, 5, check_open_at=3.5)
        for t in took:
            self.assertGreaterEqual(t, 4.5, took)
        self.assertAlive(svc2)


# --------------------------------------------------------------------------
# Input limits

N63, N64 = "n" * 63, "n" * 64
H127, H128 = "h" * 127, "h" * 128


def names(n, prefix="x"):
    return ["%s%d" % (prefix, i) for i in range(n)]


def direct(node):
    return [{"type": "direct", "node": node}]


def needs(lst):
    return [{"type": "addons", "needs": lst}]


# (what, job document fields inside the bound, fields just outside, field named)
JOB_CASES = [
    ("_id length", {"_id": N63}, {"_id": N64}, "_id"),
    ("vcpus max", {"vcpus": 65536}, {"vcpus": 65536.001}, "vcpus"),
    ("vcpus min", {"vcpus": 0}, {"vcpus": -0.001}, "vcpus"),
    ("memory max", {"memory": 1073741824}, {"memory": 1073741825}, "memory"),
    ("memory min", {"memory": 0}, {"memory": -1}, "memory"),
    ("vgpus max", {"vgpus": 4096}, {"vgpus": 4097}, "vgpus"),
    ("vgpus min", {"vgpus": 0}, {"vgpus": -1}, "vgpus"),
    ("top_k max", {"top_k": 100000}, {"top_k": 100001}, "top_k"),
    ("top_k min", {"top_k": 1}, {"top_k": 0}, "top_k"),
    ("arch entries", {"arch": names(64)}, {"arch": names(65)}, "arch"),
    ("arch name", {"arch": [N63]}, {"arch": [N64]}, "arch[0]"),
    ("constraints entries", {"constraints": direct("h") * 64},
     {"constraints": direct("h") * 65}, "constraints"),
    ("direct host name", {"constraints": direct(H127)}, {"constraints": direct(H128)},
     "constraints[0].node"),
    ("direct hosts (string)", {"constraints": direct(";".join(names(64)))},
     {"constraints": direct(";".join(names(65)))}, "constraints[0].node"),
    ("direct hosts (list)", {"constraints": direct(names(64))},
     {"constraints": direct(names(65))}, "constraints[0].node"),
    ("direct host name (list)", {"constraints": direct([H127])},
     {"constraints": direct([H128])}, "constraints[0].node[0]"),
    ("addons entries", {"constraints": needs(names(64))}, {"constraints": needs(names(65))},
     "constraints[0].needs"),
    ("addon name", {"constraints": needs([N63])}, {"constraints": needs([N64])},
     "constraints[0].needs[0]"),
    ("volumes entries", {"volumes": [{"csi_driver": "c"}] * 64},
     {"volumes": [{"csi_driver": "c"}] * 65}, "volumes"),
    ("csi_driver name", {"volumes": [{"csi_driver": N63}]}, {"volumes": [{"csi_driver": N64}]},
     "volumes[0].csi_driver"),
]

# The same for node reports (PUT /api/v1/nodes/{id}); names that the
# cluster interns (addons, CSI drivers, architectures) are in
# NodeNameLimitsTest, each with a service of its own.
NODE_CASES = [
    ("host length", {"host": H127}, {"host": H128}, "host"),
    ("architecture length", {"architecture": N63}, {"architecture": N64}, "architecture"),
    ("virtualization entries", {"virtualization": ["container"] + names(63)},
     {"virtualization": ["container"] + names(64)}, "virtualization"),
    ("virtualization name", {"virtualization": ["container", N63]},
     {"virtualization": ["container", N64]}, "virtualization[1]"),
    ("vcpus max", {"vcpus": 65536}, {"vcpus": 65536.5}, "vcpus"),
    ("vcpus min", {"vcpus": 0}, {"vcpus": -0.5}, "vcpus"),
    ("memory max", {"memory": 1073741824}, {"memory": 1073741825}, "memory"),
    ("vgpus max", {"vgpus": 4096}, {"vgpus": 4097}, "vgpus"),
    ("vgpus min", {"vgpus": 0}, {"vgpus": -1}, "vgpus"),
    ("cpu_percent max", {"cpu_percent": 100}, {"cpu_percent": 100.5}, "cpu_percent"),
    ("cpu_percent min", {"cpu_percent": 0}, {"cpu_percent": -0.5}, "cpu_percent"),
    ("memory_percent max", {"memory_percent": 100}, {"memory_percent": 100.5}, "memory_percent"),
    ("memory_percent min", {"memory_percent": 0}, {"memory_percent": -0.5}, "memory_percent"),
    ("lat max", {"location": {"lat": 90, "lon": 0}}, {"location": {"lat": 90.5, "lon": 0}},
     "location.lat"),
    ("lat min", {"location": {"lat": -90, "lon": 0}}, {"location": {"lat": -90.5, "lon": 0}},
     "location.lat"),
    ("lon max", {"location": {"lat": 0, "lon": 180}}, {"location": {"lat": 0, "lon": 180.5}},
     "location.lon"),
    ("lon min", {"location": {"lat": 0, "lon": -180}}, {"location": {"lat": 0, "lon": -180.5}},
     "location.lon"),
]

NODE_DOC_MAX = 65536


class InputLimitsTest(SharedServiceTestCase):
    """One service for the table-driven cases."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_class_service("limits")

    def test_job_document_limits(self):
        for what, inside, outside, field in JOB_CASES:
            for route in ("/api/v1/schedule", "/api/v1/jobs"):
                base = job_doc("lim-" + what.replace(" ", "-").replace("(", "").replace(")", ""),
                               vcpus=0, memory=0)
                ok = dict(base, **inside)
                r = self.svc.request("POST", route, ok)
                self.assertIn(r.status, (200, 202), "%s inside, %s: %r" % (what, route, r))
                if route == "/api/v1/jobs":
                    self.svc.request("DELETE", "/api/v1/jobs/%s/0" % ok["_id"])
                bad = dict(base, **outside)
                bad["_id"] = "bad-" + base["_id"] if "_id" not in outside else outside["_id"]
                err = self.assertJSONError(self.svc.request("POST", route, bad), 400,
                                           msg="%s outside, %s" % (what, route))
                self.assertEqual(err["field"], field, "%s: %r" % (what, err))
                self.assertEqual(self.svc.request("GET", "/api/v1/jobs/%s/0" % bad["_id"]).status,
                                 404 if len(bad["_id"]) <= 63 else 400)
        # the same checks run on the drop-in routes, with the field under job.
        r = self.svc.request("POST", "/api/calculate/replicate",
                             {"job": job_doc("rl", vgpus=4097), "replicas": 1})
        self.assertEqual(self.assertJSONError(r, 400)["field"], "job.vgpus")
        r = self.svc.request("POST", "/api/calculate/deploy/dl/0", job_doc("dl", top_k=0))
        self.assertEqual(self.assertJSONError(r, 400)["field"], "top_k")

    def test_instance_and_replicas(self):
        # the instance in the body (native) and in the path (drop-in)
        r = self.svc.request("POST", "/api/v1/jobs", job_doc("inst", instance=1000000))
        self.assertEqual(r.status, 202, r)
        err = self.assertJSONError(
            self.svc.request("POST", "/api/v1/jobs", job_doc("inst", instance=1000001)), 400)
        self.assertEqual(err["field"], "instance")
        r = self.svc.request("POST", "/api/calculate/deploy/instp/1000000", job_doc("instp"))
        self.assertEqual((r.status, r.text), (200, "ok"))
        err = self.assertJSONError(
            self.svc.request("POST", "/api/calculate/deploy/instp/1000001", job_doc("instp")), 400)
        self.assertEqual(err["field"], "instance")
        # replicas: 1..1000
        r = self.svc.request("POST", "/api/calculate/replicate",
                             {"job": job_doc("reps", vcpus=0),
                              "replicas": 1000})
        self.assertEqual((r.status, r.text), (200, "ok"))
        for n in (0, 1001):
            err = self.assertJSONError(self.svc.request(
                "POST", "/api/calculate/replicate", {"job": job_doc("reps2"), "replicas": n}), 400)
            self.assertEqual(err["field"], "replicas")
        self.assertJSONError(self.svc.get("/api/v1/jobs/reps2/0"), 404)
        self.svc.wait_job_state("reps", 999, states=("placed", "unschedulable"))

    def test_ids_in_paths(self):
        r = self.svc.request("POST", "/api/calculate/deploy/%s/0" % N63, job_doc(N63))
        self.assertEqual((r.status, r.text), (200, "ok"))
        err = self.assertJSONError(
            self.svc.request("POST", "/api/calculate/deploy/%s/0" % N64, job_doc("x")), 400)
        self.assertEqual(err["field"], "job_id")
        err = self.assertJSONError(self.svc.get("/api/v1/jobs/%s/0" % N64), 400)
        self.assertEqual(err["field"], "job_id")
        r = self.svc.request("PUT", "/api/v1/nodes/" + N63, node_doc())
        self.assertEqual(r.status, 201, r)
        err = self.assertJSONError(self.svc.request("PUT", "/api/v1/nodes/" + N64, node_doc()), 400)
        self.assertEqual(err["field"], "node_id")
        self.assertEqual(self.svc.request("DELETE", "/api/v1/nodes/" + N63).status, 200)

    def test_node_report_limits(self):
        for i, (what, inside, outside, field) in enumerate(NODE_CASES):
            nid = "nl%d" % i
            r = self.svc.request("PUT", "/api/v1/nodes/" + nid, dict(node_doc(), **inside))
            self.assertEqual(r.status, 201, "%s inside: %r" % (what, r))
            before = self.svc.node(nid)
            err = self.assertJSONError(
                self.svc.request("PUT", "/api/v1/nodes/" + nid, dict(node_doc(), **outside)), 400,
                msg=what)
            self.assertEqual(err["field"], field, "%s: %r" % (what, err))
            after = self.svc.node(nid)
            after.pop("last_report")
            before.pop("last_report")
            self.assertEqual(after, before, "a rejected report changed the node (%s)" % what)
            self.svc.request("DELETE", "/api/v1/nodes/" + nid)

    def test_node_document_size(self):
        def report_of_size(size, key="pad"):
            d = node_doc(vcpus=1, memory=1)
            d[key] = ""
            fixed = len(json.dumps(d, separators=(",", ":")))
            d[key] = "p" * (size - fixed)
            self.assertEqual(len(json.dumps(d, separators=(",", ":"))), size)
            return json.dumps(d, separators=(",", ":"))
        # a first report of exactly the limit is stored; one byte more is not
        r = self.svc.request("PUT", "/api/v1/nodes/docmax", report_of_size(NODE_DOC_MAX))
        self.assertEqual(r.status, 201, r)
        err = self.assertJSONError(self.svc.request("PUT", "/api/v1/nodes/docover",
                                                    report_of_size(NODE_DOC_MAX + 1)), 400)
        self.assertEqual(err["field"], "body")
        self.assertIn(str(NODE_DOC_MAX), err["message"])
        self.assertJSONError(self.svc.get("/api/v1/nodes/docover"), 404)
        # fields are kept across reports: a small report that would grow
        # the stored document past the limit is refused and changes nothing
        err = self.assertJSONError(self.svc.request("PUT", "/api/v1/nodes/docmax",
                                                    {"extra": "e", "vcpus": 2}), 400)
        self.assertEqual(err["field"], "body")
        doc = self.svc.node("docmax")
        self.assertNotIn("extra", doc)
        self.assertEqual(doc["vcpus"], 1)
        self.assertEqual(doc["free"]["vcpus"], 1)
        # replacing a field by a smaller value is fine
        r = self.svc.request("PUT", "/api/v1/nodes/docmax", {"pad": "small", "vcpus": 2})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.svc.node("docmax")["vcpus"], 2)
        self.svc.request("DELETE", "/api/v1/nodes/docmax")


class NodeNameLimitsTest(E2ETestCase):
    """Names a node reports for addons and CSI drivers are interned for the
    life of the process, at most 64 distinct ones each, and at most 250
    architectures: each case on a fresh service."""

    def test_addon_and_csi_lists(self):
        svc = self.service(self.receiver())
        for key in ("supported_addons", "csi_drivers"):
            # 64 entries, the longest name among them: accepted
            inside = names(63, key[:3]) + [N63]
            r = svc.request("PUT", "/api/v1/nodes/a-" + key, node_doc(**{key: inside}))
            self.assertEqual(r.status, 201, (key, r))
            for bad, field in ((names(65, key[:3]), key), ([N64], key + "[0]")):
                err = self.assertJSONError(
                    svc.request("PUT", "/api/v1/nodes/b-" + key, node_doc(**{key: bad})), 400)
                self.assertEqual(err["field"], field, err)
            # the cluster now knows 64 names: a 65th distinct one is refused,
            # known ones are still fine
            err = self.assertJSONError(
                svc.request("PUT", "/api/v1/nodes/c-" + key, node_doc(**{key: ["fresh"]})), 400)
            self.assertEqual(err["field"], key, err)
            self.assertIn("distinct", err["message"])
            r = svc.request("PUT", "/api/v1/nodes/c-" + key, node_doc(**{key: inside[:3]}))
            self.assertEqual(r.status, 201, r)
        # csi_drivers also as objects
        r = svc.request("PUT", "/api/v1/nodes/d", node_doc(csi_drivers=[
            {"csi_driver_name": N63}]))
        self.assertEqual(r.status, 201, r)
        err = self.assertJSONError(svc.request("PUT", "/api/v1/nodes/d", node_doc(csi_drivers=[
            {"csi_driver_name": N64}])), 400)
        self.assertEqual(err["field"], "csi_drivers[0].csi_driver_name")

    def test_distinct_architectures(self):
        svc = self.service(self.receiver())
        for i in range(250):
            r = svc.request("PUT", "/api/v1/nodes/arch%d" % i, node_doc(arch="arch%d" % i))
            self.assertEqual(r.status, 201, (i, r))
        err = self.assertJSONError(
            svc.request("PUT", "/api/v1/nodes/arch250", node_doc(arch="arch250")), 400)
        self.assertEqual(err["field"], "architecture")
        self.assertIn("distinct", err["message"])
        self.assertJSONError(svc.get("/api/v1/nodes/arch250"), 404)
        r = svc.request("PUT", "/api/v1/nodes/arch250", node_doc(arch="arch7"))
        self.assertEqual(r.status, 201, r)


if __name__ == "__main__":
    unittest.main()
