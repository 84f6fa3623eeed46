"""Whether the tags a registry keeps still pull, checked as `docker pull` would need them:
each tag's manifest, each child of a list (by digest), and every blob an image manifest names
(its config and layers), read straight from the registry (no proxy) and checked against their
digests. After a prune, a kept tag that no longer pulls is data lost."""

from __future__ import annotations

import hashlib
import json
import urllib.error

from devtools.stack import Registry

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read(registry: Registry, path: str, what: str, accept: str | None = None) -> bytes:
    try:
        with registry.request(path, accept=accept) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{what} does not pull: HTTP {error.code} for {path}") from None


def _pull(registry: Registry, repository: str, reference: str, what: str) -> None:
    body = _read(registry, f"/v2/{repository}/manifests/{reference}", what, MANIFEST_TYPES)
    if reference.startswith("sha256:"):
        assert _sha256(body) == reference, f"{what}: {reference} answered other bytes"
    document = json.loads(body)
    for child in document.get("manifests") or []:
        _pull(registry, repository, child["digest"], f"{what} (child {child['digest'][:19]})")
    for blob in [document.get("config"), *(document.get("layers") or [])]:
        if blob:
            data = _read(registry, f"/v2/{repository}/blobs/{blob['digest']}", what)
            assert _sha256(data) == blob["digest"], f"{what}: blob {blob['digest']} corrupt"


def assert_tags_pull(registry: Registry, repository: str, tags: list[str] | None = None) -> None:
    """Every tag in `tags` (by default: every tag the registry lists) still pulls whole."""
    names = registry.tags(repository) if tags is None else tags
    for name in names:
        _pull(registry, repository, name, f"{repository}:{name}")
