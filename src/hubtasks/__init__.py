"""hubtasks: publish Docker images with Invoke tasks.

`from hubtasks import ns` in a `tasks.py` gives `inv init|login|build|tag|push|release|promote|…`.
The same steps are plain functions (`release(load_settings(...))`) for scripts and nox sessions.

Importing the package does nothing else: each public name below is loaded on first use (so
`inv --list` does not pay for Docker's SDK), and only the collection `ns` brings in the Invoke
layer (which installs the log redaction `inv -d` needs).
"""

from typing import Any

# The public names, each once, with the module that defines it.
_PUBLIC = {
    "BuiltImage": "pipeline.results",
    "Facts": "pipeline.hooks",
    "HubError": "errors",
    "PushedTag": "pipeline.results",
    "Release": "pipeline.results",
    "Session": "pipeline.session",
    "Settings": "settings.resolve",
    "build": "api",
    "hook": "pipeline.hooks",
    "load_settings": "settings.resolve",
    "login": "api",
    "logout": "api",
    "ns": "cli.tasks",
    "promote": "api",
    "push": "api",
    "release": "api",
    "resolve_settings": "settings.resolve",
    "tag": "api",
    "verify": "api",
}
__all__ = [*_PUBLIC, "__version__"]  # noqa: PLE0604 - built from the one list of names


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        from importlib import import_module

        value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from hubtasks.version import VERSION

        return VERSION
    raise AttributeError(f"module 'hubtasks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
