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

from hubtasks.errors import ConfigError

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
IGNORE_FILE = ".dockerignore"
# Bump when what goes into the inputs digest changes: old images then count as "other inputs".
INPUTS_VERSION = "hubtasks-inputs-v1"
_FROM_SCRATCH = re.compile(rb"^(\s*FROM\s+(?:--\S+\s+)*)scratch(\s|$)", re.I | re.M)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)
_ESCAPE_DIRECTIVE = re.compile(rb"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
_DIRECTIVE = re.compile(rb"^#\s*[A-Za-z]+\s*=")  # `# escape=`, `# syntax=`: a parser directive


def ignore_patterns(context: Path) -> list[str]:
    """`.dockerignore` lines as the SDK reads them (no blanks, no comments)."""
    ignore_file = context / IGNORE_FILE
    if not ignore_file.is_file():
        return []
    # Docker drops a UTF-8 BOM; bytes that are not UTF-8 stay as they are, to match the same
    # bytes in file names (which Python lists with surrogateescape).
    text = ignore_file.read_bytes().removeprefix(b"\xef\xbb\xbf")
    lines = text.decode("utf-8", errors="surrogateescape").splitlines()
    return [line.strip() for line in lines if line.strip() and line.strip()[0] != "#"]


@dataclass
class PendingInputs:
    """An inputs digest computed while the context is streamed (`BuildContext.stream`): the
    files are hashed as they are sent, and the label that carries the digest goes into the
    generated Dockerfile, the archive's last entry. `digest_of` turns the files' digest
    (`files_digest`) into the inputs digest; `files` and `digest` are set once the stream
    has ended."""

    label: str
    digest_of: Callable[[bytes], str]
    files: bytes | None = None
    digest: str | None = None


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
    # The inputs digest to compute while streaming, and to add to the labels (None: known
    # before, already among `labels`).
    pending: PendingInputs | None = None

    @property
    def dockerfile_bytes(self) -> bytes:
        if self.dockerfile_data is not None:
            return self.dockerfile_data
        return self.dockerfile.read_bytes()

    @property
    def final_labels(self) -> dict[str, str]:
        """The labels the image gets: `labels`, and the pending inputs digest once known."""
        pending = self.pending
        if pending is None or pending.digest is None:
            return dict(self.labels)
        return {**self.labels, pending.label: pending.digest}

    def generated_dockerfile(self, labels: Mapping[str, str] | None = None) -> bytes:
        """The user's Dockerfile with the labels (`final_labels` by default) appended as one
        `LABEL` instruction."""
        labels = self.final_labels if labels is None else labels
        text = self.dockerfile_bytes
        if self.scratch:
            text = _FROM_SCRATCH.sub(rb"\1" + self.scratch.encode() + rb"\2", text)
        if not labels:
            return text
        escape = _escape_character(text)
        words = " ".join(
            f"{_quote(name, escape)}={_quote(value, escape)}" for name, value in labels.items()
        )
        text = _last_instruction_ended(text, escape)
        separator = b"" if text.endswith(b"\n") else b"\n"
        return text + separator + f"LABEL {words}\n".encode()

    @property
    def dockerfile_name(self) -> str:
        """The generated Dockerfile's name in the archive, named after its content (without
        a pending digest: the name goes into the streamed `.dockerignore` before the digest is
        known)."""
        return _generated_name(self.generated_dockerfile(self.labels))

    def stream(self) -> Iterator[bytes]:
        """The tar archive, block by block, as the daemon reads it. With `pending`, each
        entry is hashed as it is sent (`files_digest`, from the same reads) and the generated
        Dockerfile, the last entry, carries the digest."""
        name = self.dockerfile_name
        hashing = _EntryHasher() if self.pending is not None else None
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
            if relative == IGNORE_FILE and (info.isreg() or info.islnk()):
                ignore_sent = True
                yield from _rewritten_ignore(full, info, headers, name)
                continue
            yield _header(info)
            if hashing and not is_git_metadata(relative):
                yield from hashing.entry(full, relative, info)
            elif info.isreg() and info.size:
                yield from _file_data(full, info.size)
        if not ignore_sent:
            yield from self._extra(IGNORE_FILE, _ignore_file_with(None, name))
        if hashing and self.pending is not None:
            self.pending.files = hashing.digest()
            self.pending.digest = self.pending.digest_of(self.pending.files)
        yield from self._extra(name, self.generated_dockerfile())
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
        self,
        *,
        build_args: Mapping[str, str],
        platform: str,
        files: bytes | None = None,
        options: Mapping[str, str] | None = None,
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
        # What else decides the image (BuildKit: the target stage, secret and ssh ids — never
        # a secret's value); none given, the digest is what it was before they existed.
        for name, value in sorted((options or {}).items()):
            if value:
                put(b"option", name, value)
        put(b"files", files if files is not None else self.files_digest())
        return "sha256:" + h.hexdigest()

    def files_digest(self) -> bytes:
        """sha256 over every entry as sent: path, type, permission bits, file contents and
        link targets — not mtimes or owners, and not git's own metadata (`is_git_metadata`)."""
        h = hashlib.sha256()
        put = _framed(h)
        for relative in self.paths:
            if is_git_metadata(relative) or relative == IGNORE_FILE:
                continue
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
            elif not stat.S_ISSOCK(info.st_mode):  # a FIFO or a device: sent, so an input
                put(b"special", relative, mode, f"{stat.S_IFMT(info.st_mode):o}")
        return h.digest()


class _EntryHasher:
    """`files_digest` computed from the entries as `stream` sends them: the same framing,
    each regular file's sha256 taken from the chunks sent (a hard link's, which carries no
    data in the archive, read from the file)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._put = _framed(self._hash)

    def entry(self, full: str, relative: str, info: tarfile.TarInfo) -> Iterator[bytes]:
        """Hash one entry, yielding its data (regular files) as `_file_data` does."""
        mode = f"{stat.S_IMODE(info.mode):o}"
        if info.issym():
            self._put(b"link", relative, mode, info.linkname)
        elif info.isdir():
            self._put(b"dir", relative, mode)
        elif info.islnk():  # a hard link to a file sent earlier: no data of its own
            self._put(b"file", relative, mode, _file_sha256(full))
        elif info.isreg():
            content = hashlib.sha256()
            if info.size:
                yield from _file_data(full, info.size, sent=content.update)
            self._put(b"file", relative, mode, content.digest())
        else:  # a FIFO or a device (a tar cannot hold a socket: never here)
            self._put(b"special", relative, mode, f"{stat.S_IFMT(os.lstat(full).st_mode):o}")

    def digest(self) -> bytes:
        return self._hash.digest()


def is_git_metadata(relative: str) -> bool:
    """Whether a context path is inside a `.git` folder (or is one): sent like any file, but
    not an input. Two clones of one commit differ there (index, packs, logs, the refs of every
    tag made since), and `git status` alone rewrites the index: hashed, it would call the
    same commit other inputs on every machine but the one that released it."""
    return ".git" in relative.split("/")


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
    """The Dockerfile's escape character (`# escape=` parser directive, else backslash).
    Directives come first (after a UTF-8 BOM, as Docker reads it): any other line — a plain
    comment, an empty line, an instruction — ends them."""
    for line in dockerfile.removeprefix(b"\xef\xbb\xbf").splitlines():
        match = _ESCAPE_DIRECTIVE.match(line.strip())
        if match:
            return match.group(1).decode()
        if not _DIRECTIVE.match(line.strip()):
            break
    return "\\"


def _last_instruction_ended(text: bytes, escape: str) -> bytes:
    """`text` with a line continuation at its very end removed (the escape character last on
    the last instruction line, maybe followed by comments and blank lines): the appended
    `LABEL` would otherwise become part of that instruction (`RUN echo hi` and an escape).
    Docker ends such an instruction at the end of the file: the same instruction either way."""
    lines = text.splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if stripped.endswith(escape.encode()):
            lines[index] = lines[index].rstrip()[: -len(escape.encode())] + b"\n"
        break
    return b"".join(lines)


def _quote(value: str, escape: str) -> str:
    """A double-quoted Dockerfile word: quotes, escapes and `$` are escaped, so the label
    holds exactly `value` (no variable expansion)."""
    if "\n" in value or "\r" in value:  # a Dockerfile word cannot hold one: no silent change
        raise ConfigError(f"label {value!r}: a label name or value cannot hold a line break")
    out = []
    for char in value:
        if char in ('"', "$", escape):
            out.append(escape + char)
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _rewritten_ignore(
    full: str, info: tarfile.TarInfo, headers: tarfile.TarFile, dockerfile_name: str
) -> Iterator[bytes]:
    """`.dockerignore` sent rewritten, as a file of its own: not a hard link to an earlier
    entry, and no later hard link to it may carry the rewritten bytes into the image. Not an
    input itself: it never reaches the image, and what it lets through is hashed file by
    file."""
    try:
        status = os.lstat(full)
        original = Path(full).read_bytes()
    except OSError as error:
        raise _unreadable(full, error) from None
    getattr(headers, "inodes", {}).pop((status.st_ino, status.st_dev), None)
    data = _ignore_file_with(original, dockerfile_name)
    info.type, info.linkname, info.size = tarfile.REGTYPE, "", len(data)
    yield _header(info)
    yield data + _padding(len(data))


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
    except OSError as error:
        raise _unreadable(path, error) from None
    return h.digest()


def _unreadable(path: str, error: OSError) -> ConfigError:
    """A context file that cannot be read: the daemon would get the wrong bytes (the CLI
    refuses to build too)."""
    return ConfigError(
        f"cannot read {path} in the build context ({error.strerror or error}); fix its "
        f"permissions or list it in {IGNORE_FILE}"
    )


def _file_data(
    path: str, size: int, sent: Callable[[bytes], None] | None = None
) -> Iterator[bytes]:
    """Exactly `size` bytes (the header promised them), then the padding to a block; `sent`
    sees each chunk of the file's own bytes."""
    left = size
    try:
        with open(path, "rb") as stream:
            while left:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    raise ConfigError(
                        f"{path} shrank while the build context was sent; build again once "
                        "nothing writes to it"
                    )
                left -= len(chunk)
                if sent is not None:
                    sent(chunk)
                yield chunk
    except OSError as error:
        raise _unreadable(path, error) from None
    yield _padding(size)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)
