"""Dockerfiles as real projects write them, released by hubtasks on BuildKit and by the docker CLI
(`DOCKER_BUILDKIT=1 docker build --network none`): the two images must have the same config
and the same files (labels aside: hubtasks adds its own).

The projects are in tests/integration/dockerfiles/: the Python, Node, Go and Rust Dockerfiles
`docker init` writes (cache and bind mounts, `ARG UID`, a user; the Go one cross-compiles
with `FROM --platform=$BUILDPLATFORM` and `TARGETOS`/`TARGETARCH`), a multi-stage file built
with `--target`, and one with `COPY --chmod`, a secret mount, `HEALTHCHECK`, `ONBUILD` and a
`.dockerignore` with a `!` exception — each adapted to run offline on `busybox:local` (no
package manager, no `adduser`: the user is a line in /etc/passwd). Syntax this Engine's
built-in Dockerfile frontend lacks (heredocs, `COPY --link`) must fail as one clear line.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from .conftest import assert_clean_failure

CASES = Path(__file__).parent / "dockerfiles"
SECRET = "s3cr3t-value"  # 12 bytes
DOCKER_CLI = "/usr/bin/docker"  # Debian's 20.10 CLI speaks BuildKit without buildx


def _project_from(project, case: str) -> None:
    """The case's files over the fixture project's (its Dockerfile and .dockerignore win)."""
    shutil.copytree(CASES / case, project.path, dirs_exist_ok=True)
    (project.path / "secret.txt").write_text(SECRET)


def _cli_build(project, ref: str, *extra: str) -> None:
    env = project.env(DOCKER_BUILDKIT="1")
    result = subprocess.run(
        [DOCKER_CLI, "build", "--network", "none", "-q", "-t", ref, *extra, "."],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def _hubtasks_release(project, tag: str, *extra: str):
    result = project.inv("release", "--builder", "buildkit", "--tag", tag, *extra)
    everything = result.stdout + result.stderr
    assert result.returncode == 0, everything
    assert SECRET not in everything
    assert "classic builder" not in result.stderr  # its warnings (`FROM --platform=`) too
    assert result.stdout.startswith(f"{project.stack.registry}/{project.repository}:{tag}@sha256:")
    return result


def _config(client, ref: str) -> dict:
    attrs = client.images.get(ref).attrs
    config = {k: v for k, v in attrs["Config"].items() if k not in ("Labels", "Image")}
    return {"config": config, "os": attrs["Os"], "architecture": attrs["Architecture"]}


def _files(client, ref: str) -> dict[str, tuple]:
    """Every path of the image's file system: type, mode, owner, size, link target and, for a
    regular file, the sha256 of its bytes (modification times aside)."""
    container = client.containers.create(ref, command="none", network_mode="none")
    try:
        archive = io.BytesIO(b"".join(container.export()))
    finally:
        container.remove()
    found = {}
    with tarfile.open(fileobj=archive) as tar:
        for member in tar:
            digest = None
            if member.isfile():
                extracted = tar.extractfile(member)
                digest = hashlib.sha256(extracted.read() if extracted else b"").hexdigest()
            found[member.name] = (
                member.type,
                member.mode,
                member.uid,
                member.gid,
                member.size,
                member.linkname,
                digest,
            )
    return found


def _same_image(client, project, case: str, cli_flags=(), hub_flags=()) -> str:
    _project_from(project, case)
    cli_ref = f"cli-{case}:compare"
    _cli_build(project, cli_ref, *cli_flags)
    _hubtasks_release(project, case, *hub_flags)
    ours = f"{project.stack.registry}/{project.repository}:{case}"
    assert _config(client, ours) == _config(client, cli_ref)
    assert _files(client, ours) == _files(client, cli_ref)
    return ours


def _file(client, ref: str, path: str) -> str:
    output = client.containers.run(
        ref, ["cat", path], entrypoint=[], network_mode="none", remove=True, user="0"
    )
    return output.decode()


def test_docker_init_python(client, project):
    ours = _same_image(client, project, "python")
    assert _file(client, ours, "/app/installed.txt") == "flask==3.0\n"
    assert client.images.get(ours).attrs["Config"]["User"] == "appuser"


def test_docker_init_node(client, project):
    ours = _same_image(client, project, "node")
    assert "lockfileVersion" in _file(client, ours, "/usr/src/app/node_modules/.installed")


def test_docker_init_go_cross_compiles_from_the_build_platform(client, project):
    ours = _same_image(client, project, "go")
    native = client.version()["Arch"]
    assert _file(client, ours, "/bin/server") == f"echo server for linux/{native}\n"


def test_docker_init_rust(client, project):
    ours = _same_image(client, project, "rust")
    assert _file(client, ours, "/bin/server").startswith("fn main() {")
    assert client.images.get(ours).attrs["Config"]["User"] == "appuser"


def test_target_builds_only_what_the_stage_needs(client, project):
    # The `test` stage before `prod` fails: the classic builder runs it, BuildKit does not.
    ours = _same_image(
        client, project, "target", cli_flags=("--target", "prod"), hub_flags=("--target", "prod")
    )
    assert _file(client, ours, "/app/stage") == "prod\n"


def test_chmod_secret_healthcheck_onbuild_and_dockerignore_exceptions(client, project):
    secret = ("--secret", "id=apitoken,src=secret.txt")
    ours = _same_image(client, project, "features", cli_flags=secret, hub_flags=secret)
    assert _file(client, ours, "/token-length").strip() == str(len(SECRET))
    files = _files(client, ours)
    assert "docs/keep.md" in files and "docs/drop.md" not in files
    assert files["usr/local/bin/run"][1] & 0o7777 == 0o755
    config = client.images.get(ours).attrs["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD", "sh", "-c", "test -f /token-length"]
    assert config["OnBuild"] == ["COPY . /onbuild"]
    saved = b"".join(client.images.get(ours).save())
    assert SECRET.encode() not in saved  # in no layer, no config


@pytest.mark.parametrize("case", ["heredoc", "link"])
def test_syntax_the_built_in_frontend_lacks_is_one_clear_line(project, case):
    _project_from(project, case)
    result = project.inv("release", "--builder", "buildkit", "--tag", case)
    line = assert_clean_failure(result, project)
    assert "frontend" in line, line
