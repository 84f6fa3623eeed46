"""`inv release` end to end: a consumer project, a real daemon, a real registry."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time

import pytest

from .conftest import assert_clean_failure


def _refs(stdout: str) -> dict[str, str]:
    """`registry/repo:tag@digest` lines → {tag: digest}."""
    refs = {}
    for line in stdout.strip().splitlines():
        name, _, digest = line.partition("@")
        refs[name.rsplit(":", 1)[1]] = digest
    return refs


@pytest.mark.builds
def test_release_pushes_verified_runnable_image(project, client, stack):
    result = project.inv("release", "--tag", "v1", "--tag", "latest")
    assert result.returncode == 0, result.stderr

    lines = result.stdout.strip().splitlines()
    prefix = f"{stack.registry}/{project.repository}"
    assert [line.split("@")[0] for line in lines] == [f"{prefix}:v1", f"{prefix}:latest"]
    refs = _refs(result.stdout)
    assert refs["v1"].startswith("sha256:") and len(refs["v1"]) == 71

    # The registry holds exactly these tags, at the printed digest.
    assert project.tags() == ["latest", "v1"]
    for name, digest in refs.items():
        assert stack.registry_server.manifest_digest(project.repository, name) == digest

    # Pull it back from the registry (nothing local left) and run it.
    image = f"{prefix}:v1"
    for local in client.images.list(name=f"{prefix}"):
        client.images.remove(local.id, force=True)
    auth = {"username": stack.username, "password": stack.password}
    pulled = client.images.pull(f"{prefix}", tag="v1", auth_config=auth)
    assert f"{prefix}@{refs['v1']}" in pulled.attrs["RepoDigests"]
    output = client.containers.run(image, remove=True, network_mode="none")
    assert output.decode().strip() == f"hello from {project.repository.split('/')[1]}"


@pytest.mark.builds
def test_build_arg_flag_overrides_env_setting(project, client, stack):
    project.write(
        ".env", project.path.joinpath(".env").read_text() + "HUB_BUILD_ARGS=GREETING=env\n"
    )
    result = project.inv("release", "--tag", "v1", "--build-arg", "GREETING=flag")
    assert result.returncode == 0, result.stderr
    image = f"{stack.registry}/{project.repository}:v1"
    output = client.containers.run(image, remove=True, network_mode="none")
    assert output.decode().startswith("flag from")


@pytest.mark.builds
def test_build_streams_output_live(project):
    """The first RUN's output must reach us well before the build ends."""
    project.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo first-marker && sleep 3 && echo second-marker\n",
    )
    proc = subprocess.Popen(
        [os.sys.executable, "-m", "invoke", "build", "--tag", "live"],
        cwd=project.path,
        env=project.env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen_at = None
    for line in proc.stderr:
        if "first-marker" in line and seen_at is None:
            seen_at = time.monotonic()
    proc.wait(60)
    ended_at = time.monotonic()
    assert proc.returncode == 0
    assert seen_at is not None
    assert ended_at - seen_at > 2.0, "build output was buffered until the end"


@pytest.mark.parametrize(
    ("builder", "says"),
    [
        ("classic", ("at Step 3/", ": RUN exit 3", "non-zero code: 3")),
        ("buildkit", ("at [3/3] RUN exit 3 (Dockerfile line 3)", "exit code: 3")),
    ],
)
def test_failing_build_names_the_step_and_pushes_nothing(project, builder, says):
    project.write("Dockerfile", "FROM busybox:local\nRUN echo ok\nRUN exit 3\n")
    result = project.inv("release", "--tag", "v1", HUB_BUILDER=builder)
    last = assert_clean_failure(result, project)
    assert all(part in last for part in says), last
    assert project.tags() == []


@pytest.mark.builds
def test_tag_adds_tags_without_rebuilding(project, client, stack):
    assert project.inv("build", "--tag", "v1").returncode == 0
    prefix = f"{stack.registry}/{project.repository}"
    built = client.images.get(f"{prefix}:v1").id
    result = project.inv("tag", "--source", "v1", "--tag", "stable", "--tag", "v1.0")
    assert result.returncode == 0, result.stderr
    assert "Step 1/" not in result.stderr
    assert client.images.get(f"{prefix}:stable").id == built
    assert client.images.get(f"{prefix}:v1.0").id == built

    missing = project.inv("tag", "--source", "nope", "--tag", "x")
    assert_clean_failure(missing, project, mentions="no local image 'nope'")


@pytest.mark.builds
def test_push_reports_registry_digest_and_refuses_missing_tags(project, stack):
    assert project.inv("build", "--tag", "a", "--tag", "b").returncode == 0
    refused = project.inv("push", "--tag", "a", "--tag", "missing")
    assert_clean_failure(refused, project, mentions=":missing")
    assert project.tags() == []  # validated before the first push

    result = project.inv("push", "--tag", "a", "--tag", "b")
    assert result.returncode == 0, result.stderr
    refs = _refs(result.stdout)
    assert set(refs) == {"a", "b"}
    for name, digest in refs.items():
        assert stack.registry_server.manifest_digest(project.repository, name) == digest


def test_login_checks_for_real_and_saves_only_when_asked(project, stack):
    ok = project.inv("login")
    assert ok.returncode == 0, ok.stderr
    assert not project.docker_config.exists()  # nothing written without --save

    wrong = project.inv("login", HUB_TOKEN="not-the-password")
    assert_clean_failure(wrong, project, mentions="rejected the credentials")
    assert "not-the-password" not in wrong.stdout + wrong.stderr

    saved = project.inv("login", "--save")
    assert saved.returncode == 0, saved.stderr
    config_file = project.docker_config / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stack.registry in json.loads(config_file.read_text())["auths"]
    assert stack.password not in saved.stdout + saved.stderr


def test_saved_login_lets_plain_docker_push(project, stack):
    """After `inv login --save`, the docker CLI pushes with no credentials of its own."""
    docker_cli = os.environ.get("DOCKER_CLI") or "docker"
    try:
        subprocess.run([docker_cli, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no docker CLI on this machine")
    assert project.inv("build", "--tag", "cli").returncode == 0
    assert project.inv("login", "--save").returncode == 0
    ref = f"{stack.registry}/{project.repository}:cli"
    pushed = subprocess.run(
        [docker_cli, "push", ref],
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pushed.returncode == 0, pushed.stderr
    assert project.tags() == ["cli"]


def test_env_leak_is_refused_before_anything_happens(project):
    (project.path / ".dockerignore").unlink()
    result = project.inv("release", "--tag", "v1")
    assert_clean_failure(result, project, mentions=".dockerignore")
    assert "Step 1/" not in result.stderr  # nothing was built
    assert project.tags() == []


@pytest.mark.parametrize(
    ("args", "env", "mentions"),
    [
        (["--tag", "bad tag"], {}, "'bad tag' is not a valid tag"),
        (["--tag", "v1", "--dockerfile", "Missing.Dockerfile"], {}, "Missing.Dockerfile"),
        (["--tag", "v1"], {"HUB_REPOSITORY": "Bad/Name"}, "lowercase"),
        (["--tag", "v1"], {"HUB_TOKEN": "wrong-token-value"}, "rejected the credentials"),
        (["--tag", "v1"], {"HUB_REGISTRY": "127.0.0.1:9"}, "127.0.0.1:9"),
        (
            ["--tag", "v1"],
            {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
            "/nonexistent/docker.sock",
        ),
        (["--tag", "v1", "--build-arg", "NOEQUALS"], {}, "NAME=VALUE"),
    ],
    ids=[
        "bad-tag",
        "no-dockerfile",
        "bad-repository",
        "wrong-token",
        "registry-down",
        "daemon-down",
        "bad-build-arg",
    ],
)
def test_release_failures_are_one_clean_line_and_push_nothing(project, args, env, mentions):
    result = project.inv("release", *args, **env)
    last = assert_clean_failure(result, project, mentions=mentions)
    for value in env.values():
        if "token" in value:
            assert value not in result.stdout + result.stderr
    assert project.tags() == [], last


def test_missing_settings_are_listed_together(project):
    project.write(".env", "")
    result = project.inv("release", "--tag", "v1")
    last = assert_clean_failure(result, project)
    for key in ("HUB_REPOSITORY", "HUB_USERNAME", "HUB_TOKEN"):
        assert key in last


@pytest.mark.builds
def test_build_context_is_streamed_as_docker_would_send_it(project, client, stack):
    """Exclusions, nested folders, empty folders, symlinks, hard links, a large file and a
    Dockerfile outside the context all arrive as `docker build` would send them."""
    root = project.path
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "f.txt").write_text("nested\n")
    (root / "emptydir").mkdir()
    (root / "secret.txt").write_text("do not send\n")
    (root / "logs").mkdir()
    (root / "logs" / "a.log").write_text("x\n")
    (root / "link.txt").symlink_to("sub/deeper/f.txt")
    os.link(root / "sub" / "deeper" / "f.txt", root / "hard.txt")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    project.write(".dockerignore", ".env\nsecret.txt\nlogs\n")
    outside = root.parent / "Dockerfile.outside"
    outside.write_text(
        "FROM busybox:local\nCOPY . /ctx\n"
        "RUN test ! -e /ctx/secret.txt && test ! -e /ctx/.env && test ! -e /ctx/logs "
        "&& test -d /ctx/emptydir && test -L /ctx/link.txt && cat /ctx/link.txt /ctx/hard.txt "
        "&& wc -c < /ctx/big.bin\n"
    )
    result = project.inv("build", "--tag", "ctx", "--dockerfile", str(outside))
    assert result.returncode == 0, result.stderr
    said = re.sub(r"^#\d+ ", "", result.stderr, flags=re.M)  # BuildKit's plain prefix
    assert "nested\nnested\n3145735\n" in said
    again = project.inv("build", "--tag", "ctx", "--dockerfile", str(outside))
    assert again.returncode == 0
    assert again.stderr.count("Using cache") >= 2 or again.stderr.count(" CACHED") >= 2  # COPY .
