"""The retention rule: what `prune` may delete and what it never deletes (pure); then `prune`
itself on a fake registry: the order of deletes, what it reports, the dry run."""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import json
from types import SimpleNamespace

import pytest

from hubtasks.dockerhub.client import _hub_tag
from hubtasks.dockerhub.prune import (
    HubTags,
    TagInfo,
    names_versions,
    parse_age,
    parse_keep,
    prune,
    select,
)
from hubtasks.errors import ConfigError, RegistryError
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.settings.resolve import Settings
from tests.helpers.consoles import make_console

from .fakes import FakeRegistry, Store

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


def days_ago(days: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


def tag(name: str, age_days: float | None, digest: str | None = None) -> TagInfo:
    return TagInfo(
        name, digest or f"sha256:{name}", None if age_days is None else days_ago(age_days)
    )


def names(tags) -> list[str]:
    return sorted(t.name for t in tags)


SHA_TAGS = [tag(f"sha-{i}", i) for i in range(1, 7)]  # sha-1 newest … sha-6 oldest


def test_keep_the_newest_n():
    chosen = select(SHA_TAGS, match="sha-*", keep=2, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-3", "sha-4", "sha-5", "sha-6"]
    assert names(chosen.kept) == ["sha-1", "sha-2"]


def test_older_than_alone_and_with_keep():
    chosen = select(SHA_TAGS, match="sha-*", keep=None, older_than=parse_age("4d"), now=NOW)
    assert names(chosen.delete) == ["sha-5", "sha-6"]
    both = select(SHA_TAGS, match="sha-*", keep=5, older_than=parse_age("2d"), now=NOW)
    assert names(both.delete) == ["sha-6"]  # beyond the newest five AND older than two days


def test_keep_zero_deletes_every_match_and_nothing_else():
    tags = [*SHA_TAGS, tag("main", 30), tag("pr-7", 40)]
    chosen = select(tags, match="sha-*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == names(SHA_TAGS)


def test_a_tag_sharing_its_digest_with_a_kept_tag_is_never_deleted():
    shared = "sha256:released"
    tags = [*SHA_TAGS[:5], tag("sha-6", 6, shared), tag("latest", 0.1, shared)]
    chosen = select(tags, match="sha-*", keep=2, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-3", "sha-4", "sha-5"]
    assert [(t.name, holder) for t, holder in chosen.shared] == [("sha-6", "latest")]


def test_candidates_sharing_a_digest_go_together():
    same = "sha256:twice"
    tags = [tag("sha-1", 1), tag("sha-8", 8, same), tag("sha-9", 9, same)]
    chosen = select(tags, match="sha-*", keep=1, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-8", "sha-9"]
    assert chosen.shared == ()


def test_shared_with_a_tag_kept_by_the_rule():
    same = "sha256:kept-too"
    tags = [tag("sha-1", 1, same), tag("sha-9", 9, same), tag("sha-5", 5)]
    chosen = select(tags, match="sha-*", keep=1, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-5"]
    assert [(t.name, holder) for t, holder in chosen.shared] == [("sha-9", "sha-1")]


def test_unknown_digest_is_spared():
    tags = [TagInfo("sha-9", None, days_ago(9)), tag("sha-1", 1)]
    chosen = select(tags, match="sha-*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-1"]
    assert [(t.name, holder) for t, holder in chosen.shared] == [("sha-9", "")]


def test_unknown_dates_count_as_newest_and_are_never_old():
    tags = [tag("sha-x", None), *SHA_TAGS]
    assert "sha-x" not in names(
        select(tags, match="sha-*", keep=1, older_than=None, now=NOW).delete
    )
    aged = select(tags, match="sha-*", keep=None, older_than=parse_age("1s"), now=NOW)
    assert "sha-x" not in names(aged.delete)


@pytest.mark.parametrize(
    "pattern, deletable",
    [
        ("*", []),
        ("v*", []),
        ("*.*.*", []),
        ("v1.*", ["v1.0.0", "v1.1.0"]),
        ("v1.0.*", ["v1.0.0"]),
        ("v2.0.0-rc.*", ["v2.0.0-rc.1"]),
        ("v1.0.0", ["v1.0.0"]),
    ],
)
def test_version_tags_only_when_the_pattern_names_them(pattern, deletable):
    tags = [tag("v1.0.0", 50), tag("v1.1.0", 40), tag("v2.0.0-rc.1", 30), tag("nightly", 20)]
    chosen = select(tags, match=pattern, keep=0, older_than=None, now=NOW)
    assert names(t for t in chosen.delete if t.name != "nightly") == deletable
    if not names_versions(pattern):  # every matching version tag is reported as kept
        matching = {t.name for t in tags if fnmatch.fnmatchcase(t.name, pattern)}
        assert {t.name for t in chosen.versions} == matching - {"nightly"}


def test_non_matching_tags_are_never_touched():
    tags = [tag("sha-1", 100), tag("SHA-2", 100), tag("release-sha-3", 100)]
    chosen = select(tags, match="sha-*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-1"]  # matching is case-sensitive and anchored


@pytest.mark.parametrize(
    "text, seconds",
    [("30d", 30 * 86400), ("12h", 43200), ("2w", 1209600), ("90m", 5400), ("1d12h", 129600)],
)
def test_parse_age(text, seconds):
    assert parse_age(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "3 days", "-1d", "1y"])
def test_parse_age_refuses(text):
    with pytest.raises(ConfigError, match="is not an age"):
        parse_age(text)


@pytest.mark.parametrize("text", ["99999999999d", "1000000d", "5300w", "36501d"])
def test_parse_age_refuses_an_age_no_image_has(text):
    with pytest.raises(ConfigError, match="more than 100 years"):
        parse_age(text)


def test_parse_age_takes_a_hundred_years():
    assert parse_age("36500d").days == 36500


def test_parse_keep():
    assert parse_keep(None) is None and parse_keep("0") == 0 and parse_keep(7) == 7
    with pytest.raises(ConfigError, match="not a whole number"):
        parse_keep("-2")


# --- multi-platform images: a list and the images inside it ------------------------------


def listed(name: str, age_days: float, digest: str, children: tuple[str, ...]) -> TagInfo:
    return TagInfo(name, digest, days_ago(age_days), children)


def release_tags(version: str, age_days: float) -> list[TagInfo]:
    """A multi-platform release as hubtasks pushes it: each platform's image under its own
    tag (arm64 built a minute after amd64), then the list under the version."""
    amd, arm = f"sha256:{version}-amd64", f"sha256:{version}-arm64"
    return [
        listed(version, age_days, f"sha256:{version}-list", (amd, arm)),
        tag(f"{version}-linux-amd64", age_days, amd),
        tag(f"{version}-linux-arm64", age_days - 0.001, arm),
    ]


def test_an_image_inside_a_kept_list_is_never_deleted():
    """The tester's case: v1.1.0 is also v2.0.0 and latest, so its list stays, and so must
    the images it names, although their own tags match and are old."""
    newer = release_tags("v1.1.0", 10)
    held = [
        TagInfo(name, newer[0].digest, days_ago(1), newer[0].children)
        for name in ("latest", "v2.0.0")
    ]
    tags = [*held, *release_tags("v1.0.0", 20), *newer]
    chosen = select(tags, match="v1.*", keep=1, older_than=None, now=NOW)
    assert names(chosen.kept) == ["v1.1.0-linux-arm64"]
    assert names(chosen.delete) == ["v1.0.0", "v1.0.0-linux-amd64", "v1.0.0-linux-arm64"]
    assert [(t.name, holder) for t, holder in chosen.shared] == [("v1.1.0", "latest")]
    assert [(t.name, holder) for t, holder in chosen.inside] == [("v1.1.0-linux-amd64", "latest")]


def test_an_image_inside_a_list_that_is_deleted_too_goes():
    chosen = select(release_tags("v1.0.0", 20), match="v1.*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == ["v1.0.0", "v1.0.0-linux-amd64", "v1.0.0-linux-arm64"]
    assert chosen.inside == ()


def test_images_inside_a_list_inside_a_kept_list_stay():
    inner = listed("sha-inner", 9, "sha256:inner", ("sha256:leaf",))
    tags = [
        listed("latest", 0.1, "sha256:outer", ("sha256:inner",)),
        inner,
        tag("sha-leaf", 9, "sha256:leaf"),
        tag("sha-old", 9),
    ]
    chosen = select(tags, match="sha-*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-old"]
    assert [(t.name, holder) for t, holder in chosen.inside] == [
        ("sha-inner", "latest"),
        ("sha-leaf", "latest"),
    ]


# --- `prune` itself: a fake registry that also deletes -----------------------------------

REGISTRY = "127.0.0.1:5000"
APP = Repository(registry=REGISTRY, path="alice/app")


class DeletingRegistry(FakeRegistry):
    """The fake registry (dates from the configs' `created`), plus the one call prune makes
    beyond the protocol: `DELETE …/manifests/<digest>`, as Distribution does it (the manifest
    goes, and every tag on it), answered 403 once `allowed` deletes have been made."""

    def __init__(self, repository, store: Store, allowed: int | None = None) -> None:
        super().__init__(repository, store)
        self.allowed, self.deleted = allowed, []

    def fork(self):
        return self

    def image_record(self, reference: str, *, after_push: bool = False):
        record = super().image_record(reference)
        if record is None or record.config_digest is None:
            return record
        config = json.loads(self.store.blobs[record.config_digest])
        return dataclasses.replace(record, created=config["created"])

    def send(self, method: str, path: str, *, accept=None):
        assert method == "DELETE" and path.startswith(f"/v2/{APP.path}/manifests/sha256:")
        if self.allowed is not None and len(self.deleted) >= self.allowed:
            return SimpleNamespace(status=403)
        digest = path.rsplit("/", 1)[1]
        self.deleted.append(digest)
        del self.store.manifests[digest]
        for name in [n for n, d in self.store.tags.items() if d == digest]:
            del self.store.tags[name]
        return SimpleNamespace(status=202)


def run_prune(registry: DeletingRegistry, match: str, keep: int, **options):
    """`prune` on `registry`: its result (or the error it raised), stdout, stderr."""
    console = make_console("plain")
    settings = Settings(
        registry=REGISTRY, username="alice", token="s3cret", repository=APP, retry_delay=0.0
    )
    session = Session(console=console, context=object(), registry_factory=lambda s: registry)
    try:
        result = prune(settings, match, keep, session=session, now=NOW, **options)
    except RegistryError as error:
        result = error
    return result, console.out.getvalue(), console.err.getvalue()


def said_deleted(err: str) -> list[str]:
    """The lines of stderr that say a tag was deleted (or is being deleted)."""
    return [line for line in err.splitlines() if " deleted " in line or "] delete " in line]


def iso(age_days: float) -> str:
    return days_ago(age_days).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def push_release(store: Store, version: str, age_days: float) -> str:
    """A multi-platform release in the store, as `inv release --platform` leaves it."""
    for arch, offset in (("amd64", 0), ("arm64", 0.001)):
        layer = f"{version} {arch}".encode()
        store.put_image(f"{version}-linux-{arch}", {}, created=iso(age_days - offset), layer=layer)
    return store.put_index(version, [f"{version}-linux-amd64", f"{version}-linux-arm64"])


def test_prune_keeps_the_images_of_a_kept_list_and_deletes_a_list_before_its_images():
    store = Store()
    push_release(store, "v1.0.0", 20)
    kept_list = push_release(store, "v1.1.0", 10)
    for name in ("v1.1", "v1", "latest", "v2.0.0"):
        store.tags[name] = kept_list
    gone = {n: store.tags[n] for n in ("v1.0.0", "v1.0.0-linux-amd64", "v1.0.0-linux-arm64")}
    registry = DeletingRegistry(APP, store)
    result, out, err = run_prune(registry, "v1.*", 1, yes=True)
    assert registry.deleted[0] == gone["v1.0.0"]  # the list first, then its images
    assert sorted(registry.deleted) == sorted(gone.values())
    assert names(result.deleted) == sorted(gone)
    assert sorted(store.tags) == sorted(
        ["latest", "v1", "v1.1", "v1.1.0", "v1.1.0-linux-amd64", "v1.1.0-linux-arm64", "v2.0.0"]
    )
    for child in json.loads(store.manifests[kept_list])["manifests"]:
        assert child["digest"] in store.manifests
    assert "keep v1.1.0-linux-amd64: an image inside latest's list, which is kept" in err
    assert "keep v1.1.0: its digest is also latest's, which is kept" in err
    assert sorted(out.splitlines()) == sorted(f"{APP}:{n}@{d}" for n, d in gone.items())


def sha_store(count: int) -> Store:
    store = Store()
    for i in range(1, count + 1):
        store.put_image(f"sha-{i}", {}, created=iso(i))
    return store


def test_a_refused_delete_leaves_no_line_saying_a_tag_was_deleted():
    registry = DeletingRegistry(APP, sha_store(5), allowed=0)
    failed, out, err = run_prune(registry, "sha-*", 2, yes=True)
    assert isinstance(failed, RegistryError) and failed.status == 403
    assert str(failed).endswith("(deleted before this: none)")
    assert registry.deleted == [] and len(registry.store.tags) == 5
    assert err.count("[prune] would delete sha-") == 3  # the plan, as without --yes
    assert said_deleted(err) == [] and out == ""


def test_only_tags_actually_deleted_are_reported_as_deleted():
    registry = DeletingRegistry(APP, sha_store(5), allowed=1)
    failed, out, err = run_prune(registry, "sha-*", 2, yes=True)
    (digest,) = registry.deleted
    (done,) = [n for n in ("sha-3", "sha-4", "sha-5") if n not in registry.store.tags]
    assert isinstance(failed, RegistryError)
    assert str(failed).endswith(f"(deleted before this: {done})")
    assert said_deleted(err) == [f"[prune] deleted {done}  {digest}"]
    assert out == f"{APP}:{done}@{digest}\n"


def test_the_final_line_counts_what_was_deleted():
    registry = DeletingRegistry(APP, sha_store(5))
    result, out, err = run_prune(registry, "sha-*", 2, yes=True)
    assert names(result.deleted) == ["sha-3", "sha-4", "sha-5"]
    assert sorted(registry.store.tags) == ["sha-1", "sha-2"]
    assert len(said_deleted(err)) == 4 and len(out.splitlines()) == 3
    assert err.splitlines()[-1] == "[prune] deleted 3 of 5 tag(s)"


@pytest.mark.parametrize("yes", [True, False])
def test_dry_run_reports_and_deletes_nothing_even_with_yes(yes):
    registry = DeletingRegistry(APP, sha_store(5))
    result, out, err = run_prune(registry, "sha-*", 2, yes=yes, dry_run=True)
    assert registry.deleted == [] and len(registry.store.tags) == 5
    assert names(result.selection.delete) == ["sha-3", "sha-4", "sha-5"] and result.deleted == ()
    assert out == ""
    assert err.count("[prune] would delete sha-") == 3
    assert err.splitlines()[-1] == "[prune] would delete 3 of 5 tag(s) (dry run: nothing deleted)"


def test_on_docker_hub_the_images_of_a_kept_list_are_spared():
    """Docker Hub lists a multi-platform tag with its list's digest and every platform's
    image (`images[].digest`): the images of a kept list are known, as from a registry."""

    index, amd, arm = ("sha256:" + c * 64 for c in "iab")
    listed = [
        {
            "name": "latest",
            "digest": index,
            "tag_last_pushed": "2026-11-30T00:00:00Z",
            "images": [{"digest": amd, "architecture": "amd64"}, {"digest": arm}],
        },
        {"name": "noindex", "images": [{"digest": amd}, {"digest": arm}]},
        {"name": "sha-amd64", "digest": amd, "images": [{"digest": amd}]},
        {"name": "sha-old", "digest": "sha256:" + "c" * 64},
    ]

    class Hub:
        def tags(self, namespace, name):
            return [_hub_tag(item) for item in listed]

    session = Session(console=make_console("plain"), context=object())
    tags = HubTags(Hub(), "alice", "web", session).read()
    assert [t.children for t in tags] == [(amd, arm), (amd, arm), (), ()]
    assert tags[1].digest == f"images:{amd},{arm}"  # no digest of its own: its images stand in
    chosen = select(tags, match="sha-*", keep=0, older_than=None, now=NOW)
    assert names(chosen.delete) == ["sha-old"]
    assert [(t.name, holder) for t, holder in chosen.inside] == [("sha-amd64", "latest")]


def test_a_429_to_a_delete_carries_the_registrys_wait():
    """Retried no sooner than Retry-After, as every other request: the wait travels on the
    error the retry policy reads (it was dropped, and retried after 0.1 s)."""
    from hubtasks.dockerhub.prune import RegistryTags

    class Busy:
        repository = APP

        def tags(self):  # read again right before the DELETE: only the tag being deleted
            return ["sha-1"]

        def send(self, method, path, *, accept=None):
            return SimpleNamespace(status=429, headers={"Retry-After": "7"})

    session = Session(console=make_console("plain"), context=object())
    tag = TagInfo("sha-1", "sha256:" + "a" * 64, NOW)
    with pytest.raises(RegistryError) as caught:
        RegistryTags(Busy(), session).delete([tag], frozenset({tag.name}), [tag])
    assert caught.value.transient and caught.value.retry_after == 7


class _InterruptedDelete(DeletingRegistry):
    """The DELETE is sent and the command interrupted before its answer (SIGTERM)."""

    def send(self, method: str, path: str, *, accept=None):
        super().send(method, path, accept=accept)
        raise KeyboardInterrupt


def test_a_delete_under_way_at_an_interrupt_is_named_as_one_that_may_have_happened():
    """`kill -TERM` while a DELETE is in flight: the line said only 'interrupted (SIGTERM)';
    the registry took the delete. The session's ledger lists it as a write under way."""
    registry = DeletingRegistry(APP, sha_store(3))
    registry.__class__ = _InterruptedDelete
    console = make_console("plain")
    settings = Settings(
        registry=REGISTRY, username="alice", token="s3cret", repository=APP, retry_delay=0.0
    )
    session = Session(console=console, context=object(), registry_factory=lambda s: registry)
    with pytest.raises(KeyboardInterrupt):
        prune(settings, "sha-*", 2, session=session, now=NOW, yes=True)
    (digest,) = registry.deleted
    (gone,) = [n for n in ("sha-1", "sha-2", "sha-3") if n not in registry.store.tags]
    assert session.ledger.in_flight() == [f"the deletion of {APP}:{gone}@{digest}"]
