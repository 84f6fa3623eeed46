"""The streamed build context is a valid tar with what `docker build` would send."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import replace

from hubtasks.build.context import BuildContext, PendingInputs
from hubtasks.daemon.dockerignore import context_paths


def _context(root, dockerfile, labels=None, mtime=None):
    return BuildContext(
        root=root,
        paths=context_paths(root),
        dockerfile=dockerfile,
        labels=labels or {},
        mtime=mtime,
    )


def _archive(root, dockerfile, **options):
    context = _context(root, dockerfile, **options)
    data = b"".join(context.stream())
    assert len(data) % 512 == 0
    return tarfile.open(fileobj=io.BytesIO(data)), context.dockerfile_name


def test_stream_holds_files_links_and_folders_and_honours_dockerignore(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.txt").write_text("c")
    (tmp_path / "empty").mkdir()
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    (tmp_path / "link").symlink_to("a/b/c.txt")
    os.link(tmp_path / "a" / "b" / "c.txt", tmp_path / "hard")
    (tmp_path / ".env").write_text("HUB_TOKEN=x\n")
    (tmp_path / "skip.log").write_text("no")
    (tmp_path / ".dockerignore").write_text("# comment\n.env\n*.log\n")
    tar, name = _archive(tmp_path, tmp_path / "Dockerfile")
    members = {m.name: m for m in tar.getmembers()}
    assert name.startswith(".hubtasks.dockerfile.")
    assert {
        "Dockerfile",
        "a",
        "a/b",
        "a/b/c.txt",
        "empty",
        "big.bin",
        "link",
        "hard",
        ".dockerignore",
    } <= set(members)
    assert ".env" not in members and "skip.log" not in members
    assert members["link"].issym() and members["link"].linkname == "a/b/c.txt"
    assert members["hard"].islnk() or members["a/b/c.txt"].islnk()
    assert members["empty"].isdir()
    assert tar.extractfile("big.bin").read() == (tmp_path / "big.bin").read_bytes()


def test_dockerfile_outside_the_context_is_added_under_a_stable_name(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "f").write_text("x")
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM scratch\nCOPY f /f\n")
    tar, name = _archive(context, outside)
    assert tar.extractfile(name).read() == outside.read_bytes()
    _, again = _archive(context, outside)
    assert again == name  # same content, same name: `COPY .` stays cached
    _, other = _archive(context, outside, labels={"a": "b"})
    assert other != name


def test_labels_become_one_label_line_listed_in_the_streamed_dockerignore(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /src")  # no final newline
    (tmp_path / ".dockerignore").write_text(".env")
    labels = {"team": 'web "blue"', "cost": "$HOME\\x", "org.opencontainers.image.title": "t"}
    tar, name = _archive(tmp_path, tmp_path / "Dockerfile", labels=labels)
    generated = tar.extractfile(name).read().decode()
    assert generated.startswith("FROM scratch\nCOPY . /src\nLABEL ")
    assert generated.count("LABEL") == 1
    assert '"team"="web \\"blue\\""' in generated
    assert '"cost"="\\$HOME\\\\x"' in generated
    ignore = tar.extractfile(".dockerignore").read().decode().splitlines()
    assert ignore == [".env", ".dockerignore", name]
    assert (tmp_path / "Dockerfile").read_text() == "FROM scratch\nCOPY . /src"  # untouched


def test_escape_directive_is_honoured_in_label_quoting(tmp_path):
    (tmp_path / "Dockerfile").write_text("# escape=`\nFROM scratch\n")
    context = _context(tmp_path, tmp_path / "Dockerfile", labels={"a": 'x"$'})
    assert context.generated_dockerfile().decode().endswith('LABEL "a"="x`"`$"\n')


def test_entries_are_owned_by_root_with_the_given_mtime(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    tar, _ = _archive(tmp_path, tmp_path / "Dockerfile", mtime=1_600_000_000)
    for member in tar.getmembers():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 1_600_000_000


def _digest(root, **changes):
    options = {"build_args": {"A": "1"}, "platform": "linux/amd64", **changes}
    labels = options.pop("labels", {"team": "web"})
    return _context(root, root / "Dockerfile", labels=labels).inputs_digest(**options)


def test_inputs_digest_follows_contents_modes_links_args_platform_and_labels(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (tmp_path / "app").write_text("v1")
    (tmp_path / "link").symlink_to("app")
    base = _digest(tmp_path)
    os.utime(tmp_path / "app", (1, 1))  # mtimes do not count
    assert _digest(tmp_path) == base
    (tmp_path / "app").chmod(0o755)
    assert _digest(tmp_path) != base
    (tmp_path / "app").chmod(0o644)
    base = _digest(tmp_path)
    assert _digest(tmp_path, build_args={"A": "2"}) != base
    assert _digest(tmp_path, platform="linux/arm64") != base
    assert _digest(tmp_path, labels={"team": "db"}) != base
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("Dockerfile")
    assert _digest(tmp_path) != base
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("app")
    assert _digest(tmp_path) == base
    (tmp_path / "app").write_text("v2")
    assert _digest(tmp_path) != base
    (tmp_path / "app").write_text("v1")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /app/\n")
    assert _digest(tmp_path) != base


def test_ignored_files_do_not_count_in_the_inputs(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    base = _digest(tmp_path)
    (tmp_path / "debug.log").write_text("noise")
    assert _digest(tmp_path) == base


def test_dockerignore_excluding_everything_still_sends_the_generated_dockerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*\n")
    tar, name = _archive(tmp_path, tmp_path / "Dockerfile")
    assert set(tar.getnames()) == {".dockerignore", name}


def test_from_scratch_stands_for_the_platforms_empty_image_only_when_asked(tmp_path):
    text = (
        "# escape=\\\nFROM scratch AS base\nARG TARGETARCH\nfrom  --platform=x scratch\n"
        "FROM scratchy\n"
    )
    (tmp_path / "Dockerfile").write_text(text)
    plain = _context(tmp_path, tmp_path / "Dockerfile")
    assert plain.generated_dockerfile().decode() == text
    other = BuildContext(
        root=tmp_path,
        paths=(),
        dockerfile=tmp_path / "Dockerfile",
        scratch="hubtasks-scratch:linux-arm64",
    )
    lines = other.generated_dockerfile().decode().splitlines()
    assert lines[1] == "FROM hubtasks-scratch:linux-arm64 AS base"
    assert lines[3] == "from  --platform=x hubtasks-scratch:linux-arm64"
    assert lines[4] == "FROM scratchy"
    assert len(lines) == len(text.splitlines())  # line numbers stay the user's


def _tree(root):
    """Every kind of entry the inputs digest covers, and a .dockerignore."""
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /src\n")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.txt").write_text("c")
    (root / "empty-folder").mkdir()
    (root / "empty-file").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (root / "link").symlink_to("a/b/c.txt")
    os.link(root / "a" / "b" / "c.txt", root / "hard")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".dockerignore").write_text("*.log\n")


def _pending_context(root, labels):
    """A context whose inputs digest is computed while it is streamed, as `gather` makes it."""
    draft = _context(root, root / "Dockerfile", labels={"user": "label"}, mtime=1)

    def digest_of(files):
        return draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64", files=files)

    pending = PendingInputs(label="dev.hubtasks.inputs", digest_of=digest_of)
    return draft, replace(draft, labels=labels, pending=pending)


def test_the_digest_hashed_while_streaming_is_the_one_hashed_before(tmp_path):
    _tree(tmp_path)
    draft, context = _pending_context(tmp_path, {"org.opencontainers.image.version": "v1"})
    before = draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64")
    name = context.dockerfile_name  # known before the digest: the .dockerignore lists it
    assert context.pending.digest is None
    with tarfile.open(fileobj=io.BytesIO(b"".join(context.stream()))) as archive:
        members = archive.getmembers()
        dockerfile = archive.extractfile(name).read().decode()
        ignored = archive.extractfile(".dockerignore").read().decode().splitlines()
    assert context.pending.digest == before
    assert context.pending.files == draft.files_digest()
    # The generated Dockerfile is the archive's last entry and carries the digest.
    assert members[-1].name == name
    assert dockerfile.endswith(
        '\nLABEL "org.opencontainers.image.version"="v1" "dev.hubtasks.inputs"="' + before + '"\n'
    )
    assert name in ignored
    assert context.final_labels == {
        "org.opencontainers.image.version": "v1",
        "dev.hubtasks.inputs": before,
    }


def test_a_change_streamed_changes_the_digest_as_it_would_before(tmp_path):
    _tree(tmp_path)
    first = _pending_context(tmp_path, {})[1]
    b"".join(first.stream())
    (tmp_path / "run.sh").chmod(0o644)  # a permission bit is an input
    draft, second = _pending_context(tmp_path, {})
    b"".join(second.stream())
    assert second.pending.digest != first.pending.digest
    assert second.pending.digest == draft.inputs_digest(
        build_args={"A": "1"}, platform="linux/amd64"
    )


def test_git_metadata_is_sent_but_is_not_an_input(tmp_path):
    """Two clones of one commit differ in `.git` (index, packs, logs, tag refs), and `git
    status` rewrites the index: the same commit must be the same inputs everywhere."""
    import subprocess

    _tree(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    draft, context = _pending_context(tmp_path, {})
    with tarfile.open(fileobj=io.BytesIO(b"".join(context.stream()))) as archive:
        sent = archive.getnames()
    assert ".git/HEAD" in sent  # what `docker build` would send: `.dockerignore` decides
    before = draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64")
    assert context.pending.digest == before
    for args in (["tag", "v9"], ["gc", "-q"], ["status", "--short"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / ".git" / "sub").mkdir(exist_ok=True)
    (tmp_path / ".git" / "sub" / "new").write_text("anything")
    draft, again = _pending_context(tmp_path, {})
    b"".join(again.stream())
    assert again.pending.digest == before
    assert draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64") == before
    (tmp_path / "run.sh").write_text("changed\n")  # a tracked file is still an input
    draft, _ = _pending_context(tmp_path, {})
    assert draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64") != before


# --- what a tester found against `docker build` (session 5) ---------------------------------


def _digests(root):
    """The inputs digest computed before a build and while streaming: they must agree."""
    draft, context = _pending_context(root, {})
    b"".join(context.stream())
    before = draft.inputs_digest(build_args={"A": "1"}, platform="linux/amd64")
    assert context.pending.digest == before
    return before


def test_a_file_that_cannot_be_read_is_an_error_not_zeros(tmp_path, monkeypatch):
    """It went into the image as zero bytes and the release was published (the CLI refuses)."""
    import builtins

    import pytest

    from hubtasks.errors import ConfigError

    _tree(tmp_path)
    real_open = builtins.open
    locked = str(tmp_path / "run.sh")

    def guarded(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    draft, context = _pending_context(tmp_path, {})
    with pytest.raises(ConfigError, match=r"cannot read .*run.sh in the build context"):
        b"".join(context.stream())
    with pytest.raises(ConfigError, match="permission denied|Permission denied"):
        draft.files_digest()


def test_the_ignore_file_is_read_as_docker_reads_it(tmp_path):
    """A UTF-8 BOM lost the first pattern (an excluded folder reached the image); a pattern
    that is not UTF-8 never matched the same bytes in a file name."""
    from hubtasks.build.context import ignore_patterns

    (tmp_path / ".dockerignore").write_bytes(b"\xef\xbb\xbfsecrets\nbad-\xff-name\n# note\n")
    patterns = ignore_patterns(tmp_path)
    assert patterns[0] == "secrets"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("k")
    (tmp_path / os.fsdecode(b"bad-\xff-name")).write_text("x")
    (tmp_path / "kept").write_text("y")
    assert set(context_paths(tmp_path)) == {"kept", ".dockerignore"}


def test_the_escape_directive_is_found_where_docker_finds_it(tmp_path):
    from hubtasks.build.context import _escape_character

    assert _escape_character(b"\xef\xbb\xbf# escape=`\nFROM scratch\n") == "`"
    assert _escape_character(b"# hello\n# escape=`\nFROM scratch\n") == "\\"  # too late
    assert _escape_character(b"# syntax=x\n# escape=`\nFROM scratch\n") == "`"


def test_a_dockerfile_ending_in_a_line_continuation_keeps_the_label_line_apart(tmp_path):
    """`RUN echo hi > /hi \\` last: the LABEL line became part of the RUN (no labels, and
    the label text written into /hi)."""
    (tmp_path / "Dockerfile").write_bytes(b"FROM scratch\nRUN echo hi > /hi \\\n# trailing\n")
    context = _context(tmp_path, tmp_path / "Dockerfile", labels={"a": "b"})
    generated = context.generated_dockerfile().decode()
    assert generated.splitlines()[1].rstrip() == "RUN echo hi > /hi"  # no escape at its end
    assert generated.endswith('\nLABEL "a"="b"\n')


def test_a_hard_link_to_the_ignore_file_carries_the_users_bytes(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /src\n")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    os.link(tmp_path / ".dockerignore", tmp_path / "zz-copy")
    archive, _ = _archive(tmp_path, tmp_path / "Dockerfile")
    members = {m.name: m for m in archive.getmembers()}
    assert members["zz-copy"].isreg()  # not a link to the rewritten entry
    assert archive.extractfile("zz-copy").read() == b"*.log\n"


def test_a_fifo_is_an_input_and_the_ignore_files_comments_are_not(tmp_path):
    _tree(tmp_path)
    before = _digests(tmp_path)
    (tmp_path / ".dockerignore").write_text("# a comment only\n*.log\n")
    assert _digests(tmp_path) == before  # the same files are sent
    os.mkfifo(tmp_path / "pipe")
    assert _digests(tmp_path) != before  # a FIFO is sent, and built into the image


def test_a_label_with_a_line_break_is_refused_not_changed(tmp_path):
    import pytest

    from hubtasks.errors import ConfigError

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    context = _context(tmp_path, tmp_path / "Dockerfile", labels={"a": "x\ny"})
    with pytest.raises(ConfigError, match="cannot hold a line break"):
        context.generated_dockerfile()


def test_ignore_patterns_match_case_sensitively_as_the_cli_does(tmp_path):
    """The SDK lower-cases names and patterns: `build` dropped `Build/Main.java` and `*.MD`
    dropped README.md, both of which `docker build` sends."""
    (tmp_path / ".dockerignore").write_text("build\n*.MD\n!keep.MD\n")
    (tmp_path / "Build").mkdir()
    (tmp_path / "Build" / "Main.java").write_text("class Main {}")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.o").write_text("o")
    for name in ("README.md", "NOTES.MD", "keep.MD"):
        (tmp_path / name).write_text(name)
    assert set(context_paths(tmp_path)) == {
        ".dockerignore",
        "Build",
        "Build/Main.java",
        "README.md",
        "keep.MD",
    }


def test_a_folder_that_cannot_be_listed_is_one_clear_error(tmp_path, monkeypatch):
    import pytest

    from hubtasks.errors import ConfigError

    (tmp_path / "locked").mkdir()
    real = os.listdir

    def listdir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(ConfigError, match=r"cannot read .*locked in the build context"):
        context_paths(tmp_path)
