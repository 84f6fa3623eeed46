"""Measuring one process: a command under GNU time (wall clock, CPU, peak RSS), and the
registry-side copy a script would do by hand."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import GNU_TIME, BenchError

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
