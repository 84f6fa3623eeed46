"""Further destinations of a release: the same manifest bytes in other repositories and
registries, copied registry to registry without the daemon.

gather   each destination's tag list and what each planned tag holds there (its own client,
         its own credentials: `settings.destinations`)
plan     before the first write: each destination's tags with the release rules (`plan.decide`),
         a refusal anywhere stops the release before anything is written anywhere
execute  once the first destination holds the image: for each further one, the plan settled
         against that image (`promotion.plan_promotion`: what only the image could decide),
         the image brought across (`promotion.transfer`: blobs looked for, mounted or
         streamed; child manifests, then the manifest, by digest), a manifest copy per tag
         and each tag read back (`Executor.push`)
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hubtasks.daemon.credentials import with_docker_credentials
from hubtasks.errors import HubError, ReleaseRefused
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.execute import Executor
from hubtasks.pipeline.gather import RegistryState, list_tags, read_registry
from hubtasks.pipeline.plan import Plan
from hubtasks.pipeline.promotion import Source, plan_promotion, transfer
from hubtasks.pipeline.publish import with_progress
from hubtasks.pipeline.results import PushedTag, Release
from hubtasks.pipeline.session import Session
from hubtasks.pipeline.stopwatch import Stopwatch
from hubtasks.references import DOCKER_HUB, ImageReference, Repository
from hubtasks.registry.transport import CREDENTIALS_HINT
from hubtasks.settings.destinations import (
    mirror_settings,
    registry_variables,
    require_mirror_credentials,
)
from hubtasks.settings.resolve import Settings


@dataclass(frozen=True)
class Destination:
    """One further destination: its settings (repository, credentials), what its registry
    holds, and its plan before the build."""

    settings: Settings
    state: RegistryState
    plan: Plan

    @property
    def repository(self) -> Repository:
        return self.settings.require_repository()


def destinations(settings: Settings) -> list[Settings]:
    """The settings of every further destination, each with its registry's credentials:
    HUB_REGISTRY_<HOST>_USERNAME/_TOKEN, else what `docker login HOST` left (Docker's config,
    credential helpers: `daemon.credentials`); a destination with neither is refused."""
    others = [with_docker_credentials(each) for each in mirror_settings(settings)]
    require_mirror_credentials(others)
    return others


def own_hint(error: HubError, settings: Settings) -> HubError:
    """A further registry's refusal of its `HUB_REGISTRY_<HOST>_…` credentials names those
    settings, not HUB_USERNAME / HUB_TOKEN (the first registry's)."""
    if CREDENTIALS_HINT not in error.message:
        return error
    if not settings.source_of("token").startswith("HUB_REGISTRY_"):
        return error
    user_key, token_key = registry_variables(settings.registry)
    return error.evolve(
        error.message.replace(CREDENTIALS_HINT, f"check {user_key} and {token_key}")
    )


def start_checks(session: Session, others: Iterable[Settings], *, push: bool) -> None:
    """The credential check (and, unless `push` is False, the push-access check) of each
    destination, started in the background."""
    for each in others:
        session.adopt(each)
        session.check_ahead(each)
        if push:
            session.check_push_ahead(each)


def listings(session: Session, others: list[Settings]) -> list[list[str]]:
    """Each further destination's tag list."""
    return [list_tags(session.registry_for(each), session) for each in others]


def plan_all(
    session: Session,
    others: list[Settings],
    listed: list[list[str]],
    tags: tuple[str, ...],
    *,
    inputs: str | None,
    force: bool,
) -> list[Destination]:
    """Each further destination read and planned with the release rules before anything is
    written; a refusal in any of them raises (nothing written anywhere)."""
    found = []
    for each, published in zip(others, listed, strict=True):
        state = read_registry(session.registry_for(each), tags, session, published)
        plan = planning.decide(
            list(tags), remote=state.remote, published=state.published, inputs=inputs, force=force
        )
        if plan.refused:
            raise planning.refusal(plan, each.require_repository())
        found.append(Destination(each, state, plan))
    return found


def plan_promoted(
    session: Session,
    others: list[Settings],
    tags: tuple[str, ...],
    source: Source,
    *,
    force: bool,
) -> list[Destination]:
    """Each further destination of a promotion read and planned for the source image (the
    image is known: the plan is final); a refusal in any of them raises before any write."""
    found = []
    for each in others:
        state = read_registry(session.registry_for(each), tags, session)
        plan = plan_promotion(tags, state, source, force=force)
        if plan.refused:
            raise planning.refusal(plan, each.require_repository(), "promote")
        found.append(Destination(each, state, plan))
    return found


def check_push_access(session: Session, found: list[Destination]) -> None:
    """Whether each further destination's credentials may push, before the build."""
    for destination in found:
        session.retrying(
            f"checking push access to {destination.repository}",
            session.push_access(destination.settings),
        )


def publish(
    session: Session,
    watch: Stopwatch,
    first: Settings,
    published: list[PushedTag],
    found: list[Destination],
    *,
    tags: tuple[str, ...],
    force: bool,
    mark: int,
) -> list[Release]:
    """Copy the image the first destination now holds (`published[0]`) to each further
    destination, in order; each one's tags verified. A failure says what landed where since
    `mark` (the ledger, every destination) and which destinations are still to do."""
    if not found:
        return []
    if not published:
        session.console.warn("the first destination published no tag: nothing to copy")
        return []
    source_client = session.registry_for(first)
    digest = published[0].digest
    record = session.retrying(
        f"reading {published[0].reference}", lambda: source_client.image_record(digest)
    )
    if record is None:
        raise HubError(f"{published[0].reference} is gone from the registry")
    image = ImageReference(first.require_repository(), digest=digest)
    source = Source(image, record, source_client)
    done: list[Release] = []
    for index in range(len(found)):
        done.append(_publish_one(session, watch, source, found, index, tags, force, mark))
    return done


def _publish_one(
    session: Session,
    watch: Stopwatch,
    source: Source,
    found: list[Destination],
    index: int,
    tags: tuple[str, ...],
    force: bool,
    mark: int,
) -> Release:
    """The `index`-th further destination: the destinations before it hold the image by now
    (a blob is mounted from one of them in the same registry), those from it on are still to
    do when this one fails."""
    destination = found[index]
    repository, settings = destination.repository, destination.settings
    left = [str(d.repository) for d in found[index:]]
    earlier = tuple(d.repository for d in found[:index])
    plan = plan_promotion(tags, destination.state, source, force=force)
    try:
        if plan.refused:
            details = "; ".join(f"{repository.canonical(d.tag)} {d.reason}" for d in plan.refused)
            raise ReleaseRefused(f"refusing to copy to {repository}: {details}", stage="plan")
        session.console.plan_lines(plan, repository)
        target = session.registry_for(settings)
        if plan.to_push:
            with watch.time("copy"):
                transfer(session, source.registry, target, source.record.digest, earlier)
    except HubError as error:
        raise still_to_do(with_progress(error, session.ledger.since(mark)), left) from None
    executor = Executor(settings, session, watch, since=mark)
    try:
        result = executor.push(plan, tags, dict.fromkeys(tags, source.record.config_digest))
    except HubError as error:
        raise still_to_do(error, left) from None
    platforms = {platform: digest for digest, platform in source.record.children}
    return Release(repository, plan, published=result.published, platforms=platforms)


@contextlib.contextmanager
def first_of(found: list[Destination]) -> Iterator[None]:
    """Around writing the first destination: a failure there says every further one is
    still to do."""
    try:
        yield
    except HubError as error:
        raise still_to_do(error, [str(d.repository) for d in found]) from None


def with_plans(dry_run: Release, first_tag: str, found: list[Destination]) -> Release:
    """A dry run's result with every further destination's plan and commands."""
    dry_run.commands += equivalent_commands(dry_run.repository, first_tag, found)
    dry_run.mirrors = [Release(d.repository, d.plan, dry_run=True) for d in found]
    return dry_run


def still_to_do(error: HubError, left: list[str]) -> HubError:
    """`error`, saying which destinations are not (or not wholly) published yet."""
    if not left:
        return error
    if isinstance(error, ReleaseRefused):  # a run again is refused again: it finishes nothing
        return error.evolve(f"{error}; not published to {', '.join(left)} either")
    return error.evolve(
        f"{error}; not (wholly) published yet: {', '.join(left)} (run the release again to "
        "finish: what is there is not copied twice)"
    )


def equivalent_commands(first: Repository, first_tag: str, found: list[Destination]) -> list[str]:
    """What copying the release to each further destination takes by hand: a login to its
    registry, then `docker buildx imagetools create` (or `crane copy`) from the first."""
    commands: list[str] = []
    source = first.canonical(first_tag)
    for destination in found:
        repository = destination.repository
        names = [d.tag for d in destination.plan.decisions if d.pushes]
        if not names:
            continue
        server = "" if repository.registry == DOCKER_HUB else f" {repository.registry}"
        user = shlex.quote(destination.settings.username or "")
        commands.append(f"docker login{server} --username {user} --password-stdin")
        flags = " ".join(f"--tag {repository.canonical(name)}" for name in names)
        commands.append(f"docker buildx imagetools create {flags} {source}")
        commands += [f"# or: crane copy {source} {repository.canonical(n)}" for n in names]
    return commands
