"""A TCP proxy on 127.0.0.1 that adds network latency, for benchmarks (stdlib only).

The test registry answers in a few milliseconds over loopback; a real one is a round trip
away (Docker Hub from a laptop: tens of milliseconds). `LatencyProxy` forwards each
connection to a loopback target and holds every chunk of data for `delay` seconds in each
direction, so a request and its answer cost one round trip of `2 × delay`, and opening a
connection costs one more (the TCP handshake). Data keeps flowing while earlier chunks wait
(the delay is a pipe, not a throttle), so large uploads are not slowed beyond the latency.

    with LatencyProxy("127.0.0.1", registry_port, delay=0.025) as proxy:
        proxy.address          # "127.0.0.1:PORT": use it as the registry
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

_CHUNK = 64 * 1024


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, *, delay: float, port: int = 0) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"LatencyProxy only forwards to loopback, not {target_host}")
        self.target = (target_host, target_port)
        self.delay = delay
        self.port: int | None = None
        self._listen_port = port
        self.connections = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("LatencyProxy is not started")
        return f"127.0.0.1:{self.port}"

    def start(self) -> LatencyProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._listen_port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(client)
            self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        # The handshake a real connection would cost before its first byte could travel.
        if self._stopping.wait(2 * self.delay):
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        for sock in (client, upstream):
            # Nagle would hold a small write (an HTTP body after its head) for the peer's
            # delayed ACK: tens of milliseconds the real path would not add.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, upstream, self)
        for source, sink in ((client, upstream), (upstream, client)):
            held: queue.Queue[tuple[float, bytes]] = queue.Queue()
            self._spawn(self._read, source, held)
            self._spawn(self._write, sink, held, pair)

    def _read(self, source: socket.socket, held: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = b""
            held.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _write(
        self, sink: socket.socket, held: queue.Queue[tuple[float, bytes]], pair: _Pair
    ) -> None:
        try:
            while True:
                due, data = held.get()
                wait = due - time.monotonic()
                if wait > 0 and self._stopping.wait(wait):
                    return
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return
        finally:
            pair.one_done()


class _Pair:
    """The two sockets of one connection, closed once both directions have ended."""

    def __init__(self, a: socket.socket, b: socket.socket, proxy: LatencyProxy) -> None:
        self.sockets, self.proxy, self.left = (a, b), proxy, 2
        self.lock = threading.Lock()

    def one_done(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left:
                return
        with self.proxy._lock:
            for sock in self.sockets:
                if sock in self.proxy._sockets:
                    self.proxy._sockets.remove(sock)
        for sock in self.sockets:
            sock.close()
