"""Two releases of one version started together (issue 23, item 3), the real daemon and
registry: the slower build exits 1 naming the faster one's digest, the tag holds the faster
one's build, and no run prints a digest that is not its own build's."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.integration.conftest import Project


@pytest.mark.builds
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


ECR_IMMUTABLE = (
    b'{"errors": [{"code": "TAG_INVALID", "message": "The image tag \'v1.0.1\' already exists '
    b"in the 'hubuser/app' repository and cannot be overwritten because the repository is "
    b'immutable."}]}'
)


def test_a_registry_with_immutable_tags_is_one_line(project: Project) -> None:
    """A registry's own tag immutability (here as ECR answers a manifest PUT over a tag it
    holds) turns a forced overwrite into one line naming that setting; never retried."""
    from devtools.httpfault import HttpFaultProxy, Rule
    from tests.integration.conftest import assert_clean_failure

    with HttpFaultProxy(project.stack.registry_server.port) as proxy:
        first = project.inv("release", "--tag", "v1.0.1", HUB_REGISTRY=proxy.address)
        assert first.returncode == 0, first.stderr
        proxy.add(Rule(method="PUT", path="/manifests/v1.0.1", status=400, body=ECR_IMMUTABLE))
        project.write("app.txt", "changed\n")
        project.write(
            "Dockerfile", project.path.joinpath("Dockerfile").read_text() + "COPY app.txt /\n"
        )
        forced = project.inv("release", "--tag", "v1.0.1", "--force", HUB_REGISTRY=proxy.address)
        last = assert_clean_failure(forced, project, mentions="its tags are immutable")
        assert "ECR image tag mutability IMMUTABLE" in last
        assert "[retry]" not in forced.stderr
        assert proxy.count(method="PUT", path="/manifests/v1.0.1") == 2  # 1st release + refused
