"""Small fakes at the executor's protocols (`hubtasks.pipeline.protocols`): a daemon and a registry
that keep images and manifests in memory, with digests computed as the real ones are (the
sha256 of the bytes), and that count the calls made to them. Several repositories of one
registry are a `world`: repository path → `Store`, which blob mounts read from."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from hubtasks.daemon.engine import LocalImage
from hubtasks.errors import ConfigError, RegistryError
from hubtasks.registry.manifests import ImageRecord, platform_text

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    """What the fake registry holds: blobs by digest, manifests by digest, tags → digest."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    refuse_mounts: bool = False  # answer every mount as a registry that cannot (202)

    def put_image(
        self, tag: str, labels: dict[str, str], *, created: str = "t0", layer: bytes | None = None
    ) -> str:
        """Store an image (config, an optional layer, manifest) under `tag`, as a push
        would; return the manifest digest."""
        config = json.dumps(
            {
                "created": created,
                "os": "linux",
                "architecture": "amd64",
                "config": {"Labels": labels},
            }
        ).encode()
        self.blobs[sha(config)] = config
        document: dict = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"digest": sha(config)},
        }
        if layer is not None:
            self.blobs[sha(layer)] = layer
            document["layers"] = [{"digest": sha(layer), "size": len(layer)}]
        return self._put(tag, json.dumps(document).encode())

    def put_index(self, tag: str, children: list[str]) -> str:
        """Store an index over the images under the tags `children`; return its digest."""
        entries = [
            {
                "mediaType": MANIFEST_TYPE,
                "digest": self.tags[c],
                "platform": {"os": "linux", "architecture": "amd64"},
            }
            for c in children
        ]
        body = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries})
        return self._put(tag, body.encode())

    def _put(self, tag: str, body: bytes) -> str:
        self.manifests[sha(body)] = body
        self.tags[tag] = sha(body)
        return sha(body)

    def resolve(self, reference: str) -> str | None:
        """The manifest digest under a tag or digest."""
        if reference in self.manifests:
            return reference
        return self.tags.get(reference)

    def config_digest(self, tag: str) -> str:
        return json.loads(self.manifests[self.tags[tag]])["config"]["digest"]


class FakeRegistry:
    def __init__(self, repository, store: Store, world: Mapping[str, Store] | None = None) -> None:
        self.repository = repository
        self.store = store
        self.world = world or {repository.path: store}

    def check_credentials(self) -> None:
        self.store.calls["check_credentials"] += 1

    def login_listing_tags(self) -> list[str]:
        self.store.calls["check_credentials"] += 1
        return self.tags()

    def check_push_access(self, *, cancel_with=None) -> None:
        self.store.calls["check_push_access"] += 1

    def share_login(self, other) -> None:
        pass

    def rate_limit_wait(self, reference: str = "latest") -> float | None:
        return None

    def tags(self) -> list[str]:
        self.store.calls["tags"] += 1
        return sorted(self.store.tags)

    def image_record(self, reference: str, *, after_push: bool = False) -> ImageRecord | None:
        self.store.calls["image_record"] += 1
        digest = self.store.resolve(reference)
        if digest is None:
            return None
        body = self.store.manifests[digest]
        document = json.loads(body)
        if "config" not in document:
            children = tuple(
                (m["digest"], platform_text(m.get("platform") or {}))
                for m in document.get("manifests") or []
            )
            return ImageRecord(
                digest, document["mediaType"], None, {}, children=children, size=len(body)
            )
        config_digest = document["config"]["digest"]
        self.store.calls["blob"] += 1
        config = json.loads(self.store.blobs[config_digest])
        return ImageRecord(
            digest,
            MANIFEST_TYPE,
            config_digest,
            config["config"]["Labels"],
            platform_text(config),
            size=len(body),
        )

    def raw_manifest(self, reference: str, *, after_push: bool = False) -> tuple[bytes, str]:
        self.store.calls["raw_manifest"] += 1
        body = self.store.manifests[self.store.resolve(reference) or reference]
        return body, json.loads(body).get("mediaType", MANIFEST_TYPE)

    def copy_manifest(self, source: str, tag: str, manifest=None) -> str:
        self.store.calls["copy_manifest"] += 1
        body, _ = manifest or self.raw_manifest(source)
        self.store.manifests[sha(body)] = body
        self.store.tags[tag] = sha(body)
        return sha(body)

    def digest(self, tag: str, *, after_push: bool = False) -> str | None:
        self.store.calls["digest"] += 1
        digest = self.store.resolve(tag)
        return sha(self.store.manifests[digest]) if digest else None

    def fork(self) -> FakeRegistry:
        return type(self)(self.repository, self.store, self.world)  # a subclass's faults too

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def blob(self, digest: str) -> bytes:
        self.store.calls["blob"] += 1
        return self.store.blobs[digest]

    def mount_blob(self, digest: str, from_repository) -> bool:
        """Mounted when the other repository holds the blob (and mounts are not refused)."""
        self.store.calls["mount_blob"] += 1
        other = self.world.get(from_repository.path)
        if self.store.refuse_mounts or other is None or digest not in other.blobs:
            return False
        self.store.blobs[digest] = other.blobs[digest]
        return True

    def upload_blob(self, digest: str, data: bytes) -> None:
        self.store.calls["upload_blob"] += 1
        assert sha(data) == digest, "the registry checks an upload's digest"
        self.store.blobs[digest] = data

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """Refused, as a registry does, when a blob or child manifest it names is missing."""
        self.store.calls["put_manifest"] += 1
        document = json.loads(body)
        named = [document.get("config"), *(document.get("layers") or [])]
        missing = [d["digest"] for d in named if d and d["digest"] not in self.store.blobs]
        missing += [
            m["digest"]
            for m in document.get("manifests") or []
            if m["digest"] not in self.store.manifests
        ]
        if missing:
            raise RegistryError(f"manifest {reference} names unknown {missing[0]}", status=400)
        self.store.manifests[sha(body)] = body
        if not reference.startswith("sha256:"):
            self.store.tags[reference] = sha(body)
        return sha(body)


class FakeDaemon:
    """Builds record the inputs label; each build gets a new image ID (the build time is in
    the config, as with the classic builder); pushes put the image into the registry store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.images: dict[str, dict[str, str]] = {}  # image ID → labels
        self.local_tags: dict[str, str] = {}  # repo:tag → image ID
        self.calls: Counter = Counter()
        self.inspections = 0
        self._configs: dict[str, bytes] = {}  # image ID → config bytes
        self.build_args: list[dict[str, str]] = []  # what each build was given
        self.cache_from: list[list[str]] = []  # per build, what it was given
        self.pulls: list[tuple[str, dict | None]] = []  # (ref, auth_config)
        self.pull_platforms: list[str | None] = []  # per pull, the platform asked for
        # GET /info's RegistryConfig, as dockerd 20.10 answers it by default.
        self.registry_settings: dict = {"InsecureRegistryCIDRs": ["127.0.0.0/8"]}

    def registry_config(self) -> dict:
        self.calls["registry_config"] += 1
        return self.registry_settings

    def pull(self, ref, auth_config, *, on_progress, platform=None) -> str | None:
        """A ref of this store's repository (`name:tag` or `name@digest`) arrives with the
        config the registry holds; any other is not there. A list arrives as its image for
        `platform` (the daemon's own by default), as the daemon resolves it."""
        self.calls["pull"] += 1
        self.pulls.append((ref, auth_config))
        self.pull_platforms.append(platform)
        name, at, digest = ref.partition("@")
        if not at:
            digest = self.store.tags.get(name.rsplit(":", 1)[-1])
        if digest not in self.store.manifests:
            return None
        wanted = platform or self.platform()
        for child in json.loads(self.store.manifests[digest]).get("manifests") or []:
            if f"{child['platform']['os']}/{child['platform']['architecture']}" == wanted:
                digest = child["digest"]
                break
        else:
            if "manifests" in json.loads(self.store.manifests[digest]):
                return None  # the list has no image for that platform
        on_progress({"status": "Pull complete", "id": "layer1"})
        config_digest = json.loads(self.store.manifests[digest])["config"]["digest"]
        config = self.store.blobs[config_digest]
        self.images[config_digest] = json.loads(config)["config"]["Labels"]
        self._configs[config_digest] = config
        self.local_tags[ref] = config_digest
        return config_digest

    def platform(self) -> str:
        return "linux/amd64"

    def check_platforms(self, platforms) -> None:
        """The daemon's own OS only, as the engine checks it."""
        other = [p for p in platforms if p.split("/")[0] != self.platform().split("/")[0]]
        if other:
            raise ConfigError(f"the Docker daemon runs linux; it cannot build {', '.join(other)}")

    def builder(self, setting: str) -> tuple[str, str]:
        return ("buildkit" if setting == "buildkit" else "classic"), "the fake daemon"

    inline_cache_api = False  # Engine 20.10: BuildKit's cache images are pulled first

    def inline_cache_from_registry(self) -> bool:
        return self.inline_cache_api

    def build(
        self, *, context, ref, build_args, on_output, platform=None, cache_from=(), buildkit=None
    ) -> str:
        self.calls["build"] += 1
        self.build_args.append(dict(build_args))
        self.cache_from.append(list(cache_from))
        on_output("Step 1/1 : FROM scratch\n")
        if hasattr(context, "stream"):
            # Read the archive as the daemon does (a digest computed while streaming is
            # known after this), and take the labels from its generated Dockerfile.
            with tarfile.open(fileobj=io.BytesIO(b"".join(context.stream()))) as archive:
                dockerfile = archive.extractfile(context.dockerfile_name).read()
            labels = _labels_of(dockerfile)
        else:
            labels = dict(context.labels)
        os_name, arch, *variant = (platform or self.platform()).split("/")
        config = json.dumps(
            {
                "created": f"build-{self.calls['build']}",
                "os": os_name,
                "architecture": arch,
                **({"variant": variant[0]} if variant else {}),
                "config": {"Labels": labels},
            }
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

    def push(
        self, repository, tag, auth_config, *, on_progress, stall_timeout=None, rate_limit_wait=None
    ) -> str:
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
        self.inspections += 1  # not in `calls`, which counts what changes the daemon
        image_id = self.local_tags.get(ref, ref)
        if image_id not in self.images:
            return None
        config = json.loads(self._configs[image_id])
        platform = "/".join(config[k] for k in ("os", "architecture", "variant") if config.get(k))
        return LocalImage(id=image_id, size=1234, labels=self.images[image_id], platform=platform)

    def image_id(self, ref: str) -> str | None:
        image = self.inspect(ref)
        return image.id if image else None

    def list_images(self, repository) -> list[dict]:
        prefix = repository.local_name + ":"
        return [
            {
                "tag": ref[len(prefix) :],
                "id": image_id,
                "size": 1,
                "created": 0,
                "labels": self.images.get(image_id, {}),
            }
            for ref, image_id in self.local_tags.items()
            if ref.startswith(prefix)
        ]


def _labels_of(dockerfile: bytes) -> dict[str, str]:
    """The labels of the `LABEL` line hubtasks appends (double-quoted words, backslash
    escapes)."""
    line = dockerfile.decode().rstrip("\n").splitlines()[-1]
    if not line.startswith("LABEL "):
        return {}
    words = shlex.split(line[len("LABEL ") :])
    return dict(word.split("=", 1) for word in words)
