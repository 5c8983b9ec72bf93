"""The dashboard (GET /ui) end to end: the real binary with registered nodes,
the page driven in headless Chromium (Debian's /usr/bin/chromium through
playwright-core, tests/ui/ui_check.js), a full-page screenshot kept as an
artifact (<build dir>/artifacts/ui.png); and which process serves it in
Redis mode.

Needs chromium and node (scripts/deps.sh installs them); playwright-core is
installed into tests/ui/node_modules from the pinned package-lock.json
(`npm ci`) when missing. Their absence fails the test."""

import fcntl
import json
import os
import shutil
import subprocess
import time

from harness import E2ETestCase, Heartbeat, job_doc, node_doc, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
UI_DIR = os.path.join(os.path.dirname(HERE), "ui")
CHROMIUM = os.environ.get("CS_CHROMIUM", "/usr/bin/chromium")
REDIS_VARS = ("REDIS_ADDR", "ROLE", "REDIS_CONNECT_TIMEOUT", "REDIS_TIMEOUT", "CLAIM_IDLE",
              "RESULT_LEASE")


def artifacts_dir():
    """$CS_ARTIFACTS, else artifacts/ beside the binary under test (the
    build directory)."""
    d = os.environ.get("CS_ARTIFACTS")
    if not d:
        from harness import cs_bin
        d = os.path.join(os.path.dirname(os.path.abspath(cs_bin())), "artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def ensure_playwright():
    """playwright-core in tests/ui/node_modules, installed from the lock
    file when missing (under a lock: two test runs may start together)."""
    marker = os.path.join(UI_DIR, "node_modules", "playwright-core", "package.json")
    with open(os.path.join(UI_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker):
            return
        npm = shutil.which("npm")
        if not npm:
            raise AssertionError("npm not found: run scripts/deps.sh (apt-get install nodejs npm)")
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=UI_DIR, capture_output=True, text=True, timeout=300)
        if p.returncode != 0 or not os.path.exists(marker):
            raise AssertionError("npm ci in %s failed (%d):\n%s%s"
                                 % (UI_DIR, p.returncode, p.stdout[-2000:], p.stderr[-2000:]))


class DashboardTest(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError("%s not found: run scripts/deps.sh (apt-get install chromium)"
                                 % CHROMIUM)
        if not shutil.which("node"):
            raise AssertionError("node not found: run scripts/deps.sh (apt-get install nodejs)")
        ensure_playwright()

    def test_dashboard_in_chromium(self):
        recv = self.receiver()
        svc = self.service(recv, node_ttl=3, workers=2, settings={"REAPER_INTERVAL": 1})
        # one node that stopped reporting, two that keep reporting
        svc.put_node("n-old", node_doc(vcpus=8, memory=16384, host="edge-old"), expect=201)
        wait_until(lambda: not svc.node("n-old")["active"], 15,
                   msg="n-old never became inactive")
        docs = {
            "n-a": node_doc(vcpus=4, memory=8192, host="edge-a", cpu_percent=25,
                            memory_percent=40),
            "n-b": node_doc(vcpus=2, memory=2048, host="edge-b", arch="arm64"),
        }
        for nid, doc in docs.items():
            svc.put_node(nid, doc, expect=201)
            hb = Heartbeat(svc, nid, doc, interval=0.5).start()
            self.addCleanup(hb.stop)

        shot = os.path.join(artifacts_dir(), "ui.png")
        if os.path.exists(shot):
            os.unlink(shot)
        cmd = ["node", os.path.join(UI_DIR, "ui_check.js"), "--base",
               "http://127.0.0.1:%d" % svc.port, "--screenshot", shot, "--chromium", CHROMIUM]
        t0 = time.monotonic()
        p = subprocess.run(cmd, cwd=UI_DIR, capture_output=True, text=True, timeout=180)
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, "ui_check.js failed:\n%s\n%s\n%s"
                         % (p.stdout[-3000:], p.stderr[-5000:], svc.tail()))
        summary = json.loads(p.stdout.strip().splitlines()[-1])

        self.assertEqual(summary["title"], "cluster-scheduler")
        self.assertEqual(summary["nodes"], ["n-a", "n-b", "n-old"])
        self.assertFalse(summary["rows"]["n-old"]["active"])
        self.assertTrue(summary["rows"]["n-a"]["active"])
        self.assertEqual(summary["rows"]["n-a"]["cpu"]["usedPct"], 25)
        self.assertEqual(summary["rows"]["n-a"]["memory"]["usedPct"], 40)
        self.assertIsNone(summary["rows"]["n-b"]["cpu"]["usedPct"])
        # most-free ranks the node with the most free CPU and memory first
        self.assertEqual(summary["placed"]["node"], "n-a")
        self.assertEqual(summary["unschedulable"]["state"], "unschedulable")
        self.assertIn("insufficient_cpu", summary["unschedulable"]["reasons"])

        # what the page showed is what the service did
        self.assertEqual(svc.job_status("ui-job-1")["node_id"], "n-a")
        recv.wait_for(1, job="ui-job-1")
        recv.wait_for(1, job="ui-job-2")
        dec = svc.get_json("/api/v1/decisions")
        self.assertEqual([d["job_id"] for d in dec["decisions"]], ["ui-job-2", "ui-job-1"])
        self.assertTrue(dec["decides"])

        with open(shot, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG")
        self.assertGreater(os.path.getsize(shot), 20000, "screenshot suspiciously small")
        print("\nui: checked in %.1f s; screenshot %s (%d bytes)"
              % (took, shot, os.path.getsize(shot)))

    def test_assets_and_decisions_endpoint(self):
        recv = self.receiver()
        # one worker: the ring keeps the order decisions were recorded in,
        # which with several workers need not be the order of their times
        svc = self.service(recv, workers=1)
        page = svc.get("/ui")
        self.assertEqual(page.status, 200)
        self.assertTrue(page.headers["content-type"].startswith("text/html"), page.headers)
        self.assertIn(b'src="/ui/app.js"', page.body)
        self.assertEqual(svc.get("/ui/").status, 200)  # one trailing slash
        for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css"),
                            ("index.html", "text/html")):
            r = svc.get("/ui/" + name)
            self.assertEqual(r.status, 200, name)
            self.assertTrue(r.headers["content-type"].startswith(ctype), (name, r.headers))
        self.assertEqual(svc.request("HEAD", "/ui").status, 200)
        # nothing of the page is loaded from elsewhere
        for name in ("", "app.js", "style.css"):
            body = svc.get("/ui/" + name).text
            self.assertNotIn("http://", body.replace("http://127.0.0.1", ""), name)
            self.assertNotIn("https://", body, name)
        self.assertJSONError(svc.get("/ui/missing.js"), 404, "path")
        self.assertJSONError(svc.get("/ui/a/b"), 404, "path")
        self.assertJSONError(svc.request("POST", "/ui", {}), 405, "method")

        d0 = svc.get_json("/api/v1/decisions")
        self.assertEqual((d0["decisions"], d0["recorded"], d0["decides"], d0["role"]),
                         ([], 0, True, "all"))
        svc.put_node("d1", node_doc(vcpus=2, memory=1024), expect=201)
        for i in range(60):  # more than the ring keeps
            svc.request("POST", "/api/v1/jobs", job_doc("dj%02d" % i, vcpus=0.01, memory=1))
        wait_until(lambda: svc.get_json("/api/v1/decisions")["recorded"] == 60, 30,
                   msg=lambda: "recorded: %r" % svc.get_json("/api/v1/decisions")["recorded"])
        d = svc.get_json("/api/v1/decisions")
        self.assertEqual(len(d["decisions"]), d["kept"])
        self.assertEqual(d["kept"], 50)
        ids = {x["job_id"] for x in d["decisions"]}
        self.assertEqual(len(ids), 50)
        self.assertNotIn("dj00", ids)  # the oldest fell out
        at = [x["at"] for x in d["decisions"]]
        self.assertEqual(at, sorted(at, reverse=True), "newest first")
        one = d["decisions"][0]
        for key in ("job_id", "instance", "state", "node_id", "at", "decision_ms", "nodes",
                    "qualified", "candidates", "reasons", "message"):
            self.assertIn(key, one)
        self.assertEqual(one["candidates"][0]["node_id"], "d1")


class DashboardRolesTest(E2ETestCase):
    """Redis mode: the api process serves the dashboard (its decisions
    endpoint says it makes none); a worker process serves no dashboard but
    answers for its own decisions."""

    def rsvc(self, recv, redis, role, **kw):
        s = {k: None for k in REDIS_VARS}
        s["REDIS_ADDR"] = redis.url
        return self.service(recv, settings=s, args=["--role", role], node_ttl=120,
                            name=role, **kw)

    def test_roles(self):
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, "api")
        worker = self.rsvc(recv, redis, "worker", workers=1)
        self.assertEqual(api.get("/ui").status, 200)
        self.assertEqual(api.get("/ui/app.js").status, 200)
        for path in ("/ui", "/ui/app.js"):
            self.assertJSONError(worker.get(path), 404, "path")
        d = api.get_json("/api/v1/decisions")
        self.assertEqual((d["decides"], d["role"], d["decisions"]), (False, "api", []))
        self.assertIn("worker", d["note"])

        api.put_node("r1", node_doc(vcpus=4, memory=4096), expect=201)
        r = api.request("POST", "/api/v1/jobs", job_doc("rj", vcpus=1))
        self.assertEqual(r.status, 202, r)
        api.wait_job_state("rj")
        got = wait_until(lambda: worker.get_json("/api/v1/decisions")["decisions"], 20)
        self.assertEqual((got[0]["job_id"], got[0]["state"], got[0]["node_id"]),
                         ("rj", "placed", "r1"))
        self.assertTrue(worker.get_json("/api/v1/decisions")["decides"])
