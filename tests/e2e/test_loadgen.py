"""build/loadgen against the real service: it registers its nodes, sends
its jobs (as fast as it can, or open loop at a fixed rate), receives every
result itself as the cluster manager and reports what happened as one JSON
object. The figures it prints are the project's benchmark figures, so here
they are checked against what the service did: counts, per-node
placements, the rate it kept, results it never got counted as lost, and
bad options refused."""

import json
import os
import subprocess
import time
import unittest

from harness import HOST, TIME_SCALE, E2ETestCase, cs_bin, free_port

KEYS = ("accepted_per_s", "results_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "lost")


def loadgen_bin():
    """$CS_LOADGEN (set by CTest), else loadgen beside the service binary."""
    p = os.environ.get("CS_LOADGEN")
    if p:
        return p
    return os.path.join(os.path.dirname(cs_bin()), "loadgen")


class LoadgenTest(E2ETestCase):
    NODES = 12

    def setUp(self):
        super().setUp()
        self.assertTrue(os.access(loadgen_bin(), os.X_OK), "no loadgen at %s" % loadgen_bin())

    def run_loadgen(self, svc, recv_port, *args, timeout=120):
        cmd = [loadgen_bin(), "--target", "%s:%d" % (HOST, svc.port),
               "--receiver-port", str(recv_port), "--nodes", str(self.NODES),
               "--timeout", str(30 * TIME_SCALE), "--json"] + list(args)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout * TIME_SCALE)
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, "one JSON object on stdout: %r\nstderr: %s"
                         % (p.stdout, p.stderr[-2000:]))
        return p.returncode, json.loads(lines[0]), p.stderr

    def start(self, **kw):
        port = free_port()
        svc = self.service(port, **kw)
        return svc, port

    def check_complete(self, out, jobs):
        for k in KEYS:
            self.assertIn(k, out)
        self.assertEqual(out["sent"], jobs)
        self.assertEqual(out["accepted"], jobs)
        self.assertEqual(out["results"], jobs)
        self.assertEqual(out["found"], jobs, "every job fits")
        self.assertEqual(out["errors"], 0, out.get("first_error"))
        self.assertEqual(out["lost"], 0)
        self.assertEqual(out["duplicates"], 0)
        self.assertEqual(out["malformed"], 0)
        self.assertEqual(out["node_errors"], 0)
        self.assertGreater(out["accepted_per_s"], 0)
        self.assertGreater(out["results_per_s"], 0)
        self.assertLessEqual(out["p50_ms"], out["p99_ms"])
        self.assertLessEqual(out["p99_ms"], out["max_ms"])
        self.assertGreater(out["max_ms"], 0)

    def test_dropin_as_fast_as_possible(self):
        svc, port = self.start()
        jobs = 300
        rc, out, err = self.run_loadgen(svc, port, "--jobs", str(jobs), "--connections", "4",
                                        "--per-node", "--run-id", "fast")
        self.assertEqual(rc, 0, err[-2000:])
        self.check_complete(out, jobs)
        self.assertEqual(out["route"], "dropin")
        # Placements per node as loadgen counted them from the results add
        # up, and agree with the reservations the service holds.
        per = out["per_node"]
        self.assertEqual(sum(per.values()), jobs)
        self.assertEqual(out["nodes_used"], len([v for v in per.values() if v > 0]))
        self.assertEqual(out["per_node_max"], max(per.values()))
        for nid, count in per.items():
            self.assertEqual(svc.node(nid)["reservations"], count, nid)
        # The service knows the jobs by loadgen's ids.
        self.assertEqual(svc.job_status("fast-0", 0)["state"], "placed")
        self.assertEqual(svc.job_status("fast-%d" % (jobs - 1), 0)["state"], "placed")

    def test_native_at_a_fixed_rate(self):
        svc, port = self.start()
        jobs, rate = 100, 50.0
        t0 = time.monotonic()
        rc, out, err = self.run_loadgen(svc, port, "--route", "native", "--jobs", str(jobs),
                                        "--rate", str(rate), "--connections", "4",
                                        "--run-id", "paced")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err[-2000:])
        self.check_complete(out, jobs)
        self.assertEqual(out["route"], "native")
        # Open loop: job n is due n/rate after the start, so the sending
        # takes (jobs - 1) / rate s however fast the service answers.
        self.assertGreaterEqual(out["send_s"], (jobs - 1) / rate * 0.98)
        self.assertLessEqual(out["accepted_per_s"], rate * 1.05)
        self.assertGreaterEqual(took, (jobs - 1) / rate)
        self.assertEqual(svc.job_status("paced-42", 0)["state"], "placed")

    def test_results_that_never_come_count_as_lost(self):
        # The service delivers to a port where nobody listens: loadgen's
        # receiver is elsewhere, so every accepted job ends up lost.
        svc = self.service(free_port())
        port = free_port()
        while port == svc.manager_port:
            port = free_port()
        jobs = 20
        rc, out, err = self.run_loadgen(svc, port, "--jobs", str(jobs), "--connections", "2",
                                        "--timeout", "1")
        self.assertEqual(rc, 1, "lost jobs make the exit status 1")
        self.assertEqual(out["accepted"], jobs)
        self.assertEqual(out["results"], 0)
        self.assertEqual(out["lost"], jobs)
        self.assertTrue(out["timed_out"])

    def test_no_service_is_an_error_not_a_hang(self):
        port = free_port()
        p = subprocess.run([loadgen_bin(), "--target", "%s:%d" % (HOST, free_port()),
                            "--receiver-port", str(port), "--wait", "1", "--jobs", "5",
                            "--json"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60 * TIME_SCALE)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotEqual(p.stderr.strip(), "", "says why")

    def test_bad_options(self):
        for args in ([], ["--target", "127.0.0.1"], ["--target", "%s:1" % HOST, "--rate", "-1"],
                     ["--target", "%s:1" % HOST, "--connections", "0"],
                     ["--target", "%s:1" % HOST, "--route", "other"],
                     ["--target", "%s:1" % HOST, "--no-such-option"]):
            p = subprocess.run([loadgen_bin()] + args, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(p.stdout, "", args)
            self.assertNotEqual(p.stderr.strip(), "", args)


if __name__ == "__main__":
    unittest.main()
