"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, tags, Dockerfile, context, daemon, credentials, the registry's current
tags) before it pushes anything.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from . import plan as planning
from .console import Console, Stopwatch, human_size
from .engine import remove_credentials, save_credentials
from .errors import (
    ConfigError,
    VerifyError,
)
from .gitinfo import read_git
from .hooks import Facts
from .plan import Plan, Remote
from .preflight import check_context, env_file_warnings, labels_for, resolve_tags
from .publish import each_tag_or_raise, now_published, push_tags, read_remote, refusal
from .references import Repository, validate_tag
from .results import BuiltImage, PushedTag, Release
from .session import Session, in_background, session_for
from .settings import Settings

__all__ = [
    "BuiltImage",
    "PushedTag",
    "Release",
    "Session",
    "build",
    "check_context",
    "env_file_warnings",
    "labels_for",
    "login",
    "logout",
    "push",
    "release",
    "resolve_tags",
    "tag",
    "verify",
]


def _facts(stage: str, repository: Repository, tags: tuple[str, ...] | list[str]) -> Facts:
    return Facts(stage=stage, image=str(repository), tags=list(tags))


def login(
    settings: Settings,
    *,
    save: bool = False,
    session: Session | None = None,
) -> str | None:
    """Check the credentials against the registry; with `save`, store them like docker login.

    Returns where the credentials were saved, or None. Within one session the registry is
    asked once per user (a saving login always runs).
    """
    settings.require("login")
    repository = settings.require_repository()
    session = session_for(settings, session)
    assert settings.username and settings.token
    key = session.login_key(settings)
    if key in session.logged_in and not save:
        return None
    facts = _facts("login", repository, settings.tags)
    session.hooks.run("pre", facts)
    console = session.console
    with console.activity(
        "login", f"checking the credentials of {settings.username} at {repository.registry}"
    ):
        session.retrying(f"login to {repository.registry}", session.credential_check(settings))
    session.logged_in.add(key)
    console.stage("login", f"logged in to {repository.registry} as {settings.username}")
    where = None
    if save:
        where = save_credentials(repository, settings.username, settings.token, settings.docker_env)
        console.stage("login", f"credentials saved to {where}")
    session.hooks.run("post", facts)
    return where


def logout(settings: Settings, *, session: Session | None = None) -> str | None:
    """Remove what `login(save=True)` stored for this registry, and nothing else."""
    session = session_for(settings, session)
    where = remove_credentials(settings.registry, settings.docker_env)
    if where:
        session.console.stage(
            "logout", f"removed the credentials for {settings.registry} from {where}"
        )
    else:
        session.console.stage("logout", f"no saved credentials for {settings.registry}")
    return where


def build(
    settings: Settings,
    *,
    tags: tuple[str, ...] | None = None,
    labels: dict[str, str] | None = None,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> BuiltImage:
    """Build the image with OCI labels, streaming the log, and give it every tag."""
    settings.require("build")
    check_context(settings)
    session = session_for(settings, session)
    if tags is None or labels is None:
        git = read_git(settings.cwd)
        tags = tags or resolve_tags(settings, git, allow_dirty=allow_dirty)
        labels = labels if labels is not None else labels_for(settings, git, tags)
    return _build_checked(settings, tags, labels, session)


def _build_checked(
    settings: Settings, tags: tuple[str, ...], labels: dict[str, str], session: Session
) -> BuiltImage:
    """The build itself, once `settings`, the context, the tags and labels are validated."""
    repository = settings.require_repository()
    facts = _facts("build", repository, tags)
    session.hooks.run("pre", facts)
    console = session.console
    engine = session.engine_for(settings)
    first, *others = tags
    console.stage(
        "build",
        f"building {repository.canonical(first)} from {settings.dockerfile} "
        f"(context {settings.context})",
    )
    start = time.monotonic()
    with console.building(repository.canonical(first)):
        image_id = engine.build(
            context=settings.context,
            dockerfile=settings.dockerfile,
            ref=repository.ref(first),
            build_args=settings.build_args,
            labels=labels,
            on_output=console.build_output,
        )
    for name in others:
        engine.tag(image_id, repository, name)
    inspected = engine.inspect(image_id)
    size = inspected.size if inspected else None
    console.stage("build", f"built {image_id[:19]} ({human_size(size)}) tagged {', '.join(tags)}")
    session.tags, session.image_id = tags, image_id
    facts.image_id = image_id
    facts.timings["build"] = time.monotonic() - start
    session.hooks.run("post", facts)
    return BuiltImage(repository=repository, image_id=image_id, tags=tags, labels=labels, size=size)


def tag(
    settings: Settings,
    source: str | None = None,
    *,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> BuiltImage:
    """Add the configured tags to a local image, without rebuilding.

    `source` is a tag of the configured repository, or any local image reference or ID; by
    default the image an earlier build of this session made, else `latest`.
    """
    settings.require("tag")
    repository = settings.require_repository()
    session = session_for(settings, session)
    tags = resolve_tags(settings, allow_dirty=allow_dirty)
    engine = session.engine_for(settings)
    if source is None and session.image_id:
        image_id: str | None = session.image_id
        source = image_id
    else:
        source = source or "latest"
        candidates = [repository.ref(source)] if _is_tag(source) else []
        candidates.append(source)
        image_id = next((i for i in map(engine.image_id, candidates) if i), None)
        if image_id is None:
            raise ConfigError(
                f"no local image '{source}' (looked for "
                f"{' and '.join(dict.fromkeys(candidates))}); build it first or pass --source "
                "with an existing tag, reference or image ID"
            )
    facts = _facts("tag", repository, tags)
    facts.image_id = image_id
    session.hooks.run("pre", facts)
    for name in tags:
        engine.tag(image_id, repository, name)
    session.console.stage("tag", f"{image_id[:19]} tagged {', '.join(tags)}")
    session.tags = tuple(dict.fromkeys((*(session.tags or ()), *tags)))
    session.image_id = image_id
    session.hooks.run("post", facts)
    return BuiltImage(repository=repository, image_id=image_id, tags=tags)


def _is_tag(text: str) -> bool:
    try:
        validate_tag(text)
    except ConfigError:
        return False
    return True


def push(
    settings: Settings,
    *,
    force: bool = False,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> Release:
    """Push each tag explicitly and return what the registry now holds.

    Every tag must exist locally and the credentials must be accepted before the first push.
    A tag the registry already holds for the same image is skipped; a version tag it holds for
    another image is refused unless `force`. If a push fails, the error names what made it.
    """
    settings.require("push")
    repository = settings.require_repository()
    session = session_for(settings, session)
    session.check_ahead(settings)  # while the daemon connection and the image listing run
    tags = resolve_tags(settings, allow_dirty=allow_dirty, chained=session.tags)
    engine = session.engine_for(settings)
    listed = {row["tag"]: row["id"] for row in engine.list_images(repository)}  # one call
    local = {name: listed.get(name) for name in tags}
    missing = [name for name, image_id in local.items() if image_id is None]
    if missing:
        names = ", ".join(repository.ref(t) for t in missing)
        raise ConfigError(
            f"no local image {names}; build it first (inv build --tag {missing[0]}) "
            "or tag an existing image (inv tag)"
        )
    login(settings, session=session)
    watch = Stopwatch()
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        remote = read_remote(session.registry_for(settings), tags, session)
    decisions = [
        planning.decide(
            [name], image_id=local[name], remote=remote, published=[], force=force
        ).decisions[0]
        for name in tags
    ]
    plan = Plan(tuple(decisions))
    if plan.refused:
        raise refusal(plan, repository)
    _report_plan(plan, repository, session.console)
    facts = _facts("push", repository, tags)
    session.hooks.run("pre", facts)
    with watch.time("push"):
        pushed = push_tags(
            settings, [d.tag for d in plan.to_push], session=session, image_ids=local
        )
    published = now_published(tags, pushed, plan, repository)
    _fill(facts, published, watch)
    session.hooks.run("post", facts)
    return Release(repository, plan, published=published, timings=watch.timings)


def _fill(facts: Facts, published: list[PushedTag], watch: Stopwatch) -> None:
    facts.refs = [p.reference for p in published]
    facts.digest = published[0].digest if published else None
    facts.timings.update(watch.timings)


def verify(settings: Settings, pushed: list[PushedTag], *, session: Session | None = None) -> None:
    """Ask the registry for every pushed tag and compare its digest with the pushed one."""
    session = session_for(settings, session)
    registry = session.registry_for(settings)
    names = [item.tag for item in pushed]
    with session.console.activity("verify", f"asking the registry for {', '.join(names)}"):
        found = each_tag_or_raise(
            registry,
            session,
            names,
            lambda client, name: client.digest(name, after_push=True),
            lambda name: f"verify of {registry.repository.canonical(name)}",
        )
    for item, remote in zip(pushed, found, strict=True):
        if remote is None:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} was pushed but the registry does not "
                "list it; run the release again"
            )
        if remote != item.digest:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} points at {remote} in the "
                f"registry, not at the pushed {item.digest}; another push may have raced this one"
            )
        session.console.stage("verify", f"{item.reference} is in the registry")


def _report_plan(plan: Plan, repository: Repository, console: Console) -> None:
    words = {
        planning.CREATE: "create",
        planning.MOVE: "move",
        planning.SKIP: "unchanged, skip",
        planning.HOLD: "hold back",
        planning.REFUSE: "REFUSE",
        planning.CHECK: "check",
    }
    for d in plan.decisions:
        console.stage("plan", f"{repository.canonical(d.tag)}: {words[d.action]} ({d.reason})")


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def release(
    settings: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> Release:
    """validate → pre_release → login → read the registry → build → plan → tag → push →
    verify → post_release.

    With `dry_run`, stop after the plan: nothing is built, tagged or pushed, and no hook runs.
    The plan compares with the local image of the first tag when one with the same labels
    exists.
    """
    settings.require("release")
    repository = settings.require_repository()
    session = session_for(settings, session)
    session.check_ahead(settings)  # while the checks below and the daemon connection run
    check_context(settings)
    git = read_git(settings.cwd)
    tags = resolve_tags(settings, git, allow_dirty=allow_dirty, chained=session.tags)
    labels = labels_for(settings, git, tags)
    watch = Stopwatch()
    with watch.time("connect"):
        engine = session.engine_for(settings)
    facts = _facts("release", repository, tags)
    if not dry_run:
        session.hooks.run("pre", facts)
    with watch.time("login"):
        login(settings, session=session)
    registry = session.registry_for(settings)

    def read_registry() -> tuple[list[str], dict[str, Remote | None]]:
        with watch.time("plan"):
            published = session.retrying(f"listing the tags of {repository}", registry.tags)
            return published, read_remote(registry, tags, session, published)

    if dry_run:
        with session.console.activity("plan", "reading the registry"):
            published, remote = read_registry()
        local = engine.inspect(repository.ref(tags[0]))
        same_build = local is not None and all(local.labels.get(k) == v for k, v in labels.items())
        image_id = local.id if local and same_build else None  # else the real build decides
        plan = planning.decide(
            list(tags), image_id=image_id, remote=remote, published=published, force=force
        )
        commands = planning.equivalent_commands(
            registry=repository.registry,
            username=settings.username or "",
            local_name=repository.local_name,
            plan=plan,
            dockerfile=_relative(settings.dockerfile, settings.cwd),
            context=_relative(settings.context, settings.cwd),
            build_args=settings.build_args,
            labels=labels,
        )
        return Release(repository, plan, timings=watch.timings, commands=commands, dry_run=True)

    session.retrying(f"checking push access to {repository}", registry.check_push_access)
    # The registry is read while the daemon builds (the build does not use the registry
    # connection): on a real network that takes a round trip per request off every release.
    # The credentials were checked above, so a registry that refuses us has already stopped
    # the release.
    reading = in_background(read_registry)
    try:
        with watch.time("build"):
            image = _build_checked(settings, tags[:1], labels, session)
    except Exception:
        # Leave the registry client idle for whoever uses this session next (Ctrl-C does
        # not wait).
        with contextlib.suppress(Exception):
            reading.result()
        raise
    published, remote = reading.result()
    plan = planning.decide(
        list(tags), image_id=image.image_id, remote=remote, published=published, force=force
    )
    _report_plan(plan, repository, session.console)
    if plan.refused:
        raise refusal(plan, repository)
    later = [d.tag for d in plan.decisions[1:] if d.action != planning.HOLD]
    if later:
        with watch.time("tag"):
            tag_facts = _facts("tag", repository, later)
            tag_facts.image_id = image.image_id
            session.hooks.run("pre", tag_facts)
            for name in later:
                engine.tag(image.image_id, repository, name)
            session.hooks.run("post", tag_facts)
    push_facts = _facts("push", repository, [d.tag for d in plan.to_push])
    session.hooks.run("pre", push_facts)
    with watch.time("push"):
        pushed = push_tags(
            settings,
            [d.tag for d in plan.to_push],
            session=session,
            image_ids=dict.fromkeys(tags, image.image_id),
        )
    with watch.time("verify"):
        verify(settings, pushed, session=session)
    published_now = now_published(tags, pushed, plan, repository)
    _fill(push_facts, pushed, watch)
    session.hooks.run("post", push_facts)
    result = Release(repository, plan, image=image, published=published_now, timings=watch.timings)
    _fill(facts, published_now, watch)
    facts.image_id = image.image_id
    session.hooks.run("post", facts)
    return result
