"""What git says about the work tree: revision, exact tag, dirtiness, commit time, remote.

Used for the default tag and the OCI labels. Outside a git work tree (or without git) every
answer is None, and the callers say what that means.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    revision: str
    exact_tag: str | None
    dirty: bool
    commit_time: int
    remote_url: str | None

    @property
    def short(self) -> str:
        return self.revision[:7]


def _git(cwd: Path, *args: str) -> str | None:
    return _gits(cwd, [list(args)])[0]


def _gits(cwd: Path, commands: list[list[str]]) -> list[str | None]:
    """Run git commands side by side; each one's stripped stdout, or None when it failed."""
    running: list[subprocess.Popen[str] | None] = []
    for args in commands:
        try:
            running.append(
                subprocess.Popen(
                    ["git", *args],
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        except OSError:
            running.append(None)
    answers: list[str | None] = []
    for process in running:
        if process is None:
            answers.append(None)
            continue
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.SubprocessError:
            process.kill()
            process.communicate()
            answers.append(None)
            continue
        answers.append(out.strip() if process.returncode == 0 else None)
    return answers


def read_git(cwd: Path) -> GitState | None:
    head, tags, status, remote, names = _gits(
        cwd,
        [
            ["show", "-s", "--format=%H %ct", "HEAD"],
            ["tag", "--points-at", "HEAD"],
            ["status", "--porcelain", "--untracked-files=normal"],
            ["remote", "get-url", "origin"],
            ["remote"],
        ],
    )
    if not head:
        return None
    revision, _, commit_time = head.partition(" ")
    if remote is None and names:
        remote = _git(cwd, "remote", "get-url", names.split()[0])
    found = (tags or "").split()
    return GitState(
        revision=revision,
        exact_tag=sorted(found)[-1] if found else None,
        dirty=bool(status),
        commit_time=int(commit_time or 0),
        remote_url=public_url(remote) if remote else None,
    )


def public_url(url: str) -> str:
    """A remote URL fit for a public label: no credentials, scp syntax made https."""
    scp = re.fullmatch(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)", url)
    if scp and "://" not in url:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    url = re.sub(r"^(\w[\w+.-]*://)[^@/]*@", r"\1", url)
    return url.removesuffix(".git")


def is_tracked(path: Path) -> bool:
    """Whether git tracks `path` (False outside a work tree or without git)."""
    return _git(path.parent, "ls-files", "--error-unmatch", "--", path.name) is not None


def folder_in_repository(folder: Path) -> str | None:
    """`folder`'s path inside its git work tree, `""` at the top or `"docs/"` below it (None
    outside a work tree or without git)."""
    return _git(folder, "rev-parse", "--show-prefix")


def why_no_git(cwd: Path) -> str:
    """Why `read_git(cwd)` found no commit, in words that end a sentence about `cwd`: a git
    repository without commits is not the same as no repository (asked only on that path)."""
    if _git(cwd, "rev-parse", "--is-inside-work-tree") == "true":
        return "is in a git repository with no commits yet"
    return "is not in a git work tree"
