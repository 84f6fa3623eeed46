"""A command line on a real pseudo-terminal (what a person at a terminal sees)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time


def run_in_pty(project, *args: str, timeout: float = 120, **env: str) -> tuple[int, str]:
    """Run `inv …` with stdin/stdout/stderr on a pseudo-terminal; return (code, output)."""
    leader, follower = pty.openpty()
    environment = project.env(TERM="xterm-256color", COLUMNS="120", LINES="40", **env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=project.path,
        env=environment,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(10), b"".join(chunks).decode(errors="replace")
