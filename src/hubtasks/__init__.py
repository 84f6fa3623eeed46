"""hubtasks: publish Docker images with Invoke tasks.

`from hubtasks import ns` in a `tasks.py` gives `inv login|build|tag|push|release|promote`. The same
steps are plain functions (`release(load_settings(...))`) for scripts and nox sessions.
"""

from typing import TYPE_CHECKING, Any

from .errors import HubError
from .settings import Settings, load_settings, resolve_settings
from .tasks import ns

if TYPE_CHECKING:
    from .api import (
        BuiltImage,
        PushedTag,
        Release,
        Session,
        build,
        login,
        logout,
        promote,
        push,
        release,
        tag,
        verify,
    )
    from .hooks import Facts, hook

# Loaded on first use: `inv --list` imports this package and should not pay for the rest.
_LAZY = {
    **dict.fromkeys(
        (
            "BuiltImage",
            "PushedTag",
            "Release",
            "Session",
            "build",
            "login",
            "logout",
            "promote",
            "push",
            "release",
            "tag",
            "verify",
        ),
        "api",
    ),
    "Facts": "hooks",
    "hook": "hooks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
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
    "logout",
    "ns",
    "promote",
    "push",
    "release",
    "resolve_settings",
    "tag",
    "verify",
]
