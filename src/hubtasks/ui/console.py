"""Everything a person sees. Progress goes to stderr, results to stdout, secrets nowhere.

Three modes, chosen once per command line:
- `rich` (stderr is a terminal): live build steps with the tail of their output, a progress
  bar per layer while pushing, spinners for anything slow, a summary table (the `rich` library,
  imported only in this mode);
- `plain` (CI, pipes, files): whole lines only, no escape sequences, no carriage returns;
  progress every few seconds and a "still …" line when nothing was said for a while;
- `quiet`: nothing but the final references on stdout (and errors).

Every write passes through `redact`, so a token that slips into a daemon message, an error, a
hook's output or a build log is replaced by `<hidden>` before it reaches the terminal.
(`stopwatch` times the stages; `github_output` writes the GitHub Actions outputs.)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from hubtasks.errors import OutputClosed
from hubtasks.ui import redaction
from hubtasks.ui.progress import BuildView, PushView, clean
from hubtasks.ui.progress import human_size as human_size  # also for the pipeline

if TYPE_CHECKING:
    from hubtasks.pipeline.plan import Plan
    from hubtasks.pipeline.results import Release
    from hubtasks.references import Repository

HIDDEN = redaction.HIDDEN


@dataclass(frozen=True)
class Check:
    """One row of `inv doctor`."""

    name: str
    ok: bool | None  # None: a warning that does not block a release
    detail: str
    fix: str = ""


HEARTBEAT_INTERVAL = 10.0  # a plain-mode "still …" line after this much silence


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
        self._unquiet = self.mode  # the mode a task without --quiet gets back
        self.verbose = verbose
        self._lock = threading.RLock()
        self._last_output = time.monotonic()
        self._rich: Any = None
        self._build: BuildView | None = None
        self._push: PushView | None = None
        for secret in secrets:
            self.add_secret(secret)

    # --- configuration ------------------------------------------------------------------------
    def configure(
        self, *, quiet: bool | None = None, verbose: bool = False, progress: str = "auto"
    ) -> None:
        """Per-task flags: --quiet for this task only (`inv build -q push`: the push is not
        quiet; None leaves it as it is), --verbose shows whole build logs; `progress`
        (HUB_PROGRESS, from the settings: the environment or .env) forces plain or rich."""
        if progress in ("plain", "rich"):
            self._unquiet = progress
        if quiet is not None:
            self.mode = "quiet" if quiet else self._unquiet
        elif self.mode != "quiet":
            self.mode = self._unquiet
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
    def line(self, text: str) -> None:
        """One line for people, on stderr (nothing in quiet mode); a hook's output too."""
        if self.mode == "quiet":
            return
        with self._lock:
            self._last_output = time.monotonic()
            if self.mode == "rich":
                from rich.text import Text

                self.rich.print(Text(self.redact(text)))
            else:
                self.err.write(self.redact(clean(text)) + "\n")
                self.err.flush()

    def write_block(self, lines: Sequence[str]) -> None:
        """Plain mode: many lines in one redact and one write (a 100k-line build log stays
        cheap), flushed at most every 50 ms so that it still reads live."""
        if self.mode == "quiet" or not lines:
            return
        with self._lock:
            now = time.monotonic()
            self.err.write(self.redact("\n".join(lines)) + "\n")
            if now - self._last_output > 0.05:
                self.err.flush()
                self._last_output = now

    def result(self, line: str) -> None:
        """A final result, on stdout so that scripts can capture it. A reader that went away
        (`| head -1`) is one error, and stdout then points at /dev/null: nothing else (Python's
        flush at exit included) writes to the closed pipe."""
        with self._lock:
            try:
                self.out.write(self.redact(line) + "\n")
                self.out.flush()
            except BrokenPipeError:
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())
                raise OutputClosed(
                    "stdout was closed before every result was written (its reader went "
                    "away), and nothing was done after that; run the command again to see "
                    "where it stands"
                ) from None

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
            self.line(f"{label}{message}")
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
                    self.line(f"[{stage}] still {message} ({time.monotonic() - start:.0f}s)")

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
        view = BuildView(self, ref)
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
            self.line(text.rstrip("\n"))
            return
        self._build.feed(text)

    # --- push -----------------------------------------------------------------------------------
    @contextmanager
    def pushing(self, ref: str, *, stage: str = "push") -> Iterator[None]:
        """Around a push (or, with `stage` "pull", a pull): per-layer progress fed through
        `push_progress`."""
        view = PushView(self, ref, stage)
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
    def plan_lines(self, release_plan: Plan, repository: Repository) -> None:
        """The plan as a person reads it (stderr): a line per tag, in the plan's words."""
        how = ""
        source = release_plan.source
        if release_plan.to_push and not release_plan.build and source is not None:
            how = f" (copy of {source.digest[:19]}, no build)"
        for d in release_plan.decisions:
            suffix = how if d.pushes else ""
            self.stage(
                "plan", f"{repository.canonical(d.tag)}: {d.action.words} ({d.reason}){suffix}"
            )

    def render_plan(self, release: Release) -> None:
        """A dry run's result on stdout: one row per tag, then the equivalent commands."""
        for each in release.destinations:  # the first destination, then each further one
            self.result(f"plan for {each.repository} (dry run, nothing changed):")
            width = max(len(d.tag) for d in each.plan.decisions)
            for d in each.plan.decisions:
                self.result(f"  {d.tag:<{width}}  {d.action:<6}  {d.reason}")
        self.result("equivalent docker commands:")
        for command in release.commands:
            self.result(f"  {command}")

    def summary(self, release: Release, *, size: int | None = None) -> None:
        """What was published: reference, digest, action; size and time per stage."""
        if self.mode == "quiet":
            return
        rows = []
        for each in release.destinations:
            digests = {p.tag: p.digest for p in each.published}
            rows += [
                (each.repository.canonical(d.tag), digests.get(d.tag) or "—", d.action)
                for d in each.plan.decisions
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
        self.line("[summary]")
        for reference, digest, action in rows:
            self.line(f"  {reference:<{width}}  {digest[:19]:<19}  {action}")
        self.line(f"  {footer}")

    def render_checks(self, checks: Sequence[Check]) -> None:
        """Doctor's report on stdout: ✓ / ✗ / ! per check, with the fix for each problem."""
        marks = {True: "✓", False: "✗", None: "!"}
        width = max(len(check.name) for check in checks)
        for check in checks:
            line = f"{marks[check.ok]} {check.name:<{width}}  {check.detail}"
            if check.ok is not True and check.fix:
                line += f"\n  {'':<{width}}  fix: {check.fix}"
            self.result(line)

    def render_images(self, repository: Repository, rows: Sequence[Mapping[str, Any]]) -> None:
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
