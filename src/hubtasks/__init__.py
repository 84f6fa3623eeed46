"""hubtasks: publish Docker images with Invoke tasks.

`from hubtasks import ns` in a `tasks.py` gives `inv login|build|tag|push|release`. The same
steps are plain functions (`release(load_settings(...))`) for scripts and nox sessions.
"""

from .api import (
    BuiltImage,
    PushedTag,
    Release,
    Session,
    build,
    login,
    push,
    release,
    tag,
    verify,
)
from .errors import HubError
from .hooks import Facts, hook
from .settings import Settings, load_settings, resolve_settings
from .tasks import ns


def __getattr__(name: str) -> str:
    # importlib.metadata costs ~30 ms at import; `inv --list` should not pay for a version.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("hubtasks")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 'hubtasks' has no attribute {name!r}")


__all__ = [
    "BuiltImage",
    "Facts",
    "HubError",
    "PushedTag",
    "Release",
    "Session",
    "Settings",
    "__version__",
    "build",
    "hook",
    "load_settings",
    "login",
    "ns",
    "push",
    "release",
    "resolve_settings",
    "tag",
    "verify",
]
