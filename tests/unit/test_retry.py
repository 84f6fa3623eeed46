"""Retry policy: what is transient, backoff growth, and the attempt and time budgets."""

from __future__ import annotations

import pytest

from hubtasks.errors import AuthError, RegistryError
from hubtasks.retry import RetryPolicy, is_transient, mark_transient


@pytest.mark.parametrize(
    "message",
    [
        "dial tcp 127.0.0.1:5000: connect: connection refused",
        "read: connection reset by peer",
        "net/http: TLS handshake timeout",
        "unexpected EOF",
        "registry answered HTTP 503",
        "received unexpected HTTP status: 502 Bad Gateway",
        "toomanyrequests: rate limit",
        "Internal Server Error",
    ],
)
def test_transient(message):
    assert is_transient(message)


@pytest.mark.parametrize(
    "message",
    [
        "unauthorized: authentication required",
        "denied: requested access is forbidden",
        "manifest unknown",
        "registry answered HTTP 404",
        "HTTP 401 after timeout",
        "name unknown: repository name not known to registry",
        "invalid tag",
    ],
)
def test_permanent(message):
    assert not is_transient(message)


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def _policy(clock, **kwargs):
    return RetryPolicy(sleep=clock.sleep, clock=lambda: clock.now, jitter=lambda: 1.0, **kwargs)


def test_retries_transient_failures_with_growing_delays_until_success():
    clock, calls, lines = Clock(), [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise mark_transient(RegistryError("registry answered HTTP 503"))
        return "ok"

    policy = _policy(clock, attempts=5, base_delay=0.5)
    assert policy.call(flaky, what="push", on_retry=lines.append) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert len(lines) == 3 and lines[0].startswith("push failed: registry answered HTTP 503")
    assert "retry 2/5 in 0.5s" in lines[0]


def test_retry_after_is_a_floor():
    clock = Clock()
    policy = _policy(clock, attempts=3, base_delay=0.1)
    calls = []

    def limited():
        calls.append(1)
        if len(calls) == 1:
            raise mark_transient(RegistryError("HTTP 429"), retry_after=7)
        return "ok"

    assert policy.call(limited, what="x", on_retry=lambda line: None) == "ok"
    assert clock.sleeps == [7]


def test_never_retries_permanent_errors():
    clock, calls = Clock(), []

    def rejected():
        calls.append(1)
        raise AuthError("rejected the credentials")

    with pytest.raises(AuthError):
        _policy(clock).call(rejected, what="login", on_retry=lambda line: None)
    assert calls == [1] and clock.sleeps == []


def test_gives_up_after_the_attempts():
    clock = Clock()

    def down():
        raise mark_transient(RegistryError("connection refused"))

    with pytest.raises(RegistryError, match=r"gave up after 3 attempts"):
        _policy(clock, attempts=3, base_delay=0.1).call(down, what="x", on_retry=lambda line: None)
    assert len(clock.sleeps) == 2


def test_gives_up_when_the_next_wait_would_exceed_the_budget():
    clock = Clock()

    def down():
        clock.now += 1.0  # each attempt itself takes a second
        raise mark_transient(RegistryError("connection refused"))

    with pytest.raises(RegistryError, match=r"gave up after the 5s retry budget"):
        _policy(clock, attempts=100, budget=5, base_delay=1).call(
            down, what="x", on_retry=lambda line: None
        )
    assert clock.now <= 5 + 1


def test_delay_has_jitter_and_a_cap():
    policy = RetryPolicy(base_delay=1, max_delay=8, jitter=lambda: 0.0)
    assert policy.delay(1) == 0.5  # half of the ceiling at the lowest jitter
    assert policy.delay(10) == 4.0  # the cap of 8, halved
    assert RetryPolicy(base_delay=1, max_delay=8, jitter=lambda: 1.0).delay(10) == 8.0
