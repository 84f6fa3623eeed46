"""hubtasks: publish Docker images with Invoke tasks.

`from hubtasks import ns` in a `tasks.py` gives `inv login|build|tag|push|release`. The same
steps are plain functions (`release(load_settings(...))`) for scripts and nox sessions.
"""

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("hubtasks")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

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
