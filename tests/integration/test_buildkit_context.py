"""The build context through the session against the real daemon: the daemon keeps its copy
of the project's files between builds (the shared key), asks only for what changed, and sees
an edit that keeps the size and the one mtime hubtasks gives every file."""

from __future__ import annotations

import io
import json
import os
import tarfile

import docker
import pytest

from hubtasks.build.buildkit import builder, filesync
from hubtasks.build.buildkit import client as bk

MTIME = 1_700_000_000  # one mtime for every entry, as a release gives (the commit time)


@pytest.fixture(scope="module")
def api(stack):
    http = docker.APIClient(base_url=stack.daemon.host, version="1.41", timeout=120)
    yield http, f"{http.base_url}/v1.41"
    http.close()


def _build(api, root, shared_key: str) -> tuple[str, filesync.Folder]:
    http, api_root = api
    paths = tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*")))
    context = filesync.Folder(str(root), paths, MTIME)
    dockerfile = filesync.Folder(str(root), ("Dockerfile",), MTIME)
    image = builder.build_image(
        http,
        api_root,
        request=bk.BuildRequest(network="none"),
        folders={"context": context, "dockerfile": dockerfile},
        shared_key=shared_key,
        credentials=lambda _: None,
        secrets={},
        dockerfile_text="",
        on_output=lambda _: None,
    )
    return image, context


def _file_in(client, image: str, path: str) -> tuple[bytes, int]:
    """A file's bytes and mtime in the image (from a created, never started container)."""
    container = client.containers.create(image, command=["x"])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            data = tar.extractfile(member)
            assert data is not None
            return data.read(), int(member.mtime)
    finally:
        container.remove()


def test_a_warm_build_asks_only_for_what_changed_and_sees_a_same_size_edit(api, client, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /app/\n")
    (tmp_path / "data").mkdir()
    for index in range(5):
        (tmp_path / "data" / f"part{index}").write_bytes(bytes([index]) * 300_000)
    (tmp_path / "small.txt").write_text("first")
    key = f"test-{tmp_path.name}"

    first, sent = _build(api, tmp_path, key)
    assert sorted(sent.requested) == sorted(
        ["Dockerfile", "small.txt", *(f"data/part{i}" for i in range(5))]
    )
    assert _file_in(client, first, "/app/small.txt") == (b"first", MTIME)

    (tmp_path / "small.txt").write_text("again")  # same size, and sent with the same mtime
    second, sent = _build(api, tmp_path, key)
    assert sent.requested == ["small.txt"]
    assert second != first
    assert _file_in(client, second, "/app/small.txt") == (b"again", MTIME)

    third, sent = _build(api, tmp_path, key)  # nothing changed: nothing sent, same image
    assert (third, sent.requested) == (second, [])

    _, sent = _build(api, tmp_path, key + "-other")  # another project's key: all of it
    assert len(sent.requested) == 7


def test_a_file_name_that_is_not_utf8_reaches_the_image(api, client, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /app/\n")
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1: the docker CLI sends such names as bytes
    (tmp_path / name).write_text("latin")
    image, _ = _build(api, tmp_path, f"test-{tmp_path.name}")
    container = client.containers.create(image, command=["x"])
    try:
        stream, _ = container.get_archive("/app")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), encoding="utf-8") as tar:
            names = {os.fsencode(member.name) for member in tar.getmembers()}
    finally:
        container.remove()
    assert b"app/caf\xe9.txt" in names


def _layer_entries(client, image: str) -> list[tuple]:
    """The last layer's entries: name, type, mode, owner, size, mtime (folders: None)."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(client.images.get(image).save()))) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = saved.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        data = layer.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [
            (m.name, m.type, m.mode & 0o7777, m.uid, m.gid, m.size, None if m.isdir() else m.mtime)
            for m in tar.getmembers()
        ]


def test_two_checkouts_of_one_commit_give_the_same_files_with_the_commit_time(
    api, client, tmp_path
):
    # Two daemons' copies (two shared keys), two checkouts with their own mtimes: the files
    # in the layer are the same, each with the one mtime hubtasks sends (whole seconds).
    # Folders a COPY writes are left out: Engine 20.10's receiver (fsutil before 2022) gives
    # them the time it first wrote into them, as with `docker build`; BuildKit ≥ 0.11
    # restores their times.
    images = []
    for name, when in (("one", 1_500_000_000), ("two", 1_600_000_000)):
        root = tmp_path / name
        (root / "rootfs" / "etc").mkdir(parents=True)
        (root / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
        (root / "rootfs" / "etc" / "app.conf").write_text("a" * 1000)
        for path in root.rglob("*"):
            os.utime(path, (when, when))
        image, _ = _build(api, root, f"test-{tmp_path.name}-{name}")
        images.append(_layer_entries(client, image))
    assert images[0] == images[1]
    assert ("etc/app.conf", tarfile.REGTYPE, 0o644, 0, 0, 1000, MTIME) in images[0]
