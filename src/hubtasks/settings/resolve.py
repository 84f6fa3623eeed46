"""Settings: one resolver for every source, validated before any side effect.

Precedence, highest first: command-line flags > process environment > `.env` in the current
directory > Invoke config (`hub.*`, e.g. `invoke.yaml`) > defaults. Each value is parsed by its
key's kind (`keys.KINDS`, one parser each below). Nothing here talks to Docker;
`Settings.require` says what a stage still lacks.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtasks.errors import ConfigError
from hubtasks.platforms import normalize_platform
from hubtasks.references import (
    DOCKER_HUB,
    Repository,
    names_registry,
    normalize_registry,
    parse_pull_reference,
    parse_repository,
    validate_tag,
)
from hubtasks.settings.destinations import read_registry_credentials, registry_secrets
from hubtasks.settings.envfile import ENV_FILE_NAME, docker_env, read_env_file
from hubtasks.settings.keys import CACHE_AUTO, CACHE_NONE, HOOK_NAMES, KEYS, KEYS_BY_NAME, Key
from hubtasks.settings.mistakes import spaced_token, unknown_names

# NAME=VALUE pairs: the name each kind of pair takes.
_PAIR_NAMES = {
    "build argument": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "label": re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*"),
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


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
                f"set them in {self._env_file_words()} or in the environment"
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


def _given(value: object) -> bool:
    # A yes/no flag left off arrives as None; `--no-semver` arrives as False and wins.
    if value is None:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | dict):
        return len(value) > 0
    return True


def _from_flag(source: str, key: Key) -> bool:
    return source == (key.flag or key.name)


def _pick(
    key: Key,
    flags: Mapping[str, object],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None],
    config: Mapping[str, object],
) -> tuple[object, str]:
    """The winning value of one key and a description of where it came from."""
    if _given(flags.get(key.name)):
        flag = key.flag or key.name
        if flags[key.name] is False:  # `--no-semver`
            flag = f"--no-{flag.removeprefix('--')}"
        return flags[key.name], flag
    if _given(environ.get(key.env)):
        return environ[key.env], f"{key.env} in the environment"
    if _given(dotenv.get(key.env)):
        return dotenv[key.env], f"{key.env} in .env"
    if _given(config.get(key.name)):
        return config[key.name], f"hub.{key.name} in Invoke config"
    return key.default, "default"


def _as_list(value: object, *, split: str, source: str = "setting") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        if split == "shell":
            try:
                return shlex.split(value)
            except ValueError as error:
                raise ConfigError(f"{source}: cannot split '{value}': {error}") from None
        return [item for item in re.split(r"[\s,]+", value) if item]
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, Iterable):
        items: list[str] = []
        for item in value:
            items.extend(
                _as_list(item, split=split, source=source) if split != "shell" else [str(item)]
            )
        return items
    return [str(value)]


def _parse_pairs(
    items: list[str], source: str, what: str, name_re: re.Pattern[str]
) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name_re.fullmatch(name):
            raise ConfigError(f"{source}: '{item}' is not a {what}; write it as NAME=VALUE")
        pairs[name] = value
    return pairs


def _parse_bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{source}: '{value}' is not a yes/no value; use true or false")


def _parse_number(value: object, source: str, *, integer: bool, minimum: float) -> float:
    text = str(value).strip()
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{source}: '{value}' is not {kind}") from None
    if number < minimum or number != number or number == float("inf"):
        raise ConfigError(f"{source}: {value} is out of range (at least {minimum:g})")
    return number


def _parse_epoch(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    if not re.fullmatch(r"[0-9]+", value.strip()):
        raise ConfigError(
            f"SOURCE_DATE_EPOCH: '{value}' is not a number of seconds since 1970-01-01"
        )
    if int(value.strip()) > _LAST_EPOCH:  # the OCI created label is a year of four digits
        raise ConfigError(
            f"SOURCE_DATE_EPOCH: '{value}' is after 9999-12-31T23:59:59Z; give the commit "
            "time in seconds since 1970-01-01 (git log -1 --format=%ct)"
        )
    return int(value.strip())


_LAST_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_-]+(/[a-z0-9.]+)?")


def _platform(text: str, source: str) -> str:
    """`linux/arm64`, `linux/arm/v7`: lower case and normalised as BuildKit names platforms
    (`linux/x86_64` is `linux/amd64`, `linux/arm64/v8` is `linux/arm64`)."""
    value = text.strip().lower()
    if not _PLATFORM.fullmatch(value):
        raise ConfigError(
            f"{source}: '{text}' is not a platform; write it as os/arch[/variant], e.g. "
            "linux/amd64 or linux/arm64"
        )
    return normalize_platform(value)


def _parse_platforms(value: object, source: str) -> tuple[str, ...]:
    """Each platform once: a second name of one platform (`linux/arm64/v8` after
    `linux/arm64`, or the same name twice) is refused, not folded into one build."""
    found: dict[str, str] = {}
    for item in _as_list(value, split="words"):
        normal = _platform(item, source)
        if normal in found:
            raise ConfigError(
                f"{source}: '{item.strip()}' names {normal} again (after '{found[normal]}'; "
                "platform names are normalised as BuildKit does: x86_64 is amd64, aarch64 and "
                "arm64/v8 are arm64, armhf is arm/v7); name each platform once"
            )
        found[normal] = item.strip()
    return tuple(found)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _parse_cache_from(value: object, source: str) -> tuple[str, ...]:
    """`auto`, `none`, or image references (a bare word is a tag of the repository)."""
    items = _dedupe(_as_list(value, split="words", source=source)) or (CACHE_AUTO,)
    words = [item for item in items if item in (CACHE_AUTO, CACHE_NONE)]
    if words and len(items) > 1:
        raise ConfigError(
            f"{source}: '{words[0]}' cannot be combined with image references; give either "
            f"{CACHE_AUTO}, {CACHE_NONE} or the images"
        )
    for item in items:
        if words:
            break
        if any(mark in item for mark in "/:@"):
            parse_pull_reference(item, source=source)
        else:
            validate_tag(item, source=source)
    return items


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
    parsed = _Parsed(cwd=cwd, sources={name: source for name, (_, source) in picked.items()})
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
        source_date_epoch=_parse_epoch(
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


# --- one parser per kind --------------------------------------------------------------------


@dataclass
class _Parsed:
    """What the parsers share: the current folder, every key's source, the values so far."""

    cwd: Path
    sources: Mapping[str, str]
    values: dict[str, object] = field(default_factory=dict)


def _text(key: Key, value: object, source: str, parsed: _Parsed) -> str | None:
    return None if value is None else str(value).strip() or None


def _secret(key: Key, value: object, source: str, parsed: _Parsed) -> str | None:
    # As written but for line breaks (a pasted secret's, never a token's): spaces may belong to
    # a password, and a warning says they are there (`settings.mistakes.spaced_token`).
    return str(value).strip("\r\n") if _given(value) else None


def _registry(key: Key, value: object, source: str, parsed: _Parsed) -> str:
    return normalize_registry(_text(key, value, source, parsed) or DOCKER_HUB, source=source)


def _repositories(key: Key, value: object, source: str, parsed: _Parsed) -> tuple[Repository, ...]:
    """The repositories: the first in the registry, the others where they say (a further
    destination without a host is in the configured registry). A repository that names its
    registry wins over HUB_REGISTRY's default (Docker Hub), not over a registry given
    explicitly."""
    texts = _as_list(value, split="words", source=source)
    registry = parsed.values["registry"] if parsed.sources["registry"] != "default" else None
    explicit = registry if isinstance(registry, str) else None
    username = parsed.values["username"]
    if len(texts) > 1:  # an error names the word and the whole setting: 'Bad' of 'Bad Name'
        source = f"{source} ('{' '.join(texts)}')"
    found: dict[Repository, None] = {}
    for index, text in enumerate(texts):
        repository = parse_repository(
            text,
            registry=explicit if index == 0 or not names_registry(text) else None,
            username=username if isinstance(username, str) else None,
            source=source,
        )
        found[repository] = None
    return tuple(found)


def _list(key: Key, value: object, source: str, parsed: _Parsed) -> tuple[str, ...]:
    return _LIST_ITEMS[key.item](key, value, source)


def _pairs(key: Key, value: object, source: str, parsed: _Parsed) -> dict[str, str]:
    """NAME=VALUE settings (build arguments, labels): shell words, each a pair."""
    items = _as_list(value, split="shell", source=source)
    return _parse_pairs(items, source, key.item, _PAIR_NAMES[key.item])


def _bool(key: Key, value: object, source: str, parsed: _Parsed) -> bool | None:
    if key.default is None and not _given(value):
        return None  # "not said": the caller asks someone else (HUB_INSECURE: the daemon)
    return _parse_bool(value, source)


def _int(key: Key, value: object, source: str, parsed: _Parsed) -> int:
    return int(_parse_number(value, source, integer=True, minimum=key.minimum))


def _number(key: Key, value: object, source: str, parsed: _Parsed) -> float:
    return _parse_number(value, source, integer=False, minimum=key.minimum)


def _path(key: Key, value: object, source: str, parsed: _Parsed) -> Path | None:
    text = _text(key, value, source, parsed) or key.default
    return parsed.cwd / str(text) if text else None


def _url(key: Key, value: object, source: str, parsed: _Parsed) -> str | None:
    return _parse_url(_text(key, value, source, parsed), source)


def _choice(key: Key, value: object, source: str, parsed: _Parsed) -> str:
    return _parse_choice(_text(key, value, source, parsed), source, key.choices)


def _hook(key: Key, value: object, source: str, parsed: _Parsed) -> str | None:
    return str(value) if _given(value) else None


PARSERS: dict[str, Callable[[Key, object, str, _Parsed], object]] = {
    "text": _text,
    "secret": _secret,
    "registry": _registry,
    "repositories": _repositories,
    "list": _list,
    "pairs": _pairs,
    "bool": _bool,
    "int": _int,
    "number": _number,
    "path": _path,
    "url": _url,
    "choice": _choice,
    "hook": _hook,
}


def _tags(key: Key, value: object, source: str) -> tuple[str, ...]:
    """A flag is one tag as typed; a setting may list several, comma or space separated."""
    if _from_flag(source, key) and isinstance(value, list | tuple):
        raw_tags = [str(item).strip() for item in value]
    else:
        raw_tags = _as_list(value, split="words")
    return _dedupe(validate_tag(tag, source=source) for tag in raw_tags)


def _platforms(key: Key, value: object, source: str) -> tuple[str, ...]:
    return _parse_platforms(value, source)


# A list's items, by what they are (`Key.item`).
_LIST_ITEMS: dict[str, Callable[[Key, object, str], tuple[str, ...]]] = {
    "tag": _tags,
    "platform": _platforms,
    "image": lambda key, value, source: _parse_cache_from(value, source),
}


def _parse_url(value: str | None, source: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
        raise ConfigError(f"{source}: '{value}' is not an http(s) URL, e.g. https://hub.docker.com")
    return value.rstrip("/")


def _parse_choice(value: str | None, source: str, choices: tuple[str, ...]) -> str:
    chosen = (value or choices[0]).lower()
    if chosen not in choices:
        raise ConfigError(f"{source}: '{value}' is not one of {', '.join(choices)}")
    return chosen
