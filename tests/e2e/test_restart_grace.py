"""A restart is not a node death: nodes that could not report while the
service was down longer than NODE_TTL get one NODE_TTL after the start to
report again before their instances are re-scheduled (the soak found a
restarted process moving every instance off live nodes)."""

import time
import unittest

from harness import E2ETestCase, Heartbeat, job_doc, node_doc, wait_until

TTL = 3
REAPER = 0.5
P = "cluster_scheduler_"


class RestartGraceTest(E2ETestCase):
    def test_nodes_reporting_soon_after_a_long_restart_keep_their_instances(self):
        recv = self.receiver()
        st = {"REAPER_INTERVAL": REAPER}
        svc = self.service(recv, workers=2, node_ttl=TTL, settings=st)
        doc = node_doc(vcpus=8, memory=8192, host="ha")
        svc.put_node("A", doc, expect=201)
        for inst in range(3):
            svc.deploy(job_doc("keep", vcpus=1, memory=256), inst)
        for r in recv.wait_for(3, job="keep"):
            self.assertEqual(r.body["node"]["_id"], "A", r)
        self.assertEqual(svc.terminate(), 0)
        time.sleep(TTL + 1)  # down longer than NODE_TTL: A's last report is stale

        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, settings=st,
                            name="svc-restart")
        # A reports again within NODE_TTL of the start, but after the reaper
        # has had a few turns
        time.sleep(4 * REAPER)
        hb = Heartbeat(svc2, "A", doc, interval=0.5).start()
        self.addCleanup(hb.stop)
        wait_until(lambda: hb.sent >= 1, 10, msg="A's report after the restart not stored")
        time.sleep(TTL + 2 * REAPER)
        self.assertEqual(len(recv.accepted(job="keep")), 3,
                         "instances re-scheduled off a live node: %r" % recv.all())
        self.assertEqual(svc2.metrics().get(P + "jobs_rescheduled_total"), 0)
        self.assertEqual(svc2.node("A")["reservations"], 3)

    def test_a_node_silent_through_the_grace_still_moves(self):
        recv = self.receiver()
        st = {"REAPER_INTERVAL": REAPER}
        svc = self.service(recv, workers=2, node_ttl=TTL, settings=st)
        svc.put_node("gone", node_doc(vcpus=8, memory=8192), expect=201)
        svc.deploy(job_doc("move", vcpus=1, memory=256), 0)
        [r] = recv.wait_for(1, job="move")
        self.assertEqual(r.body["node"]["_id"], "gone")
        self.assertEqual(svc.terminate(), 0)
        time.sleep(TTL + 1)

        svc2 = self.service(recv, data_dir=svc.data_dir, workers=2, node_ttl=TTL, settings=st,
                            name="svc-restart")
        started = time.monotonic()
        hb = Heartbeat(svc2, "live", node_doc(vcpus=8, memory=8192), interval=0.5).start()
        self.addCleanup(hb.stop)
        res = recv.wait_for(2, job="move", timeout=TTL + 15)
        waited = time.monotonic() - started
        self.assertGreaterEqual(waited, TTL - 2 * REAPER, "moved before the grace ran out")
        self.assertEqual(res[1].body["node"]["_id"], "live", res[1])
        self.assertEqual(svc2.metrics().get(P + "jobs_rescheduled_total"), 1)


if __name__ == "__main__":
    unittest.main()
