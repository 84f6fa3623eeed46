"""Section 5 (`runner`): a fresh CI runner: re-releasing an unchanged commit, and the
registry as build cache."""

from __future__ import annotations

import secrets
import subprocess

from bench.base import BenchBase
from bench.common import (
    CACHE_REPOS,
    DEPS_SECONDS,
    MIB,
    RERELEASE_REPO,
    SEMVER_TAGS,
    BenchError,
    note,
    write_random,
)
from bench.measure import Sample
from bench.results import Row


class RunnerRows(BenchBase):
    # 5. a fresh CI runner ------------------------------------------------------------------

    def local_images(self, *repositories: str) -> set[str]:
        found: set[str] = set()
        for repository in repositories:
            name = f"{self.stack.registry}/{self.stack.username}/{repository}"
            _, out = self.docker(
                "images", "-q", "--no-trunc", "--filter", f"reference={name}", name="images"
            )
            found.update(out.split())
        return found

    def forget(self, *repositories: str) -> None:
        """What a fresh runner holds of these repositories: nothing (no image, tagged or
        pulled by digest, and no build cache). Not timed."""
        found = self.local_images(*repositories)
        if found:  # one at a time: removing one may already have removed another
            for image in sorted(found):
                subprocess.run(
                    ["docker", "rmi", "-f", image], env=self.cli_env, capture_output=True
                )
        self.docker("image", "prune", "-f", name="prune")
        if self.local_images(*repositories):
            raise BenchError(f"images of {', '.join(repositories)} are still on the daemon")

    def runner_section(self) -> None:
        self.rerelease_rows()
        self.cache_rows()

    def rerelease_rows(self) -> None:
        """5a: the same commit released again on a runner whose daemon holds nothing of the
        repository: hubtasks reads the registry and finds every tag unchanged; the CLI
        sequence rebuilds and pushes (into a repository of its own)."""
        project, cli_repo = self.rerelease_dir, f"{RERELEASE_REPO}-cli"
        self.write_parts(project)  # one commit: the same files for the whole section
        note("runner: the first release of v1.0.0 on each side")
        self.hub_release(["v1.0.0"], None, "rerelease-setup-A", project, "--semver", expect=4)
        if not self.label_template:
            self.learn_labels(self.ref(RERELEASE_REPO, "v1.0.0"))
        registry = self.stack.registry
        tags = list(SEMVER_TAGS)
        self.cli_release(tags, None, "rerelease-setup-B", project, registry, repository=cli_repo)
        row = self.add(
            Row(
                "5a",
                "re-release of an unchanged commit, daemon empty",
                "`inv release --tag v1.0.0 --semver`",
                "CLI build, tag ×3, push ×4",
                "wall",
                goal=0.2,
            )
        )

        def again(side: str, i: int) -> Sample:
            self.forget(RERELEASE_REPO, cli_repo)
            if side == "B":
                return self.cli_release(
                    tags, None, f"5a-B-{i}", project, registry, repository=cli_repo
                )
            sample = self.hub_release(["v1.0.0"], None, f"5a-A-{i}", project, "--semver", expect=4)
            if self.local_images(RERELEASE_REPO):
                raise BenchError("the re-release of an unchanged commit built or pulled an image")
            return sample

        self.paired(row, again)

    def cache_rows(self) -> None:
        """5b, 5c: a release on a runner whose daemon holds nothing of the repository, with
        the registry as build cache (hubtasks' default, `auto`: pull the newest release
        first) against without (`--cache-from none`); each side has its repository."""
        count = {"A": 0, "B": 0}

        def release(side: str, name: str, *extra: str) -> Sample:
            count[side] += 1
            project = self.cache_dirs[side]
            write_random(project / "app.bin", MIB)
            off = ["--cache-from", "none"] if side == "B" else []
            sample = self.hub_release([f"v1.0.{count[side]}"], None, name, project, *off, *extra)
            log = self.runner.last_stderr()
            if side == "B" and "[cache]" in log:
                raise BenchError("--cache-from none pulled an image")
            return sample

        note(f"runner: the first release of each cache repository ({DEPS_SECONDS} s each)")
        for side in "AB":
            release(side, f"cache-setup-{side}")
        hub, off = "`inv release` (cache: auto)", "`inv release --cache-from none`"
        what = f"fresh runner, {DEPS_SECONDS} s `RUN` unchanged, `COPY` changed"
        row = self.add(Row("5b", what, hub, off, "wall", goal=0.4))

        def fresh(side: str, i: int) -> Sample:
            self.forget(*CACHE_REPOS.values())
            sample = release(side, f"5b-{side}-{i}")
            if side == "A" and "Using cache" not in self.runner.last_stderr():
                raise BenchError("the release with the registry cache took no step from it")
            return sample

        self.paired(row, fresh)
        what = "fresh runner, the `RUN` changed too (the pulled image cannot help)"
        row = self.add(Row("5c", what, hub, off, "wall"))

        def changed(side: str, i: int) -> Sample:
            self.forget(*CACHE_REPOS.values())
            deps = secrets.token_hex(4)
            sample = release(side, f"5c-{side}-{i}", "--build-arg", f"DEPS={deps}")
            if side == "A" and "[cache] pulling" not in self.runner.last_stderr():
                raise BenchError("auto pulled nothing on an empty daemon")
            return sample

        self.paired(row, changed)

    # 2. start-up --------------------------------------------------------------------------
