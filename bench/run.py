"""hubtasks against the plain docker CLI, measured side by side in one run.

    .venv/bin/python -m bench.run [--reps N] [--quick] [--only SECTIONS] [--json FILE]
                                  [--hubtasks-src DIR] [--keep]

Starts the same private dockerd + htpasswd registry as the tests (`devtools.stack.Stack`), sets
up throwaway consumer projects (one git repository, like a real project), and prints a Markdown
table. Each repetition runs both sides back to back, alternating which goes first; the table
shows medians with min–max, and ratios are taken per repetition (A_i / B_i) before the median.
Everything it creates lives in one temporary folder that is removed at the end, also on Ctrl-C.

1. `inv release --tag X --tag Y` against `docker build` + `docker tag` + `docker push` ×2 (the
   classic builder, DOCKER_BUILDKIT=0): cold, a 30 MiB image (three new 10 MiB `COPY` layers
   and a `CMD`) against the CLI with hubtasks' labels and against the plain CLI without labels,
   the three taking turns; warm (cached build, layers already in the registry, new tag names),
   with hubtasks' fixed overhead in seconds; cold and warm with the registry 25 ms away each
   way (`devtools.latency.LatencyProxy`, a 50 ms round trip); and the warm release with both
   sides started by `inv` (a bare Invoke task running the four docker commands).
2. Start-up: `inv --list` with hubtasks against bare Invoke; `python -c "import hubtasks"`
   against `python -c pass` (and against `import invoke`, hubtasks' own share).
3. Scaling: `inv push` of 1, 5 and 20 tags; peak RSS of `inv build` with a 10 MiB and a 1 GiB
   build context, and with a 100,000-line build log.
4. Promotion (`--only promote`): `inv promote` of a 200 MiB image to a new tag, with no daemon,
   against `docker pull` + `docker tag` + `docker push` on a runner without the image, in the
   same repository (P1) and into another repository of the registry (P2).
5. A fresh CI runner (section "runner"; the daemon is emptied of the repositories before every
   run): re-releasing an unchanged commit against the CLI rebuilding and pushing it; a release
   whose slow `RUN` (dependency installation) is unchanged, with the registry as build cache
   (hubtasks' default) against without; and the same when the `RUN` changed too.

Timings are wall-clock seconds of whole processes, as a person at a terminal sees them. Each
command runs under GNU time (`/usr/bin/time`, Debian package `time`): its peak RSS is that of
the largest process in its tree (for `inv`, the Python process); CPU is user + system time from
wait4(2). The hubtasks under test (the one the venv imports, or DIR/hubtasks with
--hubtasks-src) runs from a byte-compiled copy in the temporary folder, as `pip install` leaves
a package: `inv` turns off writing .pyc files, so an editable src/ would otherwise be compiled
again on every run. docs/benchmarks.md explains every figure.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.latency import LatencyProxy  # noqa: E402
from devtools.stack import BASE_IMAGE, Stack, missing_packages  # noqa: E402

MIB = 1 << 20
LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
RELEASE_REPO = "bench-release"
PUSH_REPO = "bench-push"
RSS_REPO = "bench-rss"
PUSH_COUNTS = (1, 5, 20)
LOG_LINES = 100_000
GNU_TIME = "/usr/bin/time"
RSS_CEILING_MB = 45
SECTIONS = ("release", "runner", "startup", "push", "memory", "promote", "platforms")
PLATFORM_MIB = 10  # per platform, new content every repetition
PROMOTE_REPO = "bench-promote"
PROMOTE_MIB = 200
NO_DAEMON = "unix:///nonexistent.sock"  # promote needs none: any use of one would fail
LATENCY_MS = 25.0  # one way: a 50 ms round trip, about a laptop in Europe to Docker Hub
RELEASE_DOCKERFILE = (
    f'FROM {BASE_IMAGE}\nARG NONCE=0\nCOPY payload.bin /payload.bin\nRUN echo "$NONCE" > /nonce\n'
)
# The image of the cold release: three 10 MiB `COPY` layers and a `CMD`.
PARTS = ("part1.bin", "part2.bin", "part3.bin")
PART_MIB = 10
LAYERS_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    + "".join(f"COPY {part} /data/{part}\n" for part in PARTS)
    + 'CMD ["ls", "-l", "/data"]\n'
)
LAYERS_REPO = "bench-layers"
RERELEASE_REPO = "bench-rerelease"  # the CLI side re-releases into RERELEASE_REPO-cli
SEMVER_TAGS = ("v1.0.0", "v1.0", "v1", "latest")  # what `--tag v1.0.0 --semver` publishes
# A fresh CI runner's build: a slow `RUN` standing for installing dependencies (it writes
# DEPS_MIB of new bytes, as an install does), then a `COPY` of the code that changes.
DEPS_SECONDS = 5
DEPS_MIB = 20
CACHE_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\nARG DEPS=1\n"
    f"RUN sleep {DEPS_SECONDS} && dd if=/dev/urandom of=/deps bs=1048576 count={DEPS_MIB} "
    '2>/dev/null && echo "$DEPS" > /deps.version\n'
    "COPY app.bin /app.bin\n"
    'CMD ["cat", "/deps.version"]\n'
)
CACHE_REPOS = {"A": "bench-cache-a", "B": "bench-cache-b"}
INVOKE_CLI_TASKS = '''import json
import shlex

from invoke import task


@task
def release(c, steps):
    """Run the docker commands listed in the JSON file STEPS, one after the other."""
    with open(steps) as stream:
        for argv in json.load(stream):
            c.run(shlex.join(argv), hide=True)
'''


class BenchError(RuntimeError):
    """A command the benchmark relies on failed; the numbers would mean nothing."""


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- measuring one process ------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, start of the first process to end of the last
    cpu: float  # user + system seconds of the process tree(s)
    rss_kb: int  # peak resident set size in KiB (largest single process)

    @property
    def rss_mb(self) -> float:
        return self.rss_kb * 1024 / 1e6


class Runner:
    """Runs commands under GNU time, with stdout/stderr in log files.

    Peak RSS comes from `/usr/bin/time -f %M`, not from our own wait4(): Linux charges a child
    with the RSS of the process it was forked from until it execs, so wait4() on a child of
    this (30+ MB) Python process would never report less than 30 MB. GNU time is small, so
    its children start from almost nothing. CPU comes from wait4() on the `time` process
    (it includes the child it waited for).
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True)
        self._count = 0
        self._last_err: Path | None = None

    def last_stderr(self) -> str:
        """What the last command run wrote to stderr."""
        return self._last_err.read_text(errors="replace") if self._last_err else ""

    def run(
        self,
        cmd: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        name: str,
        stdin: str | None = None,
    ) -> tuple[Sample, str]:
        """Run one command to completion; raise BenchError unless it exits 0."""
        self._count += 1
        stem = self.logs / f"{self._count:05d}-{name}"
        out_path, err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
        self._last_err = err_path
        rss_path = stem.with_suffix(".rss")
        timed = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                timed,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=out,
                stderr=err,
            )
            try:
                if stdin is not None:
                    assert proc.stdin is not None
                    proc.stdin.write(stdin.encode())
                    proc.stdin.close()
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            tail = "\n".join(err_path.read_text(errors="replace").splitlines()[-20:])
            raise BenchError(f"`{shlex.join(cmd)}` in {cwd} exited with {proc.returncode}:\n{tail}")
        try:
            rss_kb = int(rss_path.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            raise BenchError(f"{GNU_TIME} wrote no peak RSS for `{shlex.join(cmd)}`") from None
        stdout = out_path.read_text(errors="replace")
        return Sample(wall, usage.ru_utime + usage.ru_stime, rss_kb), stdout

    def sequence(
        self, steps: Sequence[tuple[Sequence[str], str]], *, cwd: Path, env: dict[str, str]
    ) -> Sample:
        """Several commands one after the other, as a shell script would run them."""
        start = time.perf_counter()
        cpu, rss = 0.0, 0
        for cmd, name in steps:
            sample, _ = self.run(cmd, cwd=cwd, env=env, name=name)
            cpu += sample.cpu
            rss = max(rss, sample.rss_kb)
        return Sample(time.perf_counter() - start, cpu, rss)


def copy_by_hand(
    registry: str, username: str, password: str, repository: str, source: str, tags: list[str]
) -> float:
    """What the registry alone needs for a registry-side copy to `tags` with a read-back of
    each, as hubtasks does it (every PUT, then every GET, 4 at a time), from the least client
    there is: stdlib http.client, one keep-alive connection per worker, Basic auth sent up
    front. Returns the seconds both phases took; the source manifest is read untimed."""
    import base64
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    host, port = registry.rsplit(":", 1)
    auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    accept = ", ".join(
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
        )
    )
    path = f"/v2/{username}/{repository}/manifests/"
    connections: dict[int, http.client.HTTPConnection] = {}

    def ask(method: str, tag: str, body: bytes | None = None, kind: str = "") -> bytes:
        import threading

        key = threading.get_ident()
        if key not in connections:
            connections[key] = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": auth, "Accept": accept}
        if body is not None:
            headers["Content-Type"] = kind
        connections[key].request(method, path + tag, body=body, headers=headers)
        answer = connections[key].getresponse()
        data = answer.read()
        if answer.status >= 300:
            raise BenchError(f"{method} {path}{tag}: HTTP {answer.status}")
        return data

    first = http.client.HTTPConnection(host, int(port), timeout=30)
    first.request("GET", path + source, headers={"Authorization": auth, "Accept": accept})
    answer = first.getresponse()
    manifest, kind = answer.read(), answer.getheader("Content-Type", "")
    first.close()
    with ThreadPoolExecutor(max_workers=4) as pool:
        start = time.perf_counter()
        list(pool.map(lambda tag: ask("PUT", tag, manifest, kind), tags))
        read = list(pool.map(lambda tag: ask("GET", tag), tags))
        took = time.perf_counter() - start
    for connection in connections.values():
        connection.close()
    if any(data != manifest for data in read):
        raise BenchError("a tag read back other bytes than were put")
    return took


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


# --- the machine ----------------------------------------------------------------------------


def _first_line(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({error})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_origin(source: str | None, env: dict[str, str]) -> Path:
    """The hubtasks package folder to benchmark: under --hubtasks-src, else the installed one."""
    if source:
        folder = Path(source).resolve() / "hubtasks"
        if not (folder / "__init__.py").is_file():
            raise BenchError(f"no hubtasks package in {source} (expected {folder}/__init__.py)")
        return folder
    code = "import hubtasks, os; print(os.path.dirname(os.path.abspath(hubtasks.__file__)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BenchError(f"cannot import hubtasks with {sys.executable}: {done.stderr.strip()}")
    return Path(done.stdout.strip())


def machine_info(bench: Bench) -> dict[str, str]:
    code = "import hubtasks; print(hubtasks.__version__)"
    version = _first_line([sys.executable, "-c", code], bench.hub_env)
    folder = str(bench.origin)
    commit = _first_line(["git", "-C", folder, "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", folder, "status", "--porcelain", "--", "."])
    if commit.startswith(("fatal", "unknown")):
        source = f"{folder} (not a git checkout)"
    else:
        source = f"{folder} at {commit}" + (
            " + uncommitted changes" if dirty not in ("", "unknown") else ""
        )
    return {
        "cpu": f"{os.cpu_count()} × {_cpu_model()}",
        "memory": _memory(),
        "os": _os_name(),
        "kernel": platform.release(),
        "docker engine": _first_line(
            ["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
            bench.cli_env,
        ),
        "docker CLI": _first_line(
            ["docker", "version", "--format", "{{.Client.Version}}"], bench.cli_env
        ),
        "registry": _first_line(["docker-registry", "--version"]),
        "python": f"{platform.python_version()} ({sys.executable})",
        "invoke": _version("invoke"),
        "docker SDK": _version("docker"),
        "hubtasks": f"{version} from {source}, run as a byte-compiled copy",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- the benchmark --------------------------------------------------------------------------


def write_random(path: Path, size: int, chunk: int = 16 * MIB) -> None:
    """Incompressible bytes, so that nothing downstream can shrink or dedupe them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size
        while left > 0:
            step = min(chunk, left)
            out.write(os.urandom(step))
            left -= step


RELEASE_HUB = "`inv release --tag X --tag Y`"
RELEASE_CLI = "CLI build, tag, push ×2"


@dataclass(frozen=True)
class ReleaseTarget:
    """Where a release row's two sides publish: a project whose .env names `registry`."""

    project: Path
    registry: str
    words: str  # added to the row's title, e.g. ", 25 ms each way to the registry"
    repository: str = RELEASE_REPO


class Bench:
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

    def write_parts(self, project: Path) -> None:
        for part in PARTS:
            write_random(project / part, PART_MIB * MIB)

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


def report(bench: Bench, machine: dict[str, str], started: float, args: argparse.Namespace) -> str:
    elapsed = time.monotonic() - started
    rows = bench.rows
    judged = [row for row in rows if row.met is not None]
    missed = [row for row in judged if row.met is False]
    mode = "quick" if args.quick else "full"
    lines = [
        "## Machine",
        "",
        *(f"- **{name}**: {value}" for name, value in machine.items()),
        "",
        f"## Results ({mode} run, {args.reps} repetitions per pair, start-up "
        f"{bench.startup_reps} pairs; "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {elapsed:.0f} s)",
        "",
        "Ratios are A/B per repetition (A and B run back to back, alternating which goes "
        "first), then the median and the min–max over repetitions. Times are wall-clock "
        "seconds of whole processes; peak RSS is the largest process of each command.",
        "",
        results_table(rows),
        "",
        f"Goals met: {len(judged) - len(missed)} of {len(judged)}"
        + (f"; missed: {', '.join(row.key for row in missed)}." if missed else "."),
        "",
        "### Fixed overhead (median of A − B per repetition)",
        "",
        *(overhead_lines(rows) or ["- (no row measured it in this run)"]),
        "",
        "### Client-side cost (medians; CPU from wait4, peak RSS from GNU time)",
        "",
        "CPU is user + system time of the client processes only (not dockerd or the registry).",
        "",
        cost_table(rows),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions per pair (default 5; 2 with --quick); start-up pairs "
        "are 4× this (at least 10), the 1 GiB case at most 3",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repetitions, no 1 GiB context",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY_MS,
        metavar="MS",
        help=f"one-way delay to the registry in rows 1d and 1e (default {LATENCY_MS:g})",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        type=lambda text: [part for part in text.split(",") if part],
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--hubtasks-src",
        metavar="DIR",
        help="benchmark DIR/hubtasks (e.g. the src/ of another checkout, to compare a change) "
        "instead of the hubtasks the venv imports; either is copied and byte-compiled first",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (logs of every command) for inspection",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_packages()
    if missing:
        print(f"bench: needs: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 2
    if not shutil.which("docker"):
        print("bench: needs the docker CLI on PATH", file=sys.stderr)
        return 2
    if not os.access(GNU_TIME, os.X_OK):
        print(f"bench: needs GNU time at {GNU_TIME}: apt-get install time", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hubbench-", dir="/tmp"))
    try:
        note(f"starting dockerd and the registry (work folder {work})")
        with (
            Stack() as stack,
            LatencyProxy(
                "127.0.0.1", stack.registry_server.port, delay=args.latency / 1000
            ) as proxy,
        ):
            bench = Bench(args, stack, work, proxy.address)
            machine = machine_info(bench)
            for name, value in machine.items():
                note(f"{name}: {value}")
            bench.setup()
            for section in args.only:
                getattr(bench, f"{section}_section")()
            machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            note("stopping dockerd and the registry")
        text = report(bench, machine, started, args)
        print(text)
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "machine": machine,
                        "reps": args.reps,
                        "quick": args.quick,
                        "rows": [row.to_json() for row in bench.rows],
                    },
                    indent=2,
                )
                + "\n"
            )
        return 0
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            note(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
