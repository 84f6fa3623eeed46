"""Gather: every fact a plan needs, read before anything changes.

Settings and git give the tags and labels; the build context gives the build-inputs digest;
the registry gives its tag list and, for each planned tag it holds, the manifest and the
config's labels (one request per distinct digest, a few at a time). Nothing here writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .context import BuildContext
from .engine import context_paths
from .errors import HubError
from .gitinfo import GitState, read_git
from .plan import INPUTS_LABEL, Remote
from .preflight import labels_for, resolve_tags
from .protocols import Registry
from .session import Session
from .settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Inputs:
    """What a build would be made from, and the digest that names it."""

    context: BuildContext
    digest: str
    platform: str


@dataclass(frozen=True)
class RegistryState:
    published: list[str]  # every tag of the repository
    remote: dict[str, Remote | None]  # each planned tag → what it holds (None: not there)


def build_inputs(
    settings: Settings, git: GitState | None, labels: dict[str, str], platform: str
) -> Inputs:
    """The context as it will be sent, with every entry's mtime set to the commit time (or
    SOURCE_DATE_EPOCH) so that one commit gives the same layers on every machine, and the
    inputs digest recorded on the image as `INPUTS_LABEL`. The caller has already refused
    a context that would leak the token (`preflight.check_context`)."""
    epoch = settings.source_date_epoch or (git.commit_time if git else None)
    paths = context_paths(settings.context, settings.docker_env.get("DOCKER_HOST", ""))
    draft = BuildContext(
        root=settings.context.resolve(),
        paths=paths,
        dockerfile=settings.dockerfile,
        labels=dict(settings.labels),
        mtime=epoch,
    )
    digest = draft.inputs_digest(build_args=settings.build_args, platform=platform)
    context = BuildContext(
        root=draft.root,
        paths=paths,
        dockerfile=settings.dockerfile,
        labels={**labels, INPUTS_LABEL: digest},
        mtime=epoch,
    )
    return Inputs(context=context, digest=digest, platform=platform)


def release_facts(
    settings: Settings, *, allow_dirty: bool, chained: tuple[str, ...] | None
) -> tuple[GitState | None, tuple[str, ...], dict[str, str]]:
    """git, the tags to publish and the OCI labels."""
    git = read_git(settings.cwd)
    tags = resolve_tags(settings, git, allow_dirty=allow_dirty, chained=chained)
    return git, tags, labels_for(settings, git, tags)


def read_registry(
    registry: Registry,
    tags: tuple[str, ...] | list[str],
    session: Session,
    published: list[str] | None = None,
) -> RegistryState:
    """The tag list, then what each planned tag that exists holds: its manifest digest
    (hashed from the bytes), config digest and our inputs label."""
    if published is None:
        published = session.retrying(f"listing the tags of {registry.repository}", registry.tags)
    listed = set(published)
    existing = [name for name in tags if name in listed]
    records = each_tag_or_raise(
        registry,
        session,
        existing,
        lambda client, name: client.image_record(name),
        lambda name: f"reading {registry.repository.canonical(name)}",
    )
    remote: dict[str, Remote | None] = dict.fromkeys(tags)
    for name, record in zip(existing, records, strict=True):
        if record is not None:
            remote[name] = Remote(
                digest=record.digest,
                config_digest=record.config_digest,
                inputs=record.labels.get(INPUTS_LABEL),
            )
    return RegistryState(published=list(published), remote=remote)


_WORKERS = 4


def extra_connections(count: int) -> int:
    """How many forks of the registry client `count` requests at once are spread over."""
    return min(_WORKERS, count) - 1


def each_tag(
    registry: Registry,
    session: Session,
    names: list[str],
    operation: Callable[[Registry, str], T],
    what: Callable[[str], str],
) -> list[T | HubError]:
    """`operation(client, name)` for every name, retried like any network call, up to four
    at a time on the session's pool: on `registry` and on the session's forks of it
    (connections of their own, the same login). Returns, in the order of `names`, each result
    or the `HubError` it ended with. On a real network every request is a round trip, and
    these do not depend on each other."""

    def attempt(client: Registry, name: str) -> T | HubError:
        try:
            return session.retrying(what(name), lambda: operation(client, name))
        except HubError as error:
            return error

    if len(names) <= 1:
        return [attempt(registry, name) for name in names]
    import queue

    clients = [registry, *session.forks(registry, extra_connections(len(names)))]
    free: queue.SimpleQueue[Registry] = queue.SimpleQueue()
    for client in clients:
        free.put(client)

    def work(name: str) -> T | HubError:
        client = free.get()
        try:
            return attempt(client, name)
        finally:
            free.put(client)

    futures = [session.background(functools.partial(work, name)) for name in names]
    return [future.result() for future in futures]


def each_tag_or_raise(
    registry: Registry,
    session: Session,
    names: list[str],
    operation: Callable[[Registry, str], T],
    what: Callable[[str], str],
) -> list[T]:
    """`each_tag`, raising the first failure (in the order of `names`) once all have ended."""
    outcomes = each_tag(registry, session, names, operation, what)
    failure = next((x for x in outcomes if isinstance(x, HubError)), None)
    if failure is not None:
        raise failure
    return outcomes  # type: ignore[return-value]  # no HubError left in it
