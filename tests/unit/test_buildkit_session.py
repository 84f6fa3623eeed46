"""BuildKit's session as the daemon speaks it: gRPC framing, the messages' wire bytes, and the
HTTP/2 server answering calls (driven here by an h2 client, as the daemon's gRPC client)."""

from __future__ import annotations

import socket

import pytest

from hubtasks.build.buildkit import messages
from hubtasks.build.buildkit import session as grpc_session
from tests.helpers.grpcpeer import Daemon, Wire, serving


def test_frame_is_flag_then_big_endian_length_then_bytes():
    assert grpc_session.frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_session.unframe(b"\x00\x00\x00\x00\x03abc\x00\x00\x00\x00\x00") == [b"abc", b""]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x01\x00\x00\x00\x01a", grpc_session.Code.UNIMPLEMENTED),  # compressed
        (b"\x00\x00\x00", grpc_session.Code.INTERNAL),  # prefix cut
        (b"\x00\x00\x00\x00\x05ab", grpc_session.Code.INTERNAL),  # message cut
    ],
)
def test_unframe_refuses_compressed_or_cut_messages(data, code):
    with pytest.raises(grpc_session.GrpcFailure) as failure:
        grpc_session.unframe(data)
    assert failure.value.code == code


def test_messages_have_the_documented_field_numbers():
    # field 1 and 2, wire type 2 (length-delimited): tags 0x0a and 0x12
    reply = messages.make("moby.filesync.v1.CredentialsResponse", Username="u", Secret="pw")
    assert reply.SerializeToString() == b"\x0a\x01u\x12\x02pw"
    request = messages.parse("moby.buildkit.secrets.v1.GetSecretRequest", b"\x0a\x03tok")
    assert request.ID == "tok"  # type: ignore[attr-defined]
    health = messages.make("grpc.health.v1.HealthCheckResponse", status=messages.SERVING)
    assert health.SerializeToString() == b"\x08\x01"


def test_a_request_that_is_not_its_message_is_an_error():
    with pytest.raises(messages.MessageError):
        messages.parse("moby.filesync.v1.CredentialsRequest", b"\x0a\x09short")


@pytest.fixture
def served():
    ours, theirs = socket.socketpair()
    lookups: list[str] = []

    def credentials(host: str):
        lookups.append(host)
        return ("hubuser", "hunter2") if host == "127.0.0.1:5000" else None

    server = grpc_session.Server(
        Wire(ours), grpc_session.handlers(credentials, {"tok": b"x" * 100_000})
    )
    thread = serving(server)
    daemon = Daemon(theirs)
    yield daemon, server, lookups
    server.close()
    thread.join(5)
    assert not thread.is_alive()
    assert server.ended is None  # closed by us: not a session that died
    theirs.close()


def _reply(name: str, body: bytes):
    (payload,) = grpc_session.unframe(body)
    return messages.parse(name, payload)


def test_credentials_answer_the_host_asked_and_nothing_for_others(served):
    daemon, server, lookups = served
    request = messages.make("moby.filesync.v1.CredentialsRequest", Host="127.0.0.1:5000")
    headers, body = daemon.call("/moby.filesync.v1.Auth/Credentials", request.SerializeToString())
    assert headers[":status"] == "200"
    assert headers["grpc-status"] == "0"
    reply = _reply("moby.filesync.v1.CredentialsResponse", body)
    assert (reply.Username, reply.Secret) == ("hubuser", "hunter2")  # type: ignore[attr-defined]
    other = messages.make("moby.filesync.v1.CredentialsRequest", Host="docker.io")
    headers, body = daemon.call("/moby.filesync.v1.Auth/Credentials", other.SerializeToString())
    reply = _reply("moby.filesync.v1.CredentialsResponse", body)
    assert (reply.Username, reply.Secret) == ("", "")  # type: ignore[attr-defined]
    assert lookups == ["127.0.0.1:5000", "docker.io"]
    assert server.calls == ["/moby.filesync.v1.Auth/Credentials"] * 2


def test_a_secret_larger_than_the_window_arrives_whole(served):
    daemon, _, _ = served
    request = messages.make("moby.buildkit.secrets.v1.GetSecretRequest", ID="tok")
    path = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
    headers, body = daemon.call(path, request.SerializeToString())
    assert headers["grpc-status"] == "0"
    reply = _reply("moby.buildkit.secrets.v1.GetSecretResponse", body)
    assert reply.data == b"x" * 100_000  # type: ignore[attr-defined]


def test_an_unknown_secret_is_not_found_and_token_authority_unimplemented(served):
    daemon, _, _ = served
    request = messages.make("moby.buildkit.secrets.v1.GetSecretRequest", ID="nope")
    path = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
    headers, body = daemon.call(path, request.SerializeToString())
    assert (headers["grpc-status"], body) == ("5", b"")
    assert "nope" in headers["grpc-message"]
    headers, _ = daemon.call("/moby.filesync.v1.Auth/GetTokenAuthority", b"")
    assert headers["grpc-status"] == "12"


def test_health_check_says_serving(served):
    daemon, _, _ = served
    headers, body = daemon.call("/grpc.health.v1.Health/Check", b"")
    assert headers["grpc-status"] == "0"
    assert _reply("grpc.health.v1.HealthCheckResponse", body).status == 1  # type: ignore[attr-defined]


def test_a_session_the_daemon_closes_says_so():
    ours, theirs = socket.socketpair()
    server = grpc_session.Server(Wire(ours), grpc_session.handlers(lambda _: None, {}))
    thread = serving(server)
    theirs.close()
    thread.join(5)
    assert server.ended == "the daemon closed it"


def test_a_fault_in_hubtasks_ends_the_session_instead_of_leaving_the_daemon_waiting():
    class Broken:
        def received(self, message: bytes) -> None:
            raise RuntimeError("boom")

        def next_message(self) -> bytes | None:
            return None

        def outcome(self):
            return None

        def finished_sending(self) -> None: ...

        def closed(self) -> None: ...

    ours, theirs = socket.socketpair()
    server = grpc_session.Server(Wire(ours), {}, {"/x.Y/Z": lambda _: Broken()})
    thread = serving(server)
    daemon = Daemon(theirs)
    daemon.send(daemon.open("/x.Y/Z"), b"hi")
    theirs.sendall(daemon.conn.data_to_send())
    thread.join(5)
    assert not thread.is_alive()
    assert server.ended == "hubtasks could not serve it: RuntimeError: boom"
    theirs.settimeout(5)
    while theirs.recv(65536):  # the daemon's side sees the connection end
        pass
