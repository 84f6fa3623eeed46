"""Everything a person sees. Progress goes to stderr, results to stdout, secrets nowhere.

Three modes, chosen once per command line:
- `rich` (stderr is a terminal): live build steps with the tail of their output, a progress
  bar per layer while pushing, spinners for anything slow, a summary table (the `rich` library,
  imported only in this mode);
- `plain` (CI, pipes, files): whole lines only, no escape sequences, no carriage returns;
  progress every few seconds and a "still …" line when nothing was said for a while;
- `quiet`: nothing but the final references on stdout (and errors).

Every write passes through `redact`, so a token that slips into a daemon message, an error or
a build log is replaced by `<hidden>` before it reaches the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from . import redaction

HIDDEN = redaction.HIDDEN

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_FAILURE_LOG_LINES = 10_000  # kept for the failure dump; bounded so a huge log stays cheap
PROGRESS_INTERVAL = 5.0  # seconds between progress lines in plain mode
HEARTBEAT_INTERVAL = 10.0  # a plain-mode "still …" line after this much silence


def human_size(size: float | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _clean(text: str) -> str:
    """Plain text: no escape sequences, carriage returns become line ends."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def choose_mode(stream: TextIO, *, quiet: bool = False) -> str:
    if quiet:
        return "quiet"
    forced = os.environ.get("HUB_PROGRESS", "").lower()
    if forced in ("plain", "rich"):
        return forced
    is_tty = getattr(stream, "isatty", lambda: False)()
    return "rich" if is_tty and os.environ.get("TERM") != "dumb" else "plain"


class Console:
    def __init__(
        self,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        secrets: Iterable[str] = (),
        mode: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.mode = mode or choose_mode(self.err)
        self.verbose = verbose
        self._lock = threading.RLock()
        self._last_output = time.monotonic()
        self._rich: Any = None
        self._build: _BuildView | None = None
        self._push: _PushView | None = None
        for secret in secrets:
            self.add_secret(secret)

    # --- configuration ------------------------------------------------------------------------
    def configure(self, *, quiet: bool = False, verbose: bool = False) -> None:
        """Per-task flags: --quiet wins, --verbose shows whole build logs."""
        if quiet:
            self.mode = "quiet"
        self.verbose = self.verbose or verbose

    def add_secret(self, secret: str | None) -> None:
        """Hide `secret` everywhere: this console, every other, and log records."""
        redaction.add_secret(secret)

    def redact(self, text: str) -> str:
        return redaction.redact(text)

    @property
    def rich(self) -> Any:
        """The rich Console on stderr (rich mode only); NO_COLOR is honoured by rich."""
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.err, highlight=False, soft_wrap=False)
        return self._rich

    # --- low level ------------------------------------------------------------------------------
    def _err_line(self, text: str) -> None:
        if self.mode == "quiet":
            return
        with self._lock:
            self._last_output = time.monotonic()
            if self.mode == "rich":
                from rich.text import Text

                self.rich.print(Text(self.redact(text)))
            else:
                self.err.write(self.redact(_clean(text)) + "\n")
                self.err.flush()

    def result(self, line: str) -> None:
        """A final result, on stdout so that scripts can capture it."""
        with self._lock:
            self.out.write(self.redact(line) + "\n")
            self.out.flush()

    def json_result(self, document: Mapping[str, Any]) -> None:
        import json

        self.result(json.dumps(document, indent=2))

    # --- status lines -------------------------------------------------------------------------
    def stage(self, stage: str, message: str) -> None:
        """One status line: `[stage] message`."""
        self._labelled(f"[{stage}] ", "bold cyan", message)

    def warn(self, message: str) -> None:
        self._labelled("warning: ", "bold yellow", message)

    def _labelled(self, label: str, style: str, message: str) -> None:
        """`label` + `message` on stderr; on a terminal the label in `style`."""
        if self.mode != "rich":
            self._err_line(f"{label}{message}")
            return
        from rich.text import Text

        with self._lock:
            self.rich.print(Text.assemble((label, style), self.redact(message)))

    @contextmanager
    def activity(self, stage: str, message: str) -> Iterator[None]:
        """Something that may take a while: a spinner on a terminal, "still …" lines in CI."""
        if self.mode == "rich":
            with self.rich.status(self.redact(f"[{stage}] {message}…"), spinner="dots"):
                yield
            return
        with self._heartbeat(stage, message):
            yield

    @contextmanager
    def _heartbeat(self, stage: str, message: str) -> Iterator[None]:
        if self.mode != "plain":
            yield
            return
        stop = threading.Event()
        start = time.monotonic()

        def beat() -> None:
            while not stop.wait(0.1):
                with self._lock:
                    self.err.flush()  # lines written without a flush are out within 0.1 s
                if time.monotonic() - self._last_output >= HEARTBEAT_INTERVAL:
                    self._err_line(f"[{stage}] still {message} ({time.monotonic() - start:.0f}s)")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # --- build ----------------------------------------------------------------------------------
    @contextmanager
    def building(self, ref: str) -> Iterator[None]:
        """Around a build: steps live (rich) or the whole log (plain); the log on failure."""
        view = _BuildView(self, ref)
        self._build = view
        try:
            if self.mode == "rich":
                from rich.live import Live

                with Live(view, console=self.rich, refresh_per_second=8, transient=True):
                    yield
            else:
                with self._heartbeat("build", f"building {ref}"):
                    yield
        except BaseException:
            view.failed()
            raise
        finally:
            self._build = None
            self.err.flush()

    def build_output(self, text: str) -> None:
        """Daemon build output as it arrives (chunks may hold several lines or end mid-line)."""
        if self._build is None:
            self._err_line(text.rstrip("\n"))
            return
        self._build.feed(text)

    # --- push -----------------------------------------------------------------------------------
    @contextmanager
    def pushing(self, ref: str, *, stage: str = "push") -> Iterator[None]:
        """Around a push (or, with `stage` "pull", a pull): per-layer progress fed through
        `push_progress`."""
        view = _PushView(self, ref, stage)
        self._push = view
        try:
            if self.mode == "rich":
                with view.progress():
                    yield
            else:
                with self._heartbeat(stage, f"{stage}ing {ref}"):
                    yield
        finally:
            self._push = None

    def push_progress(self, line: Mapping[str, Any]) -> None:
        if self._push is not None:
            self._push.feed(line)

    # --- results --------------------------------------------------------------------------------
    def render_plan(self, release: Any) -> None:
        """A dry run's result on stdout: one row per tag, then the equivalent commands."""
        repository = release.repository
        self.result(f"plan for {repository} (dry run, nothing changed):")
        width = max(len(d.tag) for d in release.plan.decisions)
        for d in release.plan.decisions:
            self.result(f"  {d.tag:<{width}}  {d.action:<6}  {d.reason}")
        self.result("equivalent docker commands:")
        for command in release.commands:
            self.result(f"  {command}")

    def summary(self, release: Any, *, size: int | None = None) -> None:
        """What was published: reference, digest, action; size and time per stage."""
        if self.mode == "quiet":
            return
        digests = {p.tag: p.digest for p in release.published}
        rows = [
            (release.repository.canonical(d.tag), digests.get(d.tag) or "—", d.action)
            for d in release.plan.decisions
        ]
        timings = "  ".join(f"{k} {v:.1f}s" for k, v in release.timings.items())
        built = f"image {human_size(size)}" if size is not None else "nothing built"
        footer = f"{built}  ·  {timings}"
        if self.mode == "rich":
            from rich.table import Table

            table = Table(title="published", title_justify="left", box=None, pad_edge=False)
            for column in ("reference", "digest", "action"):
                table.add_column(column, no_wrap=True)
            for reference, digest, action in rows:
                style = {"create": "green", "move": "yellow", "hold": "dim", "skip": "dim"}
                table.add_row(reference, digest[:19], action, style=style.get(action))
            with self._lock:
                self.rich.print(table)
                self.rich.print(footer, style="dim")
            return
        width = max(len(r[0]) for r in rows)
        self._err_line("[summary]")
        for reference, digest, action in rows:
            self._err_line(f"  {reference:<{width}}  {digest[:19]:<19}  {action}")
        self._err_line(f"  {footer}")

    def render_checks(self, checks: list[Any]) -> None:
        """Doctor's report on stdout: ✓ / ✗ / ! per check, with the fix for each problem."""
        marks = {True: "✓", False: "✗", None: "!"}
        width = max(len(check.name) for check in checks)
        for check in checks:
            line = f"{marks[check.ok]} {check.name:<{width}}  {check.detail}"
            if check.ok is not True and check.fix:
                line += f"\n  {'':<{width}}  fix: {check.fix}"
            self.result(line)

    def render_images(self, repository: Any, rows: list[Mapping[str, Any]]) -> None:
        """`inv images`: tag, short ID, size and age, newest first."""
        if not rows:
            self.result(f"no local images of {repository.local_name}")
            return
        now = time.time()
        table = [("TAG", "IMAGE ID", "SIZE", "CREATED")]
        for row in rows:
            image_id = str(row["id"]).removeprefix("sha256:")[:12]
            table.append(
                (row["tag"], image_id, human_size(row["size"]), _age(now - (row["created"] or now)))
            )
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        self.result(f"{repository.local_name}")
        for cells in table:
            self.result(
                "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            )


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


class _BuildView:
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
        """Plain mode, per chunk: one clean, one redact, one write (a 100k-line log is cheap)."""
        kept = [line.rstrip() for line in _clean("\n".join(lines)).split("\n")]
        kept = [line for line in kept if line]
        if not kept:
            return
        self.log.extend(kept)
        console = self.console
        with console._lock:
            now = time.monotonic()
            console.err.write(console.redact("\n".join(kept)) + "\n")
            if now - console._last_output > 0.05:  # live, without a syscall per line
                console.err.flush()
                console._last_output = now

    def line(self, raw: str) -> None:
        line = _clean(raw).rstrip()
        if not line:
            return
        self.log.append(line)
        step = _STEP.match(line)
        console = self.console
        if console.mode == "plain":
            console._err_line(line)
        elif console.mode == "rich":
            if step:
                self.step = line
                self.tail.clear()
                console.stage("build", line)
            elif console.verbose:
                console._err_line(line)
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
            self.console._err_line(f"  {line}")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        title = Text(self.console.redact(f" {self.step or 'sending the build context'}"))
        title.append(f"  {elapsed:.0f}s", style="dim")
        lines = [Text("    " + self.console.redact(t)[:200], style="dim") for t in self.tail]
        return Group(Spinner("dots", text=title), *lines)


# The last status of a layer: pushed, or (pull) extracted or already local.
_LAYER_DONE = ("Pushed", "Layer already exists", "Pull complete", "Already exists")


class _PushView:
    """Push progress per layer: a bar each on a terminal, a summary line every few seconds."""

    def __init__(self, console: Console, ref: str, stage: str = "push") -> None:
        self.console, self.ref, self.stage = console, ref, stage
        self.layers: dict[str, list[int]] = {}  # id → [current, total]
        self.done: set[str] = set()
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

        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
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
        if self._progress is not None:
            self._update_bar(layer, status, finished)
        else:
            self._report(layer, status, finished)

    def _update_bar(self, layer: str, status: str, finished: bool) -> None:
        current, total = self.layers[layer]
        if layer not in self._tasks:
            self._tasks[layer] = self._progress.add_task(layer, total=total or None, status="")
        task_id = self._tasks[layer]
        if finished:
            size = max(current, total, 1)
            self._progress.update(task_id, total=size, completed=size, status=status.lower())
        else:
            self._progress.update(
                task_id, total=total or None, completed=current, status=status.lower()
            )

    def _report(self, layer: str, status: str, finished: bool) -> None:
        if finished and self.console.verbose:
            self.console.stage(self.stage, f"  layer {layer}: {status.lower()}")
        now = time.monotonic()
        if now - self.last_report < PROGRESS_INTERVAL:
            return
        self.last_report = now
        sent = sum(c for c, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        speed = sent / max(now - self.started, 1e-3)
        moved = "sent" if self.stage == "push" else "received"
        self.console.stage(
            self.stage,
            f"  {len(self.done)}/{len(self.layers)} layers, {human_size(sent)} of "
            f"{human_size(total)} {moved}, {human_size(speed)}/s",
        )


def write_github_output(path: str, release: Any) -> None:
    """Append `digest`, `tags`, `image` and `refs` for later GitHub Actions steps."""
    import uuid

    tags = ",".join(p.tag for p in release.published)
    refs = "\n".join(p.reference for p in release.published)
    delimiter = f"hubtasks_{uuid.uuid4().hex}"
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(f"image={release.repository}\n")
        stream.write(f"digest={release.digest or ''}\n")
        stream.write(f"tags={tags}\n")
        stream.write(f"refs<<{delimiter}\n{refs}\n{delimiter}\n")


class Stopwatch:
    """Seconds per named stage, for the summary and the JSON result."""

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
