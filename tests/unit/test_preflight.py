"""check_context: refuse a context that would send the token's .env (real files, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtasks.api import check_context
from hubtasks.errors import ConfigError, ContextLeakError
from hubtasks.settings.resolve import resolve_settings

TOKEN_ENV = "HUB_USERNAME=u\nHUB_TOKEN=supersecret-xyz\n"


def settings_for(cwd: Path, context: str = "."):
    return resolve_settings(
        flags={"context": context},
        environ={},
        dotenv={},
        config={},
        cwd=cwd,
        env_file=cwd / ".env",
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_leak_error_is_a_config_error():
    assert issubclass(ContextLeakError, ConfigError)
    assert ContextLeakError.exit_code == 2


def test_env_with_token_and_no_dockerignore_is_refused(tmp_path):
    env = write(tmp_path / ".env", TOKEN_ENV)
    with pytest.raises(ContextLeakError) as info:
        check_context(settings_for(tmp_path))
    message = str(info.value)
    assert str(env) in message
    assert "HUB_TOKEN" in message
    assert f"add the line '.env' to {tmp_path / '.dockerignore'}" in message
    assert "supersecret-xyz" not in message


@pytest.mark.parametrize(
    "ignore",
    [
        ".env\n",
        "# keep secrets out\n.env\n",
        "  .env  \n",
        "/.env\n",
        "./.env\n",
        "**/.env\n",
        ".env*\n",
        "*\n",
        "*\n!src\n",
    ],
)
def test_dockerignore_that_excludes_env_passes(tmp_path, ignore):
    write(tmp_path / ".env", TOKEN_ENV)
    write(tmp_path / ".dockerignore", ignore)
    check_context(settings_for(tmp_path))


@pytest.mark.parametrize(
    "ignore",
    [
        "*\n!.env\n",
        ".env\n!.env\n",
        "# .env\n",
        "node_modules\n*.pyc\n",
        "src/.env\n",
        "",
    ],
)
def test_dockerignore_that_keeps_env_is_refused(tmp_path, ignore):
    env = write(tmp_path / ".env", TOKEN_ENV)
    write(tmp_path / ".dockerignore", ignore)
    with pytest.raises(ContextLeakError) as info:
        check_context(settings_for(tmp_path))
    assert str(env) in str(info.value)
    assert ".dockerignore" in str(info.value)


@pytest.mark.parametrize("text", ["HUB_USERNAME=u\n", "HUB_TOKEN=\n", "HUB_TOKEN\n", ""])
def test_env_without_a_token_passes(tmp_path, text):
    write(tmp_path / ".env", text)
    check_context(settings_for(tmp_path))


def test_no_env_at_all_passes(tmp_path):
    check_context(settings_for(tmp_path))


def test_subfolder_context_without_the_cwd_env_passes(tmp_path):
    write(tmp_path / ".env", TOKEN_ENV)
    write(tmp_path / "app" / "Dockerfile", "FROM scratch\n")
    check_context(settings_for(tmp_path, "app"))


def test_env_with_token_inside_a_subfolder_context_is_refused(tmp_path):
    inner = write(tmp_path / "app" / ".env", TOKEN_ENV)
    with pytest.raises(ContextLeakError) as info:
        check_context(settings_for(tmp_path, "app"))
    message = str(info.value)
    assert str(inner) in message
    assert str(tmp_path / "app" / ".dockerignore") in message


def test_parent_context_names_the_relative_line_to_add(tmp_path):
    project = tmp_path / "project"
    env = write(project / ".env", TOKEN_ENV)
    write(tmp_path / ".dockerignore", ".env\n")  # only the top-level .env
    with pytest.raises(ContextLeakError) as info:
        check_context(settings_for(project, ".."))
    message = str(info.value)
    assert str(env) in message
    assert "add the line 'project/.env'" in message


def test_parent_context_ignoring_the_nested_env_passes(tmp_path):
    project = tmp_path / "project"
    write(project / ".env", TOKEN_ENV)
    write(tmp_path / ".dockerignore", "project/.env\n")
    check_context(settings_for(project, ".."))
