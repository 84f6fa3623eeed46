"""The benchmark's common ground: the stack, the projects, running `inv` and `docker`, and a
release by either side; each section (bench/<section>.py) adds its rows to it."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import (
    CACHE_DOCKERFILE,
    CACHE_REPOS,
    INVOKE_CLI_TASKS,
    LABEL_TITLE,
    LABEL_VERSION,
    LAYERS_DOCKERFILE,
    LAYERS_REPO,
    LOG_LINES,
    MIB,
    PART_MIB,
    PARTS,
    PUSH_REPO,
    RELEASE_DOCKERFILE,
    RELEASE_REPO,
    RERELEASE_REPO,
    RSS_REPO,
    BenchError,
    ReleaseTarget,
    note,
    write_random,
)
from bench.machine import package_origin
from bench.measure import Runner, Sample
from bench.results import Row
from devtools.stack import BASE_IMAGE, Stack


class BenchBase:
    def __init__(
        self, args: argparse.Namespace, stack: Stack, work: Path, far_registry: str
    ) -> None:
        self.args = args
        self.stack = stack
        self.far_registry = far_registry  # the same registry behind a LatencyProxy
        self.work = work
        self.runner = Runner(work / "logs")
        self.rows: list[Row] = []
        self.run_id = secrets.token_hex(2)
        self.label_template: dict[str, str] = {}
        self.startup_reps = 0
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_", "INVOKE_"))
        }
        # hubtasks runs from a byte-compiled copy in our folder, as after `pip install`: `inv`
        # sets sys.dont_write_bytecode, so an editable src/ without __pycache__ (and this
        # machine sets PYTHONDONTWRITEBYTECODE) would be recompiled on every run, which no
        # installed user pays. src/ itself is never written to.
        self.origin = package_origin(args.hubtasks_src, base)
        site = work / "site"
        shutil.copytree(
            self.origin, site / "hubtasks", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(site / "hubtasks")],
            check=True,
            capture_output=True,
        )
        base["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), base.get("PYTHONPATH")) if p)
        self.hub_env = {
            **base,
            "DOCKER_HOST": stack.daemon.host,
            "DOCKER_CONFIG": str(work / "docker-config-hubtasks"),
        }
        self.cli_env = {
            **base,
            "DOCKER_HOST": stack.daemon.host,
            "DOCKER_CONFIG": str(work / "docker-config-cli"),
            "DOCKER_BUILDKIT": "0",
            "DOCKER_CLI_HINTS": "false",
        }
        self.projects = work / "projects"

    # helpers ------------------------------------------------------------------------------

    def ref(self, repository: str, tag: str, registry: str | None = None) -> str:
        return f"{registry or self.stack.registry}/{self.stack.username}/{repository}:{tag}"

    def tag_name(self, *parts: object) -> str:
        return "-".join(["b" + self.run_id, *map(str, parts)])

    def project(
        self, name: str, repository: str, dockerfile: str, registry: str | None = None
    ) -> Path:
        path = self.projects / name
        path.mkdir(parents=True)
        (path / "tasks.py").write_text("from hubtasks import ns\n")
        (path / "Dockerfile").write_text(dockerfile)
        (path / ".dockerignore").write_text(".env\n")
        (path / ".env").write_text(
            f"HUB_REGISTRY={registry or self.stack.registry}\nHUB_USERNAME={self.stack.username}\n"
            f"HUB_TOKEN={self.stack.password}\nHUB_REPOSITORY={repository}\n"
        )
        (path / ".env").chmod(0o600)
        return path

    def inv(self, project: Path, *args: str, name: str) -> tuple[Sample, str]:
        return self.runner.run(
            [sys.executable, "-m", "invoke", *args], cwd=project, env=self.hub_env, name=name
        )

    def docker(self, *args: str, cwd: Path | None = None, name: str) -> tuple[Sample, str]:
        return self.runner.run(["docker", *args], cwd=cwd or self.work, env=self.cli_env, name=name)

    def label_args(self, repository: str, first_tag: str) -> list[str]:
        """The labels hubtasks would put on the same build, so the CLI does the same work."""
        labels = dict(self.label_template)
        if LABEL_TITLE in labels:
            labels[LABEL_TITLE] = repository
        if LABEL_VERSION in labels:
            labels[LABEL_VERSION] = first_tag
        return [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]

    def learn_labels(self, ref: str) -> None:
        _, out = self.docker(
            "image", "inspect", "--format", "{{json .Config.Labels}}", ref, name="inspect-labels"
        )
        self.label_template = json.loads(out or "null") or {}

    def reps_in_order(self, reps: int) -> list[tuple[int, tuple[str, ...]]]:
        """Repetition numbers with the side that goes first alternating."""
        return [(i, ("A", "B") if i % 2 == 0 else ("B", "A")) for i in range(reps)]

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    # setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        self.release_dir = self.project("release", RELEASE_REPO, RELEASE_DOCKERFILE)
        self.layers_dir = self.project("release-layers", LAYERS_REPO, LAYERS_DOCKERFILE)
        self.rerelease_dir = self.project("rerelease", RERELEASE_REPO, LAYERS_DOCKERFILE)
        self.cache_dirs = {
            side: self.project(f"cache-{side.lower()}", repo, CACHE_DOCKERFILE)
            for side, repo in CACHE_REPOS.items()
        }
        self.latency_dir = self.project(
            "release-latency", RELEASE_REPO, RELEASE_DOCKERFILE, registry=self.far_registry
        )
        # The CLI sequence run by a bare Invoke task: what a tasks.py without hubtasks does.
        self.inv_cli_dir = self.projects / "release-invoke-cli"
        self.inv_cli_dir.mkdir(parents=True)
        (self.inv_cli_dir / "Dockerfile").write_text(RELEASE_DOCKERFILE)
        (self.inv_cli_dir / "tasks.py").write_text(INVOKE_CLI_TASKS)
        self.bare_dir = self.projects / "bare-invoke"
        self.bare_dir.mkdir(parents=True)
        (self.bare_dir / "tasks.py").write_text(
            'from invoke import task\n\n\n@task\ndef hello(c):\n    """Do nothing."""\n'
        )
        self.push_dir = self.project(
            "push", PUSH_REPO, f"FROM {BASE_IMAGE}\nRUN echo push > /push\n"
        )
        context_dockerfile = (
            f"FROM {BASE_IMAGE}\nARG NONCE=0\nCOPY small.txt /small.txt\n"
            'RUN echo "$NONCE" > /nonce\n'
        )
        self.ctx_small = self.project("context-10m", RSS_REPO, context_dockerfile)
        self.ctx_big = self.project("context-1g", RSS_REPO, context_dockerfile)
        for folder in (self.ctx_small, self.ctx_big):
            (folder / "small.txt").write_text("the big files below are sent, not copied\n")
        self.log_dir = self.project(
            "log-100k",
            RSS_REPO,
            f'FROM {BASE_IMAGE}\nARG NONCE=0\nRUN echo "$NONCE" && seq 1 {LOG_LINES}\n',
        )
        # One git repository holds every project, as a consumer's work tree would: hubtasks
        # reads git for its labels. Data files written later stay untracked.
        (self.projects / ".gitignore").write_text(".env\n")
        git = [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench projects"]):
            subprocess.run([*git, *args], cwd=self.projects, check=True, capture_output=True)
        for registry in (self.stack.registry, self.far_registry):
            self.runner.run(
                [
                    *("docker", "login", "--username", self.stack.username),
                    *("--password-stdin", registry),
                ],
                cwd=self.work,
                env=self.cli_env,
                name="cli-login",
                stdin=self.stack.password + "\n",
            )

    # 1. release ---------------------------------------------------------------------------

    def hub_release(
        self,
        tags: list[str],
        nonce: str | None,
        name: str,
        project: Path,
        *extra: str,
        expect: int | None = None,
    ) -> Sample:
        """`inv release --tag …` (+ `--build-arg NONCE=…`, + `extra`); it must print
        `expect` references (default: one per tag)."""
        args = ["release"]
        for tag in tags:
            args += ["--tag", tag]
        if nonce is not None:
            args += ["--build-arg", f"NONCE={nonce}"]
        sample, out = self.inv(project, *args, *extra, name=name)
        published = [line for line in out.splitlines() if "@sha256:" in line]
        expect = len(tags) if expect is None else expect
        if len(published) != expect:
            raise BenchError(f"inv release printed {len(published)} references, not {expect}")
        return sample

    def cli_steps(
        self,
        tags: Sequence[str],
        nonce: str | None,
        name: str,
        registry: str,
        *,
        repository: str = RELEASE_REPO,
        labels: str = "same",
    ) -> list[tuple[Sequence[str], str]]:
        """The CLI sequence: `docker build`, `docker tag` for the other tags, `docker push`
        for each. `labels`: "same" builds with the labels hubtasks would set (the classic
        builder makes one `LABEL` step per `--label`), "one" with a single label (one step,
        as hubtasks makes), "none" without."""
        refs = [self.ref(repository, tag, registry) for tag in tags]
        build = ["docker", "build", "-t", refs[0]]
        if nonce is not None:
            build += ["--build-arg", f"NONCE={nonce}"]
        if labels == "same":
            build += self.label_args(repository, tags[0])
        elif labels == "one":
            build += ["--label", f"{LABEL_VERSION}={tags[0]}"]
        build.append(".")
        steps: list[tuple[Sequence[str], str]] = [(build, f"{name}-build")]
        steps += [(["docker", "tag", refs[0], ref], f"{name}-tag") for ref in refs[1:]]
        steps += [(["docker", "push", ref], f"{name}-push") for ref in refs]
        return steps

    def cli_release(
        self,
        tags: list[str],
        nonce: str | None,
        name: str,
        project: Path,
        registry: str,
        *,
        repository: str = RELEASE_REPO,
        labels: str = "same",
    ) -> Sample:
        steps = self.cli_steps(tags, nonce, name, registry, repository=repository, labels=labels)
        return self.runner.sequence(steps, cwd=project, env=self.cli_env)

    def inv_cli_release(self, tags: list[str], nonce: str, name: str) -> Sample:
        steps = self.cli_steps(tags, nonce, name, self.stack.registry)
        plan = self.inv_cli_dir / "steps.json"
        plan.write_text(json.dumps([list(cmd) for cmd, _ in steps]))
        sample, _ = self.runner.run(
            [sys.executable, "-m", "invoke", "release", "--steps", str(plan)],
            cwd=self.inv_cli_dir,
            env=self.cli_env,
            name=name,
        )
        return sample

    def paired(
        self,
        row: Row,
        run: Callable[[str, int], Sample],
        reps: int | None = None,
        *,
        each: bool = True,
        others: dict[str, Row] | None = None,
    ) -> None:
        """`run(side, i)` for both sides of every repetition, alternating who goes first;
        `each` notes every pair (start-up rows, with many short pairs, note once at the end).
        `others` maps more sides ("C", "D") to rows: they run in every repetition too (all
        sides take turns going first) and each row gets A against its side."""
        reps = reps or self.args.reps
        others = others or {}
        sides = ("A", "B", *others)
        for i, pair in self.reps_in_order(reps):
            k = i % len(sides)
            order = sides[k:] + sides[:k] if others else pair
            got = {side: run(side, i) for side in order}
            row.a.append(got["A"])
            row.b.append(got["B"])
            for side, other in others.items():
                other.a.append(got["A"])
                other.b.append(got[side])
            if each:
                walls = ", ".join(f"{side} {got[side].wall:.3f} s" for side in sorted(got))
                note(f"{row.what} {i + 1}/{reps}: {walls}")

    def release_by(
        self, side: str, target: ReleaseTarget, tags: list[str], nonce: str, name: str
    ) -> Sample:
        """Side A is hubtasks, side B the CLI sequence with hubtasks' labels, side C the plain
        CLI sequence without them, side D the CLI sequence with one label (one `LABEL` step,
        as hubtasks builds), all releasing to `target`."""
        if side == "A":
            return self.hub_release(tags, nonce, name, target.project)
        return self.cli_release(
            tags,
            nonce,
            name,
            target.project,
            target.registry,
            repository=target.repository,
            labels={"B": "same", "C": "none", "D": "one"}[side],
        )

    def write_parts(self, project: Path) -> None:
        for part in PARTS:
            write_random(project / part, PART_MIB * MIB)
