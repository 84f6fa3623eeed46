"""One exception base with actionable subclasses.

Every message names what failed, on which image or key, and what to do next. The task layer
prints ``str(error)`` once, without a traceback, and exits with ``error.exit_code``.

Errors carry data, set where they are made and read where they are handled: `status` (the HTTP
status a registry answered, if any), `transient` (worth retrying), `retry_after` (seconds the
server asked us to wait), `stage` (login, build, push, …) and `pushed` (references that landed
before the failure). Nothing decides by matching message text.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable


class HubError(Exception):
    """Base of every error hubtasks reports to a person."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
        stage: str | None = None,
        pushed: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        self.stage = stage
        self.pushed = tuple(pushed)

    def __str__(self) -> str:
        return self.message

    def evolve(self, message: str | None = None, **fields: object) -> HubError:
        """A copy of this error (same class, same fields) with some of them changed."""
        twin = copy.copy(self)
        if message is not None:
            twin.message = message
            twin.args = (message,)
        for name, value in fields.items():
            if not hasattr(self, name):
                raise TypeError(f"HubError has no field {name!r}")
            setattr(twin, name, tuple(value) if name == "pushed" else value)  # type: ignore[arg-type]
        return twin


class ConfigError(HubError):
    """A setting is missing or invalid; nothing has been done yet."""

    exit_code = 2


class InvalidReferenceError(ConfigError):
    """A repository, registry or tag does not follow the image reference grammar."""


class ContextLeakError(ConfigError):
    """The build context would carry the `.env` that holds the token into the image."""


class DaemonError(HubError):
    """The Docker daemon cannot be reached or refused a request."""


class AuthError(HubError):
    """The registry rejected the credentials or denied access; never retried."""


class RegistryError(HubError):
    """The registry could not be reached or answered with an error."""


class BuildError(HubError):
    """The image build failed."""


class PushError(HubError):
    """A push failed; the message names which tags made it."""


class VerifyError(HubError):
    """The registry does not hold what was pushed (or not with the digest we computed)."""


class DigestMismatchError(VerifyError):
    """Bytes the registry sent or took do not hash to the digest it names for them (its
    `Docker-Content-Digest` header, or the digest they were asked for by)."""


class ReleaseRefused(HubError):
    """The plan would overwrite an immutable tag; nothing was pushed."""


class HookError(HubError):
    """A hook failed; the message says whether its stage ran."""


class OutputClosed(HubError):
    """stdout's reader went away (`inv release | head -1`) before every result was written."""
