"""Hooks: output on stderr (never stdout), redacted; failures in one line, with their fields.

Shell hooks run through a real Invoke context and /bin/sh; Python hooks are plain functions.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest
from invoke import Config, Context

from hubtasks.errors import HookError
from hubtasks.pipeline.hooks import Facts, Hooks, LineWriter, summarize
from hubtasks.ui.redaction import HIDDEN, add_secret

SECRET = "hook-secret-4711"


def context() -> Context:
    # pytest's stdin raises on read; a real terminal or pipe does not.
    return Context(Config(overrides={"run": {"in_stream": False}}))


@pytest.fixture(autouse=True)
def _secret():
    add_secret(SECRET)


def run(commands=None, *, side="pre", stage="build", refs=(), python=None):
    """Run one hook; return (lines handed to `output`, status lines, the error or None)."""
    lines: list[str] = []
    said: list[str] = []
    name = f"{side}_{stage}"
    functions = {name: [python]} if python else {}
    hooks = Hooks(
        commands or {}, context(), lambda _s, text: said.append(text), lines.append, functions
    )
    facts = Facts(stage=stage, image="reg/u/app", tags=["v1"], refs=list(refs))
    try:
        hooks.run(side, facts)
    except HookError as error:
        return lines, said, error
    return lines, said, None


def test_shell_hook_output_goes_to_the_output_not_stdout(capfd):
    lines, said, error = run({"pre_build": "echo out-line; echo err-line >&2"})
    assert error is None
    assert sorted(lines) == ["err-line", "out-line"]
    assert said == ["pre_build: echo out-line; echo err-line >&2"]
    captured = capfd.readouterr()
    assert captured.out == ""


def test_shell_hook_output_is_redacted(monkeypatch, capfd):
    monkeypatch.setenv("HUB_TOKEN", SECRET)
    lines, _, error = run({"pre_login": "echo token=$HUB_TOKEN"}, stage="login")
    assert error is None
    assert lines == [f"token={HIDDEN}"]
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err


def test_default_output_is_stderr_redacted(monkeypatch, capfd):
    monkeypatch.setenv("HUB_TOKEN", SECRET)
    hooks = Hooks({"pre_login": "echo token=$HUB_TOKEN"}, context(), lambda *_: None)
    hooks.run("pre", Facts(stage="login", image="reg/u/app"))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == f"token={HIDDEN}\n"


def test_python_hook_prints_and_runs_commands_off_stdout(capfd):
    def noisy(c, facts):
        print(f"printed {facts.stage}")
        c.run("echo from-run; echo from-run-err >&2")
        sys.stderr.write(f"secret {SECRET}\n")

    lines, _, error = run(python=noisy)
    assert error is None
    # stdout and stderr of `c.run` are read by two threads: their order may vary
    assert sorted(lines) == sorted(
        ["printed build", "from-run", "from-run-err", f"secret {HIDDEN}"]
    )
    captured = capfd.readouterr()
    assert captured.out == "" and SECRET not in captured.err


def test_failing_command_in_a_python_hook_is_one_line():
    def gate(c, facts):
        c.run("echo testing; exit 3")

    _, _, error = run(python=gate)
    assert isinstance(error, HookError)
    assert "\n" not in str(error)
    assert str(error) == (
        "pre_build hook gate failed: 'echo testing; exit 3' failed with exit code 3; "
        "the build stage did not run and nothing was changed"
    )
    assert error.stage == "build" and error.pushed == ()


def test_failing_post_hook_carries_the_stage_and_what_was_pushed():
    refs = ["reg/u/app:v1@sha256:" + "a" * 64]
    _, _, error = run({"post_push": "exit 5"}, side="post", stage="push", refs=refs)
    assert isinstance(error, HookError)
    assert "exit code 5" in str(error) and "the push stage itself succeeded" in str(error)
    assert error.stage == "push"
    assert error.pushed == tuple(refs)


def test_summarize_takes_the_first_line_of_anything():
    assert summarize(ValueError("first\nsecond")) == "first"
    assert summarize(RuntimeError()) == "RuntimeError"


def test_line_writer_holds_a_line_until_it_ends():
    lines: list[str] = []
    writer = LineWriter(lines.append)
    writer.write("tok")
    writer.flush()  # Invoke flushes after every read: nothing half-written leaves
    assert lines == []
    writer.write("en\r\nnext")
    assert lines == ["token"]
    writer.close()
    assert lines == ["token", "next"]


def test_secret_split_across_reads_is_still_redacted():
    lines: list[str] = []
    writer = LineWriter(lines.append)
    for chunk in (f"a {SECRET[:5]}", f"{SECRET[5:]} b\n"):
        writer.write(chunk)
        writer.flush()
    assert lines == [f"a {HIDDEN} b"]


# --- through `inv` (pre_login runs before anything touches the network) ----------------------

GATE = """\
import hubtasks
from hubtasks import ns

def gate(c, facts):
    c.run("echo gate-output; exit 3")

hubtasks.hook("pre_login", gate)
"""


def test_inv_shell_hook_output_is_on_stderr_and_redacted(tmp_path):
    from tests.helpers.cli import GOOD_ENV, TOKEN, invoke, make_project

    root = make_project(tmp_path, GOOD_ENV + "HUB_PRE_LOGIN='echo token=$HUB_TOKEN'\n")
    result = invoke(root, "login", HUB_TOKEN=TOKEN, HUB_RETRIES="1")  # 127.0.0.1:9 is closed
    assert result.stdout == ""
    assert f"token={HIDDEN}" in result.stderr
    assert TOKEN not in result.stderr


def test_inv_failing_python_hook_is_one_line(tmp_path):
    from tests.helpers.cli import assert_one_line_error, invoke, make_project

    root = make_project(tmp_path)
    (root / "tasks.py").write_text(GATE)
    result = invoke(root, "login", "--quiet")
    assert result.stdout == ""
    line = assert_one_line_error(result, code=1)
    assert line == (
        "hubtasks: pre_login hook gate failed: 'echo gate-output; exit 3' failed with exit "
        "code 3; the login stage did not run and nothing was changed"
    )


def test_a_shell_hook_sees_the_token_from_env_file_too_redacted(tmp_path):
    """Issue 26 item 8: as the README says, `echo $HUB_TOKEN` in a hook prints the hidden
    token wherever HUB_TOKEN was set (here only in .env), never an empty value."""
    from tests.helpers.cli import GOOD_ENV, TOKEN, invoke, make_project

    root = make_project(tmp_path, GOOD_ENV + "HUB_PRE_LOGIN='echo token=$HUB_TOKEN'\n")
    result = invoke(root, "login", HUB_RETRIES="1")  # 127.0.0.1:9 is closed
    assert f"token={HIDDEN}" in result.stderr, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_an_interrupt_while_a_shell_hook_runs_stops_the_hook_and_is_raised_again():
    """SIGTERM (raised as a KeyboardInterrupt by the command line) while `HUB_PRE_RELEASE`
    runs: Invoke's runner swallowed it (it writes ^C to the hook's stdin and waits on), so the
    hook ran to its end and the release went on to publish, exit 0."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    hooks = Hooks({"pre_release": "sleep 5"}, context(), lambda *_: None, lambda _line: None)
    assert _seconds_until_interrupted(hooks, interrupt) < 4  # stopped, not waited for


def test_an_interrupt_while_a_python_hooks_c_run_runs_is_raised_again():
    """The README's recipe, `hook("pre_release", lambda c, facts: test(c))` with a
    `c.run("pytest -q")`: an interrupt there was swallowed by Invoke as well."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    hooks = Hooks({}, context(), lambda *_: None, lambda _line: None)
    hooks.functions = {"pre_release": [lambda c, _facts: c.run("sleep 5")]}
    assert _seconds_until_interrupted(hooks, interrupt) < 4


def _seconds_until_interrupted(hooks: Hooks, interrupt) -> float:
    """Run the pre_release hooks with `interrupt` raised from a timer after 0.5 s: the
    KeyboardInterrupt must come out of `hooks.run`; how long that took."""
    facts = Facts(stage="release", image="reg/u/app", tags=["v1"])
    previous = signal.signal(signal.SIGALRM, interrupt)
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            hooks.run("pre", facts)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return time.monotonic() - start
