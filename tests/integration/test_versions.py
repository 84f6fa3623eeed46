"""Issue: tags and versions, checked against the real registry."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import assert_clean_failure

# Tags and labels of what each builder built: every test runs on both.
pytestmark = pytest.mark.builds


def _published(result) -> dict[str, str]:
    refs = {}
    for line in result.stdout.strip().splitlines():
        name, _, digest = line.partition("@")
        refs[name.rsplit(":", 1)[1]] = digest
    return refs


def _registry_state(project) -> dict[str, str | None]:
    server = project.stack.registry_server
    return {t: server.manifest_digest(project.repository, t) for t in project.tags()}


def _change_content(project, text: str) -> None:
    project.write(
        "Dockerfile",
        f'FROM busybox:local\nRUN echo "{text}" > /greeting\nCMD ["cat", "/greeting"]\n',
    )


def test_semver_fans_out_and_older_patch_does_not_move_floating_tags(project):
    first = project.inv("release", "--tag", "v1.2.3", "--semver")
    assert first.returncode == 0, first.stderr
    assert project.tags() == ["latest", "v1", "v1.2", "v1.2.3"]
    v123 = _published(first)["v1.2.3"]
    assert set(_published(first).values()) == {v123}

    _change_content(project, "old line patch")
    older = project.inv("release", "--tag", "v1.1.9", "--semver")
    assert older.returncode == 0, older.stderr
    assert set(_published(older)) == {"v1.1.9", "v1.1"}
    state = _registry_state(project)
    assert state["v1"] == v123 and state["latest"] == v123  # left alone
    assert state["v1.1.9"] == state["v1.1"] != v123
    assert "v1: hold back (v1.2.3 is newer" in older.stderr

    _change_content(project, "newer")
    newer = project.inv("release", "--tag", "v1.3.0", "--semver")
    assert newer.returncode == 0, newer.stderr
    state = _registry_state(project)
    assert state["v1"] == state["latest"] == state["v1.3.0"] != v123


def test_prerelease_gets_only_its_own_tag(project):
    result = project.inv("release", "--tag", "v2.0.0-rc.1", "--semver", "--latest")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["v2.0.0-rc.1"]


def test_latest_flag_and_env_setting(project):
    result = project.inv("release", "--tag", "build-7", HUB_LATEST="true")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["build-7", "latest"]
    bad = project.inv("release", "--tag", "x", HUB_LATEST="maybe")
    assert_clean_failure(bad, project, mentions="HUB_LATEST")


def test_version_tags_are_immutable_unless_forced(project):
    assert project.inv("release", "--tag", "v1.0.0", "--latest").returncode == 0
    before = _registry_state(project)

    _change_content(project, "different bits")
    refused = project.inv("release", "--tag", "v1.0.0", "--latest")
    last = assert_clean_failure(refused, project, mentions="refusing to release")
    assert "v1.0.0" in last and "--force" in last
    assert _registry_state(project) == before  # nothing pushed, latest not moved either

    forced = project.inv("release", "--tag", "v1.0.0", "--latest", "--force")
    assert forced.returncode == 0, forced.stderr
    after = _registry_state(project)
    assert after["v1.0.0"] != before["v1.0.0"]
    assert after["latest"] == after["v1.0.0"]


def test_identical_rerelease_is_a_no_op(project):
    first = project.inv("release", "--tag", "v3.1.4", "--semver")
    assert first.returncode == 0, first.stderr
    again = project.inv("release", "--tag", "v3.1.4", "--semver")
    assert again.returncode == 0, again.stderr
    assert _published(again) == _published(first)
    assert "[push] pushing" not in again.stderr
    assert again.stderr.count(": unchanged (") == 4


@pytest.mark.builder("classic")  # about the classic builder's output
def test_dry_run_changes_nothing(project, client, stack):
    assert project.inv("release", "--tag", "v1.0.0", "--semver").returncode == 0
    before = _registry_state(project)
    images_before = sorted(i.id for i in client.images.list())

    _change_content(project, "dry")
    dry = project.inv("release", "--tag", "v1.1.0", "--semver", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _registry_state(project) == before
    assert sorted(i.id for i in client.images.list()) == images_before
    out = dry.stdout
    assert "v1.1.0  create" in out and "v1.1    create" in out
    # v1 holds v1.0.0's inputs label: decided before any build, moved forward.
    assert "v1      move" in out and "latest  move" in out
    assert f"docker push {stack.registry}/{project.repository}:v1\n" in out + "\n"
    assert f"docker push {stack.registry}/{project.repository}:v1.1.0" in out
    assert "docker build -f Dockerfile" in out
    assert project.token not in out + dry.stderr


def _git(project, *args):
    subprocess.run(
        ["git", *args],
        cwd=project.path,
        check=True,
        capture_output=True,
        env={
            **project.env(),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@x",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x",
            "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
            "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
        },
    )


@pytest.fixture
def git_project(project):
    project.write(".gitignore", ".env\n")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "remote", "add", "origin", "https://someone:secret-pat@git.example/org/app.git")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "init")
    return project


def test_default_tag_from_git_and_oci_labels(git_project, client, stack):
    project = git_project
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project.path, capture_output=True, text=True, check=True
    ).stdout.strip()
    result = project.inv("release")
    assert result.returncode == 0, result.stderr
    assert project.tags() == [f"sha-{sha[:7]}"]

    _git(project, "tag", "v0.9.0")
    tagged = project.inv("release")
    assert tagged.returncode == 0, tagged.stderr
    assert "v0.9.0" in project.tags()

    # Labels on the pushed image, read back after pulling it from the registry.
    ref = f"{stack.registry}/{project.repository}"
    for image in client.images.list(name=ref):
        client.images.remove(image.id, force=True)
    auth = {"username": stack.username, "password": stack.password}
    labels = client.images.pull(ref, tag="v0.9.0", auth_config=auth).labels
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.version"] == "v0.9.0"
    assert labels["org.opencontainers.image.created"] == "2024-01-02T03:04:05Z"
    assert labels["org.opencontainers.image.source"] == "https://git.example/org/app"
    assert labels["org.opencontainers.image.title"] == project.repository.split("/")[1]


def test_dirty_tree_is_refused_without_allow_dirty(git_project):
    project = git_project
    project.write("new-file.txt", "uncommitted\n")
    refused = project.inv("release")
    assert_clean_failure(refused, project, mentions="--allow-dirty")
    assert project.tags() == []
    allowed = project.inv("release", "--allow-dirty")
    assert allowed.returncode == 0, allowed.stderr
    assert len(project.tags()) == 1


def test_labels_are_reproducible_and_overridable(git_project, client, stack):
    project = git_project
    first = project.inv("build", "--tag", "a", "--label", "com.example.team=web")
    second = project.inv("build", "--tag", "b", "--label", "com.example.team=web")
    assert first.returncode == second.returncode == 0
    ref = f"{stack.registry}/{project.repository}"
    image_a, image_b = client.images.get(f"{ref}:a"), client.images.get(f"{ref}:b")
    assert image_a.labels["com.example.team"] == "web"
    # Only the version label differs between tags a and b; same tag → same image ID.
    assert image_a.labels["org.opencontainers.image.version"] == "a"
    third = project.inv(
        "build", "--tag", "a", "--label", "com.example.team=web", SOURCE_DATE_EPOCH="1700000000"
    )
    assert third.returncode == 0
    relabelled = client.images.get(f"{ref}:a")
    assert relabelled.labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    rebuilt = project.inv(
        "build", "--tag", "a", "--label", "com.example.team=web", SOURCE_DATE_EPOCH="1700000000"
    )
    assert rebuilt.returncode == 0
    assert client.images.get(f"{ref}:a").id == relabelled.id != image_b.id
