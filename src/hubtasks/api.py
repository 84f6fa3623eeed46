"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, tags, Dockerfile, context, daemon, credentials, the registry's current
tags) before it pushes anything.
"""

from __future__ import annotations

from pathlib import Path

from . import plan as planning
from .cache import cache_refs
from .console import Stopwatch
from .engine import remove_credentials, save_credentials
from .errors import ConfigError
from .execute import Executor, facts_for, refuse, report_plan
from .execute import release as execute_release
from .gather import build_inputs, read_registry, release_facts
from .gitinfo import read_git
from .plan import INPUTS_LABEL, Plan
from .preflight import check_context, env_file_warnings, labels_for, resolve_tags
from .references import validate_tag
from .results import BuiltImage, PushedTag, Release
from .session import Session, session_for
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
    facts = facts_for("login", repository, settings.tags)
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
    """Build the image with OCI labels and the inputs label, streaming the log, and give it
    every tag."""
    settings.require("build")
    check_context(settings)
    session = session_for(settings, session)
    git = read_git(settings.cwd)
    tags = tags or resolve_tags(settings, git, allow_dirty=allow_dirty)
    labels = labels if labels is not None else labels_for(settings, git, tags)
    engine = session.engine_for(settings)
    inputs = build_inputs(settings, git, labels, engine.platform())
    cache = cache_refs(settings, published=None, local=lambda name: None)  # auto: needs a release
    image = Executor(settings, session, Stopwatch()).build(inputs, tags, tag_now=True, cache=cache)
    session.tags, session.image_id = tags, image.image_id
    return image


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
    Executor(settings, session, Stopwatch()).tag_locally(image_id, list(tags))
    session.tags = tuple(dict.fromkeys((*(session.tags or ()), *tags)))
    session.image_id = image_id
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
    A tag the registry already holds for the same inputs (or image) is skipped; a version tag
    it holds for another is refused unless `force`. If a push fails, the error names what
    made it.
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
    inputs = {}
    for image_id in set(local.values()):
        inspected = engine.inspect(image_id or "")
        inputs[image_id] = inspected.labels.get(INPUTS_LABEL) if inspected else None
    login(settings, session=session)
    watch = Stopwatch()
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        state = read_registry(session.registry_for(settings), tags, session)
    decisions = [
        planning.decide(
            [name],
            remote=state.remote,
            published=[],
            inputs=inputs[local[name]],
            image_id=local[name],
            force=force,
        ).decisions[0]
        for name in tags
    ]
    plan = Plan(tuple(decisions), build=False, source=None)
    if plan.refused:
        raise refuse(plan, repository)
    report_plan(plan, repository, session)
    published = Executor(settings, session, watch).push(plan, tags, local)
    return Release(repository, plan, published=published, timings=watch.timings)


def verify(settings: Settings, pushed: list[PushedTag], *, session: Session | None = None) -> None:
    """Read every pushed tag back and compare the digest of its manifest bytes with the
    pushed one."""
    session = session_for(settings, session)
    Executor(settings, session, Stopwatch()).verify(pushed)


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
    """gather (settings, git, build inputs; pre_release; login, the registry's tags and their
    inputs) → plan (refusals before anything changes) → execute (build only when no tag
    holds these inputs, tag, push or copy, verify) → post_release.

    With `dry_run`, stop after the plan: nothing is built, tagged or pushed, no hook runs, and
    a refusal is reported exactly as the real run would report it.
    """
    settings.require("release")
    repository = settings.require_repository()
    session = session_for(settings, session)
    # While the Docker SDK is imported, git is read, the daemon connected, the context hashed.
    session.check_ahead(settings)
    check_context(settings)
    watch = Stopwatch()
    git, tags, labels = release_facts(settings, allow_dirty=allow_dirty, chained=session.tags)
    with watch.time("connect"):
        engine = session.engine_for(settings)
    with watch.time("inputs"):
        inputs = build_inputs(settings, git, labels, engine.platform())
    facts = facts_for("release", repository, tags)
    if not dry_run:
        session.hooks.run("pre", facts)
    with watch.time("login"):
        login(settings, session=session)
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        state = read_registry(session.registry_for(settings), tags, session)
    image_id = None
    if dry_run:  # a local build of the same inputs can settle what only a build could
        local = engine.inspect(repository.ref(tags[0]))
        if local is not None and local.labels.get(INPUTS_LABEL) == inputs.digest:
            image_id = local.id
    plan = planning.decide(
        list(tags),
        remote=state.remote,
        published=state.published,
        inputs=inputs.digest,
        image_id=image_id,
        force=force,
    )
    if plan.refused:
        raise refuse(plan, repository)
    cache = []
    if plan.build:
        cache = cache_refs(
            settings,
            published=state.published,
            local=lambda name: engine.image_id(repository.ref(name)),
            remote=state.remote,
        )
    if dry_run:
        return Release(
            repository,
            plan,
            timings=watch.timings,
            commands=_commands(settings, plan, inputs.context.labels, cache),
            dry_run=True,
        )
    if not plan.build:
        report_plan(plan, repository, session)
    plan, image, published = execute_release(
        Executor(settings, session, watch),
        plan,
        tags=tags,
        inputs=inputs,
        state=state,
        force=force,
        cache=cache,
    )
    facts.refs = [p.reference for p in published]
    facts.digest = published[0].digest if published else None
    facts.image_id = image.image_id if image else None
    facts.timings.update(watch.timings)
    session.hooks.run("post", facts)
    return Release(repository, plan, image=image, published=published, timings=watch.timings)


def _commands(
    settings: Settings, plan: Plan, labels: dict[str, str], cache: list[str]
) -> list[str]:
    repository = settings.require_repository()
    return planning.equivalent_commands(
        registry=repository.registry,
        username=settings.username or "",
        local_name=repository.local_name,
        plan=plan,
        dockerfile=_relative(settings.dockerfile, settings.cwd),
        context=_relative(settings.context, settings.cwd),
        build_args=settings.build_args,
        labels=labels,
        cache_from=cache,
    )
