"""Settings: one resolver for every source, validated before any side effect.

`KEYS` is the one table of settings: name, environment variable, default, kind and flag (the
task layer builds every command-line flag from it), with a key per hook (`HOOK_NAMES`).
Precedence, highest first: command-line flags > process environment > `.env` in the current
directory > Invoke config (`hub.*`, e.g. `invoke.yaml`) > defaults. Nothing here talks to
Docker; `Settings.require` says what a stage still lacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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

ENV_FILE_NAME = ".env"
# HUB_CACHE_FROM's words besides image references (hubtasks/cache.py decides "auto").
CACHE_AUTO, CACHE_NONE = "auto", "none"


@dataclass(frozen=True, kw_only=True)
class Key:
    """One setting, declared once: its `hub.*` name (also the `Settings` field), default,
    kind and, when it has one, its command-line flag with short form, value placeholder and
    help. The environment variable is derived from the name; the task layer builds every
    flag (help text, repeatable flags, `--no-…` forms) from these rows."""

    name: str
    default: object = None
    kind: str = "text"  # text, secret, list, pairs, bool, int, number, hook
    flag: str | None = None  # "--tag"; None: settings only, never a flag
    short: str | None = None  # "-t"
    metavar: str | None = None  # the value of a repeatable flag in --help: TAG, NAME=VALUE
    help: str = ""  # what the flag does (flags only)
    shown_default: str | None = None  # the default in words, when `default` does not say it

    @property
    def env(self) -> str:
        return f"HUB_{self.name.upper()}"

    @property
    def parameter(self) -> str | None:
        """The task parameter that carries the flag: --build-arg → build_arg."""
        return self.flag.removeprefix("--").replace("-", "_") if self.flag else None


# The stages a hook can run around (hooks.py runs them); a setting per hook, e.g. HUB_PRE_PUSH.
STAGES = ("login", "build", "tag", "push", "release")
HOOK_NAMES = tuple(f"{side}_{stage}" for stage in STAGES for side in ("pre", "post"))

KEYS: tuple[Key, ...] = (
    Key(
        name="registry",
        default=DOCKER_HUB,
        flag="--registry",
        short="-e",
        help="Registry host[:port]; docker.io is Docker Hub",
    ),
    Key(name="username"),
    Key(name="token", kind="secret"),  # never a flag: it would show in the process list
    Key(
        name="repository",
        kind="list",
        flag="--repository",
        short="-r",
        metavar="REPOSITORY",
        help="Repository as [REGISTRY/]namespace/name (a bare name means HUB_USERNAME/name); "
        "several (repeated or space separated): the first is pushed, the others get copies",
    ),
    Key(
        name="tags",
        kind="list",
        flag="--tag",
        short="-t",
        metavar="TAG",
        help="Tag to build or push",
        shown_default="the git tag at HEAD, else sha-<short sha>",
    ),
    Key(
        name="dockerfile",
        default="Dockerfile",
        flag="--dockerfile",  # no short flag: `inv -d` is Invoke's debug flag
        help="Path of the Dockerfile, relative to the current folder",
    ),
    Key(name="context", default=".", flag="--context", short="-c", help="Build context folder"),
    Key(
        name="build_args",
        kind="pairs",
        flag="--build-arg",
        short="-b",
        metavar="NAME=VALUE",
        help="Build argument",
    ),
    Key(
        name="semver",
        default=False,
        kind="bool",
        flag="--semver",
        short="-s",
        help="Fan a version tag out: v1.2.3 also publishes v1.2, v1 and latest, each moved "
        "only forward",
    ),
    Key(
        name="latest",
        default=False,
        kind="bool",
        flag="--latest",
        help="Also publish latest, moved only forward",
    ),
    Key(
        name="labels",
        kind="pairs",
        flag="--label",
        short="-l",
        metavar="NAME=VALUE",
        help="Image label, added to or overriding the OCI labels",
    ),
    Key(
        name="platforms",
        kind="list",
        flag="--platform",
        metavar="OS/ARCH",
        help="Platform to build, e.g. linux/arm64; several (repeated or comma separated) "
        "publish one multi-platform image",
        shown_default="the daemon's own",
    ),
    Key(
        name="cache_from",
        default=CACHE_AUTO,
        kind="list",
        flag="--cache-from",
        metavar="REF",
        help="Image whose layers the build may reuse, pulled first: a reference or a tag of "
        "the repository; auto (the newest release when the daemon lacks it) or none",
    ),
    Key(name="retries", default=5, kind="int"),
    Key(name="timeout", default=120, kind="number"),
    Key(name="retry_delay", default=1.0, kind="number"),
    *(Key(name=name, kind="hook") for name in HOOK_NAMES),
    # The Docker Hub page and tag retention (describe.py, prune.py, hub.py).
    Key(name="api_url"),  # Docker Hub web API URL (default https://hub.docker.com)
    Key(
        name="readme",
        flag="--readme",
        help="File whose text becomes the Docker Hub overview",
        shown_default="README.md",
    ),
    Key(
        name="description",
        flag="--description",
        help="Docker Hub short description (at most 100 characters)",
    ),
    Key(
        name="visibility",
        default="public",
        flag="--visibility",
        help="public or private: the visibility of a Docker Hub repository describe creates",
    ),
    # How stderr looks: auto (a terminal gets bars and spinners), plain lines, or rich.
    Key(name="progress", default="auto"),
    Key(
        name="describe",
        default=False,
        kind="bool",
        flag="--describe",
        help="Update the Docker Hub page after a verified release (a failure is a warning "
        "unless --strict)",
    ),
)
# Settings field of a key whose field name would read as a verb.
KEYS_BY_NAME = {key.name: key for key in KEYS}

_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
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

    def require_repository(self) -> Repository:
        if self.repository is None:
            raise ConfigError("missing setting: HUB_REPOSITORY (or --repository)")
        return self.repository

    def source_of(self, name: str) -> str:
        return self.sources.get(name, KEYS_BY_NAME[name].env)

    @property
    def secrets(self) -> tuple[str, ...]:
        own = (self.token,) if self.token else ()
        return (*own, *registry_secrets(self.registry_credentials))

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
        # The credential check reads the repository's tag list: login needs one too.
        needs_repository = any(s in ("login", "build", "tag", "push", "release") for s in stages)
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
                "set them in .env (`hubtasks init` writes one to fill in) or in the "
                "environment"
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
    found: list[str | None] = [environ.get("HUB_TOKEN")]
    found += registry_secrets(read_registry_credentials(environ, {}))
    env_path = (Path.cwd() if cwd is None else cwd) / ENV_FILE_NAME
    try:
        text = env_path.read_text(encoding="utf-8") if env_path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        # The value as the settings will read it (the parse is cached for them), and the raw
        # lines as well: a .env python-dotenv cannot parse may still be quoted in an error.
        with contextlib.suppress(ConfigError):
            dotenv = read_env_file(env_path)
            found.append(dotenv.get("HUB_TOKEN"))
            found += registry_secrets(read_registry_credentials({}, dotenv))
    token_line = r"^\s*(?:export\s+)?HUB_(?:REGISTRY_[A-Z0-9_]+_)?TOKEN\s*=\s*(.*)$"
    for match in re.finditer(token_line, text, re.MULTILINE):
        value = match.group(1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found.append(value)
    return list(dict.fromkeys(value.strip() for value in found if value and value.strip()))


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
    return int(value.strip())


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
    """Merge the sources by precedence and validate each value. Pure: no I/O."""
    unknown = sorted(set(flags) - set(KEYS_BY_NAME))
    if unknown:  # a misspelt name through the Python API (`tag` for `tags`) is not ignored
        raise ConfigError(
            f"unknown setting {', '.join(repr(n) for n in unknown)}; settings are "
            f"{', '.join(key.name for key in KEYS)}"
        )
    picked = {key.name: _pick(key, flags, environ, dotenv, config) for key in KEYS}
    sources = {name: source for name, (_, source) in picked.items()}

    def text(name: str) -> str | None:
        value = picked[name][0]
        return None if value is None else str(value).strip() or None

    username = text("username")
    token = str(picked["token"][0]).strip() if _given(picked["token"][0]) else None
    registry, repositories = _registry_and_repository(
        text("registry"), picked["repository"][0], username, sources
    )
    repository = repositories[0] if repositories else None
    tags = _parse_tags(picked["tags"][0], sources["tags"])
    build_args = _pairs_setting(picked, sources, "build_args", "build argument", _BUILD_ARG_NAME)
    labels = _pairs_setting(picked, sources, "labels", "label", _LABEL_NAME)

    return Settings(
        registry=registry,
        username=username,
        token=token,
        repository=repository,
        mirrors=repositories[1:],
        registry_credentials=read_registry_credentials(environ, dotenv),
        tags=tags,
        dockerfile=cwd / (text("dockerfile") or "Dockerfile"),
        context=cwd / (text("context") or "."),
        build_args=build_args,
        semver=_parse_bool(picked["semver"][0], sources["semver"]),
        latest=_parse_bool(picked["latest"][0], sources["latest"]),
        labels=labels,
        platforms=_parse_platforms(picked["platforms"][0], sources["platforms"]),
        cache_from=_parse_cache_from(picked["cache_from"][0], sources["cache_from"]),
        source_date_epoch=_parse_epoch(
            environ.get("SOURCE_DATE_EPOCH") or dotenv.get("SOURCE_DATE_EPOCH")
        ),
        hooks={name: str(picked[name][0]) for name in HOOK_NAMES if _given(picked[name][0])},
        retries=int(
            _parse_number(picked["retries"][0], sources["retries"], integer=True, minimum=1)
        ),
        timeout=_parse_number(picked["timeout"][0], sources["timeout"], integer=False, minimum=1),
        retry_delay=_parse_number(
            picked["retry_delay"][0], sources["retry_delay"], integer=False, minimum=0
        ),
        cwd=cwd,
        env_file=env_file,
        docker_env=docker_env(dotenv, environ),
        sources=sources,
        api_url=_parse_url(text("api_url"), sources["api_url"]),
        readme=cwd / readme if (readme := text("readme")) else None,
        description=text("description"),
        visibility=_parse_choice(text("visibility"), sources["visibility"], ("public", "private")),
        describe_after_release=_parse_bool(picked["describe"][0], sources["describe"]),
        progress=_parse_choice(text("progress"), sources["progress"], ("auto", "plain", "rich")),
    )


def _registry_and_repository(
    registry_text: str | None,
    repository_value: object,
    username: str | None,
    sources: Mapping[str, str],
) -> tuple[str, tuple[Repository, ...]]:
    """The registry, and the repositories: the first in it, the others where they say (a
    further destination without a host is in the configured registry). A repository that
    names its registry wins over HUB_REGISTRY's default (Docker Hub), not over a registry
    given explicitly."""
    registry = normalize_registry(registry_text or DOCKER_HUB, source=sources["registry"])
    texts = _as_list(repository_value, split="words", source=sources["repository"])
    if not texts:
        return registry, ()
    explicit = registry if sources["registry"] != "default" else None
    source = sources["repository"]
    if len(texts) > 1:  # an error names the word and the whole setting: 'Bad' of 'Bad Name'
        source = f"{source} ('{' '.join(texts)}')"
    found: dict[Repository, None] = {}
    for index, text in enumerate(texts):
        found[
            parse_repository(
                text,
                registry=explicit if index == 0 or not names_registry(text) else None,
                username=username,
                source=source,
            )
        ] = None
    repositories = tuple(found)
    return repositories[0].registry, repositories


def _parse_tags(value: object, source: str) -> tuple[str, ...]:
    """A flag is one tag as typed; a setting may list several, comma or space separated."""
    if _from_flag(source, KEYS_BY_NAME["tags"]) and isinstance(value, list | tuple):
        raw_tags = [str(item).strip() for item in value]
    else:
        raw_tags = _as_list(value, split="words")
    return _dedupe(validate_tag(tag, source=source) for tag in raw_tags)


def _pairs_setting(
    picked: Mapping[str, tuple[object, str]],
    sources: Mapping[str, str],
    name: str,
    what: str,
    name_re: re.Pattern[str],
) -> dict[str, str]:
    """A NAME=VALUE setting (build arguments, labels): shell words, each a pair."""
    source = sources[name]
    items = _as_list(picked[name][0], split="shell", source=source)
    return _parse_pairs(items, source, what, name_re)


def docker_env(dotenv: Mapping[str, str | None], environ: Mapping[str, str]) -> dict[str, str]:
    """Only the Docker client's own variables (never HUB_TOKEN), the environment's over
    `.env`'s; an empty one counts as unset."""
    found = {k: v for k, v in dotenv.items() if k.startswith("DOCKER_") and v}
    found.update({k: v for k, v in environ.items() if k.startswith("DOCKER_") and v})
    return found


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
