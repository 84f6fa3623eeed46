"""Promotion (`api.promote`) with fake registries at the protocol and a session that fails
the test if anything asks for the Docker daemon: the plan rules, refusals before any write,
the dry run, and cross-repository mounts (with the copy fallback and indexes)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from hubtasks import api
from hubtasks.errors import ConfigError, RegistryError, ReleaseRefused
from hubtasks.pipeline.plan import CREATE, HOLD, INPUTS_LABEL, MOVE, REFUSE, SKIP
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.settings.resolve import Settings
from tests.helpers.cli import assert_one_line_error, invoke, make_project
from tests.helpers.consoles import make_console

from .fakes import FakeRegistry, Store

REGISTRY = "127.0.0.1:5000"
APP = Repository(registry=REGISTRY, path="alice/app")
STAGING = Repository(registry=REGISTRY, path="alice/staging")
WRITES = ("copy_manifest", "put_manifest", "mount_blob", "upload_blob")


class NoDaemonSession(Session):
    """A session whose daemon must never be asked for."""

    def engine_for(self, settings):
        raise AssertionError("promote asked for the Docker daemon")


def _settings(*tags: str, **changes) -> Settings:
    values = dict(
        registry=REGISTRY,
        username="alice",
        token="s3cret",
        repository=APP,
        tags=tags,
        retries=2,
        retry_delay=0.0,
    )
    values.update(changes)
    return Settings(**values)


def _world() -> defaultdict[str, Store]:
    return defaultdict(Store)


def _promote(world, settings: Settings, source: str, **options):
    session = NoDaemonSession(
        console=make_console("plain"),
        context=object(),
        registry_factory=lambda s: FakeRegistry(
            s.require_repository(), world[s.require_repository().path], world
        ),
    )
    return api.promote(settings, source=source, session=session, **options)


def _actions(result) -> dict[str, str]:
    return {d.tag: d.action for d in result.plan.decisions}


def _writes(store: Store) -> dict[str, int]:
    return {name: store.calls[name] for name in WRITES if store.calls[name]}


def _rc(world, tag: str = "v1.2.3-rc.1", inputs: str = "sha256:in-1") -> str:
    return world["alice/app"].put_image(tag, {INPUTS_LABEL: inputs}, layer=b"layer " + tag.encode())


def test_promotion_in_the_repository_copies_the_manifest_to_every_tag_without_a_daemon():
    world = _world()
    digest = _rc(world)
    result = _promote(world, _settings("v1.2.3", semver=True), "v1.2.3-rc.1")
    app = world["alice/app"]
    assert _actions(result) == dict.fromkeys(("v1.2.3", "v1.2", "v1", "latest"), CREATE)
    assert {p.tag: p.digest for p in result.published} == dict.fromkeys(
        ("v1.2.3", "v1.2", "v1", "latest"), digest
    )
    assert all(app.tags[t] == digest for t in ("v1.2.3", "v1.2", "v1", "latest"))
    assert _writes(app) == {"copy_manifest": 4}  # no blob moved, no manifest rebuilt
    assert app.calls["digest"] == 4 + 3  # every tag read back; the floating ones once more
    assert result.image is None and not result.dry_run


def test_promoting_again_writes_nothing():
    world = _world()
    _rc(world)
    _promote(world, _settings("v1.2.3", semver=True), "v1.2.3-rc.1")
    world["alice/app"].calls.clear()
    again = _promote(world, _settings("v1.2.3", semver=True), "v1.2.3-rc.1")
    assert set(_actions(again).values()) == {SKIP}
    assert _writes(world["alice/app"]) == {}
    assert len(again.published) == 4


def test_a_digest_names_the_source_too():
    world = _world()
    digest = _rc(world)
    result = _promote(world, _settings("stable"), digest)
    assert world["alice/app"].tags["stable"] == digest
    assert result.published[0].reference == f"{REGISTRY}/alice/app:stable@{digest}"


def test_a_version_tag_holding_other_content_is_refused_before_any_write_and_in_the_dry_run():
    world = _world()
    _rc(world)
    world["alice/app"].put_image("v1.2.3", {INPUTS_LABEL: "sha256:other"})
    before = dict(world["alice/app"].tags)
    for dry_run in (True, False):
        with pytest.raises(ReleaseRefused, match="immutable") as caught:
            _promote(world, _settings("v1.2.3", semver=True), "v1.2.3-rc.1", dry_run=dry_run)
        assert caught.value.exit_code == 1 and caught.value.stage == "plan"
        assert "alice/app:v1.2.3 holds" in str(caught.value)
    assert world["alice/app"].tags == before
    assert _writes(world["alice/app"]) == {}

    forced = _promote(world, _settings("v1.2.3"), "v1.2.3-rc.1", force=True)
    assert _actions(forced) == {"v1.2.3": MOVE}
    assert world["alice/app"].tags["v1.2.3"] == world["alice/app"].tags["v1.2.3-rc.1"]


def test_floating_tags_only_move_forward():
    world = _world()
    newer = world["alice/app"].put_image("v2.0.0", {INPUTS_LABEL: "sha256:two"})
    world["alice/app"].tags["latest"] = newer
    _rc(world, "v1.5.0-rc.1")
    result = _promote(world, _settings("v1.5.0", semver=True), "v1.5.0-rc.1")
    assert _actions(result) == {"v1.5.0": CREATE, "v1.5": CREATE, "v1": CREATE, "latest": HOLD}
    assert world["alice/app"].tags["latest"] == newer


def test_the_dry_run_shows_the_plan_and_the_commands_and_writes_nothing():
    world = _world()
    digest = _rc(world)
    world["alice/app"].put_image("v1", {INPUTS_LABEL: "sha256:in-0"})  # v1.0.0 era
    result = _promote(world, _settings("v1.2.3", semver=True), "v1.2.3-rc.1", dry_run=True)
    assert result.dry_run and result.published == []
    assert _actions(result) == {"v1.2.3": CREATE, "v1.2": CREATE, "v1": MOVE, "latest": CREATE}
    source = f"{REGISTRY}/alice/app@{digest}"
    assert result.commands == [
        f"docker login {REGISTRY} --username alice --password-stdin",
        *(
            f"docker buildx imagetools create --tag {REGISTRY}/alice/app:{tag} {source}"
            for tag in ("v1.2.3", "v1.2", "v1", "latest")
        ),
    ]
    assert _writes(world["alice/app"]) == {}


def test_from_another_repository_every_blob_is_mounted_then_the_manifest_copied():
    world = _world()
    digest = world["alice/staging"].put_image("rc", {INPUTS_LABEL: "sha256:in"}, layer=b"L" * 9)
    result = _promote(world, _settings("v1.0.0", "stable"), "alice/staging:rc")
    app, staging = world["alice/app"], world["alice/staging"]
    assert {p.tag: p.digest for p in result.published} == {"v1.0.0": digest, "stable": digest}
    assert app.tags == {"v1.0.0": digest, "stable": digest}
    assert set(app.blobs) == set(staging.blobs)  # config and layer
    assert _writes(app) == {"mount_blob": 2, "put_manifest": 1, "copy_manifest": 2}
    assert _writes(staging) == {}

    # Promoting the same image to another tag: the repository holds it already, no mounts.
    app.calls.clear()
    _promote(world, _settings("v1.0"), f"{REGISTRY}/alice/staging:rc")
    assert _writes(app) == {"copy_manifest": 1}


def test_blobs_the_registry_will_not_mount_are_copied():
    world = _world()
    world["alice/app"].refuse_mounts = True
    digest = world["alice/staging"].put_image("rc", {}, layer=b"bytes")
    _promote(world, _settings("v1"), "alice/staging:rc")
    app = world["alice/app"]
    assert app.calls["upload_blob"] == 2 and set(app.blobs) == set(world["alice/staging"].blobs)
    assert app.tags["v1"] == digest


def test_an_index_brings_its_child_manifests_and_is_settled_by_digest():
    world = _world()
    staging = world["alice/staging"]
    staging.put_image("amd64", {}, created="a", layer=b"amd64")
    staging.put_image("arm64", {}, created="b", layer=b"arm64")
    index = staging.put_index("rc", ["amd64", "arm64"])
    first = _promote(world, _settings("v2.0.0"), "alice/staging:rc")
    app = world["alice/app"]
    assert _actions(first) == {"v2.0.0": CREATE}
    assert app.tags["v2.0.0"] == index
    assert {staging.tags["amd64"], staging.tags["arm64"]} <= set(app.manifests)
    assert app.calls["mount_blob"] == 4 and app.calls["put_manifest"] == 3

    again = _promote(world, _settings("v2.0.0"), "alice/staging:rc")
    assert _actions(again) == {"v2.0.0": SKIP}  # no config to compare: the digest decides

    other = staging.put_index("rc2", ["amd64"])
    with pytest.raises(ReleaseRefused):
        _promote(world, _settings("v2.0.0"), "alice/staging:rc2")
    dry = _promote(world, _settings("v2.0.0"), "alice/staging:rc2", force=True, dry_run=True)
    assert _actions(dry) == {"v2.0.0": MOVE}
    assert app.tags["v2.0.0"] == index != other


@pytest.mark.parametrize(
    ("settings", "source", "message"),
    [
        (_settings(), "v1.2.3-rc.1", "promote needs the tags"),
        (_settings("main", semver=True), "v1.2.3-rc.1", "--semver"),
        (_settings("v1"), "alice/app", "names a repository but no image"),
        (_settings("v1"), "sha256:abc", "is not a digest"),
    ],
)
def test_bad_sources_and_tags_are_config_errors_before_any_write(settings, source, message):
    world = _world()
    _rc(world)
    with pytest.raises(ConfigError, match=message) as caught:
        _promote(world, settings, source)
    assert caught.value.exit_code == 2
    assert _writes(world["alice/app"]) == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("v9.9.9", "not in the registry"),
        ("alice/nowhere:v1", "alice/nowhere:v1 is not in the registry"),
    ],
)
def test_a_source_the_registry_does_not_hold_fails_with_exit_1_before_any_write(source, message):
    """Well-formed, but not there: the registry's state, not a setting."""
    world = _world()
    _rc(world)
    with pytest.raises(RegistryError, match=message) as caught:
        _promote(world, _settings("v1"), source)
    assert caught.value.exit_code == 1
    assert _writes(world["alice/app"]) == {}


def test_refusals_name_every_refused_tag_and_nothing_is_written_for_any_tag():
    world = _world()
    _rc(world)
    for tag in ("v1.2.3", "sha-abc1234"):
        world["alice/app"].put_image(tag, {INPUTS_LABEL: f"sha256:{tag}"})
    with pytest.raises(ReleaseRefused) as caught:
        _promote(world, _settings("v1.2.3", "sha-abc1234", "edge"), "v1.2.3-rc.1")
    assert "v1.2.3 holds" in str(caught.value) and "sha-abc1234 holds" in str(caught.value)
    assert "edge" not in world["alice/app"].tags
    plan = _promote(world, _settings("edge"), "v1.2.3-rc.1", dry_run=True).plan
    assert [d.action for d in plan.decisions] == [CREATE]
    assert REFUSE not in {d.action for d in plan.decisions}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "promote needs --source"),
        (["--source", "sha256:abc"], "is not a digest"),
    ],
)
def test_inv_promote_bad_input_is_one_line_before_any_request(tmp_path, args, fragment):
    """Through `python -m invoke`, with DOCKER_HOST at a dead socket and docker.io (which
    nothing here may reach) as the registry: these fail before any connection."""
    line = assert_one_line_error(invoke(make_project(tmp_path), "promote", *args), code=2)
    assert fragment in line


def test_a_source_in_another_registry_is_read_with_what_docker_login_left(tmp_path):
    import base64
    import json

    from hubtasks.pipeline import promotion

    auth = base64.b64encode(b"bob:bob-secret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"quay.io": {"auth": auth}}}))
    settings = _settings("v1", docker_env={"DOCKER_CONFIG": str(tmp_path), "PATH": "/usr/bin"})
    asked: list[Settings] = []

    def factory(each: Settings) -> FakeRegistry:
        asked.append(each)
        return FakeRegistry(each.require_repository(), Store())

    session = NoDaemonSession(
        console=make_console("plain"), context=object(), registry_factory=factory
    )
    image = promotion.resolve_source(settings, "quay.io/bob/app:v1")
    with pytest.raises(RegistryError, match="is not in the registry"):  # the fake holds none
        promotion.read_source(settings, session, image)
    (source,) = asked
    assert (source.registry, source.username, source.token) == ("quay.io", "bob", "bob-secret")
