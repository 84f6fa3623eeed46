"""Task flags come from one table: help, short flags, repeatable flags and `--no-…` forms.

The parser tests drive Invoke's own parser over the real collection; the subprocess tests run
`python -m invoke` in a throwaway project (no daemon: DOCKER_HOST is a dead socket).
"""

from __future__ import annotations

import json
import re

import pytest
from invoke.parser import Parser

from hubtasks import ns
from hubtasks.cli.flags import FLAGS, OPTIONS, settings_flags
from hubtasks.settings.keys import KEYS, KEYS_BY_NAME
from tests.helpers.cli import GOOD_ENV, TASK_NAMES, assert_one_line_error, invoke, make_project


def parse(*argv: str) -> dict:
    """What Invoke hands the task body for `inv ARGV` (one task)."""
    result = Parser(contexts=ns.to_contexts()).parse_argv(list(argv))
    return result[0].as_kwargs


def arguments_of(name: str) -> dict:
    return {arg.name: arg for arg in ns[name].get_arguments()}


# --- one table ------------------------------------------------------------------------------


def test_every_setting_flag_is_a_task_parameter_somewhere():
    used = {arg for name in TASK_NAMES for arg in arguments_of(name)}
    assert {key.parameter for key in KEYS if key.flag} <= used
    assert set(OPTIONS) <= used


def test_every_setting_flag_has_help_naming_its_environment_variable():
    for key in KEYS:
        if key.flag:
            assert key.help, key.name
            assert key.env in FLAGS[key.parameter].help


def test_repeatable_setting_flags_name_their_value():
    for key in KEYS:
        if key.flag and key.kind in ("list", "pairs"):
            assert key.metavar, key.name


def test_a_flag_has_the_same_short_form_in_every_task():
    shorts: dict[str, set[tuple[str, ...]]] = {}
    for name in TASK_NAMES:
        for arg in ns[name].get_arguments():
            shorts.setdefault(arg.names[0], set()).add(arg.names[1:])
    assert {flag: forms for flag, forms in shorts.items() if len(forms) > 1} == {}


def test_settings_flags_are_passed_by_name():
    assert settings_flags(tag=["a"], build_arg=["X=1"], label=[], semver=None) == {
        "tags": ["a"],
        "build_args": ["X=1"],
        "labels": [],
        "semver": None,
    }


def test_dash_d_is_invokes_debug_flag_not_dockerfile():
    for name in TASK_NAMES:
        for arg in ns[name].get_arguments():
            assert "d" not in arg.names, (name, arg)
    assert KEYS_BY_NAME["dockerfile"].short is None
    with pytest.raises(Exception, match="No idea what '-d' is"):
        parse("build", "-d", "Other.Dockerfile")
    assert parse("build", "--dockerfile", "Other.Dockerfile")["dockerfile"] == "Other.Dockerfile"


# --- yes/no settings: three values ----------------------------------------------------------


@pytest.mark.parametrize(
    "argv, semver, latest",
    [
        ((), None, None),
        (("--semver",), True, None),
        (("-s",), True, None),
        (("--no-semver",), False, None),
        (("--latest", "--no-semver"), False, True),
        (("--no-latest",), None, False),
    ],
)
def test_yes_no_setting_is_none_unless_given(argv, semver, latest):
    kwargs = parse("release", *argv)
    assert (kwargs["semver"], kwargs["latest"]) == (semver, latest)


def test_task_only_booleans_stay_plain_flags():
    kwargs = parse("release", "--force")
    assert kwargs["force"] is True and kwargs["dry_run"] is False
    with pytest.raises(Exception, match="No idea what '--no-force' is"):
        parse("release", "--no-force")


def test_no_semver_turns_off_a_true_setting_for_one_run(tmp_path):
    """HUB_SEMVER=true in .env: a plain tag is refused, `--no-semver` lets it through (to the
    daemon, which is not there)."""
    root = make_project(tmp_path, GOOD_ENV + "HUB_SEMVER=true\n")
    refused = assert_one_line_error(invoke(root, "release", "--tag", "edge"), code=2)
    assert "needs a version tag" in refused
    through = assert_one_line_error(invoke(root, "release", "--tag", "edge", "--no-semver"), code=1)
    assert "cannot connect to the Docker daemon" in through


# --- --help ---------------------------------------------------------------------------------


def help_lines(root, task: str) -> dict[str, str]:
    """`inv --help TASK` as {flag column: help text}, continuation lines joined."""
    result = invoke(root, "--help", task)
    assert result.returncode == 0, result.stderr
    rows: dict[str, str] = {}
    current = None
    for line in result.stdout.splitlines():
        match = re.match(r"^  (-\S.*?)\s{2,}(\S.*)$", line)
        if match:
            current = match.group(1)
            rows[current] = match.group(2)
        elif current and line.startswith(" " * 10):
            rows[current] += " " + line.strip()
    return rows


@pytest.mark.parametrize(
    "flag, placeholder",
    [("--tag", "TAG"), ("--build-arg", "NAME=VALUE"), ("--label", "NAME=VALUE")],
)
def test_repeatable_flags_show_their_value_in_help(tmp_path, flag, placeholder):
    rows = help_lines(make_project(tmp_path), "release")
    text = next(help for names, help in rows.items() if names.endswith(flag))
    assert text.startswith(f"{placeholder}: ")
    assert "repeat for more" in text


def test_help_shows_the_no_forms(tmp_path):
    rows = help_lines(make_project(tmp_path), "release")
    assert "-s, --[no-]semver" in rows and "--[no-]latest" in rows
    assert "HUB_SEMVER" in rows["-s, --[no-]semver"]
    # A flag named `--no-…` (docker's `--no-cache`) reads as docker writes it: no `--no-no-`.
    assert "--no-cache" in rows and "--[no-]no-cache" not in rows


def test_a_no_flag_is_on_when_given_and_unset_otherwise():
    assert parse("build", "--no-cache")["no_cache"] is True
    assert parse("build")["no_cache"] is None  # HUB_NO_CACHE (or off) decides
    with pytest.raises(Exception, match="No idea what '--no-no-cache' is"):
        parse("build", "--no-no-cache")


# --- --json: every outcome is one JSON document ---------------------------------------------


@pytest.mark.parametrize(
    "args, code, stage, fragment",
    [
        (["--tag", "bad tag!"], 2, "settings", "is not a valid tag"),
        (["--tag", "v1"], 1, "release", "cannot connect to the Docker daemon"),
    ],
    ids=["settings", "daemon"],
)
def test_json_failure_is_a_document_on_stdout(tmp_path, args, code, stage, fragment):
    root = make_project(tmp_path)
    result = invoke(root, "release", "--json", *args)
    line = assert_one_line_error(result, code=code)
    document = json.loads(result.stdout)
    assert set(document) == {"error"}
    error = document["error"]
    assert error == {"message": error["message"], "exit_code": code, "stage": stage, "pushed": []}
    assert fragment in error["message"]
    assert line == f"hubtasks: {error['message']}"


def test_json_failure_of_push_names_its_stage(tmp_path):
    result = invoke(make_project(tmp_path), "push", "--json", "--tag", "v1")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["stage"] == "push"


def test_without_json_a_failure_prints_nothing_on_stdout(tmp_path):
    result = invoke(make_project(tmp_path), "release", "--tag", "bad tag!")
    assert result.returncode == 2 and result.stdout == ""


# --- a task's flags: its own options, and the settings whose row names it -------------------


def test_every_task_a_key_names_exists():
    for key in KEYS:
        assert (key.flag is None) == (not key.tasks), key.name
        assert set(key.tasks) <= TASK_NAMES, key.name


@pytest.mark.parametrize("name", sorted(TASK_NAMES))
def test_a_task_takes_the_flag_of_every_key_that_names_it(name):
    settings = {key.parameter for key in KEYS if name in key.tasks}
    parameters = {arg.attr_name or arg.name for arg in ns[name].get_arguments()}
    assert settings <= parameters
    assert parameters - settings <= set(OPTIONS)


def test_a_new_key_is_a_flag_of_the_tasks_it_names(monkeypatch):
    """Adding a setting with a flag is one row in KEYS: the task gets the parameter, its
    --help line, and the value under the setting's name."""
    from invoke import Context

    from hubtasks.cli import flags as flags_module
    from hubtasks.settings.keys import Key

    extra = Key(name="builder", flag="--builder", help="BuildKit builder", tasks=("demo",))
    monkeypatch.setattr(flags_module, "KEYS", (*KEYS, extra))
    monkeypatch.setitem(flags_module.FLAGS, "builder", flags_module.setting_flag(extra))
    seen = {}

    @flags_module.hub_task
    def demo(c, flags, quiet=False):
        """Demo."""
        seen.update(flags=dict(flags), quiet=quiet)

    arguments = {arg.name: arg for arg in demo.get_arguments()}
    assert set(arguments) == {"builder", "quiet"}
    assert "HUB_BUILDER" in arguments["builder"].help
    demo(Context(), builder="b1", quiet=True)
    assert seen == {"flags": {"builder": "b1"}, "quiet": True}


def test_tasks_chain_on_one_command_line():
    calls = Parser(contexts=ns.to_contexts()).parse_argv(
        ["build", "-t", "v1", "--platform", "linux/arm64", "push", "--json", "-t", "v1"]
    )
    assert [call.name for call in calls] == ["build", "push"]
    assert calls[0].as_kwargs["tag"] == ["v1"] and calls[0].as_kwargs["platform"] == ["linux/arm64"]
    assert calls[1].as_kwargs["json_"] is True


def test_an_option_may_not_shadow_a_settings_flag():
    from hubtasks.cli.flags import hub_task

    def build(c, flags, tag=None):
        """Demo."""

    with pytest.raises(TypeError, match="tag is a setting's flag"):
        hub_task(build)


# --- a repeatable flag given without a value (issue 26 item 5) --------------------------------


@pytest.mark.parametrize(
    ("argv", "tags"),
    [
        (["release"], []),
        (["release", "--tag", "v1", "-t", "v2"], ["v1", "v2"]),
        (["release", "--tag"], [""]),  # `--tag $UNSET` at the end
        (["release", "-t", "-n"], [""]),
        (["release", "-t", "-n", "--tag", "v3"], ["", "v3"]),
        (["build", "--tag", "c1", "tag", "--tag", "c2", "push"], ["c1"]),  # chained tasks
    ],
)
def test_a_repeatable_flag_without_a_value_is_an_empty_value(argv, tags):
    assert parse(*argv)["tag"] == tags


@pytest.mark.parametrize("argv", [["--tag"], ["-t", "-n"], ["--tag", "", "-n"]])
def test_release_with_an_empty_tag_is_refused(tmp_path, argv):
    project = make_project(tmp_path, GOOD_ENV)
    result = invoke(project, "release", *argv)
    line = assert_one_line_error(result, 2)
    assert "--tag: a tag cannot be empty" in line, line


@pytest.mark.parametrize("flag", ["--platform", "--cache-from", "--repository"])
def test_other_repeatable_flags_without_a_value_are_refused(tmp_path, flag):
    project = make_project(tmp_path, GOOD_ENV)
    line = assert_one_line_error(invoke(project, "release", flag, "-n"), 2)
    assert f"{flag}: given without a value" in line, line
