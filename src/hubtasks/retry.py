"""Retries that are safe: transient failures only, exponential backoff with jitter, bounded
in attempts and in total time.

Never retried: 401/403/denied/not found (Docker Hub locks a username for minutes after repeated
failed logins) and anything the caller did not mark transient. The Docker daemon already
retries each layer upload itself; these retries wrap whole operations around that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import HubError

T = TypeVar("T")

_TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "eof",
    "timeout",
    "timed out",
    "i/o timeout",
    "no route to host",
    "temporarily unavailable",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "internal server error",
    "toomanyrequests",
    "too many requests",
    " 500 ",
    " 502 ",
    " 503 ",
    " 504 ",
    " 429 ",
    "http 500",
    "http 502",
    "http 503",
    "http 504",
    "http 429",
)
_PERMANENT_MARKERS = (
    "unauthorized",
    "authentication required",
    "denied",
    "forbidden",
    "not found",
    "unknown",
    "401",
    "403",
    "404",
)


def _random() -> float:
    import random

    return random.random()


def is_transient(message: str) -> bool:
    """Whether a failure message describes something worth trying again."""
    text = f" {message.lower()} "
    if any(marker in text for marker in _PERMANENT_MARKERS):
        return False
    return any(marker in text for marker in _TRANSIENT_MARKERS)


@dataclass
class RetryPolicy:
    """`attempts` tries at most, and no new try once `budget` seconds have gone by."""

    attempts: int = 5
    budget: float = 120.0
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default_factory=lambda: _random)
    started: float | None = field(default=None)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = ceiling * (0.5 + self.jitter() / 2)
        return max(wait, retry_after or 0.0)

    def remaining(self) -> float:
        if self.started is None:
            self.started = self.clock()
        return self.budget - (self.clock() - self.started)

    def call(
        self,
        operation: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[str], None],
    ) -> T:
        """Run `operation`, retrying `HubError`s whose `transient` flag is set."""
        attempt = 1
        while True:
            try:
                return operation()
            except HubError as error:
                if not error.transient:
                    raise
                left = self.remaining()
                wait = self.delay(attempt, error.retry_after)
                if attempt >= self.attempts or wait > left:
                    why = (
                        f"{attempt} attempts"
                        if attempt >= self.attempts
                        else f"the {self.budget:.0f}s retry budget"
                    )
                    raise error.evolve(f"{error} (gave up after {why})") from None
                on_retry(
                    f"{what} failed: {error}; retry {attempt + 1}/{self.attempts} in {wait:.1f}s"
                )
                self.sleep(wait)
                attempt += 1


def mark_transient(error: HubError, retry_after: float | None = None) -> HubError:
    """The same error, marked worth retrying (prefer `transient=True` where it is made)."""
    return error.evolve(transient=True, retry_after=retry_after)
