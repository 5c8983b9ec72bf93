"""Bad input never crashes, hangs or corrupts anything: each gets the right
status and a JSON body {"error": {"field": .., "message": ..}}, and the
service still answers /status afterwards."""

import json
import select
import socket
import time
import unittest

from harness import HOST, SharedServiceTestCase, job_doc, node_doc

BIG = 2 * 1024 * 1024 + 17  # more than the body limit


def raw_exchange(port, data, timeout=10.0):
    """Sends raw bytes, returns everything read until the server closes or
    a full response (by Content-Length) arrived."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length" and len(body) >= int(v.strip()):
                        return buf
        return buf


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def send_big_body(port, method, path, size, timeout=20.0):
    """Sends a request whose body is `size` bytes, stopping as soon as the
    server answers (it may answer 413 before reading the body). Returns the
    raw response bytes."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        head = ("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (method, path, HOST, size)).encode()
        s.sendall(head)
        chunk = b"[" + b"1," * 32767 + b"1"
        chunk = chunk[:65536]
        sent = 0
        buf = b""
        deadline = time.monotonic() + timeout
        s.setblocking(False)
        while time.monotonic() < deadline:
            want_write = sent < size
            r, w, _ = select.select([s], [s] if want_write else [], [], 0.5)
            if r:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    break
                buf += data
                head_, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    cl = None
                    for line in head_.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            cl = int(v.strip())
                    if cl is not None and len(body) >= cl:
                        break
                continue
            if w:
                piece = chunk[:min(len(chunk), size - sent)]
                try:
                    sent += s.send(piece)
                except (BrokenPipeError, ConnectionResetError):
                    # the server closed early; read what it answered
                    s.setblocking(True)
                    s.settimeout(2)
                    try:
                        while True:
                            d = s.recv(65536)
                            if not d:
                                break
                            buf += d
                    except OSError:
                        pass
                    break
                except BlockingIOError:
                    pass
        return buf
    finally:
        s.close()


class BadInputTest(SharedServiceTestCase):
    """One service for the whole class keeps this file fast; every test
    checks that it is still alive at the end."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_class_service("badinput", settings={"CONN_TIMEOUT": CONN_TIMEOUT})
        cls.svc.put_node("good", node_doc(vcpus=4, memory=4096, host="good-host"))

    def req(self, method, path, body=None, headers=None):
        return self.svc.request(method, path, body, headers)

    # ---- malformed JSON -------------------------------------------------
    def test_malformed_json(self):
        bad = ['{"_id": "x", ', "not json", "{'_id': 'x'}", '{"_id": "x"} trailing',
               "", "\x00\x01", '{"_id": "x", "vcpus": 1,}', "[" * 100000,
               '{"a":' * 50000 + "1" + "}" * 50000]
        routes = [("POST", "/api/v1/jobs"), ("POST", "/api/calculate/deploy/m1/0"),
                  ("PUT", "/api/v1/nodes/m1"), ("POST", "/api/v1/schedule"),
                  ("POST", "/api/calculate/replicate")]
        for method, path in routes:
            for b in bad:
                r = self.req(method, path, b)
                self.assertIn(r.status, (400, 413), (method, path, b[:30], r))
                self.assertJSONError(r, r.status, msg="%s %s %r" % (method, path, b[:30]))
        self.assertEqual(self.req("GET", "/api/v1/nodes/m1").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/jobs/m1/0").status, 404)

    def test_body_not_an_object(self):
        for b in ("[]", "1", '"s"', "null", "true"):
            self.assertJSONError(self.req("POST", "/api/v1/jobs", b), 400, msg=b)
            self.assertJSONError(self.req("PUT", "/api/v1/nodes/m2", b), 400, msg=b)
            self.assertJSONError(self.req("POST", "/api/calculate/deploy/m2/0", b), 400, msg=b)

    def test_invalid_utf8(self):
        r = self.req("POST", "/api/v1/jobs", b'{"_id": "u\xff\xfe", "virtualization": "container"}')
        self.assertJSONError(r, 400)

    # ---- wrong types ----------------------------------------------------
    def test_wrong_types_job(self):
        cases = [
            ({"vcpus": "four"}, "vcpus"),
            ({"vcpus": True}, "vcpus"),
            ({"vcpus": {}}, "vcpus"),
            ({"vcpus": [1]}, "vcpus"),
            ({"memory": "512MB"}, "memory"),
            ({"memory": {"mb": 1}}, "memory"),
            ({"vgpus": 1.5}, "vgpus"),
            ({"virtualization": 5}, "virtualization"),
            ({"virtualization": "hypervisor-x"}, "virtualization"),
            ({"arch": 5}, "arch"),
            ({"arch": [5]}, "arch"),
            ({"constraints": {"type": "direct"}}, "constraints"),
            ({"constraints": [{"type": "teleport"}]}, "constraints"),
            ({"constraints": ["direct"]}, "constraints"),
            ({"constraints": [{"type": "direct", "node": 7}]}, ("constraints", "node")),
            ({"constraints": [{"type": "addons", "needs": 5}]}, ("constraints", "needs")),
            ({"volumes": "v"}, "volumes"),
            ({"strategy": "random"}, "strategy"),
            ({"top_k": 0}, "top_k"),
            ({"top_k": "3"}, "top_k"),
            ({"instance": -1}, "instance"),
            ({"instance": 1.5}, "instance"),
            ({"instance": "0"}, "instance"),
            ({"_id": 17}, "_id"),
            ({"_id": ""}, "_id"),
            ({"_id": "a/b"}, "_id"),
        ]
        for patch, field in cases:
            job = job_doc("wt", **{k: v for k, v in patch.items() if k != "_id"})
            if "_id" in patch:
                job["_id"] = patch["_id"]
            r = self.req("POST", "/api/v1/jobs", job)
            self.assertJSONError(r, 400, field, msg=str(patch))
            if "instance" not in patch:  # a dry run has no instance
                r = self.req("POST", "/api/v1/schedule", job)
                self.assertJSONError(r, 400, field, msg="schedule " + str(patch))
            if "_id" not in patch and "instance" not in patch:
                r = self.req("POST", "/api/calculate/deploy/wt/0", job)
                self.assertJSONError(r, 400, field, msg="deploy " + str(patch))
        self.assertEqual(self.req("GET", "/api/v1/jobs/wt/0").status, 404)
        self.assertEqual(self.recv.accepted(job="wt"), [])

    def test_missing_required_job_fields(self):
        r = self.req("POST", "/api/v1/jobs", {"virtualization": "container"})
        self.assertJSONError(r, 400, "_id")
        r = self.req("POST", "/api/v1/jobs", {"_id": "noVirt", "vcpus": 1})
        self.assertJSONError(r, 400, "virtualization")
        r = self.req("POST", "/api/v1/jobs", {"_id": "uk", "virtualization": "unikernel"})
        self.assertJSONError(r, 400, "arch")

    def test_wrong_types_node(self):
        cases = [
            ({"vcpus": "four"}, "vcpus"),
            ({"memory": "lots"}, "memory"),
            ({"vgpus": 0.5}, "vgpus"),
            ({"virtualization": {"container": 1}}, "virtualization"),
            ({"virtualization": [1]}, "virtualization"),
            ({"host": 5}, "host"),
            ({"host": ""}, "host"),
            ({"architecture": ["amd64"]}, "architecture"),
            ({"cpu_percent": 101}, "cpu_percent"),
            ({"cpu_percent": -0.5}, "cpu_percent"),
            ({"memory_percent": "50%"}, "memory_percent"),
            ({"supported_addons": 1}, "supported_addons"),
            ({"supported_addons": [["a"]]}, "supported_addons"),
            ({"csi_drivers": [5]}, "csi_drivers"),
            ({"csi_drivers": [{"name": "x"}]}, "csi_drivers"),
            ({"location": {"lat": 91, "lon": 0}}, "location"),
            ({"location": {"lat": 0, "lon": 181}}, "location"),
            ({"location": [1, 2]}, "location"),
        ]
        for patch, field in cases:
            # a first report with a bad field, and the same on a known node
            doc = node_doc()
            doc.update(patch)
            r = self.req("PUT", "/api/v1/nodes/wt-new", doc)
            self.assertJSONError(r, 400, field, msg="new " + str(patch))
            r = self.req("PUT", "/api/v1/nodes/good", patch)
            self.assertJSONError(r, 400, field, msg="update " + str(patch))
        self.assertEqual(self.req("GET", "/api/v1/nodes/wt-new").status, 404)
        # the known node is unchanged by the rejected reports
        n = self.svc.node("good")
        self.assertEqual((n["vcpus"], n["memory"], n["host"]), (4, 4096, "good-host"))

    # ---- numbers --------------------------------------------------------
    def test_bad_numbers_raw(self):
        bodies = [
            '{"_id": "num", "virtualization": "container", "vcpus": 1e400}',
            '{"_id": "num", "virtualization": "container", "vcpus": -1}',
            '{"_id": "num", "virtualization": "container", "vcpus": -1e-9}',
            '{"_id": "num", "virtualization": "container", "vcpus": NaN}',
            '{"_id": "num", "virtualization": "container", "vcpus": Infinity}',
            '{"_id": "num", "virtualization": "container", "vcpus": -Infinity}',
            '{"_id": "num", "virtualization": "container", "vcpus": 1e300}',
            '{"_id": "num", "virtualization": "container", "vcpus": 65537}',
            '{"_id": "num", "virtualization": "container", "memory": 1073741825}',
            '{"_id": "num", "virtualization": "container", "memory": 99999999999999999999999}',
            '{"_id": "num", "virtualization": "container", "memory": -512}',
            '{"_id": "num", "virtualization": "container", "vgpus": 4097}',
            '{"_id": "num", "virtualization": "container", "vgpus": -1}',
            '{"_id": "num", "virtualization": "container", "top_k": 100001}',
            '{"_id": "num", "virtualization": "container", "instance": 1e400}',
            '{"_id": "num", "virtualization": "container", "instance": 18446744073709551616}',
            '{"_id": "num", "virtualization": "container", "vcpus": 0x10}',
            '{"_id": "num", "virtualization": "container", "vcpus": 01}',
        ]
        for b in bodies:
            for path in ("/api/v1/jobs", "/api/v1/schedule", "/api/calculate/deploy/num/0"):
                r = self.req("POST", path, b)
                self.assertJSONError(r, 400, msg=path + " " + b)
        for b in ('{"vcpus": -1}', '{"vcpus": 1e400}', '{"memory": -1}', '{"vcpus": NaN}',
                  '{"memory": 1e300}', '{"vgpus": 1e10}', '{"cpu_percent": 1e400}'):
            r = self.req("PUT", "/api/v1/nodes/good", b)
            self.assertJSONError(r, 400, msg=b)
        # the clearly attributable ones name their field
        r = self.req("POST", "/api/v1/jobs", '{"_id": "num", "virtualization": "container", '
                                             '"vcpus": -1}')
        self.assertJSONError(r, 400, "vcpus")
        r = self.req("POST", "/api/v1/jobs", '{"_id": "num", "virtualization": "container", '
                                             '"memory": 1073741825}')
        self.assertJSONError(r, 400, "memory")
        self.assertEqual(self.req("GET", "/api/v1/jobs/num/0").status, 404)
        self.assertEqual(self.svc.node("good")["vcpus"], 4)

    def test_bad_replicate(self):
        job = job_doc("rp")
        cases = [
            ({"job": job, "replicas": 0}, "replicas"),
            ({"job": job, "replicas": 1001}, "replicas"),
            ({"job": job, "replicas": -3}, "replicas"),
            ({"job": job, "replicas": "3"}, "replicas"),
            ({"job": job, "replicas": 2.5}, "replicas"),
            ({"job": job}, "replicas"),
            ({"replicas": 2}, "job"),
            ({"job": "rp", "replicas": 2}, "job"),
            ({"job": {"virtualization": "container"}, "replicas": 2}, "_id"),
            ({"job": job_doc("rp", vcpus=-1), "replicas": 2}, "vcpus"),
        ]
        for body, field in cases:
            r = self.req("POST", "/api/calculate/replicate", body)
            self.assertJSONError(r, 400, field, msg=str(body))
        r = self.req("POST", "/api/calculate/replicate", '{"job": {"_id": "rp"}, "replicas": 1e400}')
        self.assertJSONError(r, 400)
        self.assertEqual(self.req("GET", "/api/v1/jobs/rp/0").status, 404)

    # ---- over-long ids and strings --------------------------------------
    def test_over_long_ids_and_strings(self):
        long_id = "x" * 64
        ok_id = "y" * 63
        r = self.req("POST", "/api/v1/jobs", job_doc(long_id))
        self.assertJSONError(r, 400, "_id")
        r = self.req("POST", "/api/calculate/deploy/%s/0" % long_id, job_doc(long_id))
        self.assertJSONError(r, 400)
        r = self.req("PUT", "/api/v1/nodes/" + long_id, node_doc())
        self.assertJSONError(r, 400)
        r = self.req("GET", "/api/v1/jobs/%s/0" % long_id)
        self.assertIn(r.status, (400, 404))
        self.assertJSONError(r, r.status)
        r = self.req("PUT", "/api/v1/nodes/longhost", node_doc(host="h" * 128))
        self.assertJSONError(r, 400, "host")
        r = self.req("PUT", "/api/v1/nodes/longarch", node_doc(arch="a" * 64))
        self.assertJSONError(r, 400, "architecture")
        r = self.req("PUT", "/api/v1/nodes/manyaddons",
                     node_doc(supported_addons=["a%d" % i for i in range(65)]))
        self.assertJSONError(r, 400, "supported_addons")
        r = self.req("POST", "/api/v1/jobs", job_doc("la", virt="unikernel", arch=["z" * 64]))
        self.assertJSONError(r, 400, "arch")
        r = self.req("POST", "/api/v1/jobs", job_doc("ld", constraints=[
            {"type": "direct", "node": "h" * 200}]))
        self.assertJSONError(r, 400)
        r = self.req("POST", "/api/v1/jobs", job_doc("lv", virt="container" * 1000))
        self.assertJSONError(r, 400, "virtualization")
        # the longest allowed id works
        r = self.req("PUT", "/api/v1/nodes/" + ok_id, node_doc(vcpus=1, memory=1))
        self.assertIn(r.status, (200, 201), r)
        self.assertEqual(self.svc.node(ok_id)["_id"], ok_id)
        self.assertEqual(self.req("DELETE", "/api/v1/nodes/" + ok_id).status, 200)
        r = self.req("POST", "/api/v1/jobs", job_doc(ok_id, vcpus=0, memory=0))
        self.assertEqual(r.status, 202, r)
        self.svc.wait_job_state(ok_id, 0, states=("placed", "unschedulable"))
        self.req("DELETE", "/api/v1/jobs/%s/0" % ok_id)

    def test_bad_paths(self):
        for path in ("/api/calculate/deploy/j1/abc", "/api/calculate/deploy/j1/-1",
                     "/api/calculate/deploy/j1/1.5", "/api/calculate/deploy/j1/99999999999",
                     "/api/calculate/deploy/j1/"):
            r = self.req("POST", path, job_doc("j1"))
            self.assertIn(r.status, (400, 404), (path, r))
            self.assertJSONError(r, r.status, msg=path)
        for path in ("/api/v1/jobs/j1/abc", "/api/v1/jobs/j1/-1"):
            r = self.req("GET", path)
            self.assertIn(r.status, (400, 404), (path, r))
            self.assertJSONError(r, r.status, msg=path)

    # ---- sizes ----------------------------------------------------------
    def test_oversized_body_413(self):
        for method, path in (("POST", "/api/v1/jobs"), ("PUT", "/api/v1/nodes/big"),
                             ("POST", "/api/calculate/deploy/big/0"),
                             ("POST", "/api/calculate/replicate"),
                             ("POST", "/api/v1/schedule")):
            raw = send_big_body(self.svc.port, method, path, BIG)
            self.assertEqual(status_of(raw), 413, (method, path, raw[:300]))
            body = raw.partition(b"\r\n\r\n")[2]
            self.assertIn(b'"error"', body, raw[:300])
        # a well-formed JSON document that is just too big
        filler = "z" * BIG
        raw = send_big_body(self.svc.port, "POST", "/api/v1/jobs", BIG)
        self.assertEqual(status_of(raw), 413)
        r = None
        try:
            r = self.req("POST", "/api/v1/jobs", '{"_id": "bigdoc", "virtualization": "container",'
                                                 ' "pad": "%s"}' % filler)
        except OSError:
            pass  # the server may close before reading it all
        if r is not None:
            self.assertJSONError(r, 413)
        self.assertEqual(self.req("GET", "/api/v1/jobs/bigdoc/0").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/nodes/big").status, 404)

    def test_body_limit_boundary(self):
        # MAX_BODY defaults to 1 MiB: exactly that is read, one byte more is 413
        limit = 1048576

        def body_of(size, jid):
            head = '{"_id": "%s", "virtualization": "container", "vcpus": 0, "pad": "' % jid
            tail = '"}'
            return head + "p" * (size - len(head) - len(tail)) + tail
        b = body_of(limit, "atlimit")
        self.assertEqual(len(b), limit)
        r = self.req("POST", "/api/v1/jobs", b)
        self.assertEqual(r.status, 202, r)
        raw = send_big_body(self.svc.port, "POST", "/api/v1/jobs", limit + 1)
        self.assertEqual(status_of(raw), 413, raw[:300])
        self.svc.wait_job_state("atlimit", 0)
        [res] = self.recv.wait_for(1, job="atlimit")
        self.assertEqual(res.body["job"], json.loads(b), "carried through whole")
        self.req("DELETE", "/api/v1/jobs/atlimit/0")

    def test_chunked_oversized_body(self):
        # no Content-Length: the limit still applies while reading
        with socket.create_connection((HOST, self.svc.port), timeout=20) as s:
            s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/json\r\n\r\n")
            piece = b"a" * 65536
            buf = b""
            try:
                for _ in range(BIG // len(piece) + 2):
                    s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                s.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.settimeout(10)
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                    if b"\r\n\r\n" in buf and b"}" in buf.partition(b"\r\n\r\n")[2]:
                        break
            except OSError:
                pass
        st = status_of(buf)
        self.assertIn(st, (400, 411, 413, None), buf[:300])

    def test_many_headers_and_long_url(self):
        # the server may answer 4xx or just close the connection; it must
        # not crash or answer 5xx
        for method, path, headers in (
                ("GET", "/status", {"X-H%d" % i: "v" * 100 for i in range(200)}),
                ("GET", "/api/v1/nodes/" + "q" * 20000, None),
                ("GET", "/status", {"X-Big": "b" * 100000})):
            try:
                r = self.req(method, path, headers=headers)
            except OSError:
                continue
            self.assertTrue(r.status == 200 or 400 <= r.status < 500, (path[:40], r))

    # ---- routes and methods ---------------------------------------------
    def test_unknown_routes_404(self):
        for method, path in (("GET", "/nope"), ("GET", "/api"), ("GET", "/api/v1"),
                             ("GET", "/api/v1/whatever"), ("POST", "/api/calculate/nothing"),
                             ("GET", "/api/v1/nodes/good/extra"), ("GET", "/api/v2/nodes"),
                             ("GET", "/api/v1/jobs/a/0/b")):
            r = self.req(method, path, {} if method == "POST" else None)
            self.assertJSONError(r, 404, msg="%s %s" % (method, path))
        for path in ("/api/v1/nodes/nobody", "/api/v1/jobs/nobody/0"):
            self.assertJSONError(self.req("GET", path), 404, msg=path)
            self.assertJSONError(self.req("DELETE", path), 404, msg=path)

    def test_wrong_method_405(self):
        cases = [("DELETE", "/status"), ("POST", "/status"), ("PUT", "/"),
                 ("DELETE", "/api/calculate/deploy/x/0"), ("PUT", "/api/calculate/replicate"),
                 ("POST", "/api/v1/nodes/good"), ("PATCH", "/api/v1/nodes/good"),
                 ("DELETE", "/api/v1/nodes"), ("PUT", "/api/v1/jobs"),
                 ("GET", "/api/v1/jobs"), ("PUT", "/api/v1/jobs/a/0"),
                 ("GET", "/api/v1/schedule"), ("POST", "/metrics")]
        for method, path in cases:
            r = self.req(method, path, None)
            self.assertJSONError(r, 405, msg="%s %s" % (method, path))
            self.assertIn("allow", r.headers, "405 needs an Allow header: %s %s" % (method, path))
            self.assertNotIn(method, [m.strip() for m in r.headers["allow"].split(",")])
        self.assertEqual(self.svc.node("good")["vcpus"], 4)

    def test_unknown_content_type_still_json_checked(self):
        r = self.req("POST", "/api/v1/jobs", "garbage", headers={"Content-Type": "text/plain"})
        self.assertIn(r.status, (400, 415), r)
        self.assertJSONError(r, r.status)

    # ---- slow and stalled clients ---------------------------------------
    def test_stalled_clients(self):
        socks = []
        try:
            # half a request line, half the headers, half a body
            partials = [b"POST /api/v1/jobs HTT",
                        b"GET /status HTTP/1.1\r\nHost: x\r\n",
                        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"_id\"",
                        b"PUT /api/v1/nodes/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
                        b""]
            for i in range(16):
                s = socket.create_connection((HOST, self.svc.port), timeout=5)
                s.sendall(partials[i % len(partials)])
                socks.append(s)
            # the server keeps answering others, promptly
            for _ in range(10):
                t0 = time.monotonic()
                r = self.svc.request("GET", "/status", timeout=5)
                self.assertEqual((r.status, r.text.strip()), (200, "ok"))
                self.assertLess(time.monotonic() - t0, 2.0)
            r = self.req("PUT", "/api/v1/nodes/other", node_doc())
            self.assertIn(r.status, (200, 201))
            # and eventually closes the stalled connections (bounded)
            deadline = time.monotonic() + STALL_CLOSE_TIMEOUT
            open_socks = list(socks)
            while open_socks and time.monotonic() < deadline:
                rl, _, _ = select.select(open_socks, [], [], 0.5)
                for s in rl:
                    try:
                        d = s.recv(65536)
                    except OSError:
                        d = b""
                    if not d:
                        open_socks.remove(s)
                    # a 408/400 answer before the close is fine; keep reading
            self.assertEqual(open_socks, [], "%d stalled connections still open after %d s"
                             % (len(open_socks), STALL_CLOSE_TIMEOUT))
            self.assertEqual(self.req("GET", "/api/v1/nodes/stall").status, 404)
        finally:
            for s in socks:
                s.close()

    def test_slow_but_complete_client_is_served(self):
        body = b'{"_id": "slow", "virtualization": "container", "vcpus": 0.5}'
        req = (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
        with socket.create_connection((HOST, self.svc.port), timeout=10) as s:
            for i in range(0, len(req), 16):
                s.sendall(req[i:i + 16])
                time.sleep(0.02)
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        self.assertEqual(status_of(buf), 202, buf)
        self.svc.wait_job_state("slow", 0)
        self.req("DELETE", "/api/v1/jobs/slow/0")

    def test_garbage_request_line(self):
        for data in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 50,
                     b"HELLO\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"POST /api/v1/jobs HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                     b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"):
            raw_exchange(self.svc.port, data, timeout=5)
        self.assertAlive(self.svc)


# the HTTP server's idle/stalled connection timeout (CONN_TIMEOUT, seconds)
# and how long a stalled connection may stay open at most
CONN_TIMEOUT = 2
STALL_CLOSE_TIMEOUT = CONN_TIMEOUT + 10


if __name__ == "__main__":
    unittest.main()
