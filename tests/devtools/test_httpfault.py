"""devtools.httpfault against a tiny echo server on 127.0.0.1 (no Docker needed): forwarding
(chunked bodies, the client's Host), which requests a rule takes, and each kind of fault."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devtools.httpfault import HttpFaultProxy, Rule


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "sha256": hashlib.sha256(body).hexdigest(),
                "chunked": "Transfer-Encoding" in self.headers,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Content-Digest", "sha256:upstream")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


@pytest.fixture
def proxy():
    echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, args=(0.05,), daemon=True).start()
    with HttpFaultProxy(echo.server_address[1]) as running:
        yield running
    echo.shutdown()
    echo.server_close()


def _connection(proxy, timeout=5):
    host, port = proxy.address.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def test_forwards_chunked_bodies_and_keeps_the_clients_host(proxy):
    conn = _connection(proxy)
    data = b"x" * 100_000
    conn.request(
        "PATCH",
        "/v2/a/blobs/uploads/1?_state=s",
        body=iter([data[:7], data[7:]]),
        headers={"Host": "registry.example:5000"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    seen = json.loads(response.read())
    assert response.status == 200
    assert seen["sha256"] == hashlib.sha256(data).hexdigest() and not seen["chunked"]
    assert (
        seen["host"] == "registry.example:5000" and seen["path"] == "/v2/a/blobs/uploads/1?_state=s"
    )
    conn.request("HEAD", "/v2/")  # the same kept-alive connection
    head = conn.getresponse()
    assert head.status == 200 and head.read() == b"" and int(head.getheader("Content-Length")) > 0
    assert proxy.count() == 2 and proxy.count("PATCH", "/uploads/") == 1


def test_a_rule_takes_the_requests_after_skip_times_times(proxy):
    rule = proxy.add(Rule(method="GET", path="/manifests/", status=503, skip=1, times=2))
    statuses = []
    for _ in range(5):
        conn = _connection(proxy)
        conn.request("GET", "/v2/x/manifests/v1")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    assert statuses == [200, 503, 503, 200, 200]
    assert (rule.matched, rule.fired) == (5, 2)
    assert [s.fault for s in proxy.seen].count("status 503") == 2


def test_an_answered_status_is_a_registry_error_document(proxy):
    proxy.add(Rule(status=429, headers={"Retry-After": "4"}, agent="^hubtasks/"))
    conn = _connection(proxy)
    conn.request("GET", "/v2/", headers={"User-Agent": "curl/8"})
    assert conn.getresponse().read() and proxy.rules[0].fired == 0  # another agent: forwarded
    conn.request("GET", "/v2/", headers={"User-Agent": "hubtasks/1.0"})
    response = conn.getresponse()
    assert response.status == 429 and response.getheader("Retry-After") == "4"
    assert json.loads(response.read())["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_headers_are_rewritten_on_a_forwarded_answer(proxy):
    proxy.add(Rule(headers={"Docker-Content-Digest": "sha256:wrong"}))
    conn = _connection(proxy)
    conn.request("GET", "/v2/x/manifests/v1")
    response = conn.getresponse()
    assert response.getheader("Docker-Content-Digest") == "sha256:wrong"
    assert json.loads(response.read())["path"] == "/v2/x/manifests/v1"


def test_truncate_cuts_the_body_under_the_full_length(proxy):
    proxy.add(Rule(truncate=10))
    conn = _connection(proxy)
    conn.request("GET", "/v2/x/manifests/v1")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert len(caught.value.partial) == 10


def test_drop_closes_without_an_answer(proxy):
    proxy.add(Rule(drop=True))
    conn = _connection(proxy)
    conn.request("GET", "/v2/")
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    assert proxy.seen[0].status is None and proxy.seen[0].fault == "drop"


def test_a_stall_holds_the_request_and_counts_a_client_that_gives_up(proxy):
    proxy.add(Rule(stall=30))
    conn = _connection(proxy, timeout=0.5)
    conn.request("GET", "/v2/")
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        conn.getresponse()
    assert time.monotonic() - started < 2
    conn.close()
    deadline = time.monotonic() + 3
    while not proxy.hangups and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.hangups == 1 and proxy.count() == 1


def test_a_delay_forwards_the_request_late(proxy):
    rule = proxy.add(Rule(method="DELETE", delay=0.5))
    conn = _connection(proxy)
    started = time.monotonic()
    conn.request("DELETE", "/v2/x/manifests/sha256:1")
    response = conn.getresponse()
    assert json.loads(response.read())["method"] == "DELETE"
    assert time.monotonic() - started >= 0.5
    assert rule.fired == 1 and proxy.seen[0].fault == "delay 0.5s"


def test_only_loopback_targets():
    with pytest.raises(ValueError, match="loopback"):
        HttpFaultProxy(80, target_host="192.0.2.1")
