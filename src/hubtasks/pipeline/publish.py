"""Getting tags into the registry: pushing through the daemon, copying manifests for further
tags of the same image (or of an image the registry already holds), and saying what made it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hubtasks.errors import AuthError, HubError, PushError, RegistryError, VerifyError
from hubtasks.pipeline.gather import each_tag, extra_connections
from hubtasks.pipeline.plan import SKIP, Plan, is_immutable
from hubtasks.pipeline.protocols import Registry
from hubtasks.pipeline.results import PushedTag
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.registry.manifests import sha256_digest
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
    manifests: dict[str, tuple[bytes, str]] = {}
    for name in tags:  # a failure part-way: the caller says what landed (`Session.ledger`)
        image_id = (image_ids or {}).get(name)
        if image_id is not None and image_id in first_push:
            copies.setdefault(image_id, []).append(name)
            continue
        item, manifest = _push_through_daemon(settings, name, session, image_id)
        pushed.append(item)
        if image_id is not None and manifest is not None:
            first_push[image_id], manifests[image_id] = item, manifest
    for image_id, names in copies.items():
        first = first_push[image_id]
        copy_tags(settings, first.digest, names, session, pushed, manifest=manifests[image_id])
    order = {name: index for index, name in enumerate(tags)}
    return sorted(pushed, key=lambda item: order[item.tag])


def _push_through_daemon(
    settings: Settings, name: str, session: Session, image_id: str | None = None
) -> tuple[PushedTag, tuple[bytes, str] | None]:
    """Push `name` through the daemon. With `image_id` (the image this run built or chose),
    the local tag is pointed at it right before each attempt, and the registry's manifest is
    read back before the tag counts as pushed: its bytes must be the pushed digest and its
    config that image (`confirm_built`); the bytes are returned for copies to other tags."""
    repository = settings.require_repository()
    console = session.console
    target = repository.canonical(name)
    console.stage("push", f"pushing {target}")
    with console.pushing(target), session.ledger.writing(target):
        digest = session.retrying(
            f"push of {target}", lambda: _push_once(settings, name, session, image_id)
        )
    item = PushedTag(repository, name, digest)
    manifest = None
    if image_id is not None:
        try:
            manifest = _read_back(settings, session, item)
        except HubError:
            session.ledger.landed(item)  # the daemon pushed it; only reading it back failed
            raise
        # Another digest under the tag: another run's write landed after ours, so the tag is
        # not this run's release (never "already pushed"); the error names both.
        check_arrived(item, sha256_digest(manifest[0]))
        session.ledger.read_back(item)
        confirm_built(item, manifest[0], image_id)
    console.stage("push", f"pushed {target} {digest}")
    session.ledger.landed(item)
    return item, manifest


def _read_back(settings: Settings, session: Session, item: PushedTag) -> tuple[bytes, str]:
    """The manifest under the tag the daemon just pushed; the caller checks its bytes hash to
    the pushed digest (this is the tag's verification too, `Session.ledger`)."""
    registry = session.registry_for(settings)
    return session.retrying(
        f"reading {item.reference}", lambda: registry.raw_manifest(item.tag, after_push=True)
    )


def confirm_built(item: PushedTag, manifest: bytes, image_id: str) -> None:
    """Raise unless the pushed `manifest` names `image_id` as its config. The daemon pushes
    whatever image the local tag names when it gets to it; another process (a second release
    on this daemon, a hook) may have moved that tag in between."""
    config = _config_of(manifest)
    if config is None or config == image_id:
        return
    target = item.repository.canonical(item.tag)
    # A plain re-run refuses a version tag that holds another image: it needs --force.
    again = "release again with --force" if is_immutable(item.tag) else "release again"
    raise PushError(
        f"the daemon pushed image {config[:19]} as {target}, not the image this run built, "
        f"{image_id[:19]}: the local tag {item.repository.ref(item.tag)} was moved to "
        f"{config[:19]} while the daemon pushed it (another release or a 'docker tag' on "
        f"the same daemon); the registry's {item.tag} now holds {config[:19]}, "
        f"so {again} once nothing else moves that tag",
        stage="push",
    )


def _config_of(body: bytes) -> str | None:
    """The config digest a single-image manifest names (None for a list or an unreadable one)."""
    import json

    try:
        config = json.loads(body).get("config")
    except (ValueError, AttributeError):
        return None
    digest = config.get("digest") if isinstance(config, dict) else None
    return digest if isinstance(digest, str) else None


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
    manifest: tuple[bytes, str] | None = None,
) -> None:
    """Point `names` at the manifest `source` (a digest the registry holds), a few at a time,
    appending each to `done` as it lands. With `daemon_fallback`, a tag the registry will not
    take as a copy is pushed through the daemon instead; transient failures are retried.
    `manifest` is `source`'s bytes and media type when the caller has already read them (the
    read-back of a tag just pushed at `source`)."""
    repository = settings.require_repository()
    registry = session.registry_for(settings)
    copied = manifest if manifest is not None else _source_manifest(settings, session, source)
    from hubtasks.registry.client import copy_unsupported

    def copy(client: Registry, name: str) -> str | _Refused:
        try:
            with session.ledger.writing(repository.canonical(name)):
                digest = client.copy_manifest(source, name, copied)
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
        done.append(_push_through_daemon(settings, name, session)[0])


def _source_manifest(settings: Settings, session: Session, source: str) -> tuple[bytes, str]:
    """The bytes and media type of the manifest to copy, read once, before any PUT:
    distribution rewrites the revision link on every PUT of the same manifest, and a GET by
    digest racing that write gets a 500."""
    repository = settings.require_repository()
    registry = session.registry_for(settings)
    return session.retrying(
        f"reading {repository.canonical(source)}",
        lambda: registry.raw_manifest(source, after_push=True),
    )


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


def _push_once(settings: Settings, tag_name: str, session: Session, image_id: str | None) -> str:
    """One push attempt, the local tag first pointed (again) at `image_id`. The daemon reports
    a registry hiccup during its auth handshake (a 5xx on `/v2/`) as "authentication required";
    when our own check shows the credentials are fine, that is a transient failure, and wrong
    credentials are never tried twice."""
    repository = settings.require_repository()
    engine, console = session.engine_for(settings), session.console
    registry = session.registry_for(settings)
    if image_id is not None:
        # The daemon pushes a tag under the name it has in the registry, so no name can be
        # this run's alone; pointing it at the built image right before the push leaves the
        # smallest window, and `confirm_built` catches a move within it.
        engine.tag(image_id, repository, tag_name)
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


def warn_moved(settings: Settings, session: Session, pushed: list[PushedTag]) -> None:
    """The final read-back, once the push stage is over: a tag this run wrote that another run
    may move too (any tag but an immutable version) is read again, and a warning says when it
    no longer holds the digest this run prints. Reads that fail say nothing: the release is
    done and verified."""
    movable = [item for item in pushed if not is_immutable(item.tag)]
    if not movable:
        return
    registry = session.registry_for(settings)
    found = each_tag(
        registry,
        session,
        [item.tag for item in movable],
        lambda client, name: client.digest(name, after_push=True),
        lambda name: f"reading {registry.repository.canonical(name)} again",
    )
    for item, remote in zip(movable, found, strict=True):
        if isinstance(remote, HubError) or remote == item.digest:
            continue
        now = f"points at {remote}" if remote else "is gone"
        session.console.warn(
            f"{item.repository.canonical(item.tag)} {now}, not at {item.digest} that this run "
            "pushed: another run moved it after this one"
        )
