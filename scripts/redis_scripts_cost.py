"""redis_scripts_cost.py - Redis's own CPU time per job, script by script,
for the Lua scripts of one version of src/service/store_redis.c (see
redis-scripts-cost.sh, which starts the redis-server and runs this).

  redis_scripts_cost.py extract STORE_REDIS_C CC_E_OUTPUT OUT_JSON
  redis_scripts_cost.py run SCRIPTS_JSON PORT JOBS

`extract` reads the preprocessed source (cc -E) and writes the SCRIPT
array's texts as JSON. `run` plays one job's life through the scripts as
the service calls them, in the batch sizes seen under load (intake 4 jobs
a call, placement 3, claim and done 6), every call pipelined so that
networking is shared out and what remains is the scripts' own work: 5,000
nodes registered, JOBS instances enqueued, read through the consumer
group (16 at a time), placed with a 1.1 KB result, claimed, marked done.
It prints Redis's main-thread CPU (INFO cpu) per job for each phase.
"""
import ast
import json
import re
import socket
import sys
import time


def extract(pre, out):
    s = open(pre).read()
    i = s.index("=", s.index("static const char *const SCRIPT[SC_COUNT]"))
    j = s.index("};", i)
    parts = re.split(r"\[(SC_[A-Z_]+)\]\s*=", s[i:j])[1:]
    scripts = {}
    for k in range(0, len(parts), 2):
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', parts[k + 1])
        scripts[parts[k]] = "".join(ast.literal_eval('"' + x + '"') for x in lits)
    if "SC_PLACE" not in scripts or "SC_CLAIM" not in scripts:
        sys.exit("redis_scripts_cost: no SCRIPT array found")
    json.dump(scripts, open(out, "w"))


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    @staticmethod
    def enc(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        t, v = line[:1], line[1:-2]
        if t == b"*":
            n = int(v)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"$":
            n = int(v)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b":":
            return int(v)
        if t == b"-":
            raise RuntimeError(v.decode())
        return v

    def pipe(self, cmds):
        self.s.sendall(b"".join(self.enc(c) for c in cmds))
        return [self.read() for _ in cmds]

    def __call__(self, *args):
        return self.pipe([args])[0]


def run(scripts_json, port, jobs):
    scripts = json.load(open(scripts_json))
    r = Conn(port)
    sha = {k: r("SCRIPT", "LOAD", v).decode() for k, v in scripts.items() if v}

    def cpu():
        info = dict(
            line.split(":", 1) for line in r("INFO", "cpu").decode().split("\r\n") if ":" in line
        )
        return float(info["used_cpu_sys_main_thread"]) + float(info["used_cpu_user_main_thread"])

    def ev(name, args):
        return ["EVALSHA", sha[name], 0] + args

    phase = {}

    def timed(name, cmds):
        c0 = cpu()
        res = []
        for i in range(0, len(cmds), 500):
            res += r.pipe(cmds[i : i + 500])
        phase[name] = (cpu() - c0) * 1e6 / jobs
        return res

    nodes, now = 5000, time.time()
    doc = '{"host":"n-%d","virtualization":["container"],"vcpus":64,"memory":262144}'
    r.pipe(
        [
            ev("SC_NODE_PUT", ["n-%d" % i, doc % i, now, 64000, 262144, 0, "0", 0, "0", 0])
            for i in range(nodes)
        ]
    )
    r("XGROUP", "CREATE", "cs:jobs", "cs:workers", "$", "MKSTREAM")
    body = '{"_id":"j-%d","virtualization":"container","vcpus":0.001,"memory":1}'
    cmds = []
    for j in range(0, jobs, 4):
        a = []
        for k in range(j, min(jobs, j + 4)):
            a += ["j-%d" % k, body % k, now, 0, 1]
        cmds.append(ev("SC_ENQUEUE", a))
    timed("enqueue", cmds)
    c0, read = cpu(), 0
    while read < jobs:
        rep = r("XREADGROUP", "GROUP", "cs:workers", "w", "COUNT", 16, "STREAMS", "cs:jobs", ">")
        read += len(rep[0][1])
    phase["read"] = (cpu() - c0) * 1e6 / jobs
    result = '{"found":true,"node":{"_id":"n-1"},"pad":"' + "x" * 1050 + '"}'
    cmds = []
    for j in range(0, jobs, 3):
        a = []
        for k in range(j, min(jobs, j + 3)):
            a += ["j-%d" % k, 0, "n-%d" % (k % nodes), 1, 1, 0, now, now, 15, result, 10]
        cmds.append(ev("SC_PLACE", a))
    ids = []
    for rep in timed("place", cmds):
        for q in range(0, len(rep), 2):
            if rep[q] != 0:
                sys.exit("redis_scripts_cost: a placement failed: %r" % rep[q : q + 2])
            ids.append(int(rep[q + 1]))
    cmds = []
    for j in range(0, jobs, 6):
        a = [10000]
        for k in range(j, min(jobs, j + 6)):
            a += [ids[k], "j-%d" % k, 0]
        cmds.append(ev("SC_CLAIM", a))
    if any(v != 0 for rep in timed("claim", cmds) for v in rep):
        sys.exit("redis_scripts_cost: a claim failed")
    # Since session 10 done takes (id, job, instance) triples; before, ids.
    triples = "#ARGV, 3 do" in scripts["SC_DONE"]
    cmds = []
    for j in range(0, jobs, 6):
        a = []
        for k in range(j, min(jobs, j + 6)):
            a += [ids[k], "j-%d" % k, 0] if triples else [ids[k]]
        cmds.append(ev("SC_DONE", a))
    timed("done", cmds)
    if r("ZCARD", "cs:outbox:due") != 0:
        sys.exit("redis_scripts_cost: results left in the outbox")
    print(
        " ".join("%s %.1f" % kv for kv in phase.items()),
        "total %.1f" % sum(phase.values()),
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "extract":
        extract(sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
