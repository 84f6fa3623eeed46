"""Fixtures that start a real dockerd and a real htpasswd registry for the session.

Everything listens on a private unix socket or 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from devtools.stack import BASE_IMAGE, Stack, missing_packages

# Every test here is marked `integration` by tests/conftest.py (pytest ignores a `pytestmark`
# in a conftest.py).

_names = itertools.count(1)


@pytest.fixture(scope="session")
def stack():
    missing = missing_packages()
    if missing:
        pytest.fail(f"integration tests need: apt-get install {' '.join(missing)}")
    with Stack() as running:
        yield running


@pytest.fixture(scope="session")
def client(stack):
    c = docker.DockerClient(base_url=stack.daemon.host, timeout=120)
    yield c
    c.close()


@dataclass
class Project:
    """A throwaway consumer project: tasks.py, Dockerfile, .env, .dockerignore."""

    path: Path
    stack: Stack
    repository: str  # namespace/name in the registry
    docker_config: Path
    builder: str | None = None  # a test about one builder's behaviour sets it

    @property
    def token(self) -> str:
        return self.stack.password

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_", "INVOKE_"))
        }
        env.update(self.stack.env())
        env["DOCKER_CONFIG"] = str(self.docker_config)
        # The builder the suite runs on: HUB_TEST_BUILDER=buildkit runs it all on BuildKit
        # (auto picks BuildKit on this daemon); tests that are about one builder say so.
        env["HUB_BUILDER"] = self.builder or os.environ.get("HUB_TEST_BUILDER", "classic")
        env.update(extra)
        return env

    def run(self, *argv: str, timeout: float = 300, **extra_env: str):
        """Run a command in the project, as its user would, and capture what it prints."""
        return subprocess.run(
            list(argv),
            cwd=self.path,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def inv(self, *args: str, timeout: float = 300, **extra_env: str):
        return self.run(sys.executable, "-m", "invoke", *args, timeout=timeout, **extra_env)

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def drop_env(self, key: str) -> None:
        """Remove a setting from the project's .env."""
        env = self.path / ".env"
        kept = [line for line in env.read_text().splitlines() if not line.startswith(f"{key}=")]
        env.write_text("".join(line + "\n" for line in kept))

    def add_env(self, **values: str) -> None:
        """Append settings to the project's .env."""
        lines = "".join(f"{key}={value}\n" for key, value in values.items())
        env = self.path / ".env"
        env.write_text(env.read_text() + lines)

    def tags(self) -> list[str]:
        return self.stack.registry_server.tags(self.repository)


@pytest.fixture
def project(tmp_path, stack) -> Project:
    """A fresh repository name per test, so tests never see each other's tags."""
    name = f"demo{next(_names)}"
    repository = f"{stack.username}/{name}"
    root = tmp_path / "project"
    root.mkdir()
    proj = Project(root, stack, repository, tmp_path / "docker-config")
    proj.write("tasks.py", "from hubtasks import ns\n")
    proj.write(
        "Dockerfile",
        f"FROM {BASE_IMAGE}\nARG GREETING=hello\n"
        f'RUN echo "$GREETING from {name}" > /greeting\nCMD ["cat", "/greeting"]\n',
    )
    proj.write(".dockerignore", ".env\n")
    proj.write(
        ".env",
        f"HUB_REGISTRY={stack.registry}\nHUB_USERNAME={stack.username}\n"
        f"HUB_TOKEN={stack.password}\nHUB_REPOSITORY={name}\n",
    ).chmod(0o600)
    return proj


def assert_clean_failure(result, project: Project, *, mentions: str = "") -> str:
    """A failure is one `hubtasks:` line on stderr, no traceback, no secret, non-zero exit."""
    everything = result.stdout + result.stderr
    assert result.returncode != 0, everything
    assert "Traceback" not in everything
    assert project.token not in everything
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hubtasks: "), result.stderr
    if mentions:
        assert mentions in last, last
    return last
