"""devtools.faultproxy against a tiny HTTP server on 127.0.0.1 (no Docker needed)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from devtools.faultproxy import (
    CutUpload,
    FaultProxy,
    HttpStatus,
    Passthrough,
    RefuseConnections,
    Stall,
    _RequestCounter,
)
from tests.helpers.servers import EchoServer


@pytest.fixture(scope="module")
def server():
    srv = EchoServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def proxy(server):
    server.hits.clear()
    with FaultProxy("127.0.0.1", server.server_address[1]) as running:
        yield running
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("faultproxy-")]
    assert leftover == []


def get(proxy: FaultProxy, path: str = "/", timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://{proxy.address}{path}", timeout=timeout) as resp:
        return resp.status, resp.read()


def post(proxy: FaultProxy, data: bytes, path: str = "/up") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{proxy.address}{path}", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read()


def connection_error(call) -> OSError:
    """`call` must fail at the connection level (not with an HTTP status)."""
    with pytest.raises(OSError) as info:
        call()
    assert not isinstance(info.value, urllib.error.HTTPError), info.value
    return info.value


def test_passthrough_forwards_requests_and_counts_them(proxy, server):
    assert proxy.address == f"127.0.0.1:{proxy.port}"
    assert get(proxy, "/a") == (200, b"hello")
    assert post(proxy, b"x" * 1000) == (200, b"1000")
    assert server.hits == [("GET", "/a"), ("POST", "/up")]
    assert proxy.connections == 2
    assert proxy.requests_seen == 2
    assert proxy.faults == 0


def test_keep_alive_requests_are_counted_on_one_connection(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        for i in range(3):
            conn.request("POST", f"/k{i}", body=b"y" * (10_000 * i))
            assert conn.getresponse().read() == str(10_000 * i).encode()
    finally:
        conn.close()
    assert proxy.connections == 1
    assert proxy.requests_seen == 3


def test_refused_connections_fail_then_pass(proxy, server):
    proxy.scenario = RefuseConnections(2)
    for _ in range(2):
        error = connection_error(lambda: get(proxy))
        assert "reset" in str(error).lower() or isinstance(error, ConnectionError), error
    assert get(proxy) == (200, b"hello")
    assert proxy.scenario.fired == 2
    assert server.hits == [("GET", "/")]  # the refused ones never reached the server


@pytest.mark.parametrize("status", [503, 429])
def test_http_status_answers_without_the_target_then_passes(proxy, server, status):
    proxy.scenario = HttpStatus(status, n=1, retry_after=7)
    with pytest.raises(urllib.error.HTTPError) as info:
        get(proxy, "/v2/")
    assert info.value.code == status
    assert info.value.headers["Retry-After"] == "7"
    assert info.value.headers["Connection"] == "close"
    errors = json.loads(info.value.read())["errors"]
    assert errors[0]["code"] == {503: "UNAVAILABLE", 429: "TOOMANYREQUESTS"}[status]
    info.value.close()
    assert server.hits == []
    assert get(proxy, "/v2/") == (200, b"hello")
    assert server.hits == [("GET", "/v2/")]
    assert proxy.requests_seen == 2
    assert proxy.faults == 1


def test_http_status_only_hits_the_first_request_of_a_connection(proxy, server):
    """Documented keep-alive behaviour: the answered connection is closed, so the client
    reconnects; requests on an already forwarded connection are never faulted."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("GET", "/one")
        assert conn.getresponse().read() == b"hello"
        proxy.scenario = HttpStatus(503, n=5)  # new connections only
        conn.request("GET", "/two")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()
    assert server.hits == [("GET", "/one"), ("GET", "/two")]
    with pytest.raises(urllib.error.HTTPError) as info:
        get(proxy)
    assert info.value.code == 503
    assert "Retry-After" not in info.value.headers
    info.value.close()


def test_http_status_drains_a_request_body(proxy, server):
    """The proxy reads the body it refuses, so the client gets the status, not a reset."""
    proxy.scenario = HttpStatus(503, n=1)
    with pytest.raises(urllib.error.HTTPError) as info:
        post(proxy, b"z" * 200_000)
    assert info.value.code == 503
    info.value.close()
    assert server.hits == []


def test_cut_upload_resets_a_large_post_once(proxy, server):
    proxy.scenario = CutUpload(after_bytes=100_000)
    assert post(proxy, b"s" * 1000) == (200, b"1000")  # small: below the cut, untouched
    connection_error(lambda: post(proxy, b"b" * 2_000_000))
    assert proxy.scenario.fired == 1
    assert post(proxy, b"b" * 2_000_000) == (200, b"2000000")  # times=1: the next one passes
    assert server.hits == [("POST", "/up"), ("POST", "/up")]


def test_stall_times_out_the_client_and_stop_is_prompt(server):
    proxy = FaultProxy("127.0.0.1", server.server_address[1], Stall(seconds=30, n=1)).start()
    try:
        start = time.monotonic()
        error = connection_error(lambda: get(proxy, timeout=0.5))
        assert isinstance(error, TimeoutError) or isinstance(
            getattr(error, "reason", None), TimeoutError
        ), error
        assert time.monotonic() - start < 2
        assert get(proxy) == (200, b"hello")  # n=1: the next connection passes
        assert proxy.connections == 2
    finally:
        start = time.monotonic()
        proxy.stop()  # the stalled connection is still waiting; stop must not wait 30 s
        assert time.monotonic() - start < 1


def test_scenario_can_be_swapped_while_running(proxy):
    assert get(proxy)[0] == 200
    proxy.scenario = RefuseConnections(1)
    connection_error(lambda: get(proxy))
    proxy.scenario = Passthrough()
    assert get(proxy)[0] == 200
    assert proxy.faults == 1


_CLIENT_HELLO = b"\x16\x03\x01\x00\x05hello"  # starts like a TLS handshake record


def _raw_exchange(proxy: FaultProxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def test_tls_probes_pass_through_and_do_not_use_up_the_fault(proxy):
    """Docker probes an insecure registry with HTTPS first; that must not eat the fault."""
    proxy.scenario = RefuseConnections(1)
    answer = _raw_exchange(proxy, _CLIENT_HELLO)
    assert b"Error code: 400" in answer  # http.server's reply to a non-HTTP request line
    assert proxy.tls_connections == 1
    assert proxy.scenario.fired == 0
    assert proxy.requests_seen == 0  # not HTTP: the request counter gives up on it
    connection_error(lambda: get(proxy))  # the fault is still there for the real request
    assert proxy.scenario.fired == 1


def test_fault_tls_applies_faults_to_tls_connections_too(server):
    with FaultProxy(
        "127.0.0.1", server.server_address[1], RefuseConnections(1), fault_tls=True
    ) as proxy:
        connection_error(lambda: _raw_exchange(proxy, _CLIENT_HELLO))
        assert proxy.tls_connections == 1 and proxy.scenario.fired == 1


def test_target_down_resets_the_client():
    from devtools.stack import free_port

    with FaultProxy("127.0.0.1", free_port()) as proxy:
        connection_error(lambda: get(proxy))


def test_only_loopback_targets_are_allowed():
    with pytest.raises(ValueError):
        FaultProxy("10.0.0.1", 80)
    with pytest.raises(RuntimeError):
        _ = FaultProxy("localhost", 80).address  # not started


def test_request_counter_follows_bodies_in_odd_pieces():
    stream = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"PUT /b HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello\r\n\r\n\r\n"
        b"PATCH /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nGET /\r\nA\r\n0123456789\r\n0\r\nTrailer: y\r\n\r\n"
        b"HEAD /d HTTP/1.1\r\n\r\n"
    )
    for size in (1, 3, 7, len(stream)):
        counter = _RequestCounter()
        seen = sum(counter.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        assert seen == 4, size
        assert counter.state == "head" and not counter.buffer


def test_request_counter_gives_up_on_non_http():
    counter = _RequestCounter()
    assert counter.feed(b"\x16\x03\x01 GET / HTTP/1.1\r\n\r\n") == 0
    assert counter.state == "lost"
