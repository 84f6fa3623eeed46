"""The plan's pure decisions that used to be made in the executor and the API: what only the
built image settles, a push of local images, the one vocabulary, the refusal."""

from __future__ import annotations

from hubtasks.errors import ReleaseRefused
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.plan import CHECK, CREATE, MOVE, REFUSE, SKIP, Remote
from hubtasks.references import Repository

REPO = Repository("127.0.0.1:5000", "team/app")
FOREIGN = Remote("sha256:" + "a" * 64, "sha256:" + "b" * 64, inputs=None)  # no inputs label


def test_a_check_before_the_build_is_settled_by_the_built_image():
    before = planning.decide(["edge", "v1.0.0"], remote={"edge": FOREIGN}, published=["edge"])
    assert [d.action for d in before.decisions] == [CHECK, CREATE]
    same = planning.after_build(
        ["edge", "v1.0.0"],
        remote={"edge": FOREIGN},
        published=["edge"],
        inputs="sha256:" + "c" * 64,
        image_id=FOREIGN.config_digest,
        force=False,
    )
    assert [d.action for d in same.decisions] == [SKIP, CREATE]
    assert same.build and same.source is None
    other = planning.after_build(
        ["edge"],
        remote={"edge": FOREIGN},
        published=["edge"],
        inputs="sha256:" + "c" * 64,
        image_id="sha256:" + "d" * 64,
        force=False,
    )
    assert [d.action for d in other.decisions] == [MOVE]


def test_a_version_tag_holding_another_image_after_the_build_is_refused():
    plan = planning.after_build(
        ["v1.0.0"],
        remote={"v1.0.0": FOREIGN},
        published=["v1.0.0"],
        inputs=None,
        image_id="sha256:" + "d" * 64,
        force=False,
    )
    assert [d.action for d in plan.decisions] == [REFUSE]
    error = planning.refusal(plan, REPO)
    assert isinstance(error, ReleaseRefused)
    assert "refusing to release, nothing was pushed: 127.0.0.1:5000/team/app:v1.0.0" in str(error)
    assert error.stage == "plan"


def test_a_push_decides_each_tag_from_its_own_local_image():
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    remote = {"a": Remote("sha256:" + "9" * 64, one, inputs="in-1"), "b": None}
    plan = planning.plan_push(
        ["a", "b"],
        remote=remote,
        local={"a": one, "b": two},
        inputs={one: "in-1", two: None},
        force=False,
    )
    assert [d.action for d in plan.decisions] == [SKIP, CREATE]
    assert not plan.build
    assert planning.approved_locally(plan) == ["a", "b"]


def test_one_vocabulary_words_for_people_values_for_scripts():
    assert {a.value: a.words for a in planning.Action} == {
        "create": "create",
        "move": "move",
        "skip": "unchanged",
        "hold": "hold back",
        "refuse": "REFUSE",
        "check": "check after the build",
    }


def test_a_tag_holding_another_image_beside_a_multi_platform_source_is_decided_now():
    """The registry holds the release's list (no image ID: an index) under v1.0.0, nothing
    is built; a tag holding an image without the inputs label cannot wait for a build that
    does not happen (it was left as CHECK: never written, never reported, exit 0)."""
    inputs = "sha256:" + "c" * 64
    index = Remote("sha256:" + "e" * 64, None, inputs=inputs)
    remote = {"v1.0.0": index, "edge": FOREIGN, "v1.0.1": FOREIGN}
    plan = planning.decide(
        ["v1.0.0", "edge", "v1.0.1"], remote=remote, published=list(remote), inputs=inputs
    )
    assert [d.action for d in plan.decisions] == [SKIP, MOVE, REFUSE]
    assert not plan.build and plan.source == index
