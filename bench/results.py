"""The numbers: a row of samples of two sides, its goal, and the Markdown tables of the
report."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.measure import Sample

# --- results --------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: A against B (paired per repetition), with an optional goal.

    kind "ratio": the goal is on the median of A_i/B_i. kind "max": the goal is on max(A)
    (an absolute ceiling); B, when present, is only there for reference.
    """

    key: str
    what: str
    a_name: str
    b_name: str | None
    metric: str  # "wall" or "rss"
    kind: str = "ratio"
    goal: float | None = None
    a: list[Sample] = field(default_factory=list)
    b: list[Sample] = field(default_factory=list)
    overhead: bool = False  # also report A_i − B_i: the fixed cost where a ratio misleads
    costs: bool = True  # in the CPU/RSS table (not for a row whose side is not a process)

    def values(self, samples: list[Sample]) -> list[float]:
        if self.metric == "rss":
            return [s.rss_mb for s in samples]
        return [s.wall for s in samples]

    @property
    def ratios(self) -> list[float]:
        return [
            x / y for x, y in zip(self.values(self.a), self.values(self.b), strict=True) if y > 0
        ]

    @property
    def differences(self) -> list[float]:
        return [x - y for x, y in zip(self.values(self.a), self.values(self.b), strict=True)]

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "—"
        if self.kind == "max":
            return f"< {self.goal:g} MB"
        return f"≤ {self.goal:g}×"

    @property
    def met(self) -> bool | None:
        if self.goal is None or not self.a:
            return None
        if self.kind == "max":
            return max(self.values(self.a)) < self.goal
        return statistics.median(self.ratios) <= self.goal

    def to_json(self) -> dict:
        def samples(items: list[Sample]) -> list[dict]:
            return [{"wall_s": s.wall, "cpu_s": s.cpu, "peak_rss_kib": s.rss_kb} for s in items]

        return {
            "key": self.key,
            "what": self.what,
            "a": self.a_name,
            "b": self.b_name,
            "metric": self.metric,
            "goal": self.goal_text,
            "met": self.met,
            "ratios": self.ratios,
            "differences": self.differences if self.overhead else None,
            "a_samples": samples(self.a),
            "b_samples": samples(self.b),
        }


def _fmt(value: float, metric: str) -> str:
    if metric == "rss":
        return f"{value:.1f} MB"
    return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"


def _spread(values: list[float], metric: str) -> str:
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return _fmt(med, metric)
    lo, hi = min(values), max(values)
    unit = " MB" if metric == "rss" else " s"
    digits = 1 if metric == "rss" else (3 if hi < 10 else 2)
    return f"{_fmt(med, metric)} ({lo:.{digits}f}–{hi:.{digits}f}{unit})"


def _ratio_text(ratios: list[float]) -> str:
    if not ratios:
        return "—"
    med = statistics.median(ratios)
    if len(ratios) == 1:
        return f"{med:.2f}×"
    return f"**{med:.2f}×** ({min(ratios):.2f}–{max(ratios):.2f})"


def results_table(rows: list[Row]) -> str:
    lines = [
        "| # | A vs B | A: median (min–max) | B: median (min–max) | A/B: median (min–max) "
        "| Goal | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {None: "", True: "met", False: "**missed**"}[row.met]
        versus = f"{row.a_name} **vs** {row.b_name}" if row.b_name else row.a_name
        lines.append(
            f"| {row.key} | {row.what}: {versus} | {_spread(row.values(row.a), row.metric)} "
            f"| {_spread(row.values(row.b), row.metric)} | {_ratio_text(row.ratios)} "
            f"| {row.goal_text} | {met} |"
        )
    return "\n".join(lines)


def overhead_lines(rows: list[Row]) -> list[str]:
    """A − B per repetition for the rows that ask for it: seconds hubtasks adds to the same
    work, visible even where a ratio is not the right lens."""
    lines = []
    for row in rows:
        if not row.overhead or not row.a:
            continue
        diffs = row.differences
        lines.append(
            f"- **{row.key}** ({row.what}): {row.a_name} − {row.b_name} = "
            f"**{statistics.median(diffs):+.3f} s** (min {min(diffs):+.3f}, "
            f"max {max(diffs):+.3f}) per release"
        )
    return lines


def cost_table(rows: list[Row]) -> str:
    """Client-side CPU and peak RSS of each compared command (medians)."""
    lines = [
        "| # | A: CPU s | B: CPU s | A: peak RSS | B: peak RSS |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.a or not row.b or row.metric != "wall" or not row.costs:
            continue

        def med(samples: list[Sample], attr: Callable[[Sample], float]) -> float:
            return statistics.median(attr(s) for s in samples)

        lines.append(
            f"| {row.key} | {med(row.a, lambda s: s.cpu):.3f} | {med(row.b, lambda s: s.cpu):.3f} "
            f"| {med(row.a, lambda s: s.rss_mb):.1f} MB | {med(row.b, lambda s: s.rss_mb):.1f} MB |"
        )
    return "\n".join(lines)
