"""The engine's error translation: a daemon's error message read once into fields, and
`Engine.push` against a small fake Docker daemon on 127.0.0.1 (error lines in the stream, an
HTTP error, a stream that stalls).

The fake answers what docker-py asks of a daemon (Engine API, docs.docker.com/engine/api/v1.41):
`GET /version`, and `POST /v1.41/images/{name}/push` with a chunked stream of JSON lines; a
failed push is an `{"errorDetail": {"message": …}, "error": …}` line inside a 200 stream, as the
real daemon sends it (the messages below are ones dockerd 20.10 printed against the test
registry behind `devtools.httpfault`).
"""

from __future__ import annotations

import json
import select
import time
from http.server import BaseHTTPRequestHandler

import pytest

from hubtasks.daemon.engine import Engine
from hubtasks.daemon.messages import read_daemon_message
from hubtasks.errors import AuthError, PushError, RegistryError
from hubtasks.references import Repository

from .httpfakes import serving

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("message", "status", "transient"),
    [
        ("unauthorized: authentication required", 401, False),
        ("denied: requested access to the resource is denied", 403, False),
        ("toomanyrequests: httpfault: injected 429", 429, True),
        ("received unexpected HTTP status: 503 Service Unavailable", 503, True),
        ("received unexpected HTTP status: 502 Bad Gateway", 502, True),
        ("manifest unknown: manifest unknown", 404, False),
        ("name unknown: repository name not known to registry", 404, False),
        ("unsupported: The operation is unsupported.", 405, False),
        ("unknown: unknown error", 500, True),
        (
            'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
            None,
            True,
        ),
        ("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer", None, True),
        ("Patch http://127.0.0.1:5000/v2/x/blobs/uploads/1: unexpected EOF", None, True),
        ("net/http: TLS handshake timeout", None, True),
        ("invalid reference format", None, False),
        ("tag does not exist: 127.0.0.1:5000/x:v1", None, False),
    ],
)
def test_a_daemon_message_is_read_into_fields(message, status, transient):
    said = read_daemon_message(message)
    assert (said.status, said.transient) == (status, transient)


class FakeDaemon(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"ApiVersion": "1.41", "Version": "20.10.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, line: dict) -> None:
        data = json.dumps(line).encode() + b"\r\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self):
        server = self.server
        server.pushes.append(self.path)
        script = server.script
        if script == "http-500":
            body = json.dumps({"message": "denied: requested access to the resource is denied"})
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
            return
        if script == "silent":  # not even the response head
            self._hold()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk({"status": "The push refers to repository [127.0.0.1:5000/alice/app]"})
        if script == "stall":
            self._hold()
            return
        if script == "refusing":  # what dockerd says while the registry answers 500 to uploads
            self._refusing()
            return
        if script == "ok":
            self._chunk({"status": "v1: digest: ... size: 528"})
            self._chunk({"progressDetail": {}, "aux": {"Tag": "v1", "Digest": DIGEST, "Size": 1}})
        else:
            self._chunk({"errorDetail": {"message": script}, "error": script})
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _refusing(self) -> None:
        """A layer's upload retried for ever: "Retrying in N seconds" every 0.2 s, as long as
        the client listens."""
        started, second = time.monotonic(), 5
        try:
            while time.monotonic() - started < 30:
                self._chunk({"status": f"Retrying in {second} seconds", "id": "5a1b2c3d4e5f"})
                second = second - 1 if second > 1 else 10
                time.sleep(0.2)
        except OSError:
            self.server.hung_up.append(time.monotonic())
        self.close_connection = True

    def _hold(self) -> None:
        """Send nothing more; note when the client hangs up."""
        started = time.monotonic()
        while time.monotonic() - started < 30:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1):
                self.server.hung_up.append(time.monotonic())
                break
        self.close_connection = True


@pytest.fixture
def daemon():
    with serving(FakeDaemon) as httpd:
        httpd.script, httpd.pushes, httpd.hung_up = "ok", [], []
        yield httpd


REPOSITORY = Repository(registry="127.0.0.1:5000", path="alice/app")


def _push(daemon, **kwargs):
    engine = Engine({"DOCKER_HOST": f"tcp://127.0.0.1:{daemon.server_address[1]}"})
    lines = []
    digest = engine.push(
        REPOSITORY, "v1", {"username": "alice"}, on_progress=lines.append, **kwargs
    )
    return digest, lines


def test_a_push_returns_the_digest_the_daemon_reports(daemon):
    digest, lines = _push(daemon, stall_timeout=5)
    assert digest == DIGEST and len(lines) == 3
    assert daemon.pushes == ["/v1.41/images/127.0.0.1:5000/alice/app/push?tag=v1"]


@pytest.mark.parametrize(
    ("script", "kind", "status", "transient"),
    [
        ("denied: requested access to the resource is denied", AuthError, 403, False),
        ("unauthorized: authentication required", AuthError, 401, False),
        ("received unexpected HTTP status: 503 Service Unavailable", PushError, 503, True),
        ("manifest invalid: manifest invalid", PushError, None, False),
        ("http-500", AuthError, 403, False),
    ],
)
def test_push_failures_carry_their_fields(daemon, script, kind, status, transient):
    daemon.script = script
    with pytest.raises(kind) as caught:
        _push(daemon)
    error = caught.value
    assert type(error) is kind
    assert (error.status, error.transient, error.stage) == (status, transient, "push")
    assert "127.0.0.1:5000/alice/app:v1" in str(error)


def test_toomanyrequests_waits_what_our_own_request_read(daemon):
    daemon.script = "toomanyrequests: too many requests"
    asked = []
    with pytest.raises(PushError) as caught:
        _push(daemon, rate_limit_wait=lambda: asked.append(1) or 7.0)
    error = caught.value
    assert (error.status, error.transient, error.retry_after) == (429, True, 7.0)
    assert asked == [1]

    def unreachable():
        raise RegistryError("cannot reach registry", transient=True)

    with pytest.raises(PushError) as caught:
        _push(daemon, rate_limit_wait=unreachable)
    assert (caught.value.status, caught.value.retry_after) == (429, None)


@pytest.mark.parametrize("script", ["stall", "silent"])
def test_a_stalled_push_is_aborted_and_its_connection_closed(daemon, script):
    daemon.script = script
    started = time.monotonic()
    with pytest.raises(PushError) as caught:
        _push(daemon, stall_timeout=1.5)
    took = time.monotonic() - started
    error = caught.value
    assert 1.4 <= took < 4, took
    assert (error.stage, error.transient) == ("push", False)
    assert "stalled" in str(error) and "no progress for 2s" in str(error)
    deadline = time.monotonic() + 3
    while not daemon.hung_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.hung_up and daemon.hung_up[0] - started < took + 1  # the daemon saw us go


def test_a_push_the_registry_keeps_refusing_ends_with_the_budget(daemon):
    """The daemon retries a refused layer upload itself and keeps talking ("Retrying in 5
    seconds"): the budget bounds the whole push, not only its silences."""
    daemon.script = "refusing"
    started = time.monotonic()
    with pytest.raises(PushError) as caught:
        _push(daemon, stall_timeout=1.5)
    took = time.monotonic() - started
    assert 1.4 <= took < 3, took
    error = caught.value
    assert (error.stage, error.transient) == ("push", False)
    assert "the registry refused every upload" in str(error), str(error)
    deadline = time.monotonic() + 3
    while not daemon.hung_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.hung_up  # the connection was closed: the daemon cancels its push


def test_without_a_stall_timeout_the_client_timeout_still_applies(daemon):
    engine = Engine({"DOCKER_HOST": f"tcp://127.0.0.1:{daemon.server_address[1]}"})
    assert engine.client.api.timeout == 600
    daemon.script = "ok"
    engine.push(REPOSITORY, "v1", {}, on_progress=lambda line: None, stall_timeout=3)
    assert engine.client.api.timeout == 600  # restored after the push


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("unix:///tmp/hubtasks-no-such-daemon.sock", "no daemon is listening there"),
        ("tcp://127.0.0.1:9", "connection refused"),
    ],
)
def test_an_unreachable_daemon_is_named_with_the_reason_its_errors_carry(host, reason):
    from hubtasks.errors import DaemonError

    with pytest.raises(DaemonError) as caught:
        Engine({"DOCKER_HOST": host})
    assert str(caught.value) == (
        f"cannot connect to the Docker daemon at {host}: {reason}; "
        "start Docker or point DOCKER_HOST at a running daemon"
    )


def test_the_user_of_a_saved_entry_never_is_a_secret():
    """logout names the other account whose entry it keeps: an `auth` field that is not
    user:secret (a bare token) must not be printed as a user name."""
    import base64

    from hubtasks.daemon.credentials import entry_user as _entry_user

    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    assert _entry_user({"auth": encode("admin:pw")}) == "admin"
    assert _entry_user({"auth": encode("dckr_pat_secret")}) is None
    assert _entry_user({"auth": encode(":pw")}) is None
    assert _entry_user({"username": "bob", "auth": encode("x:y")}) == "bob"
    assert _entry_user({"auth": "not base64!"}) is None
