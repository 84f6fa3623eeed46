"""Getting tags into the registry: reading what it holds, pushing through the daemon,
copying manifests for further tags of the same image, and saying what made it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from . import plan as planning
from .errors import (
    AuthError,
    HubError,
    PushError,
    RegistryError,
    ReleaseRefused,
)
from .plan import Plan, Remote
from .references import Repository
from .results import PushedTag
from .session import Session
from .settings import Settings

if TYPE_CHECKING:
    from .registry import RegistryClient

T = TypeVar("T")


def read_remote(
    registry: RegistryClient,
    tags: tuple[str, ...],
    session: Session,
    published: list[str] | None = None,
) -> dict[str, Remote | None]:
    """What the registry holds under each tag: one tag list, then a manifest per tag that
    exists, a few at a time (a new tag costs nothing)."""
    if published is None:
        published = session.retrying(f"listing the tags of {registry.repository}", registry.tags)
    listed = set(published)
    existing = [name for name in tags if name in listed]
    found = each_tag_or_raise(
        registry,
        session,
        existing,
        lambda client, name: client.manifest(name),
        lambda name: f"reading {registry.repository.canonical(name)}",
    )
    return {**dict.fromkeys(tags), **dict(zip(existing, found, strict=True))}


_WORKERS = 4


def extra_connections(count: int) -> int:
    """How many forks of the registry client `count` requests at once are spread over."""
    return min(_WORKERS, count) - 1


def each_tag(
    registry: RegistryClient,
    session: Session,
    names: list[str],
    operation: Callable[[RegistryClient, str], T],
    what: Callable[[str], str],
) -> list[T | HubError]:
    """`operation(client, name)` for every name, retried like any network call, up to four
    at a time: on `registry` and on the session's forks of it (connections of their own,
    the same login). Returns, in the order of `names`, each result or the `HubError` it
    ended with. On a real network every request is a round trip, and these do not depend on
    each other."""

    def attempt(client: RegistryClient, name: str) -> T:
        return session.retrying(what(name), lambda: operation(client, name))

    if len(names) <= 1:
        return [_outcome(attempt, registry, name) for name in names]
    import queue
    from concurrent.futures import ThreadPoolExecutor

    clients = [registry, *session.forks(registry, extra_connections(len(names)))]
    free: queue.SimpleQueue[RegistryClient] = queue.SimpleQueue()
    for client in clients:
        free.put(client)

    def work(name: str) -> T | HubError:
        client = free.get()
        try:
            return _outcome(attempt, client, name)
        finally:
            free.put(client)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(work, names))


def each_tag_or_raise(
    registry: RegistryClient,
    session: Session,
    names: list[str],
    operation: Callable[[RegistryClient, str], T],
    what: Callable[[str], str],
) -> list[T]:
    """`each_tag`, raising the first failure (in the order of `names`) once all have ended."""
    outcomes = each_tag(registry, session, names, operation, what)
    failure = next((x for x in outcomes if isinstance(x, HubError)), None)
    if failure is not None:
        raise failure
    return outcomes  # type: ignore[return-value]  # no HubError left in it


def _outcome(
    attempt: Callable[[RegistryClient, str], T], client: RegistryClient, name: str
) -> T | HubError:
    try:
        return attempt(client, name)
    except HubError as error:
        return error


def refusal(plan: Plan, repository: Repository) -> ReleaseRefused:
    details = "; ".join(f"{repository.canonical(d.tag)} {d.reason}" for d in plan.refused)
    return ReleaseRefused(f"refusing to release, nothing was pushed: {details}")


def push_tags(
    settings: Settings,
    tags: list[str],
    *,
    session: Session,
    image_ids: Mapping[str, str | None] | None = None,
) -> list[PushedTag]:
    """Push each tag. The first tag of an image goes through the daemon (layers, manifest);
    the other tags of the same image are manifest copies in the registry, a few at a time —
    what `docker push` ends up doing after checking every layer again."""
    pushed: list[PushedTag] = []
    first_push: dict[str, PushedTag] = {}
    copies: dict[str, list[str]] = {}
    if len(tags) > 1:
        # Connections for copying and verifying several tags at once, opened while the
        # daemon pushes.
        registry = session.registry_for(settings)
        session.warm_forks(registry, extra_connections(len(tags)))
    try:
        for name in tags:
            image_id = (image_ids or {}).get(name)
            if image_id is not None and image_id in first_push:
                copies.setdefault(image_id, []).append(name)
                continue
            item = _push_through_daemon(settings, name, session)
            pushed.append(item)
            if image_id is not None:
                first_push[image_id] = item
        for image_id, names in copies.items():
            _copy_tags(settings, first_push[image_id], names, session, pushed)
    except HubError as error:
        raise _with_progress(error, pushed) from None
    order = {name: index for index, name in enumerate(tags)}
    return sorted(pushed, key=lambda item: order[item.tag])


def _push_through_daemon(settings: Settings, name: str, session: Session) -> PushedTag:
    repository = settings.require_repository()
    console = session.console
    target = repository.canonical(name)
    console.stage("push", f"pushing {target}")
    with console.pushing(target):
        digest = session.retrying(f"push of {target}", lambda: _push_once(settings, name, session))
    console.stage("push", f"pushed {target} {digest}")
    return PushedTag(repository, name, digest)


@dataclass(frozen=True)
class _Refused:
    reason: str


def _copy_tags(
    settings: Settings,
    source: PushedTag,
    names: list[str],
    session: Session,
    done: list[PushedTag],
) -> None:
    """Point `names` at `source`'s manifest, a few at a time, appending each to `done` as it
    lands. A tag the registry will not take as a copy is pushed through the daemon instead;
    transient failures are retried like any other."""
    repository = settings.require_repository()
    registry = session.registry_for(settings)
    # Read once, before any PUT: distribution rewrites the revision link on every PUT of the
    # same manifest, and a GET by digest racing that write gets a 500.
    manifest = session.retrying(
        f"reading {repository.canonical(source.tag)}",
        lambda: registry.raw_manifest(source.digest, after_push=True),
    )
    from .registry import copy_unsupported

    def copy(client: RegistryClient, name: str) -> str | _Refused:
        try:
            return client.copy_manifest(source.digest, name, manifest)
        except (RegistryError, AuthError) as error:
            if not copy_unsupported(error):  # 401/403 and faults are final (or retried)
                raise
            return _Refused(str(error))

    outcomes = each_tag(
        registry, session, names, copy, lambda name: f"tagging {repository.canonical(name)}"
    )
    fallback: list[str] = []
    failure: HubError | None = None
    for name, outcome in zip(names, outcomes, strict=True):
        target = repository.canonical(name)
        if isinstance(outcome, HubError):
            failure = failure or outcome
        elif isinstance(outcome, _Refused):
            session.console.stage("push", f"{target}: manifest copy refused ({outcome.reason})")
            fallback.append(name)
        else:
            session.console.stage("push", f"tagged {target} {outcome} (same image as {source.tag})")
            done.append(PushedTag(repository, name, outcome))
    if failure is not None:
        raise failure
    for name in fallback:
        done.append(_push_through_daemon(settings, name, session))


def _push_once(settings: Settings, tag_name: str, session: Session) -> str:
    """One push attempt. The daemon reports a registry hiccup during its auth handshake (a
    5xx on `/v2/`) as "authentication required"; when our own check shows the credentials are
    fine, that is a transient failure, and wrong credentials are never tried twice."""
    repository = settings.require_repository()
    engine, console = session.engine_for(settings), session.console
    registry = session.registry_for(settings)
    try:
        return engine.push(
            repository,
            tag_name,
            settings.auth_config,
            on_progress=console.push_progress,
            stall_timeout=session.policy.remaining() if session.policy else settings.timeout,
            rate_limit_wait=lambda: registry.rate_limit_wait(tag_name),
        )
    except AuthError as error:
        if error.status != 401:
            raise
        # Raises AuthError if they really are wrong.
        registry.check_credentials()
        raise PushError(
            f"{error} although the credentials are valid (a registry hiccup)", transient=True
        ) from None


def _with_progress(error: HubError, pushed: list[PushedTag]) -> HubError:
    if not pushed:
        return error.evolve(f"{error}; no tag was confirmed pushed", stage="push")
    made_it = [p.reference for p in pushed]
    return error.evolve(
        f"{error}; already pushed: {', '.join(made_it)}", stage="push", pushed=made_it
    )


def now_published(
    tags: tuple[str, ...] | list[str], pushed: list[PushedTag], plan: Plan, repository: Repository
) -> list[PushedTag]:
    """Every requested tag that now points at this image, in the order asked: the ones pushed
    and the ones skipped because the registry already had them."""
    by_tag = {p.tag: p for p in pushed}
    for d in plan.decisions:
        if d.action == planning.SKIP and d.remote:
            by_tag[d.tag] = PushedTag(repository, d.tag, d.remote.digest)
    return [by_tag[name] for name in tags if name in by_tag]
