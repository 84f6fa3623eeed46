"""Section 6 (`platforms`): one multi-platform release against two single-platform ones."""

from __future__ import annotations

import sys

from bench.base import BenchBase
from bench.common import MIB, PLATFORM_MIB, BenchError, write_random
from bench.measure import Sample
from bench.results import Row


class PlatformRows(BenchBase):
    def platforms_section(self) -> None:
        """M1: one release for linux/amd64 and linux/arm64 under one tag (two classic builds,
        two daemon pushes, a manifest list) against two single-platform releases of the same
        content, one per platform (two builds, two pushes): what a multi-platform image costs
        over publishing the platforms apart. Cold: new content for every run of either side
        (written untimed); `FROM scratch` + `COPY`, which needs no emulation."""
        project = self.project(
            "platforms",
            "bench-platforms",
            "FROM scratch\nARG TARGETARCH\nCOPY payload-${TARGETARCH}.bin /payload.bin\n",
        )
        row = self.add(
            Row(
                "M1",
                f"release for linux/amd64 + linux/arm64, cold, {PLATFORM_MIB} MiB each",
                "one `inv release --platform linux/amd64,linux/arm64`",
                "two `inv release --platform X`",
                "wall",
            )
        )
        arches = ("amd64", "arm64")

        def release(side: str, i: int) -> Sample:
            for arch in arches:
                write_random(project / f"payload-{arch}.bin", PLATFORM_MIB * MIB)
            tag = self.tag_name("m1", i, side.lower())
            if side == "A":
                platforms = ",".join(f"linux/{arch}" for arch in arches)
                sample, out = self.inv(
                    project, "release", "--tag", tag, "--platform", platforms, name=f"M1-hub-{i}"
                )
                if out.count("@sha256:") != 1:
                    raise BenchError(f"the two-platform release printed {out!r}")
                return sample
            steps = [
                (
                    [sys.executable, "-m", "invoke", "release", "--tag", f"{tag}-{arch}",
                     "--platform", f"linux/{arch}"],
                    f"M1-single-{arch}-{i}",
                )
                for arch in arches
            ]  # fmt: skip
            return self.runner.sequence(steps, cwd=project, env=self.hub_env)

        self.paired(row, release)
