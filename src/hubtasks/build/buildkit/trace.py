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


def _elapsed(step: Step) -> str:
    if step.started is None or step.completed is None:
        return ""
    return f" {max(step.completed - step.started, 0.0):.1f}s"


class PlainLines:
    """The trace as `docker build --progress=plain` prints it: `#N name`, `#N <output>`,
    `#N CACHED`, `#N DONE 0.3s`, `#N ERROR: …`, and BuildKit's warnings."""

    def __init__(self, followed: Trace) -> None:
        self.followed = followed
        self._said: dict[str, str] = {}  # digest → the last state announced

    def lines(self, update: Update) -> list[str]:
        """Add `update` to the trace; the lines it adds to the output."""
        before = {digest: state.step for digest, state in self.followed.steps.items()}
        self.followed.add(update)
        out: list[str] = []
        for step in update.steps:
            out.extend(self._step_lines(step, before.get(step.digest)))
        for log in update.logs:
            state = self.followed.steps.get(log.vertex)
            if state is None:
                continue
            for line in log.data.decode("utf-8", "replace").splitlines():
                out.append(f"#{state.number} {line}")
        out.extend(self._progress_lines(update.progress))
        for warning in update.warnings:
            where = f" (line {warning.line})" if warning.line else ""
            out.append(f"WARNING: {warning.text}{where}")
        return out

    def _progress_lines(self, progress: tuple[Progress, ...]) -> list[str]:
        """`#N transferring context: 31.46MB done`: what a step moved, once it is done."""
        out = []
        for item in progress:
            state = self.followed.steps.get(item.vertex)
            key = f"{item.vertex} {item.id}"
            if state is None or not item.done or key in self._said:
                continue
            self._said[key] = "done"
            out.append(f"#{state.number} {item.id} {_size(item.current)} done")
        return out

    def _step_lines(self, step: Step, before: Step | None) -> list[str]:
        number = self.followed.steps[step.digest].number
        out: list[str] = []
        if step.started is None and not (step.cached or step.error or step.completed):
            return out  # named when it starts, as --progress=plain does
        if before is None or self._said.get(step.digest) is None:
            out.append(f"#{number} {step.name}")
            self._said[step.digest] = "named"
        if step.cached and self._said[step.digest] != "cached":
            out.append(f"#{number} CACHED")
            self._said[step.digest] = "cached"
        elif step.error and self._said[step.digest] != "error":
            out.append(f"#{number} ERROR: {step.error}")
            self._said[step.digest] = "error"
        elif step.completed is not None and self._said[step.digest] == "named":
            out.append(f"#{number} DONE{_elapsed(step)}")
            self._said[step.digest] = "done"
        return out


def _size(count: int) -> str:
    """Bytes as docker's progress writes them (decimal units)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit}"
    return f"{count}B"


def dockerfile_line(dockerfile: str, step_name: str) -> int | None:
    """The line of the Dockerfile a step's name (`[stage-0 2/3] RUN false`) comes from: the
    first instruction line its command starts."""
    command = step_name.split("] ", 1)[-1].strip()
    if not command:
        return None
    head = " ".join(command.split())[:60]
    for number, line in enumerate(dockerfile.splitlines(), start=1):
        text = " ".join(line.split())
        continued = text.removesuffix("\\").strip()
        if text.startswith(head) or (len(continued) > 4 and head.startswith(continued)):
            return number
    return None


def failure(followed: Trace, dockerfile: str, message: str) -> str:
    """The daemon's error, with the failing step, its Dockerfile line and its last output."""
    state = followed.failed()
    if state is None:
        return message
    name = state.step.name
    line = dockerfile_line(dockerfile, name)
    where = f" (Dockerfile line {line})" if line else ""
    said = [line for line in followed.last_lines(state) if line.strip()][-3:]
    output = f"; its last output: {' | '.join(said)}" if said else ""
    return f"at {name}{where}: {state.step.error or message}{output}"
