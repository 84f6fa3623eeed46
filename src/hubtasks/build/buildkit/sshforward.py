"""SSH agents forwarded to `RUN --mount=type=ssh`, as `docker build --ssh` forwards them
(moby/buildkit `session/sshforward`).

Before a step runs, the daemon asks `moby.sshforward.v1.SSH/CheckAgent` with the mount's id
(empty: "default"); an error fails the step unless the mount is optional. While the step runs,
each connection to the socket BuildKit mounted opens one `SSH/ForwardAgent` call (metadata
`buildkit.ssh.id` names the agent): its messages are `BytesMessage`s carrying the agent
protocol's bytes both ways. The daemon half-closes the call when the step's client closes its
connection; the call ends when the agent closes its side.

hubtasks connects to the agent's unix socket for each call and, as the docker CLI does, keeps
the agent read-only: only the requests to list keys and to sign reach it; adding, removing,
locking and extensions are answered SSH_AGENT_FAILURE by hubtasks, so a Dockerfile cannot
change the user's agent. Keys never leave the agent; only its answers cross the session.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping

from hubtasks.build.buildkit import messages
from hubtasks.build.buildkit.session import Code, GrpcFailure, Handler, Streaming, StreamOpener

CHECK = "/moby.sshforward.v1.SSH/CheckAgent"
FORWARD = "/moby.sshforward.v1.SSH/ForwardAgent"
ID_KEY = "buildkit.ssh.id"
DEFAULT_ID = "default"

# The agent protocol (draft-miller-ssh-agent): uint32 length, then a type byte and its body.
REQUEST_IDENTITIES, SIGN_REQUEST = 11, 13  # the read-only requests forwarded
FAILURE_REPLY = b"\x00\x00\x00\x01\x05"  # SSH_AGENT_FAILURE
MAX_MESSAGE = 256 * 1024  # OpenSSH's ssh-agent refuses longer messages too
_READ = 32 * 1024
_CONNECT_SECONDS = 5.0
_FORWARDED = None  # a place in the reply order kept for the agent's answer


def _bytes_message(data: bytes) -> bytes:
    return bytes(messages.make("moby.sshforward.v1.BytesMessage", data=data).SerializeToString())


def _take_messages(buffer: bytearray) -> list[bytes]:
    """The complete agent-protocol messages at the start of `buffer` (taken out of it)."""
    found = []
    while len(buffer) >= 4:
        size = int.from_bytes(buffer[:4], "big")
        if size > MAX_MESSAGE:
            raise GrpcFailure(Code.INTERNAL, "an SSH agent message is longer than 256 KiB")
        if len(buffer) < 4 + size:
            break
        found.append(bytes(buffer[: 4 + size]))
        del buffer[: 4 + size]
    return found


class ForwardAgent:
    """One `ForwardAgent` call: a connection to the agent, read on a thread of its own."""

    def __init__(self, ssh_id: str, path: str, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._from_daemon = bytearray()
        self._from_agent = bytearray()
        self._order: deque[bytes | None] = deque()  # replies in request order
        self._ready: deque[bytes] = deque()  # BytesMessages to send
        self._ended: tuple[Code, str] | None = None
        self._agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._agent.settimeout(_CONNECT_SECONDS)
            self._agent.connect(path)
            self._agent.settimeout(None)
        except OSError as error:
            self._agent.close()
            raise GrpcFailure(
                Code.INTERNAL,
                f"cannot reach the SSH agent of --ssh {ssh_id}: {error.strerror or error}",
            ) from None
        self._reader = threading.Thread(target=self._read, name=f"ssh-agent-{ssh_id}", daemon=True)
        self._reader.start()

    def received(self, message: bytes) -> None:
        try:
            parsed = messages.parse("moby.sshforward.v1.BytesMessage", message)
            data = bytes(getattr(parsed, "data", b""))
        except messages.MessageError as error:
            raise GrpcFailure(Code.INTERNAL, str(error)) from None
        with self._lock:
            self._from_daemon += data
            requests = _take_messages(self._from_daemon)
            forward = []
            for request in requests:
                if request[4:5] in (bytes([REQUEST_IDENTITIES]), bytes([SIGN_REQUEST])):
                    forward.append(request)
                    self._order.append(_FORWARDED)
                else:
                    self._order.append(FAILURE_REPLY)
            self._release()
        if forward:
            try:
                self._agent.sendall(b"".join(forward))
            except OSError:  # the agent went away: its end is the call's end
                with self._lock:  # (no wake: this is the server's thread, it pumps next)
                    self._ended = self._ended or (Code.OK, "")

    def next_message(self) -> bytes | None:
        with self._lock:
            return self._ready.popleft() if self._ready else None

    def outcome(self) -> tuple[Code, str] | None:
        with self._lock:
            return None if self._ready else self._ended

    def finished_sending(self) -> None:
        """The step's client closed its connection: the agent hears its end too."""
        with contextlib.suppress(OSError):
            self._agent.shutdown(socket.SHUT_WR)

    def closed(self) -> None:
        """The call is over: the reader wakes, sees the end and closes the connection (its
        own thread closes it, so that no read starts on a closed descriptor)."""
        with contextlib.suppress(OSError):
            self._agent.shutdown(socket.SHUT_RDWR)

    def _read(self) -> None:
        """The agent's answers, queued in request order, then the server woken to send them."""
        try:
            self._relay()
        finally:
            self._agent.close()

    def _relay(self) -> None:
        while True:
            try:
                data = self._agent.recv(_READ)
            except OSError:
                data = b""
            if not data:
                self._finish()
                return
            try:
                with self._lock:
                    self._from_agent += data
                    for reply in _take_messages(self._from_agent):
                        self._answer(reply)
                    self._release()
            except GrpcFailure as failure:
                with self._lock:
                    self._ended = (failure.code, failure.message)
                self._wake()
                return
            self._wake()

    def _answer(self, reply: bytes) -> None:
        """The agent's answer goes where its request stands (our refusals stay in order)."""
        if _FORWARDED in self._order:
            self._order[self._order.index(_FORWARDED)] = reply

    def _release(self) -> None:
        """Queue the replies at the head of the order that are known (the lock held)."""
        out = []
        while self._order and self._order[0] is not _FORWARDED:
            out.append(self._order.popleft() or b"")
        if out:
            self._ready.append(_bytes_message(b"".join(out)))

    def _finish(self) -> None:
        with self._lock:
            if self._ended is None:
                self._ended = (Code.OK, "")
        self._wake()


class Agents:
    """The agents a build may use (id → socket path), served to the daemon. `wake` is the
    session server's, set once the session is open (calls arrive only after that). `missing`:
    the ids the daemon asked for and was refused — a Dockerfile's ssh mount is optional unless
    it says `required=true`, so its step runs without an agent and fails on its own words."""

    def __init__(self, sockets: Mapping[str, str]) -> None:
        self.sockets = dict(sockets)
        self.wake: Callable[[], None] = lambda: None
        self.missing: list[str] = []

    def hint(self, failure: str) -> str:
        """What a failed build's line adds when the build asked for an agent not given (and
        the line does not say so already)."""
        if not self.missing or f"--ssh {self.missing[0]}" in failure:
            return ""
        ssh_id = self.missing[0]
        return f" (the build asked for the SSH agent {ssh_id!r}: give it with --ssh {ssh_id})"

    def handlers(self) -> dict[str, Handler]:
        return {CHECK: self._check}

    def streams(self) -> dict[str, StreamOpener]:
        return {FORWARD: self._open}

    def _check(self, data: bytes) -> bytes:
        try:
            request = messages.parse("moby.sshforward.v1.CheckAgentRequest", data)
        except messages.MessageError as error:
            raise GrpcFailure(Code.INTERNAL, str(error)) from None
        self._path(str(getattr(request, "ID", "")) or DEFAULT_ID)
        return bytes(messages.make("moby.sshforward.v1.CheckAgentResponse").SerializeToString())

    def _open(self, metadata: Mapping[str, list[str]]) -> Streaming:
        ssh_id = (metadata.get(ID_KEY) or [""])[0] or DEFAULT_ID
        return ForwardAgent(ssh_id, self._path(ssh_id), self._wake)

    def _wake(self) -> None:
        self.wake()  # looked up at each call: set after the session opened

    def _path(self, ssh_id: str) -> str:
        path = self.sockets.get(ssh_id)
        if path is None:
            if ssh_id not in self.missing:
                self.missing.append(ssh_id)
            raise GrpcFailure(
                Code.NOT_FOUND,
                f"the build asks for the SSH agent {ssh_id!r}: give it with --ssh {ssh_id} "
                "(HUB_SSH)",
            )
        return path
