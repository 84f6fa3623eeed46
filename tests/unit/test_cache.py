"""The registry build cache: which images a build pulls first (`auto`, `none`, references),
that pulls go by digest and leave local tags alone, that a missing image is a note, and what
the dry run prints. Fake daemon and registry at the protocols; the real classic builder's
cache hits are tested in tests/integration/test_cache.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubtasks.pipeline.cache import cache_refs, newest_release, resolve
from hubtasks.pipeline.plan import Remote, platform_tag
from hubtasks.references import DOCKER_HUB, Repository, parse_pull_reference
from tests.helpers.pipeline import (
    REPOSITORY,
    multi_platform_project,
    release_project,
    release_settings,
    run_release,
)

from .fakes import FakeDaemon, Store

ID_A, ID_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    "published, newest",
    [
        (["main", "v1.2.0", "v1.10.0", "v2.0.0-rc1", "latest", "v1"], "v1.10.0"),
        (["main", "latest"], "latest"),
        (["main", "sha-abc"], None),
        ([], None),
    ],
)
def test_the_newest_release_is_the_highest_version_else_latest(published, newest):
    assert newest_release(published) == newest


def _choose(tmp_path: Path, cache_from=("auto",), *, published=(), local=None, remote=None):
    settings = release_settings(tmp_path, "v2.0.0", cache_from=tuple(cache_from))
    held = local or {}
    return cache_refs(settings, published=list(published), local=held.get, remote=remote)


def test_auto_pulls_the_newest_release_only_when_the_daemon_lacks_it(tmp_path):
    published = ["v1.0.0", "v1.1.0"]
    assert _choose(tmp_path, published=published) == [REPOSITORY.ref("v1.1.0")]
    assert _choose(tmp_path, published=published, local={"v1.1.0": ID_A}) == []
    assert _choose(tmp_path, published=[]) == []
    # No version and no latest: what a tag being released (`main`) holds now.
    moving = {"main": Remote(digest=DIGEST, config_digest=ID_B), "sha-1": None}
    main = [f"{REPOSITORY.local_name}@{DIGEST}"]
    assert _choose(tmp_path, published=["main", "sha-0"], remote=moving) == main
    assert _choose(tmp_path, published=["sha-0"], remote={"sha-1": None}) == []
    # A planned tag the registry holds comes with its digest: pulled by digest.
    remote = {"v1.1.0": Remote(digest=DIGEST, config_digest=ID_B)}
    by_digest = [f"{REPOSITORY.local_name}@{DIGEST}"]
    assert _choose(tmp_path, published=published, remote=remote) == by_digest
    # A local tag that holds another image than the registry's is no cache of it.
    stale = _choose(tmp_path, published=published, local={"v1.1.0": ID_A}, remote=remote)
    assert stale == by_digest
    same = _choose(tmp_path, published=published, local={"v1.1.0": ID_B}, remote=remote)
    assert same == []


def test_none_and_explicit_references(tmp_path):
    assert _choose(tmp_path, ["none"], published=["v1.0.0"]) == []
    explicit = _choose(tmp_path, ["v1", "127.0.0.1:5000/other/app:x", "alpine"], local={"v1": ID_A})
    assert explicit == [
        REPOSITORY.ref("v1"),
        "127.0.0.1:5000/other/app:x",
        REPOSITORY.ref("alpine"),
    ]
    assert resolve(f"alpine@{DIGEST}", REPOSITORY) == f"alpine@{DIGEST}"
    assert resolve("library/alpine:3", REPOSITORY) == "alpine:3"


@pytest.mark.parametrize(
    "text, registry, path, reference",
    [
        ("alpine", DOCKER_HUB, "library/alpine", "latest"),
        ("user/app:v1", DOCKER_HUB, "user/app", "v1"),
        ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000", "a/b", "v1"),
        ("localhost/a", "localhost", "a", "latest"),
        (f"ghcr.io/o/a:v1@{DIGEST}", "ghcr.io", "o/a", DIGEST),
    ],
)
def test_image_references(text, registry, path, reference):
    assert parse_pull_reference(text) == (Repository(registry, path), reference)


RUNS = "FROM scratch\nCOPY app /app\nRUN make\n"  # a step worth taking from a cache


def _release_twice(tmp_path: Path, dockerfile: str | None = None, **second):
    """v1.0.0 released from one runner, then v1.1.0 (one file changed) from `second`'s."""
    root = release_project(tmp_path)
    if dockerfile is not None:
        (root / "Dockerfile").write_text(dockerfile)
    store = Store()
    _, first_daemon, _ = run_release(release_settings(root, "v1.0.0"), store)
    (root / "app").write_text("v2")
    daemon = second.pop("daemon", None) or FakeDaemon(store)
    settings = release_settings(root, "v1.1.0", **second)
    result, daemon, session = run_release(settings, store, daemon)
    return result, daemon, session, store, first_daemon


def test_a_fresh_runner_pulls_the_newest_release_by_digest_and_builds_from_it(tmp_path):
    result, daemon, session, store, _ = _release_twice(tmp_path)
    ((ref, auth),) = daemon.pulls
    assert ref == f"{REPOSITORY.local_name}@{store.tags['v1.0.0']}"
    assert auth == {"username": "alice", "password": "s3cret", "serveraddress": REGISTRY_KEY}
    (cache_from,) = daemon.cache_from
    assert cache_from[0] == ref
    assert REPOSITORY.ref("v1.0.0") not in daemon.local_tags  # by digest: no tag moved
    assert [p.tag for p in result.published] == ["v1.1.0"]
    err = session.console.err.getvalue()
    shown = f"{REPOSITORY.ref('v1.0.0')} ({store.tags['v1.0.0'][:19]})"
    assert f"[cache] pulling {shown} for its layers" in err
    assert result.timings["pull"] >= 0


REGISTRY_KEY = REPOSITORY.auth_key


def test_the_runner_that_released_uses_its_own_cache(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    _, daemon, _ = run_release(release_settings(root, "v1.0.0"), store)
    (root / "app").write_text("v2")
    run_release(release_settings(root, "v1.1.0"), store, daemon)
    assert daemon.pulls == [] and daemon.cache_from == [[], []]


def test_a_missing_cache_image_is_a_note_and_the_build_goes_on(tmp_path):
    result, daemon, session, _, _ = _release_twice(tmp_path, cache_from=("v9", "none-such:x"))
    assert [ref for ref, _ in daemon.pulls] == ["none-such:x"]  # v9: the registry said no
    assert daemon.cache_from == [[]]
    err = session.console.err.getvalue()
    assert f"[cache] note: the registry has no {REPOSITORY.ref('v9')}; building without it" in err
    assert "[cache] note: the registry has no none-such:x" in err
    assert [p.tag for p in result.published] == ["v1.1.0"]


def test_local_images_of_the_repository_stay_usable_as_cache(tmp_path):
    """With cache_from the classic builder only takes local hits from ancestors of the named
    images: the repository's own local images are named too."""
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    daemon = FakeDaemon(store)  # another runner, which built `dev` but never saw v1.0.0
    daemon.images[ID_A] = {}
    daemon.local_tags[REPOSITORY.ref("dev")] = ID_A
    (root / "app").write_text("v2")
    run_release(release_settings(root, "v1.1.0"), store, daemon)
    pulled = f"{REPOSITORY.local_name}@{store.tags['v1.0.0']}"
    assert daemon.cache_from == [[pulled, ID_A]]


def test_none_pulls_nothing_and_the_dry_run_shows_the_pull(tmp_path):
    _, daemon, _, store, _ = _release_twice(tmp_path, cache_from=("none",))
    assert daemon.pulls == [] and daemon.cache_from == [[]]
    root = tmp_path
    (root / "app").write_text("v3")
    dry, _, _ = run_release(release_settings(root, "v1.2.0"), store, dry_run=True)
    ref = REPOSITORY.ref("v1.1.0")  # the real run asks for its digest first
    assert f"docker pull {ref}" in dry.commands
    build = next(c for c in dry.commands if c.startswith("docker build"))
    assert f"--cache-from {ref}" in build


PLATFORMS = ("linux/amd64", "linux/arm64")


def _multi_release_twice(tmp_path: Path, daemon: FakeDaemon | None = None):
    """v1.0.0 for two platforms from one runner, then v1.1.0 (one platform's file changed)
    from `daemon`'s (a fresh runner by default)."""
    root = multi_platform_project(tmp_path)
    store = Store()
    _, first_daemon, _ = run_release(release_settings(root, "v1.0.0", platforms=PLATFORMS), store)
    (root / "app-amd64").write_text("x86, changed")
    daemon = daemon or FakeDaemon(store)
    settings = release_settings(root, "v1.1.0", platforms=PLATFORMS)
    result, daemon, session = run_release(settings, store, daemon)
    return result, daemon, session, store, first_daemon


def test_each_platform_builds_from_its_own_platforms_cache_image(tmp_path):
    """A list pulled without a platform gives the daemon's own image, which the classic
    builder would match for every platform's `FROM scratch` steps."""
    result, daemon, session, store, _ = _multi_release_twice(tmp_path)
    listed = f"{REPOSITORY.local_name}@{store.tags['v1.0.0']}"
    assert [ref for ref, _ in daemon.pulls] == [listed, listed]
    assert daemon.pull_platforms == list(PLATFORMS)
    children = {
        platform: json.loads(store.manifests[store.tags[f"v1.0.0-{platform.replace('/', '-')}"]])
        for platform in PLATFORMS
    }
    configs = {platform: child["config"]["digest"] for platform, child in children.items()}
    # Each build names only the image pulled for its platform, by ID.
    assert daemon.cache_from == [[configs["linux/amd64"]], [configs["linux/arm64"]]]
    assert "[cache] pulling" in session.console.err.getvalue()
    assert " for linux/arm64 for its layers" in session.console.err.getvalue()
    assert set(result.platforms) == set(PLATFORMS)


def test_the_runner_that_released_every_platform_pulls_nothing(tmp_path):
    root = multi_platform_project(tmp_path)
    store = Store()
    _, daemon, _ = run_release(release_settings(root, "v1.0.0", platforms=PLATFORMS), store)
    for platform in PLATFORMS:  # what the release left on this daemon
        assert REPOSITORY.ref(platform_tag("v1.0.0", platform)) in daemon.local_tags
    (root / "app-amd64").write_text("x86, changed")
    run_release(release_settings(root, "v1.1.0", platforms=PLATFORMS), store, daemon)
    assert daemon.pulls == []


def test_a_multi_platform_dry_run_pulls_for_each_platform_before_its_build(tmp_path):
    *_, store, _ = _multi_release_twice(tmp_path)
    root = tmp_path
    (root / "app-arm64").write_text("arm, changed")
    dry, _, _ = run_release(
        release_settings(root, "v1.2.0", platforms=PLATFORMS), store, dry_run=True
    )
    ref = REPOSITORY.ref("v1.1.0")
    pulls = [i for i, c in enumerate(dry.commands) if c.startswith("docker pull")]
    builds = [i for i, c in enumerate(dry.commands) if c.startswith("docker build")]
    assert [dry.commands[i] for i in pulls] == [
        f"docker pull --platform {platform} {ref}" for platform in PLATFORMS
    ]
    assert pulls[0] < builds[0] < pulls[1] < builds[1]


def test_a_single_platform_cache_image_is_not_named_for_another_platforms_build(tmp_path):
    """The first multi-platform release after single-platform ones: the daemon pulls the
    one amd64 image whatever platform is asked for; the arm64 build must not name it."""
    root = multi_platform_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)  # one platform: the daemon's own
    (root / "app-amd64").write_text("x86, changed")
    result, daemon, session = run_release(
        release_settings(root, "v1.1.0", platforms=PLATFORMS), store
    )
    amd64, arm64 = daemon.cache_from
    assert len(amd64) == 1 and arm64 == []
    assert "has no image for linux/arm64; building without it" in session.console.err.getvalue()
    assert set(result.platforms) == set(PLATFORMS)


def test_one_foreign_platform_pulls_its_own_image_of_a_list(tmp_path):
    """`--platform linux/arm64` alone on an amd64 daemon builds for arm64 too."""
    *_, store, _ = _multi_release_twice(tmp_path)
    root = tmp_path
    (root / "app-arm64").write_text("arm, changed")
    _, daemon, _ = run_release(release_settings(root, "v1.2.0", platforms=("linux/arm64",)), store)
    assert daemon.pull_platforms == ["linux/arm64"]
    child = json.loads(store.manifests[store.tags["v1.1.0-linux-arm64"]])
    assert daemon.cache_from == [[child["config"]["digest"]]]


def test_a_fresh_buildkit_runner_names_the_release_as_it_pulled_it(tmp_path):
    """BuildKit (moby/buildkit#1981): a cache image the daemon holds under the name in
    `cachefrom` gives an image that carries the inline cache on; so it is pulled by digest
    and named by that reference, not by image ID, and no other local image is named."""
    root = release_project(tmp_path)
    (root / "Dockerfile").write_text(RUNS)
    store = Store()
    run_release(release_settings(root, "v1.0.0", builder="buildkit"), store)
    daemon = FakeDaemon(store)  # another runner, which built `dev` but never saw v1.0.0
    daemon.images[ID_A] = {}
    daemon.local_tags[REPOSITORY.ref("dev")] = ID_A
    (root / "app").write_text("v2")
    settings = release_settings(root, "v1.1.0", builder="buildkit")
    result, daemon, session = run_release(settings, store, daemon)
    pulled = f"{REPOSITORY.local_name}@{store.tags['v1.0.0']}"
    assert [ref for ref, _ in daemon.pulls] == [pulled]
    assert daemon.cache_from == [[pulled]]
    assert REPOSITORY.ref("v1.0.0") not in daemon.local_tags  # by digest: no tag moved
    assert "[cache] pulling" in session.console.err.getvalue()
    assert result.timings["pull"] >= 0


def test_a_fresh_runner_on_engine_23_names_the_release_in_the_registry_without_a_pull(tmp_path):
    """BuildKit 0.11+ keeps the inline cache of steps taken from a registry image: the
    release is named as the registry holds it and resolved through the session."""
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0", builder="buildkit"), store)
    daemon = FakeDaemon(store)  # another runner
    daemon.inline_cache_api = True
    (root / "app").write_text("v2")
    settings = release_settings(root, "v1.1.0", builder="buildkit")
    _, daemon, session = run_release(settings, store, daemon)
    assert daemon.pulls == []
    assert daemon.cache_from == [[REPOSITORY.ref("v1.0.0")]]
    assert "[cache] pulling" not in session.console.err.getvalue()


def test_a_copy_only_dockerfile_on_engine_20_names_the_release_in_the_registry(tmp_path):
    """No slow step to keep: the registry's inline cache serves the `COPY` steps it still
    matches, without a pull of every layer first."""
    _, daemon, _, _, _ = _release_twice(tmp_path, builder="buildkit")
    assert daemon.pulls == []
    assert daemon.cache_from == [[REPOSITORY.ref("v1.0.0")]]


def test_a_buildkit_runner_that_released_pulls_nothing(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    _, daemon, _ = run_release(release_settings(root, "v1.0.0", builder="buildkit"), store)
    (root / "app").write_text("v2")
    run_release(release_settings(root, "v1.1.0", builder="buildkit"), store, daemon)
    assert daemon.pulls == [] and daemon.cache_from == [[], []]


def test_a_missing_cache_image_on_buildkit_is_a_note_and_names_nothing(tmp_path):
    result, daemon, session, _, _ = _release_twice(
        tmp_path, RUNS, cache_from=("v9",), builder="buildkit"
    )
    assert daemon.cache_from == [[]]
    err = session.console.err.getvalue()
    assert f"[cache] note: the registry has no {REPOSITORY.ref('v9')}; building without it" in err
    assert [p.tag for p in result.published] == ["v1.1.0"]


def test_several_platforms_on_buildkit_pull_and_name_each_platforms_image_by_its_digest(
    tmp_path,
):
    """A list digest pulled for two platforms would name only the last one's image in the
    daemon's store; another repository's image (pulled by tag, as it would be) is named as
    the registry holds it, unpulled."""
    root = multi_platform_project(tmp_path)
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN make\n")
    store = Store()
    settings = release_settings(root, "v1.0.0", platforms=PLATFORMS, builder="buildkit")
    run_release(settings, store)
    (root / "app-amd64").write_text("x86, changed")
    other = "127.0.0.1:5000/someone/else:v1"
    settings = release_settings(
        root, "v1.1.0", platforms=PLATFORMS, builder="buildkit", cache_from=("v1.0.0", other)
    )
    _, daemon, session = run_release(settings, store)
    children = [
        f"{REPOSITORY.local_name}@{store.tags[platform_tag('v1.0.0', platform)]}"
        for platform in PLATFORMS
    ]
    assert [ref for ref, _ in daemon.pulls] == children
    assert daemon.pull_platforms == list(PLATFORMS)
    assert daemon.cache_from == [[children[0], other], [children[1], other]]
    assert f"pulling {REPOSITORY.ref('v1.0.0')} (sha256:" in session.console.err.getvalue()
