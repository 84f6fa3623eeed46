"""`hubtasks init` / `inv init`: the files it writes, that it never overwrites, what it says.

The last tests run the installed `hubtasks` console script and `python -m invoke` as a user
would (no daemon needed).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.cli.init import NEEDED, TASKS_PY, env_template, init_project
from hubtasks.settings.keys import KEYS
from tests.helpers.cli import invoke
from tests.helpers.consoles import make_console

REPO_ROOT = Path(__file__).resolve().parents[2]


def init(folder: Path):
    err = io.StringIO()
    report = init_project(folder, make_console("plain", err=err))
    return report, err.getvalue()


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch):
    for name in NEEDED:
        monkeypatch.delenv(name, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_empty_folder_gets_every_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        report, said = init(tmp_path)
    finally:
        os.umask(old_umask)
    assert (tmp_path / ".env").read_text() == env_template()
    assert mode(tmp_path / ".env") == 0o600
    assert (tmp_path / ".dockerignore").read_text() == ".env\n"
    assert (tmp_path / ".gitignore").read_text() == ".env\n"
    assert (tmp_path / "tasks.py").read_text() == TASKS_PY
    assert len(TASKS_PY.splitlines()) == 2
    assert report.to_fill == ["HUB_USERNAME", "HUB_TOKEN", "HUB_REPOSITORY"]
    last = said.splitlines()[-1]
    assert last == (
        "[init] next: fill in HUB_USERNAME, HUB_TOKEN, HUB_REPOSITORY in .env, then "
        "`inv release --tag v1`"
    )


def test_second_run_changes_nothing_and_says_so(tmp_path):
    init(tmp_path)
    before = {p.name: (p.read_bytes(), mode(p)) for p in tmp_path.iterdir()}
    report, said = init(tmp_path)
    after = {p.name: (p.read_bytes(), mode(p)) for p in tmp_path.iterdir()}
    assert after == before
    assert report.written == []
    assert "[init] .env exists, left as it was" in said
    assert "[init] .dockerignore already lists .env" in said
    assert "[init] tasks.py exists and uses hubtasks, left as it was" in said


def test_existing_files_are_extended_not_replaced(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules")  # no final newline
    (tmp_path / ".dockerignore").write_text("/.env\n")
    (tmp_path / "tasks.py").write_text("from invoke import task\n")
    env = tmp_path / ".env"
    env.write_text("HUB_USERNAME=alice\nHUB_REPOSITORY=web\n")
    env.chmod(0o644)
    report, said = init(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == "node_modules\n.env\n"
    assert (tmp_path / ".dockerignore").read_text() == "/.env\n"
    assert (tmp_path / "tasks.py").read_text() == "from invoke import task\n"
    assert env.read_text() == "HUB_USERNAME=alice\nHUB_REPOSITORY=web\n"
    assert "other users may read it: chmod 600 .env" in said
    assert "add `from hubtasks import ns`" in said
    assert report.to_fill == ["HUB_TOKEN"]


def test_a_setting_from_the_environment_is_not_left_to_fill(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_TOKEN", "from-ci-secret")
    report, _ = init(tmp_path)
    assert report.to_fill == ["HUB_USERNAME", "HUB_REPOSITORY"]


def test_template_leaves_only_the_needed_keys_to_fill_and_the_rest_commented():
    from dotenv import dotenv_values

    values = dict(dotenv_values(stream=io.StringIO(env_template())))
    assert values == dict.fromkeys(NEEDED, "")  # everything else is a comment


def test_template_explains_every_setting_and_nothing_else():
    text = env_template()
    named = set(re.findall(r"^#? ?(HUB_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    # A further registry's credentials are named after its host: an example of each is shown.
    per_registry = {n for n in named if re.fullmatch(r"HUB_REGISTRY_\w+_(USERNAME|TOKEN)", n)}
    assert len(per_registry) == 2
    assert named - per_registry == {key.env for key in KEYS}


def test_the_repository_example_is_the_packaged_template():
    example = REPO_ROOT / ".env.example"
    assert example.read_text(encoding="utf-8") == env_template()


def test_template_is_package_data():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"templates/*"' in pyproject
    assert (REPO_ROOT / "src" / "hubtasks" / "templates" / "env").is_file()


# --- as a user runs it ----------------------------------------------------------------------


def clean_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    env["HOME"] = str(root)
    return env


def test_hubtasks_init_in_an_empty_folder(tmp_path):
    cli = shutil.which("hubtasks", path=str(Path(sys.executable).parent))
    assert cli, "the hubtasks console script is not installed"
    result = subprocess.run(
        [cli, "init"], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # stdout is for results; init's report is for people
    assert "HUB_USERNAME, HUB_TOKEN, HUB_REPOSITORY" in result.stderr
    assert mode(tmp_path / ".env") == 0o600
    listing = invoke(tmp_path, "--list", docker_host=None)
    assert listing.returncode == 0, listing.stderr
    assert "release" in listing.stdout and "init" in listing.stdout


def test_inv_init_in_a_project_with_tasks_py(tmp_path):
    (tmp_path / "tasks.py").write_text("from hubtasks import ns\n")
    result = invoke(tmp_path, "init", docker_host=None)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".env").is_file() and (tmp_path / ".dockerignore").is_file()
    assert "tasks.py exists and uses hubtasks" in result.stderr


def test_an_ignore_file_that_is_not_text_is_one_clear_line(tmp_path):
    (tmp_path / ".gitignore").write_bytes(b"\xff\xfe not utf-8\n")
    (tmp_path / "tasks.py").write_text("from hubtasks import ns\n")
    result = invoke(tmp_path, "init", docker_host=None)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"hubtasks: cannot read {tmp_path}/.gitignore")
