"""What a new user meets: the installed wheel's `hubtasks init` then a release, clean stdout
with hooks, `--json` on failure, doctor without a tag source, "exists" on a terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from devtools.stack import BASE_IMAGE
from tests.helpers.terminal import run_in_pty

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with hubtasks installed from a wheel built from this tree.

    The wheel is built as the brief's `pip wheel . --no-deps` (in a copy of the tree, so no
    build files land in it). Its dependencies come from the test interpreter's site-packages
    through a .pth line (the machine cannot download them); that directory's own .pth files,
    among them the editable install of hubtasks, are not processed, so `hubtasks` is the
    wheel's."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")  # src/hubtasks/build is ours
    shutil.copytree(REPO_ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(root / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("hubtasks-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "hubtasks-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_init_in_an_empty_folder_then_release(wheel_venv, project, stack, tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    env = project.env(PATH=f"{wheel_venv / 'bin'}:{os.environ['PATH']}", HOME=str(tmp_path))
    python = str(wheel_venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import hubtasks; print(hubtasks.__file__)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(wheel_venv)), where.stdout + where.stderr

    init = subprocess.run(
        [str(wheel_venv / "bin" / "hubtasks"), "init"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    assert "fill in HUB_USERNAME, HUB_TOKEN, HUB_REPOSITORY in .env" in init.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        ".dockerignore",
        ".env",
        ".gitignore",
        "tasks.py",
    ]
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600

    # What the user does next: edit .env, write a Dockerfile.
    name = project.repository.split("/")[1]
    text = (folder / ".env").read_text()
    filled = {
        "HUB_USERNAME=": f"HUB_USERNAME={stack.username}",
        "HUB_TOKEN=": f"HUB_TOKEN={stack.password}",
        "HUB_REPOSITORY=": f"HUB_REPOSITORY={name}",
        "# HUB_REGISTRY=docker.io": f"HUB_REGISTRY={stack.registry}",
    }
    for line, value in filled.items():
        text = re.sub(rf"^{re.escape(line)}$", value, text, count=1, flags=re.MULTILINE)
    (folder / ".env").write_text(text)
    (folder / "Dockerfile").write_text(f'FROM {BASE_IMAGE}\nCMD ["echo", "{name}"]\n')

    release = subprocess.run(
        [python, "-m", "invoke", "release", "--tag", "v1"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert release.returncode == 0, release.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert release.stdout == f"{stack.registry}/{project.repository}:v1@{digest}\n"
    assert stack.password not in release.stdout + release.stderr


HOOKS = {
    "HUB_PRE_RELEASE": "echo pre-release-says-hello",
    "HUB_POST_PUSH": "echo post-push image=$HUB_IMAGE_ID digest=$HUB_DIGEST token=$HUB_TOKEN",
    "HUB_POST_RELEASE": "echo post-release >&2",
}


def test_hooks_leave_stdout_to_the_results(project, stack, client):
    project.add_env(**{key: repr(value) for key, value in HOOKS.items()})
    result = project.inv("release", "--tag", "v1", "--json", HUB_TOKEN=project.token)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # nothing but the one document
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert document["digest"] == digest
    image_id = client.images.get(f"{stack.registry}/{project.repository}:v1").id
    assert "pre-release-says-hello" in result.stderr
    assert f"post-push image={image_id} digest={digest} token=<hidden>" in result.stderr
    assert "post-release" in result.stderr
    assert project.token not in result.stdout + result.stderr

    plain = project.inv("release", "--tag", "v1")  # as in `> published.txt`
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{stack.registry}/{project.repository}:v1@{digest}\n"
    # The re-run skips v1, and its plan line says so once.
    assert f"[plan] {stack.registry}/{project.repository}:v1: unchanged (" in plain.stderr


def test_json_failure_after_a_push_lists_what_was_pushed(project, stack):
    project.add_env(HUB_POST_PUSH="false")
    result = project.inv("release", "--tag", "v1", "--json")
    assert result.returncode == 1
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 1 and error["stage"] == "push"
    assert error["pushed"] == [f"{stack.registry}/{project.repository}:v1@{digest}"]
    assert "post_push hook" in error["message"]
    assert result.stderr.strip().splitlines()[-1] == f"hubtasks: {error['message']}"


def test_doctor_without_a_tag_source_warns_and_passes(project):
    result = project.inv("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^! tags +no HUB_TAGS and .* is not in a git work tree", result.stdout, re.M)
    assert "commit" not in result.stdout
    assert "✗" not in result.stdout


def test_terminal_says_exists_for_layers_the_registry_has(project):
    name = project.repository.split("/")[1]
    project.write("Dockerfile", f"FROM busybox:local\nRUN echo {name}-one > /one\n")
    assert project.inv("release", "--tag", "one").returncode == 0
    project.write("Dockerfile", f"FROM busybox:local\nRUN echo {name}-two > /two\n")
    code, output = run_in_pty(project, "release", "--tag", "two")
    assert code == 0, output
    assert "exists" in output  # busybox's layer, pushed with `one`
    assert "already exists" not in output
    assert "1/1 bytes" not in output
