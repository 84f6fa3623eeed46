"""The registry as the build cache of a fresh runner: the classic builder takes a `RUN` step
from an image pulled before the build, on a daemon that holds nothing of the repository."""

from __future__ import annotations

import re
import time

import pytest

from tests.helpers.images import forget_everything

SLOW = 4  # seconds: the `RUN` that stands for installing dependencies
RUN = f"RUN sleep {SLOW} && echo deps > /deps"
DOCKERFILE = f'FROM busybox:local\n{RUN}\nCOPY app.txt /app.txt\nCMD ["cat", "/deps", "/app.txt"]\n'


def _step_output(stderr: str, instruction: str) -> str:
    """What the build log says under the step running `instruction`, up to the next step."""
    match = re.search(
        rf"Step \d+/\d+ : {re.escape(instruction)}\n(.*?)(?=Step \d+/\d+|\Z)", stderr, re.S
    )
    assert match, stderr
    return match.group(1)


def _release(project, *args: str):
    start = time.monotonic()
    result = project.inv("release", *args)
    return result, time.monotonic() - start


@pytest.mark.builder("classic")
def test_a_fresh_runner_takes_the_slow_step_from_the_pulled_release(project, client, stack):
    # The classic builder's pull-then-cache_from (BuildKit's inline cache, resolved through
    # the session: test_buildkit_release).
    project.write("Dockerfile", DOCKERFILE)
    project.write("app.txt", "one\n")
    first, _ = _release(project, "--tag", "v1")
    assert first.returncode == 0, first.stderr
    assert "Using cache" not in _step_output(first.stderr, RUN)

    forget_everything(client, project)
    project.write("app.txt", "two\n")
    name = f"{stack.registry}/{project.repository}"
    second, took = _release(project, "--tag", "v2", "--cache-from", f"{name}:v1")
    assert second.returncode == 0, second.stderr
    assert f"[cache] pulling {name}:v1 (sha256:" in second.stderr
    assert "Using cache" in _step_output(second.stderr, RUN)
    assert "Using cache" not in _step_output(second.stderr, "COPY app.txt /app.txt")
    assert took < SLOW, f"the release took {took:.2f}s: the {SLOW}s step ran again"
    output = client.containers.run(f"{name}:v2", remove=True, network_mode="none")
    assert output == b"deps\ntwo\n"
    tags = {tag for image in client.images.list(name=name) for tag in image.tags}
    assert tags == {f"{name}:v2"}  # pulled by digest: no local tag was made or moved


@pytest.mark.builder("classic")
def test_auto_pulls_the_newest_release_and_a_missing_image_is_a_note(project, client, stack):
    # The classic builder's pull-then-cache_from (BuildKit's inline cache, resolved through
    # the session: test_buildkit_release).
    project.write("Dockerfile", DOCKERFILE)
    project.write("app.txt", "one\n")
    assert project.inv("release", "--tag", "v1.0.0").returncode == 0
    forget_everything(client, project)
    project.write("app.txt", "two\n")
    name = f"{stack.registry}/{project.repository}"
    auto = project.inv("release", "--tag", "v1.1.0")  # HUB_CACHE_FROM defaults to auto
    assert auto.returncode == 0, auto.stderr
    assert f"[cache] pulling {name}:v1.0.0 (sha256:" in auto.stderr
    assert "Using cache" in _step_output(auto.stderr, RUN)

    forget_everything(client, project)
    project.write("app.txt", "three\n")
    missing = f"{name}:no-such-tag"
    elsewhere = f"{stack.registry}/{stack.username}/no-such-repository:v1"  # asked of the daemon
    noted = project.inv(
        "release", "--tag", "v1.2.0", "--cache-from", missing, "--cache-from", elsewhere
    )
    assert noted.returncode == 0, noted.stderr
    for ref in (missing, elsewhere):
        assert f"[cache] note: the registry has no {ref}; building without it" in noted.stderr
    assert "Using cache" not in _step_output(noted.stderr, RUN)

    # This runner built the newest release: auto leaves the daemon's own cache alone.
    project.write("app.txt", "four\n")
    held = project.inv("release", "--tag", "v1.3.0")
    assert held.returncode == 0, held.stderr
    assert "[cache]" not in held.stderr
    assert "Using cache" in _step_output(held.stderr, RUN)


MULTI = "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\n"


def _file_in(client, image_id: str, path: str) -> bytes:
    """A file of an image of any platform (a created container is never run)."""
    import io
    import tarfile

    container = client.containers.create(image_id, command="none", network_mode="none")
    try:
        bits, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()
    finally:
        container.remove()


@pytest.mark.builder("classic")  # the classic builder's pull per platform (BuildKit pulls none)
def test_a_fresh_runner_builds_each_platform_from_its_own_platforms_image(project, client, stack):
    """Pulled without a platform, the list gave the daemon's own image, and the classic
    builder matched the arm64 build's steps on `FROM scratch` against it: the build failed
    with 'does not match the specified platform'."""
    project.write("Dockerfile", MULTI)
    project.write("app-amd64", "x86\n")
    project.write("app-arm64", "arm\n")
    platforms = ("linux/amd64", "linux/arm64")
    first = project.inv("release", "--tag", "v1.0.0", "--platform", ",".join(platforms))
    assert first.returncode == 0, first.stderr

    forget_everything(client, project)
    project.write("app-amd64", "x86, changed\n")
    second = project.inv("release", "--tag", "v1.1.0", "--platform", ",".join(platforms))
    assert second.returncode == 0, second.stderr
    name = f"{stack.registry}/{project.repository}"
    for platform in platforms:
        assert f"[cache] pulling {name}:v1.0.0 (sha256:" in second.stderr
        assert f"for {platform} for its layers" in second.stderr
    expected = {"linux/amd64": b"x86, changed\n", "linux/arm64": b"arm\n"}
    for platform, content in expected.items():
        auth = {"username": stack.username, "password": stack.password}
        image = client.images.pull(f"{name}:v1.1.0", platform=platform, auth_config=auth)
        assert f"{image.attrs['Os']}/{image.attrs['Architecture']}" == platform
        assert _file_in(client, image.id, "/app") == content
