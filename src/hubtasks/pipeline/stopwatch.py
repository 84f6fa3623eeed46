"""Seconds per named stage, for the summary and the JSON result."""

from __future__ import annotations

import time


class Stopwatch:
    """Adds up the time spent in each stage: `with watch.time("push"): …`."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def time(self, stage: str) -> _Timer:
        return _Timer(self, stage)


class _Timer:
    def __init__(self, watch: Stopwatch, stage: str) -> None:
        self.watch, self.stage = watch, stage

    def __enter__(self) -> _Timer:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        self.watch.timings[self.stage] = self.watch.timings.get(self.stage, 0.0) + elapsed
