"""Doctor's advice fits the situation: no tag source is a warning, no "commit" outside git,
a real fix for the Dockerfile and context check. Files only; no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtasks.build.gitinfo import GitState
from hubtasks.doctor import _build_input_check, _git_check, _tags_check
from hubtasks.settings.destinations import registry_variables
from hubtasks.settings.resolve import resolve_settings
from tests.helpers.cli import GOOD_ENV, invoke, make_project

from .httpfakes import QuietHandler, serving

GIT = GitState(revision="a" * 40, exact_tag=None, dirty=False, commit_time=0, remote_url=None)


def settings(cwd: Path, **environ: str):
    base = {"HUB_USERNAME": "u", "HUB_TOKEN": "secret-token", "HUB_REPOSITORY": "app"}
    return resolve_settings(flags={}, environ={**base, **environ}, dotenv={}, config={}, cwd=cwd)


def test_no_tag_source_is_a_warning_that_release_needs_tag(tmp_path):
    check = _tags_check(settings(tmp_path), None)
    assert check.ok is None  # a warning: doctor still exits 0 when all else is healthy
    assert "`release` will need --tag" in check.detail
    assert "commit" not in check.detail + check.fix


def test_tags_from_settings_need_no_git(tmp_path):
    check = _tags_check(settings(tmp_path, HUB_TAGS="v1 edge"), None)
    assert (check.ok, check.detail) == (True, "v1, edge")


@pytest.mark.parametrize("dirty", [False, True])
def test_tags_from_git(tmp_path, dirty):
    state = GitState(**{**GIT.__dict__, "dirty": dirty})
    check = _tags_check(settings(tmp_path), state)
    if dirty:
        assert check.ok is False and "commit your changes" in check.fix
    else:
        assert (check.ok, check.detail) == (True, f"sha-{'a' * 7}")


def test_outside_git_the_git_check_gives_no_commit_advice(tmp_path):
    check = _git_check(None, tmp_path)
    assert check.ok is None
    assert "commit" not in check.detail
    assert "--tag" not in check.detail + check.fix  # the tags check says that, once


def test_context_leak_fix_is_the_line_to_add(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".env").write_text("HUB_TOKEN=secret-token\n")
    current = settings(tmp_path)
    current = type(current)(**{**current.__dict__, "env_file": tmp_path / ".env"})
    check = _build_input_check(current)
    assert check.ok is False
    assert check.fix == f"echo .env >> {tmp_path / '.dockerignore'}"
    (tmp_path / ".dockerignore").write_text(".env\n")  # what the fix does
    assert _build_input_check(current).ok is True


def test_missing_dockerfile_fix(tmp_path):
    check = _build_input_check(settings(tmp_path))
    assert check.ok is False
    assert check.fix.startswith(f"create {tmp_path / 'Dockerfile'}, or set HUB_DOCKERFILE")
    assert "see the message" not in check.fix


def test_doctor_outside_git_without_tags(tmp_path):
    # A closed port on this machine: doctor goes on to the registry checks.
    env = GOOD_ENV.replace("HUB_TAGS=v1\n", "") + "HUB_REGISTRY=127.0.0.1:9\n"
    root = make_project(tmp_path, env)
    result = invoke(root, "doctor")
    assert result.returncode == 1  # the daemon is not there (a dead socket)
    assert "! tags" in result.stdout and "`release` will need --tag" in result.stdout
    assert "commit" not in result.stdout
    assert "✗ Docker daemon" in result.stdout


def test_platform_checks_say_which_platforms_the_daemon_can_run(tmp_path):
    from hubtasks.doctor import platform_checks

    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n")
    (tmp_path / "qemu-arm").write_text("disabled\n")
    wanted = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x")
    checks = platform_checks(wanted, "linux/amd64", True, tmp_path)
    assert [c.ok for c in checks] == [True, True, None, None]
    assert "binfmt emulation for arm64" in checks[1].detail
    assert "RUN steps will fail" in checks[2].detail and "qemu-user-static" in checks[2].fix
    remote = platform_checks(("linux/arm64",), "linux/amd64", False, tmp_path)
    assert remote[0].ok is None and "another host" in remote[0].detail
    # Another OS: no emulation helps (it said "no binfmt emulation for amd64").
    (windows,) = platform_checks(("windows/amd64",), "linux/amd64", True, tmp_path)
    assert windows.ok is False and windows.detail == "the daemon runs linux: it cannot build " + (
        "windows/amd64"
    )


def test_an_identity_token_is_checked_with_the_registry_too(tmp_path):
    # Docker's identity token names no user: the registry and credential rows still run (a
    # closed port on this machine: the registry row fails), and no row reads "as None".
    from dataclasses import replace

    from hubtasks.doctor import _registry_checks

    found = replace(
        settings(tmp_path, HUB_REGISTRY="127.0.0.1:9", HUB_RETRIES="1"),
        username=None,
        token="refresh-token",
        identity_token=True,
    )
    checks = _registry_checks(found)
    assert [check.name for check in checks] == ["registry"]
    assert checks[0].ok is False


class _Refusing(QuietHandler):
    """A registry that refuses every credential (HTTP 401 with a Basic challenge)."""

    def do_GET(self):
        self._send(401, b"{}", [("WWW-Authenticate", 'Basic realm="test"')])


def test_credentials_docker_holds_that_are_refused_get_docker_login_as_the_fix(tmp_path):
    from dataclasses import replace

    from hubtasks.doctor import _registry_checks

    with serving(_Refusing) as httpd:
        registry = f"127.0.0.1:{httpd.server_address[1]}"
        stale = replace(
            settings(tmp_path, HUB_REGISTRY=registry, HUB_RETRIES="1"),
            sources={"token": f"{tmp_path}/config.json (auths['{registry}'])"},
        )
        own = settings(tmp_path, HUB_REGISTRY=registry, HUB_RETRIES="1")
        stale_row, own_row = _registry_checks(stale)[1], _registry_checks(own)[1]
    assert stale_row.ok is False and own_row.ok is False
    assert stale_row.fix == f"docker login {registry} again, or set HUB_TOKEN"
    assert own_row.fix == "set HUB_TOKEN to a valid password or access token"


def test_every_destination_is_checked(tmp_path, monkeypatch):
    # A further registry without credentials: doctor says so, as the release would.
    from hubtasks.doctor import run_checks

    (tmp_path / "docker").mkdir()
    for name, value in {
        "HUB_USERNAME": "alice",
        "HUB_TOKEN": "secret-token",
        "HUB_REGISTRY": "127.0.0.1:9",
        "HUB_REPOSITORY": "alice/app quay.io/alice/app",
        "HUB_RETRIES": "1",
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
    }.items():
        monkeypatch.setenv(name, value)
    checks = run_checks(cwd=tmp_path, env_file=tmp_path / ".env")
    failed = " | ".join(check.detail for check in checks if check.ok is False)
    assert "HUB_REGISTRY_QUAY_IO_USERNAME, HUB_REGISTRY_QUAY_IO_TOKEN" in failed


def test_a_further_registry_refusing_its_token_names_its_own_setting(tmp_path):
    from dataclasses import replace

    from hubtasks.doctor import _registry_checks

    with serving(_Refusing) as httpd:
        registry = f"127.0.0.1:{httpd.server_address[1]}"
        user_key, token_key = registry_variables(registry)
        further = replace(
            settings(tmp_path, HUB_REGISTRY=registry, HUB_RETRIES="1"),
            sources={"username": user_key, "token": token_key},
        )
        row = _registry_checks(further)[1]
    assert row.ok is False
    assert f"check {user_key} and {token_key}" in row.detail
    assert row.fix == f"set {token_key} to a valid password or access token"
