"""The 40-of-50 burst: 10 nodes of 4 vcpus / 4096 MB, 50 jobs of 1 vcpu /
512 MB sent concurrently over HTTP to a service with 4 worker threads.
Exactly 40 are placed (no node over its 4 vcpus), 10 are not."""

import queue
import threading
import unittest

from harness import E2ETestCase, job_doc, node_doc


class BurstTest(E2ETestCase):
    NODES = 10
    JOBS = 50
    SENDERS = 8

    def _send_concurrently(self, svc, send_one):
        q = queue.Queue()
        for i in range(self.JOBS):
            q.put(i)
        errors = []

        def run():
            while True:
                try:
                    i = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    send_one(i)
                except Exception as e:  # noqa: BLE001 - collected and reported
                    errors.append((i, e))
        ts = [threading.Thread(target=run) for _ in range(self.SENDERS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in ts), "senders hung")
        self.assertEqual(errors, [])

    def _check(self, svc, results):
        self.assertEqual(len(results), self.JOBS)
        self.assertEqual(sorted(r.job for r in results),
                         sorted("burst-%02d" % i for i in range(self.JOBS)),
                         "one result per job")
        placed = [r for r in results if r.body.get("found") is True]
        failed = [r for r in results if r.body.get("found") is False]
        self.assertEqual(len(placed), 40, "exactly 40 placed")
        self.assertEqual(len(failed), 10, "exactly 10 not placed")
        for r in failed:
            self.assertEqual(r.body.get("status"), "NO_QUALIFIED_WORKER_FOUND", r)
            self.assertEqual(r.body.get("reasons"), {"insufficient_cpu": self.NODES}, r)
        per = {}
        for r in placed:
            nid = r.body["node"]["_id"]
            per[nid] = per.get(nid, 0) + 1
        self.assertLessEqual(max(per.values()), 4, per)
        self.assertEqual(per, {"b%d" % i: 4 for i in range(self.NODES)})
        for i in range(self.NODES):
            n = svc.node("b%d" % i)
            self.assertEqual(n["reservations"], 4, n)
            self.assertAlmostEqual(n["free"]["vcpus"], 0)
            self.assertAlmostEqual(n["free"]["memory"], 4096 - 4 * 512)

    def _setup(self):
        recv = self.receiver()
        svc = self.service(recv, workers=4)
        for i in range(self.NODES):
            svc.put_node("b%d" % i, node_doc(vcpus=4, memory=4096, host="bh%d" % i), expect=201)
        return recv, svc

    def test_burst_dropin(self):
        recv, svc = self._setup()

        def send(i):
            svc.deploy(job_doc("burst-%02d" % i, vcpus=1, memory=512), 0)
        self._send_concurrently(svc, send)
        results = recv.wait_for(self.JOBS, timeout=60)
        self._check(svc, results)
        self.assertEqual(len(recv.all()), self.JOBS, "no duplicate results")

    def test_burst_native(self):
        recv, svc = self._setup()

        def send(i):
            r = svc.request("POST", "/api/v1/jobs", job_doc("burst-%02d" % i, vcpus=1, memory=512))
            if r.status != 202:
                raise AssertionError("job %d: %r" % (i, r))
        self._send_concurrently(svc, send)
        results = recv.wait_for(self.JOBS, timeout=60)
        self._check(svc, results)
        states = [svc.job_status("burst-%02d" % i, 0)["state"] for i in range(self.JOBS)]
        self.assertEqual(states.count("placed"), 40)
        self.assertEqual(states.count("unschedulable"), 10)


if __name__ == "__main__":
    unittest.main()
