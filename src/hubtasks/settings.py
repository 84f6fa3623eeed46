"""Settings: one resolver for every source, validated before any side effect.

Precedence, highest first: command-line flags > process environment > `.env` in the current
directory > Invoke config (`hub.*`, e.g. `invoke.yaml`) > defaults. Nothing here talks to
Docker; `Settings.require` says what a stage still lacks.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .hooks import HOOK_NAMES
from .references import (
    DOCKER_HUB,
    Repository,
    normalize_registry,
    parse_image_reference,
    parse_repository,
    validate_tag,
)

ENV_FILE_NAME = ".env"
# HUB_CACHE_FROM's words besides image references (hubtasks/cache.py decides "auto").
CACHE_AUTO, CACHE_NONE = "auto", "none"


@dataclass(frozen=True)
class Key:
    """One setting: its config name, environment variable, flag and default."""

    name: str
    flag: str | None
    default: object
    help: str

    @property
    def env(self) -> str:
        return f"HUB_{self.name.upper()}"


_WHEN = {"pre": "before", "post": "after"}
KEYS: tuple[Key, ...] = (
    Key("registry", "--registry", DOCKER_HUB, "Registry host[:port]; docker.io is Docker Hub."),
    Key("username", None, None, "Registry user name; also the namespace of a bare repository."),
    Key("token", None, None, "Password or access token. Never give it as a flag."),
    Key("repository", "--repository", None, "namespace/name; a bare name means USERNAME/name."),
    Key("tags", "--tag", None, "Tags, comma or space separated (default: from git)."),
    Key("dockerfile", "--dockerfile", "Dockerfile", "Dockerfile path, relative to the cwd."),
    Key("context", "--context", ".", "Build context folder, relative to the cwd."),
    Key("build_args", "--build-arg", None, "Build arguments: space separated KEY=VALUE."),
    Key("semver", "--semver", False, "Fan a version tag out: v1.2.3 → v1.2.3, v1.2, v1, latest."),
    Key("latest", "--latest", False, "Also publish latest (only moved forward)."),
    Key("labels", "--label", None, "Extra or overriding image labels: space separated K=V."),
    Key(
        "cache_from",
        "--cache-from",
        CACHE_AUTO,
        "Images whose layers the build may reuse, pulled first: references or tags of the "
        "repository; auto (the newest release when the daemon lacks it) or none.",
    ),
    Key("retries", None, 5, "Attempts per network operation (transient failures only)."),
    Key("timeout", None, 120, "Seconds of retrying before a release gives up."),
    Key("retry_delay", None, 1.0, "First backoff delay in seconds; it doubles, with jitter."),
    *(
        Key(
            name,
            None,
            None,
            f"Shell command run {_WHEN[name.split('_')[0]]} the {name.split('_')[1]} stage.",
        )
        for name in HOOK_NAMES
    ),
)
HOOK_KEYS = HOOK_NAMES
KEYS_BY_NAME = {key.name: key for key in KEYS}

_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def config_defaults() -> dict[str, object]:
    """Every `hub.*` key, for `Collection.configure`. All None: Invoke only lets its own env
    vars override declared keys, and a real default here would look like a user's choice
    (the resolver applies `Key.default` itself, with "default" as the source)."""
    return {key.name: None for key in KEYS}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a stage needs, already validated. Build it with `resolve_settings`."""

    registry: str = DOCKER_HUB
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    repository: Repository | None = None
    tags: tuple[str, ...] = ()
    dockerfile: Path = Path("Dockerfile")
    context: Path = Path(".")
    build_args: Mapping[str, str] = field(default_factory=dict)
    semver: bool = False
    latest: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
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

    def require_repository(self) -> Repository:
        if self.repository is None:
            raise ConfigError("missing setting: HUB_REPOSITORY (or --repository)")
        return self.repository

    def source_of(self, name: str) -> str:
        return self.sources.get(name, KEYS_BY_NAME[name].env)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()

    @property
    def auth_config(self) -> dict[str, str]:
        """Credentials in the form the Docker API takes, for an explicit push or lookup."""
        if not (self.username and self.token and self.repository):
            raise ConfigError("internal: credentials requested before Settings.require('login')")
        return {
            "username": self.username,
            "password": self.token,
            "serveraddress": self.repository.auth_key,
        }

    def require(self, *stages: str) -> None:
        """Raise `ConfigError` naming every setting the given stages need but lack."""
        missing: list[str] = []
        needs_repository = any(s in ("build", "tag", "push", "release") for s in stages)
        needs_credentials = any(s in ("login", "push", "release") for s in stages)
        if needs_repository and self.repository is None:
            missing.append("HUB_REPOSITORY (or --repository)")
        if needs_credentials and not self.username:
            missing.append("HUB_USERNAME")
        if needs_credentials and not self.token:
            missing.append("HUB_TOKEN")
        if missing:
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
                "set them in .env (see .env.example) or the environment"
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

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, value, source) rows for display; the token shows only as <hidden>."""
        rows = []
        for key in KEYS:
            if key.name in HOOK_KEYS:
                value = self.hooks.get(key.name)
            else:
                value = getattr(self, key.name)
            if key.name == "token":
                shown = "<hidden>" if value else "<empty>"
            elif key.name in ("tags", "cache_from"):
                shown = ",".join(value)
            elif key.name in ("build_args", "labels"):
                shown = " ".join(f"{k}={v}" for k, v in value.items())
            else:
                shown = "" if value is None else str(value)
            rows.append((key.env, shown, self.source_of(key.name)))
        return rows


def read_env_file(path: Path) -> dict[str, str | None]:
    """Read a `.env` file without touching `os.environ` (python-dotenv, imported lazily).

    A line python-dotenv cannot parse is an error here, not a silently skipped setting. The
    file is parsed once per version of it, however many checks ask.
    """
    try:
        stat = path.stat()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return dict(_parse_env_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parse_env_file(path: str, _mtime_ns: int, _size: int) -> dict[str, str | None]:
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        lines = ", ".join(map(str, bad))
        raise ConfigError(
            f"{path}: line {lines} cannot be parsed; write each setting as KEY=VALUE and "
            "quote values that hold spaces or #"
        )
    return dict(dotenv_values(stream=io.StringIO(text)))


def token_candidates(
    cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Every HUB_TOKEN value in sight, so that even a settings error is redacted."""
    environ = os.environ if environ is None else environ
    found = [environ.get("HUB_TOKEN")]
    env_path = (Path.cwd() if cwd is None else cwd) / ENV_FILE_NAME
    try:
        text = env_path.read_text(encoding="utf-8") if env_path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    # A light scan, not python-dotenv: this runs at import, before any task.
    for match in re.finditer(r"^\s*(?:export\s+)?HUB_TOKEN\s*=\s*(.*)$", text, re.MULTILINE):
        value = match.group(1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found.append(value)
    return [value.strip() for value in found if value and value.strip()]


def load_settings(
    flags: Mapping[str, object] | None = None,
    config: Mapping[str, object] | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from the real sources: os.environ and `./.env`."""
    cwd = Path.cwd() if cwd is None else cwd
    env_path = cwd / ENV_FILE_NAME
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
    # A bool flag left off arrives as False: it must not hide the environment's true.
    if value is None or value is False:
        return False
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
        return flags[key.name], key.flag or key.name
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


def _parse_pairs(items: list[str], source: str, what: str, name_re: re.Pattern) -> dict[str, str]:
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
    return int(value.strip())


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
            parse_image_reference(item, source=source)
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
    """Merge the sources by precedence and validate each value. Pure: no I/O."""
    picked = {key.name: _pick(key, flags, environ, dotenv, config) for key in KEYS}
    sources = {name: source for name, (_, source) in picked.items()}

    def text(name: str) -> str | None:
        value = picked[name][0]
        return None if value is None else str(value).strip() or None

    registry_text = text("registry") or DOCKER_HUB
    registry = normalize_registry(registry_text, source=sources["registry"])
    registry_explicit = sources["registry"] != "default"
    username = text("username")
    token = picked["token"][0]
    token = str(token).strip() if _given(token) else None

    repository = None
    if text("repository"):
        repository = parse_repository(
            text("repository") or "",
            registry=registry if registry_explicit else None,
            username=username,
            source=sources["repository"],
        )
        registry = repository.registry

    # A flag is one tag as typed; a setting may list several, comma or space separated.
    tag_items = picked["tags"][0]
    if _from_flag(sources["tags"], KEYS_BY_NAME["tags"]) and isinstance(tag_items, list | tuple):
        raw_tags = [str(item).strip() for item in tag_items]
    else:
        raw_tags = _as_list(tag_items, split="words")
    tags = _dedupe(validate_tag(tag, source=sources["tags"]) for tag in raw_tags)
    build_args = _parse_pairs(
        _as_list(picked["build_args"][0], split="shell", source=sources["build_args"]),
        sources["build_args"],
        "build argument",
        _BUILD_ARG_NAME,
    )
    labels = _parse_pairs(
        _as_list(picked["labels"][0], split="shell", source=sources["labels"]),
        sources["labels"],
        "label",
        _LABEL_NAME,
    )

    # Only the Docker client's own variables (never HUB_TOKEN); an empty one counts as unset.
    docker_env = {k: v for k, v in dotenv.items() if k.startswith("DOCKER_") and v}
    docker_env.update({k: v for k, v in environ.items() if k.startswith("DOCKER_") and v})

    return Settings(
        registry=registry,
        username=username,
        token=token,
        repository=repository,
        tags=tags,
        dockerfile=cwd / (text("dockerfile") or "Dockerfile"),
        context=cwd / (text("context") or "."),
        build_args=build_args,
        semver=_parse_bool(picked["semver"][0], sources["semver"]),
        latest=_parse_bool(picked["latest"][0], sources["latest"]),
        labels=labels,
        cache_from=_parse_cache_from(picked["cache_from"][0], sources["cache_from"]),
        source_date_epoch=_parse_epoch(
            environ.get("SOURCE_DATE_EPOCH") or dotenv.get("SOURCE_DATE_EPOCH")
        ),
        hooks={name: str(picked[name][0]) for name in HOOK_KEYS if _given(picked[name][0])},
        retries=int(
            _parse_number(picked["retries"][0], sources["retries"], integer=True, minimum=1)
        ),
        timeout=_parse_number(picked["timeout"][0], sources["timeout"], integer=False, minimum=0),
        retry_delay=_parse_number(
            picked["retry_delay"][0], sources["retry_delay"], integer=False, minimum=0
        ),
        cwd=cwd,
        env_file=env_file,
        docker_env=docker_env,
        sources=sources,
    )
