"""The build context as a tar stream: what `docker build` sends, without a temporary file.

The Docker SDK writes the whole context to a temporary tar file before uploading it (disk equal
to the context, and time to write and delete it); this streams the same archive — the same
`.dockerignore` rules, through the SDK's own matcher — file by file in 1 MiB chunks while it
uploads. Memory stays flat whatever the context size.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


def ignore_patterns(context: Path) -> list[str]:
    """`.dockerignore` lines as the SDK reads them (no blanks, no comments)."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and line.strip()[0] != "#"]


def build_context(context: Path, dockerfile: Path) -> tuple[Iterator[bytes], str]:
    """The tar stream and the Dockerfile's name inside it. A Dockerfile outside the context
    is added under a random name, as the SDK and the CLI do."""
    from docker.utils.build import exclude_paths

    root = context.resolve()
    dockerfile = dockerfile.resolve()
    extra: tuple[str, bytes] | None = None
    try:
        name = dockerfile.relative_to(root).as_posix()
    except ValueError:
        # Named after its content, not at random: the same Dockerfile keeps `COPY .` cached.
        data = dockerfile.read_bytes()
        name = f".dockerfile.{hashlib.sha256(data).hexdigest()[:20]}"
        extra = (name, data)
    paths = sorted(exclude_paths(str(root), ignore_patterns(context), dockerfile=name))
    return _stream(root, paths, extra), name


def _stream(root: Path, paths: list[str], extra: tuple[str, bytes] | None) -> Iterator[bytes]:
    headers = tarfile.TarFile(fileobj=io.BytesIO(), mode="w")  # for gettarinfo's hard links
    for relative in paths:
        full = os.path.join(root, relative)
        try:
            info = headers.gettarinfo(full, arcname=relative)
        except OSError:
            continue  # vanished since the walk
        if info is None:  # sockets and other files a tar cannot hold
            continue
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if info.isreg() and info.size:
            yield from _file_data(full, info.size)
    if extra is not None:
        name, data = extra
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        yield data + _padding(len(data))
    yield b"\0" * (2 * _BLOCK)


def _file_data(path: str, size: int) -> Iterator[bytes]:
    """Exactly `size` bytes (the header promised them), then the padding to a block."""
    left = size
    try:
        with open(path, "rb") as stream:
            while left:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    break  # the file shrank while we read it
                left -= len(chunk)
                yield chunk
    except OSError:
        pass
    if left:
        yield b"\0" * left
    yield _padding(size)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)
