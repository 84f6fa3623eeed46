"""What every part of the benchmark shares: the constants, the images it builds, a failure
that makes the numbers meaningless, and the progress notes on stderr."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.stack import BASE_IMAGE  # noqa: E402

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
SECTIONS = (
    "release",
    "runner",
    "startup",
    "push",
    "memory",
    "promote",
    "platforms",
    "buildkit",
)
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
