"""HUB_TOKEN empty: hubtasks uses what `docker login` left (the real docker CLI, a temporary
DOCKER_CONFIG), or what a `docker-credential-*` helper on PATH answers; `-v` and `inv doctor`
say where the credentials came from, never the secret."""

from __future__ import annotations

import json
import stat
import subprocess

from tests.integration.conftest import Project, assert_clean_failure


def _docker_only(project: Project) -> None:
    """The .env names the registry and the repository; the credentials are Docker's."""
    project.drop_env("HUB_TOKEN")
    project.drop_env("HUB_USERNAME")
    project.drop_env("HUB_REPOSITORY")
    project.add_env(HUB_REPOSITORY=project.repository)


def _helper(project: Project, body: str) -> str:
    """A docker-credential-fake on a PATH of its own; returns that PATH."""
    folder = project.path.parent / "helper-bin"
    folder.mkdir(exist_ok=True)
    program = folder / "docker-credential-fake"
    program.write_text(f'#!/bin/sh\nkey=$(cat)\necho "$1 $key" >> {folder}/calls.log\n{body}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return f"{folder}:{project.env()['PATH']}"


def test_docker_login_is_enough(project: Project) -> None:
    stack = project.stack
    login = subprocess.run(
        ["docker", "login", stack.registry, "-u", stack.username, "--password-stdin"],
        input=stack.password,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    config = project.docker_config / "config.json"
    assert stack.registry in json.loads(config.read_text())["auths"]
    _docker_only(project)

    result = project.inv("release", "--tag", "v1", "-v")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["v1"]
    assert f"logged in to {stack.registry} as {stack.username}" in result.stderr
    assert f"credentials from {config} (auths['{stack.registry}'])" in result.stderr
    assert stack.password not in result.stdout + result.stderr

    doctor = project.inv("doctor")
    assert f"token from {config} (auths['{stack.registry}'])" in doctor.stdout + doctor.stderr
    assert stack.password not in doctor.stdout + doctor.stderr
    saved = project.inv("login", "--save")
    assert saved.returncode == 0, saved.stderr
    assert f"the credentials came from {config} (auths['{stack.registry}']): nothing to save" in (
        saved.stderr
    )
    assert json.loads(config.read_text())["auths"].keys() == {stack.registry}  # not written


def test_credential_helper_on_path(project: Project) -> None:
    stack = project.stack
    project.docker_config.mkdir()
    (project.docker_config / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    answer = {"ServerURL": stack.registry, "Username": stack.username, "Secret": stack.password}
    listing = {stack.registry: stack.username}
    path = _helper(
        project,
        f"""case "$1" in get) echo '{json.dumps(answer)}';; list) echo '{json.dumps(listing)}';;
        *) exit 1;; esac""",
    )
    _docker_only(project)

    result = project.inv("release", "--tag", "v1", "-v", PATH=path)
    assert result.returncode == 0, result.stderr
    assert "credentials from docker-credential-fake (credsStore in " in result.stderr
    assert stack.password not in result.stdout + result.stderr
    calls = (project.path.parent / "helper-bin" / "calls.log").read_text().splitlines()
    # Ours first, before anything else runs; the SDK's build asks the store again itself.
    assert calls[0] == f"get {stack.registry}"
    assert not [call for call in calls if call.startswith(("store", "erase"))]


def test_failing_helper_is_one_line(project: Project) -> None:
    project.docker_config.mkdir()
    (project.docker_config / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    path = _helper(project, "echo 'store is locked' >&2; exit 3")
    _docker_only(project)

    result = project.inv("release", "--tag", "v1", PATH=path)
    last = assert_clean_failure(result, project, mentions="docker-credential-fake (credsStore in ")
    assert "exit 3: store is locked" in last
    assert project.tags() == []


def test_no_credentials_anywhere_says_docker_login(project: Project) -> None:
    _docker_only(project)
    result = project.inv("release", "--tag", "v1")
    assert_clean_failure(result, project, mentions=f"docker login {project.stack.registry}")


def test_an_identity_token_on_a_basic_registry_is_one_line(project: Project) -> None:
    """An identity token is traded at a Bearer token service (tests/unit/test_identity_token);
    a registry that asks for a user and password cannot take one, and says so."""
    project.docker_config.mkdir()
    document = {"auths": {project.stack.registry: {"identitytoken": "refresh-token-value"}}}
    (project.docker_config / "config.json").write_text(json.dumps(document))
    _docker_only(project)
    result = project.inv("release", "--tag", "v1")
    last = assert_clean_failure(result, project, mentions="asks for a user and password")
    assert "identity token" in last and "refresh-token-value" not in result.stderr
    assert project.tags() == []
