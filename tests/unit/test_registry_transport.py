"""The registry client's transport: digests computed from bytes and checked against what the
registry claims, blobs and image configs, redirects, per-request timeouts inside the budget, no
silent resend, a 401 to sent credentials is final, 404 right after a push, rate-limit headers,
and the status a failed manifest copy carries.

A small Basic-auth registry on 127.0.0.1 (manifests and blobs in memory, as the Distribution
API serves them) sits behind `devtools.httpfault`, which injects the faults; no Docker needed.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from hubtasks.errors import AuthError, DigestMismatchError, RegistryError, VerifyError
from hubtasks.references import Repository
from hubtasks.registry.client import RegistryClient, copy_unsupported, rate_limit_wait
from hubtasks.registry.manifests import sha256_digest
from hubtasks.retry import RetryPolicy

from .httpfakes import QuietHandler, serving

USER, SECRET = "alice", "s3cret-value"
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = json.dumps({"config": {"Labels": {"org.opencontainers.image.revision": "abc"}}}).encode()
CONFIG_DIGEST = sha256_digest(CONFIG)
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": MEDIA, "config": {"digest": CONFIG_DIGEST}, "layers": []}
).encode()
DIGEST = sha256_digest(MANIFEST)
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"digest": DIGEST}],
    }
).encode()


class MemoryRegistry(QuietHandler):
    """Manifests by tag and digest, blobs by digest, Basic auth; `close_idle` makes it close
    each connection after answering (without saying so), as a registry's idle timeout does."""

    def _send(self, status, body=b"", headers=()):
        if self.server.close_idle:
            self.close_connection = True  # decided before the client can read the answer
        super()._send(status, body, headers)

    def _authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") == expected:
            return True
        self._send(401, headers=[("WWW-Authenticate", 'Basic realm="test"')])
        return False

    def do_GET(self):
        self.server.requests.append(f"{self.command} {self.path}")
        if not self._authorized():
            return None
        store = self.server
        if self.path == "/v2/":
            return self._send(200)
        if "/manifests/" in self.path:
            found = store.manifests.get(self.path.rsplit("/", 1)[1])
            if found is None:
                return self._send(404)
            body, media = found
            return self._send(
                200, body, [("Content-Type", media), ("Docker-Content-Digest", sha256_digest(body))]
            )
        if "/blobs/" in self.path:
            body = store.blobs.get(self.path.rsplit("/", 1)[1])
            if body is None:
                return self._send(404)
            if store.blob_host:
                return self._send(307, headers=[("Location", f"{store.blob_host}/cdn/blob")])
            return self._send(200, body)
        if "/tags/list" in self.path:
            return self._send(200, json.dumps({"tags": sorted(store.manifests)}).encode())
        return self._send(404)

    do_HEAD = do_GET

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self._authorized():
            return None
        tag = self.path.rsplit("/", 1)[1]
        self.server.manifests[tag] = (body, self.headers.get("Content-Type", MEDIA))
        return self._send(201, headers=[("Docker-Content-Digest", sha256_digest(body))])


class Cdn(BaseHTTPRequestHandler):
    """Another host a blob redirect points at: records the Authorization it was sent."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.authorizations.append(self.headers.get("Authorization"))
        body = CONFIG
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(handler):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


@pytest.fixture
def upstream():
    httpd = _serve(MemoryRegistry)
    httpd.manifests = {"v1": (MANIFEST, MEDIA), DIGEST: (MANIFEST, MEDIA), "multi": (INDEX, "")}
    httpd.blobs = {CONFIG_DIGEST: CONFIG}
    httpd.blob_host = None
    httpd.close_idle = False
    httpd.requests = []
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def proxy(upstream):
    with HttpFaultProxy(upstream.server_address[1]) as running:
        yield running


def _client(proxy, *, deadline=None, timeout=5, secret=SECRET) -> RegistryClient:
    return _client_at(proxy.address, deadline=deadline, timeout=timeout, secret=secret)


def _client_at(address, *, deadline=None, timeout=5, secret=SECRET) -> RegistryClient:
    """A client of alice/app at `address` (host:port), whatever answers there."""
    repository = Repository(registry="reg.test", path="alice/app")
    return RegistryClient(
        repository,
        USER,
        secret,
        base_url=f"http://{address}",
        timeout=timeout,
        deadline=deadline,
    )


def _logged_in(proxy, **kwargs) -> RegistryClient:
    """A client that has sent its credentials once already (Basic from then on), so a rule
    meets its requests, not the unauthenticated first contact."""
    client = _client(proxy, **kwargs)
    client.check_credentials()
    return client


# --- digests -----------------------------------------------------------------------------------


def test_digests_are_the_sha256_of_the_bytes_read_and_digest_reads_them(proxy):
    client = _client(proxy)
    assert client.image_record("v1").digest == DIGEST
    assert client.image_record("v1").config_digest == CONFIG_DIGEST
    assert client.digest("v1") == DIGEST
    assert client.digest("missing") is None
    assert proxy.count(method="HEAD") == 0  # a HEAD has no bytes to hash


@pytest.mark.parametrize(
    "read",
    [
        lambda c: c.image_record("v1"),
        lambda c: c.digest("v1"),
        lambda c: c.raw_manifest("v1"),
    ],
    ids=["image_record", "digest", "raw_manifest"],
)
def test_a_wrong_docker_content_digest_is_an_error_not_a_result(proxy, read):
    wrong = "sha256:" + "0" * 64
    proxy.add(Rule(method="GET", path="/manifests/v1", headers={"Docker-Content-Digest": wrong}))
    with pytest.raises(DigestMismatchError) as caught:
        read(_logged_in(proxy))
    assert wrong in str(caught.value) and DIGEST in str(caught.value)
    assert not caught.value.transient
    assert isinstance(caught.value, VerifyError)


def test_bytes_that_do_not_hash_to_the_digest_asked_for_are_refused(proxy, upstream):
    other = b'{"schemaVersion": 2, "tampered": true}'
    upstream.manifests[DIGEST] = (other, MEDIA)
    with pytest.raises(DigestMismatchError, match=f"@{DIGEST}"):
        _client(proxy).raw_manifest(DIGEST)


def test_a_copy_returns_the_sha256_of_the_bytes_sent_and_checks_the_answer(proxy, upstream):
    client = _logged_in(proxy)
    assert client.copy_manifest(DIGEST, "v2") == DIGEST
    assert upstream.manifests["v2"][0] == MANIFEST
    proxy.add(
        Rule(
            method="PUT",
            path="/manifests/v3",
            headers={"Docker-Content-Digest": "sha256:" + "1" * 64},
        )
    )
    with pytest.raises(DigestMismatchError):
        client.copy_manifest(DIGEST, "v3")


@pytest.mark.parametrize(
    ("status", "kind", "falls_back"),
    [
        (403, AuthError, False),
        (401, AuthError, False),
        (405, RegistryError, True),
        (415, RegistryError, True),
        (400, RegistryError, False),
        (503, RegistryError, False),
    ],
)
def test_a_failed_copy_carries_its_status(proxy, status, kind, falls_back):
    client = _logged_in(proxy)
    proxy.add(Rule(method="PUT", path="/manifests/v2", status=status))
    with pytest.raises(kind) as caught:
        client.copy_manifest(DIGEST, "v2")
    error = caught.value
    assert copy_unsupported(error) is falls_back
    assert error.status == (403 if status in (401, 403) else status)
    assert error.transient is (status == 503)
    if status in (401, 403):
        assert "may not push to reg.test/alice/app" in str(error)
    assert proxy.count(method="PUT") == 1  # a refused write is not sent again


def test_blobs_and_the_image_record(proxy, upstream):
    client = _client(proxy)
    assert client.blob(CONFIG_DIGEST) == CONFIG
    record = client.image_record("v1")
    assert record.digest == DIGEST
    assert record.labels == {"org.opencontainers.image.revision": "abc"}
    multi = client.image_record("multi")
    assert multi.digest == sha256_digest(INDEX) and multi.config_digest is None
    upstream.blobs[CONFIG_DIGEST] = b"not the config"
    with pytest.raises(DigestMismatchError):
        client.blob(CONFIG_DIGEST)


def test_a_redirected_blob_read_sends_no_credentials_to_the_other_host(proxy, upstream):
    cdn = _serve(Cdn)
    cdn.authorizations = []
    upstream.blob_host = f"http://localhost:{cdn.server_address[1]}"
    try:
        assert _client(proxy).blob(CONFIG_DIGEST) == CONFIG
    finally:
        cdn.shutdown()
        cdn.server_close()
    assert cdn.authorizations == [None]


# --- 404 right after a push --------------------------------------------------------------------


def test_a_404_after_our_push_is_transient_and_names_a_digest_with_an_at(proxy):
    client = _logged_in(proxy)
    proxy.add(Rule(method="GET", path="/manifests/", status=404, times=None))
    assert client.digest("v1") is None  # not after a push: simply missing
    for read, name in (
        (lambda: client.digest("v1", after_push=True), "reg.test/alice/app:v1"),
        (lambda: client.raw_manifest(DIGEST, after_push=True), f"reg.test/alice/app@{DIGEST}"),
    ):
        with pytest.raises(VerifyError) as caught:
            read()
        assert caught.value.transient and caught.value.status == 404
        assert str(caught.value).startswith(f"{name} is not in the registry")
    with pytest.raises(RegistryError, match=f"reg.test/alice/app@{DIGEST} is not in"):
        client.raw_manifest(DIGEST)


def test_the_retry_policy_rides_out_read_after_write_lag(proxy):
    client = _logged_in(proxy)
    proxy.add(Rule(method="GET", path="/manifests/v1", status=404, times=2))
    lines: list[str] = []
    policy = RetryPolicy(attempts=5, base_delay=0.01)
    found = policy.call(
        lambda: client.digest("v1", after_push=True), what="verify", on_retry=lines.append
    )
    assert found == DIGEST and len(lines) == 2


# --- timeouts, resends, credentials ------------------------------------------------------------


def test_a_stalled_request_waits_only_what_is_left_of_the_budget(proxy):
    proxy.add(Rule(path="/tags/list", stall=math.inf))
    client = _logged_in(proxy, deadline=lambda: 2.0, timeout=30)
    started = time.monotonic()
    with pytest.raises(RegistryError, match="no answer within 2s") as caught:
        client.tags()
    assert 1.8 <= time.monotonic() - started < 4
    assert caught.value.transient


def test_a_failed_request_is_not_resent_and_every_attempt_is_one_request(proxy):
    client = _logged_in(proxy)
    proxy.add(Rule(path="/tags/list", drop=True, times=None))
    lines: list[str] = []
    policy = RetryPolicy(attempts=5, base_delay=0.01)
    with pytest.raises(RegistryError, match="gave up after 5 attempts") as caught:
        policy.call(client.tags, what="listing", on_retry=lines.append)
    assert "closed without an answer" in str(caught.value)
    assert proxy.count(path="/tags/list") == 5
    assert len(lines) == 4


def test_a_connection_the_registry_closed_while_idle_is_replaced_without_a_resend(proxy, upstream):
    # Straight to the registry: it closes each connection after answering, without a
    # `Connection: close`.
    client = RegistryClient(
        Repository(registry="reg.test", path="alice/app"),
        USER,
        SECRET,
        base_url=f"http://127.0.0.1:{upstream.server_address[1]}",
    )
    client.check_credentials()
    upstream.close_idle = True
    first = client.tags()
    time.sleep(0.2)  # the registry's FIN arrives while the connection is idle
    assert client.tags() == first == sorted(upstream.manifests)
    assert upstream.requests.count(upstream.requests[-1]) == 2  # each list asked once


def test_a_401_to_credentials_already_sent_is_final(proxy):
    client = _logged_in(proxy)  # Basic from now on
    proxy.add(Rule(path="/tags/list", status=401, times=None))
    with pytest.raises(AuthError, match="rejected the credentials") as caught:
        client.tags()
    assert caught.value.status == 401 and not caught.value.transient
    assert proxy.count(path="/tags/list") == 1
    with pytest.raises(AuthError):
        _client(proxy, secret="wrong").check_credentials()
    wrong = [s for s in proxy.seen if s.path == "/v2/"][-2:]
    assert [s.status for s in wrong] == [401, 401]  # one without, one with the credentials


def test_the_deadline_also_bounds_the_connection_a_fork_opens(proxy):
    seen = []
    client = _client(proxy, deadline=lambda: seen.append(1) or 3.0)
    client.fork().connect()
    assert seen  # the fork asked the same budget


# --- rate limits -------------------------------------------------------------------------------


def test_rate_limit_wait_reads_the_registry_headers(proxy):
    client = _logged_in(proxy)
    proxy.add(Rule(method="HEAD", path="/manifests/v1", status=429, headers={"Retry-After": "7"}))
    assert client.rate_limit_wait("v1") == 7
    proxy.add(
        Rule(
            method="HEAD",
            path="/manifests/v1",
            headers={"RateLimit-Remaining": "0;w=21600", "RateLimit-Reset": "30"},
        )
    )
    assert client.rate_limit_wait("v1") == 30
    assert client.rate_limit_wait("v1") is None  # a plain answer says nothing


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"Retry-After": "12"}, 12),
        (200, {"Retry-After": "3"}, 3),
        (429, {"RateLimit-Reset": "40"}, 40),
        (200, {"RateLimit-Remaining": "5;w=60", "RateLimit-Reset": "40"}, None),
        (429, {}, None),
    ],
)
def test_rate_limit_wait_rules(status, headers, wait):
    assert rate_limit_wait(status, headers) == wait


def test_rate_limit_reset_as_a_unix_time():
    found = rate_limit_wait(429, {"X-RateLimit-Reset": str(int(time.time()) + 20)})
    assert 18 <= found <= 20


def test_a_429_carries_its_status_and_wait(proxy):
    proxy.add(Rule(path="/tags/list", status=429, headers={"Retry-After": "9"}))
    with pytest.raises(RegistryError) as caught:
        _logged_in(proxy).tags()
    assert (caught.value.status, caught.value.transient, caught.value.retry_after) == (429, True, 9)


def test_requests_name_hubtasks_as_their_agent(proxy):
    _client(proxy).check_credentials()
    assert proxy.count(agent="^hubtasks/") == 2


def test_a_truncated_answer_is_a_transient_failure_and_the_retry_reads_it_whole(proxy):
    client = _logged_in(proxy)
    cut = proxy.add(Rule(method="GET", path="/manifests/v1", truncate=20))
    lines: list[str] = []
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    assert policy.call(lambda: client.digest("v1"), what="read", on_retry=lines.append) == DIGEST
    assert cut.fired == 1 and len(lines) == 1 and "cut short" in lines[0]


def test_a_429_says_the_registry_is_limiting_and_for_how_long(proxy):
    proxy.add(Rule(path="/tags/list", status=429, headers={"Retry-After": "90"}))
    with pytest.raises(RegistryError) as caught:
        _logged_in(proxy).tags()
    assert caught.value.status == 429 and caught.value.transient
    assert caught.value.retry_after == 90
    assert "reg.test is limiting requests (HTTP 429 TOOMANYREQUESTS)" in str(caught.value)
    assert str(caught.value).endswith("it asks to wait 2 min")  # 90 s, rounded up


class Dribbler(QuietHandler):
    """A registry that sends the headers at once, then the body a byte at a time."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "200")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up: what the test wants


def test_an_answer_sent_a_byte_at_a_time_is_bounded_by_the_wait_as_a_whole():
    """The socket's timeout bounds each read: a registry dribbling one byte every 50 ms kept
    a request going for 10 s (147 s with HUB_TIMEOUT=5, found by a tester)."""
    with serving(Dribbler) as httpd:
        client = _client_at(f"127.0.0.1:{httpd.server_address[1]}", deadline=lambda: 1.0)
        started = time.monotonic()
        with pytest.raises(RegistryError, match="no answer within 1s") as caught:
            client.tags()
        assert time.monotonic() - started < 2.5
        assert caught.value.transient


class Tampered(QuietHandler):
    """A registry (or a path to it) that answers a tag with changed bytes and no
    Docker-Content-Digest; by digest it holds only the real manifest."""

    def do_GET(self):
        if self.path.endswith("/manifests/rc1"):
            self._send(200, MANIFEST + b" ", [("Content-Type", MEDIA)])  # no digest header
        elif self.path.endswith(f"/manifests/{DIGEST}"):
            self._send(200, MANIFEST, [("Content-Type", MEDIA), ("Docker-Content-Digest", DIGEST)])
        elif "/blobs/" in self.path:
            self._send(200, CONFIG)
        else:
            self._send(404)


def test_bytes_read_by_tag_without_a_digest_header_are_read_again_by_digest_before_use():
    """A promotion copied a changed manifest into the target and exited 0: the bytes read by
    tag were kept under their own hash and reused as if the registry held them."""
    with serving(Tampered) as httpd:
        client = _client_at(f"127.0.0.1:{httpd.server_address[1]}")
        record = client.image_record("rc1")
        assert record is not None and record.digest == sha256_digest(MANIFEST + b" ")
        with pytest.raises(RegistryError, match="is not in the registry"):
            client.raw_manifest(record.digest)  # read by digest: the registry has no such
        assert client.raw_manifest(DIGEST)[0] == MANIFEST


class Steady(QuietHandler):
    """A large answer on a slow link: 64 KiB every 0.4 s, five times (2 s in all)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(5 * 64 * 1024))
        self.end_headers()
        for _ in range(5):
            time.sleep(0.4)
            self.wfile.write(b"x" * 64 * 1024)
            self.wfile.flush()


def test_an_answer_that_keeps_coming_is_read_whole_past_the_wait():
    """The bound is on progress, not on size: a blob that takes longer than one request's
    wait but keeps arriving (a layer copied between registries) is not cut off."""
    with serving(Steady) as httpd:
        client = _client_at(f"127.0.0.1:{httpd.server_address[1]}", deadline=lambda: 1.0)
        body = b"x" * 5 * 64 * 1024
        assert client.blob(sha256_digest(body)) == body
