"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, tags, Dockerfile, context, daemon, credentials, the registry's current
tags) before it pushes anything.
"""

from __future__ import annotations

import functools
from pathlib import Path

from hubtasks.build.context import dockerfile_warnings
from hubtasks.build.gitinfo import GitState, read_git
from hubtasks.daemon.credentials import (
    from_docker_store,
    remove_credentials,
    save_credentials,
    with_docker_credentials,
)
from hubtasks.errors import ConfigError, HubError
from hubtasks.pipeline import mirror, promotion
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.cache import cache_refs
from hubtasks.pipeline.execute import Executor, Outcome, facts_for, plan_platform_tags
from hubtasks.pipeline.execute import release as execute_release
from hubtasks.pipeline.gather import (
    BuildSet,
    Gathered,
    RegistryState,
    build_set,
    list_tags,
    read_dockerfile,
    read_registry,
    release_facts,
)
from hubtasks.pipeline.hooks import Facts
from hubtasks.pipeline.plan import INPUTS_LABEL, Plan
from hubtasks.pipeline.preflight import check_context, labels_for, resolve_tags
from hubtasks.pipeline.protocols import Daemon
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
    settings = with_docker_credentials(settings)
    settings.require("login")
    repository = settings.require_repository()
    session = session_for(settings, session)
    key = session.login_key(settings)
    if key in session.logged_in and not save:
        return None
    facts = facts_for("login", repository, settings.tags)
    session.hooks.run("pre", facts)
    console = session.console
    with console.activity(
        "login", f"checking the credentials of {_who(settings)} at {repository.registry}"
    ):
        try:
            session.retrying(f"login to {repository.registry}", session.credential_check(settings))
        except HubError as error:
            raise error.evolve(stage=error.stage or "login") from None
    session.logged_in.add(key)
    console.stage("login", f"logged in to {repository.registry} as {_who(settings)}")
    if console.verbose:
        console.stage("login", f"credentials from {settings.source_of('token')}")
    where = None
    if save and from_docker_store(settings):
        console.stage(
            "login",
            f"the credentials came from {settings.source_of('token')}: nothing to save",
        )
        save = False
    if save:
        username, token = settings.username or "", settings.token or ""  # required above
        where = save_credentials(repository, username, token, settings.docker_env)
        console.stage("login", f"credentials saved to {where}")
    session.hooks.run("post", facts)
    return where


def _who(settings: Settings) -> str:
    """Whose credentials, for people: the user, or Docker's identity token (it names none)."""
    return settings.username or "the identity token of Docker's credentials"


def logout(settings: Settings, *, session: Session | None = None) -> str | None:
    """Remove what `login(save=True)` stored for this registry, and nothing else."""
    session = session_for(settings, session)
    where, other = remove_credentials(settings.registry, settings.docker_env, settings.username)
    if where:
        session.console.stage(
            "logout", f"removed the credentials for {settings.registry} from {where}"
        )
    elif other:
        session.console.stage(
            "logout",
            f"the credentials saved for {settings.registry} are {other}'s, not "
            f"{settings.username}'s: left as they are (docker logout removes them)",
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
    builds = _build_set(settings, session, git, labels, while_streaming=True)
    cache = cache_refs(settings, published=None, local=lambda name: None)  # auto: needs a release
    images = Executor(settings, session, Stopwatch()).build(builds, tags, tag_now=True, cache=cache)
    session.tags, session.image_id = tags, images[0].image_id
    return images[0]


def _daemon(settings: Settings, session: Session) -> Daemon:
    """The session's daemon, once it is known to build every platform asked for (a platform
    of another OS: ConfigError, before anything is built)."""
    engine = session.engine_for(settings)
    engine.check_platforms(settings.platforms)
    return engine


def _build_set(
    settings: Settings,
    session: Session,
    git: GitState | None,
    labels: dict[str, str],
    *,
    while_streaming: bool = False,
) -> BuildSet:
    """Each platform's inputs (`gather.build_set`); the Dockerfile's directives the classic
    builder ignores are said out loud first."""
    dockerfile = read_dockerfile(settings)
    for warning in dockerfile_warnings(dockerfile, str(settings.dockerfile.name)):
        session.console.warn(warning)
    engine = _daemon(settings, session)
    return build_set(
        settings,
        git,
        labels,
        engine.platform(),
        while_streaming=while_streaming,
        dockerfile=dockerfile,
    )


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


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


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
    git, tags, labels, facts = _before_release(
        settings, session, watch, others, allow_dirty=allow_dirty, dry_run=dry_run
    )
    gathered, found = _gather_release(
        settings, session, watch, (git, tags, labels), others, dry_run=dry_run, force=force
    )
    builds, state = gathered.builds, gathered.state
    plan = _release_plan(settings, session, tags, builds, state, force=force, dry_run=dry_run)
    executor = Executor(settings, session, watch)
    multi = builds.multi and plan.build  # per-platform tags, planned like any tag
    held = plan_platform_tags(executor, tags, builds, state, force=force) if multi else {}
    cache = _build_cache(settings, session, state) if plan.build else []
    if dry_run:
        commands = _commands(settings, plan, builds, cache)
        dry = Release(repository, plan, timings=watch.timings, commands=commands, dry_run=True)
        return mirror.with_plans(dry, tags[0], found)
    done, mirrors = _execute_everywhere(
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


def _execute_everywhere(
    executor: Executor,
    plan: Plan,
    found: list[mirror.Destination],
    *,
    tags: tuple[str, ...],
    builds: BuildSet,
    state: RegistryState,
    force: bool,
    cache: list[str],
    held: dict[str, str],
) -> tuple[Outcome, list[Release]]:
    """Push access checked for every destination (before the build); the release carried out
    in the first destination, then copied to each further one (`found`)."""
    settings, session, watch = executor.settings, executor.session, executor.watch
    _check_push_access(settings, session, plan, found)
    mark = session.ledger.mark()
    with mirror.first_of(found):  # a failure there: the others are still to do
        done = execute_release(
            executor, plan, tags=tags, builds=builds, state=state, force=force, cache=cache,
            held=held,
        )  # fmt: skip
    mirrors = mirror.publish(
        session, watch, settings, done.published, found, tags=tags, force=force, mark=mark
    )
    return done, mirrors


def _before_release(
    settings: Settings,
    session: Session,
    watch: Stopwatch,
    others: list[Settings],
    *,
    allow_dirty: bool,
    dry_run: bool,
) -> tuple[GitState | None, tuple[str, ...], dict[str, str], Facts]:
    """The release's first stages: the head starts, git, the tags and labels, the context
    and the daemon checked; then the pre_release hook (unless `dry_run`) and the login to
    every destination (`others`: the further ones)."""
    repository = settings.require_repository()
    # In the background while git is read, the daemon connected and the context hashed: the
    # Docker SDK imported, the credentials checked, then whether they may push (a dry run
    # writes nothing).
    session.import_sdk_ahead(settings)
    # The tag list read with the credential check, unless a pre_release hook runs in between.
    session.check_ahead(settings, list_tags=not session.hooks.will_run("pre", "release"))
    if not dry_run:
        session.check_push_ahead(settings)
    git, tags, labels = release_facts(settings, allow_dirty=allow_dirty, chained=session.tags)
    check_context(settings)  # a bad context is the user's to fix: said before the daemon's
    with watch.time("connect"):
        _daemon(settings, session)  # a platform it cannot build: refused before the hook
    facts = facts_for("release", repository, tags)
    if len(settings.platforms) > 1:
        facts.platforms = dict.fromkeys(settings.platforms, "")
    if not dry_run and session.hooks.will_run("pre", "release"):
        session.hooks.run("pre", facts)
        check_context(settings)  # the hook may have written into the context
    with watch.time("login"):
        for each in (settings, *others):
            login(each, session=session)
    return git, tags, labels, facts


def _gather_release(
    settings: Settings,
    session: Session,
    watch: Stopwatch,
    release_facts: tuple[GitState | None, tuple[str, ...], dict[str, str]],
    others: list[Settings],
    *,
    dry_run: bool,
    force: bool,
) -> tuple[Gathered, list[mirror.Destination]]:
    """Everything the plan decides from, read only: the repositories' tags (every
    destination's), each platform's inputs (after the pre_release hook, which may write into
    the context), and what each registry holds under each planned tag. The further
    destinations are planned here too: a refusal in one of them raises before any write."""
    git, tags, labels = release_facts
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        listed = _published(settings, session)
        elsewhere = mirror.listings(session, others)
    # Unless a planned tag exists somewhere (its inputs decide the plan) the context is
    # hashed as the build reads it, not before.
    seen = set(listed).union(*elsewhere)
    new_tags = not dry_run and not set(tags) & seen
    with watch.time("inputs"):
        builds = _build_set(settings, session, git, labels, while_streaming=new_tags)
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        state = read_registry(session.registry_for(settings), tags, session, listed)
        found = mirror.plan_all(session, others, elsewhere, tags, inputs=builds.digest, force=force)
    return Gathered(tags, builds, state), found


def _published(settings: Settings, session: Session) -> list[str]:
    """The repository's tags: read with the login when it could be, else asked now."""
    listed = session.listed_tags(settings)
    return listed if listed is not None else list_tags(session.registry_for(settings), session)


def _build_cache(settings: Settings, session: Session, state: RegistryState) -> list[str]:
    """The images a build may reuse (HUB_CACHE_FROM; `auto`: the newest release when the
    daemon does not hold it), pulled before the build. A multi-platform release is held when
    the daemon has every platform's image of it (a build tags them per platform)."""
    repository = settings.require_repository()
    engine = session.engine_for(settings)

    def held(name: str) -> str | None:
        if len(settings.platforms) < 2:
            return engine.image_id(repository.ref(name))
        ids = [
            engine.image_id(repository.ref(planning.platform_tag(name, platform)))
            for platform in settings.platforms
        ]
        return ids[0] if all(ids) else None

    return cache_refs(settings, published=state.published, local=held, remote=state.remote)


def _check_push_access(
    settings: Settings, session: Session, plan: Plan, found: list[mirror.Destination]
) -> None:
    """Whether the token may push to each destination, asked before anything is built (when
    anything is to be written): a read-only token fails here, not after the build."""
    if not (plan.to_push or plan.build or any(d.plan.to_push or d.plan.build for d in found)):
        return
    repository = settings.require_repository()
    session.retrying(f"checking push access to {repository}", session.push_access(settings))
    mirror.check_push_access(session, found)


def _release_plan(
    settings: Settings,
    session: Session,
    tags: tuple[str, ...],
    builds: BuildSet,
    state: RegistryState,
    *,
    force: bool,
    dry_run: bool,
) -> Plan:
    """The plan, before anything changes; a refusal raises, in the dry run too. A dry run
    may settle a CHECK with the local image of the first tag when it has these inputs."""
    repository = settings.require_repository()
    image_id = None
    if dry_run:
        local = session.engine_for(settings).inspect(repository.ref(tags[0]))
        if local is not None and local.labels.get(INPUTS_LABEL) == builds.digest:
            image_id = local.id
    plan = planning.decide(
        list(tags),
        remote=state.remote,
        published=state.published,
        inputs=builds.digest,  # None while it is hashed as the build streams: no tag exists
        image_id=image_id,
        force=force,
    )
    if plan.refused:
        raise planning.refusal(plan, repository)
    if not plan.build and not dry_run:
        session.console.plan_lines(plan, repository)
    return plan


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
    _check_push_access(settings, session, plan, found)  # before the first mount or PUT
    mark, digest = session.ledger.mark(), origin.record.digest
    bring = functools.partial(promotion.transfer, session, origin.registry, target, digest)
    image_ids = dict.fromkeys(tags, origin.record.config_digest)
    with mirror.first_of(found):
        executor = Executor(settings, session, watch)
        published = executor.push(
            plan, tags, image_ids, prepare=None if origin.registry is target else bring
        ).published
    mirrors = mirror.publish(
        session, watch, settings, published, found, tags=tags, force=force, mark=mark
    )
    done = Release(repository, plan, published=published, timings=watch.timings)
    done.platforms, done.mirrors = {p: d for d, p in origin.record.children}, mirrors
    return done


def _commands(settings: Settings, plan: Plan, builds: BuildSet, cache: list[str]) -> list[str]:
    repository = settings.require_repository()
    return planning.equivalent_commands(
        registry=repository.registry,
        username=settings.username or "",
        local_name=repository.local_name,
        plan=plan,
        dockerfile=_relative(settings.dockerfile, settings.cwd),
        context=_relative(settings.context, settings.cwd),
        builds=[
            planning.BuildCommand(
                i.platform if i.requested else None, i.context.labels, i.build_args
            )
            for i in builds.platforms
        ],
        cache_from=cache,
    )
