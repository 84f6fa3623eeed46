"""Section 3b (`memory`): peak RSS of `inv build` with a 10 MiB and a 1 GiB context and a
100,000-line build log."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from bench.base import BenchBase
from bench.common import LOG_LINES, MIB, RSS_CEILING_MB, RSS_REPO, note, write_random
from bench.measure import Sample
from bench.results import Row


class MemoryRows(BenchBase):
    # 3b. memory ---------------------------------------------------------------------------

    def hub_build(self, project: Path, tag: str, nonce: str, name: str) -> Sample:
        sample, _ = self.inv(
            project, "build", "--tag", tag, "--build-arg", f"NONCE={nonce}", name=name
        )
        return sample

    def cli_build(self, project: Path, tag: str, nonce: str, name: str) -> Sample:
        sample, _ = self.runner.run(
            [
                "docker",
                "build",
                "-t",
                self.ref(RSS_REPO, tag),
                "--build-arg",
                f"NONCE={nonce}",
                *self.label_args(RSS_REPO, tag),
                ".",
            ],
            cwd=project,
            env=self.cli_env,
            name=name,
        )
        return sample

    def memory_section(self) -> None:
        reps = self.args.reps
        big_reps = 0 if self.args.quick else min(reps, 3)
        note("memory: writing the 10 MiB context (10 random files of 1 MiB)")
        for k in range(10):
            write_random(self.ctx_small / "data" / f"part{k:02d}.bin", MIB)
        cases = {"10m": self.ctx_small, "log": self.log_dir}
        if big_reps:
            note("memory: writing the 1 GiB context (64 random files of 16 MiB)")
            for k in range(64):
                write_random(self.ctx_big / "data" / f"part{k:02d}.bin", 16 * MIB)
            cases["1g"] = self.ctx_big
        for case in ("10m", "log"):  # warm-up: the base layer and page cache
            self.hub_build(cases[case], self.tag_name("warmup", case), "warmup", "mem-warmup")

        runs: dict[str, Row] = {
            case: Row("", case, "`inv build`", "`docker build`", "wall") for case in cases
        }
        for i, order in self.reps_in_order(reps):
            for case, project in cases.items():
                if case == "1g" and i >= big_reps:
                    continue
                got = {}
                for side in order:
                    tag = self.tag_name("mem", case, i, side.lower())
                    nonce = secrets.token_hex(8)
                    if side == "A":
                        got[side] = self.hub_build(project, tag, nonce, f"mem-{case}-hub-{i}")
                    else:
                        got[side] = self.cli_build(project, tag, nonce, f"mem-{case}-cli-{i}")
                runs[case].a.append(got["A"])
                runs[case].b.append(got["B"])
                note(
                    f"build {case} {i + 1}/{reps}: hubtasks {got['A'].wall:.3f} s "
                    f"{got['A'].rss_mb:.1f} MB, CLI {got['B'].wall:.3f} s {got['B'].rss_mb:.1f} MB"
                )
        if big_reps:
            shutil.rmtree(self.ctx_big / "data", ignore_errors=True)

        small, log = runs["10m"], runs["log"]
        self.add(
            Row(
                "4a",
                "peak RSS, 10 MiB context",
                "`inv build`",
                "`docker build`",
                "rss",
                kind="max",
                goal=RSS_CEILING_MB,
                a=small.a,
                b=small.b,
            )
        )
        if "1g" in runs:
            big = runs["1g"]
            self.add(
                Row(
                    "4b",
                    "peak RSS, 1 GiB context",
                    "`inv build`",
                    "`docker build`",
                    "rss",
                    kind="max",
                    goal=RSS_CEILING_MB,
                    a=big.a,
                    b=big.b,
                )
            )
            self.add(
                Row(
                    "4c",
                    "peak RSS flatness, hubtasks",
                    "`inv build` 1 GiB context",
                    "`inv build` 10 MiB context",
                    "rss",
                    goal=1.1,
                    a=big.a,
                    b=small.a[: len(big.a)],
                )
            )
        self.add(
            Row(
                "4d",
                f"peak RSS, {LOG_LINES:,}-line build log",
                "`inv build`",
                "`docker build`",
                "rss",
                kind="max",
                goal=RSS_CEILING_MB,
                a=log.a,
                b=log.b,
            )
        )
        self.add(
            Row(
                "4e",
                "build time, 10 MiB context",
                "`inv build`",
                "`docker build`",
                "wall",
                a=small.a,
                b=small.b,
            )
        )
        if "1g" in runs:
            self.add(
                Row(
                    "4f",
                    "build time, 1 GiB context",
                    "`inv build`",
                    "`docker build`",
                    "wall",
                    a=runs["1g"].a,
                    b=runs["1g"].b,
                )
            )
        self.add(
            Row(
                "4g",
                f"build time, {LOG_LINES:,}-line build log",
                "`inv build`",
                "`docker build`",
                "wall",
                a=log.a,
                b=log.b,
            )
        )
