"""`inv release` / `inv build` on the BuildKit path, end to end against the real daemon and
registry: secrets, --target, a private base image through the session, the dry run's
`docker buildx build`, the plain progress (--ssh: test_buildkit_ssh)."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import time

import pytest

from tests.helpers.images import registry_only_image
from tests.integration.conftest import assert_clean_failure

SECRET = "tok-" + "Zq9x" * 5

_SECRET_DOCKERFILE = (
    "FROM busybox:local AS base\n"
    "RUN --mount=type=secret,id=apitoken "
    'case "$(cat /run/secrets/apitoken)" in tok-*) echo "read $(wc -c < /run/secrets/apitoken)"'
    " > /proof;; esac\n"
    "FROM base AS extra\n"
    "RUN echo never > /extra\n"
)


def _files(saved: bytes) -> bytes:
    found = b""
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                found += data + (_files(data) if member.name.endswith(".tar") else b"")
    return found


def test_release_with_a_secret_and_target_on_buildkit(project, client, stack):
    project.write("Dockerfile", _SECRET_DOCKERFILE)
    result = project.inv(
        "release",
        "--tag",
        "v1",
        "--target",
        "base",
        "--secret",
        "id=apitoken,env=API_TOKEN",
        "--verbose",
        HUB_BUILDER="auto",
        HUB_PROGRESS="plain",
        API_TOKEN=SECRET,
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "RUN echo never" not in result.stderr  # --target: the later stage is not built
    assert "#" in result.stderr and "DONE" in result.stderr  # BuildKit's plain progress
    image = client.images.get(f"{stack.registry}/{project.repository}:v1")
    labels = image.attrs["Config"]["Labels"]
    assert labels["dev.hubtasks.inputs"].startswith("sha256:")
    assert "LABEL" not in json.dumps(client.api.history(image.id))
    contents = _files(b"".join(image.save()))
    assert f"read {len(SECRET)}".encode() in contents
    assert SECRET.encode() not in contents
    # The same inputs with another secret value: nothing to build again (ids only).
    again = project.inv(
        "release",
        "--tag",
        "v1",
        "--target",
        "base",
        "--secret",
        "id=apitoken,env=API_TOKEN",
        HUB_BUILDER="auto",
        API_TOKEN="tok-another-value",
    )
    assert again.returncode == 0, again.stderr
    assert "tok-another-value" not in again.stdout + again.stderr


def test_dry_run_prints_docker_buildx_build_without_secret_values(project):
    result = project.inv(
        "release",
        "--tag",
        "v1",
        "--dry-run",
        "--target",
        "base",
        "--secret",
        "id=apitoken,env=API_TOKEN",
        "--no-cache",
        HUB_BUILDER="auto",
        API_TOKEN=SECRET,
    )
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if "docker buildx build" in line]
    assert "--target base" in command and "--secret id=apitoken,env=API_TOKEN" in command
    assert "--no-cache" in command
    assert SECRET not in result.stdout + result.stderr


def test_secret_flags_on_the_classic_builder_are_one_line(project):
    result = project.inv("build", "--tag", "v1", "--secret", "id=a", HUB_BUILDER="classic")
    assert_clean_failure(result, project, mentions="--secret needs the BuildKit builder")


def test_a_private_base_image_builds_through_the_session(project, client, stack):
    base = registry_only_image(
        client,
        stack,
        f"{stack.username}/privatebase",
        "FROM busybox:local\nRUN echo base > /base.txt\n",
    )
    project.write("Dockerfile", f"FROM {base}\nRUN cat /base.txt\n")
    result = project.inv("release", "--tag", "v1", HUB_BUILDER="auto")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["v1"]


def test_a_base_image_in_another_registry_uses_what_docker_login_left(project, client, stack):
    # The same registry under another name (localhost, not HUB_REGISTRY's 127.0.0.1): only
    # the Docker config's entry for that name, as `docker login localhost:PORT` writes it,
    # lets the daemon pull the base image through the session.
    other = stack.registry.replace("127.0.0.1", "localhost")
    registry_only_image(
        client,
        stack,
        f"{stack.username}/otherbase",
        "FROM busybox:local\nRUN echo other > /other.txt\n",
    )
    project.write("Dockerfile", f"FROM {other}/{stack.username}/otherbase:1\nRUN cat /other.txt\n")
    refused = project.inv("release", "--tag", "v1", HUB_BUILDER="auto")
    assert refused.returncode == 1  # no login for `localhost:PORT` yet
    login = base64.b64encode(f"{stack.username}:{stack.password}".encode()).decode()
    config_file = project.docker_config / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config.setdefault("auths", {})[other] = {"auth": login}
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config))
    result = project.inv("release", "--tag", "v1", "--verbose", HUB_BUILDER="auto")
    assert result.returncode == 0, result.stderr
    assert stack.password not in result.stdout + result.stderr
    assert project.tags() == ["v1"]


def test_source_date_epoch_reaches_an_arg_on_buildkit(project, client, stack):
    project.write(
        "Dockerfile",
        'FROM busybox:local\nARG SOURCE_DATE_EPOCH\nRUN echo "epoch=$SOURCE_DATE_EPOCH" > /epoch\n',
    )
    result = project.inv(
        "build", "--tag", "v1", HUB_BUILDER="buildkit", SOURCE_DATE_EPOCH="1700000000"
    )
    assert result.returncode == 0, result.stderr
    image = client.images.get(f"{stack.registry}/{project.repository}:v1")
    assert b"epoch=1700000000" in _files(b"".join(image.save()))
    # Engine 20.10's BuildKit (0.8) does not stamp the image with it: the time is the build's.
    assert not image.attrs["Created"].startswith("2023-11-14")


SLOW = 4
_CACHED_DOCKERFILE = (
    f"FROM busybox:local\nRUN sleep {SLOW} && echo deps > /deps\nCOPY app.txt /app.txt\n"
)


@pytest.mark.builder("buildkit")
def test_a_fresh_runner_takes_the_slow_step_from_the_releases_inline_cache(project, client, stack):
    project.write("Dockerfile", _CACHED_DOCKERFILE)
    project.write("app.txt", "one\n")
    assert project.inv("release", "--tag", "v1").returncode == 0
    name = f"{stack.registry}/{project.repository}"
    for image in client.images.list(name=name):  # a fresh runner: no image, no build cache
        client.images.remove(image.id, force=True)
    client.api.prune_builds(all=True)
    project.write("app.txt", "two\n")
    start = time.monotonic()
    second = project.inv("release", "--tag", "v2", "--cache-from", f"{name}:v1", "--verbose")
    took = time.monotonic() - start
    assert second.returncode == 0, second.stderr
    step = re.search(r"^#(\d+) \[2/3\] RUN sleep", second.stderr, re.M)
    assert step, second.stderr
    assert f"#{step.group(1)} CACHED" in second.stderr, second.stderr
    assert took < SLOW + 3, f"the release took {took:.2f}s: the {SLOW}s step ran again"
    assert f"[cache] pulling {name}:v1 (sha256:" in second.stderr  # by digest: test_buildkit_cache
