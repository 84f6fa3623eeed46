"""`doctor`: is everything a release needs in order? Each check says ✓ or ✗ and how to fix it.

Checks never change anything: credentials are checked with a login that stores nothing, the
registry is only read. The token is never printed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import HubError
from .settings import ENV_FILE_NAME, Settings, load_settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: a warning that does not block a release
    detail: str
    fix: str = ""


def _parse_env_file(path: Path) -> list[int]:
    """Line numbers python-dotenv cannot parse."""
    from dotenv.parser import parse_stream

    with path.open(encoding="utf-8") as stream:
        return [b.original.line for b in parse_stream(stream) if b.error]


def _env_checks(cwd: Path) -> Iterator[Check]:
    path = cwd / ENV_FILE_NAME
    if not path.is_file():
        yield Check(
            ".env",
            None,
            f"no {path}; settings come from the environment only",
            "cp .env.example .env and fill it in",
        )
        return
    try:
        bad = _parse_env_file(path)
    except (OSError, UnicodeDecodeError) as error:
        yield Check(".env", False, f"cannot read {path}: {error}", "fix the file's permissions")
        return
    if bad:
        lines = ", ".join(map(str, bad))
        yield Check(
            ".env",
            False,
            f"{path} has lines python-dotenv cannot parse: {lines}",
            "write each line as KEY=VALUE (quote values with spaces)",
        )
        return
    yield Check(".env", True, f"{path} parses")
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        yield Check(
            ".env permissions", None, f"{path} is readable by other users", f"chmod 600 {path}"
        )


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
    checks: list[Check] = list(_env_checks(cwd))
    try:
        settings: Settings | None = load_settings(settings_flags or {}, config or {}, cwd=cwd)
        checks.append(Check("settings", True, "every value is valid"))
    except HubError as error:
        settings = None
        checks.append(Check("settings", False, str(error), "see .env.example"))

    engine: list[Engine] = []

    def daemon() -> str:
        env = (
            settings.docker_env
            if settings
            else {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
        )
        engine.append(Engine(env))
        info = engine[0].version()
        return (
            f"Docker Engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}) "
            f"at {engine[0].host}"
        )

    checks.append(_guard("Docker daemon", daemon, "start Docker or set DOCKER_HOST"))
    if settings is None:
        return checks

    def required() -> str:
        settings.require("release")
        return f"{settings.repository} as {settings.username}, token set"

    checks.append(_guard("required settings", required, "set them in .env"))
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

        checks.append(_guard("credentials", credentials, "check HUB_USERNAME and HUB_TOKEN"))
    return checks


def healthy(checks: list[Check]) -> bool:
    return all(check.ok is not False for check in checks)
