"""The one way a test makes a console: plain lines (or the mode asked for) into two
`io.StringIO`s, read back with `console.out.getvalue()` / `console.err.getvalue()`, with the
secrets it must hide."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TextIO

from hubtasks.ui.console import Console


def make_console(
    mode: str = "plain",
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    secrets: Iterable[str] = (),
    verbose: bool = False,
) -> Console:
    return Console(
        out=io.StringIO() if out is None else out,
        err=io.StringIO() if err is None else err,
        secrets=secrets,
        mode=mode,
        verbose=verbose,
    )
