"""make install end to end: `cmake --install <build dir> --prefix <tmp>`
puts the two binaries, their man pages, the systemd unit (ExecStart at the
installed binary) and the example environment file in place; the man pages
render; the environment file lists every variable of --help with its
default. CS_BUILD_DIR names the build directory (set by CTest)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("CS_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
TIMEOUT = 60


def run(cmd, **kw):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, **kw)


def help_settings(binary):
    """(variable, default) of every setting `binary --help` lists."""
    out = run([binary, "--help"]).stdout
    found = []
    for line in out.splitlines():
        m = re.search(r"(?:^|\s)([A-Z][A-Z0-9_]{2,})\s+default (\S+)", line)
        if m:
            found.append((m.group(1), "" if m.group(2) == "(unset)" else m.group(2)))
    return found


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="cs-install-")
        p = run(["cmake", "--install", BUILD, "--prefix", cls.prefix])
        cls.install = p

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_files(self):
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)
        for rel in ("bin/cluster-scheduler", "bin/cluster-scheduler-ctl"):
            self.assertTrue(os.access(self.path(rel), os.X_OK), rel)
            p = run([self.path(rel), "--help"])
            self.assertEqual(p.returncode, 0, rel)
            self.assertIn("Usage:", p.stdout)
        for rel in ("share/man/man1/cluster-scheduler.1", "share/man/man1/cluster-scheduler-ctl.1",
                    "lib/systemd/system/cluster-scheduler.service",
                    "share/doc/cluster-scheduler/env.example",
                    "share/doc/cluster-scheduler/README.md",
                    "share/doc/cluster-scheduler/API.md"):
            self.assertTrue(os.path.isfile(self.path(rel)), rel)
            self.assertGreater(os.path.getsize(self.path(rel)), 100, rel)

    def test_systemd_unit(self):
        with open(self.path("lib/systemd/system/cluster-scheduler.service")) as f:
            unit = f.read()
        lines = unit.splitlines()
        self.assertIn("ExecStart=%s" % self.path("bin/cluster-scheduler"), lines)
        for want in ("EnvironmentFile=-/etc/cluster-scheduler/env", "DynamicUser=yes",
                     "StateDirectory=cluster-scheduler",
                     "Environment=DATA_DIR=/var/lib/cluster-scheduler", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "WantedBy=multi-user.target"):
            self.assertIn(want, lines)
        # every line a comment, a section or Key=value
        for ln in lines:
            self.assertTrue(not ln or ln.startswith("#") or re.match(r"^\[\w+\]$", ln)
                            or re.match(r"^[A-Za-z]+=", ln), ln)
        # systemd's own check (unknown keys, bad values, the binary and the
        # man page it names exist), where systemd is installed
        analyze = shutil.which("systemd-analyze")
        if analyze:
            p = subprocess.run([analyze, "verify",
                                self.path("lib/systemd/system/cluster-scheduler.service")],
                               capture_output=True, text=True, timeout=TIMEOUT,
                               env=dict(os.environ, MANPATH=self.path("share/man")))
            self.assertEqual((p.returncode, p.stderr.strip()), (0, ""), p.stdout)

    def render(self, page):
        """The page as text, through man -l or groff; asserts no warning."""
        path = self.path("share/man/man1", page)
        with open(path) as f:
            self.assertTrue(re.search(r"^\.TH ", f.read(), re.M), page)
        groff = shutil.which("groff")
        if groff:
            p = run([groff, "-man", "-ww", "-z", path])
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)
        man = shutil.which("man")
        if man:
            p = subprocess.run([man, "-l", "-P", "cat", path], capture_output=True, text=True,
                               timeout=TIMEOUT, env=dict(os.environ, MANWIDTH="100"))
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        if groff:
            return run([groff, "-man", "-Tutf8", "-P", "-c", path]).stdout
        self.fail("neither man nor groff is installed (scripts/deps.sh installs groff-base)")

    def test_man_pages_render(self):
        text = self.render("cluster-scheduler.1")
        self.assertIn("cluster-scheduler - places jobs on the nodes of a cluster", text)
        for head in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES",
                     "SEE ALSO"):
            self.assertRegex(text, r"(?m)^%s$" % head)
        helptext = run([self.path("bin/cluster-scheduler"), "--help"]).stdout
        for flag in re.findall(r"^  (--[a-z-]+)", helptext, re.M):
            self.assertRegex(text, r"(?m)^\s+%s\b" % re.escape(flag), flag)
        for var, _ in help_settings(self.path("bin/cluster-scheduler")):
            self.assertIn(var, text)

        text = self.render("cluster-scheduler-ctl.1")
        self.assertIn("cluster-scheduler-ctl - command-line client", text)
        for word in ("COMMANDS", "nodes", "submit FILE", "dry-run FILE", "--target HOST:PORT",
                     "SCHEDULER_TOKEN", "EXIT STATUS"):
            self.assertIn(word, text)

    def test_env_example_lists_every_variable(self):
        with open(self.path("share/doc/cluster-scheduler/env.example")) as f:
            lines = f.read().splitlines()
        settings = help_settings(self.path("bin/cluster-scheduler"))
        self.assertGreater(len(settings), 15)
        for var, default in settings:
            self.assertIn("#%s=%s" % (var, default), lines,
                          "%s (default %r) missing from packaging/cluster-scheduler.env; "
                          "regenerate it: cmake --build build --target env-example"
                          % (var, default))
        # and nothing it names is unknown
        names = {v for v, _ in settings}
        for ln in lines:
            m = re.match(r"^#?([A-Z][A-Z0-9_]+)=", ln)
            if m:
                self.assertIn(m.group(1), names, ln)


if __name__ == "__main__":
    unittest.main()
