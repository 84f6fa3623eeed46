"""Image reference grammar (distribution/reference) and Docker Hub normalisation.

Pure functions: no Docker, no I/O. The grammar follows
https://github.com/distribution/reference/blob/main/reference.go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hubtasks.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
# Docker Hub's credentials are keyed by this legacy address in ~/.docker/config.json.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_NAME_MAX = 255


@dataclass(frozen=True)
class Repository:
    """A repository in a registry: ``registry`` is a host[:port], ``path`` is ``ns/name``."""

    registry: str
    path: str

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def local_name(self) -> str:
        """The name the Docker daemon gives this repository (`docker images` shows it)."""
        if self.is_docker_hub:
            return self.path.removeprefix("library/")
        return f"{self.registry}/{self.path}"

    @property
    def auth_key(self) -> str:
        """The server address credentials are stored under, as `docker login` does."""
        return auth_key(self.registry)

    def ref(self, tag: str) -> str:
        """The local reference `name:tag` that docker build/tag/push use."""
        return f"{self.local_name}:{tag}"

    def canonical(self, tag: str | None, digest: str | None = None) -> str:
        """The fully qualified `registry/path:tag[@digest]`, what the summary prints; a
        digest given as the tag (`sha256:…`) reads `registry/path@sha256:…`."""
        if tag and digest is None and tag.startswith("sha256:"):
            tag, digest = None, tag
        text = f"{self.registry}/{self.path}" + (f":{tag}" if tag else "")
        return f"{text}@{digest}" if digest else text

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


def auth_key(registry: str) -> str:
    """The key of a registry's credentials in the Docker config (Hub's is a legacy URL)."""
    return DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def validate_tag(tag: str, *, source: str = "tag") -> str:
    """Return `tag` unchanged, or raise naming the rule it breaks."""
    if not tag:
        raise InvalidReferenceError(f"{source}: a tag cannot be empty")
    if len(tag) > 128:
        raise InvalidReferenceError(
            f"{source}: tag '{tag[:20]}…' is {len(tag)} characters long; the limit is 128"
        )
    if not is_valid_tag(tag):
        raise InvalidReferenceError(
            f"{source}: '{tag}' is not a valid tag: use letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    return tag


def normalize_registry(value: str, *, source: str = "registry") -> str:
    """`docker.io` and its aliases become `docker.io`; a scheme or trailing slash is dropped."""
    text = value.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if text.lower() in ("index.docker.io/v1", "index.docker.io/v2"):
        text = DOCKER_HUB
    if not text or not _HOST.fullmatch(text):
        raise InvalidReferenceError(
            f"{source}: '{value}' is not a registry host; write it as host[:port], "
            "e.g. docker.io or 127.0.0.1:5000"
        )
    lowered = text.lower()
    return DOCKER_HUB if lowered in _HUB_ALIASES else lowered


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def names_registry(text: str) -> bool:
    """Whether a repository as written starts with a registry host (`ghcr.io/alice/app`)."""
    parts = text.strip().split("/")
    return len(parts) > 1 and _looks_like_host(parts[0])


def parse_repository(
    value: str,
    *,
    registry: str | None,
    username: str | None,
    source: str = "repository",
) -> Repository:
    """Parse `[host/]namespace/name` or a bare `name` (which means `username/name`).

    `registry` is the configured registry, or None when only the default applies; a host
    written in the repository itself must agree with an explicitly configured registry.
    """
    text = value.strip()
    if not text:
        raise InvalidReferenceError(f"{source}: the repository name is empty")
    if ":" in text.rsplit("/", 1)[-1] or "@" in text:
        raise InvalidReferenceError(
            f"{source}: '{value}' contains a tag or digest; give the repository alone "
            "and the tags with --tag"
        )
    parts = text.split("/")
    host = None
    if len(parts) > 1 and _looks_like_host(parts[0]):
        host = normalize_registry(parts[0], source=source)
        parts = parts[1:]
        if registry is not None and registry != host:
            raise InvalidReferenceError(
                f"{source}: '{value}' names registry {host} but the registry setting is "
                f"{registry}; drop the host from the repository or change the registry"
            )
    resolved_registry = host or registry or DOCKER_HUB
    for part in parts:
        _check_component(part, value, source)
    if len(parts) == 1:
        parts = [_default_namespace(username, value, parts[0], source), *parts]
    path = "/".join(parts)
    if len(path) > _NAME_MAX:
        raise InvalidReferenceError(
            f"{source}: '{value}' is {len(path)} characters long; the limit is {_NAME_MAX}"
        )
    return Repository(registry=resolved_registry, path=path)


def _check_component(part: str, value: str, source: str) -> None:
    if not _PATH_COMPONENT.fullmatch(part):
        hint = " (repository names must be lowercase)" if part.lower() != part else ""
        raise InvalidReferenceError(
            f"{source}: '{value}' is not a valid repository name: component '{part}' "
            f"may only hold lowercase letters, digits and single separators . _ __ -{hint}"
        )


def _default_namespace(username: str | None, value: str, name: str, source: str) -> str:
    """The namespace a bare repository `name` gets: the username, lowercased."""
    if not username:
        raise InvalidReferenceError(
            f"{source}: '{value}' has no namespace and no username is set; write it as "
            f"NAMESPACE/{name} or set HUB_USERNAME"
        )
    namespace = username.lower()
    if not _PATH_COMPONENT.fullmatch(namespace):
        raise InvalidReferenceError(
            f"{source}: the username '{username}' cannot serve as the namespace of "
            f"'{value}'; write the repository as NAMESPACE/{name}"
        )
    return namespace


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageReference:
    """One image in a registry: a repository and a tag or a digest (the digest wins)."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What the registry API takes after `/manifests/`: the digest, else the tag."""
        return self.digest or self.tag or ""

    def __str__(self) -> str:
        return self.repository.canonical(self.tag, self.digest)


def parse_image_reference(
    value: str, *, default: Repository, username: str | None, source: str = "--source"
) -> ImageReference:
    """A tag (`v1.2.3-rc.1`) or digest (`sha256:…`) alone names an image of `default`;
    `[HOST/]namespace/name:tag` or `…@sha256:…` names one in another repository (a bare
    `name:tag` means `username/name`). The host, when written, is kept as given: the caller
    decides what another registry means."""
    text = value.strip()
    if text.startswith("sha256:"):
        if not _DIGEST.fullmatch(text):
            raise InvalidReferenceError(
                f"{source}: '{value}' is not a digest; write it as sha256:<64 hex digits>"
            )
        return ImageReference(default, digest=text)
    if is_valid_tag(text):
        return ImageReference(default, tag=text)
    name, _, digest = text.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
        validate_tag(tag, source=source)
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidReferenceError(
            f"{source}: '{digest}' in '{value}' is not a digest; write it as sha256:<64 hex digits>"
        )
    if not (tag or digest):
        raise InvalidReferenceError(
            f"{source}: '{value}' names a repository but no image; add :TAG or @sha256:…"
        )
    parts = name.split("/")
    explicit = len(parts) > 1 and _looks_like_host(parts[0])
    repository = parse_repository(
        name,
        registry=None if explicit else default.registry,
        username=username,
        source=source,
    )
    return ImageReference(repository, tag=tag, digest=digest or None)


_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}")


def parse_pull_reference(value: str, *, source: str = "image") -> tuple[Repository, str]:
    """`[host/]path[:tag][@digest]` → its repository and the tag or digest to pull (`latest`
    when it names neither), normalised as the docker CLI does (`alpine` is
    docker.io/library/alpine)."""
    text = value.strip()
    name, at, digest = text.partition("@")
    if at and not _ANY_DIGEST.fullmatch(digest):
        raise InvalidReferenceError(f"{source}: '{value}' has no valid digest after '@'")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, _, tag = name.rpartition(":")
        validate_tag(tag, source=source)
    parts = name.split("/")
    host = None
    if len(parts) > 1 and _looks_like_host(parts[0]):
        host = normalize_registry(parts[0], source=source)
        parts = parts[1:]
    registry = host or DOCKER_HUB
    if registry == DOCKER_HUB and len(parts) == 1:
        parts = ["library", *parts]
    for part in parts:
        if not _PATH_COMPONENT.fullmatch(part):
            raise InvalidReferenceError(
                f"{source}: '{value}' is not a valid image reference: component '{part}' may "
                "only hold lowercase letters, digits and single separators . _ __ -"
            )
    return Repository(registry=registry, path="/".join(parts)), digest if at else tag or "latest"
