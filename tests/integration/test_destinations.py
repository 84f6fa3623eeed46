"""One release, several registries: the daemon pushes to the first destination, hubtasks copies
the same manifest bytes registry to registry to the others — checked through each registry's
own API. Three registries, each with its own user and password: the stack's and bob's with
htpasswd, carol's with a Bearer token service (devtools.tokenauth, as Docker Hub and GHCR);
the further two sit behind per-request fault proxies (devtools.httpfault) that count and fault
their requests."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import subprocess
import sys

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from devtools.stack import Registry
from devtools.tokenauth import TokenRegistry
from hubtasks.settings.destinations import registry_variables
from tests.helpers.pulls import assert_tags_pull

from .conftest import assert_clean_failure

# What stores something: a manifest or blob PUT, a PATCH of an upload, a mount. (The
# push-access check opens an upload and cancels it, on a re-run too: no write.)
WRITES = r"^(PUT|PATCH)$"


class Far:
    """A further registry (its own credentials; htpasswd, or a Bearer token service with
    `tokens`) behind a fault proxy."""

    def __init__(self, root, username: str, password: str, *, tokens: bool = False) -> None:
        kind = TokenRegistry if tokens else Registry
        self.server = kind(root, username, password)
        self.server.start()
        self.proxy = HttpFaultProxy(self.server.port).start()
        self.username, self.password = username, password

    @property
    def address(self) -> str:
        return self.proxy.address

    def env(self) -> dict[str, str]:
        user, token = registry_variables(self.address)
        return {user: self.username, token: self.password}

    def writes(self) -> list[tuple[str, str]]:
        return [
            (s.method, s.path)
            for s in self.proxy.seen
            if re.match(WRITES, s.method) or "mount=" in s.path
        ]

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def fars(tmp_path_factory):
    made = [
        Far(tmp_path_factory.mktemp("ghcr"), "bob", "bob-secret-2"),
        Far(tmp_path_factory.mktemp("quay"), "carol", "carol-secret-3", tokens=True),
    ]
    yield made
    for far in made:
        far.stop()


@pytest.fixture
def mirrored(project, fars):
    """The project publishing to its registry, then to `bob/<name>` and `carol/<name>`."""
    name = project.repository.split("/")[1]
    project.drop_env("HUB_REPOSITORY")
    project.add_env(
        HUB_REPOSITORY=f'"{name} {fars[0].address}/bob/{name} {fars[1].address}/carol/{name}"',
        **fars[0].env(),
        **fars[1].env(),
    )
    for far in fars:
        far.proxy.clear()
    return project, name


def _digest(far: Far, path: str, tag: str) -> str | None:
    return far.server.manifest_digest(path, tag)


def test_every_destination_gets_the_same_digest_and_a_rerun_writes_nothing(mirrored, fars):
    project, name = mirrored
    outputs, hook = project.path.parent / "github-output", project.path.parent / "hook.txt"
    project.add_env(HUB_POST_RELEASE=f'echo "$HUB_DESTINATIONS|$HUB_REFS" > {hook}')
    result = project.inv(
        "release", "--tag", "v1.0.0", "--semver", "--json", GITHUB_OUTPUT=str(outputs)
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    everywhere = [ref for d in document["destinations"] for ref in d["references"]]
    destinations, refs = hook.read_text().strip().split("|")
    assert destinations.split() == [d["image"] for d in document["destinations"]]
    assert refs.split() == everywhere
    written = outputs.read_text()
    assert f"images={','.join(destinations.split())}" in written
    assert all(ref in written for ref in everywhere)
    digest = document["digest"]
    assert project.stack.registry_server.manifest_digest(project.repository, "v1.0.0") == digest
    for far, user in zip(fars, ("bob", "carol"), strict=True):
        for tag in ("v1.0.0", "v1.0", "v1", "latest"):
            assert _digest(far, f"{user}/{name}", tag) == digest, (far.address, tag)
        assert_tags_pull(far.server, f"{user}/{name}", ["v1.0.0", "latest"])
    images = [d["image"] for d in document["destinations"]]
    assert images == [
        f"{project.stack.registry}/{project.repository}",
        f"{fars[0].address}/bob/{name}",
        f"{fars[1].address}/carol/{name}",
    ]
    assert all(len(d["references"]) == 4 for d in document["destinations"])
    # Blobs went across as uploads (a HEAD first), never through the daemon.
    assert not any(s.agent.startswith("docker/") for far in fars for s in far.proxy.seen)
    assert fars[0].proxy.count(method="HEAD", path="/blobs/sha256:") >= 2
    assert fars[1].server.tokens > 0  # carol's registry answered with Bearer challenges
    for secret in ("bob-secret-2", "carol-secret-3"):
        assert secret not in result.stdout + result.stderr

    for far in fars:
        far.proxy.clear()
    again = project.inv("release", "--tag", "v1.0.0", "--semver")
    assert again.returncode == 0, again.stderr
    refs = again.stdout.split()
    assert len(refs) == 12 and all(ref.endswith(f"@{digest}") for ref in refs)
    assert [far.writes() for far in fars] == [[], []]


def test_the_dry_run_shows_every_destination_and_the_commands(mirrored, fars):
    project, name = mirrored
    dry = project.inv("release", "--tag", "v2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for far, user in zip(fars, ("bob", "carol"), strict=True):
        assert f"plan for {far.address}/{user}/{name}" in dry.stdout
        assert f"--tag {far.address}/{user}/{name}:v2" in dry.stdout
        assert f"crane copy {project.stack.registry}/{project.repository}:v2" in dry.stdout
        assert far.writes() == []


def test_a_refusal_in_a_further_destination_stops_before_any_write(mirrored, fars):
    project, name = mirrored
    # carol's registry holds v3.0.0 already, of another image (published there alone).
    other = project.inv(
        "release", "--tag", "v3.0.0", "--build-arg", "GREETING=other",
        HUB_REPOSITORY=f"{fars[1].address}/carol/{name}",
        HUB_REGISTRY=fars[1].address, HUB_USERNAME="carol", HUB_TOKEN="carol-secret-3",
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    fars[1].proxy.clear()
    result = project.inv("release", "--tag", "v3.0.0")
    last = assert_clean_failure(result, project, mentions="refusing")
    assert f"carol/{name}:v3.0.0" in last
    assert project.tags() == []
    assert fars[0].writes() == [] and fars[1].writes() == []


@pytest.mark.parametrize(
    "fault",
    [
        Rule(method="PUT", path="/manifests/v4", status=403, times=None),
        Rule(method="PUT", path="/blobs/uploads/", status=429, times=None),
        Rule(method="PUT", path="/blobs/uploads/", stall=60, times=None),
    ],
    ids=["403-on-tags", "429-on-uploads", "stalled-upload"],
)
def test_a_destination_failing_part_way_says_what_landed_and_a_rerun_finishes(
    mirrored, fars, fault
):
    project, name = mirrored
    fars[1].proxy.add(fault)
    result = project.inv(
        "release", "--tag", "v4", "--tag", "edge", HUB_TIMEOUT="12", HUB_RETRIES="2"
    )
    last = assert_clean_failure(result, project)
    first = f"{project.stack.registry}/{project.repository}"
    assert f"{first}:v4@sha256:" in last and f"{fars[0].address}/bob/{name}:edge@" in last
    assert f"not (wholly) published yet: {fars[1].address}/carol/{name}" in last
    assert _digest(fars[1], f"carol/{name}", "v4") is None

    fars[1].proxy.clear()
    fars[0].proxy.clear()
    again = project.inv("release", "--tag", "v4", "--tag", "edge")
    assert again.returncode == 0, again.stderr
    digest = project.stack.registry_server.manifest_digest(project.repository, "v4")
    assert _digest(fars[1], f"carol/{name}", "v4") == digest
    assert_tags_pull(fars[1].server, f"carol/{name}", ["v4", "edge"])
    assert fars[0].writes() == []  # bob's registry had it all: nothing sent again
    uploads = [w for w in fars[1].writes() if w[0] == "PUT" and "/blobs/uploads/" in w[1]]
    if fault.status == 403:  # the blobs had landed before the tags were refused
        assert uploads == []


def test_a_multi_platform_release_is_mirrored_with_its_children(mirrored, fars):
    project, name = mirrored
    project.write(
        "Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY dist/app-${TARGETARCH} /app\n",
    )
    project.write("dist/app-amd64", "x86 build")
    project.write("dist/app-arm64", "arm build")
    result = project.inv(
        "release", "--tag", "v5", "--platform", "linux/amd64,linux/arm64", "--json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for far, user in zip(fars, ("bob", "carol"), strict=True):
        assert _digest(far, f"{user}/{name}", "v5") == document["digest"]
        for child in document["platforms"].values():
            assert _digest(far, f"{user}/{name}", child) == child
        assert_tags_pull(far.server, f"{user}/{name}", ["v5"])  # the list, each child whole


def test_a_further_token_that_may_not_push_stops_the_release_before_the_build(mirrored, fars):
    project, name = mirrored
    fars[1].server.read_only.add("carol")
    try:
        result = project.inv("release", "--tag", "v7")
    finally:
        fars[1].server.read_only.discard("carol")
    last = assert_clean_failure(result, project, mentions="may not push to")
    assert f"{fars[1].address}/carol/{name}" in last and "granted pull" in last
    assert "[build]" not in result.stderr
    assert project.tags() == [] and fars[0].writes() == [] and fars[1].writes() == []


def test_destinations_in_one_registry_mount_what_another_received(project, fars):
    """bob/<name>-a receives the blobs streamed; bob/<name>-b, in the same registry, mounts
    them from there; <name>-copy, in the first registry, mounts them from the first."""
    name = project.repository.split("/")[1]
    far = fars[0]
    project.drop_env("HUB_REPOSITORY")
    project.add_env(
        HUB_REPOSITORY=f'"{name} {far.address}/bob/{name}-a {far.address}/bob/{name}-b '
        f'{name}-copy"',
        **far.env(),
    )
    far.proxy.clear()
    result = project.inv("release", "--tag", "v8", "--json")
    assert result.returncode == 0, result.stderr
    digest = json.loads(result.stdout)["digest"]
    for path in (f"bob/{name}-a", f"bob/{name}-b"):
        assert _digest(far, path, "v8") == digest
    stack = project.stack.registry_server
    assert stack.manifest_digest(f"{project.stack.username}/{name}-copy", "v8") == digest
    uploads = [p for m, p in far.writes() if m == "PUT" and "/blobs/uploads/" in p]
    mounts = [p for m, p in far.writes() if "mount=" in p]
    assert uploads and all(f"/bob/{name}-a/" in p for p in uploads)
    assert mounts and all(f"/bob/{name}-b/" in p and f"from=bob%2F{name}-a" in p for p in mounts)


def test_promote_within_a_registry_that_will_not_mount_streams_the_blobs(mirrored, fars):
    project, name = mirrored
    assert project.inv("release", "--tag", "v9").returncode == 0
    far = fars[0]
    far.proxy.clear()
    refuse = Rule(method="POST", path="mount=", status=202, times=None)
    refuse.headers = {"Location": f"/v2/bob/{name}-other/blobs/uploads/nowhere"}
    far.proxy.add(refuse)
    result = project.inv(
        "promote", "--source", f"{far.address}/bob/{name}:v9", "--tag", "v9",
        HUB_REGISTRY=far.address, HUB_REPOSITORY=f"bob/{name}-other",
        HUB_USERNAME="bob", HUB_TOKEN="bob-secret-2", DOCKER_HOST="unix:///nx",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "copied (the registry would not mount it)" in result.stderr
    assert refuse.fired >= 2
    assert _digest(far, f"bob/{name}-other", "v9") == _digest(far, f"bob/{name}", "v9")
    assert_tags_pull(far.server, f"bob/{name}-other", ["v9"])


def _publish_at_carol(project, far: Far, name: str, tag: str, greeting: str) -> str:
    """Release `tag` to carol's registry alone (as another pipeline would); its digest."""
    done = project.inv(
        "release", "--tag", tag, "--build-arg", f"GREETING={greeting}",
        HUB_REPOSITORY=f"{far.address}/carol/{name}",
        HUB_REGISTRY=far.address, HUB_USERNAME="carol", HUB_TOKEN="carol-secret-3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rsplit("@", 1)[1]


def test_promote_from_another_registry_copies_to_every_destination(mirrored, fars):
    project, name = mirrored
    rc = _publish_at_carol(project, fars[1], name, "rc1", "promoted")
    source = f"{fars[1].address}/carol/{name}:rc1"
    dry = project.inv("promote", "--source", source, "--tag", "v6", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"plan for {fars[0].address}/bob/{name}" in dry.stdout and project.tags() == []
    result = project.inv("promote", "--source", source, "--tag", "v6", DOCKER_HOST="unix:///nx")
    assert result.returncode == 0, result.stderr
    assert project.stack.registry_server.manifest_digest(project.repository, "v6") == rc
    assert _digest(fars[0], f"bob/{name}", "v6") == rc
    assert _digest(fars[1], f"carol/{name}", "v6") == rc
    assert len(result.stdout.split()) == 3


_BIG = 200 * 1024 * 1024
_COPY_SCRIPT = """
import resource, sys
from hubtasks.references import Repository
from hubtasks.registry.client import RegistryClient
from hubtasks.registry.copy import copy_blob
source_registry, source_user, source_secret, target_registry, target_user, target_secret = (
    sys.argv[1:7]
)
digest = sys.argv[7]
def client(registry, user, secret):
    return RegistryClient(Repository(registry, user + "/big"), user, secret)
source = client(source_registry, source_user, source_secret)
target = client(target_registry, target_user, target_secret)
source.check_credentials(); target.check_credentials()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
copied = copy_blob(source, target, digest, timeout=60) if digest != "none" else None
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(copied, before, after)
"""


def _upload_big(registry: Registry, repository: str) -> str:
    """A 200 MB blob generated as it is sent (POST, one streamed PATCH, PUT ?digest=)."""
    import base64

    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    connection = http.client.HTTPConnection(registry.address, timeout=60)
    connection.request("POST", f"/v2/{repository}/blobs/uploads/", headers=headers)
    response = connection.getresponse()
    response.read()
    location = response.getheader("Location")
    hasher = hashlib.sha256()
    generator = random.Random(25)

    def chunks():
        for _ in range(_BIG // (1024 * 1024)):
            chunk = generator.randbytes(1024 * 1024)
            hasher.update(chunk)
            yield chunk

    sizes = {**headers, "Content-Length": str(_BIG), "Content-Type": "application/octet-stream"}
    connection.request("PATCH", location, body=chunks(), headers=sizes)
    response = connection.getresponse()
    response.read()
    assert response.status == 202, response.status
    digest = "sha256:" + hasher.hexdigest()
    location = response.getheader("Location")
    connection.request("PUT", f"{location}&digest={digest}", headers=headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 201, response.status
    return digest


def test_a_200_mb_layer_is_streamed_with_flat_memory(stack, fars):
    digest = _upload_big(stack.registry_server, f"{stack.username}/big")
    far = fars[0]
    argv = [stack.registry, stack.username, stack.password, far.address, "bob", far.password]

    def run(blob: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", _COPY_SCRIPT, *argv, blob],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    copied, before, after = run(digest)
    assert copied == "True"
    grown_mb = (int(after) - int(before)) / 1024  # ru_maxrss is in KiB on Linux
    print(f"peak RSS grew by {grown_mb:.1f} MB copying 200 MB")
    assert grown_mb < 32, f"peak RSS grew by {grown_mb:.0f} MB copying 200 MB"
    with far.server.request(f"/v2/bob/big/blobs/{digest}", method="HEAD") as response:
        assert int(response.headers["Content-Length"]) == _BIG
    assert run(digest)[0] == "False"  # already there: a HEAD, nothing sent
