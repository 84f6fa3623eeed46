"""Section 2 (`startup`): `inv --list` and `import hubtasks` against bare Invoke and Python."""

from __future__ import annotations

import statistics
import sys

from bench.base import BenchBase
from bench.common import note
from bench.measure import Sample
from bench.results import Row


class StartupRows(BenchBase):
    def startup_section(self) -> None:
        reps = max(6, 2 * self.args.reps) if self.args.quick else max(10, 4 * self.args.reps)
        self.startup_reps = reps
        py = sys.executable
        cases = [
            (
                "2a",
                "start-up",
                "`inv --list` (hubtasks project)",
                "`inv --list` (bare Invoke)",
                ([py, "-m", "invoke", "--list"], self.release_dir),
                ([py, "-m", "invoke", "--list"], self.bare_dir),
                1.1,
            ),
            (
                "2b",
                "start-up",
                '`python -c "import hubtasks"`',
                '`python -c "pass"`',
                ([py, "-c", "import hubtasks"], self.release_dir),
                ([py, "-c", "pass"], self.release_dir),
                None,
            ),
            (
                "2c",
                "start-up, hubtasks' own share",
                '`python -c "import hubtasks"`',
                '`python -c "import invoke"`',
                ([py, "-c", "import hubtasks"], self.release_dir),
                ([py, "-c", "import invoke"], self.release_dir),
                None,
            ),
        ]
        for key, what, a_name, b_name, a_cmd, b_cmd, goal in cases:
            row = self.add(Row(key, what, a_name, b_name, "wall", goal=goal))
            for cmd, cwd in (a_cmd, b_cmd):  # warm the page cache and .pyc files
                self.runner.run(cmd, cwd=cwd, env=self.hub_env, name=f"startup-warmup-{key}")

            def start(side: str, i: int, a_cmd=a_cmd, b_cmd=b_cmd, key=key) -> Sample:
                cmd, cwd = a_cmd if side == "A" else b_cmd
                sample, _ = self.runner.run(
                    cmd, cwd=cwd, env=self.hub_env, name=f"startup-{key}-{i}"
                )
                return sample

            self.paired(row, start, reps, each=False)
            note(
                f"{key} {a_name} vs {b_name}: {reps} pairs, median ratio "
                f"{statistics.median(row.ratios):.2f}"
            )
