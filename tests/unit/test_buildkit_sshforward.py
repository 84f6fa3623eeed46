"""SSH agent forwarding through the session (moby/buildkit `session/sshforward`): CheckAgent
by id, and ForwardAgent's bytes between the daemon and a fake agent's unix socket — read-only,
replies in request order, the daemon's half-close reaching the agent, the agent's end ending
the call — driven directly and over HTTP/2 as the daemon drives it."""

from __future__ import annotations

import socket
import threading

import pytest

from hubtasks.build.buildkit import messages, sshforward
from hubtasks.build.buildkit import session as grpc_session
from tests.helpers.grpcpeer import Daemon, Wire, serving

IDENTITIES_ANSWER = b"\x00\x00\x00\x05\x0c\x00\x00\x00\x00"  # SSH_AGENT_IDENTITIES_ANSWER, none
LIST = b"\x00\x00\x00\x01\x0b"  # SSH_AGENTC_REQUEST_IDENTITIES
REMOVE_ALL = b"\x00\x00\x00\x01\x13"  # SSH_AGENTC_REMOVE_ALL_IDENTITIES
LOCK = b"\x00\x00\x00\x05\x16" + b"\x00\x00\x00\x00"  # SSH_AGENTC_LOCK, empty passphrase


class FakeAgent:
    """An agent on a unix socket: answers every request with no identities, records what
    reached it, and closes a connection when its client has finished sending."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.heard = bytearray()
        self.ended = threading.Event()
        self.listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listening.bind(path)
        self.listening.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            connection, _ = self.listening.accept()
        except OSError:  # closed by the fixture: nothing connected
            return
        with connection:
            buffer = b""
            while data := connection.recv(4096):
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "big"):
                    size = int.from_bytes(buffer[:4], "big")
                    self.heard += buffer[: 4 + size]
                    buffer = buffer[4 + size :]
                    connection.sendall(IDENTITIES_ANSWER)
        self.ended.set()


@pytest.fixture
def agent(tmp_path):
    fake = FakeAgent(str(tmp_path / "agent.sock"))
    yield fake
    fake.listening.close()


def _bytes(data: bytes) -> bytes:
    return messages.make("moby.sshforward.v1.BytesMessage", data=data).SerializeToString()


def _data(message: bytes) -> bytes:
    return bytes(messages.parse("moby.sshforward.v1.BytesMessage", message).data)


def test_check_agent_knows_the_ids_given_and_empty_is_default(agent):
    agents = sshforward.Agents({"default": agent.path})
    check = agents.handlers()[sshforward.CHECK]
    request = messages.make("moby.sshforward.v1.CheckAgentRequest", ID="default")
    assert check(request.SerializeToString()) == b""
    assert check(b"") == b""  # no id: "default", as BuildKit's provider reads it
    with pytest.raises(grpc_session.GrpcFailure) as raised:
        check(messages.make("moby.sshforward.v1.CheckAgentRequest", ID="git").SerializeToString())
    assert raised.value.code == grpc_session.Code.NOT_FOUND
    assert "--ssh git" in raised.value.message and agent.path not in raised.value.message
    # A failed build's line names the agent asked for, unless the daemon's error did.
    assert agents.missing == ["git"]
    assert agents.hint("exit code: 2") == (
        " (the build asked for the SSH agent 'git': give it with --ssh git)"
    )
    assert agents.hint(raised.value.message) == ""
    assert sshforward.Agents({}).hint("exit code: 2") == ""


def test_forward_agent_relays_reads_refuses_changes_in_order(agent):
    woken = threading.Semaphore(0)
    agents = sshforward.Agents({"git": agent.path})
    agents.wake = woken.release
    call = agents.streams()[sshforward.FORWARD]({sshforward.ID_KEY: ["git"]})
    # One chunk cut inside a request, a refused request between two forwarded ones.
    both = LIST + REMOVE_ALL + LIST
    call.received(_bytes(both[:3]))
    call.received(_bytes(both[3:] + LOCK))
    received = b""
    expected = 2 * len(IDENTITIES_ANSWER) + 2 * len(sshforward.FAILURE_REPLY)
    while len(received) < expected:
        while (message := call.next_message()) is not None:
            received += _data(message)
        if len(received) < expected:
            assert woken.acquire(timeout=5)
    failure = sshforward.FAILURE_REPLY
    assert received == IDENTITIES_ANSWER + failure + IDENTITIES_ANSWER + failure
    assert bytes(agent.heard) == LIST + LIST  # removing and locking never reach the agent
    assert call.outcome() is None
    call.finished_sending()  # the step's client closed: the agent sees its end
    assert agent.ended.wait(5)
    while call.outcome() is None:  # the reader hears the agent's end, then wakes the server
        assert woken.acquire(timeout=5)
    assert call.outcome() == (grpc_session.Code.OK, "")
    call.closed()


def test_forward_agent_for_an_unknown_id_or_a_dead_socket_is_refused(agent, tmp_path):
    agents = sshforward.Agents({"default": agent.path, "gone": str(tmp_path / "gone.sock")})
    opener = agents.streams()[sshforward.FORWARD]
    with pytest.raises(grpc_session.GrpcFailure) as raised:
        opener({sshforward.ID_KEY: ["other"]})
    assert raised.value.code == grpc_session.Code.NOT_FOUND
    with pytest.raises(grpc_session.GrpcFailure, match="cannot reach the SSH agent of --ssh gone"):
        opener({sshforward.ID_KEY: ["gone"]})
    opener({}).closed()  # no id: the default agent


def test_an_agent_gone_ends_the_call_without_waking_the_server_from_its_own_thread(tmp_path):
    path = str(tmp_path / "short.sock")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen()
    woken_from: list[str] = []
    agents = sshforward.Agents({"default": path})
    agents.wake = lambda: woken_from.append(threading.current_thread().name)
    call = agents.streams()[sshforward.FORWARD]({})
    accepted, _ = listening.accept()
    accepted.close()  # the agent hangs up at once
    listening.close()
    for _ in range(100):
        if call.outcome() is not None:
            break
        threading.Event().wait(0.05)
    assert call.outcome() == (grpc_session.Code.OK, "")
    before = list(woken_from)
    call.received(_bytes(LIST))  # written to a closed agent: the server's own thread
    assert woken_from == before  # Server.wake takes the lock this thread holds
    assert threading.current_thread().name not in woken_from
    call.closed()


def test_a_forwarded_connection_over_the_session_ends_when_the_agent_does(agent):
    ours, theirs = socket.socketpair()
    agents = sshforward.Agents({"default": agent.path})
    server = grpc_session.Server(Wire(ours), agents.handlers(), agents.streams())
    agents.wake = server.wake
    thread = serving(server)
    daemon = Daemon(theirs)
    stream = daemon.open(sshforward.FORWARD)
    daemon.send(stream, _bytes(LIST + REMOVE_ALL))
    theirs.sendall(daemon.conn.data_to_send())
    replies = b""

    def on_message(message: bytes) -> None:
        nonlocal replies
        replies += _data(message)
        if replies == IDENTITIES_ANSWER + sshforward.FAILURE_REPLY:
            daemon.conn.end_stream(stream)  # the daemon's half-close: the agent ends

    trailers = daemon.receive(stream, on_message)
    assert trailers["grpc-status"] == "0"
    assert replies == IDENTITIES_ANSWER + sshforward.FAILURE_REPLY
    assert agent.ended.wait(5) and bytes(agent.heard) == LIST
    assert server.calls == [sshforward.FORWARD]
    server.close()
    thread.join(5)
    theirs.close()
    ours.close()
