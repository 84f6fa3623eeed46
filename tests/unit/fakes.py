"""Small fakes at the executor's protocols (`hubtasks.protocols`): a daemon and a registry
that keep images and manifests in memory, with digests computed as the real ones are (the
sha256 of the bytes), and that count the calls made to them."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from hubtasks.engine import LocalImage
from hubtasks.registry import ImageRecord

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    """What the fake registry holds: blobs by digest, manifests by digest, tags → digest."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)

    def put_image(self, tag: str, labels: dict[str, str], *, created: str = "t0") -> str:
        """Store an image (config + manifest) under `tag`, as a push would; return the
        manifest digest."""
        config = json.dumps({"created": created, "config": {"Labels": labels}}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {"digest": sha(config)}}
        ).encode()
        self.manifests[sha(manifest)] = manifest
        self.tags[tag] = sha(manifest)
        return sha(manifest)

    def config_digest(self, tag: str) -> str:
        return json.loads(self.manifests[self.tags[tag]])["config"]["digest"]


class FakeRegistry:
    def __init__(self, repository, store: Store) -> None:
        self.repository = repository
        self.store = store

    def check_credentials(self) -> None:
        self.store.calls["check_credentials"] += 1

    def tags(self) -> list[str]:
        self.store.calls["tags"] += 1
        return sorted(self.store.tags)

    def image_record(self, reference: str) -> ImageRecord | None:
        self.store.calls["image_record"] += 1
        digest = self.store.tags.get(reference)
        if digest is None:
            return None
        config_digest = json.loads(self.store.manifests[digest])["config"]["digest"]
        self.store.calls["blob"] += 1
        config = json.loads(self.store.blobs[config_digest])
        return ImageRecord(digest, MANIFEST_TYPE, config_digest, config["config"]["Labels"])

    def raw_manifest(self, reference: str) -> tuple[bytes, str]:
        self.store.calls["raw_manifest"] += 1
        digest = self.store.tags.get(reference, reference)
        return self.store.manifests[digest], MANIFEST_TYPE

    def copy_manifest(self, source: str, tag: str, manifest=None) -> str:
        self.store.calls["copy_manifest"] += 1
        body, _ = manifest or self.raw_manifest(source)
        self.store.manifests[sha(body)] = body
        self.store.tags[tag] = sha(body)
        return sha(body)

    def digest(self, tag: str) -> str | None:
        self.store.calls["digest"] += 1
        digest = self.store.tags.get(tag)
        return sha(self.store.manifests[digest]) if digest else None

    def fork(self) -> FakeRegistry:
        return FakeRegistry(self.repository, self.store)

    def connect(self) -> None:
        pass


class FakeDaemon:
    """Builds record the inputs label; each build gets a new image ID (the build time is in
    the config, as with the classic builder); pushes put the image into the registry store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.images: dict[str, dict[str, str]] = {}  # image ID → labels
        self.local_tags: dict[str, str] = {}  # repo:tag → image ID
        self.calls: Counter = Counter()
        self._configs: dict[str, bytes] = {}  # image ID → config bytes
        self.cache_from: list[list[str]] = []  # per build, what it was given
        self.pulls: list[tuple[str, dict | None]] = []  # (ref, auth_config)

    def pull(self, ref, auth_config, *, on_progress) -> str | None:
        """A ref of this store's repository (`name:tag` or `name@digest`) arrives with the
        config the registry holds; any other is not there."""
        self.calls["pull"] += 1
        self.pulls.append((ref, auth_config))
        name, at, digest = ref.partition("@")
        if not at:
            digest = self.store.tags.get(name.rsplit(":", 1)[-1])
        if digest not in self.store.manifests:
            return None
        on_progress({"status": "Pull complete", "id": "layer1"})
        config_digest = json.loads(self.store.manifests[digest])["config"]["digest"]
        config = self.store.blobs[config_digest]
        self.images[config_digest] = json.loads(config)["config"]["Labels"]
        self._configs[config_digest] = config
        self.local_tags[ref] = config_digest
        return config_digest

    def platform(self) -> str:
        return "linux/amd64"

    def build(self, *, context, ref, build_args, on_output, cache_from=()) -> str:
        self.calls["build"] += 1
        self.cache_from.append(list(cache_from))
        on_output("Step 1/1 : FROM scratch\n")
        labels = dict(context.labels)
        config = json.dumps(
            {"created": f"build-{self.calls['build']}", "config": {"Labels": labels}}
        ).encode()
        image_id = sha(config)
        self.images[image_id] = labels
        self._configs[image_id] = config
        if ref:
            self.local_tags[ref] = image_id
        return image_id

    def tag(self, image, repository, tag) -> None:
        self.calls["tag"] += 1
        self.local_tags[repository.ref(tag)] = image

    def push(self, repository, tag, auth_config, *, on_progress) -> str:
        self.calls["push"] += 1
        image_id = self.local_tags[repository.ref(tag)]
        config = self._configs[image_id]
        self.store.blobs[image_id] = config
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {"digest": image_id}}
        ).encode()
        self.store.manifests[sha(manifest)] = manifest
        self.store.tags[tag] = sha(manifest)
        return sha(manifest)

    def inspect(self, ref: str) -> LocalImage | None:
        image_id = self.local_tags.get(ref, ref)
        if image_id not in self.images:
            return None
        return LocalImage(id=image_id, size=1234, labels=self.images[image_id])

    def image_id(self, ref: str) -> str | None:
        image = self.inspect(ref)
        return image.id if image else None

    def list_images(self, repository) -> list[dict]:
        prefix = repository.local_name + ":"
        return [
            {"tag": ref[len(prefix) :], "id": image_id, "size": 1, "created": 0}
            for ref, image_id in self.local_tags.items()
            if ref.startswith(prefix)
        ]
