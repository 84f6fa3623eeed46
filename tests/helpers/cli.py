"""The command line in a throwaway project: `python -m invoke` with a clean environment, the
project it runs in, and what every failure must look like (DOCKER_HOST is a dead socket)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TASK_NAMES = {
    "init",
    "login",
    "logout",
    "build",
    "tag",
    "push",
    "release",
    "promote",
    "doctor",
    "images",
    "describe",
    "prune",
}
TOKEN = "supersecret-xyz"
# HUB_TAGS is set because the throwaway project is not a git work tree (no default tag).
# HUB_REGISTRY is a closed port here: the credential check started ahead must not leave the
# machine (not even as a DNS query for docker.io).
GOOD_ENV = (
    f"HUB_USERNAME=u\nHUB_TOKEN={TOKEN}\nHUB_REPOSITORY=demo\nHUB_TAGS=v1\n"
    "HUB_REGISTRY=127.0.0.1:9\n"
)


def make_project(
    root: Path, env: str = GOOD_ENV, *, dockerfile: bool = True, dockerignore: bool = True
) -> Path:
    (root / "tasks.py").write_text("from hubtasks import ns\n")
    (root / ".env").write_text(env)
    (root / ".env").chmod(0o600)  # else a (correct) permissions warning joins the error
    if dockerfile:
        (root / "Dockerfile").write_text("FROM scratch\n")
    if dockerignore:
        (root / ".dockerignore").write_text(".env\n")
    return root


def dead_socket(root: Path) -> str:
    return f"unix://{root / 'no-daemon.sock'}"


def invoke(
    root: Path, *args: str, docker_host: str | None = "", **extra_env: str
) -> subprocess.CompletedProcess:
    """Run `python -m invoke ARGS` in `root` with a clean HUB_*/DOCKER_* environment (plus
    `extra_env`).

    DOCKER_HOST defaults to a socket in `root` that nothing listens on; None leaves it unset.
    """
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_", "INVOKE_"))
    }
    environ["HOME"] = str(root)
    environ["GIT_CEILING_DIRECTORIES"] = str(root.parent)  # never find an enclosing repo
    if docker_host is not None:
        environ["DOCKER_HOST"] = docker_host or dead_socket(root)
    environ.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hubtasks: ")
    return lines[0]
