"""The one HTTP transport under the registry client and the Docker Hub client.

One origin (`scheme://host[:port]`) per `Transport`: a kept-open connection to it (unless a
proxy is configured for it: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, as urllib reads them, then
each request goes through the proxy), any other URL (a token realm, a redirect's target, a
`next` link) through urllib with the same proxies and trust. Every request waits at most
`timeout` seconds and never longer than the `deadline` callable allows; a body that trickles
in is bounded too (`read_within`). A failed request is not sent again here.

Trust is the daemon's (`Trust`): a registry the daemon reaches over plain HTTP is reached so
here; an HTTPS registry's certificate is checked against the system's CAs (`SSL_CERT_FILE`,
`SSL_CERT_DIR`) plus the CAs of its `certs.d` folder, with the client certificate found there.
A TLS failure is never transient: one line that names the fix.

`status_error` is the one place an HTTP status becomes an error (class, transient,
retry-after); `rejected_credentials` the one place "rejected the credentials" is written.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import select
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubtasks.errors import AuthError, HubError, RegistryError, ReleaseRefused
from hubtasks.references import DOCKER_HUB
from hubtasks.retry import retry_after_seconds

# A request never waits less than this, even when the budget is nearly spent.
MIN_WAIT = 1.0
_READ_CHUNK = 64 * 1024


class Headers(Protocol):
    """Response headers as `http.client` (case-insensitive) and a plain dict both give them:
    one header's value (None when absent), and every name and value."""

    def get(self, name: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Trust:
    """How one registry host is trusted, as the Docker daemon trusts it.

    `insecure`: the daemon reaches it over plain HTTP (its `insecure-registries`, a loopback
    address, or HUB_INSECURE). `ca_files`: extra CAs (`certs.d/HOST/*.crt`); `client_cert`:
    a `(cert, key)` pair (`certs.d/HOST/*.cert` and its `.key`); `certs_dir`: the folder a CA
    for this host belongs in, for the line that names the fix.
    """

    insecure: bool = False
    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str] | None = None
    certs_dir: str = ""
    _context: list[ssl.SSLContext] = field(default_factory=list, compare=False, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """The system's CAs (OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR) plus ours."""
        if not self._context:
            context = ssl.create_default_context()
            if self.insecure:  # what dockerd does for an insecure registry that speaks TLS
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            for ca in self.ca_files:
                context.load_verify_locations(cafile=ca)
            if self.client_cert is not None:
                context.load_cert_chain(*self.client_cert)
            self._context.append(context)
        return self._context[0]


def speaks_tls(netloc: str, timeout: float = 5.0) -> bool:
    """Whether `host:port` answers a TLS handshake (its certificate unchecked): how an
    insecure registry is reached, HTTPS first, as dockerd tries it, else plain HTTP."""
    split = urllib.parse.urlsplit(f"//{netloc}")
    host, port = split.hostname or netloc, split.port or 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as responses: the client decides where credentials may go."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def user_agent() -> str:
    """`hubtasks/<version>`: a registry (or a test's proxy) can tell our requests apart."""
    from hubtasks.version import VERSION

    return f"hubtasks/{VERSION}"


class Transport:
    """Requests to one origin; `what` names it in messages ("registry X (URL)")."""

    def __init__(
        self,
        base_url: str,
        *,
        what: str,
        timeout: float = 30,
        deadline: Callable[[], float] | None = None,
        trust: Trust | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.what = what
        self.timeout = timeout
        self.deadline = deadline
        self.trust = trust or Trust()
        self._connection: http.client.HTTPConnection | None = None
        parts = urllib.parse.urlsplit(self.base_url)
        self.netloc, self._https = parts.netloc, parts.scheme == "https"
        proxies = urllib.request.getproxies()
        self._direct = not proxies or bool(urllib.request.proxy_bypass(parts.hostname or ""))

    def fork(self) -> Transport:
        """The same origin, trust and budget on a connection of its own (another thread)."""
        return Transport(
            self.base_url,
            what=self.what,
            timeout=self.timeout,
            deadline=self.deadline,
            trust=self.trust,
        )

    def wait(self) -> float:
        """How long the next request may wait: `timeout`, within what is left of the budget."""
        left = self.deadline() if self.deadline is not None else self.timeout
        return max(MIN_WAIT, min(self.timeout, left))

    def connect(self) -> None:
        """Open the kept-open connection now (TCP, and TLS for https), before a request."""
        if self._direct and self._connection is None:
            self._connection = self._new_connection(self.wait())
            try:
                self._connection.connect()
            except OSError as error:
                self.close()
                raise self.unreachable(error) from None

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            context = self.trust.ssl_context()
            return http.client.HTTPSConnection(self.netloc, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.netloc, timeout=timeout)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def open(self, request: urllib.request.Request) -> Response:
        """One request: over the kept-open connection when it is to this origin directly,
        else through urllib (proxies, other hosts)."""
        if self._direct and urllib.parse.urlsplit(request.full_url).netloc == self.netloc:
            return self._open_kept(request)
        return self._open_urllib(request)

    def _open_kept(self, request: urllib.request.Request) -> Response:
        """The request over the kept-open connection. A connection the server closed while
        idle is replaced before anything is sent; a request that fails is not sent again."""
        wait = self.wait()
        deadline = time.monotonic() + wait
        if self._connection is not None and _closed_by_peer(self._connection):
            self.close()
        if self._connection is None:
            self._connection = self._new_connection(wait)
        connection = self._connection
        connection.timeout = wait
        if connection.sock is not None:
            connection.sock.settimeout(wait)
        split = urllib.parse.urlsplit(request.full_url)
        target = split.path + (f"?{split.query}" if split.query else "")
        headers = dict(request.header_items())
        try:
            connection.request(request.get_method(), target, body=request.data, headers=headers)
            response = connection.getresponse()
            body = read_within(response, deadline, wait, connection.sock)
        except (http.client.HTTPException, OSError) as error:
            self.close()
            raise self.unreachable(error, wait) from None
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return Response(response.status, response.headers, body)

    def _open_urllib(self, request: urllib.request.Request) -> Response:
        wait = self.wait()
        deadline = time.monotonic() + wait
        handlers: list[Any] = [_NoRedirects]
        if request.type == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self.trust.ssl_context()))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=wait) as response:
                body = read_within(response, deadline, wait)
                return Response(response.status, response.headers, body)
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise self.unreachable(error, wait) from None

    def unreachable(self, error: BaseException, wait: float | None = None) -> RegistryError:
        """A request that got no answer: transient, unless TLS failed (no retry mends that)."""
        if isinstance(error, ssl.SSLError):  # its `reason` is a string: look at it first
            return RegistryError(self._tls_failure(error))
        reason: object = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLError):
            return RegistryError(self._tls_failure(reason))
        if isinstance(reason, TimeoutError) and wait is not None:
            reason = f"no answer within {wait:.0f}s"
        elif isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror.lower()
        elif isinstance(reason, http.client.RemoteDisconnected):
            reason = "the connection was closed without an answer"
        elif isinstance(reason, http.client.IncompleteRead):
            reason = "the answer was cut short"
        return RegistryError(
            f"cannot reach {self.what} ({self.base_url}): {reason}",
            transient=True,
        )

    def _tls_failure(self, error: ssl.SSLError) -> str:
        """One line naming the fix of a TLS failure."""
        code = error.reason or type(error).__name__
        where = f"cannot reach {self.what} ({self.base_url}) over TLS ({code})"
        if code == "WRONG_VERSION_NUMBER" or "wrong version number" in str(error):
            return (
                f"{where}: it answers plain HTTP, not HTTPS; if the daemon reaches it over "
                "HTTP, add it to the daemon's insecure-registries (daemon.json) or set "
                "HUB_INSECURE=true"
            )
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = error.verify_message or "not trusted"
            folder = self.trust.certs_dir or "/etc/docker/certs.d/HOST:PORT"
            return (
                f"{where}: its certificate is {detail}; put the CA that signed it in "
                f"{folder}/ca.crt (where the Docker daemon reads it), or in SSL_CERT_FILE"
            )
        return (
            f"{where}; check its certificate and, for a client certificate, "
            f"{self.trust.certs_dir or '/etc/docker/certs.d/HOST:PORT'}/client.cert and "
            "client.key"
        )


def read_within(response: Any, deadline: float, wait: float, sock: Any = None) -> bytes:
    """The answer's body, read by the chunk as it arrives. The socket's timeout bounds each
    read, not a server sending a byte at a time: the body must be done by `deadline`, or
    keep coming — every `_READ_CHUNK` bytes that arrive in time give it `wait` seconds more
    (a large blob on a slow link goes on; a trickle does not). With the connection's `sock`,
    each read waits only what is left, so a stall after some bytes ends at the deadline too."""
    chunks = []
    arrived = 0  # since the deadline was last moved

    def read() -> bytes:
        if sock is not None:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
        return bytes(response.read1(_READ_CHUNK))

    while chunk := read():
        chunks.append(chunk)
        arrived += len(chunk)
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError("the answer did not arrive in time")
        if arrived >= _READ_CHUNK:
            deadline, arrived = now + wait, 0
    if response.length:  # the server closed the connection before the whole answer
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    chunks.append(response.read())  # nothing left: marks the answer read, for the next request
    return b"".join(chunks)


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-open connection has something to read: the server closed it
    (or sent what nobody asked for); either way it cannot carry the next request."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


# --- status → error: the one factory ------------------------------------------------------------


def status_error(status: int, message: str, *, retry_after: float | None = None) -> HubError:
    """The error of an answer with this status: 401/403 an `AuthError` (never retried);
    429 and 5xx a transient `RegistryError` (with the wait the server asked for); anything
    else a `RegistryError` that a retry will not mend."""
    if status in (401, 403):
        return AuthError(message, status=status)
    transient = status == 429 or status >= 500
    return RegistryError(
        message,
        status=status,
        transient=transient,
        retry_after=retry_after if transient else None,
    )


def rejected_credentials(service: str, username: str | None, status: int, hint: str) -> AuthError:
    """The one line for credentials a service turned down."""
    return AuthError(
        f"{service} rejected the credentials of '{username or ''}' (HTTP {status}); {hint}",
        status=status,
    )


def says_immutable(text: str) -> bool:
    """Whether a registry's refusal of a tag write is its tag immutability (ECR "cannot be
    overwritten because the repository is immutable", Harbor's immutability rules, Docker
    Hub's and Artifact Registry's immutable tags all say the word)."""
    return "immutable" in text.lower()


def immutable_refusal(registry: str, target: str, said: str) -> ReleaseRefused:
    """The one line for a tag write the registry's own tag immutability refused."""
    said = " ".join(said.split())[:300]
    return ReleaseRefused(
        f"registry {registry} refused to overwrite {target}: its tags are immutable ({said}); "
        "that is the registry's own setting (Docker Hub immutable tags, ECR image tag "
        "mutability IMMUTABLE, Harbor tag immutability rules, Artifact Registry immutable "
        "tags): release a new version, or lift that setting for this repository",
        stage="push",
    )


CREDENTIALS_HINT = "check HUB_USERNAME and HUB_TOKEN (or the Docker credentials hubtasks used)"


def rate_limit_wait(status: int, headers: Headers) -> float | None:
    """Seconds an answer asks us to wait: `Retry-After` (seconds or an HTTP date), else the
    reset of a used-up limit (`RateLimit-Reset` in seconds, `X-RateLimit-Reset` in seconds or
    as a Unix time) when the answer is a 429 or `RateLimit-Remaining` is 0."""
    after = retry_after_seconds(headers.get("Retry-After"))
    if after is not None:
        return after
    remaining = (headers.get("RateLimit-Remaining") or "").split(";")[0].strip()
    if status != 429 and remaining != "0":
        return None
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        value = (headers.get(name) or "").split(";")[0].strip()
        if value.replace(".", "", 1).isdigit():
            seconds = float(value)
            return max(0.0, seconds - time.time()) if seconds > 1e9 else seconds
    return None


def registry_base_url(registry: str, *, insecure: bool = False) -> str:
    """Docker Hub's API lives at registry-1.docker.io; loopback registries, and those the
    daemon reaches over plain HTTP (`insecure`), speak plain HTTP."""
    if registry == DOCKER_HUB:
        return "https://registry-1.docker.io"
    if insecure or _loopback(registry):
        return f"http://{registry}"
    return f"https://{registry}"


def asks_no_trust(registry: str) -> bool:
    """Docker Hub (always TLS) and loopback registries (always plain HTTP, as dockerd's
    default 127.0.0.0/8 insecure range has it): nobody need be asked how to reach them."""
    return registry == DOCKER_HUB or _loopback(registry)


def _loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0].strip("[]") if registry.count(":") <= 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def next_link(header: str | None) -> str | None:
    """The path of a `Link: </v2/…?last=x&n=…>; rel="next"` header, if any."""
    if not header:
        return None
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', header)
    if not match:
        return None
    parsed = urllib.parse.urlsplit(match.group(1))
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")
