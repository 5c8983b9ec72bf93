"""Durability across kill -9 and clean shutdown on SIGTERM/SIGINT.

A job answered `ok` is never lost: kill -9 the service right after the
answers, start it again on the same DATA_DIR within NODE_TTL (the nodes are
not registered again) and every job's result reaches the cluster manager.
Delivery is at-least-once, so a result may come twice after a crash, but
never naming two different nodes."""

import http.client
import json
import signal
import threading
import time
import unittest

from harness import HOST, E2ETestCase, job_doc, node_doc, wait_until

TTL = 60  # the restart must happen within it; generous for sanitizer builds


class DurabilityTest(E2ETestCase):
    def _deploy_many(self, svc, ids, threads=4):
        errors = []
        lock = threading.Lock()
        todo = list(ids)

        def run():
            while True:
                with lock:
                    if not todo:
                        return
                    jid = todo.pop()
                try:
                    svc.deploy(job_doc(jid, vcpus=1, memory=128), 0)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append((jid, e))
        ts = [threading.Thread(target=run) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])

    def _check_all_delivered(self, recv, svc, ids, nodes):
        for jid in ids:
            got = recv.wait_for(1, job=jid, inst=0, timeout=45)
            found = {r.body["node"]["_id"] for r in got if r.body.get("found")}
            self.assertEqual(len(found), 1, "job %s: results %r" % (jid, got))
            self.assertTrue(all(r.body.get("found") for r in got), got)
        total = sum(svc.node(n)["reservations"] for n in nodes)
        self.assertEqual(total, len(ids), "each job placed exactly once")
        for jid in ids:
            self.assertEqual(svc.job_status(jid, 0)["state"], "placed")

    def test_kill9_right_after_ok(self):
        recv = self.receiver()
        svc = self.service(recv, workers=2, node_ttl=TTL)
        nodes = ["k1", "k2"]
        for n in nodes:
            svc.put_node(n, node_doc(vcpus=32, memory=32768), expect=201)
        ids = ["kill-%02d" % i for i in range(30)]
        self._deploy_many(svc, ids)
        svc.kill()  # right after the last ok
        before = len(recv.accepted())

        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, name="svc-restart")
        self._check_all_delivered(recv, svc2, ids, nodes)
        self.assertLessEqual(before, len(ids))
        # nodes came back from the store, not from a new report
        for n in nodes:
            self.assertIs(svc2.node(n)["active"], True)

    def test_kill9_with_results_in_outbox(self):
        recv = self.receiver(start=False)  # the cluster manager is down
        svc = self.service(recv, workers=2, node_ttl=TTL)
        svc.put_node("o1", node_doc(vcpus=16, memory=16384), expect=201)
        ids = ["outbox-%02d" % i for i in range(10)]
        self._deploy_many(svc, ids)
        for jid in ids:  # decided, so their results sit in the outbox
            svc.wait_job_state(jid, 0)
        svc.kill()
        self.assertEqual(recv.all(), [])

        recv.start()
        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, name="svc-restart")
        self._check_all_delivered(recv, svc2, ids, ["o1"])

    def test_kill9_twice_during_backlog(self):
        recv = self.receiver(start=False)
        svc = self.service(recv, workers=1, node_ttl=TTL)
        svc.put_node("t1", node_doc(vcpus=64, memory=65536), expect=201)
        ids = ["twice-%02d" % i for i in range(20)]
        self._deploy_many(svc, ids)
        svc.kill()
        svc2 = self.service(recv, data_dir=svc.data_dir, workers=1, node_ttl=TTL, name="svc-b")
        more = ["twice-%02d" % i for i in range(20, 25)]
        self._deploy_many(svc2, more)
        svc2.kill()
        recv.start()
        svc3 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, name="svc-c")
        self._check_all_delivered(recv, svc3, ids + more, ["t1"])


    def test_deletions_survive_kill9(self):
        recv = self.receiver()
        svc = self.service(recv, workers=2, node_ttl=TTL)
        svc.put_node("keep", node_doc(vcpus=8, memory=8192), expect=201)
        svc.put_node("drop", node_doc(vcpus=8, memory=8192), expect=201)
        for jid in ("d1", "d2", "d3"):
            svc.deploy(job_doc(jid, vcpus=1, memory=128, constraints=[
                {"type": "direct", "node": "keep"}]), 0)
            svc.wait_job_state(jid, 0)
        self.assertEqual(svc.request("DELETE", "/api/v1/jobs/d2/0").status, 200)
        self.assertEqual(svc.request("DELETE", "/api/v1/nodes/drop").status, 200)
        # a partial update, to check it is the merged document that persists
        svc.put_node("keep", {"zone": "z9"}, expect=200)
        recv.wait_for(3)
        # delivered and marked done (at-least-once would allow a re-send of
        # a result killed between the manager's answer and that mark)
        wait_until(lambda: svc.metrics().get("cluster_scheduler_outbox_depth") == 0, 10)
        svc.kill()
        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, name="svc-restart")
        self.assertEqual(svc2.request("GET", "/api/v1/nodes/drop").status, 404)
        self.assertEqual(svc2.request("GET", "/api/v1/jobs/d2/0").status, 404)
        n = svc2.node("keep")
        self.assertEqual(n["reservations"], 2)
        self.assertEqual(n["zone"], "z9")
        self.assertEqual(n["vcpus"], 8)
        self.assertAlmostEqual(n["free"]["vcpus"], 6)
        for jid in ("d1", "d3"):
            self.assertEqual(svc2.job_status(jid, 0)["node_id"], "keep")
        # nothing was sent twice for the decided, delivered jobs
        time.sleep(1.0)
        self.assertEqual(len(recv.all()), 3, recv.all())


class ShutdownTest(E2ETestCase):
    def test_sigterm_exits_zero(self):
        recv = self.receiver()
        svc = self.service(recv)
        svc.put_node("s1", node_doc())
        svc.deploy(job_doc("st"), 0)
        recv.wait_for(1, job="st")
        self.assertEqual(svc.terminate(), 0)

    def test_sigint_exits_zero(self):
        recv = self.receiver()
        svc = self.service(recv)
        self.assertEqual(svc.signal_stop(signal.SIGINT), 0, svc.tail())

    def test_sigterm_idle_right_after_start(self):
        recv = self.receiver(start=False)
        svc = self.service(recv)
        self.assertEqual(svc.terminate(), 0)

    def test_sigterm_during_intake(self):
        # Deploys keep arriving on kept-alive connections while the service
        # stops: it exits 0 (no request left suspended), every deploy
        # answered ok was durable, and the others were answered 503 or cut
        # off, never left hanging.
        recv = self.receiver()
        svc = self.service(recv, workers=2, node_ttl=TTL)
        svc.put_node("i1", node_doc(vcpus=64, memory=65536))
        ok, other, lock = [], [], threading.Lock()
        stop = threading.Event()

        def sender(k):
            conn = http.client.HTTPConnection(HOST, svc.port, timeout=20)
            i = 0
            while not stop.is_set():
                jid = "in-%d-%d" % (k, i)
                i += 1
                body = json.dumps(job_doc(jid, vcpus=0.01, memory=1))
                try:
                    conn.request("POST", "/api/calculate/deploy/%s/0" % jid, body,
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    text = r.read()
                except (OSError, http.client.HTTPException):
                    return  # the service went away: fine, the job was not answered ok
                with lock:
                    (ok if r.status == 200 and text.strip() == b"ok" else other).append(
                        (jid, r.status))
                if r.status != 200:
                    return
        ts = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        wait_until(lambda: len(ok) >= 40, 30, msg="deploys were not answered")
        self.assertEqual(svc.terminate(), 0, svc.tail())
        stop.set()
        for t in ts:
            t.join(30)
            self.assertFalse(t.is_alive(), "a client was left waiting")
        self.assertTrue(all(st == 503 for _, st in other), other)
        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL,
                            name="svc-restart")
        for jid, _ in ok:
            self.assertIn(svc2.job_status(jid, 0)["state"], ("queued", "placed"), jid)

    def test_sigterm_persists_pending_work(self):
        recv = self.receiver(start=False)  # results cannot be delivered
        svc = self.service(recv, workers=2, node_ttl=TTL)
        svc.put_node("p1", node_doc(vcpus=16, memory=16384))
        ids = ["term-%02d" % i for i in range(12)]
        for jid in ids:
            svc.deploy(job_doc(jid, vcpus=1, memory=128), 0)
        self.assertEqual(svc.terminate(), 0)
        recv.start()
        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, name="svc-restart")
        for jid in ids:
            got = recv.wait_for(1, job=jid, timeout=45)
            self.assertIs(got[0].body["found"], True, got)
        self.assertEqual(svc2.node("p1")["reservations"], len(ids))


if __name__ == "__main__":
    unittest.main()
