"""Registries reached as the daemon reaches them (issue 23): one on a host name over plain
HTTP, one over TLS with a CA made here and placed where the daemon reads CAs
(/etc/docker/certs.d/HOST:PORT/ca.crt). The host name resolves to 127.0.0.1 (the test tooling
adds it to /etc/hosts when it does not)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from devtools.stack import Registry, ensure_host_name, make_certificates
from tests.integration.conftest import Project, assert_clean_failure

HOST = "registry.test"
NO_DAEMON = "unix:///nonexistent/docker.sock"  # promote needs none


@pytest.fixture(scope="module")
def http_registry(stack, tmp_path_factory):
    ensure_host_name(HOST)
    registry = Registry(
        tmp_path_factory.mktemp("http-registry"), stack.username, stack.password, host=HOST
    )
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def tls_registry(stack, tmp_path_factory):
    ensure_host_name(HOST)
    certs = make_certificates(tmp_path_factory.mktemp("tls-certs"), names=(HOST,))
    registry = Registry(
        tmp_path_factory.mktemp("tls-registry"),
        stack.username,
        stack.password,
        host=HOST,
        tls=(certs["server_cert"], certs["server_key"]),
    )
    registry.start()
    registry.ca = certs["ca"]  # type: ignore[attr-defined]
    yield registry
    registry.stop()


def _at(project: Project, registry: Registry) -> None:
    project.drop_env("HUB_REGISTRY")
    project.add_env(HUB_REGISTRY=registry.address)


def test_a_plain_http_registry_on_a_host_name(project: Project, http_registry: Registry) -> None:
    _at(project, http_registry)
    # The daemon reaches registry.test over HTTP (it resolves into its 127.0.0.0/8
    # insecure range); so does hubtasks, asking the daemon.
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert http_registry.tags(project.repository) == ["v1"]
    assert "[retry]" not in result.stderr

    # promote needs no daemon: HTTPS unless HUB_INSECURE says otherwise, and one line saying so.
    started = time.monotonic()
    refused = project.inv("promote", "--source", "v1", "--tag", "v2", DOCKER_HOST=NO_DAEMON)
    last = assert_clean_failure(refused, project, mentions="answers plain HTTP, not HTTPS")
    assert "HUB_INSECURE=true" in last and "[retry]" not in refused.stderr
    assert time.monotonic() - started < 20
    promoted = project.inv(
        "promote", "--source", "v1", "--tag", "v2", DOCKER_HOST=NO_DAEMON, HUB_INSECURE="true"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert http_registry.tags(project.repository) == ["v1", "v2"]


def test_a_tls_registry_with_a_private_ca(project: Project, tls_registry: Registry) -> None:
    _at(project, tls_registry)
    # For the daemon a registry on 127.0.0.1 is insecure: HTTPS without verification.
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert tls_registry.tags(project.repository) == ["v1"]

    certs_d = Path("/etc/docker/certs.d") / tls_registry.address
    shutil.rmtree(certs_d, ignore_errors=True)
    refused = project.inv("promote", "--source", "v1", "--tag", "v2", DOCKER_HOST=NO_DAEMON)
    last = assert_clean_failure(refused, project, mentions="CERTIFICATE_VERIFY_FAILED")
    assert f"put the CA that signed it in {certs_d}/ca.crt" in last
    assert "[retry]" not in refused.stderr

    certs_d.mkdir(parents=True)
    try:
        shutil.copy(tls_registry.ca, certs_d / "ca.crt")  # type: ignore[attr-defined]
        promoted = project.inv("promote", "--source", "v1", "--tag", "v2", DOCKER_HOST=NO_DAEMON)
        assert promoted.returncode == 0, promoted.stderr
        assert tls_registry.tags(project.repository) == ["v1", "v2"]
    finally:
        shutil.rmtree(certs_d, ignore_errors=True)
