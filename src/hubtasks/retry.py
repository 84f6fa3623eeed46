"""Retries that are safe: failures marked transient where they were made, exponential backoff
with jitter, bounded in attempts and in time.

Nothing here reads messages: an error says whether it is worth another try (`transient`) and
how long the server asked us to wait (`retry_after`). Never retried: rejected credentials,
denied access, not found (Docker Hub locks a username for minutes after repeated failed
logins). The Docker daemon already retries each layer upload itself; these retries wrap whole
operations around that.

The time budget belongs to one operation (a login, a read of one tag, one tag's push or copy,
a verify): it starts when the operation starts, and its attempts, the waits between them and
each request's own timeout (`remaining()`) all fit inside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hubtasks.errors import HubError

T = TypeVar("T")


def _random() -> float:
    import random

    return random.random()


@dataclass
class RetryPolicy:
    """`attempts` tries at most per operation, all within `budget` seconds of its start."""

    attempts: int = 5
    budget: float = 120.0
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default_factory=lambda: _random)
    # The deadlines of the operations running on each thread (innermost last).
    _running: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        wait = ceiling * (0.5 + self.jitter() / 2)
        return max(wait, retry_after or 0.0)

    def remaining(self) -> float:
        """Seconds left of the operation running on this thread (the whole budget outside one):
        what a request or a push may still wait for an answer."""
        deadlines: list[float] | None = getattr(self._running, "deadlines", None)
        if not deadlines:
            return self.budget
        return deadlines[-1] - self.clock()

    def call(
        self,
        operation: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[str], None],
    ) -> T:
        """Run `operation`, retrying `HubError`s whose `transient` flag is set, within the
        attempts and the time budget. An operation started inside another one ends no later
        than the outer one."""
        deadlines: list[float] | None = getattr(self._running, "deadlines", None)
        if deadlines is None:
            deadlines = self._running.deadlines = []
        deadline = self.clock() + self.budget
        deadlines.append(min([deadline, *deadlines[-1:]]))
        try:
            return self._attempts(operation, what, on_retry)
        finally:
            deadlines.pop()

    def _attempts(
        self, operation: Callable[[], T], what: str, on_retry: Callable[[str], None]
    ) -> T:
        attempt = 1
        while True:
            try:
                return operation()
            except HubError as error:
                if not error.transient:
                    raise
                wait = self.delay(attempt, error.retry_after)
                why = self._give_up(attempt, wait, error.retry_after)
                if why:
                    raise error.evolve(f"{error} (gave up {why})") from None
                said = str(error)  # an error may name the operation itself ("push of … failed")
                failed = said if said.startswith(what) else f"{what} failed: {said}"
                on_retry(f"{failed}; retry {attempt + 1}/{self.attempts} in {wait:.1f}s")
                self.sleep(wait)
                attempt += 1

    def _give_up(self, attempt: int, wait: float, retry_after: float | None) -> str | None:
        """Why there is no next attempt, or None when there is one."""
        if attempt >= self.attempts:
            return f"after {attempt} attempts"
        left = self.remaining()
        if wait <= left:
            return None
        if retry_after is not None and retry_after >= wait:
            return (
                f"at once: the registry asked to wait {retry_after:.0f}s, more than the "
                f"{max(left, 0):.0f}s left of the {self.budget:.0f}s retry budget"
            )
        return f"after the {self.budget:.0f}s retry budget"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        import datetime

        moment = parsedate_to_datetime(value)
        return max(0.0, (moment - datetime.datetime.now(moment.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None
