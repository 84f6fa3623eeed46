"""`doctor`: is everything a release needs in order? Each check says ✓, ✗ or ! (a warning
that does not block a release), and for a problem a fix that fits the situation.

Checks never change anything: credentials are checked against the registry without storing
them, the registry is only read. The token is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hubtasks.daemon.credentials import from_docker_store, with_docker_credentials
from hubtasks.errors import ContextLeakError, HubError
from hubtasks.references import DOCKER_HUB, Repository
from hubtasks.settings.envfile import ENV_FILE_NAME, docker_env, read_env_file
from hubtasks.settings.resolve import Settings, load_settings
from hubtasks.ui.console import Check

if TYPE_CHECKING:
    from hubtasks.build.gitinfo import GitState
    from hubtasks.registry.transport import Trust


def _env_check(path: Path) -> Check:
    """Whether `.env` reads and parses, with the same reader (and message) settings use."""
    if not path.is_file():
        return Check(
            ".env",
            None,
            f"no {path}; settings come from the environment only",
            "hubtasks init (writes a .env to fill in)",
        )
    try:
        read_env_file(path)
    except HubError as error:
        return Check(".env", False, str(error), f"edit {path}")
    return Check(".env", True, f"{path} parses")


def _guard(name: str, action: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, action())
    except HubError as error:
        return Check(name, False, str(error), fix)


def run_checks(
    settings_flags: Mapping[str, object] | None = None,
    config: Mapping[str, object] | None = None,
    *,
    cwd: Path | None = None,
    env_file: Path | None = None,
) -> list[Check]:
    """Every check, in the order a release needs them; later checks skip what cannot run.
    `env_file`: the `.env` to read instead of the current folder's."""
    from hubtasks.build.gitinfo import read_git
    from hubtasks.pipeline.session import env_file_warnings

    cwd = cwd or Path.cwd()
    checks: list[Check] = [_env_check(env_file or cwd / ENV_FILE_NAME)]
    try:
        settings: Settings | None = load_settings(
            settings_flags or {}, config or {}, cwd=cwd, env_file=env_file
        )
        checks.append(Check("settings", True, "every value is valid"))
    except HubError as error:
        settings = None
        checks.append(Check("settings", False, str(error)))  # the message names the value
    checks.extend(_daemon_checks(settings))
    if settings is None:
        return checks

    try:
        settings = with_docker_credentials(settings)
    except HubError as error:  # a helper that is missing or fails
        checks.append(Check("Docker credentials", False, str(error)))
    found: Settings = settings

    def required() -> str:
        found.require("login", "push")  # the Dockerfile and context have their own check
        user = (
            f"as {found.username} ({found.source_of('username')})"
            if found.username
            else "with Docker's identity token"
        )
        return f"{found.repository} {user}, token from {found.source_of('token')}"

    checks.append(_guard("required settings", required, ""))  # the message names them
    for unknown in settings.unknown_names:  # ignored by a release: a typo that changes it
        checks.append(Check("setting names", False, unknown, "rename it, or remove it"))
    if settings.token_warning:
        checks.append(Check("token", None, settings.token_warning))
    for warning in env_file_warnings(settings):  # what `inv release` warns about too
        checks.append(Check(".env safety", None, warning))  # the fix is in the message
    git = read_git(settings.cwd)
    checks.append(_tags_check(settings, git))
    checks.append(_build_input_check(settings))
    checks.append(_git_check(git, settings.cwd))

    return checks + _registry_checks(settings) + _destination_checks(settings)


def _destination_checks(settings: Settings) -> list[Check]:
    """Each further destination in HUB_REPOSITORY: its credentials found (its settings, else
    Docker's), its registry reachable and accepting them, as a release checks them."""
    from hubtasks.pipeline.mirror import destinations

    if not settings.mirrors:
        return []
    try:
        others = destinations(settings)
    except HubError as error:  # the credentials of a further registry are missing
        return [Check("destinations", False, str(error))]
    return [check for each in others for check in _registry_checks(each)]


def _daemon_checks(settings: Settings | None) -> list[Check]:
    """The daemon answers (with the settings' DOCKER_* variables, else the environment's);
    then, with HUB_PLATFORMS, which of those platforms it can run."""
    from hubtasks.daemon.engine import Engine

    platform_results: list[Check] = []

    def daemon() -> str:
        env = settings.docker_env if settings else docker_env({}, os.environ)
        engine = Engine(env)
        info = engine.version()
        if settings is not None and settings.platforms:
            local = engine.host.startswith("unix://")
            platform_results.extend(platform_checks(settings.platforms, engine.platform(), local))
        builder, why = engine.builder(settings.builder if settings else "auto")
        platform_results.insert(0, Check("builder", True, f"{builder}: {why}"))
        return (
            f"Docker Engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}) "
            f"at {engine.host}"
        )

    return [_guard("Docker daemon", daemon, "start Docker or set DOCKER_HOST"), *platform_results]


def _trust(settings: Settings) -> tuple[str | None, Trust]:
    """How a release would reach the registry: HUB_INSECURE, else the daemon's answer."""
    from hubtasks.daemon.credentials import insecure_by_daemon, registry_trust
    from hubtasks.daemon.engine import Engine
    from hubtasks.registry.transport import asks_no_trust

    registry = settings.require_repository().registry
    insecure = settings.insecure
    if insecure is None and not asks_no_trust(registry):
        try:
            insecure = insecure_by_daemon(registry, Engine(settings.docker_env).registry_config())
        except HubError:  # no daemon: its own row says so
            insecure = False
    return registry_trust(registry, settings.docker_env, insecure=bool(insecure))


def _registry_checks(settings: Settings) -> list[Check]:
    """Reachable, then the credentials (which also lists the repository's tags)."""
    from hubtasks.pipeline.mirror import own_hint
    from hubtasks.registry.client import RegistryClient

    if not (settings.repository and settings.token):
        return []
    if not (settings.username or settings.identity_token):
        return []
    repository, username, token = settings.repository, settings.username, settings.token
    try:
        base_url, trust = _trust(settings)
    except HubError as error:  # a certs.d folder with a key but no certificate
        return [Check("registry", False, str(error))]
    client = RegistryClient(
        repository,
        username,
        token,
        timeout=15,
        base_url=base_url,
        trust=trust,
        identity_token=settings.identity_token,
    )

    def reachable() -> str:
        return f"{client.base_url}/v2/ answers (HTTP {client.ping()})"

    registry = _guard("registry", reachable, "check HUB_REGISTRY and your network")
    if not registry.ok:
        return [registry]

    def credentials() -> str:
        try:
            client.check_credentials()
        except HubError as error:  # a further registry's names its own settings
            raise own_hint(error, settings) from None
        found = client.tags()
        return (
            f"{repository.registry} accepts {_whose(settings)} token; {repository.path} "
            f"has {len(found)} tag(s)"
        )

    checks = [registry, _guard("credentials", credentials, _credentials_fix(settings))]
    found = _rate_limit_check(settings)  # Docker Hub only (or HUB_API_URL set)
    if found is not None:
        checks.append(found)
    return checks


def _credentials_fix(settings: Settings) -> str:
    """The fix of refused credentials: the setting they came from, or `docker login`."""
    source = settings.source_of("token")
    if source.startswith("HUB_REGISTRY_"):  # a further registry's own settings
        return f"set {source} to a valid password or access token"
    if from_docker_store(settings):  # Docker's stored credentials: HUB_TOKEN is empty
        return f"docker login {settings.registry} again, or set HUB_TOKEN"
    return "set HUB_TOKEN to a valid password or access token"


def _whose(settings: Settings) -> str:
    """Whose token, for people: the user's, or Docker's identity token (it names none)."""
    return f"{settings.username}'s" if settings.username else "Docker's identity"


def _rate_limit_check(settings: Settings) -> Check | None:
    """Docker Hub's pull rate limit for `inv doctor`, or None when the registry is not Docker Hub
    (HUB_API_URL set counts as Docker Hub: then the configured repository is probed)."""
    from hubtasks.dockerhub.client import api_url
    from hubtasks.registry.client import RegistryClient, read_rate_limit
    from hubtasks.registry.ratelimit import PROBE, describe_limit

    if api_url(settings) is None or not (settings.username and settings.token):
        return None
    name = "pull rate limit"
    repository = settings.repository
    if repository is None:
        return None
    if repository.registry == DOCKER_HUB:
        probe, reference = Repository(DOCKER_HUB, PROBE), "latest"
    else:
        probe, reference = repository, (settings.tags or ("latest",))[0]
    client = RegistryClient(probe, settings.username, settings.token, timeout=15)
    try:
        found = read_rate_limit(client, reference)
    except HubError as error:
        return Check(name, None, f"could not read it: {error}", "")
    finally:
        client.close()
    if found is None:
        return Check(
            name, True, f"{repository.registry} sends no rate-limit headers: no pull limit", ""
        )
    if found.remaining == 0:
        return Check(
            name,
            None,
            describe_limit(found),
            "wait for the window to pass, or use an account with a higher limit",
        )
    return Check(name, True, describe_limit(found), "")


_BINFMT = Path("/proc/sys/fs/binfmt_misc")


def platform_checks(
    platforms: tuple[str, ...], native: str, local_daemon: bool, binfmt: Path = _BINFMT
) -> list[Check]:
    """Which requested platforms the daemon can run a `RUN` step for: its own always; another
    when binfmt emulation for it is registered on the daemon's host (readable here only when
    the daemon runs on this machine). COPY-only builds need none, hence warnings."""
    checks = []
    for platform in platforms:
        arch = platform.split("/")[1]
        own_os = native.split("/")[0]
        if platform.split("/")[0] != own_os:  # no emulation helps: a release refuses it
            message = f"the daemon runs {own_os}: it cannot build {platform}"
            checks.append(Check(f"platform {platform}", False, message, "leave it out"))
            continue
        if native.startswith(platform.split("/v")[0]):
            checks.append(Check(f"platform {platform}", True, "the daemon's own platform"))
            continue
        fix = (
            "apt-get install qemu-user-static binfmt-support on the daemon's host, or docker "
            f"run --privileged --rm tonistiigi/binfmt --install {arch}"
        )
        if not local_daemon:
            message = "the daemon is on another host: cannot tell whether it emulates it"
            checks.append(Check(f"platform {platform}", None, message, fix))
        elif _emulates(arch, binfmt):
            checks.append(Check(f"platform {platform}", True, f"binfmt emulation for {arch}"))
        else:
            message = (
                f"no binfmt emulation for {arch}: builds with only COPY/ADD work, RUN steps "
                "will fail"
            )
            checks.append(Check(f"platform {platform}", None, message, fix))
    return checks


_QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386"}


def _emulates(arch: str, root: Path) -> bool:
    entry = root / f"qemu-{_QEMU_NAMES.get(arch, arch)}"
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _tags_check(settings: Settings, git: GitState | None) -> Check:
    """The tags a release would publish; without git or HUB_TAGS, a warning that `release`
    will need --tag (that is no problem for a project that always passes it)."""
    from hubtasks.build.gitinfo import why_no_git
    from hubtasks.pipeline.preflight import resolve_tags

    if not settings.tags and git is None:
        return Check(
            "tags",
            None,
            f"no HUB_TAGS and {settings.cwd} {why_no_git(settings.cwd)}: `release` will need --tag",
            "set HUB_TAGS in .env, or pass --tag each time",
        )
    try:
        return Check("tags", True, ", ".join(resolve_tags(settings, git)))
    except HubError as error:
        dirty = git is not None and git.dirty and not settings.tags
        fix = "commit your changes, or pass --tag or --allow-dirty" if dirty else ""
        return Check("tags", False, str(error), fix)


def _build_input_check(settings: Settings) -> Check:
    """Dockerfile and context, and that the context does not carry the token's `.env`."""
    from hubtasks.pipeline.preflight import check_context

    try:
        settings.require("build")
        check_context(settings)
    except ContextLeakError as error:
        ignore, context = settings.context / ".dockerignore", settings.context.resolve()
        candidates = {settings.context / ENV_FILE_NAME, settings.env_file}
        lines = sorted(
            str(path.resolve().relative_to(context))
            for path in candidates
            if path and path.is_file() and path.resolve().is_relative_to(context)
        )
        fix = " && ".join(f"echo {line} >> {ignore}" for line in lines)
        return Check("Dockerfile and context", False, str(error), fix)
    except HubError as error:
        if not settings.context.is_dir():
            fix = f"mkdir {settings.context}, or set HUB_CONTEXT / --context to the folder to build"
        else:
            fix = f"create {settings.dockerfile}, or set HUB_DOCKERFILE / --dockerfile to its path"
        return Check("Dockerfile and context", False, str(error), fix)
    return Check(
        "Dockerfile and context",
        True,
        f"{settings.dockerfile} in context {settings.context}; .env is excluded",
    )


def _git_check(git: GitState | None, cwd: Path) -> Check:
    from hubtasks.build.gitinfo import why_no_git

    if git is None:
        return Check(
            "git",
            None,
            f"{cwd} {why_no_git(cwd)}: images get no revision, source or created label",
        )
    state = "uncommitted changes" if git.dirty else "clean"
    where = f", tag {git.exact_tag}" if git.exact_tag else ""
    fix = "commit, or pass --tag / --allow-dirty" if git.dirty else ""
    return Check("git", None if git.dirty else True, f"{git.short}{where}, {state}", fix)


def healthy(checks: list[Check]) -> bool:
    return all(check.ok is not False for check in checks)
