"""Retry policy: backoff growth, and the attempt and time budgets of each operation.

(Which daemon messages are transient is read in `engine`: tests/unit/test_engine_errors.py.)
"""

from __future__ import annotations

import pytest

from hubtasks.errors import AuthError, RegistryError
from hubtasks.retry import RetryPolicy


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
            raise RegistryError("registry answered HTTP 503", transient=True)
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
            raise RegistryError("HTTP 429", transient=True, retry_after=7)
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
        raise RegistryError("connection refused", transient=True)

    with pytest.raises(RegistryError, match=r"gave up after 3 attempts"):
        _policy(clock, attempts=3, base_delay=0.1).call(down, what="x", on_retry=lambda line: None)
    assert len(clock.sleeps) == 2


def test_gives_up_when_the_next_wait_would_exceed_the_budget():
    clock = Clock()

    def down():
        clock.now += 1.0  # each attempt itself takes a second
        raise RegistryError("connection refused", transient=True)

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


def test_each_operation_has_its_own_budget_and_remaining_tells_what_is_left():
    clock = Clock()
    policy = _policy(clock, attempts=5, budget=10, base_delay=1)
    seen = []

    def slow():
        seen.append(policy.remaining())
        clock.now += 4
        if len(seen) < 2:
            raise RegistryError("HTTP 503", transient=True)
        return "ok"

    assert policy.remaining() == 10  # outside an operation: the whole budget
    assert policy.call(slow, what="x", on_retry=lambda line: None) == "ok"
    assert seen == [10, 5]  # 4 s of the first attempt and a 1 s wait are gone
    assert policy.remaining() == 10
    # The next operation starts with the whole budget again.
    assert policy.call(policy.remaining, what="y", on_retry=lambda line: None) == 10


def test_an_operation_inside_another_ends_no_later_than_the_outer_one():
    clock = Clock()
    policy = _policy(clock, budget=10)

    def outer():
        clock.now += 7
        return policy.call(policy.remaining, what="inner", on_retry=lambda line: None)

    assert policy.call(outer, what="outer", on_retry=lambda line: None) == 3


def test_budgets_are_per_thread():
    import threading

    clock = Clock()
    policy = _policy(clock, budget=10)
    inside = threading.Event()
    release = threading.Event()
    found = []

    def hold():
        clock.now += 6
        inside.set()
        release.wait(5)
        return policy.remaining()

    worker = threading.Thread(
        target=lambda: found.append(policy.call(hold, what="a", on_retry=print))
    )
    worker.start()
    inside.wait(5)
    found.append(policy.remaining())  # this thread runs no operation: the whole budget
    release.set()
    worker.join(5)
    assert found == [10, 4]


def test_a_retry_after_beyond_the_budget_gives_up_at_once_and_says_why():
    clock = Clock()
    calls = []

    def limited():
        calls.append(1)
        raise RegistryError("HTTP 429", transient=True, retry_after=60)

    with pytest.raises(RegistryError) as caught:
        _policy(clock, attempts=5, budget=10).call(limited, what="x", on_retry=lambda line: None)
    assert calls == [1] and clock.sleeps == []
    assert "the registry asked to wait 60s, more than the 10s left" in str(caught.value)
    assert caught.value.status is None and caught.value.transient  # fields kept


def test_a_retry_line_does_not_repeat_what_the_error_already_says():
    clock, lines, calls = Clock(), [], []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RegistryError("push of reg/app:v1 failed: HTTP 503", transient=True)
        return "ok"

    _policy(clock, attempts=3, base_delay=0.5).call(
        flaky, what="push of reg/app:v1", on_retry=lines.append
    )
    assert lines == ["push of reg/app:v1 failed: HTTP 503; retry 2/3 in 0.5s"]
