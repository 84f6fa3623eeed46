"""The daemon's side of a BuildKit session in unit tests: one end of a socket pair as the
session's socket (`Wire`), and an HTTP/2 client making gRPC calls on the other (`Daemon`), as
the daemon's gRPC client does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable

import h2.config
import h2.connection
import h2.events

from hubtasks.build.buildkit import session as grpc_session


class Wire:
    """One end of a socket pair as the session's socket."""

    def __init__(self, end: socket.socket) -> None:
        self.end = end

    def recv(self) -> bytes:
        return self.end.recv(65536)

    def sendall(self, data: bytes) -> None:
        self.end.sendall(data)

    def close(self) -> None:
        self.end.shutdown(socket.SHUT_RDWR)


def serving(server: grpc_session.Server) -> threading.Thread:
    """`server` answering on a thread of its own, as the session client runs it."""
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return thread


class Daemon:
    """The daemon's HTTP/2 client on `end`: unary calls, or a streaming call driven by the
    messages it receives."""

    def __init__(self, end: socket.socket) -> None:
        self.end = end
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.end.sendall(self.conn.data_to_send())

    def open(self, path: str, metadata: Iterable[tuple[str, str]] = ()) -> int:
        """Start a call to `path` with its metadata; the stream's id."""
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "session")]
        headers += [(":path", path), ("content-type", "application/grpc"), ("te", "trailers")]
        self.conn.send_headers(stream, [*headers, *metadata])
        self.end.sendall(self.conn.data_to_send())
        return stream

    def send(self, stream: int, message: bytes, *, last: bool = False) -> None:
        """One gRPC message on `stream` (sent with the next flush); `last` half-closes it."""
        self.conn.send_data(stream, grpc_session.frame(message), end_stream=last)

    def call(self, path: str, payload: bytes) -> tuple[dict[str, str], bytes]:
        """A unary call: the response's headers and trailers together, and its body."""
        stream = self.open(path)
        self.send(stream, payload, last=True)
        self.end.sendall(self.conn.data_to_send())
        body = bytearray()
        headers = self.receive(stream, on_data=body.extend)
        return headers, bytes(body)

    def receive(
        self,
        stream: int,
        on_message: Callable[[bytes], None] | None = None,
        on_data: Callable[[bytes], None] | None = None,
    ) -> dict[str, str]:
        """Read `stream` until it ends: each complete message to `on_message` (which may
        `send`: flushed after each read), or the raw body to `on_data`; the response's
        headers and trailers."""
        body = b""
        headers: dict[str, str] = {}
        while True:
            data = self.end.recv(65536)
            assert data, "the session closed before the call ended"
            for event in self.conn.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    headers.update((k.decode(), v.decode()) for k, v in event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    if on_data is not None:
                        on_data(event.data)
                    body += event.data
                    if on_message is not None:
                        found, used = grpc_session.complete_messages(body)
                        body = body[used:]
                        for message in found:
                            on_message(message)
                elif isinstance(event, h2.events.StreamEnded):
                    self.end.sendall(self.conn.data_to_send())
                    return headers
            self.end.sendall(self.conn.data_to_send())
