"""BuildKit's trace, as the daemon streams it: `{"id": "moby.buildkit.trace", "aux": base64}`,
each a `StatusResponse` (control.proto) of vertexes (steps), statuses (byte progress), logs (a
step's output) and warnings. Decoded here into plain records, and followed as a build runs:
which steps there are, which were cached, what each printed last, which one failed."""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hubtasks.build.buildkit import messages

_STATUS = "moby.buildkit.v1.StatusResponse"


@dataclass(frozen=True)
class Step:
    """A vertex: one step of the build (`[stage 2/5] RUN …`, `[internal] load …`)."""

    digest: str
    name: str
    cached: bool = False
    started: float | None = None  # seconds since the epoch
    completed: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Log:
    """Output of a step: `stream` 1 is stdout, 2 stderr."""

    vertex: str
    stream: int
    data: bytes


@dataclass(frozen=True)
class Progress:
    """Byte progress inside a step (a pull's layer, an export)."""

    vertex: str
    id: str
    current: int
    total: int
    done: bool


@dataclass(frozen=True)
class BuildWarning:
    """A warning BuildKit gives about the Dockerfile (with the line, when it knows it)."""

    vertex: str
    text: str
    detail: tuple[str, ...] = ()
    url: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Update:
    """One decoded trace message."""

    steps: tuple[Step, ...] = ()
    progress: tuple[Progress, ...] = ()
    logs: tuple[Log, ...] = ()
    warnings: tuple[BuildWarning, ...] = ()


def _seconds(message: Any, name: str) -> float | None:
    if not message.HasField(name):
        return None
    stamp = getattr(message, name)
    return float(stamp.seconds) + float(stamp.nanos) / 1e9


def decode(aux: str) -> Update:
    """A trace message's `aux` (base64 of a StatusResponse) as records; `MessageError` when
    it is not one."""
    try:
        raw = base64.b64decode(aux, validate=True)
    except (binascii.Error, ValueError):
        raise messages.MessageError("a trace message is not base64") from None
    status: Any = messages.parse(_STATUS, raw)
    steps = tuple(
        Step(
            v.digest,
            v.name,
            v.cached,
            _seconds(v, "started"),
            _seconds(v, "completed"),
            v.error,
        )
        for v in status.vertexes
    )
    progress = tuple(
        Progress(s.vertex, s.ID, s.current, s.total, s.HasField("completed"))
        for s in status.statuses
    )
    logs = tuple(Log(entry.vertex, entry.stream, entry.msg) for entry in status.logs)
    warnings = tuple(
        BuildWarning(
            w.vertex,
            w.short.decode("utf-8", "replace"),
            tuple(d.decode("utf-8", "replace") for d in w.detail),
            w.url,
            w.ranges[0].start.line if w.ranges else None,
        )
        for w in status.warnings
    )
    return Update(steps, progress, logs, warnings)


@dataclass
class StepState:
    """What is known of one step so far."""

    number: int
    step: Step
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    partial: str = ""


class Trace:
    """Follows a build's updates: its steps in order, each one's last lines of output."""

    def __init__(self) -> None:
        self.steps: dict[str, StepState] = {}
        self.warnings: list[BuildWarning] = []

    def add(self, update: Update) -> None:
        for step in update.steps:
            known = self.steps.get(step.digest)
            if known is None:
                self.steps[step.digest] = StepState(len(self.steps) + 1, step)
            else:
                known.step = step
        for log in update.logs:
            state = self.steps.get(log.vertex)
            if state is not None:
                text = state.partial + log.data.decode("utf-8", "replace")
                *lines, state.partial = text.split("\n")
                state.tail.extend(line.rstrip("\r") for line in lines)
        self.warnings.extend(w for w in update.warnings if w not in self.warnings)

    def failed(self) -> StepState | None:
        """The first step that failed (not a step merely cancelled because of it)."""
        failing = [s for s in self.steps.values() if s.step.error]
        real = [s for s in failing if "context canceled" not in s.step.error]
        chosen = real or failing
        return chosen[0] if chosen else None

    def last_lines(self, state: StepState) -> list[str]:
        return [*state.tail, *([state.partial] if state.partial else [])]
