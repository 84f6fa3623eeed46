"""One parser per kind of setting (`settings.keys.KINDS`): a raw value and where it came
from in, a checked value out, or a `ConfigError` naming the source. Pure."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping
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
from hubtasks.settings.keys import CACHE_AUTO, CACHE_NONE, Key

# NAME=VALUE pairs: the name each kind of pair takes.
_PAIR_NAMES = {
    "build argument": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "label": re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*"),
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def given(value: object) -> bool:
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


def from_flag(source: str, key: Key) -> bool:
    return source == (key.flag or key.name)


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


def parse_epoch(value: str | None) -> int | None:
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


# --- one parser per kind --------------------------------------------------------------------


@dataclass
class Parsed:
    """What the parsers share: the current folder, every key's source, the values so far."""

    cwd: Path
    sources: Mapping[str, str]
    values: dict[str, object] = field(default_factory=dict)


def _text(key: Key, value: object, source: str, parsed: Parsed) -> str | None:
    return None if value is None else str(value).strip() or None


def _secret(key: Key, value: object, source: str, parsed: Parsed) -> str | None:
    # As written but for line breaks (a pasted secret's, never a token's): spaces may belong to
    # a password, and a warning says they are there (`settings.mistakes.spaced_token`).
    return str(value).strip("\r\n") if given(value) else None


def _registry(key: Key, value: object, source: str, parsed: Parsed) -> str:
    return normalize_registry(_text(key, value, source, parsed) or DOCKER_HUB, source=source)


def _repositories(key: Key, value: object, source: str, parsed: Parsed) -> tuple[Repository, ...]:
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


def _list(key: Key, value: object, source: str, parsed: Parsed) -> tuple[str, ...]:
    return _LIST_ITEMS[key.item](key, value, source)


def _pairs(key: Key, value: object, source: str, parsed: Parsed) -> dict[str, str]:
    """NAME=VALUE settings (build arguments, labels): shell words, each a pair."""
    items = _as_list(value, split="shell", source=source)
    return _parse_pairs(items, source, key.item, _PAIR_NAMES[key.item])


def _bool(key: Key, value: object, source: str, parsed: Parsed) -> bool | None:
    if key.default is None and not given(value):
        return None  # "not said": the caller asks someone else (HUB_INSECURE: the daemon)
    return _parse_bool(value, source)


def _int(key: Key, value: object, source: str, parsed: Parsed) -> int:
    return int(_parse_number(value, source, integer=True, minimum=key.minimum))


def _number(key: Key, value: object, source: str, parsed: Parsed) -> float:
    return _parse_number(value, source, integer=False, minimum=key.minimum)


def _path(key: Key, value: object, source: str, parsed: Parsed) -> Path | None:
    text = _text(key, value, source, parsed) or key.default
    return parsed.cwd / str(text) if text else None


def _url(key: Key, value: object, source: str, parsed: Parsed) -> str | None:
    return _parse_url(_text(key, value, source, parsed), source)


def _choice(key: Key, value: object, source: str, parsed: Parsed) -> str:
    return _parse_choice(_text(key, value, source, parsed), source, key.choices)


def _hook(key: Key, value: object, source: str, parsed: Parsed) -> str | None:
    return str(value) if given(value) else None


PARSERS: dict[str, Callable[[Key, object, str, Parsed], object]] = {
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
    if from_flag(source, key) and isinstance(value, list | tuple):
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
    # --secret specs hold commas (id=NAME,src=PATH): a setting lists them as shell words.
    "secret": lambda key, value, source: tuple(_as_list(value, split="shell", source=source)),
    "ssh": lambda key, value, source: tuple(_as_list(value, split="words", source=source)),
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
