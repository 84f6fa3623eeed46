"""`hubtasks init` (or `inv init`): start a project in the current folder.

Writes `.env` (mode 600) from the template shipped in the package, makes sure `.dockerignore`
and `.gitignore` list `.env` (creating them when needed), and writes a two-line `tasks.py` when
there is none. Never overwrites: a second run changes nothing and says what it left alone. It
ends by naming the needed settings that are still empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from hubtasks.errors import ConfigError
from hubtasks.settings.envfile import ENV_FILE_NAME, read_env_file

if TYPE_CHECKING:
    from hubtasks.ui.console import Console

NEEDED = ("HUB_USERNAME", "HUB_TOKEN", "HUB_REPOSITORY")
TASKS_PY = '"""Release this image with hubtasks: inv --list, inv release --tag v1."""\n' + (
    "from hubtasks import ns\n"
)
IGNORE_FILES = (".dockerignore", ".gitignore")


@dataclass
class InitReport:
    """What `init_project` did: files written or changed, files left alone, settings to fill."""

    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    to_fill: list[str] = field(default_factory=list)


def env_template() -> str:
    """The commented `.env` shipped in the package (also the repository's .env.example)."""
    return resources.files("hubtasks").joinpath("templates/env").read_text(encoding="utf-8")


def init_project(folder: Path, console: Console) -> InitReport:
    report = InitReport()
    _write_env(folder / ENV_FILE_NAME, report)
    for name in IGNORE_FILES:
        _list_env_in(folder / name, report)
    _write_tasks(folder, report)
    for line in report.written:
        console.stage("init", line)
    for line in report.kept:
        console.stage("init", line)
    environment = {k: v for k, v in os.environ.items() if k in NEEDED and v.strip()}
    values = read_env_file(folder / ENV_FILE_NAME)
    report.to_fill = [k for k in NEEDED if not ((values.get(k) or "").strip() or k in environment)]
    if report.to_fill:
        console.stage(
            "init",
            f"next: fill in {', '.join(report.to_fill)} in {ENV_FILE_NAME}, then "
            "`inv release --tag v1`",
        )
    else:
        console.stage("init", "every needed setting is set; next: `inv doctor`")
    return report


def _write_env(path: Path, report: InitReport) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        loose = f"; other users may read it: chmod 600 {path.name}" if mode & 0o077 else ""
        report.kept.append(f"{path.name} exists, left as it was{loose}")
        return
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        os.fchmod(stream.fileno(), 0o600)  # whatever the umask
        stream.write(env_template())
    report.written.append(f"wrote {path.name} (mode 600), every setting explained")


def _list_env_in(path: Path, report: InitReport) -> None:
    """Append `.env` to an ignore file unless a line already names it. One that cannot be
    read as text or written is the user's to fix, in one line."""
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    lines = {line.strip() for line in text.splitlines()}
    if {ENV_FILE_NAME, f"/{ENV_FILE_NAME}"} & lines:
        report.kept.append(f"{path.name} already lists {ENV_FILE_NAME}")
        return
    separator = "\n" if text and not text.endswith("\n") else ""
    try:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(f"{separator}{ENV_FILE_NAME}\n")
    except OSError as error:
        raise ConfigError(f"cannot add {ENV_FILE_NAME} to {path}: {error.strerror}") from None
    if text:
        report.written.append(f"added {ENV_FILE_NAME} to {path.name}")
    else:
        report.written.append(f"wrote {path.name} (lists {ENV_FILE_NAME})")


def _write_tasks(folder: Path, report: InitReport) -> None:
    candidates = (folder / "tasks.py", folder / "tasks" / "__init__.py")  # what Invoke loads
    existing = next((path for path in candidates if path.is_file()), None)
    if existing is None:
        (folder / "tasks.py").write_text(TASKS_PY, encoding="utf-8")
        report.written.append("wrote tasks.py: `inv --list` shows the hubtasks tasks")
        return
    name = existing.relative_to(folder)
    if "hubtasks" in existing.read_text(encoding="utf-8", errors="replace"):
        report.kept.append(f"{name} exists and uses hubtasks, left as it was")
    else:
        report.kept.append(
            f"{name} exists, left as it was; add `from hubtasks import ns` to it, or the "
            "collection to yours (see the README)"
        )
