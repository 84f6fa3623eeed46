"""Local stand-ins for what registries in the wild do differently (issue 23, item 4): one
that takes no DELETE (the push-permission probe's upload cannot be cancelled), a robot
account whose name has `$` and `+` (Harbor's `robot$project+name`) in `.env`."""

from __future__ import annotations

import pytest

from devtools.stack import Registry
from tests.integration.conftest import Project


@pytest.fixture
def own_registry(stack, tmp_path):
    """A registry of the test's own, stopped at its end; `start(**options)` starts it."""
    started: list[Registry] = []

    def start(username: str = stack.username, **options) -> Registry:
        registry = Registry(tmp_path / "registry", username, stack.password, **options)
        registry.start()
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


def _at(project: Project, registry: Registry, **settings: str) -> None:
    for key in ("HUB_REGISTRY", *settings):
        project.drop_env(key)
    project.add_env(HUB_REGISTRY=registry.address, **settings)


def test_a_registry_without_delete(project: Project, own_registry) -> None:
    registry = own_registry(delete_enabled=False)
    _at(project, registry)
    result = project.inv("release", "--tag", "v1.0.0", "--semver")
    assert result.returncode == 0, result.stderr
    assert registry.tags(project.repository) == ["latest", "v1", "v1.0", "v1.0.0"]


def test_a_robot_account_name_with_dollar_and_plus(project: Project, own_registry) -> None:
    robot = "robot$ci+release"  # python-dotenv expands ${NAME}, never a bare $
    registry = own_registry(username=robot)
    _at(project, registry, HUB_USERNAME=f"'{robot}'")
    project.drop_env("HUB_REPOSITORY")
    project.add_env(HUB_REPOSITORY=project.repository)
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert f"as {robot}" in result.stderr
    assert registry.tags(project.repository) == ["v1"]
