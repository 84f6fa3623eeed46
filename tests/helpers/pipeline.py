"""A release on the unit tests' fakes: a project folder, its settings, one command line on a
fresh (or given) fake daemon over a fake registry's store."""

from __future__ import annotations

from pathlib import Path

from hubtasks import api
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.settings.resolve import Settings
from tests.helpers.consoles import make_console
from tests.unit.fakes import FakeDaemon, FakeRegistry, Store

REGISTRY = "127.0.0.1:5000"
REPOSITORY = Repository(registry=REGISTRY, path="alice/app")


def release_project(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (tmp_path / "app").write_text("v1")
    return tmp_path


def release_settings(root: Path, *tags: str, **changes) -> Settings:
    values = dict(
        registry=REGISTRY,
        username="alice",
        token="s3cret",
        repository=REPOSITORY,
        tags=tags,
        dockerfile=root / "Dockerfile",
        context=root,
        cwd=root,
        retries=2,
        retry_delay=0.0,
    )
    values.update(changes)
    return Settings(**values)


def run_release(settings: Settings, store: Store, daemon: FakeDaemon | None = None, **options):
    """One command line on a runner whose daemon is `daemon` (a fresh one by default)."""
    daemon = daemon or FakeDaemon(store)
    session = Session(
        console=make_console("plain"),
        context=object(),
        engine=daemon,
        registry_factory=lambda s: FakeRegistry(s.require_repository(), store),
    )
    return api.release(settings, session=session, **options), daemon, session


def multi_platform_project(root: Path) -> Path:
    (root / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\n")
    (root / "app-amd64").write_text("x86")
    (root / "app-arm64").write_text("arm")
    return root
