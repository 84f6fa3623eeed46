"""The two seams of the executor: the Docker daemon and the registry, as the rest of hubtasks
uses them. `engine.Engine` and `registry.RegistryClient` are the real ones; the unit tests
drive the planner and executor through small fakes of these."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .context import BuildContext
    from .engine import LocalImage
    from .references import Repository
    from .registry import ImageRecord


class Daemon(Protocol):
    def build(
        self,
        *,
        context: BuildContext,
        ref: str | None,
        build_args: Mapping[str, str],
        on_output: Callable[[str], None],
        cache_from: tuple[str, ...] | list[str] = (),
    ) -> str: ...

    def pull(
        self,
        ref: str,
        auth_config: Mapping[str, str] | None,
        *,
        on_progress: Callable[[Mapping[str, Any]], None],
    ) -> str | None: ...

    def tag(self, image: str, repository: Repository, tag: str) -> None: ...

    def push(
        self,
        repository: Repository,
        tag: str,
        auth_config: Mapping[str, str],
        *,
        on_progress: Callable[[Mapping[str, Any]], None],
    ) -> str: ...

    def inspect(self, ref: str) -> LocalImage | None: ...

    def image_id(self, ref: str) -> str | None: ...

    def list_images(self, repository: Repository) -> list[dict[str, Any]]: ...

    def platform(self) -> str: ...


class Registry(Protocol):
    repository: Repository

    def check_credentials(self) -> None: ...

    def tags(self) -> list[str]: ...

    def image_record(self, reference: str) -> ImageRecord | None: ...

    def raw_manifest(self, reference: str) -> tuple[bytes, str]: ...

    def copy_manifest(
        self, source: str, tag: str, manifest: tuple[bytes, str] | None = None
    ) -> str: ...

    def digest(self, tag: str) -> str | None: ...

    def fork(self) -> Registry: ...

    def connect(self) -> None: ...
