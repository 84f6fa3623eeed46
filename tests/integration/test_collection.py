"""The collection nested in a consumer's own, and configured through Invoke config."""

from __future__ import annotations

from .conftest import assert_clean_failure

NESTED_TASKS = """\
from invoke import Collection, task
import hubtasks

@task
def hello(c):
    print("hello from the consumer")

ns = Collection(hello)
ns.add_collection(Collection.from_module(hubtasks), "hub")
{configure}
"""


def test_nested_release_uses_root_config(project, stack):
    """Invoke #782: a root `ns.configure({'hub': …})` must not lose our other defaults."""
    name = project.repository.split("/")[1]
    project.drop_env("HUB_REPOSITORY")
    project.write(
        "tasks.py",
        NESTED_TASKS.format(configure=f'ns.configure({{"hub": {{"repository": "{name}"}}}})'),
    )
    listing = project.inv("--list")
    assert "hub.release" in listing.stdout and "hello" in listing.stdout

    result = project.inv("hub.release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(f"{stack.registry}/{project.repository}:v1@sha256:")
    assert project.tags() == ["v1"]


def test_invoke_yaml_is_lowest_precedence(project, stack):
    """invoke.yaml sets the repository and tags; .env and flags still win over it."""
    project.write("invoke.yaml", "hub:\n  repository: fromyaml\n  tags: [yaml1]\n")
    result = project.inv("build")  # .env sets HUB_REPOSITORY, which beats invoke.yaml
    assert result.returncode == 0, result.stderr
    assert f"{project.repository}:yaml1" in result.stderr

    project.drop_env("HUB_REPOSITORY")
    result = project.inv("build", "--tag", "flag1")
    assert result.returncode == 0, result.stderr
    assert f"{stack.username}/fromyaml:flag1" in result.stderr


def test_nested_failure_is_clean(project):
    project.write("tasks.py", NESTED_TASKS.format(configure=""))
    result = project.inv("hub.release", "--tag", "-bad")
    assert_clean_failure(result, project)


def test_repository_own_tasks_release_the_demo_image(stack, client, tmp_path):
    """We eat our own cooking: the repo's tasks.py and invoke.yaml release demo/."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    env.update(
        stack.env(),
        DOCKER_CONFIG=str(tmp_path / "docker-config"),
        HUB_REGISTRY=stack.registry,
        HUB_USERNAME=stack.username,
        HUB_TOKEN=stack.password,
        HUB_BUILD_ARGS="BASE=busybox:local GREETING=dogfood",
    )
    listing = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    for name in ("release", "build", "test", "demo"):
        assert f"  {name} " in listing.stdout
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "release", "--tag", "dogfood"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    image = f"{stack.registry}/{stack.username}/hubtasks-demo:dogfood"
    assert result.stdout.startswith(image + "@sha256:")
    assert stack.registry_server.tags(f"{stack.username}/hubtasks-demo") == ["dogfood"]
    assert client.containers.run(image, remove=True, network_mode="none").strip() == b"dogfood"
