"""The release pipeline (gather → plan → execute) with a fake daemon and registry at the
protocols: what gets built, pushed, copied, refused, and what the registry ends up holding."""

from __future__ import annotations

import json

import pytest

from hubtasks import api
from hubtasks.errors import ConfigError, RegistryError, ReleaseRefused, VerifyError
from hubtasks.pipeline.plan import CHECK, CREATE, HOLD, INPUTS_LABEL, MOVE, SKIP
from hubtasks.pipeline.session import Session
from tests.helpers.consoles import make_console
from tests.helpers.pipeline import (
    REPOSITORY,
    multi_platform_project,
    release_project,
    release_settings,
    run_release,
)

from .fakes import FakeDaemon, FakeRegistry, Store


def _session(
    store: Store, registry=FakeRegistry, daemon: FakeDaemon | None = None, hooks=None
) -> Session:
    """A session on `daemon` (a fresh fake one by default) and `registry` (a FakeRegistry
    class) over `store`, with `hooks` (name → Python hooks) registered."""
    session = Session(
        console=make_console("plain"),
        context=object(),
        engine=daemon or FakeDaemon(store),
        registry_factory=lambda s: registry(s.require_repository(), store),
    )
    session.hooks.functions = dict(hooks or {})
    return session


def _actions(result) -> dict[str, str]:
    return {d.tag: d.action for d in result.plan.decisions}


def test_first_release_builds_once_pushes_once_and_copies_the_other_tags(tmp_path):
    store = Store()
    result, daemon, _ = run_release(
        release_settings(release_project(tmp_path), "v1.0.0", semver=True), store
    )
    assert daemon.calls["build"] == 1 and daemon.calls["push"] == 1
    assert store.calls["copy_manifest"] == 3
    # Every tag read back once: the pushed one while reading the manifest to copy, the three
    # copies by verify; then the three floating ones (v1.0, v1, latest) once more at the end,
    # in case another run moved them meanwhile, and v1.2.3 (read before the copies) once more
    # after every write.
    assert store.calls["raw_manifest"] == 1 and store.calls["digest"] == 3 + 3 + 1
    assert set(_actions(result).values()) == {CREATE}
    digests = {p.tag: p.digest for p in result.published}
    assert digests == {t: store.tags[t] for t in ("v1.0.0", "v1.0", "v1", "latest")}
    labels = daemon.images[result.image.image_id]
    assert labels[INPUTS_LABEL].startswith("sha256:")
    assert labels["org.opencontainers.image.version"] == "v1.0.0"


class _Raced(FakeRegistry):
    """A registry where another push moves `v1.0.0` right after ours landed."""

    def raw_manifest(self, reference: str, *, after_push: bool = False):
        if reference == "v1.0.0":
            self.store.put_image("v1.0.0", {"by": "someone else"})
        return super().raw_manifest(reference, after_push=after_push)


def test_a_pushed_tag_read_back_at_another_digest_fails_before_the_copies(tmp_path):
    store = Store()
    session = _session(store, registry=_Raced)
    settings = release_settings(release_project(tmp_path), "v1.0.0", "stable")
    with pytest.raises(VerifyError, match="v1.0.0 points at .* not at the pushed"):
        api.release(settings, session=session)
    assert "stable" not in store.tags and store.calls["copy_manifest"] == 0


def test_the_tag_list_comes_with_the_login_unless_a_pre_release_hook_runs_between(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    assert (store.calls["check_credentials"], store.calls["tags"]) == (1, 1)  # one request

    # A pre_release hook that publishes v2.0.0 (from other inputs) first: the registry is
    # read after it, so the release sees that tag and refuses to replace it.
    (root / "app").write_text("v2")
    session = _session(
        store,
        hooks={
            "pre_release": [lambda c, facts: store.put_image("v2.0.0", {INPUTS_LABEL: "sha256:x"})]
        },
    )
    with pytest.raises(ReleaseRefused, match="v2.0.0 holds sha256:.*, built from other inputs"):
        api.release(release_settings(root, "v2.0.0"), session=session)


def test_new_tags_hash_the_context_while_the_build_reads_it(tmp_path, monkeypatch):
    from hubtasks.build.context import BuildContext

    root = release_project(tmp_path)
    reads: list[object] = []
    real = BuildContext.files_digest
    monkeypatch.setattr(BuildContext, "files_digest", lambda self: reads.append(self) or real(self))
    store = Store()
    first, daemon, _ = run_release(release_settings(root, "v1.0.0"), store)
    assert reads == []  # no read of the context before the build: the stream was hashed
    label = daemon.images[first.image.image_id][INPUTS_LABEL]
    # The same digest as hashing before the build gives: a re-release finds it unchanged.
    again, _, _ = run_release(release_settings(root, "v1.0.0"), store)
    assert len(reads) == 1 and set(_actions(again).values()) == {SKIP}
    assert again.published == first.published and label.startswith("sha256:")


def test_the_inputs_are_read_after_the_pre_release_hook(tmp_path):
    """A pre_release hook that writes into the context: the digest covers what is built."""
    root = release_project(tmp_path)
    store = Store()
    session = _session(
        store,
        hooks={"pre_release": [lambda c, facts: (root / "version.txt").write_text("1.0.0")]},
    )
    result = api.release(release_settings(root, "v1.0.0"), session=session)
    built = session.engine.images[result.image.image_id][INPUTS_LABEL]
    # What a later release of the same tree computes (the file is there now): unchanged.
    again, _, _ = run_release(release_settings(root, "v1.0.0"), store)
    assert set(_actions(again).values()) == {SKIP}
    (root / "version.txt").unlink()
    with pytest.raises(ReleaseRefused, match="built from other inputs"):
        run_release(release_settings(root, "v1.0.0"), store)
    assert built.startswith("sha256:")


def test_re_release_on_a_fresh_runner_builds_and_pushes_nothing(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    first, _, _ = run_release(release_settings(root, "v1.0.0", semver=True), store)
    store.calls.clear()
    again, daemon, _ = run_release(
        release_settings(root, "v1.0.0", semver=True), store
    )  # a new daemon
    assert daemon.calls == {}  # no build, no tag, no push
    assert set(_actions(again).values()) == {SKIP}
    assert again.published == first.published
    assert store.calls["copy_manifest"] == 0
    # A handful of requests: the tag list, one manifest per tag, one config blob read.
    assert store.calls["tags"] == 1 and store.calls["image_record"] == 4


def test_a_new_tag_for_inputs_the_registry_holds_is_a_registry_side_copy(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    result, daemon, _ = run_release(release_settings(root, "v1.0.0", "stable"), store)
    assert daemon.calls == {}
    assert _actions(result) == {"v1.0.0": SKIP, "stable": CREATE}
    assert store.tags["stable"] == store.tags["v1.0.0"]
    assert not result.plan.build and result.plan.source is not None


def test_changed_inputs_are_refused_before_any_build_and_in_the_dry_run(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    before = dict(store.tags)
    (root / "app").write_text("v2")
    for dry_run in (True, False):
        daemon = FakeDaemon(store)
        with pytest.raises(ReleaseRefused, match="immutable") as caught:
            run_release(release_settings(root, "v1.0.0"), store, daemon, dry_run=dry_run)
        assert caught.value.exit_code == 1
        assert daemon.calls == {}
    assert store.tags == before


def test_changed_inputs_move_a_branch_tag(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "main"), store)
    (root / "app").write_text("v2")
    result, daemon, _ = run_release(release_settings(root, "main"), store)
    assert _actions(result) == {"main": MOVE}
    assert daemon.calls["build"] == 1


def test_an_image_without_our_label_is_decided_after_the_build_and_keeps_local_tags(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    store.put_image("v1.0.0", {"pushed-by": "another tool"})
    daemon = FakeDaemon(store)
    daemon.local_tags[REPOSITORY.ref("v1.0.0")] = "sha256:" + "e" * 64  # an older local build
    dry, _, _ = run_release(
        release_settings(root, "v1.0.0"), store, FakeDaemon(store), dry_run=True
    )
    assert _actions(dry) == {"v1.0.0": CHECK}
    with pytest.raises(ReleaseRefused):
        run_release(release_settings(root, "v1.0.0"), store, daemon)
    assert daemon.calls["build"] == 1 and daemon.calls["push"] == 0
    assert daemon.local_tags[REPOSITORY.ref("v1.0.0")] == "sha256:" + "e" * 64


def test_latest_stays_on_the_highest_version_unless_forced(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.2.3", latest=True), store)
    (root / "app").write_text("branch work")
    held, _, _ = run_release(release_settings(root, "main", latest=True), store)
    assert _actions(held) == {"main": CREATE, "latest": HOLD}
    assert "v1.2.3 is the highest version" in held.plan.decisions[1].reason
    assert store.tags["latest"] == store.tags["v1.2.3"]
    forced, _, _ = run_release(release_settings(root, "main", latest=True), store, force=True)
    assert _actions(forced)["latest"] == MOVE
    assert store.tags["latest"] == store.tags["main"]


def test_the_dry_run_lists_a_command_for_every_tag_the_run_may_touch(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    store.put_image("v1", {"pushed-by": "another tool"})
    result, _, _ = run_release(release_settings(root, "v1.0.0", semver=True), store, dry_run=True)
    pushes = [c for c in result.commands if c.startswith("docker push")]
    assert [c.rsplit(":", 1)[1] for c in pushes] == ["v1.0.0", "v1.0", "v1", "latest"]
    assert store.calls["copy_manifest"] == 0


def test_multi_platform_release_pushes_each_platform_and_one_index(tmp_path):
    root = multi_platform_project(tmp_path)
    store = Store()
    settings = release_settings(
        root, "v1.0.0", semver=True, platforms=("linux/amd64", "linux/arm64")
    )
    result, daemon, _ = run_release(settings, store)
    assert daemon.calls["build"] == 2 and daemon.calls["push"] == 2
    assert [args.get("TARGETARCH") for args in daemon.build_args] == ["amd64", "arm64"]
    assert {"v1.0.0-linux-amd64", "v1.0.0-linux-arm64"} <= set(store.tags)
    index = json.loads(store.manifests[store.tags["v1.0.0"]])
    assert index["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    children = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
    }
    assert children == {
        "linux/amd64": store.tags["v1.0.0-linux-amd64"],
        "linux/arm64": store.tags["v1.0.0-linux-arm64"],
    }
    assert result.platforms == children
    assert {p.digest for p in result.published} == {store.tags["v1.0.0"]}
    assert store.tags["latest"] == store.tags["v1.0.0"]

    again, fresh, _ = run_release(settings, store)
    assert fresh.calls == {}
    assert set(_actions(again).values()) == {SKIP}
    assert again.platforms == children

    (root / "app-arm64").write_text("arm, changed")
    with pytest.raises(ReleaseRefused, match="other inputs"):
        run_release(settings, store)


def test_a_new_tag_for_a_multi_platform_image_the_registry_holds_copies_its_index(tmp_path):
    """The registry holds the release's list: a new tag (`v1.0`, `stable`) is a copy of that
    list, never a new list built from no platform at all."""
    root = multi_platform_project(tmp_path)
    store = Store()
    platforms = ("linux/amd64", "linux/arm64")
    run_release(release_settings(root, "v1.0.0", platforms=platforms), store)
    result, daemon, _ = run_release(
        release_settings(root, "v1.0.0", "stable", platforms=platforms), store
    )
    assert daemon.calls == {}
    assert _actions(result) == {"v1.0.0": SKIP, "stable": CREATE}
    assert store.tags["stable"] == store.tags["v1.0.0"]
    assert len(json.loads(store.manifests[store.tags["stable"]])["manifests"]) == 2


class _CopyFails(FakeRegistry):
    """A registry that takes every manifest copy but the one to `latest`."""

    def copy_manifest(self, source: str, tag: str, manifest=None) -> str:
        if tag == "latest":
            raise RegistryError(f"cannot tag {tag}: registry answered HTTP 500", status=500)
        return super().copy_manifest(source, tag, manifest)


def _refs(*tags: str) -> set[str]:
    return {REPOSITORY.canonical(tag) for tag in tags}


def _landed(error: RegistryError) -> set[str]:
    """The references (without digests) an error says had landed."""
    return {reference.split("@")[0] for reference in error.pushed}


def test_a_copy_failing_part_way_says_which_tags_landed(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    # The registry holds these inputs: the new tags are copies of v1.0.0's manifest.
    settings = release_settings(root, "v1.0.0", "stable", "latest")
    with pytest.raises(RegistryError) as failed:
        api.release(settings, session=_session(store, registry=_CopyFails))
    assert _landed(failed.value) == _refs("stable")
    assert f"already pushed: {REPOSITORY.canonical('stable')}@sha256:" in str(failed.value)
    assert "latest" not in store.tags


def test_a_multi_platform_copy_failing_part_way_names_the_platform_images_too(tmp_path):
    root = multi_platform_project(tmp_path)
    store = Store()
    settings = release_settings(
        root, "v1.0.0", semver=True, platforms=("linux/amd64", "linux/arm64")
    )
    with pytest.raises(RegistryError) as failed:
        api.release(settings, session=_session(store, registry=_CopyFails))
    landed = _refs("v1.0.0-linux-amd64", "v1.0.0-linux-arm64", "v1.0.0", "v1.0", "v1")
    assert _landed(failed.value) == landed
    assert all(f"{ref}@sha256:" in str(failed.value) for ref in landed)
    assert "latest" not in store.tags


def test_push_hooks_of_a_multi_platform_release_know_its_platforms(tmp_path):
    root = multi_platform_project(tmp_path)
    store = Store()
    seen: dict[str, dict[str, str]] = {}
    hooks = {
        name: [lambda c, facts, name=name: seen.setdefault(name, facts.environment())]
        for name in ("pre_release", "pre_push", "post_push")
    }
    session = _session(store, hooks=hooks)
    settings = release_settings(root, "v1.0.0", platforms=("linux/amd64", "linux/arm64"))
    result = api.release(settings, session=session)
    assert seen["pre_release"]["HUB_PLATFORMS"] == "linux/amd64 linux/arm64"
    assert seen["pre_release"]["HUB_PLATFORM_DIGESTS"] == ""  # nothing built yet
    assert seen["pre_push"]["HUB_PLATFORMS"] == "linux/amd64 linux/arm64"
    built = set(session.engine.images)
    pairs = dict(p.split("=", 1) for p in seen["pre_push"]["HUB_PLATFORM_DIGESTS"].split())
    assert set(pairs) == {"linux/amd64", "linux/arm64"}  # not empty values left out
    assert set(pairs.values()) <= built and len(set(pairs.values())) == 2  # the images
    assert seen["post_push"]["HUB_PLATFORM_DIGESTS"] == " ".join(
        f"{platform}={digest}" for platform, digest in result.platforms.items()
    )


def test_a_multi_platform_dry_run_shows_each_platforms_build(tmp_path):
    root = multi_platform_project(tmp_path)
    settings = release_settings(root, "v2", platforms=("linux/amd64", "linux/arm64"))
    result, daemon, _ = run_release(settings, Store(), dry_run=True)
    builds = [c for c in result.commands if c.startswith("docker build")]
    assert len(builds) == 2 and "--platform linux/arm64" in builds[1]
    assert "TARGETARCH=arm64" in builds[1]
    assert any(c.startswith("docker manifest create") for c in result.commands)
    assert daemon.calls == {}


def test_a_failed_build_carries_its_stage_and_pushes_nothing(tmp_path):
    from hubtasks.errors import BuildError

    class FailingDaemon(FakeDaemon):
        def build(self, **kwargs):
            raise BuildError("build of x failed at Step 2/2 : COPY missing /x")

    store = Store()
    with pytest.raises(BuildError) as caught:
        run_release(release_settings(release_project(tmp_path), "v1"), store, FailingDaemon(store))
    assert caught.value.stage == "build"
    assert store.tags == {}


def test_a_platform_matches_its_variants_only_when_one_was_asked_for():
    from hubtasks.platforms import same_platform

    assert same_platform("linux/arm64", "linux/arm64/v8")
    assert same_platform("linux/arm/v7", "linux/arm/v7")
    assert not same_platform("linux/arm/v7", "linux/arm/v6")
    assert not same_platform("linux/arm64", "linux/amd64")
    assert not same_platform("linux/arm", "linux/arm64")


def test_the_context_is_read_once_for_every_platform(tmp_path, monkeypatch):
    from hubtasks.build.context import BuildContext
    from hubtasks.pipeline.gather import build_set

    root = multi_platform_project(tmp_path)
    reads: list[object] = []
    real = BuildContext.files_digest
    monkeypatch.setattr(BuildContext, "files_digest", lambda self: reads.append(self) or real(self))
    settings = release_settings(root, "v1", platforms=("linux/amd64", "linux/arm64"))
    builds = build_set(settings, None, {}, "linux/amd64")
    assert len(builds.platforms) == 2 and len(reads) == 1
    assert builds.platforms[0].digest != builds.platforms[1].digest


def test_a_token_env_the_pre_release_hook_writes_into_the_context_is_refused(tmp_path):
    from hubtasks.errors import ContextLeakError

    root = release_project(tmp_path)
    store = Store()
    session = _session(
        store,
        hooks={"pre_release": [lambda c, facts: (root / ".env").write_text("HUB_TOKEN=s3cret\n")]},
    )
    with pytest.raises(ContextLeakError, match="holds HUB_TOKEN"):
        api.release(release_settings(root, "v1.0.0"), session=session)
    assert session.engine.calls["build"] == 0 and store.tags == {}


def test_a_dockerfile_that_cannot_be_read_is_a_config_error(tmp_path):
    from hubtasks.errors import ConfigError
    from hubtasks.pipeline.gather import read_dockerfile

    (tmp_path / "Dockerfile").mkdir()  # a read fails with an OSError, as an unreadable file
    with pytest.raises(
        ConfigError, match="cannot read the Dockerfile .*Dockerfile: Is a directory"
    ):
        read_dockerfile(release_settings(tmp_path, "v1"))


def test_push_reads_the_local_images_and_their_inputs_in_one_listing(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    _, daemon, _ = run_release(release_settings(root, "v1.0.0", "edge"), store)
    daemon.calls.clear()
    daemon.inspections = 0  # the release inspected what it built
    again = api.push(
        release_settings(root, "v1.0.0", "edge"), session=_session(store, daemon=daemon)
    )
    assert daemon.inspections == 0 and daemon.calls["push"] == 0  # inputs from the listing
    assert {d.action for d in again.plan.decisions} == {SKIP}
    # --json's image_id: the local image pushed, as a release reports the one it built.
    assert again.to_dict()["image_id"] == daemon.local_tags[REPOSITORY.ref("v1.0.0")]


def test_a_platform_of_another_os_is_refused_before_the_hook_and_any_build(tmp_path):
    root = multi_platform_project(tmp_path)
    store = Store()
    ran: list[str] = []
    session = _session(store, hooks={"pre_release": [lambda c, facts: ran.append("pre_release")]})
    settings = release_settings(root, "v1.0.0", platforms=("linux/amd64", "windows/amd64"))
    with pytest.raises(ConfigError, match="cannot build windows/amd64"):
        api.release(settings, session=session)
    assert ran == [] and session.engine.calls["build"] == 0 and store.tags == {}
    with pytest.raises(ConfigError, match="cannot build windows/amd64"):
        api.build(settings, session=_session(store))


def test_the_session_records_each_tag_as_it_lands(tmp_path):
    """What an interruption reports: daemon pushes, copies and a multi-platform list alike."""
    root = multi_platform_project(tmp_path)
    store = Store()
    session = _session(store)
    settings = release_settings(
        root, "v1.0.0", semver=True, platforms=("linux/amd64", "linux/arm64")
    )
    api.release(settings, session=session)
    landed = {item.tag for item in session.ledger.since()}
    assert landed == {"v1.0.0-linux-amd64", "v1.0.0-linux-arm64", "v1.0.0", "v1.0", "v1", "latest"}
    assert all(store.tags[item.tag] == item.digest for item in session.ledger.since())


def test_a_chained_push_takes_the_earlier_stages_tags_before_hub_tags(tmp_path):
    """`inv build --tag v9 push` with HUB_TAGS=edge in .env pushed `edge` (an older image)."""
    from hubtasks.pipeline.preflight import resolve_tags

    root = release_project(tmp_path)
    store = Store()
    session = _session(store)
    from_dotenv = {"tags": "HUB_TAGS in .env"}
    api.build(
        release_settings(root, "edge", sources=from_dotenv), session=session
    )  # an older build
    (root / "app").write_text("v2")
    api.build(release_settings(root, "v9", sources={"tags": "--tag"}), session=session)
    pushed = api.push(release_settings(root, "edge", sources=from_dotenv), session=session)
    assert [p.tag for p in pushed.published] == ["v9"]
    assert "edge" not in store.tags
    # This task's own --tag still wins over the chain.
    flagged = release_settings(root, "edge", sources={"tags": "--tag"})
    assert resolve_tags(flagged, None, chained=("v9",)) == ("edge",)


def test_the_python_api_warns_about_a_readable_token_env_once(tmp_path):
    """The README's .env warnings were given by `inv` only, not through the Python API."""
    root = release_project(tmp_path)
    env = root / ".env"
    env.write_text("HUB_TOKEN=s3cret\n")
    env.chmod(0o644)
    (root / ".dockerignore").write_text(".env\n")
    store = Store()
    session = _session(store)
    settings = release_settings(root, "v1.0.0", env_file=env)
    api.release(settings, session=session, dry_run=True)
    api.release(settings, session=session, dry_run=True)
    err = session.console.err.getvalue()
    assert err.count("other users may read it") == 1, err


class _ReadsBackOther(FakeRegistry):
    """A registry whose `latest` reads back another digest than was put."""

    def digest(self, tag: str, *, after_push: bool = False) -> str | None:
        if tag == "latest":
            return "sha256:" + "0" * 64
        return super().digest(tag, after_push=after_push)


def test_a_verify_failure_says_which_tags_landed(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    settings = release_settings(root, "v1.0.0", "latest")
    with pytest.raises(VerifyError) as failed:
        api.release(settings, session=_session(store, registry=_ReadsBackOther))
    assert failed.value.stage == "verify"
    assert _landed(failed.value) == _refs("v1.0.0", "latest")  # both are in the registry
    assert "already pushed:" in str(failed.value)


def test_post_push_tags_match_its_refs_when_every_tag_was_unchanged(tmp_path):
    root = release_project(tmp_path)
    store = Store()
    run_release(release_settings(root, "v1.0.0"), store)
    seen: dict[str, str] = {}
    session = _session(
        store, hooks={"post_push": [lambda c, facts: seen.update(facts.environment())]}
    )
    api.release(release_settings(root, "v1.0.0"), session=session)  # unchanged: nothing pushed
    assert seen["HUB_TAGS"] == "v1.0.0"  # it was empty while HUB_REFS named the tag
    assert seen["HUB_REFS"].startswith(REPOSITORY.canonical("v1.0.0"))
