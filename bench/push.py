"""Section 3a (`push`): `inv push` of 1, 5 and 20 tags."""

from __future__ import annotations

from bench.base import BenchBase
from bench.common import PUSH_COUNTS, PUSH_REPO, BenchError, note
from bench.measure import Sample, copy_by_hand
from bench.results import Row


class PushRows(BenchBase):
    # 3a. push scaling ---------------------------------------------------------------------

    def push_section(self) -> None:
        reps = self.args.reps
        base = self.tag_name("base")
        note("push: building and pushing the base image once")
        self.inv(self.push_dir, "build", "--tag", base, name="push-setup-build")
        self.inv(self.push_dir, "push", "--tag", base, name="push-setup-push")
        source = self.ref(PUSH_REPO, base)
        per_count = {
            n: self.add(
                Row(
                    f"3{'abc'[k]}",
                    f"push {n} tag{'s' if n > 1 else ''} of one image",
                    "`inv push`",
                    f"`docker push` ×{n}",
                    "wall",
                )
            )
            for k, n in enumerate(PUSH_COUNTS)
        }
        floors: list[float] = []  # seconds the registry alone takes for 19 more tags
        for i, order in self.reps_in_order(reps):
            counts = PUSH_COUNTS[i % 3 :] + PUSH_COUNTS[: i % 3]
            for n in counts:
                got = {}
                for side in order:
                    tags = [self.tag_name(f"p{n}", i, side.lower(), k) for k in range(n)]
                    if side == "A":
                        tag_flags = [arg for t in tags for arg in ("--tag", t)]
                        self.inv(
                            self.push_dir,
                            "tag",
                            "--source",
                            base,
                            *tag_flags,
                            name=f"push{n}-hub-tag-{i}",
                        )
                        got[side], out = self.inv(
                            self.push_dir, "push", *tag_flags, name=f"push{n}-hub-{i}"
                        )
                        published = [ln for ln in out.splitlines() if "@sha256:" in ln]
                        if len(published) != n:
                            raise BenchError(f"inv push printed {len(published)} of {n} tags")
                    else:
                        refs = [self.ref(PUSH_REPO, t) for t in tags]
                        for ref in refs:
                            self.docker("tag", source, ref, name=f"push{n}-cli-tag-{i}")
                        got[side] = self.runner.sequence(
                            [(["docker", "push", ref], f"push{n}-cli-{i}") for ref in refs],
                            cwd=self.push_dir,
                            env=self.cli_env,
                        )
                per_count[n].a.append(got["A"])
                per_count[n].b.append(got["B"])
            note(
                f"push {i + 1}/{reps}: "
                + ", ".join(
                    f"{n} tags hubtasks {per_count[n].a[-1].wall:.3f} s / CLI "
                    f"{per_count[n].b[-1].wall:.3f} s"
                    for n in PUSH_COUNTS
                )
            )
            extra = [self.tag_name("p-floor", i, k) for k in range(PUSH_COUNTS[-1] - 1)]
            floors.append(
                copy_by_hand(
                    self.stack.registry,
                    self.stack.username,
                    self.stack.password,
                    PUSH_REPO,
                    base,
                    extra,
                )
            )
        one, many = per_count[PUSH_COUNTS[0]], per_count[PUSH_COUNTS[-1]]
        self.add(
            Row(
                "3d",
                "push scaling, hubtasks",
                "`inv push` 20 tags",
                "`inv push` 1 tag",
                "wall",
                goal=1.25,
                a=list(many.a),
                b=list(one.a),
            )
        )
        self.add(
            Row(
                "3e",
                "push scaling, docker CLI (reference)",
                "`docker push` ×20",
                "`docker push` ×1",
                "wall",
                a=list(many.b),
                b=list(one.b),
            )
        )
        # 3d's floor on this machine: the 1-tag push plus what the registry alone needs for
        # the 19 more tags (a PUT and a read-back each, from a minimal client), and how
        # hubtasks' own 19 (its 20-tag push minus its 1-tag push) compare with that.
        self.add(
            Row(
                "3f",
                "push scaling floor: `inv push` 1 tag + the registry's time for 19 more "
                "(PUT + read-back each, minimal stdlib client)",
                "1 tag + 19 by hand",
                "`inv push` 1 tag",
                "wall",
                a=[Sample(s.wall + f, 0.0, 0) for s, f in zip(one.a, floors, strict=True)],
                b=list(one.a),
                costs=False,
            )
        )
        self.add(
            Row(
                "3g",
                "the 19 more tags: hubtasks (20-tag push − 1-tag push) against the minimal client",
                "hubtasks, 19 tags",
                "by hand, 19 tags",
                "wall",
                a=[Sample(m.wall - o.wall, 0.0, 0) for m, o in zip(many.a, one.a, strict=True)],
                b=[Sample(f, 0.0, 0) for f in floors],
                costs=False,
            )
        )
