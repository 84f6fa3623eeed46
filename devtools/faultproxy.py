"""A small fault-injecting TCP proxy for reliability tests (stdlib only).

The proxy listens on 127.0.0.1 (a free port) and forwards every connection to a target on the
loopback interface, usually the test registry. Its `scenario` decides what goes wrong and can be
swapped while it runs:

    with FaultProxy("127.0.0.1", stack.registry_server.port) as proxy:
        proxy.address                          # "127.0.0.1:PORT", use it as the registry
        proxy.scenario = HttpStatus(503, n=2, retry_after=1)
        ...                                    # the first two connections get a 503
        proxy.scenario = Passthrough()

Scenarios (each counts how often it `fired`; set a fresh object to start counting again):

- `Passthrough()`            forward everything (the default).
- `RefuseConnections(n)`     the first n connections are accepted and reset at once (RST);
                             the client sees ECONNRESET (or EPIPE) and nothing reaches the
                             target.
- `CutUpload(after_bytes)`   a connection that sends more than `after_bytes` (client → server)
                             is reset at that byte, `times` times; the target sees exactly
                             `after_bytes` bytes of it.
- `HttpStatus(status, n)`    the first request of each of the first n connections is answered
                             by the proxy itself (`Connection: close`, small JSON body, optional
                             `Retry-After`) and the target is never contacted.
- `Stall(seconds, n)`        the first n connections are accepted, then nothing happens for
                             `seconds` (or until `stop()`), then they are closed (a RST if
                             the client's request is still unread, which it usually is).

HTTP and keep-alive: the Docker daemon (and most HTTP clients) reuse connections, so a
connection can carry many requests. `HttpStatus` only ever answers the *first* request of a new
connection and then closes it; once a connection has been forwarded to the target the proxy just
pipes bytes and never injects a status in the middle of it. So "the first n requests" means "the
first request of the first n connections", which is what a client that reconnects after an error
sees. `requests_seen` counts every request head that passes (a passive parser that follows
Content-Length and chunked bodies), on faulted and forwarded connections alike.

Every connection takes a snapshot of the scenario when it is accepted: a new scenario applies to
new connections, not to ones already open.

TLS probes: for a plain-HTTP ("insecure") registry such as the test one, the Docker daemon first
tries HTTPS, and only after that fails does it fall back to HTTP. That probe is a connection
that opens with a TLS ClientHello. By default the proxy recognises it (first byte 0x16, a TLS
handshake record), forwards it untouched (the registry answers with a plain-HTTP 400 and Docker
falls back at once), counts it in `tls_connections`, and does not count it against the scenario.
Without this, `RefuseConnections(1)` or `Stall` would only ever hit the probe, and
`HttpStatus` would wait for an HTTP head that never comes. Pass `fault_tls=True` to fault TLS
connections like any other. To tell the two apart the proxy waits for the client's first byte
before it acts, so "at once" above means "as soon as the client has sent something"; HTTP and
TLS clients speak first, so they cannot tell the difference.

What dockerd 20.10 did with each fault when pushing through the proxy to the test registry
(checked by hand, not by a test; note it for retry work):
- `RefuseConnections(1)`, `Stall(3, 1)`: the first HTTP connection carries the `GET /v2/` ping;
  the push fails at once with "connection reset by peer". The daemon does not retry.
- `HttpStatus(503, 1)` on that ping: the push fails with "unauthorized: authentication
  required"; with no 401 challenge the daemon pushes without credentials. `HttpStatus(429, 3)`
  fails with "toomanyrequests: ...".
- `CutUpload(500_000)`: the daemon retries the layer upload itself (about 5 s) and succeeds.

Threads: one accept thread plus one thread per connection. Sockets are non-blocking and every
wait is a short `select`, so `stop()` is seen within ~0.1 s; only the owning thread ever touches
(and closes) a socket. `stop()` joins all threads and closes every socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

_TICK = 0.1  # how often blocked loops look at the stop flag
_CHUNK = 64 * 1024  # bytes read per recv()
_MAX_HEAD = 64 * 1024  # an HTTP request head larger than this is not parsed
_LINGER = 1.0  # seconds to drain the client after answering it ourselves
_CONNECT_TIMEOUT = 5.0


# --- scenarios ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Base class: `fired` counts the faults this scenario injected (guarded by the proxy)."""

    fired: int = field(default=0, init=False, compare=False)

    def _limit(self) -> int:
        return 0

    def _claim(self) -> bool:
        """Take one fault if any is left; the proxy calls this while holding its lock."""
        if self.fired < self._limit():
            self.fired += 1
            return True
        return False

    @property
    def remaining(self) -> int:
        return max(0, self._limit() - self.fired)


@dataclass
class Passthrough(Scenario):
    """Forward everything unchanged."""


@dataclass
class RefuseConnections(Scenario):
    """Accept the first `n` connections and reset them at once (RST, nothing forwarded)."""

    n: int = 1

    def _limit(self) -> int:
        return self.n


@dataclass
class CutUpload(Scenario):
    """Reset the first `times` connections whose client → server bytes exceed `after_bytes`.

    Exactly `after_bytes` bytes reach the target, then both sides get a RST.
    """

    after_bytes: int = 0
    times: int = 1

    def _limit(self) -> int:
        return self.times


@dataclass
class HttpStatus(Scenario):
    """Answer the first request of the first `n` connections with `status`, then close.

    The target is not contacted for those connections. See the module docstring for why only the
    first request of a connection can be answered (keep-alive).
    """

    status: int = 503
    n: int = 1
    retry_after: int | str | None = None

    def _limit(self) -> int:
        return self.n


@dataclass
class Stall(Scenario):
    """Accept the first `n` connections, send nothing for `seconds` (or until stop), close."""

    seconds: float = 5.0
    n: int = 1

    def _limit(self) -> int:
        return self.n


# --- helpers -----------------------------------------------------------------------------------


def _reset(sock: socket.socket | None) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST instead of a FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _looks_like_http(data: bytes | bytearray) -> bool:
    """Does this start like an HTTP request line (an upper-case method token)?"""
    return 65 <= data[0] <= 90  # A-Z


def _status_response(status: int, retry_after: int | str | None) -> bytes:
    """A registry-style error (`{"errors": [...]}`) with `Connection: close`."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Injected Fault"
    code = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(status, "UNKNOWN")
    body = json.dumps(
        {"errors": [{"code": code, "message": f"faultproxy: injected {status}", "detail": None}]}
    ).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _RequestCounter:
    """Counts HTTP/1.x request heads in a client → server byte stream without changing it.

    Follows Content-Length and chunked bodies to find where the next request starts. If the
    stream stops looking like HTTP (a head too large, an Upgrade, a bad chunk size) it gives up
    and counts nothing more on that connection.
    """

    def __init__(self) -> None:
        self.state = "head"  # head | body | chunk-size | chunk-data | trailer | lost
        self.buffer = bytearray()
        self.remaining = 0

    def feed(self, data: bytes) -> int:
        """Consume `data`; return how many request heads were completed in it."""
        count = 0
        view = memoryview(data)
        while view and self.state != "lost":
            if self.state in ("body", "chunk-data"):
                take = min(self.remaining, len(view))
                self.remaining -= take
                view = view[take:]
                if self.remaining == 0:
                    self.state = "head" if self.state == "body" else "chunk-size"
                continue
            # Line-oriented states: head, chunk-size, trailer.
            self.buffer += view
            view = view[len(view) :]
            count += self._parse_lines()
            if self.state in ("body", "chunk-data") and self.buffer:
                # The rest of the buffer belongs to the body: feed it through again.
                view = memoryview(bytes(self.buffer))
                self.buffer.clear()
        return count

    def _parse_lines(self) -> int:
        count = 0
        while self.state in ("head", "chunk-size", "trailer"):
            if self.state == "head":
                if not self._parse_head():
                    return count
                count += 1
            elif not self._parse_chunk_line():
                return count
        return count

    def _parse_head(self) -> bool:
        """Take one request head off the buffer; False when it is not complete yet (or the
        stream stopped looking like HTTP)."""
        while self.buffer[:2] == b"\r\n":  # stray CRLFs between requests are allowed
            del self.buffer[:2]
        if self.buffer[:1] not in (b"", b"\r") and not _looks_like_http(self.buffer):
            self._lose()
            return False
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._lose()
            return False
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        self._start_body(head)
        return True

    def _parse_chunk_line(self) -> bool:
        """Take one chunk-size or trailer line off the buffer; False when it is not complete
        yet (or is not a chunk size)."""
        end = self.buffer.find(b"\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._lose()
            return False
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        if self.state == "trailer":
            if not line:
                self.state = "head"
            return True
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self._lose()
            return False
        if size == 0:
            self.state = "trailer"
        else:
            self.state, self.remaining = "chunk-data", size + 2  # data + CRLF
        return True

    def _start_body(self, head: str) -> None:
        headers: dict[str, str] = {}
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "upgrade" in headers:
            self._lose()
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "chunk-size"
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._lose()
                return
            if length > 0:
                self.state, self.remaining = "body", length

    def _lose(self) -> None:
        self.state = "lost"
        self.buffer.clear()


class _Pipe:
    """Both directions of one forwarded connection, copied until both are closed.

    Each direction has a buffer; a side is only read while its buffer is empty, so a slow
    reader slows the writer down (back-pressure) and nothing ever blocks. Direction 0 is
    client → upstream, direction 1 is upstream → client. An OSError (a reset on one side)
    propagates: the proxy passes it on as a reset.
    """

    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        pending: bytes,
        scenario: Scenario,
        counter: _RequestCounter,
        claim: Callable[[Scenario], bool],
        count: Callable[[str, int], None],
    ) -> None:
        self.client = client
        self.src = (client, upstream)
        self.dst = (upstream, client)
        self.buf = [bytearray(pending), bytearray()]
        self.eof = [False, False]  # the source sent FIN
        self.shut = [False, False]  # we passed the FIN on (shutdown(SHUT_WR) of the destination)
        self.sent_up = len(pending)  # client bytes passed on (pending is from HttpStatus only)
        self.scenario, self.counter, self.claim, self.count = scenario, counter, claim, count
        # CutUpload: the byte count to cut at, until this connection has been decided on.
        self.cut_after = scenario.after_bytes if isinstance(scenario, CutUpload) else None
        self.cut_at: int | None = None  # set once this connection is going to be cut

    def run(self, stopping: threading.Event) -> bool:
        """Copy until both directions are closed (False) or the cut point is reached (True:
        reset both); False when `stopping` is set first."""
        while not stopping.is_set():
            if self.cut_at is not None and not self.buf[0]:
                return True  # everything up to the cut point was delivered: reset both
            if self._pass_on_fins():
                return False  # both directions finished cleanly
            readers = [self.src[d] for d in (0, 1) if not self.eof[d] and not self.buf[d]]
            if self.cut_at is not None and self.client in readers:
                readers.remove(self.client)
            writers = [self.dst[d] for d in (0, 1) if self.buf[d]]
            readable, writable, _ = select.select(readers, writers, [], _TICK)
            for d in (0, 1):
                if self.src[d] in readable and not self._read(d):
                    continue
                if self.dst[d] in writable and self.buf[d]:
                    with contextlib.suppress(BlockingIOError):
                        del self.buf[d][: self.dst[d].send(self.buf[d])]
        return False

    def _pass_on_fins(self) -> bool:
        """Shut the destination of each direction whose source sent FIN and whose buffer is
        empty; True when both directions are shut."""
        for d in (0, 1):
            if self.eof[d] and not self.buf[d] and not self.shut[d]:
                self.dst[d].shutdown(socket.SHUT_WR)
                self.shut[d] = True
        return self.shut[0] and self.shut[1]

    def _read(self, d: int) -> bool:
        """Read from direction `d`'s source into its buffer; False when nothing came (not
        ready yet, or FIN)."""
        try:
            data = self.src[d].recv(_CHUNK)
        except BlockingIOError:
            return False
        if not data:
            self.eof[d] = True
            return False
        if d == 0:
            data = self._upload(data)
        self.buf[d] += data
        return True

    def _upload(self, data: bytes) -> bytes:
        """Client bytes on their way up: counted, and cut short where CutUpload cuts."""
        if self.cut_after is not None and self.sent_up + len(data) > self.cut_after:
            if self.claim(self.scenario):
                self.cut_at = self.cut_after
                data = data[: self.cut_at - self.sent_up]
            self.cut_after = None  # decided for this connection, either way
        self.sent_up += len(data)
        self.count("requests_seen", self.counter.feed(data))
        return data


# --- the proxy ---------------------------------------------------------------------------------


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that forwards to `target_host:target_port`, injecting faults."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        scenario: Scenario | None = None,
        *,
        listen_port: int = 0,
        fault_tls: bool = False,
    ):
        if not _is_loopback(target_host):
            raise ValueError(f"FaultProxy only forwards to loopback addresses, not {target_host}")
        self.target_host, self.target_port = target_host, target_port
        self.scenario: Scenario = scenario or Passthrough()
        self.port: int | None = None
        self._listen_port = listen_port
        self.fault_tls = fault_tls  # also fault connections that open with a TLS handshake
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self.connections = 0  # connections accepted
        self.requests_seen = 0  # HTTP request heads seen from clients
        self.faults = 0  # faults injected, all scenarios together
        self.tls_connections = 0  # connections that opened with a TLS handshake (see docstring)

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("FaultProxy is not started")
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        if self._accept_thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self._listen_port))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-{self.port}-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection, join every thread. Idempotent."""
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)  # the accept thread closes the listener itself
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in threads if t.is_alive()]
        if self._accept_thread is not None and self._accept_thread.is_alive():
            alive.append(self._accept_thread.name)
        self._accept_thread = None
        if alive:
            raise RuntimeError(f"FaultProxy threads did not stop: {alive}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ----------------------------------------------------------------------------
    def _count(self, attribute: str, amount: int = 1) -> None:
        if amount:
            with self._lock:
                setattr(self, attribute, getattr(self, attribute) + amount)

    def _claim(self, scenario: Scenario) -> bool:
        with self._lock:
            claimed = scenario._claim()
            if claimed:
                self.faults += 1
            return claimed

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([listener], [], [], _TICK)
                if not readable:
                    continue
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                client.setblocking(False)
                with self._lock:
                    self.connections += 1
                    number = self.connections
                    thread = threading.Thread(
                        target=self._serve,
                        args=(client, self.scenario),
                        name=f"faultproxy-{self.port}-conn-{number}",
                        daemon=True,
                    )
                    self._threads.add(thread)
                thread.start()
        finally:
            listener.close()
            self._listener = None

    def _serve(self, client: socket.socket, scenario: Scenario) -> None:
        """Run one connection to its end; always closes `client` (and the upstream socket)."""
        upstream: socket.socket | None = None
        rst = False  # end with RST (SO_LINGER 0) rather than FIN
        try:
            first = self._peek_first_byte(client)
            if not first:
                return  # the client went away without a word, or we are stopping
            if first == b"\x16":  # a TLS handshake record: e.g. Docker's HTTPS probe
                self._count("tls_connections")
                if not self.fault_tls:
                    scenario = Passthrough()
            counter = _RequestCounter()
            pending = self._fault(client, scenario, counter)
            if isinstance(pending, bool):  # the fault ended the connection
                rst = pending
                return
            try:
                upstream = socket.create_connection(
                    (self.target_host, self.target_port), timeout=_CONNECT_TIMEOUT
                )
            except OSError:
                rst = True  # the target is down: the client sees a reset, as it would directly
                return
            upstream.setblocking(False)
            rst = self._pipe(client, upstream, scenario, counter, pending)
        except OSError:
            rst = True
        finally:
            self._close(client, upstream, rst)

    def _fault(
        self, client: socket.socket, scenario: Scenario, counter: _RequestCounter
    ) -> bool | bytes:
        """The scenario's fault on a new connection, when it is its turn. When the connection
        ends here: True to end it with a RST, False with a FIN. Otherwise the bytes already
        read from the client (HttpStatus reads the request head), to forward first."""
        if isinstance(scenario, RefuseConnections) and self._claim(scenario):
            return True
        if isinstance(scenario, Stall) and self._claim(scenario):
            # Say nothing; whatever the client sends stays unread (a hung server). Closing
            # a socket with unread data makes the kernel send a RST, so a client that sent a
            # request sees "connection reset" after the stall, not a clean EOF.
            self._stopping.wait(scenario.seconds)
            return False
        if not (isinstance(scenario, HttpStatus) and scenario.remaining):
            return b""
        pending = self._read_head(client)
        seen = counter.feed(pending)
        self._count("requests_seen", seen)
        if seen and self._claim(scenario):
            self._answer(client, _status_response(scenario.status, scenario.retry_after))
            return False
        return False if self._stopping.is_set() else pending

    def _close(self, client: socket.socket, upstream: socket.socket | None, rst: bool) -> None:
        """Close both sockets (with a RST when `rst`) and forget this connection's thread."""
        if rst:
            _reset(client)
            _reset(upstream)
        else:
            client.close()
            if upstream is not None:
                upstream.close()
        with self._lock:
            self._threads.discard(threading.current_thread())

    def _peek_first_byte(self, client: socket.socket) -> bytes:
        """Wait for the client's first byte and look at it without consuming it.

        Returns b"" if the client closed first or the proxy is stopping.
        """
        while not self._stopping.is_set():
            readable, _, _ = select.select([client], [], [], _TICK)
            if readable:
                try:
                    return client.recv(1, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
        return b""

    def _read_head(self, client: socket.socket) -> bytes:
        """Read from the client until a full request head arrived, EOF, or stop.

        Stops early if the bytes do not start like an HTTP request (an upper-case method).
        """
        data = bytearray()
        while not self._stopping.is_set() and b"\r\n\r\n" not in data and len(data) <= _MAX_HEAD:
            if data and not _looks_like_http(data):
                break
            readable, _, _ = select.select([client], [], [], _TICK)
            if not readable:
                continue
            try:
                chunk = client.recv(_CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def _answer(self, client: socket.socket, response: bytes) -> None:
        """Send our own response, half-close, and drain the client for a moment.

        Draining (a "lingering close") matters: closing a socket with unread data makes the
        kernel send a RST, which could destroy the response before the client reads it.
        """
        view = memoryview(response)
        while view and not self._stopping.is_set():
            _, writable, _ = select.select([], [client], [], _TICK)
            if writable:
                try:
                    view = view[client.send(view) :]
                except BlockingIOError:
                    continue
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            return
        waited = 0.0
        while waited < _LINGER and not self._stopping.is_set():
            readable, _, _ = select.select([client], [], [], _TICK)
            waited += _TICK
            if readable:
                try:
                    if not client.recv(_CHUNK):
                        return  # the client closed too
                except BlockingIOError:
                    continue
                except OSError:
                    return

    def _pipe(
        self,
        client: socket.socket,
        upstream: socket.socket,
        scenario: Scenario,
        counter: _RequestCounter,
        pending: bytes,
    ) -> bool:
        """Copy bytes both ways until both directions are closed; True means "end with RST".
        An OSError on either socket (a reset on one side) ends with a RST too, in `_serve`."""
        pipe = _Pipe(client, upstream, pending, scenario, counter, self._claim, self._count)
        return pipe.run(self._stopping)
