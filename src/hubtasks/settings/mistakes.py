"""What people mistype in their settings: a `HUB_*` name that is no setting (`HUB_SEMVR`,
`HUB_TAG`) or a `hub.*` key that is none (`hub.semvr` in invoke.yaml), a token with spaces
around it. Pure: the caller hands in the names and values.

An unknown name in `.env` is always reported (that file is ours); one in the environment only
when it is close to a setting's name, since other programs have `HUB_*` variables of their own
(GitHub's `hub` reads HUB_PROTOCOL, HUB_VERBOSE, …).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# `HUB_*` names hubtasks reads or sets that are not settings: HUB_DEBUG (the command line), and
# the facts a shell hook gets in its environment (pipeline.hooks.Facts.environment).
OTHER_NAMES = frozenset(
    {
        "HUB_DEBUG",
        "HUB_STAGE",
        "HUB_IMAGE",
        "HUB_DIGEST",
        "HUB_REFS",
        "HUB_IMAGE_ID",
        "HUB_PLATFORM_DIGESTS",
        "HUB_DESTINATIONS",
    }
)
# A further destination's credentials (`settings.destinations`): HUB_REGISTRY_GHCR_IO_TOKEN.
_REGISTRY_CREDENTIAL = re.compile(r"HUB_REGISTRY_[A-Z0-9_]+_(?:USERNAME|TOKEN)")
_CLOSE_IN_ENV_FILE = 0.6
_CLOSE_IN_ENVIRONMENT = 0.8


@dataclass(frozen=True)
class UnknownName:
    name: str
    where: str  # "in .env", "in the environment"
    closest: str | None

    def __str__(self) -> str:
        guess = f"did you mean {self.closest}?" if self.closest else "it is ignored"
        return f"{self.name} {self.where} is not a hubtasks setting; {guess}"


def unknown_names(
    known: Iterable[str],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None],
    config: Mapping[str, object] | None = None,
) -> list[UnknownName]:
    """Every `HUB_*` name in `.env` that is not in `known` (nor one of `OTHER_NAMES`), every
    one in the environment that is close to a known name, and every key of our Invoke config
    (`hub.*`: the section is ours) that is no setting's, each with the closest known name."""
    names = set(known) | OTHER_NAMES
    dotenv = {
        name: value for name, value in dotenv.items() if not _REGISTRY_CREDENTIAL.fullmatch(name)
    }
    environ = {name: v for name, v in environ.items() if not _REGISTRY_CREDENTIAL.fullmatch(name)}
    found = [
        UnknownName(name, "in .env", _closest(name, names, _CLOSE_IN_ENV_FILE))
        for name in sorted(dotenv)
        if name.startswith("HUB_") and name not in names
    ]
    for name in sorted(environ):
        if name.startswith("HUB_") and name not in names:
            closest = _closest(name, names, _CLOSE_IN_ENVIRONMENT)
            if closest is not None:  # else another program's variable, most likely
                found.append(UnknownName(name, "in the environment", closest))
    keys = {f"hub.{name[4:].lower()}" for name in set(known)}  # HUB_SEMVER → hub.semver
    for key in sorted(f"hub.{key}" for key in config or {}):
        if key not in keys:
            found.append(UnknownName(key, "in Invoke config", _closest(key, keys, 0.6)))
    return found


def _closest(name: str, names: set[str], cutoff: float) -> str | None:
    settings = sorted(names - OTHER_NAMES)
    match = difflib.get_close_matches(name, settings, n=1, cutoff=cutoff)
    return match[0] if match else None


def spaced_token(token: str | None, source: str) -> str | None:
    """A warning when the token starts or ends with a space or tab (kept as written: a password
    may hold spaces, but a stray one is the likelier story). Line breaks are dropped before."""
    if not token or token == token.strip():
        return None
    return (
        f"HUB_TOKEN ({source}) starts or ends with a space or tab; it is sent as written — "
        "remove the spaces (and the quotes around them) if they are not part of the token"
    )
