"""Getting tags into the registry: pushing through the daemon, copying manifests for further
tags of the same image (or of an image the registry already holds), and saying what made it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hubtasks.errors import AuthError, HubError, PushError, RegistryError, VerifyError
from hubtasks.pipeline.gather import each_tag, extra_connections
from hubtasks.pipeline.plan import SKIP, Plan
from hubtasks.pipeline.protocols import Registry
from hubtasks.pipeline.results import PushedTag
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.registry.client import sha256_digest
from hubtasks.settings.resolve import Settings


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
    for name in tags:  # a failure part-way: the caller says what landed (`Session.ledger`)
        image_id = (image_ids or {}).get(name)
        if image_id is not None and image_id in first_push:
            copies.setdefault(image_id, []).append(name)
            continue
        item = _push_through_daemon(settings, name, session)
        pushed.append(item)
        if image_id is not None:
            first_push[image_id] = item
    for image_id, names in copies.items():
        first = first_push[image_id]
        copy_tags(settings, first.digest, names, session, pushed, read_from=first.tag)
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
    item = PushedTag(repository, name, digest)
    session.ledger.landed(item)
    return item


@dataclass(frozen=True)
class _Refused:
    reason: str


def copy_tags(
    settings: Settings,
    source: str,
    names: list[str],
    session: Session,
    done: list[PushedTag],
    *,
    daemon_fallback: bool = True,
    read_from: str | None = None,
) -> None:
    """Point `names` at the manifest `source` (a digest the registry holds), a few at a time,
    appending each to `done` as it lands. With `daemon_fallback`, a tag the registry will not
    take as a copy is pushed through the daemon instead; transient failures are retried.
    `read_from` is a tag just pushed at `source`: its manifest is read through it, which
    verifies that tag too (`Session.ledger`), one read instead of two."""
    repository = settings.require_repository()
    registry = session.registry_for(settings)
    manifest = _source_manifest(settings, session, source, read_from)
    from hubtasks.registry.client import copy_unsupported

    def copy(client: Registry, name: str) -> str | _Refused:
        try:
            digest = client.copy_manifest(source, name, manifest)
            # Now, not once every copy is done: what a Ctrl-C meanwhile reports as landed.
            session.ledger.landed(PushedTag(repository, name, digest))
            return digest
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
        elif isinstance(outcome, _Refused) and not daemon_fallback:
            failure = failure or PushError(f"{target}: manifest copy refused ({outcome.reason})")
        elif isinstance(outcome, _Refused):
            session.console.stage("push", f"{target}: manifest copy refused ({outcome.reason})")
            fallback.append(name)
        else:
            session.console.stage("push", f"tagged {target} {outcome} (copy of {source[:19]})")
            done.append(PushedTag(repository, name, outcome))
    if failure is not None:
        raise failure
    for name in fallback:
        done.append(_push_through_daemon(settings, name, session))


def _source_manifest(
    settings: Settings, session: Session, source: str, read_from: str | None
) -> tuple[bytes, str]:
    """The bytes and media type of the manifest to copy, read once, before any PUT:
    distribution rewrites the revision link on every PUT of the same manifest, and a GET by
    digest racing that write gets a 500. Read through `read_from` (a tag just pushed at
    `source`), that tag is verified on the way."""
    repository = settings.require_repository()
    registry = session.registry_for(settings)
    reference = read_from or source
    manifest = session.retrying(
        f"reading {repository.canonical(reference)}",
        lambda: registry.raw_manifest(reference, after_push=True),
    )
    if read_from is not None:
        pushed = PushedTag(repository, read_from, source)
        check_arrived(pushed, sha256_digest(manifest[0]))
        session.ledger.read_back(pushed)
    return manifest


def check_arrived(item: PushedTag, remote: str | None) -> None:
    """Raise unless the registry's manifest under the pushed tag (`remote`: the sha256 of
    the bytes it served, None when it has no such tag) is the one pushed."""
    target = item.repository.canonical(item.tag)
    if remote is None:
        raise VerifyError(
            f"{target} was pushed but the registry does not list it; run the release again",
            stage="verify",
        )
    if remote != item.digest:
        raise VerifyError(
            f"{target} points at {remote} in the registry, not at the pushed "
            f"{item.digest}; another push may have raced this one",
            stage="verify",
        )


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


def with_progress(error: HubError, pushed: list[PushedTag], stage: str = "push") -> HubError:
    """`error`, saying which tags had landed before it (the error's `pushed` too)."""
    if not pushed:
        return error.evolve(f"{error}; no tag was confirmed pushed", stage=stage)
    made_it = [p.reference for p in pushed]
    return error.evolve(
        f"{error}; already pushed: {', '.join(made_it)}", stage=stage, pushed=made_it
    )


def now_published(
    tags: tuple[str, ...] | list[str], pushed: list[PushedTag], plan: Plan, repository: Repository
) -> list[PushedTag]:
    """Every requested tag that now points at this image, in the order asked: the ones pushed
    and the ones skipped because the registry already had them."""
    by_tag = {p.tag: p for p in pushed}
    for d in plan.decisions:
        if d.action == SKIP and d.remote:
            by_tag[d.tag] = PushedTag(repository, d.tag, d.remote.digest)
    return [by_tag[name] for name in tags if name in by_tag]
