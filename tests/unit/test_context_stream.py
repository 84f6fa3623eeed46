"""The streamed build context is a valid tar with what `docker build` would send."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import replace

from hubtasks.context import BuildContext, PendingInputs
from hubtasks.engine import context_paths


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
