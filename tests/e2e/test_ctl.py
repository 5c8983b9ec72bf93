"""cluster-scheduler-ctl end to end: the client against the real service
(nodes, submit with --wait, job, dry-run, decisions, tables and --json),
its exit codes (0 ok, 1 server error or unreachable, 2 usage), and against
a stand-in server: the bearer token it sends, a server that rejects
?explain=1 (asked again without), and one that explains per node."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import HOST, E2ETestCase, cs_bin, free_port, job_doc, node_doc

RUN_TIMEOUT = 60


def ctl_bin():
    p = os.environ.get("CS_CTL")
    if p:
        return p
    return os.path.join(os.path.dirname(os.path.abspath(cs_bin())), "cluster-scheduler-ctl")


class Ran:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "<rc=%d\nstdout:\n%s\nstderr:\n%s>" % (self.rc, self.out[-3000:], self.err[-2000:])

    def lines(self):
        return self.out.splitlines()


class CtlCase(E2ETestCase):
    def ctl(self, *args, target=None, env=None, stdin=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if target is not None:
            e["SCHEDULER_TARGET"] = target
        e.update(env or {})
        p = subprocess.run([ctl_bin()] + [str(a) for a in args], env=e, input=stdin,
                           capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=self.workdir)
        r = Ran(p)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            self.assertNotIn(marker, r.err, r)
        return r

    def write(self, name, doc):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path


class CtlServiceTest(CtlCase):
    def setUp(self):
        super().setUp()
        self.recv = self.receiver()
        self.svc = self.service(self.recv, workers=1)
        self.target = "%s:%d" % (HOST, self.svc.port)
        self.svc.put_node("n-a", node_doc(vcpus=4, memory=8192, host="edge-a", cpu_percent=10,
                                          memory_percent=20), expect=201)
        self.svc.put_node("n-b", node_doc(vcpus=2, memory=2048, host="edge-b", arch="arm64",
                                          virt=("container", "unikernel")), expect=201)

    def test_nodes_table_and_json(self):
        r = self.ctl("nodes", target=self.target)
        self.assertEqual(r.rc, 0, r)
        lines = r.lines()
        self.assertEqual(lines[0].split()[:4], ["NODE", "HOST", "STATE", "ARCH"], r)
        self.assertEqual([ln.split()[0] for ln in lines[1:3]], ["n-a", "n-b"], r)
        a = lines[1].split()
        self.assertEqual(a[1:4], ["edge-a", "active", "amd64"], r)
        self.assertIn("3.6/4", a)  # free after the reported 10 % use, of 4
        self.assertIn("10%/20%", a)
        self.assertIn("container,unikernel", lines[2])
        self.assertEqual(lines[-1], "2 nodes, 2 active")
        # columns line up: every row as long as its last cell allows, the
        # STATE column starts at the same offset everywhere
        col = lines[0].index("STATE")
        self.assertTrue(all(ln[col:col + 6] == "active" for ln in lines[1:3]), r)

        j = self.ctl("--json", "nodes", target=self.target)
        self.assertEqual(j.rc, 0, j)
        doc = json.loads(j.out)
        self.assertEqual(sorted(n["_id"] for n in doc["nodes"]), ["n-a", "n-b"])
        self.assertEqual(doc, self.svc.get_json("/api/v1/nodes"))

        one = self.ctl("node", "n-b", target=self.target)
        self.assertEqual(one.rc, 0, one)
        self.assertIn("host             edge-b", one.out)

    def test_submit_wait_job_and_decisions(self):
        path = self.write("job.json", job_doc("cj1", vcpus=1.5, memory=512))
        r = self.ctl("submit", path, "--wait", 20, target=self.target)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state      placed", r.out)
        self.assertIn("node       n-a", r.out)
        self.assertIn("why        2/2 nodes qualify", r.out)
        chosen = [ln for ln in r.lines() if ln.endswith("<- chosen")]
        self.assertEqual(len(chosen), 1, r)
        self.assertEqual(chosen[0].split()[:2], ["1", "n-a"])

        r = self.ctl("job", "cj1", target=self.target)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("node       n-a", r.out)
        self.assertIn("prioritized list (best first):", r.out)
        j = self.ctl("job", "cj1", "0", "--json", target=self.target)
        self.assertEqual(j.rc, 0, j)
        doc = json.loads(j.out)
        self.assertEqual((doc["state"], doc["node_id"]), ("placed", "n-a"))
        self.assertEqual(doc["candidates"][0]["node_id"], "n-a")

        # known already: 0, says so
        again = self.ctl("submit", path, target=self.target)
        self.assertEqual(again.rc, 0, again)
        self.assertIn("cj1/0 was known already: placed on n-a", again.out)

        # a second instance from standard input, without waiting
        q = self.ctl("submit", "-", "--instance", 3, target=self.target,
                     stdin=json.dumps(job_doc("cj1", vcpus=0.5)))
        self.assertEqual(q.rc, 0, q)
        self.assertEqual(q.out.strip(), "queued cj1/3")
        self.svc.wait_job_state("cj1", 3)

        d = self.ctl("decisions", target=self.target)
        self.assertEqual(d.rc, 0, d)
        self.assertEqual(d.lines()[0].split()[:4], ["TIME", "JOB", "STATE", "NODE"])
        self.assertEqual([ln.split()[1] for ln in d.lines()[1:3]], ["cj1/3", "cj1/0"], d)
        self.assertIn("n-a (100)", d.out)
        d1 = self.ctl("decisions", "--limit", 1, "--json", target=self.target)
        self.assertEqual(len(json.loads(d1.out)["decisions"]), 1, d1)

    def test_dry_run(self):
        path = self.write("probe.json", job_doc("probe", vcpus=1, virt="unikernel",
                                                arch=["arm64"]))
        r = self.ctl("dry-run", path, target=self.target)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.lines()[0], "1/2 nodes qualify: 1 no technology unikernel")
        self.assertEqual(r.lines()[3].split(), ["1", "n-b", "100"], r)
        self.assertIn("left out: technology 1", r.out)
        j = self.ctl("--json", "schedule", path, target=self.target)
        self.assertEqual(j.rc, 0, j)
        doc = json.loads(j.out)
        self.assertEqual((doc["nodes"], doc["qualified"]), (2, 1))
        # a dry run reserves nothing
        self.assertEqual(self.svc.node("n-b")["reservations"], 0)

    def test_exit_codes(self):
        t = self.target
        self.assertEqual(self.ctl("--help").rc, 0)
        self.assertIn("Usage: cluster-scheduler-ctl", self.ctl("--help").out)
        for args in ((), ("bogus",), ("job",), ("job", "a", "b"), ("nodes", "extra"),
                     ("submit",), ("submit", "/nonexistent/job.json"),
                     ("submit", self.write("bad.json", "{not json")),
                     ("submit", self.write("list.json", "[1]")),
                     ("submit", "x.json", "--wait"), ("decisions", "--limit", "0"),
                     ("--timeout", "zero", "nodes"), ("--target",)):
            r = self.ctl(*args, target=t)
            self.assertEqual(r.rc, 2, "%s: %r" % (args, r))
            self.assertTrue(r.err.strip(), args)
        r = self.ctl("nodes", target="not a target")
        self.assertEqual(r.rc, 2, r)

        r = self.ctl("job", "nope", target=t)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("HTTP 404: job_id: unknown job instance", r.err)
        j = self.ctl("--json", "job", "nope", target=t)
        self.assertEqual(json.loads(j.out)["error"]["field"], "job_id")

        bad = self.write("neg.json", job_doc("neg", vcpus=-1))
        r = self.ctl("submit", bad, target=t)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("HTTP 400: vcpus", r.err)
        r = self.ctl("dry-run", self.write("nov.json", {"vcpus": 1}), target=t)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("HTTP 400: virtualization", r.err)

        # nobody listening: 1; the flag wins over the environment
        down = "%s:%d" % (HOST, free_port())
        r = self.ctl("nodes", target=down, env={"SCHEDULER_TIMEOUT": "2"})
        self.assertEqual(r.rc, 1, r)
        self.assertIn("Couldn't connect", r.err)
        self.assertEqual(self.ctl("--target", t, "nodes", target=down).rc, 0)
        self.assertEqual(self.ctl("nodes", target="http://" + t + "/").rc, 0)


# --------------------------------------------------------------------------
# A stand-in server for what the real one may or may not do.


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.seen.append((self.path, self.headers.get("Authorization")))
        status, doc = srv.answer(self.path, self.headers)
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


STATUS = {"job_id": "j", "instance": 0, "state": "placed", "node_id": "n2",
          "received_at": 1700000000.0, "decided_at": 1700000000.004, "status": "NODE_SCHEDULED",
          "candidates": [{"node_id": "n2", "score": 90.5}, {"node_id": "n1", "score": 12}],
          "reasons": {"insufficient_memory": 1}, "message": "2/3 nodes qualify: 1 insufficient memory"}


class CtlStubTest(CtlCase):
    def stub(self, answer):
        srv = ThreadingHTTPServer((HOST, free_port()), _Stub)
        srv.daemon_threads = True
        srv.seen, srv.lock, srv.answer = [], threading.Lock(), answer
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()

        def stop():
            srv.shutdown()
            srv.server_close()
            t.join(5)
        self.addCleanup(stop)
        return srv, "%s:%d" % (HOST, srv.server_address[1])

    def test_token_and_explain_absent(self):
        def answer(path, headers):
            if headers.get("Authorization") != "Bearer s3cret":
                return 401, {"error": {"field": "authorization", "message": "token required"}}
            if "explain" in path:
                return 400, {"error": {"field": "explain", "message": "unknown parameter"}}
            return 200, STATUS
        srv, target = self.stub(answer)
        r = self.ctl("job", "j", target=target)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("HTTP 401: authorization: token required", r.err)
        self.assertIn("--token", r.err)
        r = self.ctl("job", "j", target=target, env={"SCHEDULER_TOKEN": "s3cret"})
        self.assertEqual(r.rc, 0, r)
        self.assertIn("node       n2", r.out)
        self.assertIn("left out: insufficient_memory 1", r.out)
        self.assertIn("no per-node explanation", r.out)
        r2 = self.ctl("--token", "s3cret", "job", "j", target=target,
                      env={"SCHEDULER_TOKEN": "wrong"})
        self.assertEqual(r2.rc, 0, r2)
        paths = [p for p, _ in srv.seen]
        self.assertEqual(paths[-2:], ["/api/v1/jobs/j/0?explain=1", "/api/v1/jobs/j/0"])
        self.assertEqual(srv.seen[-1][1], "Bearer s3cret")

    def test_explained_and_escaped(self):
        explain = [{"node_id": "n1", "qualified": True, "score": 12},
                   {"node_id": "n3", "qualified": False, "reason": "insufficient_memory"}]

        def answer(path, headers):
            return 200, dict(STATUS, job_id="a b/c", explain=explain)
        srv, target = self.stub(answer)
        r = self.ctl("job", "a b/c", "7", target=target)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(srv.seen[-1][0], "/api/v1/jobs/a%20b%2Fc/7?explain=1")
        self.assertNotIn("no per-node explanation", r.out)
        i = r.lines().index("explain:")
        self.assertEqual(r.lines()[i + 1].split(), ["node_id", "qualified", "score", "reason"])
        self.assertEqual(r.lines()[i + 3].split(), ["n3", "no", "insufficient_memory"])
        self.assertIsNone(srv.seen[-1][1])  # no token set, no header
