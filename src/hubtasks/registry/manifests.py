"""Manifests as the registry API carries them: the media types asked for, a manifest in the
registry (`ImageRecord`), a manifest list over platform images, digests from bytes. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


@dataclass(frozen=True)
class ImageRecord:
    """A manifest in the registry: its digest, type and size; for an index its entries; for a
    single image its config digest, labels, platform and creation time."""

    digest: str
    media_type: str
    config_digest: str | None
    labels: Mapping[str, str]
    platform: str | None = None  # the config's os/architecture[/variant]
    children: tuple[tuple[str, str], ...] = ()  # an index: (digest, platform) per entry
    size: int = 0  # of the manifest bytes
    created: str | None = None  # the config's `created`


MANIFEST_LIST = MANIFEST_TYPES[1]


def manifest_list(children: list[ImageRecord]) -> tuple[bytes, str]:
    """A Docker manifest list over single-platform manifests (each with its media type,
    size, digest and the platform its config names): its bytes and media type."""
    entries = []
    for child in children:
        os_name, arch, *variant = (child.platform or "/").split("/")
        platform = {"architecture": arch, "os": os_name}
        if variant:
            platform["variant"] = variant[0]
        entries.append(
            {
                "mediaType": child.media_type or MANIFEST_TYPES[0],
                "size": child.size,
                "digest": child.digest,
                "platform": platform,
            }
        )
    document = {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": entries}
    return json.dumps(document, indent=3).encode(), MANIFEST_LIST


def platform_text(platform: Mapping[str, object]) -> str:
    """`os/architecture[/variant]` from an index entry's `platform` or an image config."""
    parts = [str(platform.get("os") or ""), str(platform.get("architecture") or "")]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def index_or_bare(
    digest: str, media_type: str, document: Mapping[str, object], size: int
) -> ImageRecord | None:
    """The record of an index (its entries' digests and platforms) or of a manifest naming no
    config; None for a single image, whose record needs its config (`image_of`)."""
    entries = document.get("manifests")
    if isinstance(entries, list):
        children = tuple(
            (str(entry.get("digest")), platform_text(entry.get("platform") or {}))
            for entry in entries
            if isinstance(entry, dict)
        )
        return ImageRecord(digest, media_type, None, {}, children=children, size=size)
    config = document.get("config")
    if not isinstance(config, dict) or not config.get("digest"):
        return ImageRecord(digest, media_type, None, {}, size=size)
    return None


def image_of(
    digest: str, media_type: str, config_digest: str, image: Mapping[str, object], size: int
) -> ImageRecord:
    """The record of a single image from its config: labels, platform, creation time."""
    config = image.get("config")
    labels = (config.get("Labels") if isinstance(config, dict) else None) or {}
    created = image.get("created")
    return ImageRecord(
        digest,
        media_type,
        config_digest,
        dict(labels),
        platform_text(image),
        size=size,
        created=str(created) if created is not None else None,
    )
