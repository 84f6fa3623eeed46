"""The build context: what is sent to the daemon, streamed as a tar, and what identifies it.

`BuildContext` holds the list of files `.dockerignore` lets through (listed by the engine with
the Docker SDK's own matcher), the user's Dockerfile and the labels. It streams the archive file
by file in 1 MiB chunks while the daemon reads it (memory stays flat whatever the context size,
no temporary file), and it computes the build-inputs digest that says "this is the same
release" across machines.

Two things differ from a plain `docker build`, both so that one commit builds the same image
everywhere, fast:
- every entry gets the same mtime (the commit time or SOURCE_DATE_EPOCH) and uid/gid 0 with no
  user or group names, so `COPY` layers do not carry the checkout's time or the runner's user;
- the labels go into the Dockerfile as one `LABEL` instruction appended to a copy of it
  (the classic builder makes one container per label given through the API). The copy travels
  under a name of its own, listed with `.dockerignore` itself in the streamed `.dockerignore`
  — what the Docker CLI does with a Dockerfile from outside the context — so the daemon drops
  both after reading them and neither reaches the image. The file on disk is never changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
IGNORE_FILE = ".dockerignore"
# Bump when what goes into the inputs digest changes: old images then count as "other inputs".
INPUTS_VERSION = "hubtasks-inputs-v1"
_FROM_SCRATCH = re.compile(rb"^(\s*FROM\s+(?:--\S+\s+)*)scratch(\s|$)", re.I | re.M)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)
_ESCAPE_DIRECTIVE = re.compile(rb"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)


def ignore_patterns(context: Path) -> list[str]:
    """`.dockerignore` lines as the SDK reads them (no blanks, no comments)."""
    ignore_file = context / IGNORE_FILE
    if not ignore_file.is_file():
        return []
    lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and line.strip()[0] != "#"]


@dataclass(frozen=True)
class BuildContext:
    """One build's context: `paths` (relative, sorted) are what `.dockerignore` lets through."""

    root: Path
    paths: tuple[str, ...]
    dockerfile: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    mtime: int | None = None  # every entry's mtime; None keeps the files' own
    # Building for another platform: the empty image of that platform (`scratch_image`) that
    # replaces `FROM scratch`. The classic builder stamps a step without a parent image with
    # the daemon's own platform, so `FROM scratch` + `ARG` + `COPY` fails for arm64 on amd64,
    # and its cache would match such steps across platforms.
    scratch: str | None = None
    # The Dockerfile's bytes as read once for the inputs digest, so that what is hashed is
    # what is built (None: read it from `dockerfile` when needed).
    dockerfile_data: bytes | None = None

    @property
    def dockerfile_bytes(self) -> bytes:
        if self.dockerfile_data is not None:
            return self.dockerfile_data
        return self.dockerfile.read_bytes()

    def generated_dockerfile(self) -> bytes:
        """The user's Dockerfile with the labels appended as one `LABEL` instruction."""
        text = self.dockerfile_bytes
        if self.scratch:
            text = _FROM_SCRATCH.sub(rb"\1" + self.scratch.encode() + rb"\2", text)
        if not self.labels:
            return text
        escape = _escape_character(text)
        words = " ".join(
            f"{_quote(name, escape)}={_quote(value, escape)}" for name, value in self.labels.items()
        )
        separator = b"" if text.endswith(b"\n") else b"\n"
        return text + separator + f"LABEL {words}\n".encode()

    @property
    def dockerfile_name(self) -> str:
        """The generated Dockerfile's name in the archive: named after its content, so the
        same Dockerfile keeps the builder's cache for `COPY .`."""
        return _generated_name(self.generated_dockerfile())

    def stream(self) -> Iterator[bytes]:
        """The tar archive, block by block, as the daemon reads it."""
        generated = self.generated_dockerfile()
        name = _generated_name(generated)
        headers = tarfile.TarFile(fileobj=io.BytesIO(), mode="w")  # for gettarinfo's hard links
        ignore_sent = False
        for relative in self.paths:
            full = os.path.join(self.root, relative)
            try:
                # None for sockets and other files a tar cannot hold (typeshed omits it).
                info = cast("tarfile.TarInfo | None", headers.gettarinfo(full, arcname=relative))
            except OSError:
                continue  # vanished since the walk
            if info is None:
                continue
            self._normalise(info)
            if relative == IGNORE_FILE and info.isreg():
                ignore_sent = True
                data = _ignore_file_with(Path(full).read_bytes(), name)
                info.size = len(data)
                yield _header(info)
                yield data + _padding(len(data))
                continue
            yield _header(info)
            if info.isreg() and info.size:
                yield from _file_data(full, info.size)
        if not ignore_sent:
            yield from self._extra(IGNORE_FILE, _ignore_file_with(None, name))
        yield from self._extra(name, generated)
        yield b"\0" * (2 * _BLOCK)

    def _normalise(self, info: tarfile.TarInfo) -> None:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if self.mtime is not None:
            info.mtime = self.mtime

    def _extra(self, name: str, data: bytes) -> Iterator[bytes]:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        info.mtime = self.mtime if self.mtime is not None else 0
        yield _header(info)
        yield data + _padding(len(data))

    def inputs_digest(
        self, *, build_args: Mapping[str, str], platform: str, files: bytes | None = None
    ) -> str:
        """sha256 of what goes into the build: every entry as sent (`files_digest`), the
        Dockerfile, the build arguments, the target platform and the labels the user chose.
        `files` is this context's `files_digest()` when the caller already has it (one read
        of the context for every platform)."""
        h = hashlib.sha256()
        put = _framed(h)
        put(INPUTS_VERSION, platform)
        put(b"dockerfile", self.dockerfile_bytes)
        for name, value in sorted(build_args.items()):
            put(b"arg", name, value)
        for name, value in sorted(self.labels.items()):
            put(b"label", name, value)
        put(b"files", files if files is not None else self.files_digest())
        return "sha256:" + h.hexdigest()

    def files_digest(self) -> bytes:
        """sha256 over every entry as sent: path, type, permission bits, file contents and
        link targets — not mtimes or owners."""
        h = hashlib.sha256()
        put = _framed(h)
        for relative in self.paths:
            full = os.path.join(self.root, relative)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            mode = f"{stat.S_IMODE(info.st_mode):o}"
            if stat.S_ISLNK(info.st_mode):
                put(b"link", relative, mode, os.readlink(full))
            elif stat.S_ISDIR(info.st_mode):
                put(b"dir", relative, mode)
            elif stat.S_ISREG(info.st_mode):
                put(b"file", relative, mode, _file_sha256(full))
        return h.digest()


def _generated_name(generated: bytes) -> str:
    return f".hubtasks.dockerfile.{hashlib.sha256(generated).hexdigest()[:20]}"


def _framed(h: Any) -> Callable[..., None]:
    """Feed parts to the hash `h`, each prefixed with its length (no two inputs collide)."""

    def put(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
            h.update(len(data).to_bytes(8, "big") + data)

    return put


def combine_inputs(by_platform: Mapping[str, str]) -> str:
    """The inputs digest of a multi-platform image: one over each platform's digest."""
    h = hashlib.sha256(INPUTS_VERSION.encode() + b" index")
    for platform, digest in sorted(by_platform.items()):
        h.update(f"\n{platform}={digest}".encode())
    return "sha256:" + h.hexdigest()


_AUTOMATIC_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)
_ARG = re.compile(rb"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE | re.MULTILINE)


def platform_args(dockerfile: bytes, target: str, build: str) -> dict[str, str]:
    """The build arguments BuildKit sets by itself (TARGETARCH, BUILDPLATFORM, …), for the
    ones the Dockerfile declares with `ARG`: the classic builder leaves them empty."""
    declared = {match.decode() for match in _ARG.findall(dockerfile)}
    values: dict[str, str] = {}
    for prefix, platform in (("TARGET", target), ("BUILD", build)):
        os_name, arch, *variant = platform.split("/")
        values[f"{prefix}PLATFORM"] = platform
        values[f"{prefix}OS"], values[f"{prefix}ARCH"] = os_name, arch
        values[f"{prefix}VARIANT"] = variant[0] if variant else ""
    return {name: values[name] for name in _AUTOMATIC_ARGS if name in declared}


def base_images(dockerfile: bytes) -> list[str]:
    """The images the stages start from: not `scratch`, not an earlier stage, not one named
    through a build argument (`$`)."""
    found: list[str] = []
    stages: set[str] = set()
    for match in _FROM.finditer(dockerfile.decode("utf-8", "replace")):
        image, alias = match.group(1), match.group(2)
        if image.lower() != "scratch" and image not in stages and "$" not in image:
            found.append(image)
        if alias:
            stages.add(alias)
    return list(dict.fromkeys(found))


def scratch_image(platform: str) -> str:
    """The empty image that stands for `FROM scratch` when building for another platform."""
    return f"hubtasks-scratch:{platform.replace('/', '-')}"


def dockerfile_warnings(dockerfile: bytes, name: str) -> list[str]:
    """What the classic builder ignores silently, said out loud."""
    warnings = []
    for number, line in enumerate(dockerfile.splitlines(), 1):
        text = line.strip()
        if re.match(rb"#\s*syntax\s*=", text, re.IGNORECASE) and number <= 5:
            warnings.append(
                f"{name}:{number}: the '# syntax=' directive is ignored: hubtasks builds with "
                "the classic builder, which has no BuildKit frontends"
            )
        if re.match(rb"FROM\s+--platform=", text, re.IGNORECASE):
            warnings.append(
                f"{name}:{number}: 'FROM --platform=…' is ignored by the classic builder; "
                "choose platforms with --platform (HUB_PLATFORMS)"
            )
    return warnings


def _escape_character(dockerfile: bytes) -> str:
    """The Dockerfile's escape character (`# escape=` parser directive, else backslash)."""
    for line in dockerfile.splitlines():
        match = _ESCAPE_DIRECTIVE.match(line.strip())
        if match:
            return match.group(1).decode()
        if not line.strip().startswith(b"#"):
            break  # directives only come before the first instruction
    return "\\"


def _quote(value: str, escape: str) -> str:
    """A double-quoted Dockerfile word: quotes, escapes and `$` are escaped, so the label
    holds exactly `value` (no variable expansion)."""
    out = []
    for char in value:
        if char in ('"', "$", escape):
            out.append(escape + char)
        elif char == "\n":
            out.append(" ")  # a label value cannot hold a newline in a Dockerfile
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _ignore_file_with(existing: bytes | None, dockerfile_name: str) -> bytes:
    """The `.dockerignore` to stream: the user's, plus the generated Dockerfile and itself,
    so that the daemon removes both from the context after reading them."""
    text = existing or b""
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text + f"{IGNORE_FILE}\n{dockerfile_name}\n".encode()


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_sha256(path: str) -> bytes:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                h.update(chunk)
    except OSError:
        pass
    return h.digest()


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
