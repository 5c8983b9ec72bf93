"""Result delivery retry: a result the cluster manager does not accept
(503, connection refused) is kept and retried with backoff; once the manager
is back it is accepted exactly once."""

import time
import unittest

from harness import E2ETestCase, job_doc, node_doc, wait_until


class RetryTest(E2ETestCase):
    def _setup(self, recv, **settings):
        svc = self.service(recv, workers=2, settings=settings or None)
        svc.put_node("r1", node_doc(vcpus=8, memory=8192))
        return svc

    def test_503_then_ok(self):
        recv = self.receiver()
        recv.set_mode("503")
        svc = self._setup(recv)
        svc.deploy(job_doc("r503"), 0)
        recv.wait_attempts(1, job="r503", timeout=15)
        t0 = time.monotonic()
        # keep refusing for ~2 s; the service must keep trying
        time.sleep(2.0)
        recv.set_mode("ok")
        got = recv.wait_for(1, job="r503", timeout=30)
        self.assertGreaterEqual(len(recv.rejected(job="r503")), 2,
                                "expected retries while the manager answered 503: %r" % recv.all())
        time.sleep(1.5)  # no further deliveries after the accepted one
        acc = recv.accepted(job="r503")
        self.assertEqual(len(acc), 1, recv.all())
        self.assertIs(got[0].body["found"], True)
        self.assertEqual(got[0].body["node"]["_id"], "r1")
        self.assertEqual(got[0].body["job"], job_doc("r503"))
        # every attempt carried the same result
        self.assertTrue(all(r.body == got[0].body for r in recv.all()), recv.all())
        self.assertLess(got[0].at - t0, 25)

    def test_manager_down_then_up(self):
        recv = self.receiver(start=False)  # connection refused
        svc = self._setup(recv)
        svc.deploy(job_doc("rdown"), 0)
        svc.deploy(job_doc("rdown2"), 0)
        svc.wait_job_state("rdown", 0)
        svc.wait_job_state("rdown2", 0)
        time.sleep(2.0)
        recv.start()
        recv.wait_for(1, job="rdown", timeout=30)
        recv.wait_for(1, job="rdown2", timeout=30)
        time.sleep(1.5)
        self.assertEqual(len(recv.accepted(job="rdown")), 1, recv.all())
        self.assertEqual(len(recv.accepted(job="rdown2")), 1, recv.all())

    def test_manager_goes_away_and_comes_back(self):
        # a live keep-alive connection is cut, then the manager returns
        recv = self.receiver()
        svc = self._setup(recv)
        svc.deploy(job_doc("before"), 0)
        recv.wait_for(1, job="before")
        # cut the connection only once the service has seen the 200, so the
        # test checks the reconnect and not a race with the answer in flight
        wait_until(lambda: svc.metrics().get("cluster_scheduler_outbox_depth") == 0, 10)
        recv.stop()
        svc.deploy(job_doc("during"), 0)
        svc.wait_job_state("during", 0)
        time.sleep(2.0)
        recv.start()
        recv.wait_for(1, job="during", timeout=30)
        time.sleep(1.0)
        self.assertEqual(len(recv.accepted(job="during")), 1, recv.all())
        self.assertEqual(len(recv.accepted(job="before")), 1, recv.all())

    def test_manager_times_out_then_ok(self):
        # the manager reads the POST and never answers: after RESULT_TIMEOUT
        # the service counts a failure and retries
        recv = self.receiver()
        recv.set_mode("hang")
        svc = self._setup(recv, RESULT_TIMEOUT=0.5)
        svc.deploy(job_doc("rhang"), 0)
        recv.wait_attempts(1, job="rhang", timeout=15)
        time.sleep(2.0)
        recv.set_mode("ok")
        got = recv.wait_for(1, job="rhang", timeout=30)
        time.sleep(1.5)
        self.assertEqual(len(recv.accepted(job="rhang")), 1, recv.all())
        self.assertGreaterEqual(len(recv.rejected(job="rhang")), 1, recv.all())
        self.assertIs(got[0].body["found"], True)
        m = svc.metrics()
        self.assertGreaterEqual(m.get("cluster_scheduler_result_deliveries_failed_total", 0), 1)

    def test_many_results_survive_outage(self):
        recv = self.receiver()
        recv.set_mode("503")
        svc = self._setup(recv)
        ids = ["many-%02d" % i for i in range(20)]
        for jid in ids:
            svc.deploy(job_doc(jid, vcpus=0.1, memory=10), 0)
        recv.wait_attempts(5, timeout=15)
        time.sleep(1.0)
        recv.set_mode("ok")
        for jid in ids:
            recv.wait_for(1, job=jid, timeout=40)
        time.sleep(1.0)
        for jid in ids:
            self.assertEqual(len(recv.accepted(job=jid)), 1, jid)


if __name__ == "__main__":
    unittest.main()
