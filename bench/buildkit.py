"""Section `buildkit` (issue 22, "Performance"): hubtasks building with BuildKit through the
Engine API against the BuildKit CLI sequence, the cache mount against the classic builder, the
registry's inline cache on a fresh runner, and peak RSS on the BuildKit path.

    .venv/bin/python -m bench.run --only buildkit --reps 3

Rows (A against B, side by side in one run, alternating who goes first):
K1 cold 30 MiB release (three 10 MiB `COPY` layers, 2 tags, verify): `inv release --builder
   buildkit` against `DOCKER_BUILDKIT=1 docker build --network none --label …` + `docker tag`
   + 2 × `docker push`; images of the repository removed and `docker builder prune -af`
   before every run (not timed). K1b: the build alone (`inv build` against `docker build`).
   K1f, the floor: a bare `inv` task + the CLI sequence, in the same repetitions (what any
   Invoke task that does the CLI's work costs at least).
K2 the same, warm: only a small file changed; K2f its floor, as K1f.
K3 only the source changed, a `RUN --mount=type=cache` step that "downloads" 200 MiB into the
   cache when it is not there, against the same Dockerfile without the mount on the classic
   builder (the download goes into the layer every time); `inv build` on both sides.
K4 fresh runner (images and build cache removed) re-releasing a changed source, with the
   registry's inline cache (`--cache-from` auto: the newest release, pulled by digest first on
   Engine 20.10, the Dockerfile having a `RUN`) against `--cache-from none`; from the second A
   run on, its source was built from the cache.
K5 peak RSS of `inv build --builder buildkit`, 10 MiB and 1 GiB context, and their ratio; K5f
   the floor: the classic path with h2 and protobuf imported first.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from bench.common import (
    CACHE_DOCKERFILE,
    DEPS_SECONDS,
    MIB,
    PARTS,
    RSS_CEILING_MB,
    BenchError,
    note,
    write_random,
)
from bench.measure import Sample
from bench.results import Row
from bench.runner import RunnerRows
from devtools.stack import BASE_IMAGE

BK_REPO = "bench-bk-layers"
BK_DL_REPO = "bench-bk-download"
BK_CACHE_REPOS = {"A": "bench-bk-cache-a", "B": "bench-bk-cache-b"}
BK_RSS_REPO = "bench-bk-rss"
DOWNLOAD_MIB = 200
BK_DOCKER = "/usr/bin/docker"  # the 20.10 CLI: its BuildKit builds without buildx
BK_LAYERS_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    + "".join(f"COPY {part} /data/{part}\n" for part in PARTS)
    + "COPY small.txt /small.txt\n"
    + 'CMD ["ls", "-l", "/data"]\n'
)
_DL = f"dd if=/dev/urandom of={{0}} bs=1048576 count={DOWNLOAD_MIB} 2>/dev/null"
MOUNT_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\nCOPY app.txt /app.txt\n"
    "RUN --mount=type=cache,target=/cache "
    f"sh -c '[ -f /cache/dl.bin ] || {_DL.format('/cache/dl.bin')}; "
    "ls -l /cache/dl.bin > /installed.txt'\n"
)
CLASSIC_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\nCOPY app.txt /app.txt\n"
    f"RUN sh -c '{_DL.format('/dl.bin')}; ls -l /dl.bin > /installed.txt'\n"
)
# `inv` with the libraries of BuildKit's session imported first (the floor of K5).
WITH_LIBS = (
    "import sys, runpy, h2.connection, google.protobuf.descriptor_pool; "
    "sys.argv[0] = 'inv'; runpy.run_module('invoke', run_name='__main__', alter_sys=True)"
)
HUB_BK = "`inv release --builder buildkit`"
CLI_BK = "`DOCKER_BUILDKIT=1 docker build --network none` + tag + push ×2, same labels"


class BuildkitRows(RunnerRows):
    def bk_env(self) -> dict[str, str]:
        return {**self.cli_env, "DOCKER_BUILDKIT": "1"}

    def prune_builder(self) -> None:
        self.docker("builder", "prune", "-af", name="builder-prune")

    def bk_cli_release(self, project: Path, tags: list[str], name: str) -> Sample:
        steps = self.cli_steps(tags, None, name, self.stack.registry, repository=BK_REPO)
        # The 20.10 CLI, and `--network none` as hubtasks builds (no network on this daemon).
        build, *rest = steps
        steps = [([BK_DOCKER, "build", "--network", "none", *build[0][2:]], build[1])]
        steps += [([BK_DOCKER, *argv[1:]], step) for argv, step in rest]
        return self.runner.sequence(steps, cwd=project, env=self.bk_env())

    def bk_cli_build(self, project: Path, tag: str, name: str) -> Sample:
        argv = [BK_DOCKER, "build", "--network", "none", "-t", self.ref(BK_REPO, tag)]
        argv += [*self.label_args(BK_REPO, tag), "."]
        sample, _ = self.runner.run(argv, cwd=project, env=self.bk_env(), name=name)
        return sample

    def hub_build_bk(self, project: Path, tag: str, name: str, *extra: str) -> Sample:
        sample, _ = self.inv(project, "build", "--tag", tag, *extra, name=name)
        return sample

    def buildkit_section(self) -> None:
        self.bk_layers = self.project("bk-layers", BK_REPO, BK_LAYERS_DOCKERFILE)
        self.write_parts(self.bk_layers)
        (self.bk_layers / "small.txt").write_text("warm-up\n")
        note("buildkit: warm-up (base layer, labels)")
        first = self.tag_name("bk-warmup", "a")
        self.hub_release([first], None, "bk-warmup-A", self.bk_layers, "--builder", "buildkit")
        self.learn_labels(self.ref(BK_REPO, first))
        self.bk_cli_release(self.bk_layers, [self.tag_name("bk-warmup", "b")], "bk-warmup-B")
        self.bk_release_rows()
        self.bk_mount_rows()
        self.bk_inline_rows()
        self.bk_rss_rows()

    def bk_release_rows(self) -> None:
        project = self.bk_layers
        what = "BuildKit release, cold (3 new 10 MiB `COPY` layers, 2 tags)"
        row = self.add(Row("K1", what, HUB_BK, CLI_BK, "wall", goal=0.95))
        build_row = Row(
            "K1b",
            "the cold build alone",
            "`inv build --builder buildkit`",
            "`DOCKER_BUILDKIT=1 docker build`, same labels",
            "wall",
        )

        def cold(side: str, i: int) -> Sample:
            if side == "E":
                sample, _ = self.inv(self.bare_dir, "hello", name=f"K1-E-{i}")
                return sample
            self.forget(BK_REPO)
            self.prune_builder()
            self.write_parts(project)
            tags = [self.tag_name("K1", i, side.lower(), t) for t in "xy"]
            if side == "A":
                return self.hub_release(tags, None, f"K1-A-{i}", project, "--builder", "buildkit")
            if side == "B":
                return self.bk_cli_release(project, tags, f"K1-B-{i}")
            if side == "C":
                return self.hub_build_bk(project, tags[0], f"K1-C-{i}", "--builder", "buildkit")
            return self.bk_cli_build(project, tags[0], f"K1-D-{i}")

        cli_build = Row("K1g", "", "", "", "wall")
        start = Row("K1s", "", "", "", "wall")
        self.paired(row, cold, others={"C": build_row, "D": cli_build, "E": start})
        build_row.a, build_row.b = list(build_row.b), list(cli_build.b)
        self.add(build_row)
        # The floor, as K2f: Invoke's start-up (a bare task, E) + the CLI sequence's own work
        # (B), in the same repetitions.
        self.add(
            Row(
                "K1f",
                "floor of K1: Invoke's start-up + the CLI sequence's own work",
                "a bare `inv` task + the CLI sequence (E + B of the same repetition)",
                CLI_BK,
                "wall",
                a=[_plus(e, b) for e, b in zip(start.b, row.b, strict=True)],
                b=list(row.b),
            )
        )

        what = "BuildKit release, warm (only a small file changed, 2 new tags)"
        row = self.add(Row("K2", what, HUB_BK, CLI_BK, "wall", goal=0.95))

        start = Row("K2s", "Invoke's start-up alone", "a bare `inv` task", CLI_BK, "wall")

        def warm(side: str, i: int) -> Sample:
            if side == "C":
                sample, _ = self.inv(self.bare_dir, "hello", name=f"K2-C-{i}")
                return sample
            (project / "small.txt").write_text(secrets.token_hex(16) + "\n")
            tags = [self.tag_name("K2", i, side.lower(), t) for t in "xy"]
            if side == "A":
                return self.hub_release(tags, None, f"K2-A-{i}", project, "--builder", "buildkit")
            return self.bk_cli_release(project, tags, f"K2-B-{i}")

        self.paired(row, warm, others={"C": start})
        start.a, start.b = list(start.b), list(row.b)
        self.add(start)
        # The floor: any Invoke task that does the CLI's own work (the same daemon build, the
        # same pushes) costs at least Invoke's start-up on top of it, measured in the same
        # repetitions: C + B, against B.
        floor = Row(
            "K2f",
            "floor of K2: Invoke's start-up + the CLI sequence's own work",
            "a bare `inv` task + the CLI sequence (C + B of the same repetition)",
            CLI_BK,
            "wall",
            a=[_plus(c, b) for c, b in zip(start.a, row.b, strict=True)],
            b=list(row.b),
        )
        self.add(floor)

    def bk_mount_rows(self) -> None:
        mount = self.project("bk-mount", BK_DL_REPO, MOUNT_DOCKERFILE)
        classic = self.project("bk-classic", BK_DL_REPO, CLASSIC_DOCKERFILE)
        note(f"buildkit: warm-up of the {DOWNLOAD_MIB} MiB download (cache mount, classic)")
        for side, project, builder in (("A", mount, "buildkit"), ("B", classic, "classic")):
            (project / "app.txt").write_text("warm-up\n")
            self.hub_build_bk(project, self.tag_name("K3w", side), "K3w", "--builder", builder)
        row = self.add(
            Row(
                "K3",
                f"only source changed, `RUN` that downloads {DOWNLOAD_MIB} MiB",
                "`inv build --builder buildkit`, `RUN --mount=type=cache`",
                "`inv build --builder classic`, download into the layer",
                "wall",
                goal=0.3,
            )
        )

        def changed(side: str, i: int) -> Sample:
            project, builder = (mount, "buildkit") if side == "A" else (classic, "classic")
            (project / "app.txt").write_text(secrets.token_hex(16) + "\n")
            tag = self.tag_name("K3", i, side.lower())
            return self.hub_build_bk(project, tag, f"K3-{side}-{i}", "--builder", builder)

        self.paired(row, changed)

    def bk_inline_rows(self) -> None:
        dirs = {
            s: self.project(f"bk-cache-{s}", r, CACHE_DOCKERFILE) for s, r in BK_CACHE_REPOS.items()
        }
        count = {"A": 0, "B": 0}

        def release(side: str, name: str) -> Sample:
            count[side] += 1
            write_random(dirs[side] / "app.bin", MIB)
            off = ["--cache-from", "none"] if side == "B" else []
            tag = f"v1.0.{count[side]}"
            return self.hub_release([tag], None, name, dirs[side], "--builder", "buildkit", *off)

        note(f"buildkit: first release of each inline-cache repository ({DEPS_SECONDS} s each)")
        for side in "AB":
            release(side, f"K4-setup-{side}")
        row = self.add(
            Row(
                "K4",
                f"fresh runner (empty daemon), {DEPS_SECONDS} s `RUN` unchanged, `COPY` changed",
                "`inv release --builder buildkit` (inline cache, auto: pulled first)",
                "`inv release --builder buildkit --cache-from none`",
                "wall",
                goal=0.4,
            )
        )

        def fresh(side: str, i: int) -> Sample:
            self.forget(*BK_CACHE_REPOS.values())
            self.prune_builder()
            return release(side, f"K4-{side}-{i}")

        self.paired(row, fresh)

    def rss_runs(
        self, project: Path, dockerfile: str, case: str, builder: str, reps: int
    ) -> list[Sample]:
        """`inv build --builder BUILDER` of `project` `reps` times, a new last step each time
        (`classic+libs`: the classic path with h2 and protobuf loaded first)."""
        got = []
        for i in range(reps):
            (project / "Dockerfile").write_text(dockerfile.format(secrets.token_hex(4)))
            tag = self.tag_name("K5", case, builder.replace("+", "-"), i)
            name = f"K5-{case}-{builder.replace('+', '-')}-{i}"
            if builder == "classic+libs":
                argv = [sys.executable, "-c", WITH_LIBS, "build", "--tag", tag]
                argv += ["--builder", "classic"]
                sample, _ = self.runner.run(argv, cwd=project, env=self.hub_env, name=name)
                got.append(sample)
            else:
                got.append(self.hub_build_bk(project, tag, name, "--builder", builder))
            note(f"buildkit: peak RSS {case} {builder} {i + 1}/{reps}: {got[-1].rss_mb:.1f} MB")
        return got

    def bk_rss_rows(self) -> None:
        dockerfile = f"FROM {BASE_IMAGE}\nCOPY small.txt /small.txt\nRUN echo {{}} > /n\n"
        cases = {"10m": 10, "1g": 64}
        rows: dict[str, list[Sample]] = {"10m": [], "1g": []}
        reps = min(self.args.reps, 3)
        classic: list[Sample] = []
        with_libs: list[Sample] = []
        for case, files in cases.items():
            project = self.project(f"bk-rss-{case}", BK_RSS_REPO, dockerfile.format(0))
            (project / "small.txt").write_text("the big files are sent, not copied\n")
            note(f"buildkit: writing the {case} context")
            for k in range(files):
                write_random(
                    project / "data" / f"part{k:02d}.bin", (1 if case == "10m" else 16) * MIB
                )
            rows[case] = self.rss_runs(project, dockerfile, case, "buildkit", reps)
            if case == "10m":  # the floor: the same build on the classic path
                classic = self.rss_runs(project, dockerfile, case, "classic", reps)
                with_libs = self.rss_runs(project, dockerfile, case, "classic+libs", reps)
            subprocess.run(["rm", "-rf", str(project / "data")], check=False)
        hub = "`inv build --builder buildkit`"
        refs = {"10m": ("`inv build --builder classic` (the floor)", classic)}
        refs["1g"] = (f"{hub}, 10 MiB context", rows["10m"])
        for key, case in (("K5a", "10m"), ("K5b", "1g")):
            b_name, b = refs[case]
            what = f"peak RSS, BuildKit path, {case} context"
            self.add(
                Row(
                    key,
                    what,
                    hub,
                    b_name,
                    "rss",
                    kind="max",
                    goal=RSS_CEILING_MB,
                    a=rows[case],
                    b=b,
                )
            )
        self.add(
            Row(
                "K5f",
                "floor of K5a/b: the classic path with the two libraries the BuildKit session "
                "must use (h2, protobuf) loaded",
                "`inv build --builder classic`, h2 + protobuf imported first",
                "`inv build --builder classic`",
                "rss",
                kind="max",
                a=with_libs,
                b=classic,
            )
        )
        self.add(
            Row(
                "K5c",
                "peak RSS flatness, BuildKit path",
                "1 GiB context",
                "10 MiB context",
                "rss",
                goal=1.1,
                a=rows["1g"],
                b=rows["10m"],
            )
        )
        if not rows["1g"]:
            raise BenchError("no 1 GiB run")


def _plus(first: Sample, second: Sample) -> Sample:
    """Two runs one after the other: their times added, the larger peak RSS."""
    return Sample(
        first.wall + second.wall, first.cpu + second.cpu, max(first.rss_kb, second.rss_kb)
    )
