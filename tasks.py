"""hubtasks' own tasks: we publish our demo image with hubtasks, plus development tasks.

inv release --tag v1     release demo/ (settings from .env or the environment, see invoke.yaml)
inv test / inv demo      the README's two commands
"""

import shlex

from invoke import Collection, task

import hubtasks


@task(help={"args": "Extra pytest arguments, e.g. '-k release tests/integration'."})
def test(c, args=""):
    """Run the whole test suite (installs what it needs, starts its own daemon and registry)."""
    c.run(f"scripts/test {args}", pty=False)


@task
def demo(c):
    """Release the demo image to a local registry started for the occasion, then run it."""
    c.run("scripts/demo", pty=False)


@task(
    help={
        "quick": "Two repetitions, no 1 GiB context.",
        "only": "Comma-separated sections: release, runner, startup, push, memory (default: all).",
    }
)
def bench(c, quick=False, only=""):
    """Benchmarks against the docker CLI: prints a table of ratios (see docs/benchmarks.md)."""
    args = (["--quick"] if quick else []) + (["--only", only] if only else [])
    c.run(shlex.join([".venv/bin/python", "-m", "bench.run", *args]), pty=False)


@task
def lint(c):
    """ruff check, mypy (src/, settings in pyproject.toml) and format check."""
    c.run("ruff check src tests devtools tasks.py")
    c.run("mypy")
    c.run("ruff format --check src tests devtools tasks.py", warn=True)


ns = Collection.from_module(hubtasks)
for dev_task in (test, demo, bench, lint):
    ns.add_task(dev_task)
