"""What every test directory shares: devtools/ on the path and the `integration` marker.

- tests/unit: the product with small fakes; never a daemon, the whole directory in seconds.
- tests/integration: the product against a real dockerd and registry (devtools.stack).
- tests/devtools: the test tools themselves (fault proxy, latency proxy, TLS daemon).

`-m "not integration"` (or just `tests/unit`) runs everything that starts no daemon.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# devtools/ (the throwaway daemon and registry) lives at the repository root, next to tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
# Fixtures that start a dockerd (and a registry): a test that uses one, directly or through
# another fixture, is an integration test wherever it lives.
DAEMON_FIXTURES = frozenset({"stack", "client", "project", "tls_daemon"})


def is_integration(path: Path, fixturenames: list[str]) -> bool:
    """Whether a test needs a real daemon: it lives in tests/integration or uses one."""
    return path.is_relative_to(_INTEGRATION_DIR) or not DAEMON_FIXTURES.isdisjoint(fixturenames)


def pytest_configure(config: pytest.Config) -> None:
    # tests/integration/conftest.py reads these two (what builder a test's `project` uses).
    config.addinivalue_line(
        "markers",
        "builds: builds an image with hubtasks; runs once per builder (buildkit, classic)",
    )
    config.addinivalue_line("markers", "builder(name): a test about one builder; HUB_BUILDER=name")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A `pytestmark` in a conftest.py is ignored by pytest (it only reads test modules), so the
    # marker is set here, where every collected test passes by.
    for item in items:
        if is_integration(item.path, getattr(item, "fixturenames", [])):
            item.add_marker(pytest.mark.integration)
