"""BuildKit through the Engine API against the real daemon and htpasswd registry: the session
hubtasks serves (registry credentials, secrets), the build request and its trace."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import docker
import pytest

from hubtasks.build.buildkit import client as bk
from hubtasks.build.buildkit import filesync, trace
from hubtasks.build.buildkit import session as grpc_session
from hubtasks.errors import BuildError
from tests.helpers.images import registry_only_image

SECRET = "s3cr3t-" + "q7Zx" * 4  # nothing else in a build looks like it


@pytest.fixture(scope="module")
def api(stack):
    http = docker.APIClient(base_url=stack.daemon.host, version="1.41", timeout=120)
    yield http, f"{http.base_url}/v1.41"
    http.close()


class _Build:
    """One session and its builds; every trace update kept."""

    def __init__(self, api, credentials=None, secrets=None):
        self.http, self.root = api
        self.served = grpc_session.handlers(credentials or (lambda _: None), secrets or {})
        self.trace = trace.Trace()
        self.updates: list[trace.Update] = []
        self.project = Path(tempfile.mkdtemp(prefix="bk-session-"))
        self.folders: dict[str, filesync.Folder] = {}  # what each build's files are

    def __enter__(self):
        streams = dict.fromkeys(filesync.METHODS, filesync.opener(self.folders, print))
        self.session = bk.open_session(self.http, self.root, self.served, streams)
        return self

    def __exit__(self, *exc):
        self.session.close()
        shutil.rmtree(self.project, ignore_errors=True)

    def run(self, dockerfile: str, *, on_trace=None, **request) -> str:
        def follow(update: trace.Update) -> None:
            self.updates.append(update)
            self.trace.add(update)
            if on_trace:
                on_trace(update)

        (self.project / "Dockerfile").write_text(dockerfile)
        (self.project / "data.txt").write_text("data\n")
        folder = filesync.Folder(str(self.project), ("Dockerfile", "data.txt"), None)
        self.folders.update(context=folder, dockerfile=folder)
        request.setdefault("network", "none")  # the test daemon has no bridge
        return bk.build(self.http, self.root, bk.BuildRequest(**request), self.session, follow)

    def output(self) -> bytes:
        return b"".join(log.data for update in self.updates for log in update.logs)

    def names(self) -> list[str]:
        return [state.step.name for state in self.trace.steps.values()]


@pytest.fixture(scope="module")
def private_base(stack, client):
    """An image only the htpasswd registry holds: pushed, then removed from the daemon."""
    return registry_only_image(
        client, stack, "private/base", "FROM busybox:local\nRUN echo private > /base.txt\n"
    )


def test_a_private_base_image_is_resolved_with_the_sessions_credentials(api, stack, private_base):
    asked: list[str] = []

    def credentials(host: str):
        asked.append(host)
        return (stack.username, stack.password) if host == stack.registry else None

    with _Build(api, credentials) as build:
        image = build.run(f"FROM {private_base}\nRUN cat /base.txt\n")
    assert image.startswith("sha256:")
    assert stack.registry in asked
    assert "/moby.filesync.v1.Auth/Credentials" in build.session.server.calls
    assert b"private" in build.output()


def test_without_credentials_the_private_base_image_is_refused(api, stack, private_base):
    with _Build(api) as build, pytest.raises(BuildError) as failure:
        build.run(f"FROM {private_base}\nRUN true\n")
    assert "401" in str(failure.value) or "unauthorized" in str(failure.value).lower()


def test_a_secret_is_readable_in_its_step_and_in_no_layer_nor_output(api, client, tmp_path):
    dockerfile = (
        "FROM busybox:local\n"
        # The value itself must not be in the Dockerfile (its history would carry it): the
        # step proves it read it by its first characters and its length.
        "RUN --mount=type=secret,id=apitoken "
        'case "$(cat /run/secrets/apitoken)" in s3cr3t-*) echo "size=$(wc -c < '
        '/run/secrets/apitoken)" > /secret-size;; esac\n'
    )
    with _Build(api, secrets={"apitoken": SECRET.encode()}) as build:
        image = build.run(dockerfile, tags=("bk-secret:1",))
    assert "/moby.buildkit.secrets.v1.Secrets/GetSecret" in build.session.server.calls
    saved = b"".join(client.images.get(image).save())
    contents = _file_bytes(saved)
    assert f"size={len(SECRET)}".encode() in contents  # the step read it; /secret-size says so
    assert SECRET.encode() not in contents
    assert SECRET.encode() not in build.output()
    everything = json.dumps([repr(u) for u in build.updates])
    assert SECRET not in everything


def _file_bytes(archive: bytes) -> bytes:
    """Every file's bytes in a tar, and in the tars inside it (`docker save`'s layers)."""
    found = b""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                found += data
                if member.name.endswith(".tar"):
                    found += _file_bytes(data)
    return found


def test_an_unknown_secret_fails_its_step(api):
    with _Build(api) as build, pytest.raises(BuildError) as failure:
        build.run("FROM busybox:local\nRUN --mount=type=secret,id=nope,required=true true\n")
    assert "nope" in str(failure.value)


def test_cache_mount_labels_and_target(api, client):
    dockerfile = (
        "FROM busybox:local AS first\n"
        "RUN --mount=type=cache,target=/cache echo kept > /cache/x && cat /cache/x > /first\n"
        "FROM first AS second\n"
        "RUN echo second > /second\n"
    )
    labels = {"org.opencontainers.image.title": "bk", "dev.hubtasks.inputs": "sha256:00"}
    with _Build(api) as build:
        image = build.run(dockerfile, labels=labels, target="first")
    inspected = client.api.inspect_image(image)
    assert inspected["Config"]["Labels"] == labels
    history = json.dumps(client.api.history(image))
    assert "LABEL" not in history
    assert not any("echo second" in name for name in build.names())
    assert any("--mount=type=cache" in name for name in build.names())


def test_an_interrupt_cancels_the_build_and_the_session_ends_cleanly(api):
    started = threading.Event()

    def interrupt(update: trace.Update) -> None:
        if any("sleep 60" in step.name and step.started for step in update.steps):
            started.set()
            raise KeyboardInterrupt

    began = time.monotonic()
    with _Build(api) as build, pytest.raises(KeyboardInterrupt):
        build.run("FROM busybox:local\nRUN sleep 60\n", on_trace=interrupt, no_cache=True)
    assert started.is_set()
    assert time.monotonic() - began < 30
    assert not build.session.thread.is_alive()
    assert build.session.server.ended is None
    with _Build(api) as again:  # the daemon builds again at once
        assert again.run("FROM busybox:local\nRUN true\n", no_cache=True).startswith("sha256:")


def test_a_session_that_dies_is_named_in_the_one_line(api):
    def kill_session(update: trace.Update) -> None:
        if any("sleep 2" in step.name and step.started for step in update.steps):
            build.session.server.socket.close()  # as if the connection broke

    with _Build(api, secrets={"late": b"x"}) as build, pytest.raises(BuildError) as failure:
        build.run(
            "FROM busybox:local\nRUN sleep 2\nRUN --mount=type=secret,id=late,required=true true\n",
            on_trace=kill_session,
            no_cache=True,
        )
    message = str(failure.value)
    assert message.startswith("the BuildKit session with the Docker daemon ended")
    assert "\n" not in message


def test_a_failing_step_names_its_line_command_and_last_output(api, tmp_path):
    from hubtasks.build.buildkit import builder, filesync

    http, root = api
    dockerfile = "FROM busybox:local\nRUN echo fine\nRUN echo first; echo last words; false\n"
    (tmp_path / "Dockerfile").write_text(dockerfile)
    folder = filesync.Folder(str(tmp_path), ("Dockerfile",), None)
    shown: list[str] = []
    with pytest.raises(BuildError) as failure:
        builder.build_image(
            http,
            root,
            request=bk.BuildRequest(network="none", no_cache=True),
            folders={"context": folder, "dockerfile": folder},
            shared_key="",
            credentials=lambda _: None,
            secrets={},
            dockerfile_text=dockerfile,
            on_output=shown.append,
        )
    message = str(failure.value)
    assert "RUN echo first; echo last words; false (Dockerfile line 3)" in message
    assert "its last output: first | last words" in message
    assert "\n" not in message
    assert any(line.startswith("#") and " ERROR: " in line for line in shown)
    assert "#3 last words\n" in shown or any(line.endswith(" last words\n") for line in shown)
