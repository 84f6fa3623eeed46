"""Hooks, chaining, the standalone CLI, the Python API from nox, --json and GITHUB_OUTPUT."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import assert_clean_failure

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RECORD = 'echo "$HUB_STAGE|{side}|$HUB_TAGS|$HUB_DIGEST|$HUB_REFS|$HUB_IMAGE" >> hooks.log'


def _shell_hooks(project, *names: str) -> None:
    lines = [f"HUB_{n.upper()}={RECORD.format(side=n.split('_')[0])!r}" for n in names]
    project.write(".env", project.path.joinpath(".env").read_text() + "\n".join(lines) + "\n")


def _log(project) -> list[list[str]]:
    path = project.path / "hooks.log"
    return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []


def test_shell_hooks_run_in_order_with_the_registry_digest(project, stack):
    stages = ("login", "build", "tag", "push", "release")
    _shell_hooks(project, *(f"{side}_{s}" for s in stages for side in ("pre", "post")))
    result = project.inv("release", "--tag", "v1", "--tag", "stable")
    assert result.returncode == 0, result.stderr
    order = [f"{side}_{stage}" for stage, side, *_ in _log(project)]
    assert order == [
        "pre_release",
        "pre_login",
        "post_login",
        "pre_build",
        "post_build",
        "pre_tag",
        "post_tag",
        "pre_push",
        "post_push",
        "post_release",
    ]
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    post_push = _log(project)[8]
    assert post_push[2] == "v1 stable" and post_push[3] == digest
    prefix = f"{stack.registry}/{project.repository}"
    assert post_push[4] == f"{prefix}:v1@{digest} {prefix}:stable@{digest}"
    assert post_push[5] == prefix
    assert _log(project)[-1][3] == digest  # post_release sees it too


def test_failing_pre_release_builds_and_pushes_nothing(project):
    project.write(".env", project.path.joinpath(".env").read_text() + "HUB_PRE_RELEASE=exit 7\n")
    result = project.inv("release", "--tag", "v1")
    last = assert_clean_failure(result, project, mentions="pre_release hook")
    assert "exit code 7" in last and "did not run" in last
    assert "Step 1/" not in result.stderr
    assert project.tags() == []


def test_failing_post_push_fails_but_says_the_push_succeeded(project):
    project.write(".env", project.path.joinpath(".env").read_text() + "HUB_POST_PUSH=false\n")
    result = project.inv("release", "--tag", "v1")
    last = assert_clean_failure(result, project, mentions="post_push hook")
    assert "the push stage itself succeeded" in last
    assert project.tags() == ["v1"]


PY_HOOKS = """\
import json
from invoke import Collection, task
import hubtasks

@task
def record(c, facts):
    with open("py-hooks.log", "a") as log:
        log.write(json.dumps({{"stage": facts.stage, "digest": facts.digest,
                              "tags": facts.tags, "refs": facts.refs,
                              "repo_config": c.config.hub.repository}}) + "\\n")

def gate(c, facts):
    with open("py-hooks.log", "a") as log:
        log.write(json.dumps({{"stage": "gate", "tags": facts.tags}}) + "\\n")

hubtasks.hook("pre_release", gate)
hubtasks.hook("post_push", record)
hubtasks.hook("post_release", record)
{collection}
"""


@pytest.mark.parametrize("nested", [False, True], ids=["root", "nested"])
def test_python_hooks_at_root_and_nested(project, stack, nested):
    """Invoke #548/#782: nested, hooks still see the root's hub config; the release works."""
    name = project.repository.split("/")[1]
    project.drop_env("HUB_REPOSITORY")
    if nested:
        collection = (
            "ns = Collection()\n"
            "ns.add_collection(Collection.from_module(hubtasks), 'hub')\n"
            f"ns.configure({{'hub': {{'repository': '{name}'}}}})\n"
        )
        task_name = "hub.release"
    else:
        collection = f"ns = hubtasks.ns\nns.configure({{'hub': {{'repository': '{name}'}}}})\n"
        task_name = "release"
    project.write("tasks.py", PY_HOOKS.format(collection=collection))
    result = project.inv(task_name, "--tag", "v1")
    assert result.returncode == 0, result.stderr
    records = [
        json.loads(line) for line in (project.path / "py-hooks.log").read_text().splitlines()
    ]
    assert [r["stage"] for r in records] == ["gate", "push", "release"]
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert records[1]["digest"] == records[2]["digest"] == digest
    assert records[2]["repo_config"] == name
    assert records[2]["refs"] == [f"{stack.registry}/{project.repository}:v1@{digest}"]


def test_python_hook_failure_in_pre_stops_the_stage(project):
    project.write(
        "tasks.py",
        "from invoke import Exit\nimport hubtasks\nfrom hubtasks import ns\n"
        "def gate(c, facts):\n    raise Exit('tests failed')\n"
        "hubtasks.hook('pre_build', gate)\n",
    )
    result = project.inv("release", "--tag", "v1")
    last = assert_clean_failure(result, project, mentions="pre_build hook gate")
    assert "tests failed" in last
    assert project.tags() == []


@pytest.mark.builder("classic")  # about the classic builder's output
def test_chained_tasks_share_one_login_one_build_and_the_tags(project, stack):
    _shell_hooks(project, "pre_login", "post_build")
    result = project.inv("login", "build", "--tag", "c1", "tag", "--tag", "c2", "push")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("[login] logged in to") == 1
    assert result.stderr.count("Step 1/") == 1
    assert project.tags() == ["c1", "c2"]
    assert [row[0] for row in _log(project)] == ["login", "build"]  # each hook once

    again = project.inv("build", "--tag", "c3", "push")
    assert again.returncode == 0, again.stderr
    assert project.tags() == ["c1", "c2", "c3"]
    assert again.stdout.strip().endswith(
        stack.registry_server.manifest_digest(project.repository, "c3")
    )


@pytest.mark.builds
def test_json_result_and_github_output(project, stack, tmp_path):
    output = tmp_path / "github_output"
    output.write_text("earlier=1\n")
    result = project.inv(
        "release", "--tag", "v2.0.0", "--semver", "--json", GITHUB_OUTPUT=str(output)
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout holds exactly one JSON document
    digest = stack.registry_server.manifest_digest(project.repository, "v2.0.0")
    assert document["digest"] == digest
    assert document["image"] == f"{stack.registry}/{project.repository}"
    assert document["created"] == ["v2.0.0", "v2.0", "v2", "latest"]
    assert {t["tag"]: t["digest"] for t in document["tags"]} == dict.fromkeys(
        ["v2.0.0", "v2.0", "v2", "latest"], digest
    )
    assert set(document["timings"]) >= {"login", "build", "push", "verify"}
    assert "[push]" in result.stderr  # human output went to stderr

    lines = output.read_text().splitlines()
    assert lines[0] == "earlier=1"
    assert f"digest={digest}" in lines
    assert "tags=v2.0.0,v2.0,v2,latest" in lines
    assert f"image={stack.registry}/{project.repository}" in lines
    refs_start = next(i for i, line in enumerate(lines) if line.startswith("refs<<"))
    assert lines[refs_start + 1] == f"{stack.registry}/{project.repository}:v2.0.0@{digest}"

    again = project.inv("release", "--tag", "v2.0.0", "--semver", "--json")
    assert json.loads(again.stdout)["skipped"] == ["v2.0.0", "v2.0", "v2", "latest"]

    # A GITHUB_OUTPUT that cannot be written: one error document, naming what is published.
    unwritable = tmp_path / "no-such-folder" / "out"
    broken = project.inv("release", "--tag", "v2.0.1", "--json", GITHUB_OUTPUT=str(unwritable))
    assert broken.returncode == 1
    error = json.loads(broken.stdout)["error"]  # the only document on stdout
    assert (
        "GITHUB_OUTPUT" in error["message"]
        and "the release itself is published" in (error["message"])
    )
    assert [ref.split("@")[0] for ref in error["pushed"]] == [
        f"{stack.registry}/{project.repository}:v2.0.1"
    ]
    assert "unexpected" not in broken.stderr


def test_standalone_cli_in_a_folder_with_only_env_and_dockerfile(project, stack):
    (project.path / "tasks.py").unlink()
    cli = shutil.which("hubtasks", path=str(Path(sys.executable).parent))
    assert cli, "the hubtasks console script is not installed"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("hubtasks ")
    result = project.run(cli, "release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert result.stdout.strip() == f"{stack.registry}/{project.repository}:v1@{digest}"
    bad = project.run(cli, "release", "--tag", "bad tag")
    assert_clean_failure(bad, project, mentions="bad tag")


def test_example_tasks_py_gate_and_notify(project, stack):
    shutil.copy(EXAMPLES / "tasks.py", project.path / "tasks.py")
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert "running the test suite" in result.stdout + result.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert (project.path / "published.log").read_text() == (
        f"{stack.registry}/{project.repository}@{digest} v1\n"
    )


def test_example_noxfile_uses_the_python_api(project, stack):
    pytest.importorskip("nox")
    shutil.copy(EXAMPLES / "noxfile.py", project.path / "noxfile.py")
    result = project.run(sys.executable, "-m", "nox", "-s", "release", "--", "n1")
    assert result.returncode == 0, result.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "n1")
    assert f"published {stack.registry}/{project.repository}:n1@{digest}" in result.stderr
    assert project.token not in result.stdout + result.stderr
