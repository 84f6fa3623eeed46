"""Docker Hub's pull rate limit: what is left (for `inv doctor`) and what a 429 means.

Docker documents how to see the limit ("Docker Hub pull usage and limits"; docker/hub-tool's
pkg/hub/ratelimiting.go does the same): a `HEAD` of `ratelimitpreview/test:latest` on
registry-1.docker.io with the account's token. A HEAD is not counted as a pull. The answer
carries `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` (`w`: the window in
seconds) and `docker-ratelimit-source`; an answer without them means no limit applies to the
account. At the limit the registry answers `429` with the error code `TOOMANYREQUESTS`. A
`ratelimit-reset` header (seconds, or a unix time) or `Retry-After` says when it resets when a
server sends one; otherwise the window is a rolling one.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubtasks.references import DOCKER_HUB
from hubtasks.retry import retry_after_seconds

if TYPE_CHECKING:
    from hubtasks.registry.transport import Headers

PROBE = "ratelimitpreview/test"  # Docker's documented repository for reading the limit
_LIMIT = re.compile(r"\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")
_EPOCH_FLOOR = 1_000_000_000  # a reset above this is a unix time, below it a delay


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    window: int | None  # seconds
    reset_in: float | None  # seconds from now, when the server says


def _header(headers: Headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts in tests are case-sensitive; HTTP headers are not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def parse_rate_limit(headers: Headers, now: float | None = None) -> RateLimit | None:
    """The limit from `ratelimit-*` headers, or None when the answer carries none."""
    limit = _LIMIT.match(_header(headers, "ratelimit-limit") or "")
    remaining = _LIMIT.match(_header(headers, "ratelimit-remaining") or "")
    if not (limit and remaining):
        return None
    window = limit.group(2) or remaining.group(2)
    return RateLimit(
        limit=int(limit.group(1)),
        remaining=int(remaining.group(1)),
        window=int(window) if window else None,
        reset_in=_reset_in(headers, now),
    )


def _reset_in(headers: Headers, now: float | None) -> float | None:
    value = (_header(headers, "ratelimit-reset") or "").strip()
    if value.isdigit():
        number = float(value)
        if number >= _EPOCH_FLOOR:
            return max(0.0, number - (time.time() if now is None else now))
        return number
    return retry_after_seconds(_header(headers, "retry-after"))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{max(0, round(seconds))} s"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def describe_limit(found: RateLimit, now: float | None = None) -> str:
    """`76 of 100 pulls left (per 6 h, rolling)` or `… resets in 2 h 10 min (at 14:05 UTC)`."""
    window = f"per {_duration(found.window)}" if found.window else "in the current window"
    text = f"{found.remaining} of {found.limit} pulls left ({window}"
    if found.reset_in is not None:
        at = datetime.datetime.fromtimestamp(
            (time.time() if now is None else now) + found.reset_in, datetime.timezone.utc
        )
        return f"{text}); resets in {_duration(found.reset_in)} (at {at:%H:%M} UTC)"
    return f"{text}, a rolling window)"


def too_many_requests(
    registry: str, headers: Headers | None = None, now: float | None = None
) -> str:
    """The line for a `429 TOOMANYREQUESTS` from a registry: on Docker Hub, that it is the pull
    rate limit, what it is and when it resets (as far as the answer says)."""
    headers = headers or {}
    found = parse_rate_limit(headers, now)
    if registry != DOCKER_HUB:
        wait = _reset_in(headers, now)
        later = f"; it asks to wait {_duration(wait)}" if wait is not None else ""
        return f"registry {registry} is limiting requests (HTTP 429 TOOMANYREQUESTS){later}"
    if found is None:
        wait = _reset_in(headers, now)
        when = (
            f"it resets in {_duration(wait)}"
            if wait is not None
            else "pulls come back as the 6-hour window rolls on"
        )
        return (
            "Docker Hub's pull rate limit is used up (HTTP 429 TOOMANYREQUESTS); "
            f"{when}; log in (HUB_USERNAME/HUB_TOKEN) or use a paid plan for a higher limit"
        )
    return (
        f"Docker Hub's pull rate limit is used up (HTTP 429 TOOMANYREQUESTS): "
        f"{describe_limit(found, now)}"
    )
