"""Drop-in interface (the original's routes) end to end: deploy, replicate,
results at the cluster manager, idempotency."""

import json
import time
import unittest

from harness import E2ETestCase, job_doc, node_doc


class DropInTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.recv = self.receiver()
        self.svc = self.service(self.recv, workers=2)

    def test_hello_and_status(self):
        r = self.svc.get("/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.text.strip(), "GET / should say hello")
        r = self.svc.get("/status")
        self.assertEqual((r.status, r.text.strip()), (200, "ok"))

    def test_head_and_keep_alive(self):
        r = self.svc.request("HEAD", "/status")
        self.assertEqual((r.status, r.body), (200, b""))
        # many requests on one persistent connection
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=10)
        try:
            for i in range(20):
                conn.request("PUT", "/api/v1/nodes/ka", body=json.dumps(node_doc()),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 201 if i == 0 else 200)
        finally:
            conn.close()
        # pipelined: two requests in one write, two answers in order
        import socket
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=10) as s:
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /api/v1/nodes/ka HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        self.assertEqual(buf.count(b"HTTP/1.1 200"), 2, buf)
        self.assertIn(b'"_id":', buf)

    def test_replicate_max(self):
        self.svc.put_node("n1", node_doc(vcpus=1, memory=1024))
        job = job_doc("rmax", vcpus=0, memory=0)
        r = self.svc.request("POST", "/api/calculate/replicate", {"job": job, "replicas": 1000})
        self.assertEqual((r.status, r.text.strip()), (200, "ok"), r)
        got = self.recv.wait_for(1000, job="rmax", timeout=90)
        self.assertEqual(sorted(x.inst for x in got), list(range(1000)))
        self.assertTrue(all(x.body["found"] for x in got))
        self.assertEqual(self.svc.node("n1")["reservations"], 1000)

    def test_deploy_result_has_node_job_and_candidates(self):
        self.svc.put_node("n1", node_doc(host="worker-1", zone="eu-1"), expect=201)
        job = job_doc("web", vcpus=1, memory=256, service_name="web", image="nginx:1",
                      port="80:80", nested={"a": [1, 2, {"b": None}], "s": "x\u00e9"})
        self.svc.deploy(job, 0)
        [res] = self.recv.wait_for(1, job="web", inst=0)
        self.assertEqual(res.path, "/api/result/web/0")
        # the original manager (Flask) reads request.json: needs this type
        self.assertTrue(res.headers.get("content-type", "").startswith("application/json"),
                        res.headers)
        b = res.body
        self.assertIsInstance(b, dict, res)
        self.assertIs(b.get("found"), True, b)
        self.assertEqual(b["node"]["_id"], "n1")
        self.assertEqual(b["node"].get("host"), "worker-1")
        self.assertEqual(b["node"].get("zone"), "eu-1", "unknown node fields are kept")
        self.assertEqual(b["job"], job, "job must be carried through as received")
        cands = b.get("candidates")
        self.assertIsInstance(cands, list)
        self.assertGreaterEqual(len(cands), 1)
        for c in cands:
            self.assertIsInstance(c.get("node_id"), str, c)
            self.assertIsInstance(c.get("score"), (int, float), c)
        self.assertEqual(cands[0]["node_id"], "n1")
        # the native API sees the same placement
        st = self.svc.job_status("web", 0)
        self.assertEqual(st["state"], "placed")
        self.assertEqual(st["node_id"], "n1")

    def test_deploy_candidates_prioritized_over_several_nodes(self):
        for i in range(3):
            self.svc.put_node("n%d" % i, node_doc(vcpus=2 + 2 * i, memory=2048 * (i + 1)))
        self.svc.deploy(job_doc("multi"), 0)
        [res] = self.recv.wait_for(1, job="multi")
        b = res.body
        self.assertIs(b["found"], True, b)
        ids = [c["node_id"] for c in b["candidates"]]
        self.assertEqual(sorted(ids), ["n0", "n1", "n2"])
        self.assertEqual(ids[0], b["node"]["_id"], "the chosen node heads the list")
        scores = [c["score"] for c in b["candidates"]]
        self.assertEqual(scores, sorted(scores, reverse=True), "best first")

    def test_deploy_get_with_body(self):
        self.svc.put_node("n1", node_doc())
        job = job_doc("getjob")
        self.svc.deploy(job, 3, method="GET")
        [res] = self.recv.wait_for(1, job="getjob", inst=3)
        self.assertIs(res.body["found"], True)

    def test_docker_and_container_are_the_same(self):
        self.svc.put_node("n1", node_doc(virt=("docker",)))
        self.svc.deploy(job_doc("dock", virt="container"), 0)
        self.svc.put_node("n2", {"technology": ["container"], "vcpus": 2, "memory": 1024})
        self.svc.deploy(job_doc("cont", virt="docker", vcpus=2, memory=1024, constraints=[
            {"type": "direct", "node": "n2"}]), 0)
        r1 = self.recv.wait_for(1, job="dock")[0].body
        r2 = self.recv.wait_for(1, job="cont")[0].body
        self.assertIs(r1["found"], True, r1)
        self.assertEqual(r1["node"]["_id"], "n1")
        self.assertIs(r2["found"], True, r2)
        self.assertEqual(r2["node"]["_id"], "n2")

    def test_url_job_id_wins_over_body(self):
        self.svc.put_node("n1", node_doc())
        job = job_doc("bodyid")
        self.svc.deploy(job, 1, job_id="urlid")
        [res] = self.recv.wait_for(1, job="urlid", inst=1)
        self.assertIs(res.body["found"], True)
        self.assertEqual(self.svc.job_status("urlid", 1)["state"], "placed")
        self.assertEqual(self.svc.request("GET", "/api/v1/jobs/bodyid/1").status, 404)

    def test_deploy_unschedulable(self):
        self.svc.put_node("n1", node_doc(vcpus=2))
        job = job_doc("big", vcpus=64)
        self.svc.deploy(job, 0)
        [res] = self.recv.wait_for(1, job="big")
        b = res.body
        self.assertIs(b.get("found"), False, b)
        self.assertEqual(b.get("status"), "NO_QUALIFIED_WORKER_FOUND")
        self.assertEqual(b.get("reasons"), {"insufficient_cpu": 1})
        self.assertIn("0/1", b.get("message", ""))
        self.assertEqual(b.get("job"), job)
        st = self.svc.job_status("big", 0)
        self.assertEqual(st["state"], "unschedulable")
        self.assertEqual(st["reasons"], {"insufficient_cpu": 1})

    def test_replicate_three(self):
        self.svc.put_node("n1", node_doc(vcpus=8, memory=8192))
        job = job_doc("rep", vcpus=1, memory=512, image="x")
        r = self.svc.request("POST", "/api/calculate/replicate", {"job": job, "replicas": 3})
        self.assertEqual((r.status, r.text.strip()), (200, "ok"), r)
        got = self.recv.wait_for(3, job="rep")
        self.assertEqual(sorted(x.inst for x in got), [0, 1, 2])
        for x in got:
            self.assertIs(x.body["found"], True, x)
            self.assertEqual(x.body["node"]["_id"], "n1")
            self.assertEqual(x.body["job"]["_id"], "rep")
            self.assertEqual(x.body["job"]["image"], "x")
        n = self.svc.node("n1")
        self.assertEqual(n["reservations"], 3)
        self.assertAlmostEqual(n["reserved"]["vcpus"], 3)
        self.assertAlmostEqual(n["reserved"]["memory"], 1536)
        time.sleep(0.5)
        self.assertEqual(len(self.recv.accepted(job="rep")), 3, "no extra results")

    def test_replicate_again_adds_only_new_instances(self):
        self.svc.put_node("n1", node_doc(vcpus=8, memory=8192))
        job = job_doc("grow", vcpus=1)
        r = self.svc.request("POST", "/api/calculate/replicate", {"job": job, "replicas": 2})
        self.assertEqual(r.status, 200, r)
        self.recv.wait_for(2, job="grow")
        r = self.svc.request("POST", "/api/calculate/replicate", {"job": job, "replicas": 4})
        self.assertEqual(r.status, 200, r)
        got = self.recv.wait_for(4, job="grow")
        time.sleep(0.5)
        got = self.recv.accepted(job="grow")
        self.assertEqual(sorted(x.inst for x in got), [0, 1, 2, 3], "known instances stand")
        self.assertEqual(self.svc.node("n1")["reservations"], 4)

    def test_replicate_spread_over_capacity(self):
        # two nodes of 2 vcpus: 4 replicas of 1 vcpu fill both; a 5th fails
        self.svc.put_node("a", node_doc(vcpus=2, memory=4096))
        self.svc.put_node("b", node_doc(vcpus=2, memory=4096))
        r = self.svc.request("POST", "/api/calculate/replicate",
                             {"job": job_doc("rep5"), "replicas": 5})
        self.assertEqual(r.status, 200, r)
        got = self.recv.wait_for(5, job="rep5")
        self.assertEqual(sorted(x.inst for x in got), [0, 1, 2, 3, 4])
        placed = [x for x in got if x.body["found"]]
        self.assertEqual(len(placed), 4)
        per = {}
        for x in placed:
            per[x.body["node"]["_id"]] = per.get(x.body["node"]["_id"], 0) + 1
        self.assertEqual(per, {"a": 2, "b": 2})
        [nf] = [x for x in got if not x.body["found"]]
        self.assertEqual(nf.body["status"], "NO_QUALIFIED_WORKER_FOUND")

    def test_same_deploy_twice_places_once(self):
        self.svc.put_node("n1", node_doc(vcpus=4))
        self.svc.put_node("n2", node_doc(vcpus=4))
        job = job_doc("idem", vcpus=1)
        self.svc.deploy(job, 0)
        self.svc.deploy(job, 0)  # while probably still queued
        [res] = self.recv.wait_for(1, job="idem")
        self.svc.deploy(job, 0)  # after the placement
        r = self.svc.request("POST", "/api/v1/jobs", job)
        self.assertEqual(r.status, 200, "a known instance answers 200 with its status: %r" % r)
        self.assertEqual(r.json().get("state"), "placed", r)
        time.sleep(1.0)
        self.assertEqual(len(self.recv.all()), 1, "one placement, one result: %r" % self.recv.all())
        total = sum(self.svc.node(n)["reservations"] for n in ("n1", "n2"))
        self.assertEqual(total, 1)
        self.assertEqual(self.svc.job_status("idem", 0)["node_id"], res.body["node"]["_id"])

    def test_concurrent_duplicate_deploys_place_once(self):
        import threading
        self.svc.put_node("n1", node_doc(vcpus=16, memory=16384))
        job = job_doc("dup", vcpus=1)
        errors = []

        def send():
            try:
                self.svc.deploy(job, 0)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        ts = [threading.Thread(target=send) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(errors, [])
        self.recv.wait_for(1, job="dup")
        time.sleep(1.0)
        self.assertEqual(len(self.recv.all()), 1)
        self.assertEqual(self.svc.node("n1")["reservations"], 1)


if __name__ == "__main__":
    unittest.main()
