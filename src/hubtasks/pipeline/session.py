"""A session: what the stages of one command line share, and the one place that runs work
concurrently (`Session.background`: the credential check started ahead, registry requests a
few at a time, connections opened while the daemon pushes)."""

from __future__ import annotations

import base64
import contextlib
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from hubtasks.build.gitinfo import is_tracked
from hubtasks.daemon.credentials import from_docker_store
from hubtasks.pipeline.hooks import Hooks
from hubtasks.pipeline.ledger import Ledger
from hubtasks.retry import RetryPolicy
from hubtasks.settings.envfile import read_env_file
from hubtasks.settings.resolve import Settings
from hubtasks.ui.console import Console

if TYPE_CHECKING:
    from pathlib import Path

    from hubtasks.pipeline.protocols import Daemon, Registry
    from hubtasks.registry.transport import Trust

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
        engine: Daemon | None = None,
        registry_factory: Callable[[Settings], Registry] | None = None,
    ) -> None:
        self.console = console or Console()
        if context is None:  # the Python API, not a task: keep Invoke's and Docker's debug
            from invoke import Context  # records out of the caller's (nox's) DEBUG logs

            from hubtasks.ui.loggers import quiet_libraries

            quiet_libraries()
            context = Context()
        self.hooks = Hooks(hook_commands or {}, context, self.console.stage, self.console.line)
        self.engine: Daemon | None = engine
        # Whether this command uses the daemon, which then says how to reach a registry.
        self.daemon_trust = False
        self._registry_factory = registry_factory
        self._pool: ThreadPoolExecutor | None = None
        self.logged_in: set[tuple[str, str]] = set()
        self.tags: tuple[str, ...] | None = None
        self.image_id: str | None = None
        # Every tag written to the registry by this command line, as it landed (what an
        # interruption reports as already pushed), and the read-backs that verified some.
        self.ledger = Ledger()
        self.policy: RetryPolicy | None = None
        self.warned = False
        self._registries: dict[tuple[object, ...], Registry] = {}
        self._checks: dict[tuple[str, str], Future[Any]] = {}
        self._listed: dict[tuple[str, str], Future[list[str]]] = {}
        self._push_checks: dict[tuple[str, str], Future[Registry]] = {}
        self._forks: dict[int, list[Registry]] = {}
        self._warming: dict[int, Future[None]] = {}

    def adopt(self, settings: Settings) -> Session:
        """Take this stage's secrets, hook commands and retry budget into the session; the
        first time, say what is wrong with the `.env` that holds the token (readable by
        others, tracked by git) — for a task and for the Python API alike."""
        self.console.configure(progress=settings.progress)  # HUB_PROGRESS, .env's too
        if not self.warned:  # reads .env's mode and asks git
            self.warned = True
            for warning in env_file_warnings(settings):
                self.console.warn(warning)
            for mistake in (*settings.unknown_names, settings.token_warning):
                if mistake:
                    self.console.warn(mistake)
        for secret in settings.secrets:
            self.console.add_secret(secret)
        if settings.username and settings.token:
            # What a Basic auth header or a docker config file would hold.
            raw = f"{settings.username}:{settings.token}".encode()
            self.console.add_secret(base64.b64encode(raw).decode("ascii"))
        self.hooks.update_commands(settings.hooks)
        if not from_docker_store(settings):  # Docker's keychain secret is not the hooks' to read
            self.hooks.token = self.hooks.token or settings.token
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

    def background(self, operation: Callable[[], T]) -> Future[T]:
        """Run `operation` on the session's worker pool; its outcome arrives in the future.
        Every piece of work here is bounded by a network timeout, which also bounds how
        long the interpreter waits for a running one at exit."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hubtasks")
        return self._pool.submit(operation)

    def import_sdk_ahead(self, settings: Settings) -> None:
        """Import the Docker SDK on a worker (~50 ms of Python) while this thread does
        something else (git, the settings); `engine_for` then finds it imported."""
        if self.engine is None:
            self.background(functools.partial(_import_sdk, settings.docker_env))

    def engine_for(self, settings: Settings) -> Daemon:
        if self.engine is None:
            from hubtasks.daemon.engine import Engine  # docker-py only when the daemon is needed

            self.engine = Engine(settings.docker_env)
        return self.engine

    def registry_for(self, settings: Settings) -> Registry:
        """One registry client (one connection, one token) per repository and credentials."""
        repository = settings.require_repository()
        key = (repository, settings.username, settings.token)
        if key not in self._registries:
            if self._registry_factory is not None:
                self._registries[key] = self._registry_factory(settings)
            else:
                from hubtasks.registry.client import RegistryClient  # urllib & co. only when needed

                base_url, trust = self.trust_for(settings)
                self._registries[key] = RegistryClient(
                    repository,
                    settings.username,
                    settings.token,
                    deadline=self.policy.remaining if self.policy else None,
                    base_url=base_url,
                    trust=trust,
                    identity_token=settings.identity_token,
                )
        return self._registries[key]

    def trust_for(self, settings: Settings) -> tuple[str | None, Trust]:
        """How the repository's registry is reached, as the daemon reaches it: HUB_INSECURE
        when set; else, for a command that uses the daemon (`daemon_trust`), the daemon's
        own answer (`GET /info`); its certs.d certificates in any case. Docker Hub and
        loopback registries need no question."""
        from hubtasks.daemon.credentials import insecure_by_daemon, registry_trust
        from hubtasks.registry.transport import asks_no_trust

        registry = settings.require_repository().registry
        insecure = settings.insecure
        if insecure is None and self.daemon_trust and not asks_no_trust(registry):
            config = self.engine_for(settings).registry_config()
            insecure = insecure_by_daemon(registry, config)
        return registry_trust(registry, settings.docker_env, insecure=bool(insecure))

    # Work started ahead of the stage that needs it: on a real network each of these is a
    # round trip or two that can happen while something else (imports, the daemon, a push)
    # keeps this process busy.

    @staticmethod
    def login_key(settings: Settings) -> tuple[str, str]:
        """Whose login, where: a session checks each pair once (`logged_in`)."""
        return settings.require_repository().registry, settings.username or ""

    def check_ahead(self, settings: Settings, *, list_tags: bool = False) -> None:
        """Start checking the credentials in the background; `login` takes the answer as
        its first attempt when it comes to it (after its hooks). With `list_tags` the check
        is the repository's tag list (`login_listing_tags`), which `listed_tags` hands on:
        one round trip instead of two."""
        key = self.login_key(settings)
        if not (settings.username and settings.token) or key in self.logged_in:
            return
        if key in self._checks:
            return
        client = self.registry_for(settings)
        if list_tags:
            listing = self.background(client.login_listing_tags)
            self._checks[key] = self._listed[key] = listing
        else:
            self._checks[key] = self.background(client.check_credentials)

    def listed_tags(self, settings: Settings) -> list[str] | None:
        """The tag list the credential check read (`check_ahead(list_tags=True)`), once;
        None when there is none (or that attempt failed and login asked again)."""
        listing = self._listed.pop(self.login_key(settings), None)
        if listing is None or not listing.done() or listing.exception() is not None:
            return None
        return listing.result()

    def credential_check(self, settings: Settings) -> Callable[[], None]:
        """The check `login` retries: the head start's outcome first (a transient failure
        there is retried like any other), then the registry asked again."""
        ahead = self._checks.pop(self.login_key(settings), None)
        client = self.registry_for(settings)
        return _first_then(ahead, lambda _: None, client.check_credentials)

    def check_push_ahead(self, settings: Settings) -> None:
        """Start asking whether the token may push (`check_push_access` on a client of its
        own connection, alongside the credential check; the upload it opens is cancelled
        without waiting), for `push_access` to take when the plan says something will be
        written. Wrong credentials fail it too, but login reports them first."""
        key = self.login_key(settings)
        if not (settings.username and settings.token) or key in self._push_checks:
            return
        client = self.registry_for(settings)

        def probe() -> Registry:
            fork = client.fork()  # with the client's login when it has one already
            fork.check_push_access(cancel_with=self.background)
            return fork

        self._push_checks[key] = self.background(probe)

    def push_access(self, settings: Settings) -> Callable[[], None]:
        """The push-access check a release retries: the head start's outcome first (its
        client's login — a token granted push — is taken over), then the registry asked
        again."""
        ahead = self._push_checks.pop(self.login_key(settings), None)
        client = self.registry_for(settings)
        return _first_then(ahead, client.share_login, client.check_push_access)

    def warm_forks(self, client: Registry, count: int) -> None:
        """Open `count` more connections to `client`'s registry in the background, for
        `forks` to hand out later (verifying or copying several tags at once)."""
        key = id(client)
        if count <= len(self._forks.get(key, ())) or key in self._warming:
            return

        def open_forks() -> None:
            pool = self._forks.setdefault(key, [])
            while len(pool) < count:
                fork = client.fork()
                fork.connect()
                pool.append(fork)

        self._warming[key] = self.background(open_forks)

    def forks(self, client: Registry, count: int) -> list[Registry]:
        """`count` clients of their own connections, with `client`'s login, kept for the
        whole session (warmed-up ones first)."""
        key = id(client)
        warming = self._warming.pop(key, None)
        if warming is not None:
            # Whatever failed in the warm-up happens again, with its own error, when the
            # connection is opened where it is used.
            with contextlib.suppress(Exception):
                warming.result()
        pool = self._forks.setdefault(key, [])
        while len(pool) < count:
            pool.append(client.fork())
        return pool[:count]


def _first_then(
    ahead: Future[T] | None, take: Callable[[T], None], again: Callable[[], None]
) -> Callable[[], None]:
    """An operation to retry whose first attempt was started ahead: the first call takes
    that outcome (`take` its result; its failure raises, to be retried like any other), the
    later calls run `again`."""
    pending = [ahead] if ahead is not None else []

    def attempt() -> None:
        if pending:
            take(pending.pop().result())
            return
        again()

    return attempt


def env_file_warnings(settings: Settings) -> list[str]:
    """Warnings about the `.env` that holds the token: readable by others, tracked by git."""
    path = settings.env_file
    if path is None or not path.is_file() or not holds_token(path):
        return []
    warnings = []
    mode = path.stat().st_mode
    if mode & 0o077:
        warnings.append(
            f"{path} holds HUB_TOKEN and other users may read it (mode {mode & 0o777:o}); "
            f"chmod 600 {path}"
        )
    if is_tracked(path):
        warnings.append(
            f"{path} holds HUB_TOKEN and git tracks it; `git rm --cached {path.name}`, add it "
            "to .gitignore, and rotate the token if it was ever pushed"
        )
    return warnings


def holds_token(path: Path) -> bool:
    """Whether the env file at `path` sets HUB_TOKEN."""
    return bool(read_env_file(path).get("HUB_TOKEN"))  # parsed once, see read_env_file


def _import_sdk(environment: Mapping[str, str]) -> None:
    from hubtasks.daemon.sdk import import_sdk

    import_sdk(environment.get("DOCKER_HOST", ""))


def session_for(settings: Settings, session: Session | None) -> Session:
    """The given session, or a new one, with this stage's settings adopted."""
    return (session or Session(console=Console(secrets=settings.secrets))).adopt(settings)
