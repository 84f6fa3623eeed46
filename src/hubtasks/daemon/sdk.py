"""The Docker SDK, imported on first use (so that `inv --list` stays fast) and without
paramiko unless the daemon is reached over ssh://."""

from __future__ import annotations

import sys
from typing import Any


def import_docker(host: str) -> Any:
    """`import docker`, without paramiko unless the daemon is reached over ssh://: the SDK
    imports it whenever it is installed, which costs ~30 ms and ~13 MB for nothing."""
    if "docker" in sys.modules or host.startswith("ssh://") or "paramiko" in sys.modules:
        import docker

        return docker
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # makes `import paramiko` fail
    try:
        import docker
    finally:
        del sys.modules["paramiko"]
    return docker


def import_sdk(host: str) -> None:
    """Import the Docker SDK now (on a worker thread while another does other work)."""
    import_docker(host)
