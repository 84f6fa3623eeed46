"""The session hubtasks serves to the daemon for the length of a build.

After `POST /session` is upgraded (101, `Upgrade: h2c`), the roles turn: the daemon is the
gRPC client and hubtasks the HTTP/2 server on that socket (h2 does the HTTP/2). Each call is
unary: request headers with `:path /package.Service/Method`, one gRPC message (a 5-byte
prefix: 0 = uncompressed, then a 4-byte big-endian length; then the protobuf bytes), end of
stream; the answer is `:status 200` + `content-type: application/grpc`, one message, and
trailers with `grpc-status` (or, for a failure, headers that carry `grpc-status` and end the
stream at once).

A streaming call (`Streaming`: the file sync) stays open instead: its messages are handed
over as they arrive, and the messages it has ready go out as the daemon's flow-control window
lets them — pulled one at a time, so a file is read while it is sent, never held whole.

What is served (found by watching Engine 20.10's calls, and from moby/buildkit `session/`):
health, registry credentials (`Auth/Credentials` with the registry host; the daemon asks
`GetTokenAuthority` first and, answered UNIMPLEMENTED, exchanges tokens itself), secrets
(`Secrets/GetSecret`, NOT_FOUND for an id not given) and the build context
(`FileSync/DiffCopy`, `filesync`).
"""

from __future__ import annotations

import contextlib
import enum
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from hubtasks.build.buildkit import messages


class Code(enum.IntEnum):
    """The gRPC status codes hubtasks answers with."""

    OK = 0
    NOT_FOUND = 5
    UNIMPLEMENTED = 12
    INTERNAL = 13


class GrpcFailure(Exception):
    """A call answered with a gRPC status other than OK."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_PREFIX = 5


def frame(payload: bytes) -> bytes:
    """One gRPC message on the wire: uncompressed flag, big-endian length, the bytes."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def complete_messages(data: bytes | bytearray) -> tuple[list[bytes], int]:
    """The whole gRPC messages at the start of `data` and how many bytes they take (a message
    still arriving is left); `GrpcFailure` for a compressed one."""
    found = []
    at = 0
    while len(data) - at >= _PREFIX:
        if data[at] != 0:
            raise GrpcFailure(Code.UNIMPLEMENTED, "compressed gRPC messages are not accepted")
        size = int.from_bytes(data[at + 1 : at + _PREFIX], "big")
        start = at + _PREFIX
        if len(data) - start < size:
            break
        found.append(bytes(data[start : start + size]))
        at = start + size
    return found, at


def unframe(data: bytes) -> list[bytes]:
    """The messages of a request's whole body; `GrpcFailure` for a compressed or cut one."""
    found, used = complete_messages(data)
    if used != len(data):
        raise GrpcFailure(Code.INTERNAL, "a gRPC message was cut short")
    return found


Handler = Callable[[bytes], bytes]


class Streaming(Protocol):
    """One open streaming call, driven by the server's thread (or by `wake`)."""

    def received(self, message: bytes) -> None:
        """A message from the daemon."""

    def next_message(self) -> bytes | None:
        """The next message to send, None when none is ready now."""

    def outcome(self) -> tuple[Code, str] | None:
        """How the call ends once every message is sent; None while it goes on."""

    def finished_sending(self) -> None:
        """The daemon sent its last message (it may still read ours)."""

    def closed(self) -> None:
        """The daemon reset the call, or the session ended."""


# A streaming call's opener: the call's metadata (header name → values) → the call.
StreamOpener = Callable[[Mapping[str, list[str]]], Streaming]
CredentialsLookup = Callable[[str], "tuple[str, str] | None"]


def _unary(request: str, reply: str, answer: Callable[[object], object]) -> Handler:
    def handle(data: bytes) -> bytes:
        try:
            parsed = messages.parse(request, data)
        except messages.MessageError as error:
            raise GrpcFailure(Code.INTERNAL, str(error)) from None
        result = answer(parsed)
        if not isinstance(result, messages.message_class(reply)):
            raise GrpcFailure(Code.INTERNAL, f"no {reply} to answer with")
        return bytes(result.SerializeToString())

    return handle


def handlers(credentials: CredentialsLookup, secrets: Mapping[str, bytes]) -> dict[str, Handler]:
    """The methods served: method path → handler of the request's bytes."""

    def health(_: object) -> object:
        return messages.make("grpc.health.v1.HealthCheckResponse", status=messages.SERVING)

    def auth(request: object) -> object:
        found = credentials(str(getattr(request, "Host", "")))
        username, secret = found or ("", "")  # none: anonymous, as the docker CLI answers
        return messages.make(
            "moby.filesync.v1.CredentialsResponse", Username=username, Secret=secret
        )

    def secret(request: object) -> object:
        name = str(getattr(request, "ID", ""))
        if name not in secrets:
            raise GrpcFailure(Code.NOT_FOUND, f"secret {name} not found")
        return messages.make("moby.buildkit.secrets.v1.GetSecretResponse", data=secrets[name])

    return {
        "/grpc.health.v1.Health/Check": _unary(
            "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse", health
        ),
        "/moby.filesync.v1.Auth/Credentials": _unary(
            "moby.filesync.v1.CredentialsRequest", "moby.filesync.v1.CredentialsResponse", auth
        ),
        "/moby.buildkit.secrets.v1.Secrets/GetSecret": _unary(
            "moby.buildkit.secrets.v1.GetSecretRequest",
            "moby.buildkit.secrets.v1.GetSecretResponse",
            secret,
        ),
    }


# Declared to the daemon too (X-Docker-Expose-Session-Grpc-Method), answered UNIMPLEMENTED:
# the daemon then asks Credentials and does the token exchange with the registry itself.
DECLINED = (
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.filesync.v1.Auth/FetchToken",
)


class Socket(Protocol):
    """The upgraded connection: reads return b"" at its end."""

    def recv(self) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Call:
    path: str
    body: bytearray = field(default_factory=bytearray)
    pending: bytes = b""  # reply bytes waiting for the flow-control window
    trailers: list[tuple[str, str]] = field(default_factory=list)
    stream: Streaming | None = None
    sent: int = 0  # how much of `pending` went out (a streaming call's buffer)


_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]
_BUFFERED = 1 << 16  # a streaming call's bytes framed ahead of the window


def _metadata(headers: object) -> dict[str, list[str]]:
    """A call's gRPC metadata: its ordinary headers, each name with every value it came with."""
    found: dict[str, list[str]] = {}
    for name, value in headers or ():  # type: ignore[attr-defined]
        key = str(name)
        if not key.startswith(":") and key not in ("content-type", "te", "user-agent"):
            found.setdefault(key, []).append(str(value))
    return found


class Server:
    """Answers the daemon's gRPC calls on one upgraded socket until it closes."""

    def __init__(
        self,
        socket: Socket,
        served: Mapping[str, Handler],
        streams: Mapping[str, StreamOpener] | None = None,
    ) -> None:
        self.socket = socket
        self.served = dict(served)
        self.streams = dict(streams or {})
        self.lock = threading.Lock()  # h2's state, for `wake` from another thread
        self.calls: list[str] = []  # method paths in the order they came (what tests read)
        self.ended: str | None = None  # why the session ended, when not closed by us
        self.closing = threading.Event()
        self._conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._open: dict[int, _Call] = {}

    def serve(self) -> None:
        """Serve until the daemon or `close` ends the connection (run it on a thread)."""
        try:
            with self.lock:
                self._conn.initiate_connection()
                self._flush()
            while True:
                data = self.socket.recv()
                if not data:
                    self._note_end("the daemon closed it")
                    return
                with self.lock:
                    for event in self._conn.receive_data(data):
                        self._on(event)
                    self._pump_all()
                    self._flush()
        except (ConnectionResetError, BrokenPipeError):
            self._note_end("the daemon closed it")
        except (OSError, h2.exceptions.ProtocolError) as error:
            self._note_end(str(error) or type(error).__name__)
        except Exception as error:  # noqa: BLE001 - a daemon left waiting would hang the build
            self._note_end(f"hubtasks could not serve it: {type(error).__name__}: {error}")
            self.close()
        finally:
            for call in self._open.values():
                if call.stream is not None:
                    call.stream.closed()

    def wake(self) -> None:
        """Send what the streaming calls have ready (from a thread other than `serve`'s)."""
        with contextlib.suppress(OSError, h2.exceptions.ProtocolError), self.lock:
            self._pump_all()
            self._flush()

    def close(self) -> None:
        self.closing.set()
        self.socket.close()

    def _note_end(self, why: str) -> None:
        if not self.closing.is_set() and self.ended is None:
            self.ended = why

    def _flush(self) -> None:
        out = self._conn.data_to_send()
        if out:
            self.socket.sendall(out)

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            path = next((str(v) for k, v in event.headers or () if k in (":path", b":path")), "")
            call = self._open[event.stream_id or 0] = _Call(path)
            if path in self.streams:
                self._start(event.stream_id or 0, call, _metadata(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
            self._on_end(event)
        elif isinstance(event, h2.events.WindowUpdated):
            for stream_id, call in list(self._open.items()):
                if call.pending and call.stream is None:
                    self._send(stream_id, call)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._note_end(f"the daemon ended it (HTTP/2 error {event.error_code})")

    def _on_end(self, event: h2.events.StreamEnded | h2.events.StreamReset) -> None:
        """The daemon's side of a call ended: a unary call is answered, a reset one dropped."""
        stream_id = event.stream_id or 0
        call = self._open.get(stream_id)
        if call is None:
            return
        if isinstance(event, h2.events.StreamReset):
            self._open.pop(stream_id, None)
            if call.stream is not None:
                call.stream.closed()
        elif call.stream is None:
            self._answer(stream_id, call)
        else:
            call.stream.finished_sending()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id or 0
        call = self._open.get(stream_id)
        if call is not None:
            call.body += event.data or b""
            if call.stream is not None:
                self._deliver(stream_id, call)
        with contextlib.suppress(h2.exceptions.StreamClosedError):  # ended while delivering
            self._conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)

    def _start(self, stream_id: int, call: _Call, metadata: Mapping[str, list[str]]) -> None:
        self.calls.append(call.path)
        try:
            call.stream = self.streams[call.path](metadata)
        except GrpcFailure as failure:
            self._fail(stream_id, failure)
            return
        self._conn.send_headers(stream_id, _HEADERS)

    def _deliver(self, stream_id: int, call: _Call) -> None:
        """Hand the complete messages received so far to the streaming call."""
        try:
            found, used = complete_messages(call.body)
            del call.body[:used]
            for message in found:
                if call.stream is not None:
                    call.stream.received(message)
        except GrpcFailure as failure:  # a compressed message, or one the call refuses
            self._end(stream_id, call, failure.code, failure.message)

    def _pump_all(self) -> None:
        for stream_id, call in list(self._open.items()):
            if call.stream is not None:
                self._pump(stream_id, call)

    def _pump(self, stream_id: int, call: _Call) -> None:
        """Send a streaming call's messages while the window lets them; end it when done."""
        stream = call.stream
        if stream is None:
            return
        while True:
            if len(call.pending) - call.sent < _BUFFERED:
                self._refill(call, stream)
            room = min(
                self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size
            )
            left = len(call.pending) - call.sent
            if left and room > 0:
                self._conn.send_data(stream_id, call.pending[call.sent : call.sent + room])
                call.sent += min(room, left)
                continue
            if left:
                return  # the rest when the daemon opens the window
            outcome = stream.outcome()
            if outcome is not None:
                self._end(stream_id, call, *outcome)
            return

    @staticmethod
    def _refill(call: _Call, stream: Streaming) -> None:
        """Frame the call's next messages behind what is left to send (one join)."""
        parts = [call.pending[call.sent :]]
        size = len(parts[0])
        while size < _BUFFERED:
            message = stream.next_message()
            if message is None:
                break
            parts.append(frame(message))
            size += len(parts[-1])
        if len(parts) > 1:
            call.pending, call.sent = b"".join(parts), 0

    def _end(self, stream_id: int, call: _Call, code: Code, message: str) -> None:
        trailers = [("grpc-status", str(int(code)))]
        if code != Code.OK:
            trailers.append(("grpc-message", urllib.parse.quote(message, safe=" ")))
        self._conn.send_headers(stream_id, trailers, end_stream=True)
        self._open.pop(stream_id, None)
        if call.stream is not None:
            call.stream.closed()

    def _answer(self, stream_id: int, call: _Call) -> None:
        self.calls.append(call.path)
        try:
            handler = self.served.get(call.path)
            if handler is None:
                raise GrpcFailure(Code.UNIMPLEMENTED, f"{call.path} is not served")
            (request,) = unframe(bytes(call.body)) or [b""]
            reply = handler(request)
        except GrpcFailure as failure:
            self._fail(stream_id, failure)
            return
        except ValueError:  # more than one message in a unary call
            self._fail(stream_id, GrpcFailure(Code.INTERNAL, "one message expected"))
            return
        self._conn.send_headers(stream_id, _HEADERS)
        call.pending = frame(reply)
        call.trailers = [("grpc-status", str(int(Code.OK)))]
        self._send(stream_id, call)

    def _send(self, stream_id: int, call: _Call) -> None:
        while call.pending:
            room = min(
                self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size
            )
            if room <= 0:
                return  # the rest when the daemon opens the window (WindowUpdated)
            self._conn.send_data(stream_id, call.pending[:room])
            call.pending = call.pending[room:]
        self._conn.send_headers(stream_id, call.trailers, end_stream=True)
        self._open.pop(stream_id, None)

    def _fail(self, stream_id: int, failure: GrpcFailure) -> None:
        self._conn.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", str(int(failure.code))),
                ("grpc-message", urllib.parse.quote(failure.message, safe=" ")),
            ],
            end_stream=True,
        )
        self._open.pop(stream_id, None)
