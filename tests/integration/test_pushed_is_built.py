"""The image a release pushes is the image it built (issue 26 item 1), and the final read-back
says when a floating tag moved under the run (item 8): real daemon and registry."""

from __future__ import annotations

import json
import threading
import time

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from devtools.stack import BASE_IMAGE

from .conftest import assert_clean_failure

# The image ID each builder gives is what is checked: both builders.
pytestmark = pytest.mark.builds

_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def _config_digest(registry_server, repository: str, tag: str) -> str:
    with registry_server.request(f"/v2/{repository}/manifests/{tag}", accept=_ACCEPT) as resp:
        return str(json.load(resp)["config"]["digest"])


def _image_id(project, ref: str) -> str:
    found = project.run("docker", "image", "inspect", "--format", "{{.Id}}", ref)
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


def test_a_tag_moved_before_the_push_does_not_publish_the_other_image(project, stack):
    """A pre-push hook re-points the local tag at another image (what a second release on
    the same daemon does): the registry still gets the image this run built."""
    target = f"{stack.registry}/{project.repository}:v1.0.0"
    project.add_env(HUB_PRE_PUSH=f"docker tag {BASE_IMAGE} {target}")
    result = project.inv("release", "--tag", "v1.0.0", "--json")
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout)["image_id"]
    assert built != _image_id(project, BASE_IMAGE)
    assert _config_digest(stack.registry_server, project.repository, "v1.0.0") == built


def test_a_tag_moved_while_the_daemon_pushes_fails_naming_both_images(project, stack):
    """The daemon reads the local tag only after its first request to the registry: another
    process moving the tag then (held open by the proxy) makes it push the other image. The
    run checks the manifest's config before the tag counts as pushed: exit 1, both images."""
    target = f"{stack.registry}/{project.repository}:v1.0.0"
    with HttpFaultProxy(stack.registry_server.port) as proxy:
        project.add_env(HUB_REGISTRY=proxy.address)
        target = f"{proxy.address}/{project.repository}:v1.0.0"
        ping = proxy.add(Rule(method="GET", path=r"^/v2/$", agent="docker", delay=3, times=1))

        def move_the_tag() -> None:
            deadline = time.monotonic() + 120
            while not ping.fired and time.monotonic() < deadline:
                time.sleep(0.02)
            project.run("docker", "tag", BASE_IMAGE, target)

        mover = threading.Thread(target=move_the_tag)
        mover.start()
        result = project.inv("release", "--tag", "v1.0.0", "--json")
        mover.join()
    assert ping.fired == 1
    last = assert_clean_failure(result, project, mentions=_image_id(project, BASE_IMAGE)[:19])
    built = next(line for line in result.stderr.splitlines() if "[build] built" in line)
    assert built.split()[2] in last, (built, last)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["exit_code"] == 1


def test_a_floating_tag_moved_by_another_run_is_reported(project, stack):
    """Another release moves `edge` between this run's push and its read-back: the run says
    its tag no longer holds the digest it printed."""
    other = f"{stack.registry}/{project.repository}:edge"
    login = f"docker login -u {stack.username} --password-stdin {stack.registry}"
    hook = (
        f"echo {stack.password} | {login} >/dev/null && docker tag {BASE_IMAGE} {other} && "
        f"docker push -q {other} >/dev/null"
    )
    project.add_env(HUB_POST_PUSH=hook)
    result = project.inv("release", "--tag", "v3", "--tag", "edge")
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "another run moved it" in line]
    assert len(warned) == 1 and f"{project.repository}:edge points at" in warned[0], warned
    assert result.stderr.count("[verify]") == 2  # v3, immutable, is not read again
