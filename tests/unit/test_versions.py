"""Planning rules: version ordering, prereleases, prefixes, floating tags, immutability."""

from __future__ import annotations

import pytest

from hubtasks.pipeline.plan import (
    CHECK,
    CREATE,
    HOLD,
    MOVE,
    REFUSE,
    SKIP,
    Remote,
    decide,
    decide_platform_tags,
    expand_tags,
    image_labels,
)
from hubtasks.pipeline.versions import fan_out, floating_line, highest_in_line, parse_version


@pytest.mark.parametrize(
    "ordered",
    [
        # semver.org §11 example, in order
        [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ],
        ["v0.9.9", "v0.10.0", "v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0"],
        ["1.2.3", "v1.2.4", "V1.2.5"],  # the prefix does not take part in ordering
    ],
)
def test_version_ordering(ordered):
    versions = [parse_version(t) for t in ordered]
    assert all(versions)
    assert sorted(reversed(versions)) == versions


@pytest.mark.parametrize(
    "tag",
    [
        "1.2",
        "v1",
        "latest",
        "01.2.3",
        "1.02.3",
        "1.2.3-",
        "1.2.3-01",
        "x1.2.3",
        "1.2.3.4",
        "vv1.2.3",
        "1.2.3+build",
    ],
)
def test_not_versions(tag):
    assert parse_version(tag) is None


def test_prefix_kept_as_written():
    assert fan_out(parse_version("v1.2.3")) == ["v1.2.3", "v1.2", "v1", "latest"]
    assert fan_out(parse_version("1.2.3")) == ["1.2.3", "1.2", "1", "latest"]
    assert fan_out(parse_version("v1.3.0-rc.1")) == ["v1.3.0-rc.1"]


def test_expand_tags():
    assert expand_tags(["v1.2.3"], semver=False, latest=False) == ["v1.2.3"]
    assert expand_tags(["v1.2.3", "extra"], semver=True, latest=False) == [
        "v1.2.3",
        "v1.2",
        "v1",
        "latest",
        "extra",
    ]
    assert expand_tags(["sha-abc1234"], semver=False, latest=True) == ["sha-abc1234", "latest"]
    assert expand_tags(["v2.0.0-rc.1"], semver=True, latest=True) == ["v2.0.0-rc.1"]
    assert expand_tags(["v1.0.0"], semver=True, latest=True).count("latest") == 1


def test_floating_lines():
    assert floating_line("v1") == (1, None)
    assert floating_line("1.2") == (1, 2)
    assert floating_line("v1.2.3") is None and floating_line("stable") is None


def test_highest_in_line_ignores_prereleases_and_other_lines():
    published = ["v1.2.3", "v1.10.0", "v2.0.0-rc.1", "v1.2.10", "latest", "v1", "junk"]
    assert str(highest_in_line(published, "latest")) == "v1.10.0"
    assert str(highest_in_line(published, "v1.2")) == "v1.2.10"
    assert highest_in_line(published, "v2") is None
    assert highest_in_line(published, "stable") is None


IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _remote(config=OTHER):
    return Remote(digest="sha256:" + "9" * 64, config_digest=config)


def _actions(plan):
    return {d.tag: d.action for d in plan.decisions}


def test_older_patch_holds_floating_tags():
    tags = expand_tags(["v1.1.9"], semver=True, latest=False)
    published = ["v1.2.3", "v1.2", "v1", "latest", "v1.1.8", "v1.1"]
    remote = {"v1": _remote(), "latest": _remote(), "v1.1": _remote()}
    plan = decide(tags, image_id=IMAGE, remote=remote, published=published)
    assert _actions(plan) == {"v1.1.9": CREATE, "v1.1": MOVE, "v1": HOLD, "latest": HOLD}
    assert "v1.2.3 is newer" in plan.decisions[2].reason


def test_same_version_rerelease_moves_nothing_and_skips_unchanged():
    tags = expand_tags(["v1.2.3"], semver=True, latest=False)
    remote = {t: _remote(IMAGE) for t in tags}
    plan = decide(tags, image_id=IMAGE, remote=remote, published=tags)
    assert set(_actions(plan).values()) == {SKIP}
    assert plan.to_push == []


def test_existing_version_with_other_image_is_refused_unless_forced():
    remote = {"v1.0.0": _remote(OTHER), "latest": _remote(OTHER)}
    plan = decide(["v1.0.0", "latest"], image_id=IMAGE, remote=remote, published=["v1.0.0"])
    assert _actions(plan) == {"v1.0.0": REFUSE, "latest": MOVE}
    assert "--force" in plan.refused[0].reason
    forced = decide(
        ["v1.0.0", "latest"], image_id=IMAGE, remote=remote, published=["v1.0.0"], force=True
    )
    assert _actions(forced) == {"v1.0.0": MOVE, "latest": MOVE}
    assert "forced" in forced.decisions[0].reason


def test_sha_tags_are_immutable_but_branch_tags_move():
    remote = {"sha-abc1234": _remote(), "main": _remote()}
    plan = decide(["sha-abc1234", "main"], image_id=IMAGE, remote=remote, published=[])
    assert _actions(plan) == {"sha-abc1234": REFUSE, "main": MOVE}
    assert "sha-… tags are immutable" in plan.decisions[0].reason  # not "version tags"
    versioned = decide(["v1.0.0"], image_id=IMAGE, remote={"v1.0.0": _remote()}, published=[])
    assert "version tags are immutable" in versioned.decisions[0].reason


def test_prerelease_never_holds_or_moves_floating_tags_by_itself():
    plan = decide(["v2.0.0-rc.1", "latest"], image_id=IMAGE, remote={}, published=["v1.0.0"])
    assert _actions(plan) == {"v2.0.0-rc.1": CREATE, "latest": CREATE}


def test_dry_run_without_local_image_marks_existing_tags_check():
    plan = decide(
        ["v1.0.0", "v1.1.0"], image_id=None, remote={"v1.0.0": _remote()}, published=["v1.0.0"]
    )
    assert _actions(plan) == {"v1.0.0": CHECK, "v1.1.0": CREATE}
    assert "refused" in plan.decisions[0].reason


def test_manifest_list_never_counts_as_unchanged():
    plan = decide(["edge"], image_id=IMAGE, remote={"edge": _remote(config=None)}, published=[])
    assert _actions(plan) == {"edge": MOVE}


def test_image_labels_are_reproducible_and_overridable():
    kwargs = dict(
        title="app",
        tags=("v1.2.3", "v1.2", "latest"),
        revision="f" * 40,
        source="https://example.org/app",
        created_epoch=1700000000,
        extra={"org.opencontainers.image.title": "custom", "team": "web"},
    )
    labels = image_labels(**kwargs)
    assert labels == image_labels(**kwargs)
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert labels["org.opencontainers.image.version"] == "v1.2.3"
    assert labels["org.opencontainers.image.title"] == "custom"
    assert labels["team"] == "web"
    bare = image_labels(
        title="app", tags=("sha-abc1234",), revision=None, source=None, created_epoch=None, extra={}
    )
    assert set(bare) == {"org.opencontainers.image.title", "org.opencontainers.image.version"}


INPUTS, OTHER_INPUTS = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _labelled(inputs, config=OTHER, digest="sha256:" + "9" * 64):
    return Remote(digest=digest, config_digest=config, inputs=inputs)


def test_same_inputs_are_unchanged_whatever_the_image_id():
    remote = {"v1.0.0": _labelled(INPUTS)}
    plan = decide(["v1.0.0"], remote=remote, published=["v1.0.0"], inputs=INPUTS, image_id=IMAGE)
    assert _actions(plan) == {"v1.0.0": SKIP}
    assert not plan.build and plan.to_push == []


def test_other_inputs_decide_before_any_build():
    remote = {"v1.0.0": _labelled(OTHER_INPUTS), "main": _labelled(OTHER_INPUTS)}
    plan = decide(["v1.0.0", "main"], remote=remote, published=["v1.0.0"], inputs=INPUTS)
    assert _actions(plan) == {"v1.0.0": REFUSE, "main": MOVE}
    assert "other inputs" in plan.refused[0].reason
    forced = decide(["v1.0.0"], remote=remote, published=[], inputs=INPUTS, force=True)
    assert _actions(forced) == {"v1.0.0": MOVE} and forced.build


def test_new_tags_copy_an_image_the_registry_holds_with_these_inputs():
    held = _labelled(INPUTS, digest="sha256:" + "5" * 64)
    plan = decide(
        ["v1.0.0", "stable"], remote={"v1.0.0": held}, published=["v1.0.0"], inputs=INPUTS
    )
    assert _actions(plan) == {"v1.0.0": SKIP, "stable": CREATE}
    assert not plan.build and plan.source == held


def test_an_unlabelled_image_is_checked_after_the_build():
    plan = decide(["v1.0.0"], remote={"v1.0.0": _remote()}, published=["v1.0.0"], inputs=INPUTS)
    assert _actions(plan) == {"v1.0.0": CHECK} and plan.build
    after = decide(
        ["v1.0.0"],
        remote={"v1.0.0": _remote(IMAGE)},
        published=["v1.0.0"],
        inputs=INPUTS,
        image_id=IMAGE,
    )
    assert _actions(after) == {"v1.0.0": SKIP}


def test_latest_stays_on_the_highest_version_for_a_release_without_one():
    plan = decide(["main", "latest"], remote={}, published=["v1.2.3", "latest"], inputs=INPUTS)
    assert _actions(plan) == {"main": CREATE, "latest": HOLD}
    assert "--force" in plan.decisions[1].reason
    forced = decide(["main", "latest"], remote={}, published=["v1.2.3"], inputs=INPUTS, force=True)
    assert _actions(forced) == {"main": CREATE, "latest": CREATE}
    alone = decide(["main", "latest"], remote={}, published=["main"], inputs=INPUTS)
    assert _actions(alone) == {"main": CREATE, "latest": CREATE}


def test_action_reads_as_its_word():
    assert f"{SKIP:<6}|" == "skip  |" and str(REFUSE) == "refuse" and SKIP == "skip"


def test_after_a_build_without_an_image_id_nothing_is_left_to_check():
    """A multi-platform build has no image ID: an image pushed by another tool under the tag
    is then decided by the rules, not left as CHECK."""
    remote = {"v1.0.0": Remote(digest="sha256:" + "1" * 64, config_digest=None, inputs=None)}
    remote["main"] = Remote(digest="sha256:" + "2" * 64, config_digest=None, inputs=None)
    before = decide(
        ["v1.0.0", "main"], remote=remote, published=["v1.0.0", "main"], inputs="sha256:x"
    )
    after = decide(
        ["v1.0.0", "main"],
        remote=remote,
        published=["v1.0.0", "main"],
        inputs="sha256:x",
        built=True,
    )
    assert [d.action for d in before.decisions] == [CHECK, CHECK]
    assert [d.action for d in after.decisions] == [REFUSE, MOVE]


# --- a multi-platform release's per-platform tags --------------------------------------------


def _held(inputs: str) -> Remote:
    return Remote(digest="sha256:" + inputs[-1] * 64, config_digest=None, inputs=inputs)


def test_per_platform_tags_are_planned_from_each_platforms_inputs():
    remote = {"v3.0.0-linux-amd64": _held("in-amd64"), "main-linux-amd64": _held("old-amd64")}
    inputs = {"linux/amd64": "in-amd64", "linux/arm64": "in-arm64"}
    plan = decide_platform_tags("v3.0.0", inputs, remote, force=False)
    assert {p: d.action for p, d in plan.items()} == {"linux/amd64": SKIP, "linux/arm64": CREATE}
    assert plan["linux/amd64"].tag == "v3.0.0-linux-amd64"

    other = decide_platform_tags("v3.0.0", {"linux/amd64": "new"}, remote, force=False)
    assert other["linux/amd64"].action == REFUSE and "immutable" in other["linux/amd64"].reason
    forced = decide_platform_tags("v3.0.0", {"linux/amd64": "new"}, remote, force=True)
    assert forced["linux/amd64"].action == MOVE
    floating = decide_platform_tags("main", {"linux/amd64": "new"}, remote, force=False)
    assert floating["linux/amd64"].action == MOVE
