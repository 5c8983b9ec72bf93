"""Access control: with SCHEDULER_TOKEN (or SCHEDULER_TOKEN_FILE / --token)
set, every route but GET /status and GET /metrics needs
`Authorization: Bearer <token>` and answers 401 with a JSON error and a
WWW-Authenticate header otherwise; the token never shows in a log or in
what goes to the cluster manager; results go only to the configured
CLUSTER_MANAGER_URL:PORT whatever a job says; the default bind address
is loopback."""

import os
import time
import unittest

from harness import (HOST, E2ETestCase, RESULT_TIMEOUT, free_port, http_request, job_doc,
                     node_doc, wait_until)

TOKEN = "e2e-Token_0123456789abcdef.XYZ"
WRONG = "e2e-Token_0123456789abcdef.XYy"
AUTH = {"Authorization": "Bearer " + TOKEN}


class TokenTest(E2ETestCase):

    def tsvc(self, recv, token=TOKEN, **kw):
        settings = kw.pop("settings", {})
        if token is not None:
            settings.setdefault("SCHEDULER_TOKEN", token)
        return self.service(recv, settings=settings, **kw)

    def assert401(self, r, invalid, msg=""):
        err = self.assertJSONError(r, 401, "authorization", msg=msg)
        self.assertIn("www-authenticate", r.headers, msg)
        wa = r.headers["www-authenticate"]
        self.assertTrue(wa.startswith("Bearer"), (wa, msg))
        if invalid:
            self.assertIn('error="invalid_token"', wa, msg)
        self.assertNotIn(TOKEN, r.text)
        return err

    def test_every_route_but_status_and_metrics_needs_the_token(self):
        recv = self.receiver()
        svc = self.tsvc(recv)
        # open: health and metrics, GET and HEAD
        for method, path in (("GET", "/status"), ("HEAD", "/status"), ("GET", "/metrics"),
                             ("HEAD", "/metrics"), ("GET", "/status/"),
                             # the dashboard's static files: no data in them
                             ("GET", "/ui"), ("GET", "/ui/app.js")):
            r = svc.request(method, path)
            self.assertEqual(r.status, 200, (method, path, r))
        self.assertNotIn(TOKEN, svc.get("/ui").text + svc.get("/ui/app.js").text)
        self.assertEqual(svc.get("/status").text.strip(), "ok")

        # everything else: 401 without the header, with another scheme,
        # with a wrong, shorter or longer token
        routes = [("GET", "/", None), ("GET", "/api/v1/nodes", None),
                  ("PUT", "/api/v1/nodes/n1", node_doc()),
                  ("GET", "/api/v1/nodes/n1", None), ("DELETE", "/api/v1/nodes/n1", None),
                  ("POST", "/api/v1/jobs", job_doc("j1")),
                  ("GET", "/api/v1/jobs/j1/0", None), ("DELETE", "/api/v1/jobs/j1/0", None),
                  ("POST", "/api/v1/schedule", job_doc("j1")),
                  ("POST", "/api/calculate/deploy/j1/0", job_doc("j1")),
                  ("GET", "/api/calculate/deploy/j1/0", job_doc("j1")),
                  ("POST", "/api/calculate/replicate", {"job": job_doc("j1"), "replicas": 2}),
                  ("GET", "/api/v1/decisions", None), ("POST", "/ui", None),
                  # not open: other methods on the open paths, and unknown routes
                  ("POST", "/status", None), ("DELETE", "/metrics", None),
                  ("GET", "/nope", None), ("GET", "/api/v1/nodes/" + "x" * 100, None)]
        bad_headers = [(None, False), ({"Authorization": "Basic dXNlcjpwYXNz"}, False),
                       ({"Authorization": "Bearer"}, False),
                       ({"Authorization": "Bearer " + WRONG}, True),
                       ({"Authorization": "Bearer " + TOKEN[:-1]}, True),
                       ({"Authorization": "Bearer " + TOKEN + "x"}, True),
                       ({"Authorization": "Bearer " + TOKEN.upper()}, True),
                       ({"Authorization": TOKEN}, False)]
        for method, path, body in routes:
            for hdrs, invalid in bad_headers:
                r = svc.request(method, path, body, headers=hdrs)
                self.assert401(r, invalid, msg="%s %s %r" % (method, path, hdrs))
        # nothing of that was acted on
        r = svc.request("GET", "/api/v1/nodes", headers=AUTH)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"nodes": []})
        self.assertJSONError(svc.request("GET", "/api/v1/jobs/j1/0", headers=AUTH), 404)
        self.assertEqual(recv.all(), [])

        # with the token, the routes work as usual (scheme case-insensitive)
        r = svc.request("GET", "/", headers=AUTH)
        self.assertEqual(r.status, 200, r)
        svc_put = svc.request("PUT", "/api/v1/nodes/n1", node_doc(),
                              headers={"Authorization": "bearer  " + TOKEN})
        self.assertEqual(svc_put.status, 201, svc_put)
        self.assertEqual(svc.request("GET", "/api/v1/nodes/n1", headers=AUTH).status, 200)
        r = svc.request("POST", "/api/v1/schedule", job_doc("probe"), headers=AUTH)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["qualified"], 1)
        # errors past the token check keep their own status
        self.assertJSONError(svc.request("GET", "/nope", headers=AUTH), 404)
        self.assertJSONError(svc.request("POST", "/status", headers=AUTH), 405)
        self.assertJSONError(svc.request("POST", "/api/v1/jobs", {"_id": "x"}, headers=AUTH),
                             400, "virtualization")

        # 401s are counted with the other 4xx answers
        m = svc.metrics()
        self.assertGreaterEqual(m.get('cluster_scheduler_http_requests_total{code="4xx"}', 0),
                                len(routes) * len(bad_headers))

    def test_unauthorised_body_is_not_read_and_connection_is_closed(self):
        recv = self.receiver()
        svc = self.tsvc(recv)
        big = {"_id": "big", "virtualization": "container", "pad": "p" * 500000}
        r = svc.request("POST", "/api/v1/jobs", big)
        self.assert401(r, False)
        self.assertEqual(r.headers.get("connection", "").lower(), "close")
        self.assertJSONError(svc.request("GET", "/api/v1/jobs/big/0", headers=AUTH), 404)
        self.assertAlive(svc)

    def test_results_reach_the_manager_without_the_token(self):
        recv = self.receiver()
        svc = self.tsvc(recv, settings={"LOG_LEVEL": "debug"})
        r = svc.request("PUT", "/api/v1/nodes/n1", node_doc(), headers=AUTH)
        self.assertEqual(r.status, 201, r)
        r = svc.request("POST", "/api/calculate/deploy/j1/0", job_doc("j1"), headers=AUTH)
        self.assertEqual((r.status, r.text.strip()), (200, "ok"))
        r = svc.request("POST", "/api/v1/jobs", job_doc("j2"), headers=AUTH)
        self.assertEqual(r.status, 202, r)
        got = recv.wait_for(1, job="j1") + recv.wait_for(1, job="j2")
        for res in got:
            self.assertEqual(res.body["found"], True, res)
            self.assertNotIn("authorization", res.headers)
            self.assertNotIn(TOKEN.encode(), res.raw)
            for v in res.headers.values():
                self.assertNotIn(TOKEN, v)
        # a wrong token sent by a client does not end up in the log either
        self.assert401(svc.request("GET", "/api/v1/nodes",
                                   headers={"Authorization": "Bearer " + WRONG}), True)
        svc.terminate()
        log = svc.stderr_text()
        self.assertIn("auth=bearer-token", log)
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(WRONG, log)

    def test_token_file_and_flag(self):
        recv = self.receiver()
        path = os.path.join(self.workdir, "token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o600)
        svc = self.tsvc(recv, token=None, settings={"SCHEDULER_TOKEN_FILE": path})
        self.assert401(svc.get("/api/v1/nodes"), False)
        self.assertEqual(svc.request("GET", "/api/v1/nodes", headers=AUTH).status, 200)
        svc.terminate()
        self.assertIn("auth=bearer-token(file)", svc.stderr_text())
        self.assertNotIn(TOKEN, svc.stderr_text())

        svc2 = self.tsvc(recv, token=None, args=["--token", TOKEN])
        self.assert401(svc2.get("/"), False)
        self.assertEqual(svc2.request("GET", "/", headers=AUTH).status, 200)

        # without a token the service is open, as before
        svc3 = self.tsvc(recv, token=None)
        self.assertEqual(svc3.get("/api/v1/nodes").status, 200)
        self.assertIn("auth=off", svc3.stderr_text())

    def test_bad_token_settings_stop_the_start(self):
        recv = self.receiver()
        secret = "s3cr3t-but-short"[:12]
        for settings, args in (({"SCHEDULER_TOKEN": secret}, []),
                               ({}, ["--token", secret]),
                               ({"SCHEDULER_TOKEN": "has space s3cr3t 0123456789"}, []),
                               ({"SCHEDULER_TOKEN_FILE": os.path.join(self.workdir, "none")}, []),
                               ({"SCHEDULER_TOKEN": TOKEN,
                                 "SCHEDULER_TOKEN_FILE": os.path.join(self.workdir, "none")}, [])):
            svc = self.tsvc(recv, token=None, start=False, settings=settings, args=args)
            with self.assertRaises(AssertionError):
                svc.start(ready_timeout=15)
            self.assertEqual(svc.returncode, 2, svc.tail())
            err = svc.stderr_text()
            self.assertIn("TOKEN", err.upper())
            self.assertNotIn("s3cr3t", err)


class WorkerRoleTokenTest(E2ETestCase):
    """Redis mode: an api and a worker process share the token; the
    worker's own routes follow the same rule and its deliverer sends no
    Authorization header."""

    def test_api_and_worker(self):
        recv = self.receiver()
        redis = self.redis()
        common = {"REDIS_ADDR": redis.url, "SCHEDULER_TOKEN": TOKEN}
        api = self.service(recv, settings=dict(common, ROLE="api"), name="api")
        worker = self.service(recv, settings=dict(common, ROLE="worker"), name="worker")
        for svc in (api, worker):
            for path in ("/status", "/metrics"):
                self.assertEqual(svc.get(path).status, 200, (svc.name, path))
            self.assert401(svc.get("/"), False)
            self.assert401(svc.request("GET", "/", headers={"Authorization": "Bearer " + WRONG}),
                           True)
            self.assertEqual(svc.request("GET", "/", headers=AUTH).status, 200, svc.name)
        # the worker still answers 404 for intake routes, but only to a
        # client holding the token
        self.assert401(worker.request("POST", "/api/v1/jobs", job_doc("w")), False)
        self.assertJSONError(worker.request("POST", "/api/v1/jobs", job_doc("w"), headers=AUTH),
                             404, "path")
        r = api.request("PUT", "/api/v1/nodes/n1", node_doc(), headers=AUTH)
        self.assertEqual(r.status, 201, r)
        r = api.request("POST", "/api/calculate/deploy/rj/0", job_doc("rj"), headers=AUTH)
        self.assertEqual(r.status, 200, r)
        [res] = recv.wait_for(1, job="rj")
        self.assertEqual(res.body["node"]["_id"], "n1")
        self.assertNotIn("authorization", res.headers)
        self.assertNotIn(TOKEN.encode(), res.raw)

    assert401 = TokenTest.assert401


class ResultDestinationTest(E2ETestCase):
    """Where a result goes is configuration only: fields of the job, the
    request's Host header or odd job ids do not move it."""

    def test_job_fields_do_not_redirect_results(self):
        recv = self.receiver()
        trap = self.receiver()  # a second "manager" a job tries to point at
        svc = self.service(recv)
        svc.put_node("n1", node_doc(vcpus=64, memory=65536))
        evil = "http://%s:%d/steal" % (HOST, trap.port)
        fields = {"url": evil, "host": "%s:%d" % (HOST, trap.port), "port": trap.port,
                  "result_url": evil, "callback": evil, "cluster_manager_url": HOST,
                  "CLUSTER_MANAGER_URL": "%s:%d" % (HOST, trap.port),
                  "CLUSTER_MANAGER_PORT": trap.port, "manager": evil,
                  "cluster": {"url": evil, "port": trap.port}}
        headers = {"Host": "%s:%d" % (HOST, trap.port),
                   "X-Forwarded-Host": "%s:%d" % (HOST, trap.port), "Referer": evil}
        svc.deploy(job_doc("evil1", **fields))
        r = svc.request("POST", "/api/v1/jobs", job_doc("evil2", **fields), headers=headers)
        self.assertEqual(r.status, 202, r)
        r = svc.request("POST", "/api/calculate/replicate",
                        {"job": job_doc("evil3", **fields), "replicas": 2}, headers=headers)
        self.assertEqual(r.status, 200, r)
        # ids that look like URL pieces stay one escaped path segment
        odd = ["..", ".", "...", "a?b=c", "x#frag", "u@%s:%d" % (HOST, trap.port),
               "%2e%2e", "a\\b", "http:"]
        for jid in odd:
            r = svc.request("POST", "/api/v1/jobs", job_doc(jid, **fields), headers=headers)
            self.assertEqual(r.status, 202, (jid, r))
        from urllib.parse import unquote
        want = {("evil1", 0), ("evil2", 0), ("evil3", 0), ("evil3", 1)}
        want |= {(j, 0) for j in odd}

        def arrived():
            got = {(unquote(r.job), r.inst) for r in recv.accepted() if r.job is not None}
            return want <= got
        wait_until(arrived, RESULT_TIMEOUT, msg=lambda: "results: %r" % recv.all())
        for res in recv.all():
            self.assertTrue(res.path.startswith("/api/result/"), res.path)
            self.assertEqual(res.path.count("/"), 4, res.path)
            self.assertIn((unquote(res.job), res.inst), want, res.path)
            self.assertEqual(res.body["job"]["url"], evil)  # carried through untouched
        time.sleep(0.5)
        self.assertEqual(trap.all(), [], "a result went to the address a job named")


class BindDefaultTest(E2ETestCase):

    def test_default_bind_is_loopback_only(self):
        recv = self.receiver()
        svc = self.service(recv, settings={"BIND_ADDR": None})
        self.assertIn("bind=127.0.0.1", svc.stderr_text())
        # the listening socket, from the kernel's table: 127.0.0.1 only
        want = ":%04X" % svc.port
        listening = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":  # LISTEN
                    listening.append(parts[1])
        self.assertEqual(listening, ["0100007F" + want], listening)
        self.assertEqual(http_request(svc.port, "GET", "/status").status, 200)


if __name__ == "__main__":
    unittest.main()
