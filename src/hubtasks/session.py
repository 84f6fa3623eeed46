"""A session: what the stages of one command line share."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .console import Console
from .engine import Engine
from .hooks import Hooks
from .retry import RetryPolicy
from .settings import Settings

if TYPE_CHECKING:
    from .registry import RegistryClient

T = TypeVar("T")


class Session:
    """What the stages of one invocation share (`inv login build tag push` is one session).

    One daemon connection, one credential check per registry and user, the tags the last
    build or tag stage produced (a later stage without --tag uses them), and the hooks, each
    of which runs at most once.
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        context: Any = None,
        hook_commands: Mapping[str, str] | None = None,
    ) -> None:
        self.console = console or Console()
        if context is None:
            from invoke import Context

            context = Context()
        self.hooks = Hooks(hook_commands or {}, context, self.console.stage)
        self.engine: Engine | None = None
        self.logged_in: set[tuple[str, str]] = set()
        self.tags: tuple[str, ...] | None = None
        self.image_id: str | None = None
        self.policy: RetryPolicy | None = None
        self.warned = False
        self._registries: dict[tuple[object, ...], RegistryClient] = {}

    def adopt(self, settings: Settings) -> Session:
        """Take this stage's secrets, hook commands and retry budget into the session."""
        for secret in settings.secrets:
            self.console.add_secret(secret)
        if settings.username and settings.token:
            # What a Basic auth header or a docker config file would hold.
            raw = f"{settings.username}:{settings.token}".encode()
            self.console.add_secret(base64.b64encode(raw).decode("ascii"))
        self.hooks.update_commands(settings.hooks)
        if self.policy is None:
            # One budget for the whole command line: a registry that is gone fails it in time.
            self.policy = RetryPolicy(
                attempts=settings.retries,
                budget=settings.timeout,
                base_delay=settings.retry_delay,
            )
        return self

    def retrying(self, what: str, operation: Callable[[], T]) -> T:
        """Run a network operation, retrying transient failures within the session's budget."""
        policy = self.policy or RetryPolicy()
        return policy.call(
            operation, what=what, on_retry=lambda line: self.console.stage("retry", line)
        )

    def engine_for(self, settings: Settings) -> Engine:
        if self.engine is None:
            self.engine = Engine(settings.docker_env)
        return self.engine

    def registry_for(self, settings: Settings) -> RegistryClient:
        """One registry client (one connection, one token) per repository and credentials."""
        from .registry import RegistryClient  # urllib & co. only when the registry is needed

        repository = settings.require_repository()
        key = (repository, settings.username, settings.token)
        if key not in self._registries:
            self._registries[key] = RegistryClient(repository, settings.username, settings.token)
        return self._registries[key]


def session_for(settings: Settings, session: Session | None) -> Session:
    """The given session, or a new one, with this stage's settings adopted."""
    return (session or Session(console=Console(secrets=settings.secrets))).adopt(settings)
