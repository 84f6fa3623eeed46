"""Promotion: publish an image the registry already holds under new tags, with no daemon.

gather   the source (a tag or digest of this repository, or an image of another repository,
         in this registry or another): its manifest digest (hashed from the bytes), config
         digest and inputs label; then the target's tags and what each planned tag holds
         (`gather`)
plan     `plan.decide` given the source's inputs label and image ID, so a release's rules hold
         unchanged; a tag neither can settle (the source is an index: no config) is decided
         by manifest digest
execute  from another repository: every blob mounted (copied when the registry will not mount
         it; from another registry: looked for, then streamed across), child manifests and
         the manifest PUT by digest; then, as for any release, a manifest copy per tag and
         the verification (`Executor.push`)
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from hubtasks.daemon.credentials import with_docker_credentials
from hubtasks.errors import RegistryError
from hubtasks.pipeline.gather import RegistryState, each_tag_or_raise
from hubtasks.pipeline.plan import (
    CHECK,
    INPUTS_LABEL,
    SKIP,
    Plan,
    Remote,
    TagDecision,
    decide,
    moved_or_refused,
)
from hubtasks.pipeline.protocols import Registry
from hubtasks.pipeline.session import Session
from hubtasks.references import DOCKER_HUB, ImageReference, Repository, parse_image_reference
from hubtasks.registry.client import RegistryClient
from hubtasks.registry.copy import copy_blob, holds_blob
from hubtasks.registry.manifests import ImageRecord
from hubtasks.settings.destinations import destination_settings
from hubtasks.settings.resolve import Settings


@dataclass(frozen=True)
class Source:
    """The image being promoted, as the registry holds it, and a client of its repository."""

    image: ImageReference
    record: ImageRecord
    registry: Registry

    @property
    def remote(self) -> Remote:
        labels = self.record.labels
        return Remote(self.record.digest, self.record.config_digest, labels.get(INPUTS_LABEL))


def resolve_source(settings: Settings, text: str) -> ImageReference:
    """`--source` as an image reference: a tag or digest of the repository, or an image in
    another repository, of this registry (blobs mounted) or of another (blobs copied)."""
    repository = settings.require_repository()
    return parse_image_reference(text, default=repository, username=settings.username)


def read_source(settings: Settings, session: Session, image: ImageReference) -> Source:
    """What the registry holds under the source reference (one manifest and one config
    read), through a client of the source's repository with the same credentials."""
    own = image.repository == settings.require_repository()
    # Another registry's credentials: HUB_REGISTRY_<HOST>_…, else Docker's (`docker login`),
    # else none (a public image).
    client = session.registry_for(
        settings
        if own
        else with_docker_credentials(destination_settings(settings, image.repository))
    )
    record = session.retrying(f"reading {image}", lambda: client.image_record(image.reference))
    if record is None:  # the registry's state, not a setting: exit 1
        raise RegistryError(
            f"the source {image} is not in the registry; name a tag or digest it holds "
            "(nothing was changed)",
            status=404,
        )
    return Source(image, record, client)


def plan_promotion(
    tags: tuple[str, ...], state: RegistryState, source: Source, *, force: bool
) -> Plan:
    """The release rules for the source image: `decide` with its inputs label and image ID;
    what only an image ID could settle (an index has none) is settled by manifest digest.
    The plan copies the source, never builds."""
    remote = source.remote
    plan = decide(
        list(tags),
        remote=state.remote,
        published=state.published,
        inputs=remote.inputs,
        image_id=remote.config_digest,
        force=force,
    )
    decisions = tuple(
        _by_digest(d, remote.digest, force) if d.action == CHECK else d for d in plan.decisions
    )
    return Plan(decisions, build=False, source=remote)


def _by_digest(decision: TagDecision, digest: str, force: bool) -> TagDecision:
    current, tag = decision.remote, decision.tag
    if current is None:  # CHECK is only ever a tag the registry holds
        return decision
    if current.digest == digest:
        return TagDecision(tag, SKIP, "the registry holds this image", current)
    return moved_or_refused(tag, current, "another image", force)


def transfer(
    session: Session,
    source: Registry,
    target: Registry,
    digest: str,
    siblings: tuple[Repository, ...] = (),
) -> None:
    """Make the manifest `digest` of the source repository exist in the target repository
    without the daemon: each blob it (and any child manifest) names is mounted when the
    source is in the same registry; from another registry it is looked for first, mounted
    from a `siblings` repository in the target's registry when one holds it, and streamed
    across only when neither. Child manifests, then the manifest, are PUT by digest. Nothing
    when the target holds it."""
    console = session.console
    held = session.retrying(
        f"reading {target.repository.canonical(digest)}", lambda: target.digest(digest)
    )
    if held == digest:
        console.stage("push", f"{target.repository} already holds {digest[:19]}")
        return
    body, media_type = session.retrying(
        f"reading {source.repository.canonical(digest)}", lambda: source.raw_manifest(digest)
    )
    children = _children(session, source, body)
    manifests = (body, *(child_body for child_body, _ in children.values()))
    blobs = list(dict.fromkeys(blob for payload in manifests for blob in _blobs(payload)))
    same = source.repository.registry == target.repository.registry
    where = f"from {source.repository}" + ("" if same else f" to {target.repository}")
    nearby = tuple(r for r in siblings if r.registry == target.repository.registry)
    with console.activity("push", f"bringing {len(blobs)} blobs {where}"):
        ways = each_tag_or_raise(
            target,
            session,
            blobs,
            lambda client, blob: _bring_blob(session, client, source, blob, nearby),
            lambda blob: f"copying blob {blob[:19]} into {target.repository}",
        )
    counts = ", ".join(f"{ways.count(way)} {way}" for way in dict.fromkeys(ways))
    console.stage("push", f"blobs {where}: {counts or 'none'}")
    for child, (child_body, child_type) in children.items():  # children before their index
        _put(session, target, child, child_body, child_type)
    _put(session, target, digest, body, media_type)


def _put(session: Session, target: Registry, digest: str, body: bytes, media_type: str) -> None:
    """PUT a manifest by its digest (the bytes were read by that digest and checked)."""
    session.retrying(
        f"storing {target.repository.canonical(digest)}",
        lambda: target.put_manifest(digest, body, media_type),
    )


def _bring_blob(
    session: Session,
    client: Registry,
    source: Registry,
    blob: str,
    siblings: tuple[Repository, ...],
) -> str:
    """How the blob got there: "mounted" (same registry, or from a sibling repository),
    "already there", or "copied" (read from the source on a connection of its own, as this
    runs beside other blobs, and sent on)."""
    same = client.repository.registry == source.repository.registry
    streams = isinstance(client, RegistryClient) and isinstance(source, RegistryClient)
    if same and client.mount_blob(blob, source.repository):
        return "mounted"
    if same and not streams:  # a client of the protocol alone: the bytes in one piece
        reader = source.fork()
        try:
            client.upload_blob(blob, reader.blob(blob))
        finally:
            reader.close()
        return "copied (the registry would not mount it)"
    if not isinstance(client, RegistryClient) or not isinstance(source, RegistryClient):
        raise RegistryError("internal: a copy between registries needs registry clients")
    if not same and holds_blob(client, blob):
        return "already there"
    for sibling in () if same else siblings:
        if sibling != client.repository and client.mount_blob(blob, sibling):
            return "mounted"
    reader = source.fork()
    policy = session.policy
    timeout = max(1.0, min(30.0, policy.remaining())) if policy else 30.0
    try:
        copy_blob(reader, client, blob, timeout=timeout)
    finally:
        reader.close()
    return "copied (the registry would not mount it)" if same else "copied"


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RegistryError("the registry sent a manifest that is not a JSON object")
    return document


def _children(session: Session, source: Registry, body: bytes) -> dict[str, tuple[bytes, str]]:
    """The manifests an index names (and theirs, for an index of indexes), read from the
    source a few at a time, each after those it names: the order to PUT them in."""
    digests = [
        str(entry["digest"])
        for entry in _document(body).get("manifests") or []
        if isinstance(entry, dict) and entry.get("digest")
    ]
    if not digests:
        return {}
    read = each_tag_or_raise(
        source,
        session,
        digests,
        lambda client, digest: client.raw_manifest(digest),
        lambda digest: f"reading {source.repository.canonical(digest)}",
    )
    found: dict[str, tuple[bytes, str]] = {}
    for digest, manifest in zip(digests, read, strict=True):
        found.update(_children(session, source, manifest[0]))
        found[digest] = manifest
    return found


def _blobs(body: bytes) -> list[str]:
    """The config and layer digests a manifest names; layers with `urls` (foreign layers)
    live outside the registry and are skipped."""
    document = _document(body)
    descriptors = [document.get("config"), *(document.get("layers") or [])]
    return [
        str(d["digest"])
        for d in descriptors
        if isinstance(d, dict) and d.get("digest") and not d.get("urls")
    ]


def equivalent_commands(
    settings: Settings, plan: Plan, image: ImageReference, digest: str
) -> list[str]:
    """What the same promotion takes with docker alone: a login, then one registry-side
    `imagetools create` per tag the plan writes."""
    repository = settings.require_repository()
    server = "" if repository.registry == DOCKER_HUB else f" {repository.registry}"
    user = shlex.quote(settings.username or "")
    commands = [f"docker login{server} --username {user} --password-stdin"]
    source = f"{image.repository.local_name}@{digest}"
    return commands + [
        f"docker buildx imagetools create --tag {repository.ref(d.tag)} {source}"
        for d in plan.to_push
    ]
