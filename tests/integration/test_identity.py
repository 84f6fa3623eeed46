"""A release is the same release on every machine: the build-inputs label, no-op re-runs on a
runner with nothing local, refusals decided before building, reproducible `COPY` layers, and
the labels sent as one `LABEL` step that leaves nothing extra in the image."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from devtools.stack import Daemon
from tests.helpers.images import forget_everything

from .conftest import assert_clean_failure

# What the image holds depends on the builder: every test runs on both.
pytestmark = pytest.mark.builds


def _git(project, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z",
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=project.path, env=env, check=True, capture_output=True)


def _copy_only(project) -> None:
    """Three `COPY` layers: a file, a tree into `/`, and a tree into a folder the image does
    not have yet (which the classic builder creates with the build's time)."""
    project.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY rootfs/ /\nCOPY data/ /data/\n")
    project.write("app", "#!/bin/sh\necho app\n").chmod(0o755)
    project.write("rootfs/etc/app.conf", "a" * 1000)
    project.write("rootfs/usr/share/app/b.txt", "b")
    project.write("data/a.txt", "a")
    project.write(".gitignore", ".env\n")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "one commit")


def _refs(result) -> list[str]:
    return result.stdout.split()


def test_re_release_on_a_fresh_runner_builds_and_pushes_nothing(project, client, stack):
    _copy_only(project)
    first = project.inv("release", "--tag", "v1.0.0", "--semver")
    assert first.returncode == 0, first.stderr
    forget_everything(client, project)
    start = time.monotonic()
    again = project.inv("release", "--tag", "v1.0.0", "--semver")
    took = time.monotonic() - start
    assert again.returncode == 0, again.stderr
    assert _refs(again) == _refs(first)
    assert "building" not in again.stderr and "pushing" not in again.stderr
    assert again.stderr.count("unchanged") >= 4
    for ref in _refs(again):
        tag, digest = ref.rsplit("@", 1)[0].rsplit(":", 1)[1], ref.rsplit("@", 1)[1]
        assert stack.registry_server.manifest_digest(project.repository, tag) == digest
    assert client.images.list(name=f"{stack.registry}/{project.repository}") == []
    assert took < 2.5, f"a no-op re-release took {took:.2f}s"

    # A new tag for the same inputs: a registry-side copy, still no build and no pull.
    extra = project.inv("release", "--tag", "v1.0.0", "--tag", "stable", "--json")
    assert extra.returncode == 0, extra.stderr
    document = json.loads(extra.stdout)
    actions = {t["tag"]: t["action"] for t in document["tags"]}
    assert actions == {"v1.0.0": "skip", "stable": "create"}
    assert "building" not in extra.stderr and "pushing" not in extra.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "stable")
    assert digest == stack.registry_server.manifest_digest(project.repository, "v1.0.0")
    assert client.images.list(name=f"{stack.registry}/{project.repository}") == []


def test_changed_inputs_are_refused_before_building_and_the_dry_run_says_so(project, client):
    _copy_only(project)
    assert project.inv("release", "--tag", "v1.0.0").returncode == 0
    local = client.images.get(f"{project.stack.registry}/{project.repository}:v1.0.0").id
    project.write("data/a.txt", "changed")
    dry = project.inv("release", "--tag", "v1.0.0", "--dry-run", "--allow-dirty")
    real = project.inv("release", "--tag", "v1.0.0", "--allow-dirty")
    for result in (dry, real):
        line = assert_clean_failure(result, project, mentions="immutable")
        assert "other inputs" in line
    assert dry.returncode == real.returncode == 1
    assert "building" not in real.stderr
    after = client.images.get(f"{project.stack.registry}/{project.repository}:v1.0.0").id
    assert after == local  # the local tag stays where it was


def test_an_image_without_our_label_is_refused_after_the_build_without_moving_local_tags(
    project, client, stack
):
    """Pushed by another tool: only the built image can decide; the refusal leaves the local
    tag where it was."""
    project.write("Dockerfile", "FROM scratch\nCOPY app /app\n")
    project.write("app", "one")
    other = client.images.build(path=str(project.path), tag="elsewhere:1", rm=True)[0]
    name = f"{stack.registry}/{project.repository}"
    other.tag(name, "v2.0.0")
    auth = {"username": stack.username, "password": stack.password}
    client.images.push(name, "v2.0.0", auth_config=auth)
    before = client.images.get(f"{name}:v2.0.0").id
    project.write("app", "two")
    dry = project.inv("release", "--tag", "v2.0.0", "--dry-run")
    assert dry.returncode == 0 and "check" in dry.stdout
    real = project.inv("release", "--tag", "v2.0.0")
    assert_clean_failure(real, project, mentions="immutable")
    assert client.images.get(f"{name}:v2.0.0").id == before


@pytest.fixture(scope="module")
def second_daemon(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("second") / "d")
    daemon.start()
    yield daemon
    daemon.stop()


def _layers(stack, repository: str, tag: str) -> list[str]:
    response = stack.registry_server.request(
        f"/v2/{repository}/manifests/{tag}",
        accept="application/vnd.docker.distribution.manifest.v2+json",
    )
    with response:
        return [layer["digest"] for layer in json.load(response)["layers"]]


# The classic builder's tar. On BuildKit the folders a COPY writes take Engine 20.10's time of
# writing them (test_buildkit_context compares the files there).
@pytest.mark.builder("classic")
def test_one_commit_on_two_daemons_gives_the_same_layers(project, stack, second_daemon):
    _copy_only(project)
    twin = f"{project.repository}-twin"
    assert project.inv("release", "--tag", "v1").returncode == 0
    # Another checkout of the commit: other mtimes, as on another runner.
    for path in project.path.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    result = project.inv(
        "release",
        "--tag",
        "v1",
        "--repository",
        twin.split("/", 1)[1],
        DOCKER_HOST=second_daemon.host,
    )
    assert result.returncode == 0, result.stderr
    one, two = _layers(stack, project.repository, "v1"), _layers(stack, twin, "v1")
    assert one[:2] == two[:2]  # the file, and the tree copied into `/`
    # What the classic builder still varies: a destination folder it creates (`/data/`) gets
    # the build's time. README: "Reproducible layers".
    assert one[2] != two[2]


@pytest.mark.builder("classic")  # about the classic builder's output
def test_labels_are_one_step_and_nothing_extra_reaches_the_image(project, client):
    project.write("Dockerfile", 'FROM busybox:local\nCOPY . /src\nCMD ["ls", "-A", "/src"]\n')
    project.write(".dockerignore", ".env\n")
    project.write("hello.txt", "hi")
    result = project.inv("build", "--tag", "t1", "--label", "team=web", "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(": LABEL ") == 1  # one builder step for every label
    name = f"{project.stack.registry}/{project.repository}:t1"
    listing = client.containers.run(name, remove=True, network_mode="none").decode().split()
    # Neither the generated Dockerfile nor the streamed .dockerignore reaches the image.
    assert sorted(listing) == ["Dockerfile", "hello.txt", "tasks.py"]
    labels = client.images.get(name).labels
    assert labels["team"] == "web" and labels["dev.hubtasks.inputs"].startswith("sha256:")
    assert (project.path / "Dockerfile").read_text().count("LABEL") == 0


def test_build_errors_name_the_users_dockerfile(project):
    project.write("Dockerfile", "FROM scratch\nCOPY missing-file /x\n")
    result = project.inv("build", "--tag", "t1")
    line = assert_clean_failure(result, project, mentions="missing-file")
    assert ".hubtasks.dockerfile" not in result.stderr + result.stdout, line


def test_a_clone_of_the_released_commit_is_the_same_release(project, client, stack):
    """`.git` is in the context (only `.env` is ignored) and differs between two clones of one
    commit: it is sent, but it is not an input. Before, the clone's re-release was refused as
    'built from other inputs'."""
    from .conftest import Project

    _copy_only(project)
    _git(project, "tag", "v1.0.0")
    first = project.inv("release", "--semver")  # the git tag at HEAD
    assert first.returncode == 0, first.stderr
    clone = project.path.parent / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(project.path), str(clone)], check=True, capture_output=True
    )
    (clone / ".env").write_bytes((project.path / ".env").read_bytes())
    (clone / ".env").chmod(0o600)
    subprocess.run(["git", "-C", str(clone), "tag", "later"], check=True, capture_output=True)
    forget_everything(client, project)
    there = Project(clone, stack, project.repository, project.docker_config)
    again = there.inv("release", "--semver")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "unchanged" in again.stderr and "building" not in again.stderr
