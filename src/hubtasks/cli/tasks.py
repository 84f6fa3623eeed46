"""Publish a Docker image: log in, build, tag, push and verify.

Settings come from flags, then the environment, then `.env`, then Invoke config (`hub.*`),
then defaults; `inv init` (or `hubtasks init`) writes a `.env` that lists every key.
"""

# The Invoke layer: flags → `Settings`, a `HubError` → one `hubtasks:` line and its exit code
# (and with --json, a JSON document on stdout). Every flag is declared once: the settings'
# flags in `settings.KEYS`, the other options in `OPTIONS` below; `HubTask` builds Invoke's
# arguments (help, short flag, repeatable, `--no-…`) from those two tables.

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from invoke import Collection, Context, Exit, Task, task
from invoke.parser import Argument

from hubtasks.errors import ConfigError, HubError
from hubtasks.settings.resolve import KEYS, Key, Settings, load_settings, token_candidates
from hubtasks.ui.redaction import add_secret, install_log_redaction, redact

if TYPE_CHECKING:
    from hubtasks import api
    from hubtasks.ui.console import Console

T = TypeVar("T")

# Invoke imports this module when it loads the collection, before it reads invoke.yaml & co.
# and logs them under `inv -d`: the redacting log-record factory must be in place by then.
# (`import hubtasks` does not import this module; only the collection `ns` does.)
install_log_redaction()

# The collection is loaded by a command line that ends when its tasks do. At exit the
# interpreter's last garbage collection walks every object of every module imported (Invoke,
# Docker's SDK, requests, rich): about 40 ms of a release on this project's benchmark machine,
# 10 ms of `inv --list`. Frozen objects are left out of it; they are still freed as the modules
# are torn down. Only at exit: a long-running process that loads the collection collects as
# usual until then.
atexit.register(gc.freeze)


# --- flags, from the tables -----------------------------------------------------------------


class YesNo(Argument):
    """A yes/no flag that may also be left off: `--x` gives True, `--no-x` False, neither None
    (so that a setting from the environment or `.env` applies).

    Invoke registers `--no-x` only for a bool argument whose default is True
    (`ParserContext.add_arg`) and reports that default when the flag is absent; this argument
    is declared that way and reports None unless one of the two forms was given.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(kind=bool, default=True, **kwargs)

    @property
    def value(self) -> bool | None:
        return None if self.raw_value is None else bool(self.raw_value)

    @value.setter
    def value(self, given: Any) -> None:
        self.set_value(given)


@dataclass(frozen=True)
class Flag:
    """One task flag: its names (long, then short), help and kind, and the setting it fills."""

    names: tuple[str, ...]
    help: str
    kind: type = str  # str (takes a value), bool, or list (repeatable)
    setting: str | None = None

    def argument(self, parameter: str) -> Argument:
        """The Invoke argument for the task parameter `parameter` (`json_`, `build_arg`)."""
        attr_name = parameter if parameter != self.names[0] else None
        if self.kind is bool and self.setting:
            return YesNo(names=self.names, help=self.help, attr_name=attr_name)
        default = {list: [], bool: False}.get(self.kind)
        return Argument(
            names=self.names, kind=self.kind, default=default, help=self.help, attr_name=attr_name
        )


def setting_flag(key: Key) -> Flag:
    """A setting's flag, described from its row in `settings.KEYS`."""
    long = (key.flag or key.name).removeprefix("--")
    names = (long, *([key.short.lstrip("-")] if key.short else []))
    default = key.shown_default or ("off" if key.default is False else key.default)
    where = f"default: {key.env}" + (f", else {default}" if default not in (None, "") else "")
    if key.kind in ("list", "pairs"):
        value = key.metavar or "VALUE"
        text = f"{value}: {key.help[:1].lower()}{key.help[1:]}; repeat for more ({where})."
        return Flag(names, text, list, key.name)
    return Flag(names, f"{key.help} ({where}).", bool if key.kind == "bool" else str, key.name)


OPTIONS: dict[str, Flag] = {
    "force": Flag(
        ("force", "f"), "Overwrite version tags the registry holds for another image.", bool
    ),
    "allow_dirty": Flag(
        ("allow-dirty",), "Allow a default tag from git although the work tree has changes.", bool
    ),
    "dry_run": Flag(
        ("dry-run", "n"),
        "Print the plan (release, promote: with the equivalent docker commands); change nothing.",
        bool,
    ),
    "json_": Flag(
        ("json", "j"),
        'Print one JSON document on stdout, the result or {"error": …} (human output on stderr).',
        bool,
    ),
    "quiet": Flag(("quiet", "q"), "Print only the final references (and errors).", bool),
    "verbose": Flag(
        ("verbose", "v"), "Show the whole build log and every layer, even on a terminal.", bool
    ),
    "save": Flag(
        ("save", "s"),
        "Store the credentials like `docker login` (credential helper, else "
        "~/.docker/config.json); without it nothing is written.",
        bool,
    ),
    "strict": Flag(
        ("strict",),
        "release: a failed Docker Hub page update fails the release (default: a warning); "
        "describe: refuse an overview over 25,000 bytes instead of truncating it.",
        bool,
    ),
    "match": Flag(
        ("match", "m"),
        "Glob of the tags to consider, e.g. 'sha-*' (required). Version tags only when the "
        "pattern starts with a version, e.g. 'v1.*'.",
    ),
    "keep": Flag(("keep", "k"), "Keep this many of the most recently pushed matching tags."),
    "older_than": Flag(
        ("older-than", "o"), "Only tags pushed longer ago than this, e.g. 30d, 12h, 2w."
    ),
    "yes": Flag(("yes", "y"), "Delete; without it the tags are only listed.", bool),
    "source": Flag(
        ("source",),  # no -s: promote has --semver
        "tag: the local image to tag, a tag of the repository, a reference or an image ID "
        "(default: the image built earlier on this command line, else latest). promote: the "
        "image in the registry to publish, a tag or sha256:… digest of the repository, or "
        "[REGISTRY/]namespace/name:tag in another repository (of this registry or another).",
    ),
}
FLAGS: dict[str, Flag] = {
    **{key.parameter: setting_flag(key) for key in KEYS if key.parameter},
    **OPTIONS,
}


class HubTask(Task[Callable[..., None]]):
    """A task whose arguments come from `FLAGS`, by parameter name."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        return [FLAGS[name].argument(name) for name in self.argspec(self.body).parameters]


def settings_flags(**given: object) -> dict[str, object]:
    """Task parameters by the setting they fill: `tag` → `tags`, `build_arg` → `build_args`."""
    flags: dict[str, object] = {}
    for parameter, value in given.items():
        setting = FLAGS[parameter].setting
        if setting is None:
            raise TypeError(f"--{FLAGS[parameter].names[0]} is not a setting's flag")
        flags[setting] = value
    return flags


# --- running a task -------------------------------------------------------------------------

# One command line (`inv login build push`) is one session: one daemon connection, one login,
# the tags of the build, and each hook at most once. Process-wide because Invoke makes a new
# context (and config) for every task of the command line and gives them nothing shared.
_SESSION: api.Session | None = None
# (Each task imports `api` when it runs, so that `inv --list` stays fast.)


def _new_console() -> Console:
    from hubtasks.ui.console import Console

    return Console()


def _config(c: Context) -> Mapping[str, Any]:
    """Our `hub.*` config, whatever shape it arrived in (see invoke #782)."""
    try:
        section = c.config.get("hub")
    except AttributeError:
        section = None
    if not isinstance(section, Mapping):
        return {}
    return {key: section[key] for key in section}


def _hide_secrets(c: Context) -> None:
    """Every token in sight, before anything can print it: the environment's, `.env`'s and
    Invoke config's (a settings error may quote a value before the settings exist)."""
    for secret in (*token_candidates(), str(_config(c).get("token") or "")):
        add_secret(secret)


def _fail(message: str, code: int, stage: str, pushed: tuple[str, ...], json_to: Any) -> NoReturn:
    message = " ".join(redact(message).split())  # one line, whatever the error text held
    if json_to is not None:
        document = {"message": message, "exit_code": code, "stage": stage, "pushed": list(pushed)}
        json_to.json_result({"error": document})
    raise Exit(f"hubtasks: {message}", code=code)


def run_stage(action: Callable[[], T], stage: str, json_to: Console | None = None) -> T:
    """Run one task body: a failure becomes one line on stderr and an exit code, and with
    `json_to` (--json) also `{"error": {message, exit_code, stage, pushed}}` on stdout."""
    try:
        return action()
    except HubError as error:
        _fail(error.message, error.exit_code, error.stage or stage, error.pushed, json_to)
    except KeyboardInterrupt:
        landed = [item.reference for item in _SESSION.ledger.since()] if _SESSION else []
        made_it = f"; already pushed: {', '.join(landed)}" if landed else ""
        _fail(f"interrupted{made_it}", 130, stage, tuple(landed), json_to)
    except Exception as error:
        if os.environ.get("HUB_DEBUG"):
            raise
        message = f"unexpected {type(error).__name__}: {error}"
        _fail(message + " (set HUB_DEBUG=1 for a traceback and report it)", 1, stage, (), json_to)


def _prepare(
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
        _SESSION = api.Session(console=_new_console(), context=c)
    _SESSION.console.configure(quiet=quiet, verbose=verbose)
    _SESSION.hooks.context = c  # Invoke makes a new context per task; use the current one
    _hide_secrets(c)
    json_to = _SESSION.console if json_ else None
    session = _SESSION
    settings = run_stage(lambda: load_settings(flags, _config(c)), "settings", json_to)
    return settings, run_stage(lambda: session.adopt(settings), "settings", json_to)


def _publish(result: api.Release, session: api.Session, stage: str, as_json: bool) -> None:
    """GITHUB_OUTPUT when set (first: if it cannot be written, stdout gets the failure, not
    a success document and then an error), then the result: JSON or one reference per line
    on stdout."""
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output and not result.dry_run:
        from hubtasks.cli.github_output import write_github_output

        json_to = session.console if as_json else None
        run_stage(lambda: write_github_output(github_output, result), stage, json_to)
    if as_json:
        session.console.json_result(result.to_dict())
    elif result.dry_run:
        session.console.render_plan(result)
    else:
        for item in result.everywhere:  # every destination's tags
            session.console.result(item.reference)


# --- the tasks ------------------------------------------------------------------------------


@task(klass=HubTask)
def init(c: Context) -> None:
    """Start a project: .env (mode 600) to fill in, .env kept out of git and the image, tasks.py."""
    from hubtasks.cli.init import init_project

    console = _new_console()
    run_stage(lambda: init_project(Path.cwd(), console), "init")


@task(klass=HubTask)
def logout(c: Context, registry: str | None = None, quiet: bool = False) -> None:
    """Remove the credentials `inv login --save` stored for the registry, nothing else."""
    from hubtasks import api

    settings, session = _prepare(c, "logout", settings_flags(registry=registry), quiet=quiet)
    run_stage(lambda: api.logout(settings, session=session), "logout")


@task(klass=HubTask)
def login(
    c: Context,
    save: bool = False,
    registry: str | None = None,
    repository: list[str] | None = None,
    quiet: bool = False,
) -> None:
    """Check HUB_USERNAME/HUB_TOKEN against the registry (never a cached answer)."""
    from hubtasks import api

    flags = settings_flags(registry=registry, repository=repository)
    settings, session = _prepare(c, "login", flags, quiet=quiet)
    run_stage(lambda: api.login(settings, save=save, session=session), "login")


@task(klass=HubTask)
def build(
    c: Context,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    dockerfile: str | None = None,
    context: str | None = None,
    build_arg: list[str] | None = None,
    label: list[str] | None = None,
    platform: list[str] | None = None,
    cache_from: list[str] | None = None,
    allow_dirty: bool = False,
    quiet: bool = False,
    verbose: bool = False,
) -> None:
    """Build the image with live output and OCI labels, and give it every requested tag."""
    from hubtasks import api

    flags = settings_flags(
        tag=tag,
        repository=repository,
        registry=registry,
        dockerfile=dockerfile,
        context=context,
        build_arg=build_arg,
        label=label,
        platform=platform,
        cache_from=cache_from,
    )
    settings, session = _prepare(c, "build", flags, quiet=quiet, verbose=verbose)
    run_stage(lambda: api.build(settings, allow_dirty=allow_dirty, session=session), "build")


@task(name="tag", klass=HubTask)
def tag_(
    c: Context,
    source: str | None = None,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    allow_dirty: bool = False,
    quiet: bool = False,
) -> None:
    """Add tags to an image that already exists locally, without rebuilding."""
    from hubtasks import api

    flags = settings_flags(tag=tag, repository=repository, registry=registry)
    settings, session = _prepare(c, "tag", flags, quiet=quiet)
    run_stage(lambda: api.tag(settings, source, allow_dirty=allow_dirty, session=session), "tag")


@task(klass=HubTask)
def push(
    c: Context,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    force: bool = False,
    allow_dirty: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> None:
    """Push each tag explicitly and print its manifest digest; unchanged tags are skipped."""
    from hubtasks import api

    flags = settings_flags(tag=tag, repository=repository, registry=registry)
    settings, session = _prepare(c, "push", flags, quiet=quiet, verbose=verbose, json_=json_)
    result = run_stage(
        lambda: api.push(settings, force=force, allow_dirty=allow_dirty, session=session),
        "push",
        session.console if json_ else None,
    )
    _publish(result, session, "push", json_)


@task(klass=HubTask)
def release(
    c: Context,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    dockerfile: str | None = None,
    context: str | None = None,
    build_arg: list[str] | None = None,
    label: list[str] | None = None,
    platform: list[str] | None = None,
    cache_from: list[str] | None = None,
    semver: bool | None = None,
    latest: bool | None = None,
    describe: bool | None = None,
    strict: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> None:
    """Validate, log in, build, tag, push and verify; print REGISTRY/REPO:TAG@DIGEST per tag."""
    from hubtasks import api

    flags = settings_flags(
        tag=tag,
        repository=repository,
        registry=registry,
        dockerfile=dockerfile,
        context=context,
        build_arg=build_arg,
        label=label,
        platform=platform,
        cache_from=cache_from,
        semver=semver,
        latest=latest,
        describe=describe,
    )
    settings, session = _prepare(c, "release", flags, quiet=quiet, verbose=verbose, json_=json_)
    result = run_stage(
        lambda: api.release(
            settings,
            dry_run=dry_run,
            force=force,
            allow_dirty=allow_dirty,
            session=session,
            strict=strict,
        ),
        "release",
        session.console if json_ else None,
    )
    if not result.dry_run:
        session.console.summary(result, size=result.image.size if result.image else None)
    _publish(result, session, "release", json_)


@task(klass=HubTask)
def promote(
    c: Context,
    source: str | None = None,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    semver: bool | None = None,
    latest: bool | None = None,
    force: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> None:
    """Publish an image the registry already holds under new tags, registry-side.

    No Docker daemon, no pull, no layer push; prints REGISTRY/REPO:TAG@DIGEST per tag."""
    from hubtasks import api

    flags = settings_flags(
        tag=tag, repository=repository, registry=registry, semver=semver, latest=latest
    )
    settings, session = _prepare(c, "promote", flags, quiet=quiet, verbose=verbose, json_=json_)

    def run() -> api.Release:
        if not source:
            raise ConfigError("promote needs --source: the tag, digest or image to publish")
        return api.promote(settings, source=source, force=force, dry_run=dry_run, session=session)

    result = run_stage(run, "promote", session.console if json_ else None)
    if not result.dry_run:
        session.console.summary(result, size=None)
    _publish(result, session, "promote", json_)


@task(klass=HubTask)
def doctor(
    c: Context,
    tag: list[str] | None = None,
    repository: list[str] | None = None,
    registry: str | None = None,
    dockerfile: str | None = None,
    context: str | None = None,
    platform: list[str] | None = None,
) -> None:
    """Check that everything a release needs is in order; exit 0 only when it is.

    With --platform, also whether the daemon can run each platform's RUN steps."""
    from hubtasks.doctor import healthy, run_checks

    console = _new_console()
    _hide_secrets(c)
    flags = settings_flags(
        tag=tag,
        repository=repository,
        registry=registry,
        dockerfile=dockerfile,
        context=context,
        platform=platform,
    )
    checks = run_stage(lambda: run_checks(flags, dict(_config(c))), "doctor")
    console.render_checks(checks)
    if not healthy(checks):
        failed = sum(1 for check in checks if check.ok is False)
        raise Exit(f"hubtasks: doctor found {failed} problem(s); fix them before releasing", 1)


@task(klass=HubTask)
def images(c: Context, repository: list[str] | None = None, registry: str | None = None) -> None:
    """List the local images of the repository: tag, image ID, size and age."""
    flags = settings_flags(repository=repository, registry=registry)
    settings, session = _prepare(c, "images", flags)

    def listing() -> tuple[Any, list[dict[str, Any]]]:
        repo = settings.require_repository()
        return repo, session.engine_for(settings).list_images(repo)

    repo, rows = run_stage(listing, "images")
    session.console.render_images(repo, rows)


@task(klass=HubTask)
def describe(
    c: Context,
    repository: list[str] | None = None,
    registry: str | None = None,
    readme: str | None = None,
    description: str | None = None,
    visibility: str | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> None:
    """Set the Docker Hub page: overview from the README, short description.

    Creates the repository when needed and sends nothing when the page already matches."""
    from hubtasks.dockerhub.describe import describe as describe_page

    flags = settings_flags(
        repository=repository,
        registry=registry,
        readme=readme,
        description=description,
        visibility=visibility,
    )
    settings, session = _prepare(c, "describe", flags, quiet=quiet)
    result = run_stage(lambda: describe_page(settings, strict=strict, session=session), "describe")
    if result.url:
        session.console.result(result.url)


@task(klass=HubTask)
def prune(
    c: Context,
    match: str | None = None,
    keep: str | None = None,
    older_than: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    repository: list[str] | None = None,
    registry: str | None = None,
    quiet: bool = False,
) -> None:
    """List the tags a rule would delete (tag, digest, date); --yes deletes them.

    Not with --dry-run. Never a tag whose digest a kept tag holds, itself or inside its list."""
    from hubtasks.dockerhub.prune import prune as prune_tags

    flags = settings_flags(repository=repository, registry=registry)
    settings, session = _prepare(c, "prune", flags, quiet=quiet)
    run_stage(
        lambda: prune_tags(settings, match, keep, older_than, yes, session, dry_run=dry_run),
        "prune",
    )


ns = Collection(
    "hub",
    init,
    login,
    logout,
    build,
    tag_,
    push,
    release,
    promote,
    doctor,
    images,
    describe,
    prune,
)
# No `hub` defaults are declared on the collection: Invoke cannot merge a declared None with
# a section or value of another shape (an empty `hub:` in invoke.yaml, `build_args: {X: 1}`,
# a root collection's `labels` dict) and fails with a traceback. The resolver applies each
# key's default itself, with "default" as its source.
