"""`doctor`: is everything a release needs in order? Each check says ✓ or ✗ and how to fix it.

Checks never change anything: credentials are checked with a login that stores nothing, the
registry is only read. The token is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import HubError
from .settings import ENV_FILE_NAME, Settings, load_settings, read_env_file


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: a warning that does not block a release
    detail: str
    fix: str = ""


def _env_check(cwd: Path) -> Check:
    """Whether `.env` reads and parses, with the same reader (and message) settings use."""
    path = cwd / ENV_FILE_NAME
    if not path.is_file():
        return Check(
            ".env",
            None,
            f"no {path}; settings come from the environment only",
            "cp .env.example .env and fill it in",
        )
    try:
        read_env_file(path)
    except HubError as error:
        return Check(".env", False, str(error), "edit .env (see .env.example)")
    return Check(".env", True, f"{path} parses")


def _guard(name: str, action: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, action())
    except HubError as error:
        return Check(name, False, str(error), fix)


def run_checks(
    settings_flags: dict | None = None, config: dict | None = None, *, cwd: Path | None = None
) -> list[Check]:
    """Every check, in the order a release needs them; later checks skip what cannot run."""
    from . import api
    from .engine import Engine
    from .gitinfo import read_git
    from .registry import RegistryClient

    cwd = cwd or Path.cwd()
    checks: list[Check] = [_env_check(cwd)]
    try:
        settings: Settings | None = load_settings(settings_flags or {}, config or {}, cwd=cwd)
        checks.append(Check("settings", True, "every value is valid"))
    except HubError as error:
        settings = None
        checks.append(Check("settings", False, str(error), "see .env.example"))

    def daemon() -> str:
        env = (
            settings.docker_env
            if settings
            else {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
        )
        engine = Engine(env)
        info = engine.version()
        return (
            f"Docker Engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}) "
            f"at {engine.host}"
        )

    checks.append(_guard("Docker daemon", daemon, "start Docker or set DOCKER_HOST"))
    if settings is None:
        return checks

    def required() -> str:
        settings.require("release")
        return f"{settings.repository} as {settings.username}, token set"

    checks.append(_guard("required settings", required, "set them in .env"))
    for warning in api.env_file_warnings(settings):  # what `inv release` warns about too
        checks.append(Check(".env safety", None, warning))  # the fix is in the message
    git = read_git(settings.cwd)

    def tags() -> str:
        return ", ".join(api.resolve_tags(settings, git))

    checks.append(_guard("tags", tags, "pass --tag, set HUB_TAGS, or commit your changes"))

    def build_input() -> str:
        settings.require("build")
        api.check_context(settings)
        return f"{settings.dockerfile} in context {settings.context}; .env is excluded"

    checks.append(_guard("Dockerfile and context", build_input, "see the message"))
    if git is None:
        checks.append(
            Check(
                "git",
                None,
                "not a git work tree: no default tag, no revision label",
                "git init, or always pass --tag",
            )
        )
    else:
        state = "uncommitted changes" if git.dirty else "clean"
        where = f", tag {git.exact_tag}" if git.exact_tag else ""
        checks.append(
            Check(
                "git",
                None if git.dirty else True,
                f"{git.short}{where}, {state}",
                "commit, or pass --tag / --allow-dirty" if git.dirty else "",
            )
        )

    if not (settings.repository and settings.username and settings.token):
        return checks
    repository, username, token = settings.repository, settings.username, settings.token

    client = RegistryClient(repository, username, token, timeout=15)

    def reachable() -> str:
        return f"{client.base_url}/v2/ answers (HTTP {client.ping()})"

    registry = _guard("registry", reachable, "check HUB_REGISTRY and your network")
    checks.append(registry)
    if registry.ok:

        def credentials() -> str:
            client.check_credentials()
            found = client.tags()
            return (
                f"{repository.registry} accepts {username}'s token; {repository.path} "
                f"has {len(found)} tag(s)"
            )

        checks.append(
            _guard("credentials", credentials, "set HUB_TOKEN to a valid password or access token")
        )
        from .ratelimit import doctor_check  # Docker Hub only (or HUB_API_URL set)

        found = doctor_check(settings)
        if found is not None:
            checks.append(Check(*found))
    return checks


def healthy(checks: list[Check]) -> bool:
    return all(check.ok is not False for check in checks)
