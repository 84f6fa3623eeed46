"""`inv prune` end to end: on the Docker Hub double (its tags API) and on real Distribution
registries, one started with deletes enabled and one without (which answers DELETE with 405).

Images are put into the registry over its HTTP API (a config blob with a chosen `created`, one
small layer, a schema 2 manifest), so their dates and which tags share a digest are exactly
what each test needs; no daemon is involved. The exception: multi-platform releases, made by
`inv release --platform` on the test stack's daemon and registry, and pulled back afterwards.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from devtools.hubdouble import HubDouble
from devtools.stack import Registry, missing_packages
from tests.helpers.pulls import assert_tags_pull
from tests.helpers.uploads import Uploader

USER, PASSWORD = "pruner", "prune-password-9876"
PAT = "dckr_pat_prune-secret-4321"
NOW = datetime.datetime.now(datetime.timezone.utc)
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def run_inv(folder: Path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def project(folder: Path, env_lines: str) -> Path:
    folder.mkdir()
    (folder / "tasks.py").write_text("from hubtasks import ns\n")
    (folder / ".env").write_text(env_lines)
    (folder / ".env").chmod(0o600)
    return folder


def days_ago(days: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


# --- on the Docker Hub double ------------------------------------------------------------


@pytest.fixture
def hub(tmp_path):
    with HubDouble() as double:
        double.add_account("alice", PAT, level="delete")
        double.add_account("reader", "dckr_pat_reader-1111", level="write")
        double.max_page_size = 4  # 11 tags: three pages
        for index in range(1, 9):
            double.add_tag("alice", "web", f"sha-{index}", f"sha256:{index:064x}", days_ago(index))
        double.add_tag("alice", "web", "latest", f"sha256:{8:064x}", days_ago(0.5))  # = sha-8
        double.add_tag("alice", "web", "v1.0.0", f"sha256:{99:064x}", days_ago(30))
        double.add_tag("alice", "web", "main", f"sha256:{98:064x}", days_ago(40))
        folder = project(
            tmp_path / "hubproject",
            f"HUB_REGISTRY=127.0.0.1:5999\nHUB_USERNAME=alice\nHUB_TOKEN={PAT}\n"
            f"HUB_REPOSITORY=alice/web\nHUB_API_URL={double.url}\n",
        )
        yield double, folder


def hub_tags(double: HubDouble) -> list[str]:
    return sorted(double.repositories[("alice", "web")].tags)


def test_prune_on_docker_hub_lists_then_deletes(hub):
    double, folder = hub
    before = hub_tags(double)
    listed = run_inv(folder, "prune", "--match", "sha-*", "--keep", "3")
    assert listed.returncode == 0, listed.stderr
    assert hub_tags(double) == before and double.sent("DELETE") == []
    assert listed.stdout == ""
    for name in ("sha-4", "sha-5", "sha-6", "sha-7"):
        assert f"[prune] would delete {name}  sha256:" in listed.stderr
    assert "keep sha-8: its digest is also latest's, which is kept" in listed.stderr
    assert "would delete 4 of 11 tag(s); run again with --yes" in listed.stderr
    assert len(double.sent("GET", "/v2/namespaces/alice/repositories/web/tags")) == 3

    deleted = run_inv(folder, "prune", "--match", "sha-*", "--keep", "3", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert hub_tags(double) == ["latest", "main", "sha-1", "sha-2", "sha-3", "sha-8", "v1.0.0"]
    assert sorted(double.sent("DELETE")) == [
        f"/v2/repositories/alice/web/tags/sha-{i}/" for i in (4, 5, 6, 7)
    ]
    assert sorted(deleted.stdout.splitlines()) == [
        f"127.0.0.1:5999/alice/web:sha-{i}@sha256:{i:064x}" for i in (4, 5, 6, 7)
    ]
    for i in (4, 5, 6, 7):
        assert f"[prune] deleted sha-{i}  sha256:{i:064x}" in deleted.stderr
    assert deleted.stderr.strip().splitlines()[-1] == "[prune] deleted 4 of 11 tag(s)"


def test_dry_run_deletes_nothing_even_with_yes(hub):
    double, folder = hub
    before = hub_tags(double)
    result = run_inv(folder, "prune", "--match", "sha-*", "--keep", "3", "--yes", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert hub_tags(double) == before and double.sent("DELETE") == []
    assert result.stdout == ""
    assert result.stderr.count("[prune] would delete sha-") == 4
    last = result.stderr.strip().splitlines()[-1]
    assert last == "[prune] would delete 4 of 11 tag(s) (dry run: nothing deleted)"
    assert "--dry-run" in run_inv(folder, "--help", "prune").stdout


def test_version_tags_need_a_pattern_that_names_them(hub):
    double, folder = hub
    everything = run_inv(folder, "prune", "--match", "*", "--older-than", "20d", "--yes")
    assert everything.returncode == 0, everything.stderr
    assert "keep v1.0.0: a version tag" in everything.stderr
    assert "v1.0.0" in hub_tags(double) and "main" not in hub_tags(double)
    named = run_inv(folder, "prune", "--match", "v1.*", "--older-than", "20d", "--yes")
    assert named.returncode == 0, named.stderr
    assert "v1.0.0" not in hub_tags(double)


def test_prune_with_a_token_that_cannot_delete(hub):
    double, folder = hub
    double.add_tag("reader", "web", "sha-1", "sha256:" + "1" * 64, days_ago(9))
    result = run_inv(
        folder,
        "prune",
        "--match",
        "sha-*",
        "--keep",
        "0",
        "--yes",
        HUB_USERNAME="reader",
        HUB_TOKEN="dckr_pat_reader-1111",
        HUB_REPOSITORY="reader/web",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hubtasks: Docker Hub denied reader permission to delete tags")
    assert "'Repo Read, Write, Delete'" in last and "(deleted before this: none)" in last
    assert "dckr_pat_reader-1111" not in result.stdout + result.stderr
    # The plan was shown, and nothing reads as if a tag had been deleted.
    assert f"[prune] would delete sha-1  sha256:{'1' * 64}" in result.stderr
    assert "] delete " not in result.stderr and "] deleted " not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, mentions",
    [
        ((), "prune needs --match PATTERN"),
        (("--match", "sha-*"), "--keep N, --older-than AGE or both"),
        (("--match", "sha-*", "--keep", "many"), "--keep: 'many' is not a whole number"),
        (("--match", "sha-*", "--older-than", "soon"), "'soon' is not an age"),
        (("--match", "sha-*", "--older-than", "99999999999d"), "more than 100 years"),
        (("--match", "sha-*", "--older-than", "1000000d"), "more than 100 years"),
    ],
)
def test_prune_refuses_an_incomplete_rule(hub, args, mentions):
    double, folder = hub
    result = run_inv(folder, "prune", *args)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hubtasks: ") and mentions in last, last
    assert double.requests == []


# --- on a real Distribution registry ---------------------------------------------------------


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    missing = missing_packages()
    if missing:
        pytest.fail(f"integration tests need: apt-get install {' '.join(missing)}")
    root = tmp_path_factory.mktemp("prune-registries")
    started = {
        "deletes": Registry(root / "deletes", USER, PASSWORD),
        "no-deletes": Registry(root / "no-deletes", USER, PASSWORD, delete_enabled=False),
    }
    try:
        for registry in started.values():
            registry.start()
        yield started
    finally:
        for registry in started.values():
            registry.stop()


_names = iter(range(1, 1000))


@pytest.fixture
def seeded(registries, tmp_path, request):
    """A fresh repository in the chosen registry: sha-1…sha-5 (1–5 days old), latest = sha-5's
    image, v1.0.0 (10 days) and main (20 days)."""
    registry = registries[getattr(request, "param", "deletes")]
    name = f"{USER}/app{next(_names)}"
    upload = Uploader(registry)
    digests = {f"sha-{i}": upload.image(name, [f"sha-{i}"], days_ago(i)) for i in range(1, 5)}
    digests["sha-5"] = digests["latest"] = upload.image(name, ["sha-5", "latest"], days_ago(5))
    digests["v1.0.0"] = upload.image(name, ["v1.0.0"], days_ago(10))
    digests["main"] = upload.image(name, ["main"], days_ago(20))
    folder = project(
        tmp_path / "project",
        f"HUB_REGISTRY={registry.address}\nHUB_USERNAME={USER}\nHUB_TOKEN={PASSWORD}\n"
        f"HUB_REPOSITORY={name}\n",
    )
    return registry, name, digests, folder


def test_prune_on_a_registry_deletes_by_digest_but_never_a_shared_one(seeded):
    registry, name, digests, folder = seeded
    listed = run_inv(folder, "prune", "--match", "sha-*", "--keep", "2")
    assert listed.returncode == 0, listed.stderr
    assert registry.tags(name) == sorted(digests)
    assert f"would delete sha-3  {digests['sha-3']}  created " in listed.stderr
    assert "keep sha-5: its digest is also latest's, which is kept" in listed.stderr

    result = run_inv(folder, "prune", "--match", "sha-*", "--keep", "2", "--yes")
    assert result.returncode == 0, result.stderr
    assert registry.tags(name) == ["latest", "main", "sha-1", "sha-2", "sha-5", "v1.0.0"]
    assert registry.manifest_digest(name, "latest") == digests["latest"]
    assert sorted(result.stdout.splitlines()) == [
        f"{registry.address}/{name}:sha-{i}@{digests[f'sha-{i}']}" for i in (3, 4)
    ]
    assert PASSWORD not in result.stdout + result.stderr
    assert_tags_pull(registry, name)


def test_older_than_uses_the_image_config_dates(seeded):
    registry, name, _, folder = seeded
    result = run_inv(folder, "prune", "--match", "*", "--older-than", "3d12h", "--yes")
    assert result.returncode == 0, result.stderr
    # sha-4, main and the image of sha-5 and latest (both matching, both old: one DELETE)
    # are old enough; v1.0.0 is a version tag.
    assert registry.tags(name) == ["sha-1", "sha-2", "sha-3", "v1.0.0"]
    assert sorted(line.split(":")[-2].split("@")[0] for line in result.stdout.splitlines()) == [
        "latest",
        "main",
        "sha-4",
        "sha-5",
    ]
    assert "keep v1.0.0: a version tag" in result.stderr
    assert_tags_pull(registry, name)


@pytest.mark.parametrize("seeded", ["no-deletes"], indirect=True)
def test_a_registry_without_deletes_says_so(seeded):
    registry, name, digests, folder = seeded
    result = run_inv(folder, "prune", "--match", "sha-*", "--keep", "0", "--yes")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hubtasks: registry {registry.address} does not allow deleting images")
    assert "HTTP 405" in last and "storage.delete.enabled: true" in last
    assert "Traceback" not in result.stderr
    assert registry.tags(name) == sorted(digests)
    assert_tags_pull(registry, name)


# --- multi-platform releases, on the test stack ---------------------------------------------


def _release(project, version: str, *flags: str) -> None:
    for arch in ("amd64", "arm64"):
        project.write(f"dist/app-{arch}", f"{version} for {arch}")
    made = project.inv("release", "--tag", version, *flags, "--platform", "linux/amd64,linux/arm64")
    assert made.returncode == 0, made.stderr


def _manifest(stack, repository: str, reference: str) -> dict | None:
    """The manifest (list or image) under a tag or digest, None when the registry has none."""
    accept = f"{LIST}, {SCHEMA2}"
    try:
        with stack.registry_server.request(
            f"/v2/{repository}/manifests/{reference}", accept=accept
        ) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def test_prune_never_deletes_an_image_inside_a_kept_list(project, client, stack):
    """The tester's case: v1.1.0's list is also v1.1, v1, latest and v2.0.0. Its images'
    own tags (v1.1.0-linux-amd64, …) match 'v1.*' and are old, but deleting them would delete
    the images the kept list names, and `docker pull …:latest` would fail."""
    project.write("Dockerfile", "FROM scratch\nARG TARGETARCH\nCOPY dist/app-${TARGETARCH} /app\n")
    _release(project, "v1.0.0")
    _release(project, "v1.1.0", "--semver")
    promoted = project.inv("promote", "--source", "v1.1.0", "--tag", "v2.0.0")
    assert promoted.returncode == 0, promoted.stderr
    before = project.tags()
    old = {
        name: stack.registry_server.manifest_digest(project.repository, name)
        for name in ("v1.0.0", "v1.0.0-linux-amd64", "v1.0.0-linux-arm64")
    }
    assert set(old) <= set(before)

    result = project.inv("prune", "--match", "v1.*", "--keep", "1", "--yes")
    assert result.returncode == 0, result.stderr
    assert project.tags() == sorted(set(before) - set(old))
    assert "an image inside latest's list, which is kept" in result.stderr
    assert [line for line in result.stderr.splitlines() if "delete v1.1" in line] == []
    assert sorted(result.stdout.splitlines()) == sorted(
        f"{stack.registry}/{project.repository}:{name}@{digest}" for name, digest in old.items()
    )
    for name in project.tags():  # every list left names only images that are still there
        for child in (_manifest(stack, project.repository, name) or {}).get("manifests", []):
            assert _manifest(stack, project.repository, child["digest"]) is not None, name
    assert_tags_pull(stack.registry_server, project.repository)

    reference = f"{stack.registry}/{project.repository}"
    for image in client.images.list(name=reference):
        client.images.remove(image.id, force=True)
    auth = {"username": stack.username, "password": stack.password}
    for name in ("latest", "v2.0.0"):
        pulled = client.images.pull(reference, tag=name, auth_config=auth)
        assert pulled.attrs["Architecture"] == "amd64"
