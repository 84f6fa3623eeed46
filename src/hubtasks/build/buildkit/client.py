"""The BuildKit build through the Engine API: a session, then `POST /build?version=2`.

The HTTP goes through the daemon connection hubtasks already has (a `requests.Session`
at the daemon, as the Docker SDK's `APIClient` is one), so every transport the SDK speaks
(unix socket, TCP with TLS, ssh) carries the session too. The context goes through the
session (`remote=client-session`, `filesync`), as the docker CLI sends it: the daemon asks for
the files it needs and keeps its copy for the next build of the same folder (the session's
shared key), so a warm build sends only what changed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
import urllib3

from hubtasks.build.buildkit import session as grpc_session
from hubtasks.build.buildkit import trace
from hubtasks.errors import BuildError, DaemonError


class DaemonHttp(Protocol):
    """A `requests.Session` at the daemon (the Docker SDK's `APIClient` is one)."""

    def post(self, url: str, **kwargs: Any) -> Any: ...

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest: ...

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class BuildRequest:
    """What one BuildKit build asks for (the query of `POST /build?version=2`)."""

    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    platform: str = ""
    network: str = ""
    no_cache: bool = False
    pull: bool = False
    cache_from: tuple[str, ...] = ()

    def params(self, session_id: str, build_id: str) -> list[tuple[str, str]]:
        """The query: the context comes through the session (`remote=client-session`)."""
        query = [("version", "2"), ("session", session_id), ("buildid", build_id)]
        query.append(("remote", "client-session"))
        query += [("dockerfile", self.dockerfile), ("rm", "1"), ("forcerm", "1")]
        query += [("t", tag) for tag in self.tags]
        if self.labels:
            query.append(("labels", json.dumps(dict(self.labels))))
        if self.build_args:
            query.append(("buildargs", json.dumps(dict(self.build_args))))
        if self.cache_from:
            query.append(("cachefrom", json.dumps(list(self.cache_from))))
        optional = {"target": self.target, "platform": self.platform, "networkmode": self.network}
        query += [(key, value) for key, value in optional.items() if value]
        query += [(key, "1") for key, on in (("nocache", self.no_cache), ("pull", self.pull)) if on]
        return query


class _Upgraded:
    """The connection of a `101 Switching Protocols` answer: read through the response's own
    reader (bytes the daemon sent right after the 101 may already sit in its buffer), written
    through the connection's socket (a unix or TCP socket, TLS, or the SDK's ssh process)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        # urllib3's HTTPResponse keeps http.client's response as `_fp`; its `fp` is the reader
        # over the connection (how the Docker SDK reaches an attach socket too).
        self._reader = response.raw._fp.fp  # noqa: SLF001 - no public way to it
        self._socket = response.raw.connection.sock
        with contextlib.suppress(AttributeError, OSError):
            self._socket.settimeout(None)  # the daemon may call nothing for minutes
        self._read = getattr(self._reader, "read1", None) or self._reader.read

    def recv(self) -> bytes:
        data: bytes | None = self._read(65536)
        return data or b""

    def sendall(self, data: bytes) -> None:
        self._socket.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(AttributeError, OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):  # the ssh transport's close writes to its process
            self._socket.close()
            self.response.close()


@dataclass
class Session:
    """A running session: its id for the build, the server answering on a thread."""

    id: str
    server: grpc_session.Server
    thread: threading.Thread

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


def open_session(
    http: DaemonHttp,
    api_root: str,
    served: Mapping[str, grpc_session.Handler],
    streams: Mapping[str, grpc_session.StreamOpener] | None = None,
    shared_key: str = "",
) -> Session:
    """`POST /session`, upgraded to h2c, served on a daemon thread until closed. The daemon
    keeps the files synced under `shared_key` for the next session with the same key."""
    session_id = uuid.uuid4().hex
    prepared = http.prepare_request(requests.Request("POST", f"{api_root}/session"))
    headers = urllib3.HTTPHeaderDict(dict(prepared.headers))
    headers.update(
        {
            "Upgrade": "h2c",
            "Connection": "Upgrade",
            "X-Docker-Expose-Session-Uuid": session_id,
            "X-Docker-Expose-Session-Name": "hubtasks",
            "X-Docker-Expose-Session-Sharedkey": shared_key or session_id,
        }
    )
    # One header line per method (joined with commas they name none): requests keeps one
    # value per name, urllib3's HTTPHeaderDict sends each value on its own line.
    for method in [*served, *(streams or {}), *grpc_session.DECLINED]:
        headers.add("X-Docker-Expose-Session-Grpc-Method", method)
    prepared.headers = headers  # type: ignore[assignment]
    response = http.send(prepared, stream=True)
    if response.status_code != 101:
        detail = _error_text(response)
        response.close()
        raise DaemonError(f"the Docker daemon refused a BuildKit session: {detail}")
    server = grpc_session.Server(_Upgraded(response), served, streams)
    thread = threading.Thread(target=server.serve, name="buildkit-session", daemon=True)
    thread.start()
    return Session(session_id, server, thread)


def _error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or f"HTTP {response.status_code}")


TraceHandler = Callable[[trace.Update], None]


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    """The daemon's JSON messages, one a line (JSON escapes the line breaks inside)."""
    rest = b""
    for chunk in response.iter_content(chunk_size=None):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if rest.strip():
        yield json.loads(rest)


def _image_id(message: Mapping[str, Any], on_trace: TraceHandler) -> str | None:
    """Hand a trace message on; the image ID from `moby.image.id`."""
    aux = message.get("aux")
    if message.get("id") == "moby.buildkit.trace" and isinstance(aux, str):
        on_trace(trace.decode(aux))
    elif message.get("id") == "moby.image.id" and isinstance(aux, Mapping):
        return str(aux.get("ID") or "") or None
    return None


def build(
    http: DaemonHttp,
    api_root: str,
    request: BuildRequest,
    session: Session,
    on_trace: TraceHandler,
) -> str:
    """Build with BuildKit from the files the session serves; return the image ID. A failure
    is a `BuildError` with the daemon's message; an interrupt (Ctrl-C) cancels the build."""
    build_id = uuid.uuid4().hex
    response = http.post(
        f"{api_root}/build", params=request.params(session.id, build_id), stream=True
    )
    try:
        if response.status_code != 200:
            raise BuildError(f"the Docker daemon refused the build: {_error_text(response)}")
        image_id = None
        for message in _json_lines(response):
            if message.get("error"):
                raise BuildError(_failure(str(message["error"]), session))
            image_id = _image_id(message, on_trace) or image_id
    except BaseException:
        _cancel(http, api_root, build_id)
        raise
    finally:
        response.close()
    if image_id is None:
        raise BuildError("the build ended without producing an image")
    return image_id


def _failure(message: str, session: Session) -> str:
    ended = session.server.ended
    if ended:  # what failed first: the build's message is only a consequence
        return f"the BuildKit session with the Docker daemon ended ({ended}): {message}"
    return message


def _cancel(http: DaemonHttp, api_root: str, build_id: str) -> None:
    """Ask the daemon to stop a build (closing its request stops it too, a little later)."""
    with contextlib.suppress(requests.RequestException):
        http.post(f"{api_root}/build/cancel", params={"id": build_id}, timeout=5).close()
