"""One exception base with actionable subclasses.

Every message names what failed, on which image or key, and what to do next. The task layer
prints ``str(error)`` once, without a traceback, and exits with ``error.exit_code``.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error hubtasks reports to a person."""

    exit_code = 1


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
    """The registry rejected the credentials; never retried."""


class RegistryError(HubError):
    """The registry could not be reached or answered with an error."""


class BuildError(HubError):
    """The image build failed."""


class PushError(HubError):
    """A push failed; the message names which tags made it."""


class VerifyError(HubError):
    """The registry does not hold what was pushed."""


class ReleaseRefused(HubError):
    """The plan would overwrite an immutable tag; nothing was pushed."""


class HookError(HubError):
    """A hook failed; the message says whether its stage ran."""
