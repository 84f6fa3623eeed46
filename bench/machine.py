"""The machine a run measured on: CPU, memory, OS, versions, where hubtasks came from."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import BenchError

if TYPE_CHECKING:
    from bench.base import BenchBase


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


def machine_info(bench: BenchBase) -> dict[str, str]:
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
