"""Dead-node re-scheduling: a node that stops reporting for NODE_TTL is
marked inactive and its instances are placed again elsewhere; the cluster
manager gets a second result for the same job id and instance."""

import time
import unittest

from harness import E2ETestCase, Heartbeat, job_doc, node_doc, wait_until

TTL = 2
REAPER = 1


class DeadNodeTest(E2ETestCase):
    def _service(self, recv):
        return self.service(recv, workers=2, node_ttl=TTL,
                            settings={"REAPER_INTERVAL": REAPER})

    def test_instances_move_to_live_node(self):
        recv = self.receiver()
        svc = self._service(recv)
        doc_a = node_doc(vcpus=4, memory=4096, host="ha")
        doc_b = node_doc(vcpus=4, memory=4096, host="hb")
        hb_a = Heartbeat(svc, "A", doc_a).start()
        self.addCleanup(hb_a.stop)
        wait_until(lambda: hb_a.sent >= 1, 10, msg="node A never registered")

        # A is the only node: both instances land there
        svc.deploy(job_doc("dn", vcpus=1, memory=512), 0)
        svc.deploy(job_doc("dn", vcpus=1, memory=512), 1)
        first = recv.wait_for(2, job="dn")
        for r in first:
            self.assertIs(r.body["found"], True, r)
            self.assertEqual(r.body["node"]["_id"], "A")

        # B comes up and stays up; A goes silent
        hb_b = Heartbeat(svc, "B", doc_b).start()
        self.addCleanup(hb_b.stop)
        wait_until(lambda: hb_b.sent >= 1, 10, msg="node B never registered")
        hb_a.stop()
        silent_since = time.monotonic()

        def on_b(r):
            return r.body and r.body.get("found") is True and r.body["node"]["_id"] == "B"
        for inst in (0, 1):
            recv.wait_for(1, job="dn", inst=inst, pred=on_b, timeout=TTL + REAPER + 15)
        elapsed = time.monotonic() - silent_since
        # A's last report was at most one heartbeat interval before silent_since
        self.assertGreaterEqual(elapsed, TTL - 0.7, "moved before the TTL ran out")
        m = svc.metrics()
        self.assertEqual(m.get("cluster_scheduler_jobs_rescheduled_total"), 2)
        self.assertEqual(m.get("cluster_scheduler_nodes_inactive"), 1)

        for inst in (0, 1):
            got = recv.accepted(job="dn", inst=inst)
            self.assertEqual([r.body["node"]["_id"] for r in got], ["A", "B"], got)
            self.assertEqual(got[1].body["job"], job_doc("dn", vcpus=1, memory=512))
            st = svc.job_status("dn", inst)
            self.assertEqual((st["state"], st["node_id"]), ("placed", "B"))

        a = svc.node("A")
        self.assertIs(a["active"], False)
        self.assertEqual(a["reservations"], 0, "A's reservations are released")
        b = svc.node("B")
        self.assertIs(b["active"], True)
        self.assertEqual(b["reservations"], 2)
        self.assertGreater(hb_b.sent, 2)
        self.assertEqual(hb_b.failures, 0)
        # nothing else moves while B keeps reporting
        time.sleep(TTL + REAPER)
        self.assertEqual(len(recv.accepted(job="dn")), 4, recv.all())

    def test_mass_silence_holds_until_few_are_silent(self):
        """When most nodes fall silent at once the reaper moves nothing
        (the likelier cause is on the service's side); once only a couple
        are silent it moves theirs as before."""
        recv = self.receiver()
        svc = self._service(recv)
        names = ["N%d" % i for i in range(5)]
        hbs = {}
        for n in names:
            hbs[n] = Heartbeat(svc, n, node_doc(vcpus=4, memory=4096, host=n.lower())).start()
            self.addCleanup(hbs[n].stop)
        wait_until(lambda: all(h.sent >= 1 for h in hbs.values()), 10,
                   msg="not every node registered")
        job = job_doc("ms", vcpus=1, memory=256)
        for inst in range(10):
            svc.deploy(job, inst)
        first = {r.inst: r.body["node"]["_id"] for r in recv.wait_for(10, job="ms")}
        on = {n: [i for i, m in first.items() if m == n] for n in names}

        # four of the five go silent together
        for n in names[:4]:
            hbs[n]._stop.set()
        for n in names[:4]:
            hbs[n].stop()
        time.sleep(TTL + 3 * REAPER + 0.5)
        self.assertIs(svc.node("N0")["active"], False)
        self.assertEqual(len(recv.accepted(job="ms")), 10, "nothing moved: %r" % recv.all())
        self.assertEqual(svc.metrics().get("cluster_scheduler_jobs_rescheduled_total"), 0)
        for inst, n in first.items():
            st = svc.job_status("ms", inst)
            self.assertEqual((st["state"], st["node_id"]), ("placed", n))
        wait_until(lambda: "moving no instances" in svc.stderr_text(), 5,
                   msg="no warning about the held re-scheduling")

        # N1 and N2 are heard again: two of five silent, a couple
        for n in ("N1", "N2"):
            hbs[n] = Heartbeat(svc, n, node_doc(vcpus=4, memory=4096, host=n.lower())).start()
            self.addCleanup(hbs[n].stop)
        moved = on["N0"] + on["N3"]
        live = {"N1", "N2", "N4"}
        wait_until(lambda: "are heard again" in svc.stderr_text(), TTL + 3 * REAPER,
                   msg="the hold did not end")

        def elsewhere(r):
            return r.body and r.body.get("found") is True and r.body["node"]["_id"] in live
        for inst in moved:
            recv.wait_for(1, job="ms", inst=inst, pred=elsewhere, timeout=TTL + REAPER + 15)
        wait_until(lambda: svc.metrics().get("cluster_scheduler_jobs_rescheduled_total")
                   == len(moved), 5, msg="rescheduled count")
        for inst in on["N1"] + on["N2"] + on["N4"]:
            self.assertEqual(len(recv.accepted(job="ms", inst=inst)), 1, "stayed put")

    def test_no_live_node_gives_not_found(self):
        recv = self.receiver()
        svc = self._service(recv)
        svc.put_node("solo", node_doc(), expect=201)
        svc.deploy(job_doc("orphan"), 0)
        [r] = recv.wait_for(1, job="orphan")
        self.assertEqual(r.body["node"]["_id"], "solo")
        # solo goes silent and there is nowhere else: the new result says so
        res = recv.wait_for(2, job="orphan", timeout=TTL + REAPER + 15)
        b = res[1].body
        self.assertIs(b["found"], False, b)
        self.assertEqual(b["status"], "NO_QUALIFIED_WORKER_FOUND")
        self.assertEqual(b["reasons"], {"inactive": 1})
        self.assertEqual(svc.job_status("orphan", 0)["state"], "unschedulable")
        self.assertEqual(svc.node("solo")["reservations"], 0)

    def test_deleted_node_instances_move(self):
        """DELETE of a node re-schedules what was placed on it, at once."""
        recv = self.receiver()
        svc = self.service(recv, workers=2)
        svc.put_node("big", node_doc(vcpus=16, memory=16384), expect=201)
        svc.deploy(job_doc("mv", vcpus=1, memory=512), 0)
        [r] = recv.wait_for(1, job="mv")
        self.assertEqual(r.body["node"]["_id"], "big")
        svc.put_node("small", node_doc(vcpus=2, memory=2048), expect=201)
        resp = svc.request("DELETE", "/api/v1/nodes/big")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["rescheduled"], 1)
        res = recv.wait_for(2, job="mv", timeout=15)
        self.assertEqual(res[1].body["node"]["_id"], "small")
        self.assertEqual(svc.job_status("mv", 0)["node_id"], "small")
        self.assertEqual(svc.node("small")["reservations"], 1)


if __name__ == "__main__":
    unittest.main()
