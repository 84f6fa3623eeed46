"""Reliability under injected faults, on 127.0.0.1 only: a fault proxy in front of the real
registry, a registry and a daemon stopped and started, a TLS daemon, concurrent releases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.faultproxy import CutUpload, FaultProxy, HttpStatus, RefuseConnections, Stall
from devtools.latency import LatencyProxy
from devtools.stack import Daemon, Registry, TlsDaemon, make_base_image

from .conftest import assert_clean_failure

FAST_RETRIES = {"HUB_RETRIES": "6", "HUB_RETRY_DELAY": "0.2", "HUB_TIMEOUT": "30"}


def _unique_layer(project, megabytes: int = 1) -> None:
    """A Dockerfile whose layer is new random data, so the push really uploads it."""
    name = project.repository.split("/")[1]
    project.write(
        "Dockerfile",
        f"FROM busybox:local\nRUN echo {name} > /name && "
        f"dd if=/dev/urandom of=/blob bs=1024 count={megabytes * 1024} 2>/dev/null\n"
        'CMD ["cat", "/name"]\n',
    )


def _complete(project, registry_server, tags) -> None:
    """Every tag is there and its manifest resolves: nothing half-pushed under a tag."""
    assert registry_server.tags(project.repository) == sorted(tags)
    for tag in tags:
        assert registry_server.manifest_digest(project.repository, tag)


@pytest.fixture
def proxy(stack):
    with FaultProxy("127.0.0.1", stack.registry_server.port) as running:
        yield running


def _via(project, proxy) -> None:
    project.add_env(HUB_REGISTRY=proxy.address, **FAST_RETRIES)


@pytest.mark.parametrize(
    "scenario",
    [
        RefuseConnections(2),
        HttpStatus(503, 2),
        HttpStatus(429, 2, retry_after=1),
        HttpStatus(502, 1),
        CutUpload(after_bytes=300_000),
    ],
    ids=["refuse-2", "503x2", "429x2-retry-after", "502", "cut-upload"],
)
def test_transient_faults_end_in_a_verified_release(project, stack, proxy, scenario):
    _unique_layer(project)
    _via(project, proxy)
    proxy.scenario = scenario
    started = time.monotonic()
    result = project.inv("release", "--tag", "v1", "--tag", "latest")
    assert result.returncode == 0, result.stderr
    assert scenario.fired >= 1, "the fault never happened"
    assert time.monotonic() - started < 60
    _complete(project, stack.registry_server, ["latest", "v1"])
    for line in result.stdout.splitlines():
        tag, digest = line.split("@")[0].rsplit(":", 1)[1], line.split("@")[1]
        assert stack.registry_server.manifest_digest(project.repository, tag) == digest
    if not isinstance(scenario, CutUpload):  # the daemon retries cut uploads itself
        assert "[retry]" in result.stderr


def test_release_to_a_registry_a_round_trip_away(project, stack):
    """The overlapped and parallel requests (credential check ahead, registry read during the
    build, copies and verification on forked connections) against the real registry and
    daemon, with every request 40 ms long: everything lands and is verified."""
    _unique_layer(project)
    with LatencyProxy("127.0.0.1", stack.registry_server.port, delay=0.02) as far:
        project.add_env(HUB_REGISTRY=far.address)
        first = project.inv("release", "--tag", "v1.2.3", "--tag", "edge", "--tag", "nightly")
        again = project.inv("release", "--tag", "v1.2.3", "--tag", "edge", "--tag", "nightly")
        reached = far.connections
    assert first.returncode == 0, first.stderr
    published = dict(line.split("@") for line in first.stdout.splitlines())
    assert len(published) == 3
    for ref, digest in published.items():
        tag = ref.rsplit(":", 1)[1]
        assert stack.registry_server.manifest_digest(project.repository, tag) == digest
    assert len(set(published.values())) == 1
    assert first.stderr.count("[verify]") == 3
    # The same release again: the plan sees all three unchanged (no build).
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(": unchanged (") == 3
    assert "[push] pushing" not in again.stderr
    assert reached >= 4  # hubtasks' connections and the daemon's all went through the proxy


def test_retry_lines_say_what_failed_and_when(project, proxy):
    _via(project, proxy)
    proxy.scenario = RefuseConnections(1)
    result = project.inv("login")
    assert result.returncode == 0, result.stderr
    retry = [line for line in result.stderr.splitlines() if line.startswith("[retry]")]
    assert len(retry) == 1
    assert "login to" in retry[0] and "retry 2/6 in" in retry[0] and retry[0].endswith("s")


def test_stall_ends_cleanly(project, stack, proxy):
    _via(project, proxy)
    proxy.scenario = Stall(seconds=3, n=1)
    started = time.monotonic()
    result = project.inv("release", "--tag", "v1")
    assert time.monotonic() - started < 60
    if result.returncode == 0:
        _complete(project, stack.registry_server, ["v1"])
    else:
        assert_clean_failure(result, project)
        assert project.tags() == []


def test_a_registry_that_is_gone_fails_within_the_budget(project):
    port = __import__("devtools.stack", fromlist=["free_port"]).free_port()
    project.add_env(
        HUB_REGISTRY=f"127.0.0.1:{port}", HUB_RETRIES="100", HUB_RETRY_DELAY="0.5", HUB_TIMEOUT="4"
    )
    started = time.monotonic()
    result = project.inv("release", "--tag", "v1")
    elapsed = time.monotonic() - started
    last = assert_clean_failure(result, project, mentions="connection refused")
    assert "retry budget" in last
    assert elapsed < 4 + 8, elapsed  # budget plus one last delay and start-up
    assert result.stderr.count("[retry]") >= 2


def test_unauthorized_is_never_retried(project):
    project.add_env(**FAST_RETRIES)
    result = project.inv("release", "--tag", "v1", HUB_TOKEN="wrong-password")
    assert_clean_failure(result, project, mentions="rejected the credentials")
    assert "[retry]" not in result.stderr


@pytest.fixture
def own_registry(stack, tmp_path):
    """A registry of this test's own, so it can be stopped without disturbing others."""
    registry = Registry(tmp_path / "own-registry", stack.username, stack.password)
    registry.start()
    yield registry
    registry.stop()


def test_registry_restarting_mid_push_is_survived(project, own_registry):
    _unique_layer(project, megabytes=2)
    project.add_env(
        HUB_REGISTRY=own_registry.address, HUB_RETRIES="10", HUB_RETRY_DELAY="0.3", HUB_TIMEOUT="40"
    )
    tags = ["a", "b", "c", "d"]
    first_tag = (
        own_registry.root
        / "data"
        / "docker"
        / "registry"
        / "v2"
        / "repositories"
        / (project.repository)
        / "_manifests"
        / "tags"
        / "a"
    )

    def restart_when_the_first_tag_lands() -> None:
        deadline = time.monotonic() + 60
        while not first_tag.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        own_registry.stop()
        time.sleep(1.5)
        own_registry.start()

    watcher = threading.Thread(target=restart_when_the_first_tag_lands)
    watcher.start()
    args = [arg for tag in tags for arg in ("--tag", tag)]
    result = project.inv("release", *args)
    watcher.join()
    assert result.returncode == 0, result.stderr
    assert "[retry]" in result.stderr
    _complete(project, own_registry, tags)


def test_failed_release_reports_what_made_it_and_a_rerun_completes(project, own_registry):
    _unique_layer(project)
    project.add_env(
        HUB_REGISTRY=own_registry.address, HUB_RETRIES="2", HUB_RETRY_DELAY="0.1", HUB_TIMEOUT="2"
    )
    tags = ["a", "b", "c", "d", "e", "f"]
    args = [arg for tag in tags for arg in ("--tag", tag)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "release", *args],
        cwd=project.path,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:  # stop the registry as soon as hubtasks reports tag a pushed
        lines.append(line)
        if line.startswith("[push] pushed") and f"{project.repository}:a " in line:
            own_registry.stop()
    proc.wait(120)
    stderr = "".join(lines)
    assert proc.returncode != 0, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("hubtasks: ") and "already pushed:" in last, last
    made_it = [t for t in tags if f"{project.repository}:{t}@sha256:" in last]
    assert made_it[0] == "a" and len(made_it) < len(tags)

    own_registry.start()
    for tag in made_it:  # what the message said made it really is there
        assert own_registry.manifest_digest(project.repository, tag)
    again = project.inv("release", *args)
    assert again.returncode == 0, again.stderr
    for tag in made_it:  # and is not pushed twice
        assert f":{tag}: unchanged (" in again.stderr
    _complete(project, own_registry, tags)


@pytest.fixture
def own_daemon(tmp_path_factory):
    root = Path(f"/tmp/hub-d-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    daemon = Daemon(root)
    daemon.start()
    make_base_image(daemon.host)
    yield daemon
    daemon.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.builds
def test_stopped_daemon_fails_cleanly_and_a_rerun_completes(project, own_daemon, stack):
    own_daemon.stop()
    failed = project.inv("release", "--tag", "v1", DOCKER_HOST=own_daemon.host)
    assert_clean_failure(failed, project, mentions=own_daemon.host)
    assert project.tags() == []
    own_daemon.start()
    again = project.inv("release", "--tag", "v1", DOCKER_HOST=own_daemon.host)
    assert again.returncode == 0, again.stderr
    _complete(project, stack.registry_server, ["v1"])


@pytest.fixture(scope="module")
def tls_daemon():
    root = Path(f"/tmp/hub-tls-{os.getpid()}")
    daemon = TlsDaemon(root)
    daemon.start()
    # This test process's own docker-py would let REQUESTS_CA_BUNDLE (set on some machines)
    # replace the test CA; hubtasks does not (tested below), the helper here needs them gone.
    saved = {
        k: os.environ.pop(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if k in os.environ
    }
    try:
        make_base_image(daemon.host, environment=daemon.env())
    finally:
        os.environ.update(saved)
    yield daemon
    daemon.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.builds
def test_release_through_a_tls_daemon(project, stack, tls_daemon, tmp_path):
    # REQUESTS_CA_BUNDLE must not override DOCKER_CERT_PATH's CA (docker/docker-py#2433).
    bogus_bundle = tmp_path / "bundle.pem"
    bogus_bundle.write_text("")
    result = project.inv(
        "release", "--tag", "v1", REQUESTS_CA_BUNDLE=str(bogus_bundle), **tls_daemon.env()
    )
    assert result.returncode == 0, result.stderr
    _complete(project, stack.registry_server, ["v1"])

    wrong = tmp_path / "no-certs"
    wrong.mkdir()
    failed = project.inv(
        "build", "--tag", "x", **{**tls_daemon.env(), "DOCKER_CERT_PATH": str(wrong)}
    )
    assert_clean_failure(failed, project, mentions=tls_daemon.host)


@pytest.mark.builds
def test_two_releases_at_the_same_time(project, stack, tmp_path):
    import copy

    other = copy.copy(project)
    other.path = tmp_path / "other"
    shutil.copytree(project.path, other.path)
    other.repository = project.repository + "-other"
    env_text = (
        (other.path / ".env")
        .read_text()
        .replace(
            f"HUB_REPOSITORY={project.repository.split('/')[1]}",
            f"HUB_REPOSITORY={other.repository.split('/')[1]}",
        )
    )
    (other.path / ".env").write_text(env_text)
    _unique_layer(project)
    _unique_layer(other)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "invoke", "release", "--tag", "v1"],
            cwd=p.path,
            env=p.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (project, other)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    for p, (out, _) in zip((project, other), outputs, strict=True):
        digest = stack.registry_server.manifest_digest(p.repository, "v1")
        assert out.strip() == f"{stack.registry}/{p.repository}:v1@{digest}"


@pytest.fixture
def ssh_server(stack):
    from devtools.stack import SshServer

    root = Path(f"/tmp/hub-ssh-{os.getpid()}")
    server = SshServer(root, stack.daemon.host)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.builds
def test_release_through_an_ssh_daemon(project, stack, ssh_server):
    pytest.importorskip("paramiko")  # docker-py needs it to import its ssh transport
    result = project.inv("release", "--tag", "v1", **ssh_server.env())
    assert result.returncode == 0, result.stderr
    _complete(project, stack.registry_server, ["v1"])
    ssh_server.stop()
    failed = project.inv("build", "--tag", "x", **ssh_server.env())
    assert_clean_failure(failed, project, mentions=ssh_server.host)
