"""Section 1 (`release`): a release by hubtasks against the docker CLI, cold and warm, near
and 25 ms away, and with both sides started by `inv`."""

from __future__ import annotations

import secrets
import shutil

from bench.base import BenchBase
from bench.common import (
    LAYERS_REPO,
    MIB,
    PART_MIB,
    PARTS,
    RELEASE_CLI,
    RELEASE_HUB,
    RELEASE_REPO,
    ReleaseTarget,
    note,
    write_random,
)
from bench.measure import Sample
from bench.results import Row


class ReleaseRows(BenchBase):
    def release_section(self) -> None:
        self.layers_rows()
        near = ReleaseTarget(self.release_dir, self.stack.registry, "")
        far = ReleaseTarget(
            self.latency_dir,
            self.far_registry,
            f", {self.args.latency:g} ms each way to the registry",
        )
        self.release_rows(near, cold=[], warm="1c", goal=None, overhead=True)
        self.release_rows(far, cold=[(1, "1d")], warm="1e", goal=0.95)

        # The same warm release, each side started by Invoke: what hubtasks costs over a
        # tasks.py that runs the four docker commands itself.
        shutil.copyfile(self.release_dir / "payload.bin", self.inv_cli_dir / "payload.bin")
        row = self.add(
            Row(
                "1f",
                "release, warm, both from `inv`",
                RELEASE_HUB,
                "`inv release` task running the CLI sequence",
                "wall",
            )
        )

        def invoked(side: str, i: int) -> Sample:
            tags = [self.tag_name("1f", i, side.lower(), t) for t in "xy"]
            if side == "A":
                return self.hub_release(tags, "warm", f"1f-A-{i}", self.release_dir)
            return self.inv_cli_release(tags, "warm", f"1f-B-{i}")

        self.paired(row, invoked)

    def layers_rows(self) -> None:
        """1a, 1b, 1g, 1h, 1i, 1j: a cold release of a 30 MiB image (three new 10 MiB `COPY`
        layers and a `CMD`) by hubtasks (A), by the CLI with hubtasks' labels (B), by the plain
        CLI without labels (C) and by the CLI with one label (D), and Invoke's start-up alone
        (E: a bare task that does nothing), taking turns in every repetition. D + E is the
        least an Invoke task that labels its image can take: 1b's floor (1h) and 1a's (1j)."""
        target = ReleaseTarget(self.layers_dir, self.stack.registry, "", LAYERS_REPO)
        note("release: warm-up of the 30 MiB image (pushes the base layer, learns the labels)")
        for side in "ABCD":
            self.write_parts(self.layers_dir)
            first = self.tag_name("warmup-layers", side.lower())
            self.release_by(side, target, [first], None, f"warmup-layers-{side}")
            if side == "A" and not self.label_template:
                self.learn_labels(self.ref(LAYERS_REPO, first))
        what = f"release, cold ({len(PARTS)} new {PART_MIB} MiB `COPY` layers and a `CMD`)"
        labelled = self.add(
            Row("1a", what, RELEASE_HUB, f"{RELEASE_CLI}, same labels", "wall", goal=0.95)
        )
        plain = self.add(
            Row("1b", what, RELEASE_HUB, f"{RELEASE_CLI}, no labels", "wall", goal=1.15)
        )

        def cold(side: str, i: int) -> Sample:
            if side == "E":
                sample, _ = self.inv(self.bare_dir, "hello", name=f"1a-E-{i}")
                return sample
            self.write_parts(self.layers_dir)
            tags = [self.tag_name("1a", i, side.lower(), t) for t in "xy"]
            return self.release_by(side, target, tags, None, f"1a-{side}-{i}")

        labels_cost = self.add(
            Row(
                "1g",
                "what the labels cost the CLI (1a's and 1b's B sides)",
                f"{RELEASE_CLI}, same labels",
                f"{RELEASE_CLI}, no labels",
                "wall",
            )
        )
        one_label = Row("1d-one", what, RELEASE_HUB, f"{RELEASE_CLI}, one label", "wall")
        start = Row("1d-start", what, RELEASE_HUB, "a bare `inv` task", "wall")
        self.paired(labelled, cold, others={"C": plain, "D": one_label, "E": start})
        labels_cost.a, labels_cost.b = list(labelled.b), list(plain.b)
        floor = [
            Sample(d.wall + e.wall, d.cpu + e.cpu, max(d.rss_kb, e.rss_kb))
            for d, e in zip(one_label.b, start.b, strict=True)
        ]
        floor_name = f"{RELEASE_CLI}, one label, + a bare `inv` task"
        for key, goal_row, against in (("1h", "1b", plain), ("1j", "1a", labelled)):
            self.add(
                Row(
                    key,
                    f"the floor of {goal_row}: the CLI with one `LABEL` step, plus Invoke's "
                    "start-up",
                    floor_name,
                    against.b_name,
                    "wall",
                    a=floor,
                    b=list(against.b),
                )
            )
        self.add(
            Row(
                "1i",
                "hubtasks over 1b's floor",
                RELEASE_HUB,
                floor_name,
                "wall",
                a=list(labelled.a),
                b=floor,
            )
        )

    def release_rows(
        self,
        target: ReleaseTarget,
        *,
        cold: list[tuple[int, str]],
        warm: str,
        goal: float | None,
        overhead: bool = False,
    ) -> None:
        payload = target.project / "payload.bin"
        note(f"release{target.words}: warm-up (checks hubtasks works, pushes the base layer)")
        for side in "AB":
            write_random(payload, MIB)
            first = self.tag_name("warmup", warm, side.lower())
            self.release_by(side, target, [first], f"warmup-{side}", f"warmup-{side}")
            if side == "A" and not self.label_template:
                self.learn_labels(self.ref(RELEASE_REPO, first, target.registry))

        for size_mib, key in cold:
            row = self.add(
                Row(
                    key,
                    f"release, cold ({size_mib} MiB new layer{target.words})",
                    RELEASE_HUB,
                    RELEASE_CLI,
                    "wall",
                    goal=goal,
                )
            )

            def cold_release(side: str, i: int, size_mib: int = size_mib, key: str = key):
                write_random(payload, size_mib * MIB)
                tags = [self.tag_name(key, i, side.lower(), t) for t in "xy"]
                return self.release_by(side, target, tags, secrets.token_hex(8), f"{key}-{i}")

            self.paired(row, cold_release)

        # Warm: the same content every time, so the build is all cache hits and every layer
        # is in the registry; only new tag names (and the config that labels them) are pushed.
        write_random(payload, MIB)
        for side in "AB":
            tags = [self.tag_name(warm, "setup", side.lower(), t) for t in "xy"]
            self.release_by(side, target, tags, "warm", f"warm-setup-{side}")
        row = self.add(
            Row(
                warm,
                f"release, warm (cached build, layers in the registry{target.words})",
                RELEASE_HUB,
                RELEASE_CLI,
                "wall",
                goal=goal,
                overhead=overhead,
            )
        )

        def warm_release(side: str, i: int) -> Sample:
            tags = [self.tag_name(warm, i, side.lower(), t) for t in "xy"]
            return self.release_by(side, target, tags, "warm", f"{warm}-{i}")

        self.paired(row, warm_release)
