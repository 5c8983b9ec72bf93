"""Edge-aware placement end to end: geo, latency and connectivity
constraints, replica spreading over nodes and labels, the per-filter counts
of the dry run and the job status, ?explain=1, bad constraint values, and
the same in Redis mode (node fields reach the worker's copy of the cluster
through the stored node documents).

The Redis test runs its own redis-server (harness.RedisServer); a missing
redis-server fails it, as in test_redis.py."""

import math
import unittest

from harness import E2ETestCase, job_doc, node_doc

MUNICH = (48.137, 11.575)
GARCHING = (48.249, 11.651)  # about 13.5 km from MUNICH
BERLIN = (52.52, 13.405)  # about 504 km


def haversine(a, b):
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def geo(lat, lon, threshold, **kw):
    c = {"type": "geo", "location": "%r,%r" % (lat, lon), "threshold": threshold}
    c.update(kw)
    return c


class EdgeCase(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.recv = self.receiver()
        self.svc = self.service(self.recv)

    def schedule(self, job, explain=False, expect=200):
        r = self.svc.request("POST", "/api/v1/schedule" + ("?explain=1" if explain else ""), job)
        self.assertEqual(r.status, expect, r)
        return r.json()

    def order(self, answer):
        return [c["node_id"] for c in answer["candidates"]]

    def filters(self, doc):
        """{(filter, constraint or None): removed}"""
        return {(f["filter"], f.get("constraint")): f["removed"] for f in doc["filters"]}

    def place(self, job_id, job, inst=0):
        body = dict(job)
        body["_id"] = job_id
        body["instance"] = inst
        r = self.svc.request("POST", "/api/v1/jobs", body)
        self.assertEqual(r.status, 202, r)
        return self.svc.wait_job_state(job_id, inst, states=("placed", "unschedulable"))


class GeoTest(EdgeCase):
    def test_geo_filter_ranking_and_placement(self):
        self.svc.put_node("munich", node_doc(vcpus=2, location="%r,%r" % MUNICH))
        # the original's shape: top-level lat / long, here as strings
        self.svc.put_node("garching", node_doc(vcpus=8, lat=str(GARCHING[0]),
                                               long=str(GARCHING[1])))
        self.svc.put_node("berlin", node_doc(vcpus=16, location={"lat": BERLIN[0],
                                                                 "lon": BERLIN[1]}))
        self.svc.put_node("nowhere", node_doc(vcpus=16))
        self.svc.put_node("small", node_doc(vcpus=0.5, location={"lat": MUNICH[0],
                                                                 "long": MUNICH[1]}))
        base = job_doc("g", constraints=[{"type": "direct", "cluster": "c1"},
                                         geo(*MUNICH, 50)])
        a = self.schedule(base)
        # without a preference the strategy ranks (most free first)
        self.assertEqual(self.order(a), ["garching", "munich"])
        self.assertEqual(a["reasons"], {"too_far": 1, "no_location": 1,
                                        "insufficient_cpu": 1})
        f = self.filters(a)
        self.assertEqual(f[("geo", 1)], 2, a)  # what the constraint at index 1 removed
        self.assertEqual(f[("cpu", None)], 1, a)
        self.assertEqual(a["message"],
                         "2/5 nodes qualify: 1 insufficient cpu, 1 no location, 1 too far")

        near = job_doc("g", constraints=[geo(*MUNICH, 50, prefer="nearest")])
        a = self.schedule(near)
        self.assertEqual(self.order(a), ["munich", "garching"])
        d = haversine(MUNICH, GARCHING)
        self.assertAlmostEqual(a["candidates"][1]["score"], 100 * (1 - d / 50), places=1)

        st = self.place("g1", near)
        self.assertEqual(st["state"], "placed", st)
        self.assertEqual(st["node_id"], "munich")
        self.assertEqual(self.filters(st)[("geo", 0)], 2)
        res = self.recv.wait_for(1, job="g1")[0].body
        self.assertEqual(res["node"]["_id"], "munich")
        self.assertIn({"filter": "geo", "constraint": 0, "removed": 2}, res["filters"])

        # nothing within 5 km of Berlin's centre but the Berlin node
        st = self.place("g2", job_doc("g2", vcpus=32, constraints=[geo(*BERLIN, 5)]))
        self.assertEqual(st["state"], "unschedulable", st)
        self.assertEqual(st["reasons"]["insufficient_cpu"], 5, st)

    def test_antimeridian_poles_and_zero_threshold(self):
        for nid, loc in (("east", "0,179.9"), ("west", "0,-179.9"), ("dateline", "0,180"),
                         ("greenwich", "0,0"), ("north", "90,0"), ("north2", "90,-45"),
                         ("near-north", "89.99,100"), ("south", "-90,0"),
                         ("exact", "48.1,11.5"), ("beside", "48.1,11.5000001")):
            self.svc.put_node(nid, node_doc(location=loc))

        def qualifying(lat, lon, threshold):
            a = self.schedule(job_doc("x", top_k="all",
                                      constraints=[geo(lat, lon, threshold)]))
            return sorted(self.order(a))

        # 179.9 and -179.9 are 22 km apart across the antimeridian
        self.assertEqual(qualifying(0, 179.95, 20), ["dateline", "east", "west"])
        self.assertEqual(qualifying(0, -179.99, 13), ["dateline", "east", "west"])
        self.assertEqual(qualifying(0, -180, 0), ["dateline"])
        # every longitude is the pole
        self.assertEqual(qualifying(90, 123, 0), ["north", "north2"])
        self.assertEqual(qualifying(90, 0, 1.2), ["near-north", "north", "north2"])
        self.assertEqual(qualifying(-90, 77, 0), ["south"])
        # zero threshold: the exact location only
        self.assertEqual(qualifying(48.1, 11.5, 0), ["exact"])
        self.assertEqual(qualifying(48.1, 11.5, 0.1), ["beside", "exact"])
        # half the circumference and more: every located node
        self.assertEqual(len(qualifying(48.1, 11.5, 20100)), 10)

    def test_location_reports(self):
        self.svc.put_node("n", node_doc(location="1,1"))
        job = job_doc("x", constraints=[geo(1, 1, 1)])
        self.assertEqual(self.order(self.schedule(job)), ["n"])
        # a heartbeat without the location keeps it
        r = self.svc.request("PUT", "/api/v1/nodes/n", {"cpu_percent": 5})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.order(self.schedule(job)), ["n"])
        # the other spelling replaces it
        r = self.svc.request("PUT", "/api/v1/nodes/n", {"lat": 10, "long": 10})
        self.assertEqual(r.status, 200, r)
        doc = self.svc.node("n")
        self.assertNotIn("location", doc)
        self.assertEqual((doc["lat"], doc["long"]), (10, 10))
        self.assertEqual(self.schedule(job)["reasons"], {"too_far": 1})
        # the node's fields survive a restart (the stored document replays)
        self.assertEqual(self.svc.signal_stop(), 0)
        self.svc.start()
        self.assertEqual(self.order(self.schedule(job_doc("x", constraints=[geo(10, 10, 1)]))),
                         ["n"])


class LatencyConnectivityTest(EdgeCase):
    def test_latency(self):
        self.svc.put_node("a", node_doc(vcpus=2, latency_ms={"munich-1": 5, "berlin": 30}))
        self.svc.put_node("b", node_doc(vcpus=32, latency_ms={"munich-1": 20}))
        self.svc.put_node("c", node_doc(vcpus=4, latency_ms={"munich-1": 20.001}))
        self.svc.put_node("d", node_doc(vcpus=4, latency_ms={"berlin": 1, "x": None}))
        self.svc.put_node("e", node_doc(vcpus=4))
        self.svc.put_node("zero", node_doc(vcpus=1, latency_ms={"munich-1": 0}))

        def lat(area, threshold, **kw):
            c = {"type": "latency", "area": area, "threshold": threshold}
            c.update(kw)
            return job_doc("l", constraints=[c])

        a = self.schedule(lat("munich-1", 20))
        self.assertEqual(self.order(a), ["zero", "a", "b"])  # lower latency first
        self.assertEqual(a["reasons"], {"latency_too_high": 1, "no_latency": 2})
        self.assertEqual(self.filters(a)[("latency", 0)], 3)
        self.assertEqual(self.order(self.schedule(lat("munich-1", 20, prefer="none"))),
                         ["b", "a", "zero"])
        self.assertEqual(self.order(self.schedule(lat("munich-1", 0))), ["zero"])
        a = self.schedule(lat("atlantis", 1000))
        self.assertEqual(a["candidates"], [])
        self.assertEqual(a["reasons"], {"no_latency": 6})
        # a latency table replaced by a report; {} clears it
        self.svc.request("PUT", "/api/v1/nodes/zero", {"latency_ms": {}})
        self.assertEqual(self.order(self.schedule(lat("munich-1", 0))), [])

    def test_connectivity(self):
        self.svc.put_node("db-node", node_doc(vcpus=2, vivaldi={"vector": [0, 0], "height": 1}))
        self.svc.put_node("close", node_doc(vcpus=2, vivaldi_vector=[3, 4],
                                            vivaldi_height=0.5))  # 5 + 0.5 + 1 ms
        self.svc.put_node("far", node_doc(vcpus=8, vivaldi={"vector": [30, 40]}))
        self.svc.put_node("blind", node_doc(vcpus=8))
        web = job_doc("web", vcpus=1.5, constraints=[
            {"type": "connectivity", "target_job": "db", "latency_ms": 10}])
        st = self.place("web", web)
        self.assertEqual(st["state"], "unschedulable", st)
        self.assertEqual(st["reasons"], {"target_not_running": 4})

        st = self.place("db", job_doc("db", vcpus=1, constraints=[
            {"type": "direct", "node": "db-node"}]))
        self.assertEqual(st["node_id"], "db-node")
        a = self.schedule(web)
        self.assertEqual(self.order(a), ["close"])  # db-node has 1 vCPU left, needs 1.5
        self.assertEqual(a["reasons"], {"connectivity_too_slow": 1, "no_coordinates": 1,
                                        "insufficient_cpu": 1})
        st = self.place("web2", web)
        self.assertEqual(st["node_id"], "close", st)
        ex = self.svc.get_json("/api/v1/jobs/web2/0?explain=1")["explain"]
        far = [n for n in ex["per_node"] if n["node_id"] == "far"][0]
        self.assertEqual(far["reason"], "connectivity_too_slow")
        self.assertAlmostEqual(far["value"], 51.0)
        self.assertEqual(far["limit"], 10)


class SpreadTest(EdgeCase):
    def test_replicate_spreads_over_nodes(self):
        self.svc.put_node("big", node_doc(vcpus=64, memory=65536))
        self.svc.put_node("m1", node_doc(vcpus=8, memory=8192))
        self.svc.put_node("m2", node_doc(vcpus=8, memory=8192))
        r = self.svc.request("POST", "/api/calculate/replicate",
                             {"job": job_doc("rep"), "replicas": 4})
        self.assertEqual(r.status, 200, r)
        results = self.recv.wait_for(4, job="rep")
        nodes = {res.inst: res.body["node"]["_id"] for res in results}
        self.assertEqual(sorted(set(nodes.values())), ["big", "m1", "m2"], nodes)
        self.assertEqual(sorted(nodes.values()).count("big"), 2, nodes)
        # spread_by none packs by the strategy alone
        r = self.svc.request("POST", "/api/calculate/replicate",
                             {"job": job_doc("pack", spread_by="none"), "replicas": 3})
        self.assertEqual(r.status, 200, r)
        results = self.recv.wait_for(3, job="pack")
        self.assertEqual({res.body["node"]["_id"] for res in results}, {"big"})

    def test_spread_by_zone(self):
        for nid, zone, cpus in (("a1", "a", 64), ("a2", "a", 60), ("b1", "b", 32),
                                ("c1", "c", 16)):
            self.svc.put_node(nid, node_doc(vcpus=cpus, memory=65536, labels={"zone": zone}))
        job = job_doc("z", spread_by="zone")
        placed = []
        for i in range(4):
            st = self.place("z", job, inst=i)
            placed.append(st["node_id"])
        self.assertEqual(placed, ["a1", "b1", "c1", "a2"])
        st = self.svc.job_status("z", 1)
        self.assertEqual(st["reasons"], {"replica_in_label": 2})
        self.assertEqual(self.filters(st)[("spread", None)], 2)
        self.assertEqual(st["message"], "2/4 nodes qualify: 2 in a zone already running this job")
        # the explanation of a placed instance counts it as not placed yet
        ex = self.svc.get_json("/api/v1/jobs/z/1?explain=1")["explain"]
        by = {n["node_id"]: n for n in ex["per_node"]}
        self.assertTrue(by["b1"]["qualified"])
        self.assertTrue(by["b1"]["holds_instance"])
        self.assertEqual(by["a2"]["reason"], "replica_in_label")
        self.assertIn("zone 'a' already runs an instance", by["a2"]["message"])


class ExplainAndBadInputTest(EdgeCase):
    def test_explain(self):
        self.svc.put_node("ok", node_doc(vcpus=4, location="%r,%r" % MUNICH))
        self.svc.put_node("far", node_doc(vcpus=4, location="%r,%r" % BERLIN))
        self.svc.put_node("tiny", node_doc(vcpus=0.5, location="%r,%r" % MUNICH))
        self.svc.put_node("uni", node_doc(virt=("unikernel",), location="%r,%r" % MUNICH))
        job = job_doc("ex", constraints=[geo(*MUNICH, 100)])
        st = self.place("ex", job)
        self.assertEqual(st["node_id"], "ok")
        self.assertNotIn("explain", st)
        doc = self.svc.get_json("/api/v1/jobs/ex/0?explain=1")
        self.assertEqual(doc["state"], "placed")
        ex = doc["explain"]
        self.assertEqual((ex["nodes"], ex["qualified"]), (4, 1))
        self.assertIsInstance(ex["at"], float)
        per = ex["per_node"]
        self.assertEqual([n["node_id"] for n in per], ["ok", "far", "tiny", "uni"])
        self.assertEqual(per[0], {"node_id": "ok", "qualified": True, "score": per[0]["score"],
                                  "rank": 1, "holds_instance": True})
        self.assertEqual(per[1]["reason"], "too_far")
        self.assertEqual(per[1]["constraint"], 0)
        self.assertAlmostEqual(per[1]["value"], haversine(MUNICH, BERLIN), places=2)
        self.assertEqual(per[1]["limit"], 100)
        self.assertIn("km from 48.137,11.575, beyond the threshold of 100 km",
                      per[1]["message"])
        self.assertEqual(per[2]["reason"], "insufficient_cpu")
        self.assertEqual(per[2]["message"], "0.500 vCPUs free, 1.000 requested")
        self.assertEqual(per[3]["reason"], "technology")
        self.assertEqual(per[3]["message"], "does not offer container")
        self.assertEqual({(f["filter"], f.get("constraint")) for f in ex["filters"]},
                         {("inactive", None), ("technology", None), ("gpu", None),
                          ("cpu", None), ("memory", None), ("geo", 0)})

        # an unschedulable instance explains itself too
        st = self.place("none", job_doc("none", constraints=[geo(0, 0, 10)]))
        self.assertEqual(st["state"], "unschedulable")
        ex = self.svc.get_json("/api/v1/jobs/none/0?explain=true")["explain"]
        self.assertEqual(ex["qualified"], 0)
        self.assertEqual(ex["reasons"], {"too_far": 2, "insufficient_cpu": 1, "technology": 1})

        # the dry run explains on request
        a = self.schedule(job, explain=True)
        self.assertEqual(len(a["explain"]["per_node"]), 4)
        self.assertNotIn("explain", self.schedule(job))
        self.assertNotIn("explain", self.svc.get_json("/api/v1/jobs/ex/0?explain=0"))
        for path in ("/api/v1/jobs/ex/0?explain=maybe", "/api/v1/schedule?explain=2"):
            method = "GET" if "jobs" in path else "POST"
            r = self.svc.request(method, path, job if method == "POST" else None)
            self.assertJSONError(r, 400, "explain")
        self.assertJSONError(self.svc.request("GET", "/api/v1/jobs/nope/0?explain=1"), 404)

    def test_bad_constraint_values(self):
        self.svc.put_node("n", node_doc(location="1,1"))
        cases = [
            ({"type": "geo", "location": "1,1"}, "constraints[0].threshold"),
            ({"type": "geo", "location": "1,1", "threshold": -1}, "constraints[0].threshold"),
            ({"type": "geo", "location": "1,1", "threshold": "ten"}, "constraints[0].threshold"),
            ({"type": "geo", "location": "1,1", "threshold": [1]}, "constraints[0].threshold"),
            ({"type": "geo", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": "90.0001,1", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": "-91,1", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": "1,180.5", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": "1,-200", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": "one,two", "threshold": 1}, "constraints[0].location"),
            ({"type": "geo", "location": {"lat": 100, "lon": 1}, "threshold": 1},
             "constraints[0].location.lat"),
            ({"type": "geo", "location": {"lat": 1, "lon": 181}, "threshold": 1},
             "constraints[0].location.lon"),
            ({"type": "geo", "location": "1,1", "threshold": 1, "prefer": "far"},
             "constraints[0].prefer"),
            ({"type": "latency", "threshold": 5}, "constraints[0].area"),
            ({"type": "latency", "area": "a"}, "constraints[0].threshold"),
            ({"type": "latency", "area": "a", "threshold": -5}, "constraints[0].threshold"),
            ({"type": "latency", "area": "a", "threshold": "fast"}, "constraints[0].threshold"),
            ({"type": "connectivity", "latency_ms": 5}, "constraints[0].target_job"),
            ({"type": "connectivity", "target_job": "db"}, "constraints[0].latency_ms"),
            ({"type": "connectivity", "target_job": "db", "latency_ms": -1},
             "constraints[0].latency_ms"),
            ({"type": "wormhole"}, "constraints[0].type"),
        ]
        for cons, field in cases:
            job = job_doc("bad", constraints=[cons])
            for method, path, body, prefix in (
                    ("POST", "/api/v1/schedule", job, ""),
                    ("POST", "/api/v1/jobs", job, ""),
                    ("POST", "/api/calculate/deploy/bad/0", job, ""),
                    ("POST", "/api/calculate/replicate", {"job": job, "replicas": 2}, "job.")):
                r = self.svc.request(method, path, body)
                err = self.assertJSONError(r, 400, msg="%s %s" % (path, cons))
                self.assertEqual(err["field"], prefix + field, (path, cons, r))
        r = self.svc.request("POST", "/api/v1/jobs", job_doc("bad", spread_by=3))
        self.assertEqual(self.assertJSONError(r, 400)["field"], "spread_by")
        # nothing was queued
        self.assertJSONError(self.svc.request("GET", "/api/v1/jobs/bad/0"), 404)

    def test_bad_node_edge_fields(self):
        self.svc.put_node("n", node_doc(location="1,1", latency_ms={"a": 1}))
        cases = [
            ({"location": "91,0"}, "location"),
            ({"location": {"lat": 0, "lon": 180.01}}, "location.lon"),
            ({"lat": 1}, "long"),
            ({"lat": "north", "long": 1}, "lat"),
            ({"latency_ms": {"a": -1}}, "latency_ms.a"),
            ({"latency_ms": [1]}, "latency_ms"),
            ({"vivaldi": {"vector": ["x"]}}, "vivaldi.vector[0]"),
            ({"vivaldi": {"vector": [1], "height": -2}}, "vivaldi.height"),
            ({"labels": {"zone": ""}}, "labels.zone"),
            ({"labels": "zone=a"}, "labels"),
        ]
        for report, field in cases:
            r = self.svc.request("PUT", "/api/v1/nodes/n", report)
            err = self.assertJSONError(r, 400, msg=str(report))
            self.assertEqual(err["field"], field, (report, r))
        # a rejected report changed nothing
        doc = self.svc.node("n")
        self.assertEqual((doc["location"], doc["latency_ms"]), ("1,1", {"a": 1}))
        self.assertEqual(self.order(self.schedule(job_doc("x", constraints=[geo(1, 1, 0)]))),
                         ["n"])


class RedisEdgeTest(E2ETestCase):
    """Node fields travel through the stored node documents to every
    process's copy of the cluster: an api process takes the reports and the
    jobs, a separate worker process decides."""

    def test_edge_placement_in_redis_mode(self):
        recv = self.receiver()
        redis = self.redis()
        s = {"REDIS_ADDR": redis.url, "ROLE": "api"}
        api = self.service(recv, settings=s, node_ttl=120, name="api")
        self.service(recv, settings=dict(s, ROLE="worker"), node_ttl=120, workers=2,
                     name="worker")
        api.put_node("munich", node_doc(vcpus=4, location="%r,%r" % MUNICH,
                                        labels={"zone": "a"}, latency_ms={"m": 3}))
        api.put_node("garching", node_doc(vcpus=8, lat=GARCHING[0], long=GARCHING[1],
                                          labels={"zone": "b"}, latency_ms={"m": 9}))
        api.put_node("berlin", node_doc(vcpus=16, location="%r,%r" % BERLIN,
                                        labels={"zone": "a"}))
        job = job_doc("g", constraints=[geo(*MUNICH, 50, prefer="nearest")])
        r = api.request("POST", "/api/calculate/deploy/g/0", job)
        self.assertEqual(r.status, 200, r)
        res = recv.wait_for(1, job="g")[0].body
        self.assertEqual(res["node"]["_id"], "munich", res)
        self.assertEqual(res["reasons"], {"too_far": 1})

        lat = job_doc("l", constraints=[{"type": "latency", "area": "m", "threshold": 10}])
        r = api.request("POST", "/api/calculate/deploy/l/0", lat)
        self.assertEqual(r.status, 200, r)
        res = recv.wait_for(1, job="l")[0].body
        self.assertEqual(res["node"]["_id"], "munich", res)
        self.assertEqual(res["reasons"], {"no_latency": 1})

        r = api.request("POST", "/api/calculate/replicate",
                        {"job": job_doc("z", spread_by="zone"), "replicas": 2})
        self.assertEqual(r.status, 200, r)
        results = recv.wait_for(2, job="z")
        zones = {"munich": "a", "berlin": "a", "garching": "b"}
        self.assertEqual(sorted(zones[x.body["node"]["_id"]] for x in results), ["a", "b"])

        st = api.wait_job_state("g", 0)
        self.assertEqual(st["node_id"], "munich")
        ex = api.get_json("/api/v1/jobs/g/0?explain=1")["explain"]
        self.assertEqual([n["node_id"] for n in ex["per_node"] if n["qualified"]],
                         ["munich", "garching"])


if __name__ == "__main__":
    unittest.main()
