"""SIGTERM and SIGHUP end a command line as Ctrl-C does.

CI cancellation and `timeout` send SIGTERM, a closed terminal SIGHUP; Python's default for both
is to die at once, without the `hubtasks: interrupted …` line, the `--json` error document or
what had been pushed. Here each raises `Terminated` (a `KeyboardInterrupt`) in the main thread,
so every place that handles Ctrl-C handles them; the exit code keeps the shell's convention,
128 + the signal's number (143, 129; Ctrl-C stays 130).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def handle_termination() -> None:
    """From now on SIGTERM and SIGHUP raise `Terminated` (main thread only, and only where the
    signal still has Python's default: a SIGHUP ignored under `nohup` stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _HANDLED:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _raise)


def how_interrupted(stop: KeyboardInterrupt) -> tuple[str, int]:
    """The words and the exit code of an interruption: Ctrl-C, or the signal that stopped us."""
    if isinstance(stop, Terminated):
        return f"interrupted ({stop.name})", 128 + stop.signum
    return "interrupted", 130
