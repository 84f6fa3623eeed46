"""Section 4 (`promote`): `inv promote` with no daemon against pull, tag and push."""

from __future__ import annotations

import subprocess
import sys

from bench.base import BenchBase
from bench.common import MIB, NO_DAEMON, PROMOTE_MIB, PROMOTE_REPO, BenchError, note, write_random
from bench.measure import Sample
from bench.results import Row
from devtools.stack import BASE_IMAGE


class PromoteRows(BenchBase):
    # 4. promotion ------------------------------------------------------------------------

    def promote_section(self) -> None:
        """A: `inv promote` with DOCKER_HOST at a socket that does not exist. B: what a CI
        job without hubtasks runs on a fresh runner: pull (the image is removed first,
        untimed), tag, push. Each repetition promotes to a new tag; P2 into a new repository
        each time, so that both sides mount every blob rather than find it there."""
        project = self.project(
            "promote", PROMOTE_REPO, f"FROM {BASE_IMAGE}\nCOPY payload.bin /payload.bin\n"
        )
        note(f"promote: building and pushing the {PROMOTE_MIB} MiB source image once")
        write_random(project / "payload.bin", PROMOTE_MIB * MIB)
        source_tag = self.tag_name("promote-rc")
        self.inv(project, "release", "--tag", source_tag, name="promote-setup")
        (project / "payload.bin").unlink()
        source = self.ref(PROMOTE_REPO, source_tag)
        no_daemon = {**self.hub_env, "DOCKER_HOST": NO_DAEMON}
        rows = {
            "P1": (self.add(Row("P1", f"promote, {PROMOTE_MIB} MiB image, same repository",
                                "`inv promote` (no daemon)", "`docker pull` + `tag` + `push`",
                                "wall")), None),
            "P2": (self.add(Row("P2", f"promote, {PROMOTE_MIB} MiB image, to another "
                                "repository", "`inv promote` (no daemon, mounts)",
                                "`docker pull` + `tag` + `push`", "wall")), "prod"),
        }  # fmt: skip
        for key, (row, suffix) in rows.items():

            def promote(side: str, i: int, key: str = key, suffix: str | None = suffix) -> Sample:
                repository = f"{PROMOTE_REPO}-{suffix}-{i}-{side.lower()}" if suffix else None
                tag = self.tag_name(key, i, side.lower())
                if side == "A":
                    args = ["promote", "--source", f"{self.stack.username}/{PROMOTE_REPO}:"
                            f"{source_tag}", "--tag", tag]  # fmt: skip
                    args += ["--repository", repository] if repository else []
                    sample, out = self.runner.run(
                        [sys.executable, "-m", "invoke", *args],
                        cwd=project,
                        env=no_daemon,
                        name=f"{key}-hub-{i}",
                    )
                    if out.count("@sha256:") != 1:
                        raise BenchError(f"inv promote printed {out!r}, not one reference")
                    return sample
                self.forget_local(source)
                target = self.ref(repository or PROMOTE_REPO, tag)
                return self.runner.sequence(
                    [
                        (["docker", "pull", "-q", source], f"{key}-cli-pull-{i}"),
                        (["docker", "tag", source, target], f"{key}-cli-tag-{i}"),
                        (["docker", "push", target], f"{key}-cli-push-{i}"),
                    ],
                    cwd=project,
                    env=self.cli_env,
                )

            self.paired(row, promote)

    def forget_local(self, ref: str) -> None:
        """Remove the image `ref` names (every tag of it) from the daemon, untimed."""
        found = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
            env=self.cli_env,
            capture_output=True,
            text=True,
        )
        if found.returncode == 0:
            subprocess.run(
                ["docker", "rmi", "-f", found.stdout.strip()],
                env=self.cli_env,
                capture_output=True,
                check=True,
            )
