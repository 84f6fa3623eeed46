"""Work started ahead of the stage that needs it: the credential check's head start, warmed
registry connections, and `each_tag` (several tags at once, results in order).

A small Basic-auth registry on 127.0.0.1 counts what reaches it; no Docker needed (a push
through the daemon goes to the fake daemon of tests/unit/fakes.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from hubtasks import api
from hubtasks.errors import AuthError, RegistryError
from hubtasks.pipeline import publish
from hubtasks.pipeline.gather import each_tag
from hubtasks.pipeline.results import PushedTag
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.settings.resolve import Settings
from tests.helpers.consoles import make_console

from .fakes import FakeDaemon, Store
from .httpfakes import QuietHandler

USER, SECRET = "alice", "s3cret-value"


class BasicRegistry(QuietHandler):
    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            server.peers.add(self.client_address)
            unwell = server.unwell > 0
            server.unwell -= unwell
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        time.sleep(server.delay)
        with server.lock:
            server.in_flight -= 1
        if unwell:
            return self._send(503)
        if self.headers.get("Authorization") != _expected():
            return self._send(401, headers=[("WWW-Authenticate", 'Basic realm="test"')])
        if self.path.startswith("/v2/alice/app/tags/list"):
            listed = {"name": "alice/app", "tags": ["v1", "v2"]}
            body = json.dumps(listed).encode()
            return self._send(200, body, [("Content-Type", "application/json")])
        if self.path.startswith("/v2/alice/app/manifests/"):
            return self._send_manifest(self.path.rsplit("/", 1)[1])
        return self._send(200)

    def _send_manifest(self, reference):
        """A manifest PUT earlier (or `hold`), by digest; any tag names a small manifest of
        its own."""
        if reference.startswith("sha256:"):
            if reference not in self.server.manifests:
                return self._send(404)
            body, media_type = self.server.manifests[reference]
        else:
            body, media_type = _manifest_of(reference), MANIFEST_V2
        headers = [("Docker-Content-Digest", _digest_of(body)), ("Content-Type", media_type)]
        return self._send(200, body, headers)

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
        digest = _digest_of(body)
        with self.server.lock:
            self.server.manifests[digest] = (body, self.headers.get("Content-Type", MANIFEST_V2))
        return self._send(201, headers=[("Docker-Content-Digest", digest)])

    def do_POST(self):
        """Open a blob upload (what the push-access check does)."""
        with self.server.lock:
            self.server.requests.append(f"POST {self.path}")
            self.server.peers.add(self.client_address)
        if self.headers.get("Authorization") != _expected():
            return self._send(401, headers=[("WWW-Authenticate", 'Basic realm="test"')])
        if self.server.refuse_uploads:  # a read-only token
            return self._send(403)
        location = self.server.upload_location
        return self._send(202, headers=[("Location", location)])

    def do_DELETE(self):
        """Cancel the upload, once `delete_gate` is open (a slow registry while it is shut)."""
        self.server.delete_gate.wait(10)
        with self.server.lock:
            self.server.requests.append(f"DELETE {self.path}")
        return self._send(204)


def _expected() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


class Registry(ThreadingHTTPServer):
    """The server of `BasicRegistry`: what reached it (request paths, the peers that sent them,
    every connection accepted), the manifests it holds by digest, and its faults (`unwell`: the
    next GETs or `flaky…` PUTs answer 503; `delay` before each GET)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), BasicRegistry)
        self.requests, self.peers, self.unwell, self.delay = [], set(), 0, 0.0
        self.in_flight = self.most_in_flight = 0  # GETs being answered at once
        self.delete_gate, self.refuse_uploads = threading.Event(), False
        self.delete_gate.set()
        self.upload_location = "/v2/alice/app/blobs/uploads/u1?_state=s"
        self.accepted = 0
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()

    def verify_request(self, request, client_address) -> bool:
        with self.lock:
            self.accepted += 1
        return True

    def hold(self, body: bytes, media_type: str) -> str:
        """A manifest the registry holds (as if pushed earlier); its digest."""
        self.manifests[_digest_of(body)] = (body, media_type)
        return _digest_of(body)


MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def _manifest_of(name: str) -> bytes:
    return b'{"schemaVersion": 2, "name": "%s"}' % name.encode()


def _digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture
def registry():
    httpd = Registry()
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


def _session(settings: Settings, engine: FakeDaemon | None = None) -> Session:
    console = make_console("plain")
    return Session(console=console, context=object(), engine=engine).adopt(settings)


def _logged_in(httpd, engine: FakeDaemon | None = None):
    """Settings, a session, and its registry client with the credentials already checked."""
    settings = _settings(httpd)
    session = _session(settings, engine)
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


def test_the_head_start_can_be_the_tag_list_the_release_reads_next(registry):
    settings = _settings(registry)
    session = _session(settings)
    session.check_ahead(settings, list_tags=True)
    api.login(settings, session=session)
    assert session.listed_tags(settings) == ["v1", "v2"]
    assert session.listed_tags(settings) is None  # handed on once
    # The challenge and the answer, both on the tag list: no separate GET /v2/.
    assert registry.requests == ["/v2/alice/app/tags/list?n=1000"] * 2


def test_wrong_credentials_fail_the_tag_list_head_start_as_a_login(registry):
    settings = _settings(registry, token="not-the-secret")
    session = _session(settings)
    session.check_ahead(settings, list_tags=True)
    with pytest.raises(AuthError, match="rejected the credentials"):
        api.login(settings, session=session)
    assert session.listed_tags(settings) is None


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
    # Eight requests of 0.2 s, four at a time: two rounds (0.4 s), not eight (1.6 s); the
    # margin is for a loaded machine (CI shares its cores), the count says "four".
    assert 0.4 <= took < 1.2
    assert registry.most_in_flight == 4
    assert len(registry.requests) == 8  # no extra login requests from the forks
    peers = set(registry.peers)
    each_tag(client, session, names, lambda c, n: c.digest(n), lambda n: n)
    assert registry.peers == peers  # the second batch reused the same four connections


def test_warm_forks_open_connections_before_they_are_needed(registry):
    _, session, client = _logged_in(registry)
    asked = len(registry.requests)
    session.warm_forks(client, 3)
    forks = session.forks(client, 3)
    assert len(forks) == 3
    deadline = time.monotonic() + 5  # the server accepts on its own thread
    while registry.accepted < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    # The client's own connection and one per fork, open before anything was asked on them.
    assert (registry.accepted, len(registry.requests)) == (4, asked)
    for fork in forks:
        fork.digest("t1")
    assert registry.accepted == 4  # each fork asked on the connection it had opened
    assert session.forks(client, 2) == forks[:2]


def _image_tagged(daemon: FakeDaemon, repository: Repository, names: list[str]) -> None:
    """A local image under `names`, as a build leaves it, for the daemon to push."""
    image = daemon.build(
        context=SimpleNamespace(labels={}), ref=None, build_args={}, on_output=lambda _: None
    )
    for name in names:
        daemon.tag(image, repository, name)


def test_copies_the_registry_refuses_go_through_the_daemon_instead(registry):
    daemon = FakeDaemon(Store())
    settings, session, _ = _logged_in(registry, engine=daemon)
    repository = settings.require_repository()
    _image_tagged(daemon, repository, ["refused-b", "refused-d"])
    body = b'{"schemaVersion": 2}'
    source = registry.hold(body, MANIFEST_V2)
    done: list[PushedTag] = []
    names = ["a", "refused-b", "c", "refused-d", "e"]
    publish.copy_tags(settings, source, names, session, done)
    pushed = daemon.store.tags  # what the daemon pushed, in order
    assert {p.tag: p.digest for p in done} == {
        "a": source,
        "c": source,
        "e": source,
        "refused-b": pushed["refused-b"],
        "refused-d": pushed["refused-d"],
    }
    assert list(pushed) == ["refused-b", "refused-d"]  # each once, in order, after copies
    assert daemon.calls["push"] == 2
    out = session.console.err.getvalue()
    assert "refused-b: manifest copy refused" in out and "HTTP 405" in out


def test_a_copy_that_meets_a_hiccup_is_retried_not_sent_to_the_daemon(registry):
    daemon = FakeDaemon(Store())
    settings, session, client = _logged_in(registry, engine=daemon)
    source = registry.hold(b"{}", "application/vnd.oci.image.manifest.v1+json")
    client.raw_manifest(source)  # read (and kept: a digest's bytes never change) before the 503
    registry.unwell = 1
    done: list[PushedTag] = []
    publish.copy_tags(settings, source, ["flaky-x"], session, done)
    assert [p.tag for p in done] == ["flaky-x"]
    assert registry.requests.count("PUT /v2/alice/app/manifests/flaky-x") == 2
    assert daemon.calls["push"] == 0
    assert "[retry] tagging" in session.console.err.getvalue()


def test_push_access_is_asked_ahead_and_its_cancellation_is_not_waited_for(registry):
    settings = _settings(registry)
    session = _session(settings)
    registry.delete_gate.clear()  # a registry that has not answered the cancellation yet
    session.check_ahead(settings)
    session.check_push_ahead(settings)
    api.login(settings, session=session)
    start = time.monotonic()
    session.retrying("push access", session.push_access(settings))
    assert time.monotonic() - start < 1.5  # while the DELETE is still held: not waited for
    registry.delete_gate.set()
    deadline = time.monotonic() + 5
    while "DELETE" not in " ".join(registry.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The credential check (challenge, answer) and, alongside it on a connection of its own,
    # the probe: it answers its upload request's own challenge (two POSTs), or — when the
    # credential check has answered before its fork was made, as on a loaded machine — sends
    # the credentials at once (one POST). The upload it opened was cancelled.
    posts = [r for r in registry.requests if r.startswith("POST ")]
    assert set(posts) == {"POST /v2/alice/app/blobs/uploads/"} and len(posts) in (1, 2)
    assert sorted(r for r in registry.requests if not r.startswith("POST ")) == [
        "/v2/",
        "/v2/",
        "DELETE /v2/alice/app/blobs/uploads/u1?_state=s",
    ]
    assert len(registry.peers) == 2


def test_a_refused_push_access_head_start_fails_the_check(registry):
    settings = _settings(registry)
    session = _session(settings)
    session.check_ahead(settings)
    api.login(settings, session=session)  # the login is taken; then the token loses push
    registry.refuse_uploads = True
    session.check_push_ahead(settings)
    with pytest.raises(AuthError, match="may not push"):
        session.retrying("push access", session.push_access(settings))


def test_a_manifest_missing_by_digest_is_named_by_its_digest(registry):
    _, _, client = _logged_in(registry)
    digest = "sha256:" + "0" * 64
    with pytest.raises(RegistryError) as caught:
        client.raw_manifest(digest)
    assert str(caught.value).startswith(f"{client.repository}@{digest} is not in the registry")


def test_an_upload_the_registry_places_on_another_host_is_not_cancelled_there(registry):
    """The push-access probe's upload: its cancellation goes with our credentials, so only to
    the registry itself; an upload elsewhere is left to expire."""
    elsewhere = Registry()  # a second server that would see the DELETE and its credentials
    thread = threading.Thread(target=elsewhere.serve_forever, daemon=True)
    thread.start()
    try:
        port = elsewhere.server_address[1]
        registry.upload_location = f"http://127.0.0.1:{port}/v2/alice/app/blobs/uploads/u1"
        _, session, client = _logged_in(registry)
        session.retrying("push access", client.check_push_access)  # allowed: no error
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    assert elsewhere.requests == [] and "DELETE" not in " ".join(registry.requests)


def test_hooks_never_get_a_token_from_dockers_store(tmp_path):
    """A token `docker login` left (keychain, credential helper) is not put in a hook's
    environment; a HUB_TOKEN setting is, as the README says (printed as <hidden>)."""
    import dataclasses

    from hubtasks.pipeline.session import Session
    from hubtasks.settings.resolve import resolve_settings

    base = resolve_settings(
        flags={},
        environ={"HUB_REPOSITORY": "alice/app", "HUB_USERNAME": "alice"},
        dotenv={},
        config={},
        cwd=tmp_path,
    )
    store = dataclasses.replace(
        base, token="keychain-pw", sources={**base.sources, "token": "credsStore in config.json"}
    )
    session = Session(context=object())
    session.warned = True
    session.adopt(store)
    assert session.hooks.token is None
    setting = dataclasses.replace(
        base, token="hub-pw", sources={**base.sources, "token": "HUB_TOKEN in .env"}
    )
    session.adopt(setting)
    assert session.hooks.token == "hub-pw"
