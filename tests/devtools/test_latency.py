"""devtools.latency against a tiny HTTP server on 127.0.0.1 (no Docker needed)."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from devtools.latency import LatencyProxy
from tests.helpers.servers import EchoServer

DELAY = 0.05


@pytest.fixture()
def server():
    srv = EchoServer()
    thread = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )  # shutdown() waits up to one poll interval
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _timed(conn: http.client.HTTPConnection, method: str, body: bytes | None = None):
    start = time.monotonic()
    conn.request(method, "/x", body=body)
    response = conn.getresponse()
    data = response.read()
    return time.monotonic() - start, data


def test_a_request_costs_a_round_trip_and_a_new_connection_one_more(server):
    with LatencyProxy("127.0.0.1", server.server_address[1], delay=DELAY) as proxy:
        conn = http.client.HTTPConnection(proxy.address, timeout=5)
        first, data = _timed(conn, "GET")
        again, data_again = _timed(conn, "GET")
        conn.close()
    assert data == data_again == b"hello"
    # Handshake (2 × delay) + request/response (2 × delay) on the new connection…
    assert 4 * DELAY <= first < 4 * DELAY + 0.15
    # …and just the round trip on the kept-open one.
    assert 2 * DELAY <= again < 2 * DELAY + 0.1
    assert proxy.connections == 1


def test_latency_does_not_throttle_an_upload(server):
    body = b"x" * (8 << 20)
    with LatencyProxy("127.0.0.1", server.server_address[1], delay=DELAY) as proxy:
        conn = http.client.HTTPConnection(proxy.address, timeout=10)
        took, data = _timed(conn, "POST", body)
        conn.close()
    assert data == str(len(body)).encode()
    # 8 MiB through in about the latency, not a delay per chunk (128 chunks × 50 ms = 6.4 s).
    assert took < 4 * DELAY + 1.0


def test_connections_are_closed_when_both_sides_are_done(server):
    with LatencyProxy("127.0.0.1", server.server_address[1], delay=0.01) as proxy:
        for _ in range(3):
            conn = http.client.HTTPConnection(proxy.address, timeout=5)
            _timed(conn, "GET")
            conn.close()
        deadline = time.monotonic() + 2
        while proxy._sockets and time.monotonic() < deadline:
            time.sleep(0.02)
        # The server keeps its side open (keep-alive) until the client's FIN reaches it.
        assert proxy._sockets == []


def test_only_loopback_targets():
    with pytest.raises(ValueError):
        LatencyProxy("10.0.0.1", 80, delay=0.01)
