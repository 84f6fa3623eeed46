"""Running a task: one session per command line, flags → `Settings`, and a `HubError` → one
`hubtasks:` line and its exit code (with --json, also `{"error": …}` on stdout); the result on
stdout (JSON, one reference per line, or the plan of a dry run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from invoke import Context, Exit

from hubtasks.cli.interrupts import handle_termination, how_interrupted
from hubtasks.errors import HubError, OutputClosed
from hubtasks.settings.envfile import ENV_FILE_NAME, token_candidates
from hubtasks.settings.resolve import Settings, load_settings
from hubtasks.ui.redaction import add_secret, redact

if TYPE_CHECKING:
    from hubtasks import api
    from hubtasks.ui.console import Console

T = TypeVar("T")

# One command line (`inv login build push`) is one session: one daemon connection, one login,
# the tags of the build, and each hook at most once. Process-wide because Invoke makes a new
# context (and config) for every task of the command line and gives them nothing shared.
_SESSION: api.Session | None = None
# (Each task imports `api` when it runs, so that `inv --list` stays fast.)


def new_console() -> Console:
    from hubtasks.ui.console import Console

    return Console()


def hub_config(c: Context) -> Mapping[str, Any]:
    """Our `hub.*` config, whatever shape it arrived in (see invoke #782)."""
    try:
        section = c.config.get("hub")
    except AttributeError:
        section = None
    if not isinstance(section, Mapping):
        return {}
    return {key: section[key] for key in section}


def hide_secrets(c: Context, env_file: Path | None = None) -> None:
    """Every token in sight, before anything can print it: the environment's, `.env`'s and
    Invoke config's (a settings error may quote a value before the settings exist)."""
    found = token_candidates(env_file.parent if env_file else None)
    for secret in (*found, str(hub_config(c).get("token") or "")):
        add_secret(secret)


def env_file_for(c: Context) -> Path | None:
    """The `.env` to read: the current folder's, else the one beside the tasks.py Invoke loaded
    (a task run from a subfolder of the project), else none."""
    here = Path.cwd() / ENV_FILE_NAME
    if here.is_file():
        return here
    project = getattr(c.config, "_project_prefix", None)  # Invoke: where it found tasks.py
    beside = Path(project) / ENV_FILE_NAME if isinstance(project, str) else None
    return beside if beside is not None and beside.is_file() else None


def _fail(message: str, code: int, stage: str, pushed: tuple[str, ...], json_to: Any) -> NoReturn:
    message = " ".join(redact(message).split())  # one line, whatever the error text held
    if json_to is not None:
        document = {"message": message, "exit_code": code, "stage": stage, "pushed": list(pushed)}
        with contextlib.suppress(OutputClosed):  # the line below says what failed
            json_to.json_result({"error": document})
    raise Exit(f"hubtasks: {message}", code=code)


def run_stage(action: Callable[[], T], stage: str, json_to: Console | None = None) -> T:
    """Run one task body: a failure becomes one line on stderr and an exit code, and with
    `json_to` (--json) also `{"error": {message, exit_code, stage, pushed}}` on stdout."""
    try:
        return action()
    except HubError as error:
        _fail(error.message, error.exit_code, error.stage or stage, error.pushed, json_to)
    except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM, SIGHUP (`cli.interrupts`)
        words, code = how_interrupted(stop)
        landed = [item.reference for item in _SESSION.ledger.since()] if _SESSION else []
        maybe = _SESSION.ledger.in_flight() if _SESSION else []
        made_it = f"; already pushed: {', '.join(landed)}" if landed else ""
        made_it += f"; may have landed: {', '.join(maybe)}" if maybe else ""
        _fail(f"{words}{made_it}", code, stage, tuple(landed), json_to)
    except Exception as error:
        if os.environ.get("HUB_DEBUG"):
            raise
        message = f"unexpected {type(error).__name__}: {error}"
        _fail(message + " (set HUB_DEBUG=1 for a traceback and report it)", 1, stage, (), json_to)


# The tasks that log in. `describe` asks for credentials itself, only for Docker Hub.
_NEEDS_CREDENTIALS = frozenset({"login", "push", "release", "promote", "prune"})


def prepare(
    c: Context,
    stage: str,
    flags: Mapping[str, Any],
    *,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> tuple[Settings, api.Session]:
    global _SESSION  # noqa: PLW0603 - one session per command line: see above
    from hubtasks import api

    if _SESSION is None:
        handle_termination()
        _SESSION = api.Session(console=new_console(), context=c)
    _SESSION.console.configure(quiet=quiet, verbose=verbose)
    _SESSION.hooks.context = c  # Invoke makes a new context per task; use the current one
    env_file = env_file_for(c)
    hide_secrets(c, env_file)
    json_to = _SESSION.console if json_ else None
    session = _SESSION
    settings = run_stage(
        lambda: load_settings(flags, hub_config(c), env_file=env_file), "settings", json_to
    )
    if stage in _NEEDS_CREDENTIALS:  # HUB_TOKEN empty: Docker's own credentials
        from hubtasks.daemon.credentials import with_docker_credentials

        loaded = settings
        settings = run_stage(lambda: with_docker_credentials(loaded), "settings", json_to)
    if env_file is not None and env_file.parent != Path.cwd() and not session.warned:
        session.console.stage("settings", f"read {env_file} ({Path.cwd()} has no .env)")
    return settings, run_stage(lambda: session.adopt(settings), "settings", json_to)


def publish(result: api.Release, session: api.Session, stage: str, as_json: bool) -> None:
    """GITHUB_OUTPUT when set (first: if it cannot be written, stdout gets the failure, not
    a success document and then an error), then the result: JSON or one reference per line
    on stdout."""
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output and not result.dry_run:
        from hubtasks.cli.github_output import write_github_output

        json_to = session.console if as_json else None
        run_stage(lambda: write_github_output(github_output, result), stage, json_to)
    run_stage(lambda: _print_result(result, session.console, as_json), stage)


def _print_result(result: api.Release, console: Console, as_json: bool) -> None:
    if as_json:
        console.json_result(result.to_dict())
    elif result.dry_run:
        console.render_plan(result)
    else:
        for item in result.everywhere:  # every destination's tags
            console.result(item.reference)
