"""Two releases of one version (issue 23, item 3) with a fake daemon and registry at the
protocols: a version tag another run publishes while this one builds is refused before any
write, naming the digest that won; one overwritten after this run's writes fails the run;
no run reports a digest that is not its own build's."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from hubtasks import api
from hubtasks.errors import PushError, ReleaseRefused
from hubtasks.pipeline.plan import INPUTS_LABEL
from hubtasks.pipeline.publish import confirm_built
from hubtasks.pipeline.results import PushedTag
from hubtasks.pipeline.session import Session
from hubtasks.settings.resolve import Settings
from hubtasks.ui.console import Console
from tests.helpers.pipeline import REPOSITORY, release_settings

from .fakes import FakeDaemon, FakeRegistry, Store


def _settings(root: Path, *tags: str) -> Settings:
    (root / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (root / "app").write_text("mine")
    return release_settings(root, *tags)


def _release(settings: Settings, store: Store, daemon: FakeDaemon):
    session = Session(
        console=Console(out=io.StringIO(), err=io.StringIO(), mode="plain"),
        context=object(),
        engine=daemon,
        registry_factory=lambda s: FakeRegistry(s.require_repository(), store),
    )
    return api.release(settings, session=session)


class SlowDaemon(FakeDaemon):
    """Another run's release of the same version lands while this one builds."""

    def build(self, **options):
        image_id = super().build(**options)
        self.winner = self.store.put_image("v1.0.1", {INPUTS_LABEL: "sha256:theirs"})
        return image_id


def test_a_version_published_while_building_is_refused_naming_the_winner(tmp_path):
    store = Store()
    daemon = SlowDaemon(store)
    with pytest.raises(ReleaseRefused) as caught:
        _release(_settings(tmp_path, "v1.0.1"), store, daemon)
    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert "nothing was pushed" in message
    assert (
        f"alice/app:v1.0.1 was published by another run while this one built: it holds "
        f"{daemon.winner}" in message
    )
    assert daemon.calls["push"] == 0 and store.tags["v1.0.1"] == daemon.winner


class OverwrittenDaemon(FakeDaemon):
    """Another run's push of the same version lands right after this one's."""

    def push(self, repository, tag, auth_config, **options):
        digest = super().push(repository, tag, auth_config, **options)
        if tag == "v1.0.1":
            self.mine = digest
            self.winner = self.store.put_image("v1.0.1", {INPUTS_LABEL: "sha256:theirs"})
        return digest


def test_a_version_overwritten_after_the_push_fails_the_run(tmp_path):
    store = Store()
    daemon = OverwrittenDaemon(store)
    with pytest.raises(Exception) as caught:
        _release(_settings(tmp_path, "v1.0.1"), store, daemon)
    message = str(caught.value)
    assert getattr(caught.value, "exit_code", None) == 1
    assert daemon.winner in message  # what the tag holds is named
    assert "already pushed" not in message  # never reported as this run's release
    assert daemon.mine in message  # and what this run pushed


class OverwrittenRegistry(FakeRegistry):
    """Another run's v1.0.1 lands right after this run copies v1.0.1 to latest."""

    def copy_manifest(self, source, tag, manifest=None):
        digest = super().copy_manifest(source, tag, manifest)
        if tag == "latest":
            self.store.winner = self.store.put_image("v1.0.1", {INPUTS_LABEL: "sha256:theirs"})
        return digest


def test_a_version_overwritten_after_its_copies_fails_the_run(tmp_path):
    """v1.0.1 is read (to copy it to latest) before the copies land: once more after them."""
    store = Store()
    settings = dataclasses.replace(_settings(tmp_path, "v1.0.1"), latest=True)
    session = Session(
        console=Console(out=io.StringIO(), err=io.StringIO(), mode="plain"),
        context=object(),
        engine=FakeDaemon(store),
        registry_factory=lambda s: OverwrittenRegistry(s.require_repository(), store),
    )
    with pytest.raises(ReleaseRefused) as caught:
        api.release(settings, session=session)
    message = str(caught.value)
    assert f"v1.0.1 was taken by another run: it holds {store.winner}" in message
    assert "already pushed: 127.0.0.1:5000/alice/app:latest@" in message  # latest did land
    assert "app:v1.0.1@" not in message


# --- the image pushed is not the image built (issue 26 item 1) ------------------------------


@pytest.mark.parametrize(
    ("tag", "force"), [("v1.0.0", True), ("sha-1a2b3c4", True), ("edge", False)]
)
def test_a_pushed_image_that_is_not_the_built_one_says_how_to_release_again(tag, force):
    """A version tag the daemon pushed with another image is refused by a plain re-run (it
    holds another image now): the line says --force; a tag that moves needs no --force."""
    other = "sha256:" + "b" * 64
    manifest = json.dumps({"config": {"digest": other}}).encode()
    with pytest.raises(PushError) as raised:
        confirm_built(
            PushedTag(REPOSITORY, tag, "sha256:" + "c" * 64), manifest, "sha256:" + "a" * 64
        )
    assert ("--force" in str(raised.value)) is force, str(raised.value)
