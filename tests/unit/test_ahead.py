"""Work started ahead of the stage that needs it: the credential check's head start, warmed
registry connections, and `each_tag` (several tags at once, results in order).

A small Basic-auth registry on 127.0.0.1 counts what reaches it; no Docker needed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hubtasks import api, publish
from hubtasks.console import Console
from hubtasks.errors import AuthError, RegistryError
from hubtasks.gather import each_tag
from hubtasks.references import Repository
from hubtasks.results import PushedTag
from hubtasks.session import Session
from hubtasks.settings import Settings

USER, SECRET = "alice", "s3cret-value"


class BasicRegistry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, headers=(), body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            server.peers.add(self.client_address)
            unwell = server.unwell > 0
            server.unwell -= unwell
        time.sleep(server.delay)
        if unwell:
            return self._send(503)
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, [("WWW-Authenticate", 'Basic realm="test"')])
        if self.path.startswith("/v2/alice/app/manifests/"):
            body = _manifest_of(self.path.rsplit("/", 1)[1])
            return self._send(200, [("Docker-Content-Digest", _digest_of(body))], body)
        return self._send(200)

    do_HEAD = do_GET

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append(f"PUT {self.path}")
        name = self.path.rsplit("/", 1)[1]
        if name.startswith("refused"):
            # What a registry that takes no manifest PUTs answers (distribution: UNSUPPORTED).
            return self._send(405)
        if name.startswith("flaky") and self.server.unwell > 0:
            with self.server.lock:
                self.server.unwell -= 1
            return self._send(503)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return self._send(201, [("Docker-Content-Digest", digest)])


def _manifest_of(name: str) -> bytes:
    return b'{"schemaVersion": 2, "name": "%s"}' % name.encode()


def _digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture
def registry():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BasicRegistry)
    httpd.daemon_threads = True
    httpd.requests, httpd.peers, httpd.unwell, httpd.delay = [], set(), 0, 0.0
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _settings(httpd, token=SECRET) -> Settings:
    address = f"127.0.0.1:{httpd.server_address[1]}"
    return Settings(
        registry=address,
        username=USER,
        token=token,
        repository=Repository(registry=address, path="alice/app"),
        retries=3,
        retry_delay=0.01,
    )


def _session(settings: Settings) -> Session:
    console = Console(out=io.StringIO(), err=io.StringIO(), mode="plain")
    return Session(console=console, context=object()).adopt(settings)


def _logged_in(httpd):
    """Settings, a session, and its registry client with the credentials already checked."""
    settings = _settings(httpd)
    session = _session(settings)
    client = session.registry_for(settings)
    client.check_credentials()
    return settings, session, client


def test_login_takes_the_head_start_answer_without_asking_again(registry):
    settings = _settings(registry)
    session = _session(settings)
    session.check_ahead(settings)
    api.login(settings, session=session)
    # One challenge and one authenticated GET /v2/, both from the head start.
    assert registry.requests == ["/v2/", "/v2/"]
    assert (settings.registry, USER) in session.logged_in


def test_a_head_start_that_met_a_hiccup_counts_as_the_first_attempt(registry):
    settings = _settings(registry)
    session = _session(settings)
    registry.unwell = 1  # the head start meets a 503; login's retry then succeeds
    session.check_ahead(settings)
    api.login(settings, session=session)
    assert registry.requests == ["/v2/", "/v2/", "/v2/"]
    assert (settings.registry, USER) in session.logged_in
    retries = [x for x in session.console.err.getvalue().splitlines() if x.startswith("[retry]")]
    assert len(retries) == 1 and "HTTP 503" in retries[0] and "retry 2/3" in retries[0]


def test_wrong_credentials_fail_login_even_with_a_head_start(registry):
    settings = _settings(registry, token="not-the-secret")
    session = _session(settings)
    session.check_ahead(settings)
    with pytest.raises(AuthError, match="rejected the credentials") as caught:
        api.login(settings, session=session)
    assert "not-the-secret" not in str(caught.value)
    assert session.logged_in == set()


def test_no_head_start_once_logged_in(registry):
    settings = _settings(registry)
    session = _session(settings)
    api.login(settings, session=session)
    seen = len(registry.requests)
    session.check_ahead(settings)
    api.login(settings, session=session)
    assert len(registry.requests) == seen


def test_each_tag_keeps_order_and_puts_errors_in_place(registry):
    settings = _settings(registry)
    session = _session(settings)
    client = session.registry_for(settings)
    names = [f"t{i}" for i in range(9)]

    def operation(c, name):
        if name == "t4":
            raise RegistryError("t4 is broken")
        return c.digest(name)

    found = each_tag(client, session, names, operation, lambda name: f"reading {name}")
    assert [str(x) if isinstance(x, RegistryError) else x for x in found] == [
        "t4 is broken" if n == "t4" else _digest_of(_manifest_of(n)) for n in names
    ]


def test_each_tag_runs_four_at_a_time_on_reused_connections(registry):
    settings = _settings(registry)
    session = _session(settings)
    client = session.registry_for(settings)
    client.check_credentials()  # forks start with this login: no 401 round trip each
    registry.requests.clear()
    registry.delay = 0.2
    names = [f"t{i}" for i in range(8)]
    start = time.monotonic()
    each_tag(client, session, names, lambda c, n: c.digest(n), lambda n: n)
    took = time.monotonic() - start
    # Eight requests of 0.2 s on four connections: two rounds, not eight.
    assert 0.4 <= took < 0.4 + 0.5
    assert len(registry.requests) == 8  # no extra login requests from the forks
    peers = set(registry.peers)
    each_tag(client, session, names, lambda c, n: c.digest(n), lambda n: n)
    assert registry.peers == peers  # the second batch reused the same four connections


def test_warm_forks_open_connections_before_they_are_needed(registry):
    settings, session, client = _logged_in(registry)
    session.warm_forks(client, 3)
    forks = session.forks(client, 3)
    assert len(forks) == 3
    assert all(fork._connection is not None and fork._connection.sock for fork in forks)
    assert session.forks(client, 2) == forks[:2]


def test_copies_the_registry_refuses_go_through_the_daemon_instead(registry, monkeypatch):
    settings, session, client = _logged_in(registry)
    repository = settings.require_repository()
    manifest = (b'{"schemaVersion": 2}', "application/vnd.docker.distribution.manifest.v2+json")
    client._manifests["sha256:src"] = manifest
    through_daemon: list[str] = []

    def daemon_push(settings, name, session):
        through_daemon.append(name)
        return PushedTag(repository, name, "sha256:from-daemon")

    monkeypatch.setattr(publish, "_push_through_daemon", daemon_push)
    done: list[PushedTag] = []
    names = ["a", "refused-b", "c", "refused-d", "e"]
    publish.copy_tags(settings, "sha256:src", names, session, done)
    copied = "sha256:" + hashlib.sha256(manifest[0]).hexdigest()
    assert {p.tag: p.digest for p in done} == {
        "a": copied,
        "c": copied,
        "e": copied,
        "refused-b": "sha256:from-daemon",
        "refused-d": "sha256:from-daemon",
    }
    assert through_daemon == ["refused-b", "refused-d"]  # each once, in order, after copies
    out = session.console.err.getvalue()
    assert "refused-b: manifest copy refused" in out and "HTTP 405" in out


def test_a_copy_that_meets_a_hiccup_is_retried_not_sent_to_the_daemon(registry, monkeypatch):
    settings, session, client = _logged_in(registry)
    client._manifests["sha256:src"] = (b"{}", "application/vnd.oci.image.manifest.v1+json")
    monkeypatch.setattr(
        publish, "_push_through_daemon", lambda *a: pytest.fail("no daemon push expected")
    )
    registry.unwell = 1
    done: list[PushedTag] = []
    publish.copy_tags(settings, "sha256:src", ["flaky-x"], session, done)
    assert [p.tag for p in done] == ["flaky-x"]
    assert registry.requests.count("PUT /v2/alice/app/manifests/flaky-x") == 2
    assert "[retry] tagging" in session.console.err.getvalue()
