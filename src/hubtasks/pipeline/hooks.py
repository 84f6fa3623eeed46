"""Pre/post hooks around every stage, as shell commands (settings) or Python (registered).

Shell hooks come from `HUB_PRE_RELEASE`, `HUB_POST_PUSH`, … (or `hub.pre_release` in Invoke
config) and run through Invoke with the facts in their environment: HUB_STAGE, HUB_IMAGE,
HUB_TAGS, HUB_DIGEST, HUB_REFS, HUB_IMAGE_ID, HUB_PLATFORMS, HUB_PLATFORM_DIGESTS. Python hooks
are Invoke tasks or plain callables registered with `hook("post_push", fn)`; they receive the
Invoke context and a `Facts`.

What a hook prints goes to stderr, line by line, through the same redaction as the build log:
stdout holds only results. A failing pre-hook stops its stage before any side effect; a
failing post-hook fails the command and says that the stage itself succeeded (the error's
`stage` and `pushed` fields say the same). Either is one line. Each hook runs once per
invocation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from invoke.runners import Local, Result

from hubtasks.errors import ConfigError, HookError
from hubtasks.settings.keys import HOOK_NAMES
from hubtasks.ui.redaction import redact

if TYPE_CHECKING:
    from hubtasks.pipeline.results import PushedTag, Release


HookFunction = Callable[[Any, "Facts"], Any]
# Process-wide: a tasks.py registers its hooks when Invoke imports it, before any session
# exists, and Invoke hands tasks no object of ours to keep them on.
_REGISTERED: dict[str, list[HookFunction]] = {}


@dataclass
class Facts:
    """What a hook is told: the stage, the image, its tags, digest and references."""

    stage: str
    image: str  # registry/namespace/name
    tags: list[str] = field(default_factory=list)
    digest: str | None = None
    refs: list[str] = field(default_factory=list)
    image_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Multi-platform: each platform → its image ID (build) or manifest digest (push, release);
    # "" before the build (pre_release): the platforms are known, nothing else yet.
    platforms: dict[str, str] = field(default_factory=dict)
    # Every destination of a release (the first is `image`); HUB_REFS lists all their tags.
    destinations: list[str] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        return {
            "HUB_STAGE": self.stage,
            "HUB_IMAGE": self.image,
            "HUB_DESTINATIONS": " ".join(self.destinations or [self.image]),
            "HUB_TAGS": " ".join(self.tags),
            "HUB_DIGEST": self.digest or "",
            "HUB_REFS": " ".join(self.refs),
            "HUB_IMAGE_ID": self.image_id or "",
            "HUB_PLATFORMS": " ".join(self.platforms),
            "HUB_PLATFORM_DIGESTS": " ".join(f"{p}={d}" for p, d in self.platforms.items() if d),
        }

    def record_published(
        self,
        published: list[PushedTag],
        platforms: dict[str, str],
        timings: Mapping[str, float],
        mirrors: Sequence[Release] = (),
    ) -> None:
        """What a post hook learns once tags are in the registry: every reference, the first
        one's digest, each platform's manifest digest, and the seconds per stage so far; with
        `mirrors` (a release's further destinations) every destination and all their tags."""
        if mirrors:
            self.destinations = [self.image, *(str(m.repository) for m in mirrors)]
        everywhere = [*published, *(p for m in mirrors for p in m.published)]
        self.refs = [p.reference for p in everywhere]
        if published:  # the tags of those references (unchanged ones too), as HUB_REFS has
            self.tags = [p.tag for p in published]
        self.digest = published[0].digest if published else None
        self.platforms = platforms
        self.timings.update(timings)


def _check_name(name: str) -> str:
    if name not in HOOK_NAMES:
        raise ConfigError(f"unknown hook '{name}'; hooks are {', '.join(HOOK_NAMES)}")
    return name


def hook(name: str, function: HookFunction | None = None) -> Any:
    """Register a Python hook: `hook("post_push", notify)` or `@hook("post_push")`.

    `function` is an Invoke task or any callable taking (context, facts).
    """
    _check_name(name)

    def register(fn: HookFunction) -> HookFunction:
        _REGISTERED.setdefault(name, []).append(fn)
        return fn

    return register(function) if function is not None else register


def _describe(fn: Any) -> str:
    return getattr(fn, "name", None) or getattr(fn, "__name__", None) or repr(fn)


def _lines_to(stream: Any) -> Callable[[str], None]:
    def write_line(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write_line


class LineWriter:
    """A text stream for a hook's output: whole lines, each redacted and handed to
    `write_line`. A line is held until it ends, so that a secret split across two reads is
    still recognised; `close` hands over an unfinished last line."""

    def __init__(self, write_line: Callable[[str], None]) -> None:
        self.write_line = write_line
        self.partial = ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).replace("\r\n", "\n").split("\n")
        for line in lines:
            self.write_line(redact(line))
        return len(text)

    def flush(self) -> None:
        """Invoke flushes after every read; a line is written when it is complete."""

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self.partial:
            self.write_line(redact(self.partial))
            self.partial = ""


def summarize(error: BaseException) -> str:
    """A failure of a hook in one line: Invoke's multi-line `UnexpectedExit` becomes the
    command and its exit code."""
    from invoke.exceptions import Failure, UnexpectedExit

    if isinstance(error, UnexpectedExit):
        return f"'{error.result.command}' failed with exit code {error.result.exited}"
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    if isinstance(error, Failure):
        return f"'{error.result.command}' failed: {first}"
    return first or type(error).__name__


class _Interruptible(Local):
    """Invoke's local runner, but for an interrupt while the hook runs (Ctrl-C, or SIGTERM and
    SIGHUP, which the command line raises as one): Invoke's own writes ^C to the hook's stdin
    and waits on, so the hook ran to its end and the command went on as if nothing happened.
    Here the hook's process is sent SIGTERM, and the interrupt is raised again once it ended."""

    interrupted: KeyboardInterrupt | None = None

    def run(self, command: str, **kwargs: Any) -> Result:
        try:
            return super().run(command, **kwargs)
        finally:
            if self.interrupted is not None:  # before the failure of a hook we stopped
                raise self.interrupted

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        self.interrupted = interrupt
        with contextlib.suppress(OSError, AttributeError):
            os.kill(self.process.pid, signal.SIGTERM)


@contextlib.contextmanager
def _interruptible(context: Any) -> Iterator[None]:
    """A Python hook's `c.run` goes through `_Interruptible` too (Invoke's `runners.local`)."""
    runners = getattr(getattr(context, "config", None), "runners", None)
    if runners is None:
        yield
        return
    before = runners.local
    runners.local = _Interruptible
    try:
        yield
    finally:
        runners.local = before


class Hooks:
    """Runs the hooks of one invocation, each at most once.

    `say` prints a status line (`[hook] pre_push: …`); `output` takes each line a hook prints
    (redacted; by default it goes to stderr); `functions` are the Python hooks by name (by
    default those registered with `hook`).
    """

    def __init__(
        self,
        commands: Mapping[str, str | None],
        context: Any,
        say: Callable[[str, str], None],
        output: Callable[[str], None] | None = None,
        functions: Mapping[str, list[HookFunction]] | None = None,
    ) -> None:
        self.commands = {k: v for k, v in commands.items() if v}
        self.context = context
        self.say = say
        self.output = output or _lines_to(sys.stderr)
        self.functions = _REGISTERED if functions is None else functions
        self.ran: set[str] = set()
        # A shell hook gets HUB_TOKEN wherever it was set (.env too), as from the environment;
        # what the hook prints is redacted like everything else.
        self.token: str | None = None

    def update_commands(self, commands: Mapping[str, str | None]) -> None:
        for name, command in commands.items():
            if command and name not in self.commands:
                self.commands[name] = command

    def will_run(self, side: str, stage: str) -> bool:
        """Whether a hook (a command or a Python function) is still to run there."""
        name = f"{side}_{stage}"
        return name not in self.ran and bool(self.commands.get(name) or self.functions.get(name))

    def run(self, side: str, facts: Facts) -> None:
        name = f"{side}_{facts.stage}"
        if name in self.ran:
            return
        self.ran.add(name)
        command = self.commands.get(name)
        if command:
            self._shell(name, command, facts)
        for fn in list(self.functions.get(name, ())):
            self._python(name, fn, facts)

    def _failure(self, name: str, what: str, facts: Facts) -> HookError:
        if name.startswith("pre_"):
            return HookError(
                f"{name} hook {what}; the {facts.stage} stage did not run and nothing was changed",
                stage=facts.stage,
            )
        done = f" ({' '.join(facts.refs)})" if facts.refs else ""
        return HookError(
            f"{name} hook {what}; the {facts.stage} stage itself succeeded{done}",
            stage=facts.stage,
            pushed=facts.refs,
        )

    @contextlib.contextmanager
    def _captured(self) -> Iterator[tuple[LineWriter, LineWriter]]:
        """stdout and stderr writers for a hook; print(), Invoke's echo and a Python hook's own
        `c.run` land there too."""
        out, err = LineWriter(self.output), LineWriter(self.output)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield out, err
        finally:
            out.close()
            err.close()

    def _shell(self, name: str, command: str, facts: Facts) -> None:
        self.say("hook", f"{name}: {' '.join(command.split())}")
        start = time.monotonic()
        with self._captured() as (out, err):
            try:
                result = _Interruptible(self.context).run(
                    command,
                    env={
                        **facts.environment(),
                        **({"HUB_TOKEN": self.token} if self.token else {}),
                    },
                    warn=True,
                    hide=False,
                    in_stream=False,
                    out_stream=out,
                    err_stream=err,
                )
            except Exception as error:  # noqa: BLE001 - Invoke's for a missing shell, a bad command…
                what = f"'{command}' could not run: {summarize(error)}"
                raise self._failure(name, what, facts) from None
        facts.timings[name] = time.monotonic() - start
        if result.exited != 0:
            raise self._failure(name, f"'{command}' failed with exit code {result.exited}", facts)

    def _python(self, name: str, fn: HookFunction, facts: Facts) -> None:
        label = _describe(fn)
        self.say("hook", f"{name}: {label}()")
        with self._captured(), _interruptible(self.context):
            try:
                fn(self.context, facts)
            except HookError:
                raise
            except SystemExit as error:
                if error.code not in (0, None):
                    what = f"{label} exited with {error.code}"
                    raise self._failure(name, what, facts) from None
            except Exception as error:  # noqa: BLE001 - the user's code: any failure is one line
                what = f"{label} failed: {summarize(error)}"
                raise self._failure(name, what, facts) from None
