"""Fixtures that start a real dockerd and a real htpasswd registry for the session.

Everything listens on a private unix socket or 127.0.0.1 and is stopped at the end.

The builder a test's `project` builds with:
- a test marked `builds` (an image built by hubtasks, whose outcome the builder may change)
  runs once per builder, `test_x[buildkit]` and `test_x[classic]`;
- a test about one builder's behaviour is marked `builder("classic")` (or passes HUB_BUILDER);
- every other test gets what a user gets: no HUB_BUILDER (auto, BuildKit on this daemon).
HUB_TEST_BUILDER=classic (or buildkit, auto) runs all but the pinned tests on that one builder.
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

BUILDERS = ("buildkit", "classic")


def suite_builders() -> tuple[str, ...]:
    """The builders a `builds` test runs on: both, or the one HUB_TEST_BUILDER names."""
    chosen = os.environ.get("HUB_TEST_BUILDER")
    return (chosen,) if chosen else BUILDERS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `project` takes the builder as its parameter, so the test id names it.
    marked = metafunc.definition.get_closest_marker
    if marked("builds") and not marked("builder") and "project" in metafunc.fixturenames:
        metafunc.parametrize("project", suite_builders(), indirect=True)


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
    builder: str | None = None  # HUB_BUILDER for every command; None: the user's default

    @property
    def token(self) -> str:
        return self.stack.password

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_", "INVOKE_"))
        }
        env.update(self.stack.env())
        env["DOCKER_CONFIG"] = str(self.docker_config)
        if self.builder:
            env["HUB_BUILDER"] = self.builder
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


def _builder(request: pytest.FixtureRequest) -> str | None:
    """A `builder("…")` marker, else this run's parameter (`builds`), else HUB_TEST_BUILDER."""
    pinned = request.node.get_closest_marker("builder")
    if pinned:
        return pinned.args[0]
    return getattr(request, "param", None) or os.environ.get("HUB_TEST_BUILDER")


@pytest.fixture
def project(request, tmp_path, stack) -> Project:
    """A fresh repository name per test, so tests never see each other's tags."""
    name = f"demo{next(_names)}"
    repository = f"{stack.username}/{name}"
    root = tmp_path / "project"
    root.mkdir()
    proj = Project(root, stack, repository, tmp_path / "docker-config", _builder(request))
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
