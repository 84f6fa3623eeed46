"""Multi-platform images with the classic builder: one build per platform, per-platform tags,
a manifest list under every tag — checked through the registry API, not through hubtasks."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from tests.helpers.pulls import assert_tags_pull

from .conftest import assert_clean_failure

# One build per platform on each builder: every test runs on both.
pytestmark = pytest.mark.builds

LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SINGLE = "application/vnd.docker.distribution.manifest.v2+json"


def _get(stack, repository: str, path: str, accept: str | None = None) -> bytes:
    with stack.registry_server.request(f"/v2/{repository}/{path}", accept=accept) as response:
        return response.read()


def _file_in_layers(stack, repository: str, manifest: dict, name: str) -> bytes | None:
    for layer in manifest["layers"]:
        data = gzip.decompress(_get(stack, repository, f"blobs/{layer['digest']}"))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if name in tar.getnames():
                return tar.extractfile(name).read()
    return None


def _arm64_elf_header() -> bytes:
    """The first 64 bytes of an aarch64 executable: what an amd64 kernel without binfmt
    emulation refuses to run ("exec format error")."""
    import struct

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    return (
        ident
        + struct.pack("<HHIQQQIHHHHHH", 2, 0xB7, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)
        + b"\0" * 64
    )


def _per_arch_project(project) -> None:
    project.write(
        "Dockerfile",
        "FROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\n"
        "COPY dist/app-${TARGETARCH} /app\nLABEL built.for=${TARGETPLATFORM}\n",
    )
    project.write("dist/app-amd64", "x86 build")
    project.write("dist/app-arm64", "arm build")


def test_two_platforms_under_one_tag(project, client, stack):
    _per_arch_project(project)
    result = project.inv(
        "release",
        "--tag",
        "v1.0.0",
        "--semver",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    index_bytes = _get(stack, project.repository, "manifests/v1.0.0", LIST)
    index = json.loads(index_bytes)
    assert index["mediaType"] == LIST
    assert document["digest"] == stack.registry_server.manifest_digest(project.repository, "v1")
    children = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
    }
    assert document["platforms"] == children
    assert set(children) == {"linux/amd64", "linux/arm64"}
    for platform, digest in children.items():
        manifest = json.loads(_get(stack, project.repository, f"manifests/{digest}", SINGLE))
        config = json.loads(
            _get(stack, project.repository, f"blobs/{manifest['config']['digest']}")
        )
        assert f"{config['os']}/{config['architecture']}" == platform
        assert config["config"]["Labels"]["built.for"] == platform
        arch = platform.split("/")[1]
        assert _file_in_layers(stack, project.repository, manifest, "app") == (
            b"x86 build" if arch == "amd64" else b"arm build"
        )
        tag = f"v1.0.0-linux-{arch}"
        assert stack.registry_server.manifest_digest(project.repository, tag) == digest

    # A pull on this amd64 daemon resolves the index to the amd64 image.
    name = f"{stack.registry}/{project.repository}"
    for image in client.images.list(name=name):
        client.images.remove(image.id, force=True)
    auth = {"username": stack.username, "password": stack.password}
    pulled = client.images.pull(name, tag="v1", auth_config=auth)
    assert pulled.attrs["Architecture"] == "amd64"
    assert pulled.labels["built.for"] == "linux/amd64"

    again = project.inv(
        "release",
        "--tag",
        "v1.0.0",
        "--semver",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    assert "building" not in again.stderr and "pushing" not in again.stderr
    assert {t["action"] for t in json.loads(again.stdout)["tags"]} == {"skip"}
    assert json.loads(again.stdout)["platforms"] == children


def test_the_dry_run_shows_each_platforms_build(project, client):
    _per_arch_project(project)
    dry = project.inv(
        "release",
        "--tag",
        "v2",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--dry-run",
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("docker build") == 2
    assert "--platform linux/arm64" in dry.stdout and "TARGETARCH=arm64" in dry.stdout
    assert "docker manifest create" in dry.stdout


def test_from_a_multi_platform_base_and_a_run_the_daemon_cannot_execute(project, client, stack):
    """The base is made multi-platform in the test registry (with hubtasks itself); the
    classic builder resolves each platform's child. Its arm64 `/bin/sh` is not an amd64
    program, so a RUN for arm64 fails with the emulation hint."""
    base = project.path / "base"
    (base / "rootfs/bin").mkdir(parents=True)
    (base / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\n")
    for arch in ("amd64", "arm64"):
        (base / f"rootfs-{arch}").mkdir()
        (base / f"rootfs-{arch}/marker").write_text(arch)
    (base / "rootfs-arm64/bin").mkdir()
    (base / "rootfs-arm64/bin/sh").write_bytes(_arm64_elf_header())
    (base / "rootfs-arm64/bin/sh").chmod(0o755)
    base_name = f"{project.repository}-base"
    made = project.inv(
        "release",
        "--tag",
        "v1",
        "--context",
        "base",
        "--dockerfile",
        "base/Dockerfile",
        "--repository",
        base_name.split("/", 1)[1],
        "--platform",
        "linux/amd64,linux/arm64",
    )
    assert made.returncode == 0, made.stderr
    assert project.inv("login", "--save").returncode == 0  # the daemon pulls the base

    project.write(
        "Dockerfile", f"FROM {stack.registry}/{base_name}:v1\nCOPY hello.txt /hello.txt\n"
    )
    project.write("hello.txt", "hi")
    result = project.inv(
        "release", "--tag", "v1", "--platform", "linux/amd64,linux/arm64", "--json"
    )
    assert result.returncode == 0, result.stderr
    for platform, digest in json.loads(result.stdout)["platforms"].items():
        manifest = json.loads(_get(stack, project.repository, f"manifests/{digest}", SINGLE))
        assert _file_in_layers(stack, project.repository, manifest, "marker") == (
            platform.split("/")[1].encode()
        )

    project.write("Dockerfile", f"FROM {stack.registry}/{base_name}:v1\nRUN echo hello > /hello\n")
    failed = project.inv("release", "--tag", "v2", "--platform", "linux/arm64")
    line = assert_clean_failure(failed, project, mentions="linux/arm64")
    assert "binfmt" in line and "qemu-user-static" in line


@pytest.mark.builder("classic")  # about the classic builder's output
def test_classic_builder_directives_are_warned_about(project):
    project.write(
        "Dockerfile",
        "# syntax=docker/dockerfile:1\nFROM --platform=linux/arm64 scratch\nCOPY tasks.py /\n",
    )
    result = project.inv("build", "--tag", "w1")
    assert result.returncode == 0, result.stderr
    assert "'# syntax=' directive is ignored" in result.stderr
    assert "'FROM --platform=…' is ignored" in result.stderr


def test_a_platform_of_another_os_fails_in_one_line_naming_the_cause(project, client):
    """The daemon runs linux: it cannot even load an image for windows. The error says so
    (not the internal scratch image, not a Docker Hub lookup) and nothing is pushed."""
    project.write("Dockerfile", "FROM scratch\nCOPY tasks.py /tasks.py\n")
    result = project.inv(
        "release",
        "--tag",
        "bad1",
        "--cache-from",
        "none",
        "--platform",
        "linux/amd64,windows/amd64",
    )
    line = assert_clean_failure(result, project, mentions="windows/amd64")
    assert "runs linux" in line, line
    assert "docker.io" not in result.stderr and "hubtasks-scratch" not in line
    assert "[build]" not in result.stderr  # refused before the first build
    assert result.returncode == 2
    assert project.tags() == []


def test_a_base_image_held_only_for_the_daemons_platform_is_named(project, client):
    """busybox:local exists here for the daemon's platform only and cannot be pulled: the
    arm64 build stops before it starts, naming the base and the platform it lacks, instead
    of blaming the daemon for building the wrong platform."""
    result = project.inv("release", "--tag", "v1", "--platform", "linux/amd64,linux/arm64")
    line = assert_clean_failure(result, project, mentions="busybox:local")
    assert "has no linux/arm64 image" in line and "linux/amd64 only" in line, line
    assert "may not support building" not in line
    assert "could not pull busybox:local for linux/arm64" not in result.stderr
    assert project.tags() == []


def test_platform_names_are_normalised_as_buildkit_names_them(project, client, stack):
    """`linux/x86_64` is linux/amd64: built with TARGETARCH=amd64 on this amd64 daemon (no
    foreign-platform scratch image), and `linux/aarch64` + `linux/x86_64` is the usual pair."""
    _per_arch_project(project)
    result = project.inv(
        "release", "--tag", "v1.0.0", "--platform", "linux/aarch64,linux/x86_64", "--json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document["platforms"]) == {"linux/amd64", "linux/arm64"}
    for arch in ("amd64", "arm64"):
        digest = stack.registry_server.manifest_digest(project.repository, f"v1.0.0-linux-{arch}")
        assert digest == document["platforms"][f"linux/{arch}"]
    assert not [i for i in client.images.list() if any("x86_64" in t for t in i.tags)]
    assert "x86_64" not in result.stderr and "aarch64" not in result.stderr


def test_one_platform_named_twice_is_refused_before_anything(project):
    result = project.inv(
        "release", "--tag", "v1", "--platform", "linux/arm64,linux/arm64/v8", "--cache-from", "none"
    )
    line = assert_clean_failure(result, project, mentions="'linux/arm64/v8' names linux/arm64")
    assert result.returncode == 2, line
    assert "[build]" not in result.stderr and project.tags() == []


# --- per-platform tags are planned like any tag (issue 27, item 5) -------------------------


def _half_pushed(project, stack, proxy) -> str:
    """A multi-platform release of v3.0.0 whose arm64 image never lands: linux/amd64's
    per-platform tag is in the registry, nothing else. Returns that tag's digest."""
    _per_arch_project(project)
    project.add_env(HUB_REGISTRY=proxy.address, HUB_RETRIES="1", HUB_CACHE_FROM="none")
    proxy.add(Rule(method="PUT", path="/manifests/v3.0.0-linux-arm64$", status=400, times=None))
    failed = project.inv("release", "--tag", "v3.0.0", "--platform", "linux/amd64,linux/arm64")
    assert failed.returncode != 0, failed.stderr
    proxy.clear()
    assert project.tags() == ["v3.0.0-linux-amd64"]
    landed = stack.registry_server.manifest_digest(project.repository, "v3.0.0-linux-amd64")
    assert landed
    return landed


def test_a_rerun_keeps_a_per_platform_tag_that_holds_its_inputs(project, client, stack):
    with HttpFaultProxy(stack.registry_server.port) as proxy:
        landed = _half_pushed(project, stack, proxy)
        again = project.inv(
            "release", "--tag", "v3.0.0", "--platform", "linux/amd64,linux/arm64", "--json"
        )
    assert again.returncode == 0, again.stderr
    assert "v3.0.0-linux-amd64: unchanged" in again.stderr
    assert "for linux/amd64" not in again.stderr  # not built again
    assert "building" in again.stderr and "for linux/arm64" in again.stderr
    assert json.loads(again.stdout)["platforms"]["linux/amd64"] == landed
    registry = stack.registry_server
    assert registry.manifest_digest(project.repository, "v3.0.0-linux-amd64") == landed
    index = json.loads(_get(stack, project.repository, "manifests/v3.0.0", LIST))
    assert landed in [m["digest"] for m in index["manifests"]]
    assert project.tags() == ["v3.0.0", "v3.0.0-linux-amd64", "v3.0.0-linux-arm64"]
    assert_tags_pull(registry, project.repository)


def test_a_rerun_with_other_inputs_refuses_the_version_form_per_platform_tag(
    project, client, stack
):
    with HttpFaultProxy(stack.registry_server.port) as proxy:
        landed = _half_pushed(project, stack, proxy)
        project.write("dist/app-amd64", "another x86 build")
        again = project.inv("release", "--tag", "v3.0.0", "--platform", "linux/amd64,linux/arm64")
    line = assert_clean_failure(again, project, mentions="v3.0.0-linux-amd64")
    assert "immutable" in line and again.returncode == 1
    assert "[build]" not in again.stderr
    assert stack.registry_server.manifest_digest(project.repository, "v3.0.0-linux-amd64") == (
        landed
    )
    assert project.tags() == ["v3.0.0-linux-amd64"]
