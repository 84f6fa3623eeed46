"""The build context through the session (fsutil's DiffCopy as the daemon's receiver drives
it): modes as Go has them, walk order, the mtimes that tell the daemon what changed, the
packets of one call, and the call served over HTTP/2 with a window smaller than a file."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from hubtasks.build.buildkit import filesync, messages
from hubtasks.build.buildkit import session as grpc_session
from tests.helpers.grpcpeer import Daemon, Wire, serving


def test_modes_are_gos_file_modes():
    assert filesync.go_mode(stat.S_IFREG | 0o644) == 0o644
    assert filesync.go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert filesync.go_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert filesync.go_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert filesync.go_mode(stat.S_IFIFO | 0o600) == (1 << 25) | 0o600
    assert filesync.go_mode(stat.S_IFSOCK | 0o600) is None


def test_a_folder_comes_before_what_it_holds_and_names_sort_as_bytes():
    # "a.txt" < "a/b" as strings ('.' < '/'), but a walk lists the folder "a" and its
    # contents before "a.txt": the daemon refuses entries out of this order.
    assert filesync.with_parents(["b", "a.txt", "a/b/c", "B"]) == [
        "B",
        "a",
        "a/b",
        "a/b/c",
        "a.txt",
        "b",
    ]


def test_one_mtime_for_all_still_tells_a_rewritten_file_apart(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"aaaa")
    first = filesync.stamp(os.lstat(path), 1_700_000_000)
    assert first // 10**9 == 1_700_000_000  # whole seconds: what the image keeps
    assert filesync.stamp(os.lstat(path), 1_700_000_000) == first  # unchanged: same
    path.write_bytes(b"bbbb")  # same size, same second
    os.utime(path, ns=(os.lstat(path).st_atime_ns, 1_600_000_000 * 10**9))
    assert filesync.stamp(os.lstat(path), 1_700_000_000) != first
    assert filesync.stamp(os.lstat(tmp_path), 1_700_000_000) == 1_700_000_000 * 10**9
    assert filesync.stamp(os.lstat(path), None) == 1_600_000_000 * 10**9  # its own


def test_followpaths_send_only_those_and_their_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in (".dockerignore", "sub/x", "y"):
        (tmp_path / name).write_text(name)
    folder = filesync.Folder(str(tmp_path), (".dockerignore", "sub", "sub/x", "y"), None)
    assert [e.path for e in folder.entries([".dockerignore"])] == [".dockerignore"]
    assert [e.path for e in folder.entries(["sub/x"])] == ["sub", "sub/x"]
    assert [e.path for e in folder.entries(None)] == [".dockerignore", "sub", "sub/x", "y"]


def _packet(**fields):
    return messages.make("fsutil.types.Packet", **fields).SerializeToString()


def _parse(data: bytes):
    return messages.parse("fsutil.types.Packet", data)


def _drain(call: filesync.DiffCopy) -> list:
    out = []
    while (message := call.next_message()) is not None:
        out.append(_parse(message))
    return out


def _project(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big").write_bytes(os.urandom(filesync.DATA_CHUNK + 10))
    (tmp_path / "a.txt").write_text("hello")
    os.symlink("a.txt", tmp_path / "link")
    return filesync.Folder(str(tmp_path), ("a", "a/big", "a.txt", "link"), 1_700_000_000)


def test_one_call_lists_then_sends_what_is_asked_then_ends(tmp_path):
    errors: list[str] = []
    call = filesync.DiffCopy(_project(tmp_path).entries(None), errors.append)
    listed = _drain(call)
    assert [p.type for p in listed] == [filesync.STAT] * 5
    assert [p.stat.path for p in listed[:4]] == [b"a", b"a/big", b"a.txt", b"link"]
    assert not listed[4].HasField("stat")  # the end of the list
    assert listed[3].stat.linkname == b"a.txt"
    assert listed[0].stat.mode == (1 << 31) | 0o755
    # The receiver numbers every entry (folders too): "a/big" is 1, "a.txt" is 2.
    call.received(_packet(type=filesync.REQ, ID=2))
    call.received(_packet(type=filesync.REQ, ID=1))
    sent = _drain(call)
    assert [(p.type, p.ID) for p in sent] == [(filesync.DATA, 2)] * 2 + [(filesync.DATA, 1)] * 3
    assert sent[0].data == b"hello" and sent[1].data == b""  # an empty DATA ends a file
    assert b"".join(p.data for p in sent[2:]) == (tmp_path / "a" / "big").read_bytes()
    assert call.outcome() is None  # until the receiver says FIN
    call.received(_packet(type=filesync.FIN))
    assert [p.type for p in _drain(call)] == [filesync.FIN]
    assert call.outcome() == (grpc_session.Code.OK, "")
    assert errors == []


def test_a_folder_or_a_link_cannot_be_asked_for(tmp_path):
    call = filesync.DiffCopy(_project(tmp_path).entries(None), lambda _: None)
    _drain(call)
    for number in (0, 3, 99):
        with pytest.raises(grpc_session.GrpcFailure):
            call.received(_packet(type=filesync.REQ, ID=number))


def test_a_file_that_cannot_be_read_ends_the_call_with_its_name(tmp_path):
    errors: list[str] = []
    call = filesync.DiffCopy(_project(tmp_path).entries(None), errors.append)
    _drain(call)
    (tmp_path / "a.txt").unlink()
    call.received(_packet(type=filesync.REQ, ID=2))
    (failed,) = _drain(call)
    assert failed.type == filesync.ERR and b"a.txt" in failed.data
    assert errors and "a.txt" in errors[0]
    assert call.outcome()[0] == grpc_session.Code.INTERNAL  # type: ignore[index]


def test_an_unknown_folder_is_not_found(tmp_path):
    open_call = filesync.opener({"context": _project(tmp_path)}, lambda _: None)
    with pytest.raises(grpc_session.GrpcFailure) as failure:
        open_call({"dir-name": ["elsewhere"]})
    assert failure.value.code == grpc_session.Code.NOT_FOUND


def test_a_call_over_the_session_brings_a_file_larger_than_the_window(tmp_path):
    ours, theirs = socket.socketpair()
    folder = _project(tmp_path)
    opener = filesync.opener({"context": folder}, lambda _: None)
    server = grpc_session.Server(Wire(ours), {}, {filesync.METHODS[0]: opener})
    thread = serving(server)
    daemon = Daemon(theirs)
    stream = daemon.open(filesync.METHODS[0], [("dir-name", "context")])
    received: dict[int, bytes] = {}
    numbers: dict[str, int] = {}

    def on_message(message: bytes) -> None:
        packet = _parse(message)
        if packet.type == filesync.STAT and packet.HasField("stat"):
            numbers[packet.stat.path.decode()] = len(numbers)
        elif packet.type == filesync.STAT:  # the list ended: ask for the big file
            daemon.send(stream, _packet(type=filesync.REQ, ID=numbers["a/big"]))
        elif packet.type == filesync.DATA and packet.data:
            received[packet.ID] = received.get(packet.ID, b"") + packet.data
        elif packet.type == filesync.DATA:
            daemon.send(stream, _packet(type=filesync.FIN))

    trailers = daemon.receive(stream, on_message)
    assert trailers["grpc-status"] == "0"
    assert received == {numbers["a/big"]: (tmp_path / "a" / "big").read_bytes()}
    assert server.calls == [filesync.METHODS[0]]
    server.close()
    thread.join(5)
    assert server.ended is None
    theirs.close()


def test_a_name_that_is_not_utf8_goes_as_its_bytes(tmp_path):
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: not UTF-8
    (tmp_path / name).write_text("x")
    folder = filesync.Folder(str(tmp_path), (name,), None)
    call = filesync.DiffCopy(folder.entries(None), lambda _: None)
    stat_packet, _ = _drain(call)
    assert stat_packet.stat.path == b"caf\xe9.txt"
    assert stat_packet.stat.SerializeToString().startswith(b"\x0a\x08caf\xe9.txt")


def test_a_request_the_call_refuses_ends_that_call_not_the_session(tmp_path):
    ours, theirs = socket.socketpair()
    opener = filesync.opener({"context": _project(tmp_path)}, lambda _: None)
    server = grpc_session.Server(Wire(ours), {}, {filesync.METHODS[0]: opener})
    thread = serving(server)
    daemon = Daemon(theirs)
    stream = daemon.open(filesync.METHODS[0], [("dir-name", "context")])
    daemon.send(stream, _packet(type=filesync.REQ, ID=99))  # no such file
    theirs.sendall(daemon.conn.data_to_send())
    trailers = daemon.receive(stream, lambda _: None)
    assert trailers["grpc-status"] == str(int(grpc_session.Code.INTERNAL))
    assert "invalid file request 99" in trailers["grpc-message"]
    assert thread.is_alive() and server.ended is None  # the session goes on
    server.close()
    thread.join(5)
    theirs.close()
