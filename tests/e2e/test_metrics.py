"""GET /metrics: Prometheus text with the metric families the issue asks for,
and values that follow what happened."""

import time
import unittest

from harness import E2ETestCase, job_doc, metric_sum, node_doc, wait_until

P = "cluster_scheduler_"
# role -> family name (as src/service/metrics.c writes them)
F = {
    "queue_depth": P + "queue_depth",
    "received": P + "jobs_received_total",
    "placed": P + "jobs_placed_total",
    "unschedulable": P + "jobs_unschedulable_total",
    "decision": P + "decision_seconds",
    "request_to_result": P + "request_to_result_seconds",
    "delivery_failed": P + "result_deliveries_failed_total",
    "delivery_retried": P + "result_deliveries_retried_total",
    "delivery_given_up": P + "result_deliveries_given_up_total",
    "nodes_active": P + "nodes_active",
    "nodes_inactive": P + "nodes_inactive",
    "rescheduled": P + "jobs_rescheduled_total",
    "delivered": P + "result_deliveries_total",
    "outbox_depth": P + "outbox_depth",
}
HISTOGRAMS = ("decision", "request_to_result")


class MetricsTest(E2ETestCase):
    def test_families_and_values(self):
        recv = self.receiver()
        svc = self.service(recv, node_ttl=2, settings={"REAPER_INTERVAL": 1})
        r = svc.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r.headers)
        m0 = svc.metrics()
        for role, fam in F.items():
            if role in HISTOGRAMS:
                self.assertIn(fam + "_count", {k.split("{")[0] for k in m0}, fam)
                self.assertEqual(m0["__types__"].get(fam), "histogram", fam)
            else:
                self.assertIsNotNone(metric_sum(m0, fam), "family %s missing" % fam)

        svc.put_node("m1", node_doc(vcpus=2, memory=2048))
        svc.put_node("gone", node_doc(vcpus=1, memory=1024))  # will go inactive
        svc.deploy(job_doc("mp", vcpus=1), 0)
        svc.deploy(job_doc("mu", vcpus=64), 0)
        recv.wait_for(1, job="mp")
        recv.wait_for(1, job="mu")
        # keep m1 alive while "gone" times out

        def settled():
            svc.put_node("m1", {"cpu_percent": 0})
            m = svc.metrics()
            if metric_sum(m, F["nodes_inactive"]) == 1 and metric_sum(m, F["nodes_active"]) == 1:
                return m
            time.sleep(0.3)
            return None
        m = wait_until(settled, 20, interval=0.05,
                       msg=lambda: "nodes_active/inactive never became 1/1: %r"
                       % {k: v for k, v in svc.metrics().items() if "nodes" in k})
        self.assertEqual(metric_sum(m, F["received"]) - metric_sum(m0, F["received"]), 2)
        self.assertEqual(metric_sum(m, F["placed"]) - metric_sum(m0, F["placed"]), 1)
        self.assertEqual(metric_sum(m, F["unschedulable"]) - metric_sum(m0, F["unschedulable"]), 1)
        self.assertEqual(metric_sum(m, F["queue_depth"]), 0)
        for role in HISTOGRAMS:
            fam = F[role]
            self.assertGreaterEqual(m[fam + "_count"], 2, fam)
            self.assertGreaterEqual(m[fam + "_sum"], 0, fam)
            buckets = sorted(((k, v) for k, v in m.items()
                              if k.startswith(fam + "_bucket{")), key=lambda kv: _le(kv[0]))
            self.assertTrue(buckets, fam)
            self.assertEqual(_le(buckets[-1][0]), float("inf"), fam)
            self.assertEqual(buckets[-1][1], m[fam + "_count"], fam)
            vals = [v for _, v in buckets]
            self.assertEqual(vals, sorted(vals), "buckets are cumulative: " + fam)

    def test_delivery_failures_counted(self):
        recv = self.receiver()
        recv.set_mode("503")
        svc = self.service(recv, settings={"RESULT_RETRY_S": 2})
        m0 = svc.metrics()
        svc.put_node("f1", node_doc())
        svc.deploy(job_doc("mf"), 0)
        recv.wait_attempts(2, job="mf", timeout=15)

        def gave_up():
            m = svc.metrics()
            return m if metric_sum(m, F["delivery_given_up"]) >= 1 else None
        m = wait_until(gave_up, 20, interval=0.2, msg="no give-up counted")
        self.assertGreaterEqual(metric_sum(m, F["delivery_failed"])
                                - metric_sum(m0, F["delivery_failed"]), 2)
        self.assertGreaterEqual(metric_sum(m, F["delivery_retried"])
                                - metric_sum(m0, F["delivery_retried"]), 1)
        # given up: no more attempts once it is counted
        n = len(recv.all())
        recv.set_mode("ok")
        time.sleep(2.0)
        self.assertEqual(len(recv.all()), n, recv.all())
        self.assertEqual(recv.accepted(job="mf"), [])


def _le(sample_name):
    i = sample_name.find('le="')
    v = sample_name[i + 4:sample_name.index('"', i + 4)]
    return float("inf") if v in ("+Inf", "Inf") else float(v)


if __name__ == "__main__":
    unittest.main()
