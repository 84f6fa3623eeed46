"""Everything a person sees. Progress goes to stderr, results to stdout, secrets nowhere.

Every write passes through `redact`, so a token that slips into a daemon message, an error or
a build log is replaced by `<hidden>` before it reaches the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

HIDDEN = "<hidden>"


class Console:
    def __init__(
        self,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._secrets: set[str] = set()
        self._pushed_layers: set[str] = set()
        self._partial = False
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        # Very short values would redact ordinary words; tokens are long.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
        return text

    def _write(self, stream: TextIO, text: str) -> None:
        stream.write(self.redact(text))
        stream.flush()

    def _end_partial(self) -> None:
        if self._partial:
            self._write(self.err, "\n")
            self._partial = False

    def stage(self, stage: str, message: str) -> None:
        """One status line: `[stage] message`."""
        self._end_partial()
        self._write(self.err, f"[{stage}] {message}\n")

    def warn(self, message: str) -> None:
        self._end_partial()
        self._write(self.err, f"warning: {message}\n")

    def build_output(self, text: str) -> None:
        """Daemon build output, passed through as it arrives (it may end mid-line)."""
        self._write(self.err, text)
        self._partial = not text.endswith("\n")

    def push_progress(self, line: Mapping[str, Any]) -> None:
        """One line per layer when it is done; byte-level progress is left to issue #6."""
        status = str(line.get("status") or "")
        layer = str(line.get("id") or "")
        done = status in ("Pushed", "Layer already exists") or status.startswith("Mounted from")
        if layer and done and layer not in self._pushed_layers:
            self._pushed_layers.add(layer)
            self.stage("push", f"  layer {layer}: {status[0].lower()}{status[1:]}")

    def reset_layers(self) -> None:
        self._pushed_layers.clear()

    def result(self, line: str) -> None:
        """A final result, on stdout so that scripts can capture it."""
        self._end_partial()
        self._write(self.out, line + "\n")

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

    def json_result(self, document: Mapping[str, Any]) -> None:
        import json

        self.result(json.dumps(document, indent=2))


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
