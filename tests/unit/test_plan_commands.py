"""The dry run's equivalent docker commands cover every tag the real run may touch."""

from __future__ import annotations

from hubtasks.pipeline.plan import BuildCommand, Remote, decide, equivalent_commands

DIGEST = "sha256:" + "1" * 64
CONFIG = "sha256:" + "2" * 64


def commands(plan) -> list[str]:
    return equivalent_commands(
        registry="docker.io",
        username="u",
        local_name="u/app",
        plan=plan,
        dockerfile="Dockerfile",
        context=".",
        builds=[BuildCommand(None, {}, {})],
    )


def test_tags_the_plan_must_check_are_tagged_and_pushed():
    """`--semver` over an existing v1 in a dry run with no local image: v1 is `check` (pushed
    unless the build matches), so its commands are listed too."""
    plan = decide(
        ["v1.0.1", "v1.0", "v1", "latest"],
        image_id=None,
        remote={"v1": Remote(DIGEST, CONFIG), "latest": Remote(DIGEST, CONFIG)},
        published=["v1", "latest", "v1.0.0"],
    )
    assert [d.action for d in plan.decisions] == ["create", "create", "check", "check"]
    listed = commands(plan)
    for tag in ("v1.0", "v1", "latest"):
        assert f"docker tag u/app:v1.0.1 u/app:{tag}" in listed
    for tag in ("v1.0.1", "v1.0", "v1", "latest"):
        assert f"docker push u/app:{tag}" in listed


def test_skipped_and_held_tags_are_not_pushed():
    plan = decide(
        ["v1.0.0", "latest"],
        image_id=CONFIG,
        remote={"v1.0.0": Remote(DIGEST, CONFIG)},
        published=["v1.0.0", "v2.0.0"],
    )
    assert [d.action for d in plan.decisions] == ["skip", "hold"]
    assert not [c for c in commands(plan) if c.startswith("docker push")]
