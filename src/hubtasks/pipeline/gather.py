"""Gather: every fact a plan needs, read before anything changes.

Settings and git give the tags and labels; the build context gives the build-inputs digest;
the registry gives its tag list and, for each planned tag it holds, the manifest and the
config's labels (one request per distinct digest, a few at a time: `each_tag`, on the
session's client and its forks). Nothing here writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from hubtasks.build.buildkit.options import spec_id
from hubtasks.build.context import (
    BuildContext,
    PendingInputs,
    combine_inputs,
    platform_args,
    scratch_image,
)
from hubtasks.build.gitinfo import GitState, read_git
from hubtasks.daemon.dockerignore import context_paths
from hubtasks.errors import ConfigError, HubError
from hubtasks.pipeline.plan import INPUTS_LABEL, Remote
from hubtasks.pipeline.preflight import labels_for, resolve_tags
from hubtasks.pipeline.protocols import Registry
from hubtasks.pipeline.session import Session
from hubtasks.registry.manifests import ImageRecord
from hubtasks.settings.resolve import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Inputs:
    """What one platform's build is made from, and the digest that names it."""

    context: BuildContext
    platform: str  # os/arch[/variant]: the daemon's own unless platforms were asked for
    requested: bool  # the platform was asked for: it is passed to the build API
    build_args: Mapping[str, str]  # the user's, plus BuildKit's automatic ones declared
    known: str | None = None  # the digest, when computed before the build

    @property
    def digest(self) -> str | None:
        """The inputs digest: computed before the build, or while the context was streamed to
        it (`BuildContext.pending`); None until then (a plan of new tags needs none)."""
        pending = self.context.pending
        return self.known if pending is None else pending.digest


@dataclass(frozen=True)
class BuildSet:
    """Every platform's inputs; `digest` names them together (a multi-platform image's
    identity covers all its platforms)."""

    platforms: tuple[Inputs, ...]

    @property
    def multi(self) -> bool:
        return len(self.platforms) > 1

    @property
    def digest(self) -> str | None:
        """None until every platform's digest is known."""
        found = {i.platform: i.digest for i in self.platforms}
        if None in found.values():
            return None
        if not self.multi:
            return self.platforms[0].digest
        return combine_inputs({platform: d for platform, d in found.items() if d})


@dataclass(frozen=True)
class RegistryState:
    published: list[str]  # every tag of the repository
    remote: dict[str, Remote | None]  # each planned tag → what it holds (None: not there)
    # Each multi-platform image among them: index digest → {platform: child digest}.
    indexes: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gathered:
    """Every fact a release's plan decides from, read before anything changes."""

    tags: tuple[str, ...]
    builds: BuildSet
    state: RegistryState


def build_set(
    settings: Settings,
    git: GitState | None,
    labels: dict[str, str],
    native: str,
    *,
    while_streaming: bool = False,
    dockerfile: bytes | None = None,
) -> BuildSet:
    """The inputs of each platform to build (`settings.platforms`, else the daemon's own,
    `native`). With `while_streaming` (one platform, nothing to decide from the digest
    before the build), the context is hashed as the build reads it instead of before.
    `dockerfile`: its bytes when the caller has read them (`read_dockerfile`)."""
    wanted = settings.platforms or (native,)
    epoch = settings.source_date_epoch or (git.commit_time if git else None)
    # The context as it will be sent, with every entry's mtime set to the commit time (or
    # SOURCE_DATE_EPOCH) so that one commit gives the same layers on every machine; the
    # Dockerfile read once, so that what is hashed is what is built.
    draft = BuildContext(
        root=settings.context.resolve(),
        paths=context_paths(settings.context, settings.docker_env.get("DOCKER_HOST", "")),
        dockerfile=settings.dockerfile,
        labels=dict(settings.labels),
        mtime=epoch,
        dockerfile_data=dockerfile if dockerfile is not None else read_dockerfile(settings),
    )
    deferred = while_streaming and len(wanted) == 1
    files = None if deferred else draft.files_digest()  # once for every platform
    return BuildSet(
        tuple(
            build_inputs(
                settings,
                draft,
                labels,
                platform,
                native=native,
                requested=bool(settings.platforms),
                files=files,
            )
            for platform in wanted
        )
    )


def read_dockerfile(settings: Settings) -> bytes:
    """The Dockerfile's bytes; one that cannot be read is the user's to fix, in one line."""
    try:
        return settings.dockerfile.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read the Dockerfile {settings.dockerfile}: {error.strerror}"
        ) from None


def digest_options(settings: Settings) -> dict[str, str]:
    """What the inputs digest covers besides files, arguments and labels: the target stage,
    the ids of secrets and of ssh sockets (never a secret's value)."""
    secret_ids = sorted(spec_id(spec) for spec in settings.secret_specs)
    ssh_ids = sorted(spec.partition("=")[0] for spec in settings.ssh)
    target = settings.target or ""
    return {"target": target, "secrets": ",".join(secret_ids), "ssh": ",".join(ssh_ids)}


def build_inputs(
    settings: Settings,
    draft: BuildContext,
    labels: dict[str, str],
    platform: str,
    *,
    native: str,
    requested: bool,
    files: bytes | None,
) -> Inputs:
    """One platform's inputs from the context `draft` (the user's labels only): the inputs
    digest recorded on the image as `INPUTS_LABEL`, from the context's `files_digest`
    (`files`), or — `files` None — computed while the context is streamed
    (`PendingInputs`). The caller has already refused a context that would leak the token
    (`preflight.check_context`)."""

    def digest_of(files: bytes) -> str:
        return draft.inputs_digest(
            build_args=settings.build_args,
            platform=platform,
            files=files,
            options=digest_options(settings),
        )

    foreign = requested and platform != native
    scratch = scratch_image(platform) if foreign else None
    if files is None:
        pending = PendingInputs(label=INPUTS_LABEL, digest_of=digest_of)
        context = replace(draft, labels=dict(labels), scratch=scratch, pending=pending)
        known = None
    else:
        known = digest_of(files)
        context = replace(draft, labels={**labels, INPUTS_LABEL: known}, scratch=scratch)
    automatic = platform_args(draft.dockerfile_bytes, platform, native)
    return Inputs(
        context=context,
        platform=platform,
        requested=requested,
        build_args={**automatic, **settings.build_args},
        known=known,
    )


def release_facts(
    settings: Settings, *, allow_dirty: bool, chained: tuple[str, ...] | None
) -> tuple[GitState | None, tuple[str, ...], dict[str, str]]:
    """git, the tags to publish and the OCI labels."""
    git = read_git(settings.cwd)
    tags = resolve_tags(settings, git, allow_dirty=allow_dirty, chained=chained)
    return git, tags, labels_for(settings, git, tags)


def list_tags(registry: Registry, session: Session) -> list[str]:
    """Every tag of the repository, retried like any network call."""
    return session.retrying(f"listing the tags of {registry.repository}", registry.tags)


def read_registry(
    registry: Registry,
    tags: tuple[str, ...] | list[str],
    session: Session,
    published: list[str] | None = None,
) -> RegistryState:
    """The tag list, then what each planned tag that exists holds: its manifest digest
    (hashed from the bytes), config digest and our inputs label."""
    if published is None:
        published = list_tags(registry, session)
    listed = set(published)
    existing = [name for name in tags if name in listed]
    records = _records(registry, session, existing)
    children = _children(registry, session, [r for r in records if r is not None])
    remote: dict[str, Remote | None] = dict.fromkeys(tags)
    for name, record in zip(existing, records, strict=True):
        if record is not None:
            remote[name] = Remote(
                digest=record.digest,
                config_digest=record.config_digest,
                inputs=_inputs_of(record, children),
            )
    indexes = {
        r.digest: {platform: digest for digest, platform in r.children}
        for r in records
        if r is not None and r.children
    }
    return RegistryState(published=list(published), remote=remote, indexes=indexes)


def _children(
    registry: Registry, session: Session, records: list[ImageRecord]
) -> dict[str, ImageRecord]:
    """The child manifests of every index among `records` (each distinct one read once)."""
    digests = list(dict.fromkeys(d for r in records for d, _ in r.children))
    found = _records(registry, session, digests)
    return {d: r for d, r in zip(digests, found, strict=True) if r is not None}


def _records(
    registry: Registry, session: Session, references: list[str]
) -> list[ImageRecord | None]:
    """`image_record` of each tag or digest, a few at a time, in order."""
    return each_tag_or_raise(
        registry,
        session,
        references,
        lambda client, reference: client.image_record(reference),
        lambda reference: f"reading {registry.repository.canonical(reference)}",
    )


def _inputs_of(record: ImageRecord, children: Mapping[str, ImageRecord]) -> str | None:
    """Our inputs label; for an index, the combination of its children's (None when one of
    them lacks it: pushed by another tool)."""
    if not record.children:
        return record.labels.get(INPUTS_LABEL)
    by_platform = {}
    for digest, platform in record.children:
        child = children.get(digest)
        inputs = child.labels.get(INPUTS_LABEL) if child else None
        if inputs is None:
            return None
        by_platform[platform] = inputs
    return combine_inputs(by_platform)


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
    return [x for x in outcomes if not isinstance(x, HubError)]  # all of them, none failed
