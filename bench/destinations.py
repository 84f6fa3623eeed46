"""What a second registry costs a release, against pushing the image there with the daemon.

    .venv/bin/python -m bench.destinations [--reps N] [--mib N]

Starts the test stack (`devtools.stack.Stack`: a private dockerd and an htpasswd registry A)
and two more registries, B and C, each with its own user. Every repetition builds new content
(three incompressible layers of `--mib`/3 MiB each over busybox) and releases it to A alone
(untimed), then measures, taking turns which goes first:

- hubtasks: `inv release --tag rN` with `HUB_REPOSITORY="bench B/bob/bench"` — the daemon has
  nothing to push (A holds the image), the image is copied registry to registry to B — minus
  the same `inv release --tag rN` with A alone (a no-op re-release: login, git, plan, read
  back). The difference is what the second destination costs: its login, plan, push-access
  check, blob copy, manifest PUTs and read-back.
- docker: `docker tag` + `docker push` of the same local image to C (a registry that holds
  none of its layers, as B did not).

Prints one Markdown row per repetition and the median ratio; the goal is ≤ 0.3.
Not a timed test: run it by hand (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.stack import BASE_IMAGE, Registry, Stack  # noqa: E402
from hubtasks.settings.destinations import registry_variables  # noqa: E402

GOAL = 0.3


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(argv: list[str], cwd: Path, env: dict[str, str], **kwargs: object) -> float:
    """Seconds `argv` took; raises with its stderr when it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, **kwargs
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return took


def project(root: Path, stack: Stack) -> Path:
    path = root / "project"
    path.mkdir()
    (path / "tasks.py").write_text("from hubtasks import ns\n")
    (path / ".dockerignore").write_text(".env\n")
    (path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY data/ /data/\n")
    env = path / ".env"
    env.write_text(
        f"HUB_REGISTRY={stack.registry}\nHUB_USERNAME={stack.username}\n"
        f"HUB_TOKEN={stack.password}\nHUB_CACHE_FROM=none\n"
    )
    env.chmod(0o600)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(argv, cwd=path, check=True, capture_output=True)
    return path


def new_content(path: Path, mib: int) -> None:
    data = path / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    for index in range(3):
        (data / f"part{index}").write_bytes(os.urandom(mib * (1 << 20) // 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--mib", type=int, default=60, help="image content per repetition")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-dest-", dir="/tmp"))
    b = Registry(root / "b", "bob", "bob-secret")
    c = Registry(root / "c", "carol", "carol-secret")
    try:
        with Stack(root / "stack") as stack:
            b.start()
            c.start()
            return measure(root, stack, b, c, args)
    finally:
        b.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def measure(root: Path, stack: Stack, b: Registry, c: Registry, args: argparse.Namespace) -> int:
    path = project(root, stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    env.update(stack.env(), DOCKER_CONFIG=str(root / "docker-config"), HUB_REPOSITORY="bench")
    user, token = registry_variables(b.address)
    both = {
        **env,
        "HUB_REPOSITORY": f"bench {b.address}/bob/bench",
        user: "bob",
        token: "bob-secret",
    }
    docker = ["docker", "-H", stack.daemon.host]
    inv = [sys.executable, "-m", "invoke"]
    run([*docker, "login", c.address, "-u", "carol", "--password-stdin"], path, env,
        input="carol-secret\n")  # fmt: skip
    say(
        "| rep | hubtasks: release to A and B − release to A (s) | docker tag + push to C (s) "
        "| ratio |\n|---|---|---|---|"
    )
    ratios = []
    for rep in range(args.reps):
        new_content(path, args.mib)
        tag = f"r{rep}"
        run([*inv, "release", "--tag", tag], path, env)  # to A: the image now exists there
        image = f"{stack.registry}/{stack.username}/bench:{tag}"
        target = f"{c.address}/carol/bench:{tag}"

        def hubtasks(tag: str = tag) -> float:
            alone = run([*inv, "release", "--tag", tag], path, env)
            return run([*inv, "release", "--tag", tag], path, both) - alone

        def daemon(image: str = image, target: str = target) -> float:
            return run([*docker, "tag", image, target], path, env) + run(
                [*docker, "push", target], path, env
            )

        if rep % 2:
            cost_docker, cost_hub = daemon(), hubtasks()
        else:
            cost_hub, cost_docker = hubtasks(), daemon()
        ratios.append(cost_hub / cost_docker)
        say(f"| {rep + 1} | {cost_hub:.2f} | {cost_docker:.2f} | {ratios[-1]:.2f} |")
    median = statistics.median(ratios)
    verdict = "meets" if median <= GOAL else "misses"
    say(f"\nmedian ratio {median:.2f} ({args.mib} MiB image): {verdict} the goal ≤ {GOAL}")
    return 0 if median <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
