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
6. BuildKit (`--only buildkit`, issue 22, bench/buildkit.py): the cold and warm release on
   BuildKit against `DOCKER_BUILDKIT=1 /usr/bin/docker build --network none` + tag + 2 pushes,
   a `RUN --mount=type=cache` step against the classic builder, the registry's inline cache
   on an empty daemon, and peak RSS on the BuildKit path.

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
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: import bench.* from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.base import BenchBase
from bench.buildkit import BuildkitRows
from bench.common import GNU_TIME, LATENCY_MS, SECTIONS, BenchError, note
from bench.machine import machine_info
from bench.memory import MemoryRows
from bench.platforms import PlatformRows
from bench.promote import PromoteRows
from bench.push import PushRows
from bench.release import ReleaseRows
from bench.results import cost_table, overhead_lines, results_table
from bench.runner import RunnerRows
from bench.startup import StartupRows
from devtools.latency import LatencyProxy
from devtools.stack import Stack, missing_packages


class Bench(
    BuildkitRows,
    ReleaseRows,
    RunnerRows,
    StartupRows,
    PushRows,
    MemoryRows,
    PromoteRows,
    PlatformRows,
    BenchBase,
):
    """Every section's rows (`<section>_section`, run in the order --only gives) on one stack."""


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
