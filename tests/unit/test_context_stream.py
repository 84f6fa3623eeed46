"""The streamed build context is a valid tar with what `docker build` would send."""

from __future__ import annotations

import io
import os
import tarfile

from hubtasks.context import build_context


def _archive(context, dockerfile):
    stream, name = build_context(context, dockerfile)
    data = b"".join(stream)
    assert len(data) % 512 == 0
    return tarfile.open(fileobj=io.BytesIO(data)), name


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
    assert name == "Dockerfile"
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
    assert name.startswith(".dockerfile.")
    assert tar.extractfile(name).read() == outside.read_bytes()
    _, again = _archive(context, outside)
    assert again == name  # same content, same name: `COPY .` stays cached


def test_dockerignore_cannot_exclude_the_dockerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*\n")
    tar, _ = _archive(tmp_path, tmp_path / "Dockerfile")
    assert "Dockerfile" in tar.getnames()
