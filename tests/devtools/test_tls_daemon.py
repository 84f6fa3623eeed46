"""devtools.stack.TlsDaemon: a dockerd on tcp://127.0.0.1 with --tlsverify, next to the stack's."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from pathlib import Path

import docker
import pytest
import requests

from devtools.stack import BASE_IMAGE, TlsDaemon, make_base_image, make_certificates

# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's own `verify`, so with
# either set docker-py ignores the CA from DOCKER_CERT_PATH and fails with
# CERTIFICATE_VERIFY_FAILED (docker/docker-py#2433, psf/requests#5209). This machine sets both;
# the module runs without them, and `test_requests_ca_bundle_overrides_the_docker_ca` pins the
# behaviour down.
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# A fixed API version: otherwise constructing a client already asks the daemon for its version,
# and the failures these tests expect would happen in the constructor.
_API = "1.41"


@pytest.fixture(scope="module", autouse=True)
def _no_ca_bundle_override():
    with pytest.MonkeyPatch.context() as patch:
        for name in _CA_BUNDLE_VARIABLES:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def tls_daemon(_no_ca_bundle_override):
    if not shutil.which("openssl"):
        pytest.fail("the TLS daemon needs: apt-get install openssl")
    # A short path under /tmp: containerd's socket lives in the exec root (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="hubtls-", dir="/tmp"))
    daemon = TlsDaemon(root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_env(tls_daemon) -> dict[str, str]:
    return tls_daemon.env()


@pytest.fixture(scope="module")
def tls_client(tls_env):
    client = docker.from_env(environment=tls_env, timeout=120)
    yield client
    client.close()


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of `pid`, from /proc."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            if int(fields["PPid"]) == pid:
                cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append((int(status.parent.name), cmdline.decode().strip()))
        except (OSError, KeyError, ValueError):
            continue
    return found


def test_env_points_docker_at_tcp_with_tls(tls_daemon, tls_env):
    assert tls_env == {
        "DOCKER_HOST": f"tcp://127.0.0.1:{tls_daemon.port}",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(tls_daemon.root / "tls" / "client"),
    }
    assert sorted(p.name for p in Path(tls_env["DOCKER_CERT_PATH"]).iterdir()) == [
        "ca.pem",
        "cert.pem",
        "key.pem",
    ]


def test_version_over_tls(tls_client):
    version = tls_client.version()
    assert version["ApiVersion"]
    assert tls_client.ping() is True


def test_no_client_certificate_is_refused(tls_daemon):
    ca = str(tls_daemon.cert_path / "ca.pem")
    client = docker.DockerClient(
        base_url=tls_daemon.host,
        tls=docker.tls.TLSConfig(ca_cert=ca, verify=True),
        timeout=10,
        version=_API,
    )
    try:
        with pytest.raises(requests.exceptions.ConnectionError) as info:  # SSLError is one
            client.version()
    finally:
        client.close()
    assert "certificate" in str(info.value).lower() or "ssl" in str(info.value).lower()

    # The same at the socket level: the handshake (or, on TLS 1.3, the first read) fails.
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=5) as raw:
        context = tls_daemon.ssl_context(client_cert=False)
        with (
            pytest.raises(ssl.SSLError, match=r"(?i)certificate"),
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            tls.recv(100)


def test_a_client_certificate_from_another_ca_is_refused(tls_daemon, tmp_path):
    other = make_certificates(tmp_path / "other")["client"]
    client = docker.DockerClient(
        base_url=tls_daemon.host,
        tls=docker.tls.TLSConfig(
            client_cert=(str(other / "cert.pem"), str(other / "key.pem")),
            ca_cert=str(tls_daemon.cert_path / "ca.pem"),
            verify=True,
        ),
        timeout=10,
        version=_API,
    )
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            client.version()
    finally:
        client.close()


def test_requests_ca_bundle_overrides_the_docker_ca(tls_daemon, tls_env, tmp_path, monkeypatch):
    """A fact about docker-py + requests that any TLS support in hubtasks has to live with."""
    bundle = make_certificates(tmp_path / "other")["ca"]  # any bundle without our CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with pytest.raises(docker.errors.DockerException, match="CERTIFICATE_VERIFY_FAILED"):
        docker.from_env(environment=tls_env, timeout=10)
    # A client that does not read the environment (Session.trust_env) is not affected.
    client = docker.from_env(environment=tls_env, timeout=10, version=_API)
    client.api.trust_env = False
    try:
        assert client.version()["ApiVersion"]
    finally:
        client.close()


def test_plain_http_is_refused(tls_daemon):
    client = docker.DockerClient(base_url=tls_daemon.host, timeout=10, version=_API)  # no TLS
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.version()
    finally:
        client.close()
    assert info.value.response.status_code == 400
    assert "HTTPS" in str(info.value)


def test_base_image_over_tls_and_a_container_runs(tls_daemon, tls_env, tls_client):
    make_base_image(tls_daemon.host, environment=tls_env)
    assert BASE_IMAGE in tls_client.images.get(BASE_IMAGE).tags
    make_base_image(tls_daemon.host, environment=tls_env)  # a second call finds it and returns
    output = tls_client.containers.run(BASE_IMAGE, ["echo", "hi over tls"], remove=True)
    assert output == b"hi over tls\n"


def test_runs_alongside_the_stack_daemon(stack, client, tls_daemon, tls_client):
    """Two dockerd at once: each has started its own containerd under its own exec root."""
    assert client.version()["ApiVersion"] and tls_client.version()["ApiVersion"]
    containerds = {}
    for name, daemon in (("stack", stack.daemon), ("tls", tls_daemon)):
        children = [cmd for _, cmd in _children(daemon.process.pid) if "containerd" in cmd]
        assert len(children) == 1, children
        assert str(daemon.root / "x" / "containerd") in children[0]
        containerds[name] = children[0]
    assert containerds["stack"] != containerds["tls"]
    # Both can run a container at the same moment-ish (both need their containerd + runc).
    assert client.containers.run(BASE_IMAGE, ["echo", "plain"], remove=True) == b"plain\n"
    make_base_image(tls_daemon.host, environment=tls_daemon.env())
    assert tls_client.containers.run(BASE_IMAGE, ["echo", "tls"], remove=True) == b"tls\n"
