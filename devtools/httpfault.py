"""A per-request fault-injecting HTTP reverse proxy for reliability tests (stdlib only).

`devtools.faultproxy` works on TCP connections; this one reads every HTTP request and decides
per request, so a test can fault exactly one call of a conversation (the manifest PUT of a
push, the third `GET /v2/`, only the Docker daemon's requests or only hubtasks' own):

    with HttpFaultProxy(stack.registry_server.port) as proxy:
        proxy.address                    # "127.0.0.1:PORT", use it as the registry
        proxy.add(Rule(method="PUT", path="/manifests/", agent="docker", status=429,
                       headers={"Retry-After": "2"}, times=1))
        ...
        proxy.count(method="PUT", path="/manifests/")    # requests seen, faulted or not

It listens on 127.0.0.1 and forwards to a target on the loopback interface only. Every request
is read whole (a `Content-Length` or chunked body), matched against the rules in the order they
were added, and either answered by the proxy or forwarded on a kept-alive connection of its own
to the target. The client's `Host` header is passed on unchanged, so the registry's upload
`Location`s keep pointing at the proxy. A rule applies to the requests it matches, from the
`skip`+1-th on, `times` times (None: always), and does one thing:

- `status`            answer with this status, `headers` and `body` (by default a registry
                      error document, `{"errors": [{"code": …}]}`, whose code fits the status);
- `stall`             read the request, answer nothing for `stall` seconds (`math.inf`: until
                      the client hangs up or the proxy stops), then close the connection;
- `drop`              close the connection without an answer at once (a stale keep-alive);
- otherwise forward (after `delay` seconds, if given: a slow request that still happens),
  then: `headers` replace response headers (e.g. a wrong `Docker-Content-Digest`), `truncate`
  sends only that many body bytes under the full `Content-Length` and closes.

`seen` lists every request (method, path, user agent, status, fault); `count()` filters it.
`hangups` counts stalled requests whose client gave up before the stall ended.

Docker's HTTPS probe of a plain-HTTP registry (a TLS ClientHello) is not an HTTP request: the
proxy answers it with a 400, as the registry would, and the daemon falls back to HTTP.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
_ERROR_CODES = {
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "MANIFEST_UNKNOWN",
    405: "UNSUPPORTED",
    415: "MANIFEST_INVALID",
    429: "TOOMANYREQUESTS",
}
_TICK = 0.05


@dataclass
class Rule:
    """Which requests to fault (all given conditions must hold) and how; see the module
    docstring. `path` and `agent` are regular expressions searched in the request target and
    the User-Agent header."""

    method: str | None = None
    path: str | None = None
    agent: str | None = None
    times: int | None = 1
    skip: int = 0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stall: float | None = None
    drop: bool = False
    truncate: int | None = None
    delay: float | None = None
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str, agent: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or re.search(self.path, path) is not None)
            and (self.agent is None or re.search(self.agent, agent, re.IGNORECASE) is not None)
        )

    def _take(self) -> bool:
        """Count a matching request; True when this one gets the fault."""
        self.matched += 1
        if self.matched <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True

    def describe(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        if self.stall is not None:
            return f"stall {self.stall}s"
        if self.drop:
            return "drop"
        if self.truncate is not None:
            return f"truncate {self.truncate}"
        if self.delay is not None:
            return f"delay {self.delay}s"
        return "rewrite headers" if self.headers else "forward"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    agent: str
    status: int | None  # None: no answer (stalled, dropped)
    fault: str | None  # the rule's description, None when forwarded untouched
    at: float  # time.monotonic() when the request had been read


def error_body(status: int, message: str | None = None) -> bytes:
    """A registry error document whose code fits `status` (5xx: UNAVAILABLE)."""
    code = _ERROR_CODES.get(status, "UNAVAILABLE" if status >= 500 else "UNKNOWN")
    text = message or f"httpfault: injected {status}"
    return json.dumps({"errors": [{"code": code, "message": text, "detail": None}]}).encode()


def _fault(rule: Rule | None) -> str | None:
    return rule.describe() if rule is not None else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        self.upstream: http.client.HTTPConnection | None = None
        try:
            super().handle()
        except OSError:
            pass  # the client went away
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        body = self._body()
        proxy = self.server.proxy
        agent = self.headers.get("User-Agent", "")
        rule = proxy._rule_for(self.command, self.path, agent)
        # Recorded before the client can read the answer: a test that got it sees the count.
        self._note = Seen(self.command, self.path, agent, None, _fault(rule), time.monotonic())
        if rule is None or not (rule.stall is not None or rule.drop or rule.status is not None):
            if rule is not None and rule.delay is not None:
                time.sleep(rule.delay)
            self._forward(body, rule)
        elif rule.status is not None:
            answer = rule.body if rule.body is not None else error_body(rule.status)
            self._send(rule.status, {"Content-Type": "application/json"}, answer, rule)
        else:
            proxy._record(self._note)
            if rule.stall is not None:
                self._stall(rule.stall)
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _stall(self, seconds: float) -> None:
        """Say nothing for `seconds`, or until the client hangs up or the proxy stops."""
        end = time.monotonic() + seconds if math.isfinite(seconds) else math.inf
        while time.monotonic() < end and not self.server.proxy._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], _TICK)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        self.server.proxy._count_hangup()
                        return
                except OSError:
                    self.server.proxy._count_hangup()
                    return
                time.sleep(_TICK)  # the client sent more (a pipelined request): keep waiting

    def _forward(self, body: bytes, rule: Rule | None) -> None:
        dropped = _HOP_BY_HOP | {"content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            response = self._upstream_request(headers, body)
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.server.proxy._record(replace(self._note, fault="target unreachable"))
            self.close_connection = True  # the client sees the connection end, as it would
            return
        # A HEAD answer keeps the length of the body it does not carry.
        dropped = _HOP_BY_HOP if self.command == "HEAD" else _HOP_BY_HOP | {"content-length"}
        answer = {k: v for k, v in response.getheaders() if k.lower() not in dropped}
        self._send(response.status, answer, data, rule)

    def _upstream_request(self, headers: dict[str, str], body: bytes) -> http.client.HTTPResponse:
        proxy = self.server.proxy
        for attempt in range(2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(
                    proxy.target_host, proxy.target_port, timeout=300
                )
            try:
                self.upstream.request(self.command, self.path, body=body or None, headers=headers)
                return self.upstream.getresponse()
            except (http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        rule: Rule | None,
    ) -> None:
        headers = dict(headers)
        if rule is not None:
            for name, value in rule.headers.items():
                for key in [k for k in headers if k.lower() == name.lower()]:
                    del headers[key]
                headers[name] = value
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Injected"
        self.server.proxy._record(replace(self._note, status=status))
        self.send_response_only(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            cut = rule.truncate if rule is not None and rule.truncate is not None else None
            self.wfile.write(body if cut is None else body[:cut])
            if cut is not None:
                self.close_connection = True
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: HttpFaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-answer is part of the tests


class HttpFaultProxy:
    """An HTTP reverse proxy on 127.0.0.1 in front of `target_host:target_port`."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        if not _is_loopback(target_host):
            raise ValueError(
                f"HttpFaultProxy forwards to loopback addresses only, not {target_host}"
            )
        self.target_host, self.target_port = target_host, target_port
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.hangups = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("HttpFaultProxy is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    def add(self, *rules: Rule) -> Rule:
        """Add rules (checked in the order added); returns the last one, to read its counts."""
        with self._lock:
            self.rules.extend(rules)
        return rules[-1]

    def clear(self) -> None:
        """Drop every rule and forget every request seen."""
        with self._lock:
            self.rules.clear()
            self.seen.clear()
            self.hangups = 0

    def count(
        self, method: str | None = None, path: str | None = None, agent: str | None = None
    ) -> int:
        """Requests seen (faulted or forwarded) that match, like a rule's conditions."""
        probe = Rule(method=method, path=path, agent=agent)
        with self._lock:
            return sum(probe.matches(s.method, s.path, s.agent) for s in self.seen)

    def start(self) -> HttpFaultProxy:
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _TICK}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> HttpFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _rule_for(self, method: str, path: str, agent: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, agent) and rule._take():
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _count_hangup(self) -> None:
        with self._lock:
            self.hangups += 1
