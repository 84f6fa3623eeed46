"""The build context sent through the session, as the docker CLI sends it with BuildKit.

The daemon asks for a directory by name with `moby.filesync.v1.FileSync/DiffCopy` ("context";
"dockerfile", the folder of the Dockerfile), metadata `dir-name` and, for a part of it,
`followpaths`. The call's messages are tonistiigi/fsutil's packets: hubtasks sends one STAT
per entry in walk order (each folder's entries sorted by name, a folder before what it holds)
and an empty STAT to end the list; the daemon compares them with its copy from the last build
of the same folder (the session's shared key names it) and asks (REQ, by the entry's number)
only for the files whose size, mtime or mode changed; each comes back as DATA packets, an empty
one ending it; FIN ends the call both ways. A warm build sends only what changed.

What hubtasks sends is what it decided and hashed: the files `.dockerignore` lets through
(`BuildContext.paths`, the folders that hold them added), uid/gid 0, and — when the context
has one mtime for every entry (the commit time, SOURCE_DATE_EPOCH) — that mtime. The daemon
keeps only whole seconds in an image layer, so the nanoseconds are free to tell the daemon's
copy that a file changed: they are taken from the file's inode, size, mtime and ctime (any
write changes one), so an edit that keeps the size is still sent.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from hubtasks.build.buildkit import messages
from hubtasks.build.buildkit.session import Code, GrpcFailure, StreamOpener

STAT, REQ, DATA, FIN, ERR = range(5)  # fsutil's PacketType
DATA_CHUNK = 1 << 16
METHODS = ("/moby.filesync.v1.FileSync/DiffCopy",)
_NANO = 10**9

# Go's os.FileMode type bits (fsutil sends modes as Go has them, not as st_mode).
_GO_TYPE = {
    stat.S_IFDIR: 1 << 31,
    stat.S_IFLNK: 1 << 27,
    stat.S_IFBLK: 1 << 26,
    stat.S_IFIFO: 1 << 25,
    stat.S_IFCHR: (1 << 26) | (1 << 21),
    stat.S_IFREG: 0,
}
# ModeDir | ModeSymlink | ModeDevice | ModeNamedPipe | ModeSocket | ModeCharDevice | ModeIrregular
_GO_TYPE_BITS = sum(1 << bit for bit in (31, 27, 26, 25, 24, 21, 19))
_GO_SPECIAL = ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20))


@dataclass(frozen=True)
class Entry:
    """One entry as sent: a STAT packet, and for a regular file where its bytes come from."""

    path: str  # relative, "/"-separated
    mode: int  # Go's os.FileMode
    size: int = 0
    mtime_ns: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    source: str | None = None  # the file to read
    data: bytes | None = None  # or these bytes

    @property
    def regular(self) -> bool:
        return self.mode & _GO_TYPE_BITS == 0

    def stat_message(self) -> object:
        return messages.make(
            "fsutil.types.Stat",
            path=_raw(self.path),
            mode=self.mode,
            size=self.size,
            modTime=self.mtime_ns,
            linkname=_raw(self.linkname),
            devmajor=self.devmajor,
            devminor=self.devminor,
        )


def _raw(name: str) -> bytes:
    """A name as the file system holds it (Python lists undecodable bytes as surrogates)."""
    return name.encode("utf-8", "surrogateescape")


def go_mode(st_mode: int) -> int | None:
    """`st_mode` as Go's os.FileMode; None for a socket (never sent)."""
    kind = _GO_TYPE.get(stat.S_IFMT(st_mode))
    if kind is None:
        return None
    special = sum(bit for flag, bit in _GO_SPECIAL if st_mode & flag)
    return kind | special | stat.S_IMODE(st_mode) & 0o777


def walk_key(path: str) -> list[bytes]:
    """The order of a walk: a folder's entries by name (bytes), each folder before its own."""
    return [part.encode("utf-8", "surrogateescape") for part in path.split("/")]


def with_parents(paths: Iterable[str]) -> list[str]:
    """`paths` and every folder above them, in walk order."""
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")
        found.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return sorted(found, key=walk_key)


def stamp(info: os.stat_result, mtime: int | None) -> int:
    """The mtime sent for an entry: the file's own, or `mtime` (seconds) with nanoseconds
    that change whenever the file is written (inode, size, mtime and ctime)."""
    if mtime is None:
        return info.st_mtime_ns
    if stat.S_ISDIR(info.st_mode):
        return mtime * _NANO
    marker = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    return mtime * _NANO + _nanos(marker.encode())


def _nanos(identity: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "big") % _NANO


def entry_of(root: str, relative: str, mtime: int | None) -> Entry | None:
    """The entry of one path under `root` (None: gone since the walk, or a socket)."""
    full = os.path.join(root, relative)
    try:
        info = os.lstat(full)
        link = os.readlink(full) if stat.S_ISLNK(info.st_mode) else ""
    except OSError:
        return None
    mode = go_mode(info.st_mode)
    if mode is None:
        return None
    special = stat.S_ISBLK(info.st_mode) or stat.S_ISCHR(info.st_mode)
    return Entry(
        path=relative,
        mode=mode,
        size=0 if stat.S_ISDIR(info.st_mode) else info.st_size,
        mtime_ns=stamp(info, mtime),
        linkname=link,
        devmajor=os.major(info.st_rdev) if special else 0,
        devminor=os.minor(info.st_rdev) if special else 0,
        source=full if stat.S_ISREG(info.st_mode) else None,
    )


def data_entry(name: str, data: bytes, perm: int, mtime: int | None) -> Entry:
    """A file sent from memory (the Dockerfile exactly as it was read and hashed)."""
    base = mtime if mtime is not None else 0
    return Entry(
        path=name,
        mode=perm & 0o777,
        size=len(data),
        mtime_ns=base * _NANO + _nanos(data),
        data=data,
    )


def followed(paths: Sequence[str], follow: Iterable[str]) -> list[str]:
    """The paths a `followpaths` request wants: each named path and what a named folder holds
    (their folders are added by `with_parents`)."""
    wanted = {os.path.normpath(path.lstrip("/")) for path in follow}
    return [
        path
        for path in paths
        if path in wanted or any(path.startswith(name + "/") for name in wanted)
    ]


class Folder:
    """A folder the daemon may ask for: its paths (already filtered by `.dockerignore`), read
    when asked for; `extra` entries (the Dockerfile from memory) take their path's place."""

    def __init__(
        self,
        root: str,
        paths: Sequence[str],
        mtime: int | None,
        extra: Mapping[str, Entry] | None = None,
    ) -> None:
        self.root, self.paths, self.mtime = root, paths, mtime
        self.extra = dict(extra or {})
        self.requested: list[str] = []  # the files the daemon asked for, in order

    def entries(self, follow: Sequence[str] | None) -> Iterator[Entry]:
        names = [*self.paths, *(name for name in self.extra if name not in self.paths)]
        chosen = followed(names, follow) if follow else names
        for path in with_parents(chosen):
            found = self.extra.get(path) or entry_of(self.root, path, self.mtime)
            if found is not None:
                yield found


class DiffCopy:
    """One `DiffCopy` call: the STAT list, then the files asked for, then FIN. Requested
    files go first, so the daemon is never left waiting for data behind the list."""

    def __init__(
        self,
        entries: Iterator[Entry],
        on_error: Callable[[str], None],
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self._entries = entries
        self._on_error = on_error
        self._on_request = on_request
        self._number = 0
        self._files: dict[int, Entry] = {}
        self._asked: deque[tuple[int, Entry]] = deque()
        self._reading: tuple[int, Entry, BinaryIO] | None = None
        self._listed = False
        self._finish = False
        self._ended: tuple[Code, str] | None = None

    def received(self, message: bytes) -> None:
        try:
            packet = messages.parse("fsutil.types.Packet", message)
        except messages.MessageError as error:
            raise GrpcFailure(Code.INTERNAL, str(error)) from None
        kind = int(getattr(packet, "type", 0))
        if kind == REQ:
            number = int(getattr(packet, "ID", 0))
            entry = self._files.pop(number, None)  # each file is sent once
            if entry is None:
                raise GrpcFailure(Code.INTERNAL, f"invalid file request {number}")
            self._asked.append((number, entry))
            if self._on_request is not None:
                self._on_request(entry.path)
        elif kind == FIN:
            self._finish = True
        elif kind == ERR:  # the daemon failed on its side; its build error says why
            self._ended = (Code.OK, "")

    def next_message(self) -> bytes | None:
        if self._ended is not None:
            return None
        data = self._next_data()
        if data is not None:
            return data
        if not self._listed:
            return self._next_stat()
        if self._finish:
            self._ended = (Code.OK, "")
            return _packet(type=FIN)
        return None

    def outcome(self) -> tuple[Code, str] | None:
        return self._ended

    def finished_sending(self) -> None:
        """Nothing to do: the daemon's FIN, not its end of sending, ends the call."""

    def closed(self) -> None:
        if self._reading is not None:
            self._reading[2].close()
            self._reading = None

    def _next_stat(self) -> bytes:
        entry = next(self._entries, None)
        if entry is None:
            self._listed = True
            return _packet(type=STAT)
        if entry.regular:
            self._files[self._number] = entry
        self._number += 1
        return _packet(type=STAT, stat=entry.stat_message())

    def _next_data(self) -> bytes | None:
        while self._reading is None:
            if not self._asked:
                return None
            number, entry = self._asked.popleft()
            try:
                opened = _open(entry)
            except OSError as error:
                return self._fail(entry, error)
            self._reading = (number, entry, opened)
        number, entry, reader = self._reading
        try:
            chunk = reader.read(DATA_CHUNK)
        except OSError as error:
            return self._fail(entry, error)
        if not chunk:
            reader.close()
            self._reading = None
        return _packet(type=DATA, ID=number, data=chunk)

    def _fail(self, entry: Entry, error: OSError) -> bytes:
        what = entry.source or entry.path
        message = f"cannot read {what} in the build context ({error.strerror or error})"
        self._on_error(message)
        self._ended = (Code.INTERNAL, message)
        return _packet(type=ERR, data=message.encode())


def _open(entry: Entry) -> BinaryIO:
    """The entry's bytes to read (closed by `DiffCopy` once sent)."""
    if entry.source is None:
        return io.BytesIO(entry.data or b"")
    return open(entry.source, "rb")  # read across calls, closed by DiffCopy when sent


def _packet(**fields: object) -> bytes:
    return bytes(messages.make("fsutil.types.Packet", **fields).SerializeToString())


def opener(folders: Mapping[str, Folder], on_error: Callable[[str], None]) -> StreamOpener:
    """The `DiffCopy` call's opener: the folder its `dir-name` names, or NOT_FOUND."""

    def open_call(metadata: Mapping[str, list[str]]) -> DiffCopy:
        name = (metadata.get("dir-name") or [""])[0]
        folder = folders.get(name)
        if folder is None:
            raise GrpcFailure(Code.NOT_FOUND, f"no access allowed to dir {name!r}")
        entries = folder.entries(metadata.get("followpaths"))
        return DiffCopy(entries, on_error, folder.requested.append)

    return open_call
