"""Two releases of one version started together (issue 23, item 3), the real daemon and
registry: the slower build exits 1 naming the faster one's digest, the tag holds the faster
one's build, and no run prints a digest that is not its own build's."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.integration.conftest import Project


def test_two_releases_of_one_version_the_slower_exits_1(project: Project, tmp_path) -> None:
    slow_root = tmp_path / "slow"
    shutil.copytree(project.path, slow_root)
    (slow_root / "Dockerfile").write_text(
        (slow_root / "Dockerfile").read_text() + 'RUN sleep 6 && echo "slow" > /slow\n'
    )

    def start(root):
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", "release", "--tag", "v1.0.1"],
            cwd=root,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    fast, slow = start(project.path), start(slow_root)
    fast_out, fast_err = fast.communicate(timeout=300)
    slow_out, slow_err = slow.communicate(timeout=300)

    assert fast.returncode == 0, fast_err
    held = project.stack.registry_server.manifest_digest(project.repository, "v1.0.1")
    assert fast_out.split() == [f"{project.stack.registry}/{project.repository}:v1.0.1@{held}"]

    assert slow.returncode == 1, slow_err
    assert slow_out == ""  # no digest printed as released
    last = slow_err.strip().splitlines()[-1]
    assert last.startswith("hubtasks: ") and "Traceback" not in slow_err
    assert f"v1.0.1 was published by another run while this one built: it holds {held}" in last
    assert project.tags() == ["v1.0.1"]
