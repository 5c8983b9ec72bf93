"""Configuration: --help, a bad setting stops the start with a clear
message, flags override the environment."""

import os
import subprocess
import time
import unittest

from harness import HOST, E2ETestCase, cs_bin, free_port, job_doc, node_doc


class ConfigTest(E2ETestCase):
    def run_bin(self, args, env_extra=None, timeout=20):
        env = dict(os.environ)
        env.pop("REDIS_ADDR", None)
        env.update({"DATA_DIR": os.path.join(self.workdir, "data"), "BIND_ADDR": HOST,
                    "MY_PORT": str(free_port())})
        env.update(env_extra or {})
        return subprocess.run([cs_bin()] + args, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, cwd=self.workdir)

    def test_help(self):
        p = self.run_bin(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = (p.stdout + p.stderr).decode()
        for name in ("MY_PORT", "CLUSTER_MANAGER_URL", "CLUSTER_MANAGER_PORT", "REDIS_ADDR",
                     "DATA_DIR", "WORKERS", "NODE_TTL", "--port", "--manager", "--data-dir",
                     "--workers", "--node-ttl"):
            self.assertIn(name, out)

    def test_bad_settings_stop_the_start(self):
        cases = [
            ([], {"MY_PORT": "abc"}, "MY_PORT"),
            ([], {"MY_PORT": "70000"}, "MY_PORT"),
            (["--port", "0"], {}, "--port"),
            ([], {"NODE_TTL": "-1"}, "NODE_TTL"),
            (["--node-ttl", "soon"], {}, "--node-ttl"),
            ([], {"WORKERS": "0"}, "WORKERS"),
            ([], {"CLUSTER_MANAGER_PORT": "x"}, "CLUSTER_MANAGER_PORT"),
            (["--manager", "no-port"], {}, "--manager"),
            ([], {"CLUSTER_MANAGER_URL": "http://x/"}, "CLUSTER_MANAGER_URL"),
            ([], {"BIND_ADDR": "localhost:1"}, "BIND_ADDR"),
            (["--bogus"], {}, "--bogus"),
            (["--port"], {}, "--port"),
        ]
        for args, env, name in cases:
            p = self.run_bin(args, env)
            self.assertNotEqual(p.returncode, 0, (args, env))
            self.assertGreater(p.returncode, 0, "a clean error exit, not a crash: %r" % ((args, env),))
            self.assertIn(name, p.stderr.decode(), (args, env, p.stderr))

    def test_flags_override_environment(self):
        recv = self.receiver()
        port = free_port()
        svc = self.service(free_port(), start=False, port=port,  # env manager port: wrong
                           settings={"MY_PORT": free_port(), "NODE_TTL": "0.5"},
                           args=["--port", str(port), "--manager", "%s:%d" % (HOST, recv.port),
                                 "--node-ttl", "30"])
        svc.start()
        svc.put_node("c1", node_doc())
        svc.deploy(job_doc("cfg"), 0)
        [r] = recv.wait_for(1, job="cfg")
        self.assertIs(r.body["found"], True)
        # --node-ttl 30 won over NODE_TTL=0.5: the node is still active
        time.sleep(1.0)
        self.assertIs(svc.node("c1")["active"], True)

    def test_data_dir_in_use_refused(self):
        """A second embedded service on a running one's data directory stops
        with a clear error instead of sharing the file (the queue lives in
        the first one's memory)."""
        recv = self.receiver()
        svc = self.service(recv.port)
        svc.put_node("c1", node_doc())
        p = self.run_bin([], {"DATA_DIR": svc.data_dir, "LOG_LEVEL": "warn"})
        self.assertEqual(p.returncode, 1, p.stderr)
        err = p.stderr.decode()
        self.assertIn("data_dir", err)
        self.assertIn("in use by another process", err)
        # The first one goes on as before.
        svc.deploy(job_doc("still"), 0)
        [r] = recv.wait_for(1, job="still")
        self.assertIs(r.body["found"], True)


if __name__ == "__main__":
    unittest.main()
