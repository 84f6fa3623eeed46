"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, tags, Dockerfile, context, daemon, credentials, the registry's current
tags) before it pushes anything.
"""

from __future__ import annotations

import functools

from hubtasks.build.gitinfo import read_git
from hubtasks.daemon.credentials import (
    with_docker_credentials,
)
from hubtasks.errors import ConfigError
from hubtasks.pipeline import mirror, promotion
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.cache import cache_refs
from hubtasks.pipeline.execute import Executor
from hubtasks.pipeline.gather import (
    read_registry,
)
from hubtasks.pipeline.login import login, logout
from hubtasks.pipeline.plan import INPUTS_LABEL
from hubtasks.pipeline.preflight import check_context, labels_for, resolve_tags
from hubtasks.pipeline.release import (
    before_release,
    build_cache,
    build_set_for,
    check_push_access,
    dry_run_commands,
    execute_everywhere,
    gather_release,
    plan_platform_tags,
    release_plan,
)
from hubtasks.pipeline.results import BuiltImage, PushedTag, Release
from hubtasks.pipeline.session import Session, session_for
from hubtasks.pipeline.stopwatch import Stopwatch
from hubtasks.references import validate_tag
from hubtasks.settings.resolve import Settings

__all__ = [
    "BuiltImage",
    "PushedTag",
    "Release",
    "Session",
    "build",
    "check_context",
    "labels_for",
    "login",
    "logout",
    "promote",
    "push",
    "release",
    "resolve_tags",
    "tag",
    "verify",
]


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
    builds = build_set_for(settings, session, git, labels, while_streaming=True)
    cache = cache_refs(settings, published=None, local=lambda name: None)  # auto: needs a release
    images = Executor(settings, session, Stopwatch()).build(builds, tags, tag_now=True, cache=cache)
    session.tags, session.image_id = tags, images[0].image_id
    return images[0]


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
    image_id = session.image_id if source is None else None
    if image_id is None:
        source = source or "latest"
        candidates = [repository.ref(source)] if _is_tag(source) else []
        candidates.append(source)
        found = next((i for i in map(engine.image_id, candidates) if i), None)
        if found is None:
            raise ConfigError(
                f"no local image '{source}' (looked for "
                f"{' and '.join(dict.fromkeys(candidates))}); build it first or pass --source "
                "with an existing tag, reference or image ID"
            )
        image_id = found
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
    settings = with_docker_credentials(settings)
    settings.require("push")
    repository = settings.require_repository()
    session = session_for(settings, session)
    session.daemon_trust = True  # the daemon pushes: it says how to reach the registry
    session.check_ahead(settings)  # while the daemon connection and the image listing run
    tags = resolve_tags(settings, allow_dirty=allow_dirty, chained=session.tags)
    engine = session.engine_for(settings)
    rows = {row["tag"]: row for row in engine.list_images(repository)}  # one call, labels too
    local = {name: rows[name]["id"] if name in rows else None for name in tags}
    missing = [name for name, image_id in local.items() if image_id is None]
    if missing:
        names = ", ".join(repository.ref(t) for t in missing)
        raise ConfigError(
            f"no local image {names}; build it first (inv build --tag {missing[0]}) "
            "or tag an existing image (inv tag)"
        )
    inputs = {rows[name]["id"]: rows[name]["labels"].get(INPUTS_LABEL) for name in tags}
    login(settings, session=session)
    watch = Stopwatch()
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        state = read_registry(session.registry_for(settings), tags, session)
    found = {name: image_id for name, image_id in local.items() if image_id}  # all, see above
    plan = planning.plan_push(tags, remote=state.remote, local=found, inputs=inputs, force=force)
    if plan.refused:
        raise planning.refusal(plan, repository, "push")
    session.console.plan_lines(plan, repository)
    published = Executor(settings, session, watch).push(plan, tags, local).published
    first = rows[tags[0]]  # the image of the first tag, as a release reports its image
    image = BuiltImage(repository, first["id"], tags, labels=first["labels"], size=first["size"])
    return Release(repository, plan, image=image, published=published, timings=watch.timings)


def verify(settings: Settings, pushed: list[PushedTag], *, session: Session | None = None) -> None:
    """Read every pushed tag back and compare the digest of its manifest bytes with the
    pushed one."""
    session = session_for(settings, session)
    Executor(settings, session, Stopwatch()).verify(pushed)


def release(
    settings: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    session: Session | None = None,
    strict: bool = False,
) -> Release:
    """Stages, one way: settings, git, tags → pre_release hook → login → gather (reads only:
    the registry's tags, build inputs, what each planned tag holds; `Gathered`) → plan (pure;
    refusals before anything changes) → execute (build only when no tag holds these inputs;
    then `plan.after_build` settles what only the image could; tag, push or copy, verify) →
    Docker Hub page (HUB_DESCRIBE; a failure is a warning unless `strict`) → post_release.

    With `dry_run`, stop after the plan: nothing is built, tagged or pushed, no hook runs, and
    a refusal is reported exactly as the real run would report it.
    """
    settings = with_docker_credentials(settings)
    settings.require("release")
    repository = settings.require_repository()
    session = session_for(settings, session)
    session.daemon_trust = True  # the daemon builds and pushes: it says how to reach the registry
    others = mirror.destinations(settings)  # further destinations, each with its credentials
    watch = Stopwatch()
    mirror.start_checks(session, others, push=not dry_run)
    git, tags, labels, facts = before_release(
        settings, session, watch, others, allow_dirty=allow_dirty, dry_run=dry_run
    )
    gathered, found = gather_release(
        settings, session, watch, (git, tags, labels), others, dry_run=dry_run, force=force
    )
    builds, state = gathered.builds, gathered.state
    plan = release_plan(settings, session, tags, builds, state, force=force, dry_run=dry_run)
    executor = Executor(settings, session, watch)
    multi = builds.multi and plan.build  # per-platform tags, planned like any tag
    held = plan_platform_tags(executor, tags, builds, state, force=force) if multi else {}
    cache = build_cache(settings, session, state) if plan.build else []
    if dry_run:
        commands = dry_run_commands(settings, plan, builds, cache)
        dry = Release(repository, plan, timings=watch.timings, commands=commands, dry_run=True)
        return mirror.with_plans(dry, tags[0], found)
    done, mirrors = execute_everywhere(
        executor, plan, found, tags=tags, builds=builds, state=state, force=force, cache=cache,
        held=held,
    )  # fmt: skip
    facts.record_published(done.published, done.platforms, watch.timings, mirrors)
    facts.image_id = done.images[0].image_id if done.images and not builds.multi else None
    if settings.describe_after_release:
        from hubtasks.dockerhub.describe import sync_after_release  # the Docker Hub page

        sync_after_release(settings, session, strict=strict)
    session.hooks.run("post", facts)
    image = done.images[0] if done.images else None
    result = Release(repository, done.plan, image, done.published, watch.timings)
    result.platforms, result.mirrors = done.platforms, mirrors
    return result


def promote(
    settings: Settings,
    *,
    source: str,
    force: bool = False,
    dry_run: bool = False,
    session: Session | None = None,
) -> Release:
    """Publish an image a registry already holds under the configured tags, registry-side:
    no Docker daemon, no pull, no layer push. `source` is a tag or digest of the repository,
    or `[REGISTRY/]namespace/name:tag` (or `@sha256:…`) in another repository: of the same
    registry (blobs mounted) or of another (blobs streamed across).

    gather (the source's manifest and labels; login; every destination's tags) → plan (the
    release rules: immutable version tags, forward-only floating tags, `force`; a refusal in
    any destination before any write) → execute (the source brought into the repository, a
    manifest copy per tag, verify; then each further destination of HUB_REPOSITORY). The
    login and push hooks run. With `dry_run`, stop after the plan, which reports a refusal
    exactly as the real run would.
    """
    settings = with_docker_credentials(settings)
    settings.require("push")
    repository = settings.require_repository()
    session = session_for(settings, session)
    image = promotion.resolve_source(settings, source)
    if not settings.tags:
        raise ConfigError("promote needs the tags to publish: pass --tag (or set HUB_TAGS)")
    tags, others, watch = resolve_tags(settings), mirror.destinations(settings), Stopwatch()
    # The credential and push-access checks of every destination, as a release asks them.
    mirror.start_checks(session, [settings, *others], push=not dry_run)
    with watch.time("login"):
        for each in (settings, *others):
            login(each, session=session)
    target = session.registry_for(settings)
    with watch.time("plan"), session.console.activity("plan", f"reading {image}"):
        origin = promotion.read_source(settings, session, image)
        state = read_registry(target, tags, session)
    plan = promotion.plan_promotion(tags, state, origin, force=force)
    if plan.refused:
        raise planning.refusal(plan, repository, "promote")
    found = mirror.plan_promoted(session, others, tags, origin, force=force)
    if dry_run:
        commands = promotion.equivalent_commands(settings, plan, image, origin.record.digest)
        dry = Release(repository, plan, timings=watch.timings, commands=commands, dry_run=True)
        return mirror.with_plans(dry, tags[0], found)
    session.console.plan_lines(plan, repository)
    check_push_access(settings, session, plan, found)  # before the first mount or PUT
    mark, digest = session.ledger.mark(), origin.record.digest
    bring = functools.partial(promotion.transfer, session, origin.registry, target, digest)
    image_ids = dict.fromkeys(tags, origin.record.config_digest)
    with mirror.first_of(found):
        prepare = None if origin.registry is target else bring
        published = Executor(settings, session, watch).push(plan, tags, image_ids, prepare=prepare)
    mirrors = mirror.publish(
        session, watch, settings, published.published, found, tags=tags, force=force, mark=mark
    )
    done = Release(repository, plan, published=published.published, timings=watch.timings)
    done.platforms, done.mirrors = {p: d for d, p in origin.record.children}, mirrors
    return done
