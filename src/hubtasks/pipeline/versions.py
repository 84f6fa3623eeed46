"""Semantic version tags: parsing, ordering and fan-out. Pure.

A version tag is `[v|V]MAJOR.MINOR.PATCH[-PRERELEASE]` (no `+build`: Docker tags cannot hold
`+`). Ordering follows semver 2.0.0, prereleases included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(
    r"(?P<prefix>[vV]?)(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_FLOATING = re.compile(r"(?P<prefix>[vV]?)(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?")
LATEST = "latest"


@total_ordering
@dataclass(frozen=True)
class Version:
    prefix: str
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    def _key(self) -> tuple[int, int, int, bool, tuple[tuple[int, int, str], ...]]:
        # A release sorts after its prereleases; numeric identifiers before alphanumeric ones.
        pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, not self.pre, pre_key)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        pre = f"-{'.'.join(self.pre)}" if self.pre else ""
        return f"{self.prefix}{self.major}.{self.minor}.{self.patch}{pre}"


def parse_version(tag: str) -> Version | None:
    """The version a tag names, or None when it is not a full version tag."""
    match = _VERSION.fullmatch(tag)
    if not match:
        return None
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre):
        return None  # semver forbids leading zeros in numeric prerelease identifiers
    return Version(
        match["prefix"], int(match["major"]), int(match["minor"]), int(match["patch"]), pre
    )


def floating_line(tag: str) -> tuple[int, int | None] | None:
    """For `v1` → (1, None), `v1.2` → (1, 2); None for anything that is not a floating tag."""
    match = _FLOATING.fullmatch(tag)
    if not match:
        return None
    minor = match["minor"]
    return int(match["major"]), None if minor is None else int(minor)


def fan_out(version: Version) -> list[str]:
    """`v1.2.3` → v1.2.3, v1.2, v1, latest; a prerelease gets only its own tag."""
    own = str(version)
    if version.is_prerelease:
        return [own]
    p = version.prefix
    return [own, f"{p}{version.major}.{version.minor}", f"{p}{version.major}", LATEST]


def highest_in_line(published: list[str], tag: str) -> Version | None:
    """The highest released version (no prereleases) in the line a floating tag covers."""
    versions = [v for v in map(parse_version, published) if v and not v.is_prerelease]
    if tag != LATEST:
        line = floating_line(tag)
        if line is None:
            return None
        major, minor = line
        versions = [v for v in versions if v.major == major and (minor is None or v.minor == minor)]
    return max(versions, default=None)
