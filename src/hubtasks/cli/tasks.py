"""Publish a Docker image: log in, build, tag, push and verify.

Settings come from flags, then the environment, then `.env`, then Invoke config (`hub.*`),
then defaults; `inv init` (or `hubtasks init`) writes a `.env` that lists every key.
"""

# The Invoke collection. Each task lists only its own options; `hub_task` (cli/flags.py) adds
# the flag of every setting whose row in `settings.KEYS` names the task (`Key.tasks`) and hands
# their values over as `flags`. `cli/run.py` turns them into `Settings` and a `HubError` into
# one `hubtasks:` line and its exit code.

from __future__ import annotations

import atexit
import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, Exit

from hubtasks.cli.flags import hub_task
from hubtasks.cli.run import (
    env_file_for,
    hide_secrets,
    hub_config,
    new_console,
    prepare,
    publish,
    run_stage,
)
from hubtasks.errors import ConfigError
from hubtasks.ui.redaction import install_log_redaction

if TYPE_CHECKING:
    from hubtasks import api

Flags = Mapping[str, object]  # the settings' flags of a task, by setting name

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

# (Each task imports `api` when it runs, so that `inv --list` stays fast.)


@hub_task
def init(c: Context, flags: Flags) -> None:
    """Start a project: .env (mode 600) to fill in, .env kept out of git and the image, tasks.py."""
    from hubtasks.cli.init import init_project

    console = new_console()
    run_stage(lambda: init_project(Path.cwd(), console), "init")


@hub_task
def logout(c: Context, flags: Flags, quiet: bool = False) -> None:
    """Remove the credentials `inv login --save` stored for the registry, nothing else."""
    from hubtasks import api

    settings, session = prepare(c, "logout", flags, quiet=quiet)
    run_stage(lambda: api.logout(settings, session=session), "logout")


@hub_task
def login(c: Context, flags: Flags, save: bool = False, quiet: bool = False) -> None:
    """Check HUB_USERNAME/HUB_TOKEN against the registry (never a cached answer)."""
    from hubtasks import api

    settings, session = prepare(c, "login", flags, quiet=quiet)
    run_stage(lambda: api.login(settings, save=save, session=session), "login")


@hub_task
def build(
    c: Context,
    flags: Flags,
    allow_dirty: bool = False,
    quiet: bool = False,
    verbose: bool = False,
) -> None:
    """Build the image with live output and OCI labels, and give it every requested tag."""
    from hubtasks import api

    settings, session = prepare(c, "build", flags, quiet=quiet, verbose=verbose)
    run_stage(lambda: api.build(settings, allow_dirty=allow_dirty, session=session), "build")


@hub_task(name="tag")
def tag_(
    c: Context,
    flags: Flags,
    source: str | None = None,
    allow_dirty: bool = False,
    quiet: bool = False,
) -> None:
    """Add tags to an image that already exists locally, without rebuilding."""
    from hubtasks import api

    settings, session = prepare(c, "tag", flags, quiet=quiet)
    run_stage(lambda: api.tag(settings, source, allow_dirty=allow_dirty, session=session), "tag")


@hub_task
def push(
    c: Context,
    flags: Flags,
    force: bool = False,
    allow_dirty: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> None:
    """Push each tag explicitly and print its manifest digest; unchanged tags are skipped."""
    from hubtasks import api

    settings, session = prepare(c, "push", flags, quiet=quiet, verbose=verbose, json_=json_)
    result = run_stage(
        lambda: api.push(settings, force=force, allow_dirty=allow_dirty, session=session),
        "push",
        session.console if json_ else None,
    )
    publish(result, session, "push", json_)


@hub_task
def release(
    c: Context,
    flags: Flags,
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

    settings, session = prepare(c, "release", flags, quiet=quiet, verbose=verbose, json_=json_)
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
    publish(result, session, "release", json_)


@hub_task
def promote(
    c: Context,
    flags: Flags,
    source: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    json_: bool = False,
) -> None:
    """Publish an image the registry already holds under new tags, registry-side.

    No Docker daemon, no pull, no layer push; prints REGISTRY/REPO:TAG@DIGEST per tag."""
    from hubtasks import api

    settings, session = prepare(c, "promote", flags, quiet=quiet, verbose=verbose, json_=json_)

    def run() -> api.Release:
        if not source:
            raise ConfigError("promote needs --source: the tag, digest or image to publish")
        return api.promote(settings, source=source, force=force, dry_run=dry_run, session=session)

    result = run_stage(run, "promote", session.console if json_ else None)
    if not result.dry_run:
        session.console.summary(result, size=None)
    publish(result, session, "promote", json_)


@hub_task
def doctor(c: Context, flags: Flags) -> None:
    """Check that everything a release needs is in order; exit 0 only when it is.

    With --platform, also whether the daemon can run each platform's RUN steps."""
    from hubtasks.doctor import healthy, run_checks

    console = new_console()
    env_file = env_file_for(c)
    hide_secrets(c, env_file)
    checks = run_stage(lambda: run_checks(flags, dict(hub_config(c)), env_file=env_file), "doctor")
    console.render_checks(checks)
    if not healthy(checks):
        failed = sum(1 for check in checks if check.ok is False)
        raise Exit(f"hubtasks: doctor found {failed} problem(s); fix them before releasing", 1)


@hub_task
def images(c: Context, flags: Flags) -> None:
    """List the local images of the repository: tag, image ID, size and age."""
    settings, session = prepare(c, "images", flags)

    def listing() -> tuple[Any, list[dict[str, Any]]]:
        repo = settings.require_repository()
        return repo, session.engine_for(settings).list_images(repo)

    repo, rows = run_stage(listing, "images")
    session.console.render_images(repo, rows)


@hub_task
def describe(c: Context, flags: Flags, strict: bool = False, quiet: bool = False) -> None:
    """Set the Docker Hub page: overview from the README, short description.

    Creates the repository when needed and sends nothing when the page already matches."""
    from hubtasks.dockerhub.describe import describe as describe_page

    settings, session = prepare(c, "describe", flags, quiet=quiet)
    result = run_stage(lambda: describe_page(settings, strict=strict, session=session), "describe")
    if url := result.url:
        run_stage(lambda: session.console.result(url), "describe")


@hub_task
def prune(
    c: Context,
    flags: Flags,
    match: str | None = None,
    keep: str | None = None,
    older_than: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
) -> None:
    """List the tags a rule would delete (tag, digest, date); --yes deletes them.

    Not with --dry-run. Never a tag whose digest a kept tag holds, itself or inside its list."""
    from hubtasks.dockerhub.prune import prune as prune_tags

    settings, session = prepare(c, "prune", flags, quiet=quiet)
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
