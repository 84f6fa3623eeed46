"""Settings: one resolver for every source, validated before any side effect.

Precedence, highest first: command-line flags > process environment > `.env` in the current
directory > Invoke config (`hub.*`, e.g. `invoke.yaml`) > defaults. Each value is parsed by its
key's kind (`keys.KINDS`, one parser each below). Nothing here talks to Docker;
`Settings.require` says what a stage still lacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtasks.errors import ConfigError
from hubtasks.references import (
    DOCKER_HUB,
    Repository,
)
from hubtasks.settings.destinations import read_registry_credentials, registry_secrets
from hubtasks.settings.envfile import ENV_FILE_NAME, docker_env, read_env_file
from hubtasks.settings.keys import CACHE_AUTO, HOOK_NAMES, KEYS, KEYS_BY_NAME, Key
from hubtasks.settings.mistakes import spaced_token, unknown_names
from hubtasks.settings.parsers import PARSERS, Parsed, given, parse_epoch

# NAME=VALUE pairs: the name each kind of pair takes.


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a stage needs, already validated. Build it with `resolve_settings`."""

    registry: str = DOCKER_HUB
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    repository: Repository | None = None
    # Further destinations (HUB_REPOSITORY's later words) and the HUB_REGISTRY_<HOST>_…
    # credentials read for them (settings.destinations).
    mirrors: tuple[Repository, ...] = ()
    registry_credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    tags: tuple[str, ...] = ()
    dockerfile: Path = Path("Dockerfile")
    context: Path = Path(".")
    build_args: Mapping[str, str] = field(default_factory=dict)
    semver: bool = False
    latest: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    platforms: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = (CACHE_AUTO,)
    source_date_epoch: int | None = None
    hooks: Mapping[str, str] = field(default_factory=dict)
    retries: int = 5
    timeout: float = 120.0
    retry_delay: float = 1.0
    cwd: Path = Path(".")
    env_file: Path | None = None
    docker_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)
    api_url: str | None = None
    readme: Path | None = None
    description: str | None = None
    visibility: str = "public"
    describe_after_release: bool = False
    progress: str = "auto"
    insecure: bool | None = None
    # `token` is Docker's identity token (an OAuth2 refresh token), not a password: set only
    # by `daemon.credentials.with_docker_credentials`, never by a setting.
    identity_token: bool = False
    # What looks mistyped (`settings.mistakes`): HUB_* names that are no setting, one line each,
    # and a token with spaces around it. A command line warns once; doctor reports them.
    unknown_names: tuple[str, ...] = ()
    token_warning: str | None = None
    builder: str = "auto"
    target: str | None = None
    secret_specs: tuple[str, ...] = ()  # --secret as given; values are read at build time
    ssh: tuple[str, ...] = ()
    network: str | None = None
    no_cache: bool = False
    pull: bool = False

    def require_repository(self) -> Repository:
        if self.repository is None:
            raise ConfigError(
                f"missing setting: {self._typo_of('HUB_REPOSITORY (or --repository)')}"
            )
        return self.repository

    def _env_file_words(self) -> str:
        """The `.env` read, or the one looked for (and that `hubtasks init` writes one)."""
        if self.env_file is not None:
            return str(self.env_file)
        return f"{self.cwd / ENV_FILE_NAME} (there is none: `hubtasks init` writes one to fill in)"

    def _typo_of(self, missing: str) -> str:
        """`missing` ("HUB_REPOSITORY (or --repository)"), and the unknown name set instead
        that is closest to it, if any ("HUB_REPOSITRY in .env is not …; did you mean …?")."""
        name = missing.split()[0]
        typo = next((m for m in self.unknown_names if m.endswith(f"mean {name}?")), None)
        return f"{missing} ({typo})" if typo else missing

    def source_of(self, name: str) -> str:
        return self.sources.get(name, KEYS_BY_NAME[name].env)

    @property
    def secrets(self) -> tuple[str, ...]:
        own = (self.token,) if self.token else ()
        return (*own, *registry_secrets(self.registry_credentials))

    @property
    def auth_config(self) -> dict[str, str]:
        """Credentials in the form the Docker API takes, for an explicit push or lookup."""
        if not (self.token and self.repository and (self.username or self.identity_token)):
            raise ConfigError("internal: credentials requested before Settings.require('login')")
        if self.identity_token:  # the daemon trades it at the token service itself
            return {"identitytoken": self.token, "serveraddress": self.repository.auth_key}
        return {
            "username": self.username or "",
            "password": self.token,
            "serveraddress": self.repository.auth_key,
        }

    def require(self, *stages: str) -> None:
        """Raise `ConfigError` naming every setting the given stages need but lack."""
        missing: list[str] = []
        # The credential check reads the repository's tag list: login needs one too.
        needs_repository = any(s in ("login", "build", "tag", "push", "release") for s in stages)
        needs_credentials = any(s in ("login", "push", "release") for s in stages)
        if needs_repository and self.repository is None:
            missing.append("HUB_REPOSITORY (or --repository)")
        if needs_credentials and not self.username and not self.identity_token:
            missing.append("HUB_USERNAME")
        if needs_credentials and not self.token:
            missing.append("HUB_TOKEN")
        if missing:
            missing = [self._typo_of(item) for item in missing]
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
                f"set {'them' if len(missing) > 1 else 'it'} in {self._env_file_words()} or in "
                "the environment"
                + (
                    f", or log in with `docker login {self.registry}` (hubtasks uses Docker's "
                    "credentials when HUB_TOKEN is empty)"
                    if any(item.startswith("HUB_TOKEN") for item in missing)
                    else ""
                )
            )
        if any(s in ("build", "release") for s in stages):
            if not self.context.is_dir():
                raise ConfigError(
                    f"build context '{self.context}' ({self.source_of('context')}) is not a "
                    "folder; set HUB_CONTEXT or --context to the folder to build"
                )
            if not self.dockerfile.is_file():
                raise ConfigError(
                    f"Dockerfile '{self.dockerfile}' ({self.source_of('dockerfile')}) not found; "
                    "set HUB_DOCKERFILE or --dockerfile to its path"
                )


def load_settings(
    flags: Mapping[str, object] | None = None,
    config: Mapping[str, object] | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
) -> Settings:
    """Resolve settings from the real sources: os.environ and `env_file` (else `./.env`)."""
    cwd = Path.cwd() if cwd is None else cwd
    env_path = env_file or cwd / ENV_FILE_NAME
    dotenv = read_env_file(env_path) if env_path.is_file() else {}
    return resolve_settings(
        flags=flags or {},
        environ=os.environ if environ is None else environ,
        dotenv=dotenv,
        config=config or {},
        cwd=cwd,
        env_file=env_path if env_path.is_file() else None,
    )


def _pick(
    key: Key,
    flags: Mapping[str, object],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None],
    config: Mapping[str, object],
) -> tuple[object, str]:
    """The winning value of one key and a description of where it came from."""
    if given(flags.get(key.name)):
        flag = key.flag or key.name
        if flags[key.name] is False:  # `--no-semver`
            flag = f"--no-{flag.removeprefix('--')}"
        return flags[key.name], flag
    if given(environ.get(key.env)):
        return environ[key.env], f"{key.env} in the environment"
    if given(dotenv.get(key.env)):
        return dotenv[key.env], f"{key.env} in .env"
    if given(config.get(key.name)):
        return config[key.name], f"hub.{key.name} in Invoke config"
    return key.default, "default"


def resolve_settings(
    *,
    flags: Mapping[str, object],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None],
    config: Mapping[str, object],
    cwd: Path,
    env_file: Path | None = None,
) -> Settings:
    """Merge the sources by precedence and parse each value by its key's kind. Pure: no I/O."""
    unknown = sorted(set(flags) - set(KEYS_BY_NAME))
    if unknown:  # a misspelt name through the Python API (`tag` for `tags`) is not ignored
        raise ConfigError(
            f"unknown setting {', '.join(repr(n) for n in unknown)}; settings are "
            f"{', '.join(key.name for key in KEYS)}"
        )
    _refuse_empty_flag_values(flags)
    picked = {key.name: _pick(key, flags, environ, dotenv, config) for key in KEYS}
    parsed = Parsed(cwd=cwd, sources={name: source for name, (_, source) in picked.items()})
    for key in KEYS:  # in table order: `repository` reads the parsed registry and username
        value, source = picked[key.name]
        parsed.values[key.name] = PARSERS[key.kind](key, value, source, parsed)
    fields: dict[str, Any] = {
        key.attribute: parsed.values[key.name] for key in KEYS if key.kind != "hook"
    }
    repositories = fields["repository"]
    fields["repository"] = repositories[0] if repositories else None
    fields["mirrors"] = repositories[1:]
    if repositories:  # a repository that names its registry: see _repositories
        fields["registry"] = repositories[0].registry
    return Settings(
        **fields,
        hooks={name: str(hook) for name in HOOK_NAMES if (hook := parsed.values[name]) is not None},
        source_date_epoch=parse_epoch(
            environ.get("SOURCE_DATE_EPOCH") or dotenv.get("SOURCE_DATE_EPOCH")
        ),
        cwd=cwd,
        env_file=env_file,
        docker_env=docker_env(dotenv, environ),
        sources=parsed.sources,
        registry_credentials=read_registry_credentials(environ, dotenv),
        unknown_names=tuple(
            map(str, unknown_names([k.env for k in KEYS], environ, dotenv, config))
        ),
        token_warning=spaced_token(fields["token"], parsed.sources["token"]),
    )


def _refuse_empty_flag_values(flags: Mapping[str, object]) -> None:
    """A repeatable flag given with an empty value (`--platform ""`, or with none: `-p -n`,
    `--platform $UNSET`) is refused, not skipped. (Tags, build arguments and labels say it in
    their own words when their values are read.)"""
    for key in KEYS:
        value = flags.get(key.name)
        repeatable = key.kind in ("list", "repositories") and key.name != "tags"
        if not repeatable or not isinstance(value, list | tuple):
            continue
        if any(not str(item).strip() for item in value):
            raise ConfigError(
                f"{key.flag}: given without a value (an empty variable?); give one or leave "
                "the flag out"
            )
