"""The stages of a release, in the order `api.release` runs them: the head starts, git and the
tags, the pre_release hook and the login to every destination (`before_release`); what the plan
decides from, read only (`gather_release`); the plan (`release_plan`); the build cache; the
push check; the execution in the first destination and the copies to the others
(`execute_everywhere`); the dry run's equivalent commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubtasks.build.buildkit.options import parse_secrets, parse_ssh
from hubtasks.build.context import dockerfile_warnings
from hubtasks.build.gitinfo import GitState
from hubtasks.pipeline import mirror
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.cache import cache_refs
from hubtasks.pipeline.execute import Executor, Outcome, facts_for
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
from hubtasks.pipeline.login import login
from hubtasks.pipeline.plan import INPUTS_LABEL, Plan
from hubtasks.pipeline.preflight import check_context
from hubtasks.pipeline.protocols import Daemon
from hubtasks.pipeline.results import Release
from hubtasks.pipeline.session import Session
from hubtasks.pipeline.stopwatch import Stopwatch
from hubtasks.settings.resolve import Settings


def daemon_for(settings: Settings, session: Session) -> Daemon:
    """The session's daemon, once it is known to build every platform asked for (a platform
    of another OS: ConfigError, before anything is built)."""
    engine = session.engine_for(settings)
    engine.check_platforms(settings.platforms)
    return engine


def build_set_for(
    settings: Settings,
    session: Session,
    git: GitState | None,
    labels: dict[str, str],
    *,
    while_streaming: bool = False,
) -> BuildSet:
    """Each platform's inputs (`gather.build_set`); on the classic builder, the Dockerfile's
    directives it ignores are said out loud first."""
    dockerfile = read_dockerfile(settings)
    engine = daemon_for(settings, session)
    if engine.builder(settings.builder)[0] == "classic":
        for warning in dockerfile_warnings(dockerfile, str(settings.dockerfile.name)):
            session.console.warn(warning)
    return build_set(
        settings,
        git,
        labels,
        engine.platform(),
        while_streaming=while_streaming,
        dockerfile=dockerfile,
    )


def relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def execute_everywhere(
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
    check_push_access(settings, session, plan, found)
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


def before_release(
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
        daemon_for(settings, session)  # a platform it cannot build: refused before the hook
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


def gather_release(
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
        listed = published_tags(settings, session)
        elsewhere = mirror.listings(session, others)
    # Unless a planned tag exists somewhere (its inputs decide the plan) the context is
    # hashed as the build reads it, not before.
    seen = set(listed).union(*elsewhere)
    new_tags = not dry_run and not set(tags) & seen
    with watch.time("inputs"):
        builds = build_set_for(settings, session, git, labels, while_streaming=new_tags)
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        state = read_registry(session.registry_for(settings), tags, session, listed)
        found = mirror.plan_all(session, others, elsewhere, tags, inputs=builds.digest, force=force)
    return Gathered(tags, builds, state), found


def published_tags(settings: Settings, session: Session) -> list[str]:
    """The repository's tags: read with the login when it could be, else asked now."""
    listed = session.listed_tags(settings)
    return listed if listed is not None else list_tags(session.registry_for(settings), session)


def build_cache(settings: Settings, session: Session, state: RegistryState) -> list[str]:
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


def check_push_access(
    settings: Settings, session: Session, plan: Plan, found: list[mirror.Destination]
) -> None:
    """Whether the token may push to each destination, asked before anything is built (when
    anything is to be written): a read-only token fails here, not after the build."""
    if not (plan.to_push or plan.build or any(d.plan.to_push or d.plan.build for d in found)):
        return
    repository = settings.require_repository()
    session.retrying(f"checking push access to {repository}", session.push_access(settings))
    mirror.check_push_access(session, found)


def release_plan(
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


def _buildx_options(settings: Settings) -> dict[str, Any] | None:
    """The dry run's `docker buildx build` words (auto: BuildKit, as on every Linux daemon
    with API ≥ 1.39); None for HUB_BUILDER=classic."""
    if settings.builder == "classic":
        return None
    return {
        "target": settings.target or "",
        "secrets": parse_secrets(settings.secret_specs),
        "ssh": parse_ssh(settings.ssh),
        "network": settings.network or "",
        "no_cache": settings.no_cache,
        "pull": settings.pull,
    }


def dry_run_commands(
    settings: Settings, plan: Plan, builds: BuildSet, cache: list[str]
) -> list[str]:
    repository = settings.require_repository()
    return planning.equivalent_commands(
        registry=repository.registry,
        username=settings.username or "",
        local_name=repository.local_name,
        plan=plan,
        dockerfile=relative(settings.dockerfile, settings.cwd),
        context=relative(settings.context, settings.cwd),
        builds=[
            planning.BuildCommand(
                i.platform if i.requested else None,
                i.context.labels,
                i.build_args,
                buildkit=_buildx_options(settings),
            )
            for i in builds.platforms
        ],
        cache_from=cache,
    )


def plan_platform_tags(
    executor: Executor,
    tags: tuple[str, ...],
    builds: BuildSet,
    state: RegistryState,
    *,
    force: bool,
) -> dict[str, str]:
    """A multi-platform release's per-platform tags, planned like any tag before anything is
    built (`planning.decide_platform_tags`): each decision is reported, a refusal raised.
    Returns the platforms whose tag already holds their inputs (platform → digest): those
    are not built again, their images go into the list as they are."""
    settings, session, repository = executor.settings, executor.session, executor.repository
    names = [planning.platform_tag(tags[0], i.platform) for i in builds.platforms]
    registry = session.registry_for(settings)
    remote = read_registry(registry, names, session, state.published).remote
    inputs = {i.platform: i.digest for i in builds.platforms}
    decisions = planning.decide_platform_tags(tags[0], inputs, remote, force=force)
    children = Plan(tuple(decisions.values()))
    session.console.plan_lines(children, repository)
    if children.refused:
        raise planning.refusal(children, repository)
    return {
        platform: d.remote.digest
        for platform, d in decisions.items()
        if d.action == planning.SKIP and d.remote is not None
    }
