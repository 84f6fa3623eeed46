"""The retention rule: what `prune` may delete and what it never deletes. Pure."""

from __future__ import annotations

import datetime
import fnmatch

import pytest

from hubtasks.errors import ConfigError
from hubtasks.prune import TagInfo, names_versions, parse_age, parse_keep, select

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


def test_parse_keep():
    assert parse_keep(None) is None and parse_keep("0") == 0 and parse_keep(7) == 7
    with pytest.raises(ConfigError, match="not a whole number"):
        parse_keep("-2")
