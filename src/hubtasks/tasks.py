"""Publish a Docker image: log in, build, tag, push and verify.

Settings come from flags, then the environment, then `.env`, then Invoke config (`hub.*`),
then defaults. See .env.example for every key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from invoke import Collection, Context, Exit, task

from .errors import HubError
from .redaction import add_secret, install_log_redaction, redact
from .settings import Settings, config_defaults, load_settings, token_candidates

if TYPE_CHECKING:
    from . import api
    from .console import Console

T = TypeVar("T")
# Before Invoke loads invoke.yaml & co. and logs them under `inv -d`.
install_log_redaction()
for _secret in token_candidates():
    add_secret(_secret)

_FLAG_HELP = {
    "tag": "Tag to build or push; repeat for more (default: HUB_TAGS, else the git tag at "
    "HEAD, else sha-<short sha>).",
    "repository": "Repository as namespace/name, or a bare name meaning USERNAME/name "
    "(default: HUB_REPOSITORY).",
    "registry": "Registry host[:port] (default: HUB_REGISTRY, else docker.io).",
    "dockerfile": "Path of the Dockerfile (default: HUB_DOCKERFILE, else Dockerfile).",
    "context": "Build context folder (default: HUB_CONTEXT, else .).",
    "build_arg": "Build argument NAME=VALUE; repeat for more (default: HUB_BUILD_ARGS).",
    "label": "Image label NAME=VALUE, added to or overriding the OCI labels; repeat for more "
    "(default: HUB_LABELS).",
    "cache_from": "Image whose layers the build may reuse, pulled first: a reference or a "
    "tag of the repository; repeat for more; auto or none (default: HUB_CACHE_FROM, else auto: "
    "the newest release when the daemon does not hold it).",
    "semver": "Fan a version tag out: v1.2.3 also publishes v1.2, v1 and latest, each moved "
    "only forward (default: HUB_SEMVER).",
    "latest": "Also publish latest, moved only forward (default: HUB_LATEST).",
    "force": "Overwrite version tags the registry holds for another image.",
    "allow_dirty": "Allow a default tag from git although the work tree has changes.",
    "dry_run": "Print the plan and the equivalent docker commands; change nothing.",
    "json": "Print one JSON document with the result on stdout (human output on stderr).",
    "quiet": "Print only the final references (and errors).",
    "verbose": "Show the whole build log and every layer, even on a terminal.",
}
# One command line (`inv login build push`) is one session: one daemon connection, one
# login, the tags of the build, and each hook at most once.
_SESSION: api.Session | None = None


def _api():  # noqa: ANN202 - the module, imported on first use so `inv --list` stays fast
    from . import api

    return api


def _new_console() -> Console:
    from .console import Console

    return Console()


def reset_session() -> None:
    """Start a new session (for processes that run several command lines)."""
    global _SESSION
    _SESSION = None


_BUILD_FLAGS = (
    "tag",
    "repository",
    "registry",
    "dockerfile",
    "context",
    "build_arg",
    "label",
    "cache_from",
)


def _help(*names: str, **extra: str) -> dict[str, str]:
    return {**{name: _FLAG_HELP[name] for name in names}, **extra}


def _config(c: Context) -> Mapping[str, Any]:
    """Our `hub.*` config, whatever shape it arrived in (see invoke #782)."""
    try:
        section = c.config.get("hub")
    except AttributeError:
        section = None
    if not isinstance(section, Mapping):
        return {}
    return {key: section[key] for key in section}


def _hide_config_token(c: Context) -> None:
    """A token in Invoke config (the environment's and .env's were registered at import)."""
    add_secret(str(_config(c).get("token") or ""))


def _setting_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Flags by setting name: a repeated `--tag` fills `tags`, `--build-arg` `build_args`…"""
    renamed = {"tag": "tags", "build_arg": "build_args", "label": "labels"}
    return {renamed.get(name, name): value for name, value in flags.items()}


def _settings(c: Context, **flags: Any) -> Settings:
    return load_settings(_setting_flags(flags), _config(c))


def _run(action: Callable[[], T]) -> T:
    """Run one task body: a `HubError` becomes one line on stderr and its exit code."""
    try:
        return action()
    except HubError as error:
        raise Exit(redact(f"hubtasks: {error}"), code=error.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("hubtasks: interrupted", code=130) from None
    except Exception as error:
        if os.environ.get("HUB_DEBUG"):
            raise
        message = f"hubtasks: unexpected {type(error).__name__}: {error}"
        raise Exit(
            redact(message) + " (set HUB_DEBUG=1 for a traceback and report it)",
            code=1,
        ) from None


def _prepare(
    c: Context, *, quiet: bool = False, verbose: bool = False, **flags: Any
) -> tuple[Settings, api.Session]:
    global _SESSION
    if _SESSION is None:
        _SESSION = _api().Session(console=_new_console(), context=c)
    _SESSION.console.configure(quiet=quiet, verbose=verbose)
    _SESSION.hooks.context = c  # Invoke makes a new context per task; use the current one
    _hide_config_token(c)
    settings = _run(lambda: _settings(c, **flags))
    if not _SESSION.warned:
        _SESSION.warned = True
        for warning in _api().env_file_warnings(settings):
            _SESSION.console.warn(warning)
    return settings, _SESSION.adopt(settings)


def _publish(result: api.Release, session: api.Session, as_json: bool) -> None:
    """The result: JSON or one reference per line on stdout; GITHUB_OUTPUT when set."""
    if as_json:
        session.console.json_result(result.to_dict())
    elif result.dry_run:
        session.console.render_plan(result)
    else:
        for item in result.published:
            session.console.result(item.reference)
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output and not result.dry_run:
        from .console import write_github_output

        _run(lambda: write_github_output(github_output, result))


_OUT = ("quiet", "verbose")


def _build_flags(*values: Any) -> dict[str, Any]:
    """The flags build and release share, by name, in `_BUILD_FLAGS` order."""
    return dict(zip(_BUILD_FLAGS, values, strict=True))


@task(help=_help("registry", "quiet"))
def logout(c, registry=None, quiet=False):
    """Remove the credentials `inv login --save` stored for the registry, nothing else."""
    settings, session = _prepare(c, quiet=quiet, registry=registry)
    _run(lambda: _api().logout(settings, session=session))


@task(
    help={
        "save": "Store the credentials like `docker login` (credential helper, else "
        "~/.docker/config.json); without it nothing is written.",
        **_help("registry", "repository", "quiet"),
    }
)
def login(c, save=False, registry=None, repository=None, quiet=False):
    """Check HUB_USERNAME/HUB_TOKEN against the registry (never a cached answer)."""
    settings, session = _prepare(c, quiet=quiet, registry=registry, repository=repository)
    _run(lambda: _api().login(settings, save=save, session=session))


@task(
    iterable=["tag", "build_arg", "label", "cache_from"],
    help=_help(*_BUILD_FLAGS, "allow_dirty", *_OUT),
)
def build(
    c,
    tag=None,
    repository=None,
    registry=None,
    dockerfile=None,
    context=None,
    build_arg=None,
    label=None,
    cache_from=None,
    allow_dirty=False,
    quiet=False,
    verbose=False,
):
    """Build the image with live output and OCI labels, and give it every requested tag."""
    flags = _build_flags(
        tag, repository, registry, dockerfile, context, build_arg, label, cache_from
    )
    settings, session = _prepare(c, quiet=quiet, verbose=verbose, **flags)
    _run(lambda: _api().build(settings, allow_dirty=allow_dirty, session=session))


@task(
    name="tag",
    iterable=["tag"],
    help=_help(
        "tag",
        "repository",
        "registry",
        "allow_dirty",
        "quiet",
        source="Local image to tag: a tag of the repository, a reference or an image ID "
        "(default: the image built earlier on this command line, else latest).",
    ),
)
def tag_(c, source=None, tag=None, repository=None, registry=None, allow_dirty=False, quiet=False):
    """Add tags to an image that already exists locally, without rebuilding."""
    settings, session = _prepare(c, quiet=quiet, tag=tag, repository=repository, registry=registry)
    _run(
        lambda: _api().tag(settings, source, allow_dirty=allow_dirty, session=session),
    )


@task(
    iterable=["tag"],
    help=_help(
        "tag", "repository", "registry", "force", "allow_dirty", *_OUT, json_=_FLAG_HELP["json"]
    ),
)
def push(
    c,
    tag=None,
    repository=None,
    registry=None,
    force=False,
    allow_dirty=False,
    quiet=False,
    verbose=False,
    json_=False,
):
    """Push each tag explicitly and print its manifest digest; unchanged tags are skipped."""
    settings, session = _prepare(
        c, quiet=quiet, verbose=verbose, tag=tag, repository=repository, registry=registry
    )
    result = _run(
        lambda: _api().push(settings, force=force, allow_dirty=allow_dirty, session=session),
    )
    _publish(result, session, json_)


@task(
    iterable=["tag", "build_arg", "label", "cache_from"],
    help=_help(
        *_BUILD_FLAGS,
        "semver",
        "latest",
        "force",
        "allow_dirty",
        "dry_run",
        *_OUT,
        json_=_FLAG_HELP["json"],
    ),
)
def release(
    c,
    tag=None,
    repository=None,
    registry=None,
    dockerfile=None,
    context=None,
    build_arg=None,
    label=None,
    cache_from=None,
    semver=False,
    latest=False,
    force=False,
    allow_dirty=False,
    dry_run=False,
    quiet=False,
    verbose=False,
    json_=False,
):
    """Validate, log in, build, tag, push and verify; print REGISTRY/REPO:TAG@DIGEST per tag."""
    flags = _build_flags(
        tag, repository, registry, dockerfile, context, build_arg, label, cache_from
    )
    settings, session = _prepare(
        c, quiet=quiet, verbose=verbose, semver=semver, latest=latest, **flags
    )
    result = _run(
        lambda: _api().release(
            settings, dry_run=dry_run, force=force, allow_dirty=allow_dirty, session=session
        ),
    )
    if not result.dry_run:
        session.console.summary(result, size=result.image.size if result.image else None)
    _publish(result, session, json_)


@task(iterable=["tag"], help=_help("tag", "repository", "registry", "dockerfile", "context"))
def doctor(c, tag=None, repository=None, registry=None, dockerfile=None, context=None):
    """Check that everything a release needs is in order; exit 0 only when it is."""
    from .doctor import healthy, run_checks

    console = _new_console()
    _hide_config_token(c)
    flags = _setting_flags(
        {
            "tag": tag,
            "repository": repository,
            "registry": registry,
            "dockerfile": dockerfile,
            "context": context,
        }
    )
    checks = _run(lambda: run_checks(flags, dict(_config(c))))
    console.render_checks(checks)
    if not healthy(checks):
        failed = sum(1 for check in checks if check.ok is False)
        raise Exit(f"hubtasks: doctor found {failed} problem(s); fix them before releasing", 1)


@task(help=_help("repository", "registry"))
def images(c, repository=None, registry=None):
    """List the local images of the repository: tag, image ID, size and age."""
    settings, session = _prepare(c, repository=repository, registry=registry)

    def listing() -> list[dict[str, Any]]:
        settings.require("tag")
        assert settings.repository
        return session.engine_for(settings).list_images(settings.repository)

    rows = _run(listing)
    assert settings.repository
    session.console.render_images(settings.repository, rows)


ns = Collection("hub", login, logout, build, tag_, push, release, doctor, images)
ns.configure({"hub": config_defaults()})
