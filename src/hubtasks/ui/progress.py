"""The live views of a build and a push: build steps with the tail of their output (the whole
log kept for a failure), and a bar per layer while pushing (on a terminal) or a summary line
every few seconds (plain). The console owns them; they write through it."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubtasks.ui.console import Console

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
# BuildKit's plain progress (build/buildkit/trace.PlainLines): "#5 [stage-0 2/3] RUN …" starts
# a Dockerfile step; "#5 CACHED", "#5 DONE 0.2s" end one; other "#5 …" lines are its output.
_BUILDKIT_STEP = re.compile(r"^#\d+ (\[(?:[^\]]*\s)?\d+/\d+\] .*)$")
_BUILDKIT_END = re.compile(r"^#\d+ (CACHED|DONE \S+|ERROR: .*)$")
_FAILURE_LOG_LINES = 10_000  # kept for the failure dump; bounded so a huge log stays cheap
PROGRESS_INTERVAL = 5.0  # seconds between progress lines in plain mode


def human_size(size: float | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def clean(text: str) -> str:
    """Plain text: no escape sequences, carriage returns become line ends."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


class BuildView:
    """Build output: step headers, the tail of the current step, the log kept for failures."""

    TAIL = 6

    def __init__(self, console: Console, ref: str) -> None:
        self.console, self.ref = console, ref
        self.step: str | None = None
        self.tail: deque[str] = deque(maxlen=self.TAIL)
        self.log: deque[str] = deque(maxlen=_FAILURE_LOG_LINES)
        self.partial = ""
        self.started = time.monotonic()

    def feed(self, text: str) -> None:
        text = self.partial + text
        *lines, self.partial = text.split("\n")
        if self.console.mode == "plain":
            self._plain(lines)
            return
        for line in lines:
            self.line(line)

    def _plain(self, lines: list[str]) -> None:
        """Plain mode, per chunk: one clean, then the console's block write."""
        kept = [line.rstrip() for line in clean("\n".join(lines)).split("\n")]
        kept = [line for line in kept if line]
        self.log.extend(kept)
        self.console.write_block(kept)

    def line(self, raw: str) -> None:
        line = clean(raw).rstrip()
        if not line:
            return
        self.log.append(line)
        step = _STEP.match(line) or _BUILDKIT_STEP.match(line)
        console = self.console
        if console.mode == "plain":
            console.line(line)
        elif console.mode == "rich":
            if step:
                self.step = line
                self.tail.clear()
                console.stage("build", line)
            elif console.verbose:
                console.line(line)
            elif _BUILDKIT_END.match(line) and self.step and line.startswith(self.step.split()[0]):
                console.stage("build", f"  {line.split(' ', 1)[1]}")
            else:
                self.tail.append(line)

    def failed(self) -> None:
        if self.partial:
            self.line(self.partial)
            self.partial = ""
        if self.console.mode != "rich" or self.console.verbose:
            return  # plain mode already printed everything
        self.console.stage("build", f"the build log ({len(self.log)} lines):")
        for line in self.log:
            self.console.line(f"  {line}")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        title = Text(self.console.redact(f" {self.step or 'sending the build context'}"))
        title.append(f"  {elapsed:.0f}s", style="dim")
        lines = [Text("    " + self.console.redact(t)[:200], style="dim") for t in self.tail]
        return Group(Spinner("dots", text=title), *lines)


def layer_status(status: str) -> str:
    """The daemon's word for a layer, shortened: "Layer already exists" → "exists"."""
    if status in ("Layer already exists", "Already exists"):
        return "exists"
    return status[:1].lower() + status[1:]


# The last status of a layer: pushed, or (pull) extracted or already local.
_LAYER_DONE = ("Pushed", "Layer already exists", "Pull complete", "Already exists")


class PushView:
    """Push progress per layer: a bar each on a terminal, a summary line every few seconds."""

    def __init__(self, console: Console, ref: str, stage: str = "push") -> None:
        self.console, self.ref, self.stage = console, ref, stage
        self.layers: dict[str, list[int]] = {}  # id → [current, total]
        self.done: set[str] = set()
        # The daemon is retrying uploads the registry refused, and none has been taken since.
        self.refusing = False
        self.started = time.monotonic()
        self.last_report = self.started
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    @contextmanager
    def progress(self) -> Iterator[None]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )
        from rich.text import Text

        def sending(task: Any) -> bool:
            """Bytes are known and being (or were) sent: not a layer the registry already had,
            not one still waiting for its size."""
            return bool(task.fields.get("sent", True)) and task.total is not None

        class Bytes(DownloadColumn):
            def render(self, task: Any) -> Text:
                return super().render(task) if sending(task) else Text("")

        class Speed(TransferSpeedColumn):
            def render(self, task: Any) -> Text:
                return super().render(task) if sending(task) else Text("")

        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            Bytes(),
            Speed(),
            TextColumn("{task.fields[status]}"),
            console=self.console.rich,
            transient=True,
        )
        with self._progress:
            yield

    def feed(self, line: Mapping[str, Any]) -> None:
        layer = str(line.get("id") or "")
        status = str(line.get("status") or "")
        if not layer or not status or status.startswith("Pulling from"):
            return  # a pull names its tag as an "id" first: not a layer
        detail = line.get("progressDetail") or {}
        current, total = detail.get("current"), detail.get("total")
        entry = self.layers.setdefault(layer, [0, 0])
        if isinstance(current, int):
            entry[0] = current
        if isinstance(total, int) and total > 0:
            entry[1] = total
        finished = status in _LAYER_DONE or status.startswith("Mounted")
        if finished:
            self.done.add(layer)
        self.refusing = status.startswith("Retrying in") or (self.refusing and not finished)
        if self._progress is not None:
            self._update_bar(layer, status, finished)
        else:
            self._report(layer, status, finished)

    def _update_bar(self, layer: str, status: str, finished: bool) -> None:
        current, total = self.layers[layer]
        word = layer_status(status)
        if status.startswith("Retrying in"):
            word = f"refused, {word}"
        if layer not in self._tasks:
            self._tasks[layer] = self._progress.add_task(
                layer, total=total or None, status="", sent=True
            )
        task_id = self._tasks[layer]
        if finished:
            sent = total > 0  # the daemon reported bytes: this layer was uploaded
            size = total if sent else 1
            self._progress.update(task_id, total=size, completed=size, status=word, sent=sent)
        else:
            self._progress.update(task_id, total=total or None, completed=current, status=word)

    def _report(self, layer: str, status: str, finished: bool) -> None:
        if finished and self.console.verbose:
            self.console.stage(self.stage, f"  layer {layer}: {layer_status(status)}")
        now = time.monotonic()
        sent = sum(c for c, _ in self.layers.values())
        if now - self.last_report < PROGRESS_INTERVAL or not (sent or self.done or self.refusing):
            return  # nothing moved yet: no "0 B of 0 B" line
        self.last_report = now
        if self.refusing:  # bytes go out and are thrown away: no rate to speak of
            self.console.stage(
                self.stage,
                f"  {len(self.done)}/{len(self.layers)} layers: the registry is refusing "
                "uploads (the daemon retries them)",
            )
            return
        total = sum(t for _, t in self.layers.values())
        speed = sent / max(now - self.started, 1e-3)
        moved = "sent" if self.stage == "push" else "received"
        # The daemon's total is a layer's size before compression: what is sent may pass it.
        of = f" of {human_size(total)}" if total and sent <= total else ""
        self.console.stage(
            self.stage,
            f"  {len(self.done)}/{len(self.layers)} layers, {human_size(sent)}{of} {moved}, "
            f"{human_size(speed)}/s",
        )
