"""Registries trusted as the daemon trusts them: the daemon's insecure-registries answer,
certs.d CAs and client certificates, and a TLS failure as one line that is never retried."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.stack import make_certificates
from hubtasks.daemon import credentials
from hubtasks.daemon.credentials import insecure_by_daemon, read_certs_d, registry_trust
from hubtasks.errors import ConfigError, RegistryError
from hubtasks.references import parse_repository
from hubtasks.registry.client import RegistryClient
from hubtasks.registry.transport import Trust
from hubtasks.retry import RetryPolicy
from tests.unit.httpfakes import QuietHandler, serving

DEFAULT = {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}}


def test_the_daemon_index_config_wins_over_its_cidrs() -> None:
    listed = {**DEFAULT, "IndexConfigs": {"registry.lan:5000": {"Secure": False}}}
    assert insecure_by_daemon("registry.lan:5000", listed, resolve=lambda host: ["10.0.0.9"])
    secure = {**DEFAULT, "IndexConfigs": {"registry.test:5000": {"Secure": True}}}
    assert not insecure_by_daemon("registry.test:5000", secure, resolve=lambda h: ["127.0.0.1"])


def test_a_host_resolving_into_an_insecure_range_is_insecure() -> None:
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return {"registry.test": ["127.0.0.1"], "ghcr.io": ["140.82.1.1"]}.get(host, [])

    assert insecure_by_daemon("registry.test:5000", DEFAULT, resolve=resolve)
    assert not insecure_by_daemon("ghcr.io", DEFAULT, resolve=resolve)
    assert not insecure_by_daemon("nowhere.test", DEFAULT, resolve=resolve)
    assert asked == ["registry.test", "ghcr.io", "nowhere.test"]  # the host, not host:port


def test_certs_d_cas_and_client_certificate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(credentials, "SYSTEM_CERTS_D", tmp_path / "etc")
    folder = tmp_path / "etc" / "registry.test:5443"
    folder.mkdir(parents=True)
    for name in ("ca.crt", "other.crt", "client.cert", "client.key", "README"):
        (folder / name).write_text("x")
    trust = read_certs_d("registry.test:5443", {"XDG_CONFIG_HOME": str(tmp_path / "home")})
    assert trust.ca_files == (str(folder / "ca.crt"), str(folder / "other.crt"))
    assert trust.client_cert == (str(folder / "client.cert"), str(folder / "client.key"))
    assert trust.certs_dir == str(folder)
    rootless = tmp_path / "home" / "docker" / "certs.d" / "registry.test:5443"
    rootless.mkdir(parents=True)
    (rootless / "lab.crt").write_text("x")
    trust = read_certs_d("registry.test:5443", {"XDG_CONFIG_HOME": str(tmp_path / "home")})
    assert str(rootless / "lab.crt") in trust.ca_files


def test_a_key_without_its_certificate_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(credentials, "SYSTEM_CERTS_D", tmp_path)
    (tmp_path / "registry.test").mkdir()
    (tmp_path / "registry.test" / "client.key").write_text("x")
    with pytest.raises(
        ConfigError, match=r"client.key has no certificate: put it in .*client\.cert"
    ):
        read_certs_d("registry.test", {"XDG_CONFIG_HOME": str(tmp_path / "none")})


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@contextmanager
def tls_registry(
    certificates: dict[str, Path], *, client_certificates: bool = False
) -> Iterator[ThreadingHTTPServer]:
    """A registry's /v2/ over TLS with the test CA's server certificate (127.0.0.1); with
    `client_certificates`, only a client with a certificate of that CA gets an answer."""

    class Handler(QuietHandler):
        def do_GET(self):
            self._send(200, b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["server_cert"], certificates["server_key"])
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certificates["ca"])
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _client(port: int, scheme: str, trust: Trust) -> RegistryClient:
    repository = parse_repository("team/app", registry="127.0.0.1:1", username=None)
    return RegistryClient(
        repository, "u", "p", base_url=f"{scheme}://127.0.0.1:{port}", trust=trust, timeout=5
    )


def test_a_private_ca_is_one_line_naming_certs_d_and_never_retried(certificates) -> None:
    with tls_registry(certificates) as httpd:
        port = httpd.server_address[1]
        client = _client(port, "https", Trust(certs_dir="/etc/docker/certs.d/127.0.0.1:1"))
        attempts = []

        def ping() -> int:
            attempts.append(1)
            return client.ping()

        with pytest.raises(RegistryError) as caught:
            RetryPolicy(attempts=5, budget=30, base_delay=0.01).call(
                ping, what="ping", on_retry=lambda line: None
            )
        assert len(attempts) == 1 and not caught.value.transient
        message = str(caught.value)
        assert "CERTIFICATE_VERIFY_FAILED" in message and "\n" not in message
        assert "put the CA that signed it in /etc/docker/certs.d/127.0.0.1:1/ca.crt" in message

        trusted = Trust(ca_files=(str(certificates["ca"]),))
        assert _client(port, "https", trusted).ping() == 200


def test_an_insecure_registry_speaking_tls_is_not_verified(certificates) -> None:
    with tls_registry(certificates) as httpd:
        port = httpd.server_address[1]
        assert _client(port, "https", Trust(insecure=True)).ping() == 200
        base_url, trust = registry_trust(f"localhost:{port}", {}, insecure=True)
        assert base_url == f"https://localhost:{port}" and trust.insecure


def test_https_to_a_plain_http_registry_names_insecure_registries() -> None:
    class Handler(QuietHandler):
        def do_GET(self):
            self._send(200, b"{}")

    with serving(Handler) as httpd:
        port = httpd.server_address[1]
        with pytest.raises(RegistryError) as caught:
            _client(port, "https", Trust()).ping()
        assert not caught.value.transient
        assert "answers plain HTTP, not HTTPS" in str(caught.value)
        assert "insecure-registries" in str(caught.value) and "HUB_INSECURE=true" in str(
            caught.value
        )
        base_url, _ = registry_trust(f"localhost:{port}", {}, insecure=True)
        assert base_url == f"http://localhost:{port}"  # no TLS: plain HTTP, as dockerd falls back


def _settings(registry: str, **values: object):
    from hubtasks.settings.resolve import resolve_settings

    env = {"HUB_REGISTRY": registry, "HUB_REPOSITORY": "team/app"}
    env.update({k: str(v) for k, v in values.items()})
    return resolve_settings(flags={}, environ=env, dotenv={}, config={}, cwd=Path("."))


def test_a_session_that_uses_the_daemon_asks_it_about_other_hosts_only(monkeypatch) -> None:
    from hubtasks.pipeline.session import Session
    from hubtasks.ui.console import Console
    from tests.unit.fakes import FakeDaemon, Store

    monkeypatch.setattr(credentials, "speaks_tls", lambda netloc: False)  # no DNS, no traffic
    daemon = FakeDaemon(Store())
    daemon.registry_settings = {"IndexConfigs": {"registry.lan:5000": {"Secure": False}}}
    session = Session(console=Console(mode="plain"), context=object(), engine=daemon)
    assert session.trust_for(_settings("registry.lan:5000"))[1].insecure is False  # daemonless
    session.daemon_trust = True
    assert session.trust_for(_settings("127.0.0.1:5000")) == (
        None,
        session.trust_for(_settings("127.0.0.1:5000"))[1],
    )
    assert daemon.calls["registry_config"] == 0  # loopback: plain HTTP without asking
    base_url, trust = session.trust_for(_settings("registry.lan:5000"))
    assert trust.insecure and daemon.calls["registry_config"] == 1
    assert base_url == "http://registry.lan:5000"
    base_url, trust = session.trust_for(_settings("registry.lan:5000", HUB_INSECURE="false"))
    assert (base_url, trust.insecure) == (None, False)  # the setting wins, nobody asked
    assert daemon.calls["registry_config"] == 1


def test_a_client_certificate_from_certs_d(certificates, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(credentials, "SYSTEM_CERTS_D", tmp_path)
    folder = tmp_path / "127.0.0.1:1"
    folder.mkdir()
    (folder / "ca.crt").write_bytes(certificates["ca"].read_bytes())
    with tls_registry(certificates, client_certificates=True) as httpd:
        port = httpd.server_address[1]
        without = read_certs_d("127.0.0.1:1", {"XDG_CONFIG_HOME": str(tmp_path / "none")})
        with pytest.raises(RegistryError) as caught:
            _client(port, "https", without).ping()
        assert not caught.value.transient and "\n" not in str(caught.value)
        client = certificates["client"]
        (folder / "client.cert").write_bytes((client / "cert.pem").read_bytes())
        (folder / "client.key").write_bytes((client / "key.pem").read_bytes())
        trust = read_certs_d("127.0.0.1:1", {"XDG_CONFIG_HOME": str(tmp_path / "none")})
        assert _client(port, "https", trust).ping() == 200
