"""Redis mode end to end: REDIS_ADDR / --redis moves jobs, the node table,
reservations and the outbox into a shared Redis, and --role splits the
service into one HTTP intake process (api) and any number of placement
processes (worker) that share that Redis.

Every test runs its own redis-server (harness.RedisServer) on a free
loopback port; redis-server missing on PATH fails the test."""

import os
import queue
import subprocess
import sys
import threading
import time
import unittest

from harness import (HOST, E2ETestCase, Heartbeat, free_port, job_doc, metric_sum, node_doc,
                     wait_until)

P = "cluster_scheduler_"
PLACED = P + "jobs_placed_total"
UNSCHED = P + "jobs_unschedulable_total"

# Settings of the Redis mode a test does not name are removed from the
# environment, so the caller's shell cannot change what is tested.
REDIS_VARS = ("REDIS_ADDR", "ROLE", "REDIS_CONNECT_TIMEOUT", "REDIS_TIMEOUT", "CLAIM_IDLE",
              "RESULT_LEASE")


class RedisCase(E2ETestCase):
    def rsvc(self, recv, redis, role=None, role_flag=False, url=None, settings=None,
             start=True, **kw):
        """A service in Redis mode. role None = the default (all); given
        as --role when role_flag, else as ROLE in the environment. url
        defaults to redis.url."""
        s = {k: None for k in REDIS_VARS}
        s["REDIS_ADDR"] = url if url is not None else redis.url
        args = list(kw.pop("args", []))
        if role is not None:
            if role_flag:
                args += ["--role", role]
            else:
                s["ROLE"] = role
        s.update(settings or {})
        kw.setdefault("node_ttl", 120)
        if role is not None:
            kw.setdefault("name", "%s%d" % (role, len(self._services) + 1))
        return self.service(recv, start=start, settings=s, args=args, **kw)

    def send_concurrently(self, items, send_one, threads=8, timeout=120):
        """send_one(item) for every item from `threads` threads; asserts
        none raised."""
        q = queue.Queue()
        for it in items:
            q.put(it)
        errors = []

        def run():
            while True:
                try:
                    it = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    send_one(it)
                except Exception as e:  # noqa: BLE001 - collected and reported
                    errors.append((it, e))
        ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for t in ts:
            t.start()
        deadline = time.monotonic() + timeout
        for t in ts:
            t.join(max(0.1, deadline - time.monotonic()))
        self.assertFalse(any(t.is_alive() for t in ts), "senders hung")
        self.assertEqual(errors, [])

    def post_job(self, svc, doc, expect=(202,)):
        r = svc.request("POST", "/api/v1/jobs", doc)
        if r.status not in expect:
            raise AssertionError("POST /api/v1/jobs %s: expected %s, got %r"
                                 % (doc.get("_id"), expect, r))
        return r

    @staticmethod
    def pending_note(redis):
        """Diagnostic only: the consumer group's pending entries (key names
        from docs/ARCHITECTURE.md), to show whether a kill left any."""
        try:
            return "pending stream entries %r" % (redis.cmd("XPENDING", "cs:jobs", "cs:workers"),)
        except Exception as e:  # noqa: BLE001 - a diagnostic, never a failure
            return "pending stream entries unknown (%s)" % e

    def nodes_by_id(self, svc):
        return {n["_id"]: n for n in svc.get_json("/api/v1/nodes")["nodes"]}

    def assert_one_result_each(self, recv, keys, settle=1.0):
        """Every (job, inst) in keys has accepted results; after settle
        seconds, all of a key's accepted results are identical (a re-sent
        result is tolerated only when it is the same result). Returns
        {key: body}."""
        for job, inst in keys:
            recv.wait_for(1, job=job, inst=inst, timeout=45)
        time.sleep(settle)
        out = {}
        for job, inst in keys:
            got = recv.accepted(job=job, inst=inst)
            bodies = [r.body for r in got]
            self.assertTrue(all(b == bodies[0] for b in bodies),
                            "%s/%s: different results %r" % (job, inst, got))
            out[(job, inst)] = bodies[0]
        return out


# --------------------------------------------------------------------------


class RedisBasicTest(RedisCase):
    def test_all_role_places_and_keeps_state_in_redis(self):
        redis = self.redis()
        recv = self.receiver()
        svc = self.rsvc(recv, redis, workers=2)
        self.assertAlive(svc)
        svc.put_node("n1", node_doc(vcpus=4, memory=4096, host="h1", zone="z1"), expect=201)
        svc.put_node("n2", node_doc(vcpus=8, memory=8192, host="h2"), expect=201)
        svc.put_node("n2", node_doc(vcpus=8, memory=8192, host="h2"), expect=200)

        # drop-in route
        dj = job_doc("d1", vcpus=1, memory=512, image="nginx:1")
        svc.deploy(dj, 0)
        [res] = recv.wait_for(1, job="d1", inst=0)
        self.assertEqual(res.path, "/api/result/d1/0")
        self.assertIs(res.body["found"], True, res)
        self.assertIn(res.body["node"]["_id"], ("n1", "n2"))
        self.assertEqual(res.body["job"], dj)
        self.assertEqual(res.body["candidates"][0]["node_id"], res.body["node"]["_id"])
        st = svc.wait_job_state("d1", 0)
        self.assertEqual(st["node_id"], res.body["node"]["_id"])

        # native route
        nj = job_doc("j1", vcpus=2, memory=1024)
        r = self.post_job(svc, nj)
        self.assertEqual(r.json(), {"job_id": "j1", "instance": 0, "state": "queued"})
        st = svc.wait_job_state("j1", 0)
        [res2] = recv.wait_for(1, job="j1", inst=0)
        self.assertIs(res2.body["found"], True, res2)
        self.assertEqual(res2.body["node"]["_id"], st["node_id"])
        self.assertEqual(res2.body["job"], nj)
        # the same job again is known, not queued twice
        r = self.post_job(svc, nj, expect=(200,))
        self.assertEqual(r.json()["state"], "placed")

        # replicate
        rj = job_doc("rep", vcpus=1, memory=256)
        r = svc.request("POST", "/api/calculate/replicate", {"job": rj, "replicas": 3})
        self.assertEqual((r.status, r.text.strip()), (200, "ok"), r)
        got = recv.wait_for(3, job="rep")
        self.assertEqual(sorted(x.inst for x in got), [0, 1, 2])
        self.assertTrue(all(x.body["found"] for x in got), got)

        # reserved capacity, as the cluster sees it
        want_vcpus = 1 + 2 + 3
        want_mem = 512 + 1024 + 3 * 256

        def totals():
            ns = self.nodes_by_id(svc)
            return (sum(n["reservations"] for n in ns.values()),
                    sum(n["reserved"]["vcpus"] for n in ns.values()),
                    sum(n["reserved"]["memory"] for n in ns.values()))
        wait_until(lambda: totals() == (5, want_vcpus, want_mem), 5,
                   msg=lambda: "reservations/vcpus/memory %r, want %r"
                   % (totals(), (5, want_vcpus, want_mem)))
        ns = self.nodes_by_id(svc)
        self.assertEqual(sorted(ns), ["n1", "n2"])
        self.assertEqual(ns["n1"]["zone"], "z1")
        for n in ns.values():
            self.assertLessEqual(n["reserved"]["vcpus"], n["vcpus"], n)
            self.assertAlmostEqual(n["free"]["vcpus"] + n["reserved"]["vcpus"], n["vcpus"])
        time.sleep(0.5)
        self.assertEqual(len(recv.accepted()), 5, "no extra results: %r" % recv.all())

        # deleting a job releases its reservation
        r = svc.request("DELETE", "/api/v1/jobs/j1/0")
        self.assertEqual(r.status, 200, r)
        self.assertJSONError(svc.request("GET", "/api/v1/jobs/j1/0"), 404)
        want_vcpus -= 2
        want_mem -= 1024
        wait_until(lambda: totals() == (4, want_vcpus, want_mem), 5,
                   msg=lambda: "after DELETE: reservations/vcpus/memory %r, want %r"
                   % (totals(), (4, want_vcpus, want_mem)))

        # the state is in Redis, not in DATA_DIR
        self.assertGreater(redis.cmd("DBSIZE"), 0)
        self.assertEqual(os.listdir(svc.data_dir), [], "Redis mode must not use DATA_DIR")

        # a fresh process on the same Redis sees the same nodes and jobs
        self.assertEqual(svc.terminate(), 0)
        svc2 = self.rsvc(recv, redis, workers=2, name="svc-again")
        ns2 = self.nodes_by_id(svc2)
        self.assertEqual(sorted(ns2), ["n1", "n2"])
        self.assertEqual(sum(n["reservations"] for n in ns2.values()), 4)
        self.assertEqual(svc2.job_status("d1", 0)["node_id"], res.body["node"]["_id"])
        self.assertEqual(svc2.request("GET", "/api/v1/jobs/j1/0").status, 404)
        time.sleep(0.5)
        self.assertEqual(len(recv.accepted()), 5, "a restart re-sends nothing: %r" % recv.all())


# --------------------------------------------------------------------------


class RedisRolesTest(RedisCase):
    NODES = 10
    JOBS = 50
    WORKERS = 4

    def test_api_and_four_workers_no_double_booking(self):
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, role="api", role_flag=True, workers=2)
        workers = [self.rsvc(recv, redis, role="worker", workers=2,
                             name="worker%d" % i) for i in range(self.WORKERS)]
        # a worker answers only GET /, /status and /metrics
        w0 = workers[0]
        self.assertEqual(w0.get("/").status, 200)
        self.assertEqual(w0.get("/metrics").status, 200)
        for method, path, body in (("PUT", "/api/v1/nodes/wx", node_doc()),
                                   ("POST", "/api/v1/jobs", job_doc("wx")),
                                   ("POST", "/api/calculate/deploy/wx/0", job_doc("wx")),
                                   ("GET", "/api/v1/nodes", None)):
            r = w0.request(method, path, body)
            self.assertTrue(400 <= r.status < 500,
                            "worker must not serve %s %s: %r" % (method, path, r))

        for i in range(self.NODES):
            api.put_node("b%d" % i, node_doc(vcpus=4, memory=4096, host="bh%d" % i), expect=201)

        ids = ["burst-%02d" % i for i in range(self.JOBS)]

        def send(i):
            jid = ids[i]
            doc = job_doc(jid, vcpus=1, memory=512)
            if i % 2:
                api.deploy(doc, 0)
            else:
                self.post_job(api, doc)
        self.send_concurrently(range(self.JOBS), send)

        recv.wait_for(self.JOBS, timeout=60)
        bodies = self.assert_one_result_each(recv, [(j, 0) for j in ids])
        self.assertEqual(len(recv.accepted()), self.JOBS,
                         "exactly one result per job: %r"
                         % sorted((r.job, r.inst) for r in recv.accepted()))
        placed = {k: b for k, b in bodies.items() if b.get("found") is True}
        failed = {k: b for k, b in bodies.items() if b.get("found") is False}
        per = {}
        for b in placed.values():
            per[b["node"]["_id"]] = per.get(b["node"]["_id"], 0) + 1
        self.assertLessEqual(max(per.values()), 4, "a node got more than 4 jobs: %r" % per)
        self.assertEqual(len(placed), 40, "exactly 40 placed; per node %r" % per)
        self.assertEqual(len(failed), 10, "exactly 10 not placed")
        self.assertEqual(per, {"b%d" % i: 4 for i in range(self.NODES)})
        for k, b in failed.items():
            self.assertEqual(b.get("status"), "NO_QUALIFIED_WORKER_FOUND", (k, b))
            self.assertEqual(b.get("reasons"), {"insufficient_cpu": self.NODES}, (k, b))

        # the api process sees the same reservations
        def reserved():
            ns = self.nodes_by_id(api)
            return {n: (ns[n]["reservations"], ns[n]["reserved"]["vcpus"]) for n in ns}
        want = {"b%d" % i: (4, 4) for i in range(self.NODES)}
        wait_until(lambda: reserved() == want, 5,
                   msg=lambda: "reservations per node %r" % reserved())
        for n in self.nodes_by_id(api).values():
            self.assertLessEqual(n["reserved"]["vcpus"], n["vcpus"], n)
            self.assertAlmostEqual(n["reserved"]["memory"], 4 * 512)
            self.assertAlmostEqual(n["free"]["vcpus"], 0)
        for (jid, inst), b in bodies.items():
            st = api.job_status(jid, inst)
            if b["found"]:
                self.assertEqual((st["state"], st["node_id"]), ("placed", b["node"]["_id"]))
            else:
                self.assertEqual(st["state"], "unschedulable", st)

        # which worker did what: only the sum is asserted
        dist = []
        for w in workers:
            m = w.metrics()
            dist.append((w.name, metric_sum(m, PLACED) or 0, metric_sum(m, UNSCHED) or 0))
        print("\nplacements per worker process (placed, unschedulable): %r" % dist,
              file=sys.stderr)
        self.assertEqual(sum(d[1] for d in dist), 40, dist)
        self.assertEqual(sum(d[2] for d in dist), 10, dist)
        for s in [api] + workers:
            self.assertAlive(s)

    def test_api_alone_queues_then_worker_places(self):
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, role="api")
        api.put_node("q1", node_doc(vcpus=4, memory=4096), expect=201)
        self.post_job(api, job_doc("waits"))
        time.sleep(1.5)
        self.assertEqual(api.job_status("waits", 0)["state"], "queued",
                         "an api process does not place")
        self.assertEqual(recv.all(), [], "an api process does not deliver")
        self.rsvc(recv, redis, role="worker", role_flag=True, workers=1)
        st = api.wait_job_state("waits", 0)
        self.assertEqual(st["node_id"], "q1")
        [res] = recv.wait_for(1, job="waits")
        self.assertEqual(res.body["node"]["_id"], "q1")
        # a node registered through the api is seen by the worker at once
        api.put_node("q2", node_doc(vcpus=64, memory=65536), expect=201)
        self.post_job(api, job_doc("big", vcpus=32, memory=1024))
        st = api.wait_job_state("big", 0, states=("placed", "unschedulable"))
        self.assertEqual((st["state"], st.get("node_id")), ("placed", "q2"), st)
        # and so is a capacity update: only q1 (now 40 vcpus) fits 36
        api.put_node("q1", {"vcpus": 40}, expect=200)
        self.post_job(api, job_doc("bigger", vcpus=36, memory=1024))
        st = api.wait_job_state("bigger", 0, states=("placed", "unschedulable"))
        self.assertEqual((st["state"], st.get("node_id")), ("placed", "q1"), st)


# --------------------------------------------------------------------------


class RedisOutageTest(RedisCase):
    def _intake(self, svc, n):
        """The three intake routes, each once; returns [(what, Response)]."""
        return [
            ("PUT node", svc.request("PUT", "/api/v1/nodes/o-%d" % n, node_doc())),
            ("POST job", svc.request("POST", "/api/v1/jobs", job_doc("outage-j%d" % n))),
            ("deploy", svc.request("POST", "/api/calculate/deploy/outage-d%d/0" % n,
                                   job_doc("outage-d%d" % n))),
        ]

    def test_redis_restart(self):
        redis = self.redis()
        recv = self.receiver()
        settings = {"REDIS_CONNECT_TIMEOUT": 1, "REDIS_TIMEOUT": 2}
        api = self.rsvc(recv, redis, role="api", settings=settings)
        worker = self.rsvc(recv, redis, role="worker", workers=2,
                           settings=dict(settings, CLAIM_IDLE=2))
        api.put_node("big", node_doc(vcpus=64, memory=65536), expect=201)

        # the cluster manager refuses results: they stay undelivered
        recv.set_mode("503")
        decided = ["pre-%02d" % i for i in range(10)]
        for jid in decided:
            self.post_job(api, job_doc(jid, vcpus=1, memory=128))
        for jid in decided:
            api.wait_job_state(jid, 0)
        recv.wait_attempts(1)
        # and some accepted right before the outage, decided or not
        late = ["late-%02d" % i for i in range(5)]
        for jid in late:
            api.deploy(job_doc(jid, vcpus=1, memory=128), 0)

        redis.stop()
        t0 = time.monotonic()
        refused = []

        last = [None]

        def down():
            last[0] = api.request("PUT", "/api/v1/nodes/big", node_doc(vcpus=64, memory=65536))
            return last[0].status == 503
        wait_until(down, 10, interval=0.2,
                   msg=lambda: "PUT /api/v1/nodes did not answer 503 within 10 s of Redis "
                   "stopping; last %r" % last[0])
        print("\nintake answered 503 %.1f s after Redis stopped" % (time.monotonic() - t0),
              file=sys.stderr)
        for n in range(2):
            for what, r in self._intake(api, n):
                self.assertJSONError(r, 503, msg="%s while Redis is down" % what)
                if what != "PUT node":
                    refused.append("outage-%s%d" % ("j" if what == "POST job" else "d", n))
        for s in (api, worker):
            self.assertAlive(s)
        time.sleep(1.0)  # down a little longer, while results are retried

        redis.start()
        t1 = time.monotonic()

        def up():
            last[0] = api.request("PUT", "/api/v1/nodes/big", node_doc(vcpus=64, memory=65536))
            return last[0].status in (200, 201)
        wait_until(up, 20, interval=0.2,
                   msg=lambda: "intake still failing 20 s after Redis came back; last %r\n%s"
                   % (last[0], api.tail(15)))
        print("intake back %.1f s after Redis restarted" % (time.monotonic() - t1),
              file=sys.stderr)
        after = ["post-%02d" % i for i in range(5)]
        for jid in after:
            self.post_job(api, job_doc(jid, vcpus=1, memory=128))
        recv.set_mode("ok")

        keys = [(j, 0) for j in decided + late + after]
        bodies = self.assert_one_result_each(recv, keys)
        for k, b in bodies.items():
            self.assertIs(b["found"], True, (k, b))
            self.assertEqual(b["node"]["_id"], "big", (k, b))
        for k in keys:
            self.assertEqual(len(recv.accepted(job=k[0], inst=k[1])), 1,
                             "%s/%d: exactly one result: %r" % (k[0], k[1],
                                                                recv.accepted(job=k[0])))
        for jid in refused:
            self.assertEqual([r for r in recv.all() if r.job == jid], [],
                             "%s was answered 503 yet got a result" % jid)
            self.assertEqual(api.request("GET", "/api/v1/jobs/%s/0" % jid).status, 404)
        wait_until(lambda: api.node("big")["reservations"] == len(keys), 5,
                   msg=lambda: "reservations on big: %r, want %d"
                   % (api.node("big")["reservations"], len(keys)))
        for jid, _ in keys:
            self.assertEqual(api.job_status(jid, 0)["state"], "placed")
        for s in (api, worker):
            self.assertAlive(s)

    def test_all_role_outage_status_still_ok(self):
        """A single `all` process: /status answers while Redis is down, a
        job submitted after the restart is placed."""
        redis = self.redis()
        recv = self.receiver()
        svc = self.rsvc(recv, redis, settings={"REDIS_CONNECT_TIMEOUT": 1, "REDIS_TIMEOUT": 2,
                                               "CLAIM_IDLE": 2})
        svc.put_node("n", node_doc(vcpus=8, memory=8192), expect=201)
        svc.deploy(job_doc("before"), 0)
        recv.wait_for(1, job="before")
        redis.kill()  # kill -9: fsync always kept every acknowledged write
        last = [None]

        def post(jid, want):
            last[0] = svc.request("POST", "/api/v1/jobs", job_doc(jid))
            return last[0].status in want
        wait_until(lambda: post("x", (503,)), 10, interval=0.2,
                   msg=lambda: "no 503 within 10 s of Redis dying; last %r" % last[0])
        self.assertJSONError(svc.request("POST", "/api/v1/jobs", job_doc("x")), 503)
        for _ in range(3):
            r = svc.get("/status", timeout=5)
            self.assertEqual((r.status, r.text.strip()), (200, "ok"))
            time.sleep(0.3)
        redis.start()
        wait_until(lambda: post("after", (200, 202)), 20, interval=0.3,
                   msg=lambda: "intake not back 20 s after Redis restarted; last %r\n%s"
                   % (last[0], svc.tail(15)))
        [res] = recv.wait_for(1, job="after")
        self.assertIs(res.body["found"], True)
        self.assertEqual(res.body["node"]["_id"], "n")
        self.assertEqual(svc.node("n")["reservations"], 2)
        time.sleep(0.5)
        self.assertEqual(len(recv.accepted(job="before")), 1, recv.all())
        self.assertEqual(len(recv.accepted(job="x")), 0, recv.all())


    def test_frozen_redis_answers_503_within_timeout(self):
        """A Redis that accepts connections but answers nothing (SIGSTOP):
        REDIS_TIMEOUT bounds every command, intake answers 503 instead of
        hanging, and everything carries on after SIGCONT. A 503 on a
        timeout is ambiguous (the write may land later), so the refused job
        is sent again, which must be safe."""
        redis = self.redis()
        recv = self.receiver()
        svc = self.rsvc(recv, redis, settings={"REDIS_CONNECT_TIMEOUT": 1, "REDIS_TIMEOUT": 1,
                                               "CLAIM_IDLE": 2})
        svc.put_node("f", node_doc(vcpus=8, memory=8192), expect=201)
        svc.deploy(job_doc("pre-freeze"), 0)
        recv.wait_for(1, job="pre-freeze")
        redis.pause()
        t0 = time.monotonic()
        r = svc.request("POST", "/api/v1/jobs", job_doc("frozen"), timeout=20)
        took = time.monotonic() - t0
        self.assertJSONError(r, 503, msg="POST /api/v1/jobs while Redis hangs")
        self.assertLess(took, 6, "REDIS_TIMEOUT=1, yet the answer took %.1f s" % took)
        t0 = time.monotonic()
        r = svc.request("POST", "/api/calculate/deploy/frozen-d/0", job_doc("frozen-d"),
                        timeout=20)
        self.assertJSONError(r, 503, msg="deploy while Redis hangs")
        self.assertLess(time.monotonic() - t0, 6)
        r = svc.get("/status", timeout=5)
        self.assertEqual((r.status, r.text.strip()), (200, "ok"))
        self.assertAlive(svc)
        redis.resume()
        last = [None]

        def again():
            last[0] = svc.request("POST", "/api/v1/jobs", job_doc("frozen"))
            return last[0].status in (200, 202)
        wait_until(again, 20, interval=0.3,
                   msg=lambda: "intake not back 20 s after Redis resumed; last %r\n%s"
                   % (last[0], svc.tail(15)))
        svc.deploy(job_doc("frozen-d"), 0)
        svc.deploy(job_doc("post-freeze"), 0)
        bodies = self.assert_one_result_each(
            recv, [("pre-freeze", 0), ("frozen", 0), ("frozen-d", 0), ("post-freeze", 0)])
        for k, b in bodies.items():
            self.assertIs(b["found"], True, (k, b))
        for jid in ("pre-freeze", "frozen", "frozen-d", "post-freeze"):
            self.assertEqual(len(recv.accepted(job=jid)), 1, recv.accepted(job=jid))
        wait_until(lambda: svc.node("f")["reservations"] == 4, 5,
                   msg=lambda: "reservations on f: %r" % svc.node("f")["reservations"])


# --------------------------------------------------------------------------


class RedisWorkerCrashTest(RedisCase):
    def test_kill9_worker_mid_job(self):
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, role="api")
        # 5 nodes of 4 vcpus: exactly 20 slots for 20 jobs of 1 vcpu, so a
        # job placed twice leaves another one without room
        nodes = ["c%d" % i for i in range(5)]
        for n in nodes:
            api.put_node(n, node_doc(vcpus=4, memory=4096), expect=201)
        # results refused for now: whatever worker A decided is still its
        # to deliver when it dies
        recv.set_mode("503")
        a = self.rsvc(recv, redis, role="worker", workers=2, name="workerA",
                      settings={"CLAIM_IDLE": 1})
        ids = ["crash-%02d" % i for i in range(20)]

        def send(i):
            doc = job_doc(ids[i], vcpus=1, memory=512)
            if i % 2:
                api.deploy(doc, 0)
            else:
                self.post_job(api, doc)
        self.send_concurrently(range(len(ids)), send, threads=4)
        a.kill()
        states = {}
        for jid in ids:
            st = api.job_status(jid, 0)["state"]
            states[st] = states.get(st, 0) + 1
        print("\nat kill -9 of worker A: job states %r, %d result POSTs tried, %s"
              % (states, len(recv.all()), self.pending_note(redis)), file=sys.stderr)

        b = self.rsvc(recv, redis, role="worker", workers=2, name="workerB",
                      settings={"CLAIM_IDLE": 1})
        recv.set_mode("ok")
        keys = [(j, 0) for j in ids]
        bodies = self.assert_one_result_each(recv, keys, settle=2.0)
        per = {}
        for k, body in bodies.items():
            self.assertIs(body["found"], True, "%s: %r" % (k, body))
            per[body["node"]["_id"]] = per.get(body["node"]["_id"], 0) + 1
        self.assertEqual(per, {n: 4 for n in nodes})
        dups = len(recv.accepted()) - len(keys)
        print("duplicate (identical) result POSTs: %d" % dups, file=sys.stderr)

        def totals():
            ns = self.nodes_by_id(api)
            return {n: (ns[n]["reservations"], ns[n]["reserved"]["vcpus"]) for n in nodes}
        wait_until(lambda: totals() == {n: (4, 4) for n in nodes}, 5,
                   msg=lambda: "reservations per node %r" % totals())
        for jid, _ in keys:
            st = api.job_status(jid, 0)
            self.assertEqual((st["state"], st["node_id"]),
                             ("placed", bodies[(jid, 0)]["node"]["_id"]))
        self.assertAlive(b)
        self.assertAlive(api)

    def test_kill9_one_of_two_workers_during_burst(self):
        """Worker B keeps working while A is killed half way through a
        burst: A's taken jobs and undelivered results are taken over, each
        job placed once, no node over capacity."""
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, role="api")
        nodes = ["k%d" % i for i in range(10)]
        for n in nodes:
            api.put_node(n, node_doc(vcpus=4, memory=4096), expect=201)
        a = self.rsvc(recv, redis, role="worker", workers=2, name="workerA",
                      settings={"CLAIM_IDLE": 1})
        b = self.rsvc(recv, redis, role="worker", workers=2, name="workerB",
                      settings={"CLAIM_IDLE": 1})
        ids = ["half-%02d" % i for i in range(40)]

        def send(i):
            doc = job_doc(ids[i], vcpus=1, memory=512)
            if i % 2:
                api.deploy(doc, 0)
            else:
                self.post_job(api, doc)
        self.send_concurrently(range(20), send, threads=8)
        a.kill()
        print("\nat kill -9 of worker A: %s" % self.pending_note(redis), file=sys.stderr)
        self.send_concurrently(range(20, 40), send, threads=8)
        keys = [(j, 0) for j in ids]
        bodies = self.assert_one_result_each(recv, keys, settle=2.0)
        per = {}
        for k, body in bodies.items():
            self.assertIs(body["found"], True, "%s: %r" % (k, body))
            per[body["node"]["_id"]] = per.get(body["node"]["_id"], 0) + 1
        self.assertEqual(per, {n: 4 for n in nodes})
        print("\nresult POSTs accepted %d for %d jobs" % (len(recv.accepted()), len(ids)),
              file=sys.stderr)

        def totals():
            ns = self.nodes_by_id(api)
            return {n: (ns[n]["reservations"], ns[n]["reserved"]["vcpus"]) for n in nodes}
        wait_until(lambda: totals() == {n: (4, 4) for n in nodes}, 5,
                   msg=lambda: "reservations per node %r" % totals())
        self.assertAlive(b)


# --------------------------------------------------------------------------


class RedisNodesTest(RedisCase):
    TTL = 2
    REAPER = 1

    def test_dead_node_moves_once_with_two_workers(self):
        """Two worker processes run a reaper each: an instance on a node
        that went silent is moved once, not twice."""
        redis = self.redis()
        recv = self.receiver()
        st = {"REAPER_INTERVAL": self.REAPER}
        api = self.rsvc(recv, redis, role="api", node_ttl=self.TTL, settings=st)
        workers = [self.rsvc(recv, redis, role="worker", workers=2, node_ttl=self.TTL,
                             settings=st, name="worker%d" % i) for i in range(2)]
        hb_a = Heartbeat(api, "A", node_doc(vcpus=4, memory=4096, host="ha")).start()
        self.addCleanup(hb_a.stop)
        wait_until(lambda: hb_a.sent >= 1, 10, msg="node A never registered")
        job = job_doc("dn", vcpus=1, memory=512)
        for inst in range(3):
            api.deploy(job, inst)
        for r in recv.wait_for(3, job="dn"):
            self.assertEqual(r.body["node"]["_id"], "A", r)

        hb_b = Heartbeat(api, "B", node_doc(vcpus=4, memory=4096, host="hb")).start()
        self.addCleanup(hb_b.stop)
        wait_until(lambda: hb_b.sent >= 1, 10, msg="node B never registered")
        hb_a.stop()

        def on_b(r):
            return r.body and r.body.get("found") is True and r.body["node"]["_id"] == "B"
        for inst in range(3):
            recv.wait_for(1, job="dn", inst=inst, pred=on_b, timeout=self.TTL + self.REAPER + 20)
        time.sleep(self.TTL + 2 * self.REAPER)  # every reaper had its turn
        for inst in range(3):
            got = recv.accepted(job="dn", inst=inst)
            self.assertEqual([r.body["node"]["_id"] for r in got], ["A", "B"], got)
            self.assertEqual(got[1].body["job"], job)
            s = api.job_status("dn", inst)
            self.assertEqual((s["state"], s["node_id"]), ("placed", "B"))

        def view():
            a, b = api.node("A"), api.node("B")
            return (a["active"], a["reservations"], b["active"], b["reservations"])
        wait_until(lambda: view() == (False, 0, True, 3), 5,
                   msg=lambda: "A active/reservations, B active/reservations: %r" % (view(),))
        moved = [metric_sum(w.metrics(), P + "jobs_rescheduled_total") or 0 for w in workers]
        print("\nrescheduled per worker process: %r" % moved, file=sys.stderr)
        self.assertEqual(sum(moved), 3, moved)

    def test_node_dies_during_redis_outage(self):
        """Node A goes silent, then Redis goes down; A's NODE_TTL runs out
        during the outage, so the reapers' re-queue fails; once Redis is
        back the instance on A still moves to B (once). Timed so that B's
        last stored report stays within NODE_TTL through the outage and
        the reconnect: a live node's reports cannot be stored while Redis
        is down, so a longer outage would make B look dead too."""
        ttl = 12
        redis = self.redis()
        recv = self.receiver()
        st = {"REAPER_INTERVAL": self.REAPER, "REDIS_CONNECT_TIMEOUT": 1, "REDIS_TIMEOUT": 1,
              "CLAIM_IDLE": 2}
        api = self.rsvc(recv, redis, role="api", node_ttl=ttl, settings=st)
        self.rsvc(recv, redis, role="worker", workers=2, node_ttl=ttl, settings=st)
        hb_a = Heartbeat(api, "A", node_doc(vcpus=4, memory=4096)).start()
        self.addCleanup(hb_a.stop)
        wait_until(lambda: hb_a.sent >= 1, 10, msg="node A never registered")
        api.deploy(job_doc("od", vcpus=1, memory=512), 0)
        [r] = recv.wait_for(1, job="od")
        self.assertEqual(r.body["node"]["_id"], "A")
        hb_b = Heartbeat(api, "B", node_doc(vcpus=4, memory=4096)).start()
        self.addCleanup(hb_b.stop)
        wait_until(lambda: hb_b.sent >= 1, 10, msg="node B never registered")
        hb_a.stop()
        a_silent = time.monotonic()
        time.sleep(ttl / 2)
        sent_b = hb_b.sent
        redis.stop()
        down_at = time.monotonic()
        # A's TTL runs out while Redis is down; the reapers run (and fail)
        # at least twice before it comes back
        time.sleep(max(0.0, a_silent + ttl + 2 * self.REAPER - time.monotonic()))
        self.assertEqual(len(recv.accepted(job="od")), 1)
        redis.start()
        down_for = time.monotonic() - down_at
        wait_until(lambda: hb_b.sent > sent_b, 5,
                   msg="B's reports not stored again within 5 s of Redis coming back")
        print("\nRedis was down %.1f s; B's reports stored again %.1f s after the stop"
              % (down_for, time.monotonic() - down_at), file=sys.stderr)

        def on_b(r):
            return r.body and r.body.get("found") is True and r.body["node"]["_id"] == "B"
        recv.wait_for(1, job="od", pred=on_b, timeout=25)
        time.sleep(2 * self.REAPER)
        got = recv.accepted(job="od")
        self.assertEqual([x.body["node"]["_id"] for x in got], ["A", "B"], got)
        wait_until(lambda: (api.node("A")["reservations"], api.node("B")["reservations"])
                   == (0, 1), 5)

    def test_node_delete_through_api_moves_instances(self):
        redis = self.redis()
        recv = self.receiver()
        api = self.rsvc(recv, redis, role="api")
        self.rsvc(recv, redis, role="worker", workers=2)
        api.put_node("big", node_doc(vcpus=16, memory=16384), expect=201)
        api.deploy(job_doc("mv", vcpus=1, memory=512), 0)
        [r] = recv.wait_for(1, job="mv")
        self.assertEqual(r.body["node"]["_id"], "big")
        api.put_node("small", node_doc(vcpus=2, memory=2048), expect=201)
        resp = api.request("DELETE", "/api/v1/nodes/big")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["rescheduled"], 1)
        res = recv.wait_for(2, job="mv", timeout=20)
        self.assertEqual(res[1].body["node"]["_id"], "small")
        wait_until(lambda: api.job_status("mv", 0).get("node_id") == "small", 5)
        wait_until(lambda: api.node("small")["reservations"] == 1, 5)
        self.assertEqual(api.request("GET", "/api/v1/nodes/big").status, 404)
        time.sleep(0.5)
        self.assertEqual(len(recv.accepted(job="mv")), 2, recv.all())


# --------------------------------------------------------------------------


class RedisStartErrorsTest(RedisCase):
    def _run_to_exit(self, recv, timeout, url=None, args=(), settings=None, name="bad"):
        """Runs the binary until it exits by itself; returns (rc, seconds,
        stderr). Fails when it is still running after timeout."""
        s = {k: None for k in REDIS_VARS}
        if url is not None:
            s["REDIS_ADDR"] = url
        s.update(settings or {})
        svc = self.service(recv, start=False, settings=s, args=list(args), name=name)
        svc.starts += 1
        svc.stderr_path = os.path.join(svc.workdir, "%s-%d.stderr" % (svc.name, svc.starts))
        t0 = time.monotonic()
        with open(svc.stderr_path, "wb") as err:
            p = subprocess.Popen([svc.binary] + svc.args, env=svc.env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, cwd=svc.workdir)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            self.fail("%s still running %.0f s after start (should exit):\n%s"
                      % (name, timeout, svc.tail()))
        took = time.monotonic() - t0
        with open(svc.stderr_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return rc, took, text

    def test_unreachable_redis(self):
        recv = self.receiver()
        port = free_port()  # nothing listens there
        rc, took, err = self._run_to_exit(recv, 15, url="redis://%s:%d" % (HOST, port),
                                          name="unreachable")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("redis", err.lower(), err)
        print("\nunreachable Redis: exit %d after %.1f s" % (rc, took), file=sys.stderr)
        # the same through --redis, with a 1 s connect timeout
        rc, took, err = self._run_to_exit(
            recv, 15, args=["--redis", "redis://%s:%d/0" % (HOST, port),
                            "--redis-connect-timeout", "1"], name="unreachable-flag")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("redis", err.lower(), err)

    def test_redis_that_never_answers(self):
        """Something listens but never speaks RESP: the start is bounded by
        the Redis timeouts, not stuck."""
        import socket
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind((HOST, 0))
        lsock.listen(16)
        self.addCleanup(lsock.close)
        port = lsock.getsockname()[1]
        recv = self.receiver()
        rc, took, err = self._run_to_exit(
            recv, 20, url="redis://%s:%d" % (HOST, port),
            settings={"REDIS_CONNECT_TIMEOUT": 1, "REDIS_TIMEOUT": 1}, name="silent")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("redis", err.lower(), err)

    def test_wrong_password(self):
        redis = self.redis(password="right-pw")
        recv = self.receiver()
        for name, url in (("wrongpw", redis.url_for(password="wrong-pw")),
                          ("nopw", "redis://%s:%d" % (HOST, redis.port)),
                          ("wronguser", redis.url_for(user="nobody", password="right-pw"))):
            rc, took, err = self._run_to_exit(recv, 15, url=url, name=name)
            self.assertNotEqual(rc, 0, "%s: %s" % (name, err))
            low = err.lower()
            self.assertIn("redis", low, "%s: %s" % (name, err))
            self.assertTrue("auth" in low or "password" in low,
                            "%s: the message should say authentication failed:\n%s"
                            % (name, err))
            self.assertNotIn("right-pw", err, "the password must not be logged")
        # and the right one works
        svc = self.rsvc(recv, redis, url=redis.url_for(password="right-pw"))
        self.assertAlive(svc)

    def test_bad_url(self):
        recv = self.receiver()
        rc, took, err = self._run_to_exit(recv, 15, url="redis://127.0.0.1:notaport",
                                          name="badport-env")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("REDIS_ADDR", err, err)
        self.assertLess(took, 10)
        rc, took, err = self._run_to_exit(recv, 15, args=["--redis", "redis://127.0.0.1:notaport"],
                                          name="badport-flag")
        self.assertNotEqual(rc, 0, err)
        self.assertTrue("--redis" in err or "REDIS_ADDR" in err, err)
        # other malformed URLs: rejected at start, saying it is about Redis
        for i, url in enumerate(("http://127.0.0.1:6379", "redis://127.0.0.1:70000",
                                 "redis://127.0.0.1:6379/notadb", "redis://:pw@:6379")):
            rc, took, err = self._run_to_exit(recv, 15, url=url, name="badurl%d" % i)
            self.assertNotEqual(rc, 0, "%s accepted: %s" % (url, err))
            self.assertIn("redis", err.lower(), "%s: %s" % (url, err))

    def test_bad_role(self):
        redis = self.redis()
        recv = self.receiver()
        rc, took, err = self._run_to_exit(recv, 15, url=redis.url, args=["--role", "boss"],
                                          name="badrole")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("role", err.lower(), err)


# --------------------------------------------------------------------------


class RedisDatabaseTest(RedisCase):
    def test_db_number_and_password(self):
        redis = self.redis(password="pw-123")
        recv = self.receiver()
        svc = self.rsvc(recv, redis, url=redis.url_for(db=3), workers=1)
        svc.put_node("d3", node_doc(), expect=201)
        svc.deploy(job_doc("in-db3"), 0)
        [res] = recv.wait_for(1, job="in-db3")
        self.assertEqual(res.body["node"]["_id"], "d3")
        redis.cmd("SELECT", "3")
        n3 = redis.cmd("DBSIZE")
        redis.cmd("SELECT", "0")
        n0 = redis.cmd("DBSIZE")
        self.assertGreater(n3, 0, "nothing in db 3")
        self.assertEqual(n0, 0, "db 0 must stay empty: %r" % redis.cmd("KEYS", "*"))
        self.assertEqual(svc.terminate(), 0)

        # user:password form, another db: a separate, empty scheduler
        svc5 = self.rsvc(recv, redis, url=redis.url_for(user="default", db=5), workers=1,
                         name="db5")
        self.assertEqual(svc5.get_json("/api/v1/nodes")["nodes"], [])
        self.assertEqual(svc5.request("GET", "/api/v1/jobs/in-db3/0").status, 404)
        svc5.put_node("d5", node_doc(), expect=201)
        svc5.deploy(job_doc("in-db5"), 0)
        [res] = recv.wait_for(1, job="in-db5")
        self.assertEqual(res.body["node"]["_id"], "d5")
        redis.cmd("SELECT", "5")
        self.assertGreater(redis.cmd("DBSIZE"), 0)
        redis.cmd("SELECT", "0")
        self.assertEqual(redis.cmd("DBSIZE"), 0)
        # db 3 still holds its own state
        svc3 = self.rsvc(recv, redis, url=redis.url_for(db=3), workers=1, name="db3-again")
        self.assertEqual(list(self.nodes_by_id(svc3)), ["d3"])
        self.assertEqual(svc3.job_status("in-db3", 0)["node_id"], "d3")


if __name__ == "__main__":
    unittest.main()
