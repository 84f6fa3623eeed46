"""The two seams of the executor: the Docker daemon and the registry, as the rest of hubtasks
uses them. `engine.Engine` and `registry.RegistryClient` are the real ones; the unit tests
drive the planner and executor through small fakes of these."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hubtasks.build.buildkit.options import BuildKitRun
    from hubtasks.build.context import BuildContext
    from hubtasks.daemon.engine import LocalImage
    from hubtasks.references import Repository
    from hubtasks.registry.manifests import ImageRecord


class Daemon(Protocol):
    def registry_config(self) -> Mapping[str, Any]: ...

    def build(
        self,
        *,
        context: BuildContext,
        ref: str | None,
        build_args: Mapping[str, str],
        on_output: Callable[[str], None],
        platform: str | None = None,
        cache_from: tuple[str, ...] | list[str] = (),
        buildkit: BuildKitRun | None = None,
    ) -> str: ...

    def builder(self, setting: str) -> tuple[str, str]:
        """`buildkit` or `classic` for HUB_BUILDER on this daemon, and why."""
        ...

    def inline_cache_from_registry(self) -> bool:
        """Whether BuildKit keeps the cache of steps it took from a registry image."""
        ...

    def pull(
        self,
        ref: str,
        auth_config: Mapping[str, str] | None,
        *,
        on_progress: Callable[[Mapping[str, Any]], None],
        platform: str | None = None,
    ) -> str | None: ...

    def check_platforms(self, platforms: Iterable[str]) -> None:
        """Refuse (ConfigError) a platform the daemon cannot build: another OS than its own."""
        ...

    def tag(self, image: str, repository: Repository, tag: str) -> None: ...

    def push(
        self,
        repository: Repository,
        tag: str,
        auth_config: Mapping[str, str],
        *,
        on_progress: Callable[[Mapping[str, Any]], None],
        stall_timeout: float | None = None,
        rate_limit_wait: Callable[[], float | None] | None = None,
    ) -> str: ...

    def inspect(self, ref: str) -> LocalImage | None: ...

    def image_id(self, ref: str) -> str | None: ...

    def list_images(self, repository: Repository) -> list[dict[str, Any]]: ...

    def platform(self) -> str: ...


class Registry(Protocol):
    repository: Repository

    def check_credentials(self) -> None: ...

    def login_listing_tags(self) -> list[str]: ...

    def check_push_access(
        self, *, cancel_with: Callable[[Callable[[], object]], object] | None = None
    ) -> None: ...

    def share_login(self, other: object) -> None: ...

    def rate_limit_wait(self, reference: str = "latest") -> float | None: ...

    def tags(self) -> list[str]: ...

    def image_record(self, reference: str, *, after_push: bool = False) -> ImageRecord | None: ...

    def raw_manifest(self, reference: str, *, after_push: bool = False) -> tuple[bytes, str]: ...

    def copy_manifest(
        self, source: str, tag: str, manifest: tuple[bytes, str] | None = None
    ) -> str: ...

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str: ...

    def digest(self, tag: str, *, after_push: bool = False) -> str | None: ...

    def fork(self) -> Registry: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    # Promotion (registry-side writes, no daemon)
    def blob(self, digest: str) -> bytes: ...

    def mount_blob(self, digest: str, from_repository: Repository) -> bool: ...

    def upload_blob(self, digest: str, data: bytes) -> None: ...
