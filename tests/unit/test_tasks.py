"""The Invoke collection and how its errors reach a person (DOCKER_HOST is a dead socket).

The subprocess tests run `python -m invoke` in a throwaway project whose tasks.py is
`from hubtasks import ns`; each takes about a quarter of a second.
"""

from __future__ import annotations

import inspect
import io
import re
import subprocess
import types

import pytest
from invoke import Exit

import hubtasks
from hubtasks import ns
from hubtasks.cli import run
from hubtasks.errors import ConfigError, DaemonError
from hubtasks.ui.console import Console
from tests.helpers.cli import (
    GOOD_ENV,
    TASK_NAMES,
    TOKEN,
    assert_one_line_error,
    dead_socket,
    invoke,
    make_project,
)
from tests.helpers.consoles import make_console

# --- the collection ---------------------------------------------------------------------


def test_ns_is_exported_and_holds_every_task():
    assert hubtasks.ns is ns
    assert set(ns.tasks) == TASK_NAMES


def parameters(task) -> list[str]:
    return list(inspect.signature(task.body).parameters)[1:]  # without the context `c`


@pytest.mark.parametrize("name", sorted(TASK_NAMES))
def test_every_parameter_has_help(name):
    arguments = ns[name].get_arguments()
    assert sorted(arg.name for arg in arguments) == sorted(parameters(ns[name]))
    undocumented = [arg.name for arg in arguments if not arg.help]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(TASK_NAMES))
def test_every_task_has_a_docstring(name):
    assert (ns[name].__doc__ or "").strip()
    # `inv --list` shows the first line alone: it must be a whole sentence.
    first = (ns[name].__doc__ or "").strip().splitlines()[0]
    assert first.endswith("."), first


@pytest.mark.parametrize(
    "name, iterable",
    [
        (
            "build",
            {"tag", "repository", "build_arg", "label", "platform", "cache_from", "secret", "ssh"},
        ),
        (
            "release",
            {"tag", "repository", "build_arg", "label", "platform", "cache_from", "secret", "ssh"},
        ),
        ("tag", {"tag", "repository"}),
        ("push", {"tag", "repository"}),
        ("login", {"repository"}),
    ],
)
def test_repeatable_flags(name, iterable):
    assert {arg.name for arg in ns[name].get_arguments() if arg.kind is list} == iterable


def test_no_task_takes_the_token_as_a_flag():
    for name in TASK_NAMES:
        assert "token" not in parameters(ns[name])


def test_the_collection_declares_no_hub_config():
    """Invoke cannot merge a declared None with a value of another shape: an empty `hub:`
    section or a `build_args` mapping in invoke.yaml failed with a traceback."""
    assert "hub" not in ns.configuration()


@pytest.mark.parametrize(
    ("yaml", "fragment"),
    [
        ("hub:\n#  registry: x\n", "missing setting: HUB_REPOSITORY"),
        # A bad entry in each shape: the refusal quotes it, so the value was read.
        (
            "hub:\n  repository: app\n  build_args: {'1bad': x, Y: 3}\n",
            "hub.build_args in Invoke config: '1bad=x' is not a build argument",
        ),
        (
            "hub:\n  repository: app\n  labels: {'-bad': core}\n",
            "hub.labels in Invoke config: '-bad=core' is not a label",
        ),
        (
            "hub:\n  repository: app\n  build_args: ['1bad=x']\n",
            "'1bad=x' is not a build argument",
        ),
    ],
)
def test_any_shape_of_hub_config_in_invoke_yaml_is_read(tmp_path, yaml, fragment):
    (tmp_path / "tasks.py").write_text("from hubtasks import ns\n")
    (tmp_path / "invoke.yaml").write_text(yaml)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".env").write_text("HUB_USERNAME=alice\nHUB_TOKEN=s3cret\n")
    result = invoke(tmp_path, "release", "--tag", "v1", "--dry-run")
    assert "Traceback" not in result.stderr and "MergeError" not in result.stderr, result.stderr
    assert result.returncode == 2 and fragment in result.stderr, result.stderr


# --- run_stage: one line, the right exit code, redacted --------------------------------------


def run_failing(error: BaseException, console: Console | None = None) -> Exit:
    def action():
        raise error

    with pytest.raises(Exit) as info:
        run.run_stage(action, "release")  # the console registered its secrets for every output
    return info.value


def test_hub_error_becomes_one_redacted_line_with_its_exit_code():
    console = make_console(secrets=[TOKEN])
    exit_ = run_failing(ConfigError(f"bad value {TOKEN}"), console)
    assert exit_.message == "hubtasks: bad value <hidden>"
    assert exit_.code == 2
    assert run_failing(DaemonError("down")).code == 1


def test_unexpected_error_is_one_line_with_a_hint(monkeypatch):
    monkeypatch.delenv("HUB_DEBUG", raising=False)
    exit_ = run_failing(ValueError(f"odd {TOKEN}"), make_console(secrets=[TOKEN]))
    assert exit_.message.startswith("hubtasks: unexpected ValueError: odd <hidden>")
    assert "HUB_DEBUG=1" in exit_.message
    assert exit_.code == 1


def test_unexpected_error_is_raised_with_hub_debug(monkeypatch):
    monkeypatch.setenv("HUB_DEBUG", "1")

    def action():
        raise ValueError("odd")

    with pytest.raises(ValueError, match="odd"):
        run.run_stage(action, "release")


def test_interrupt_exits_130():
    exit_ = run_failing(KeyboardInterrupt())
    assert (exit_.message, exit_.code) == ("hubtasks: interrupted", 130)


def test_an_interrupt_after_tags_landed_says_which(monkeypatch):
    """Ctrl-C during a release that has pushed some tags: the line and --json name them."""
    import io
    import json

    from hubtasks.pipeline.results import PushedTag
    from hubtasks.pipeline.session import Session
    from hubtasks.references import Repository

    out = io.StringIO()
    console = make_console("plain", out=out)
    session = Session(console=console, context=object())
    repository = Repository(registry="127.0.0.1:5000", path="alice/app")
    session.ledger.landed(PushedTag(repository, "v1", "sha256:" + "a" * 64))
    monkeypatch.setattr(run, "_SESSION", session)

    def action():
        raise KeyboardInterrupt

    with pytest.raises(Exit) as info:
        run.run_stage(action, "release", json_to=console)
    ref = f"127.0.0.1:5000/alice/app:v1@sha256:{'a' * 64}"
    assert info.value.message == f"hubtasks: interrupted; already pushed: {ref}"
    assert info.value.code == 130
    assert json.loads(out.getvalue())["error"]["pushed"] == [ref]


def test_success_returns_the_value():
    assert run.run_stage(lambda: 42, "release") == 42


@pytest.mark.parametrize(
    "env, args, files, fragments",
    [
        pytest.param(
            GOOD_ENV,
            ["--tag", "bad tag!"],
            {},
            ["--tag: 'bad tag!' is not a valid tag"],
            id="bad-tag",
        ),
        pytest.param(
            GOOD_ENV,
            [],
            {"dockerfile": False},
            ["Dockerfile '", "/Dockerfile' (", ") not found"],
            id="missing-dockerfile",
        ),
        pytest.param(
            GOOD_ENV.replace("HUB_REPOSITORY=demo", "HUB_REPOSITORY=Bad/Name"),
            [],
            {},
            ["HUB_REPOSITORY in .env: 'Bad/Name'", "lowercase"],
            id="uppercase-repository",
        ),
        pytest.param(
            GOOD_ENV,
            ["--repository", "Bad/Flag"],
            {},
            ["--repository: 'Bad/Flag'"],
            id="flag-beats-dotenv",
        ),
        pytest.param(
            GOOD_ENV.replace(f"HUB_TOKEN={TOKEN}\n", ""),
            [],
            {},
            ["missing setting: HUB_TOKEN"],
            id="missing-token",
        ),
        pytest.param(
            GOOD_ENV.replace("HUB_TAGS=v1\n", ""),
            [],
            {},
            ["no tag given", "not in a git work tree", "--tag"],
            id="no-tag-outside-git",
        ),
        pytest.param(
            GOOD_ENV,
            [],
            {"dockerignore": False},
            ["refusing to build", "/.env", ".dockerignore"],
            id="context-leak",
        ),
    ],
)
def test_release_config_error_is_one_line(tmp_path, env, args, files, fragments):
    root = make_project(tmp_path, env, **files)
    line = assert_one_line_error(invoke(root, "release", *args), code=2)
    for fragment in fragments:
        assert fragment in line


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_release_without_a_daemon_names_the_socket(tmp_path, where):
    socket = dead_socket(tmp_path)
    if where == "environment":
        root = make_project(tmp_path)
        result = invoke(root, "release", docker_host=socket)
    else:
        root = make_project(tmp_path, GOOD_ENV + f"DOCKER_HOST={socket}\n")
        result = invoke(root, "release", docker_host=None)
    line = assert_one_line_error(result, code=1)
    assert f"cannot connect to the Docker daemon at {socket}" in line
    assert "DOCKER_HOST" in line


def test_invoke_config_reaches_the_settings(tmp_path):
    root = make_project(tmp_path, f"HUB_USERNAME=u\nHUB_TOKEN={TOKEN}\n")
    (root / "invoke.yaml").write_text("hub:\n  repository: Bad/Config\n")
    line = assert_one_line_error(invoke(root, "release"), code=2)
    assert "hub.repository in Invoke config: 'Bad/Config'" in line


def test_host_in_repository_works_through_invoke(tmp_path):
    root = make_project(
        tmp_path,
        GOOD_ENV.replace("HUB_REGISTRY=127.0.0.1:9\n", "").replace("=demo", "=127.0.0.1:9/u/demo"),
    )
    line = assert_one_line_error(invoke(root, "release"), code=1)
    assert dead_socket(tmp_path) in line  # got as far as the daemon


def test_default_dockerfile_is_reported_as_default_through_invoke(tmp_path):
    root = make_project(tmp_path, dockerfile=False)
    line = assert_one_line_error(invoke(root, "release"), code=2)
    assert "/Dockerfile' (default) not found" in line


def test_settings_error_is_redacted_too(tmp_path):
    root = make_project(tmp_path)
    assert_one_line_error(invoke(root, "release", "--tag", f"{TOKEN}!"), code=2)


def test_list_shows_every_task(tmp_path):
    result = invoke(make_project(tmp_path), "--list")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^  (\S+)", result.stdout, flags=re.MULTILINE))
    assert listed == TASK_NAMES


@pytest.mark.parametrize("name", sorted(TASK_NAMES))
def test_help_shows_every_flag(tmp_path, name):
    result = invoke(make_project(tmp_path), "--help", name)
    assert result.returncode == 0, result.stderr
    arguments = ns[name].get_arguments()
    assert len(arguments) == len(parameters(ns[name]))
    for argument in arguments:
        long = argument.names[0]  # e.g. build_arg -> --build-arg; a yes/no flag: --[no-]semver
        assert f"--{long}" in result.stdout or f"--[no-]{long}" in result.stdout
    first_words = " ".join(ns[name].__doc__.split()[:3])
    assert first_words in " ".join(result.stdout.split())


def test_a_failure_whose_text_spans_lines_is_still_one_line(tmp_path):
    """A hook command with a newline names itself in its failure: on one line."""
    root = make_project(tmp_path, GOOD_ENV + "HUB_PRE_LOGIN='true\nexit 3'\n")
    result = invoke(root, "login")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "[hook] pre_login: true exit 3",
        "hubtasks: pre_login hook 'true exit 3' failed with exit code 3; the login stage did "
        "not run and nothing was changed",
    ]


def test_a_git_repository_without_commits_is_named_so(tmp_path):
    root = make_project(tmp_path, GOOD_ENV.replace("HUB_TAGS=v1\n", ""))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    result = invoke(root, "release", GIT_CEILING_DIRECTORIES=str(tmp_path.parent))
    line = assert_one_line_error(result, 2)
    assert f"no tag given and {root} is in a git repository with no commits yet" in line, line


def test_from_a_subfolder_the_env_beside_tasks_py_is_read_and_named(tmp_path):
    root = make_project(tmp_path, GOOD_ENV.replace("HUB_TAGS=v1\n", "HUB_TAGS=v7\n"))
    (root / "docs").mkdir()
    result = invoke(root / "docs", "release", "--dry-run")
    assert f"[settings] read {root / '.env'} ({root / 'docs'} has no .env)" in result.stderr
    assert "missing setting" not in result.stderr, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_a_missing_setting_names_the_env_file_looked_for(tmp_path):
    root = make_project(tmp_path, "")
    (root / ".env").unlink()
    line = assert_one_line_error(invoke(root, "release"), 2)
    assert f"set them in {root / '.env'} (there is none" in line, line


class _ClosedPipe(io.StringIO):
    """stdout whose reader went away (`inv release | head -1`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("as_json", [False, True])
def test_results_to_a_closed_stdout_are_one_line_not_a_traceback(monkeypatch, as_json):
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    console = make_console("plain", out=_ClosedPipe())
    session = types.SimpleNamespace(console=console)
    result = types.SimpleNamespace(
        dry_run=False,
        everywhere=[types.SimpleNamespace(reference="127.0.0.1:5000/a/b:v1@sha256:" + "a" * 64)],
        to_dict=lambda: {"digest": "sha256:" + "a" * 64},
    )
    with pytest.raises(Exit) as stopped:
        run.publish(result, session, "release", as_json)
    assert stopped.value.code == 1
    assert str(stopped.value.message).startswith("hubtasks: stdout was closed"), stopped.value
