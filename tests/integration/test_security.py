"""Secrets never leak: not in any output at the highest verbosity, not in any process's argv."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest

TASK_RUNS = [
    ("login",),
    ("login", "--save"),
    ("logout",),
    ("build", "--tag", "s1", "--verbose"),
    ("tag", "--source", "s1", "--tag", "s2"),
    ("push", "--tag", "s1", "--tag", "s2", "--verbose"),
    ("release", "--tag", "s3", "--verbose", "--semver"),
    ("release", "--tag", "v9.9.9", "--dry-run", "--semver"),
    ("release", "--tag", "s4", "--json"),
    ("promote", "--source", "s4", "--tag", "s6", "--verbose"),
    ("doctor", "--tag", "s5"),
    ("images",),
    # failures
    ("push", "--tag", "never-built"),
    ("release", "--tag", "bad tag"),
    ("build", "--tag", "x", "--dockerfile", "Missing"),
]


def _forms(project) -> list[str]:
    user = project.stack.username
    token = project.token
    return [token, base64.b64encode(f"{user}:{token}".encode()).decode()]


def _assert_no_secret(text: str, forms: list[str], what: str) -> None:
    for form in forms:
        assert form not in text, f"{what} leaked {form[:4]}…"


@pytest.mark.builds
@pytest.mark.parametrize("debug", ["-d", None], ids=["inv-debug", "plain"])
def test_no_task_prints_the_token_at_any_verbosity(project, debug):
    forms = _forms(project)
    for args in TASK_RUNS:
        cli = [debug, *args] if debug else list(args)
        result = project.inv(*cli, GITHUB_OUTPUT=str(project.path / "gh-output"))
        _assert_no_secret(result.stdout + result.stderr, forms, " ".join(cli))
    # Failures with a wrong token: that token is a secret too.
    wrong = "wrong-but-secret-token"
    for args in (("login",), ("release", "--tag", "w1"), ("doctor", "--tag", "w1")):
        result = project.inv(*([debug] if debug else []), *args, HUB_TOKEN=wrong)
        assert result.returncode != 0
        _assert_no_secret(result.stdout + result.stderr, [wrong], " ".join(args))
    gh_output = project.path / "gh-output"
    _assert_no_secret(gh_output.read_text() if gh_output.exists() else "", forms, "GITHUB_OUTPUT")


@pytest.mark.builds
def test_token_in_invoke_yaml_is_hidden_from_invoke_debug_output(project):
    project.drop_env("HUB_TOKEN")
    project.write("invoke.yaml", f"hub:\n  token: {project.token}\n")
    result = project.inv("-d", "release", "--tag", "yaml1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "invoke.config" in result.stderr  # the debug output really was there
    _assert_no_secret(result.stdout + result.stderr, _forms(project), "inv -d with invoke.yaml")


@pytest.mark.builds
def test_standalone_cli_debug_output_hides_the_token(project):
    import shutil
    import subprocess
    import sys

    (project.path / "tasks.py").unlink()
    cli = shutil.which("hubtasks", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [cli, "-d", "release", "--tag", "cli1", "--verbose"],
        cwd=project.path,
        env=project.env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_no_secret(result.stdout + result.stderr, _forms(project), "hubtasks -d")


def _scan_argv(stop: threading.Event, forms: list[str], seen: list[str], found: list[str]):
    while not stop.is_set():
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            argv = raw.replace(b"\0", b" ").decode(errors="replace")
            if argv and argv not in seen:
                seen.append(argv)
            if any(form in argv for form in forms):
                found.append(argv)


def test_no_process_argv_holds_the_token_during_login_and_push(project):
    name = project.repository.split("/")[1]
    project.write(
        "Dockerfile",
        f"FROM busybox:local\nRUN echo {name} && "
        "dd if=/dev/urandom of=/blob bs=1024 count=8192 2>/dev/null\n",
    )
    forms = _forms(project)
    stop, seen, found = threading.Event(), [], []
    scanner = threading.Thread(target=_scan_argv, args=(stop, forms, seen, found))
    scanner.start()
    try:
        for args in (("login", "--save"), ("release", "--tag", "argv1"), ("logout",)):
            result = project.inv(*args)
            assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        scanner.join()
    assert found == []
    assert any("invoke" in argv and "release" in argv for argv in seen), "the scan saw nothing"


def test_login_save_writes_only_its_own_entry_and_logout_removes_only_it(project, stack):
    import json

    config = project.docker_config / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps({"auths": {"other.example": {"auth": "b3RoZXI6eA=="}}, "psFormat": "table"})
    )
    assert project.inv("login", "--save").returncode == 0
    saved = json.loads(config.read_text())
    assert set(saved["auths"]) == {"other.example", stack.registry}
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    result = project.inv("logout")
    assert result.returncode == 0 and "removed the credentials" in result.stderr
    after = json.loads(config.read_text())
    assert after == {"auths": {"other.example": {"auth": "b3RoZXI6eA=="}}, "psFormat": "table"}
    again = project.inv("logout")
    assert again.returncode == 0 and "no saved credentials" in again.stderr

    # Another account's entry for this registry (a `docker login` of someone else) stays.
    theirs = {"auth": "YWRtaW46YWRtaW5wdw=="}  # admin:adminpw
    config.write_text(json.dumps({"auths": {stack.registry: theirs}}))
    kept = project.inv("logout")
    assert kept.returncode == 0 and "are admin's, not hubuser's" in kept.stderr, kept.stderr
    assert json.loads(config.read_text()) == {"auths": {stack.registry: theirs}}


def test_env_file_warnings(project):
    import subprocess

    (project.path / ".env").chmod(0o644)
    result = project.inv("build", "--tag", "w")
    assert "other users may read it" in result.stderr and "chmod 600" in result.stderr
    (project.path / ".env").chmod(0o600)
    git_env = {
        **project.env(),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for command in (["init", "-q"], ["add", "-f", ".env"], ["commit", "-qm", "oops"]):
        subprocess.run(["git", *command], cwd=project.path, env=git_env, check=True)
    tracked = project.inv("build", "--tag", "w")
    assert "git tracks it" in tracked.stderr
    quiet = project.inv("build", "--tag", "w", "--quiet")
    assert quiet.stderr == ""


HELPER = """#!/bin/sh
# A real credential helper program (the docker-credential protocol), storing in files.
echo "$@" >> "$HUBTEST_STORE/argv"
case "$1" in
  store) cat > "$HUBTEST_STORE/stored.json" ;;
  erase) cat > "$HUBTEST_STORE/erased" ;;
  list) echo "{}" ;;
  get) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


def test_login_save_uses_the_configured_credential_helper(project, stack, tmp_path):
    import json

    helper_dir, store = tmp_path / "helper-bin", tmp_path / "store"
    helper_dir.mkdir()
    store.mkdir()
    helper = helper_dir / "docker-credential-hubtest"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    config = project.docker_config / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"credsStore": "hubtest"}))
    env = {"PATH": f"{helper_dir}:{os.environ['PATH']}", "HUBTEST_STORE": str(store)}

    saved = project.inv("login", "--save", **env)
    assert saved.returncode == 0, saved.stderr
    assert "docker-credential-hubtest" in saved.stderr
    stored = json.loads((store / "stored.json").read_text())
    assert stored == {
        "ServerURL": stack.registry,
        "Username": stack.username,
        "Secret": stack.password,
    }
    assert json.loads(config.read_text()) == {"credsStore": "hubtest"}  # no auths written
    assert project.token not in (store / "argv").read_text()  # the secret went over stdin

    removed = project.inv("logout", **env)
    assert removed.returncode == 0, removed.stderr
    assert (store / "erased").read_text().strip() == stack.registry
