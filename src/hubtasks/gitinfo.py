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
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def read_git(cwd: Path) -> GitState | None:
    revision = _git(cwd, "rev-parse", "--verify", "HEAD")
    if not revision:
        return None
    tags = (_git(cwd, "tag", "--points-at", "HEAD") or "").split()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=normal")
    commit_time = _git(cwd, "show", "-s", "--format=%ct", "HEAD") or "0"
    remote = _git(cwd, "remote", "get-url", "origin")
    if remote is None:
        names = (_git(cwd, "remote") or "").split()
        remote = _git(cwd, "remote", "get-url", names[0]) if names else None
    return GitState(
        revision=revision,
        exact_tag=sorted(tags)[-1] if tags else None,
        dirty=bool(status),
        commit_time=int(commit_time),
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
