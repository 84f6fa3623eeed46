"""SIGTERM (CI cancellation, `timeout`) and SIGHUP end a run as Ctrl-C does (issue 26 item 2):
one `hubtasks: interrupted …` line, the `--json` error document, and a write under way at the
interrupt named as one that may have landed. Real daemon and registry, a proxy holding the
daemon's manifest PUT open so the signal arrives while it is in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from devtools.httpfault import HttpFaultProxy, Rule


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"]
)
def test_a_signal_during_the_push_names_the_write_in_flight(project, stack, signum, code):
    with HttpFaultProxy(stack.registry_server.port) as proxy:
        project.add_env(HUB_REGISTRY=proxy.address)
        reference = f"{proxy.address}/{project.repository}:v1"
        put = proxy.add(Rule(method="PUT", path="/manifests/", agent="docker", delay=4))
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "release", "--tag", "v1", "--json"],
            cwd=project.path,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not put.fired and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert put.fired, proc.communicate()[1]
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
        time.sleep(5)  # the daemon's PUT, released by the proxy, lands after the exit
        landed = stack.registry_server.manifest_digest(project.repository, "v1")
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"hubtasks: interrupted ({name})"), last
    assert f"may have landed: {reference}" in last, last
    error = json.loads(stdout)["error"]
    assert error["exit_code"] == code and error["message"] == last.removeprefix("hubtasks: ")
    assert landed is not None  # what "may have landed" warned of
