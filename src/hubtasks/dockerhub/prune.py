"""Tag retention: `prune` lists the tags a rule would delete, and deletes them only when told.

The rule (`select`, pure): tags whose name matches the glob `match`, minus the `keep` most
recently pushed, minus those pushed within `older_than`. Never deleted, whatever the rule:

- a tag that does not match;
- a version tag (`v1.2.3`, `1.2.3-rc.1`) unless the pattern names versions itself (it starts
  with a version number, `v1.*` or `1.2.*`, or is the tag);
- a tag whose digest a kept tag also holds: a registry deletes by digest, so deleting it would
  take the kept tag (`latest`, say) with it;
- a tag whose digest is an image inside the manifest list (or OCI index) a kept tag holds, at
  any depth: a multi-platform release tags each platform's image too (`v1.2.3-linux-amd64`),
  and deleting that digest would leave the kept list naming an image that is gone, so the kept
  tag no longer pulls.

Both apply on Docker Hub too, for the same result everywhere, as far as its tags API tells
which images a tag's list holds (see `HubTags`).

Where the tags come from: Docker Hub's tags API (last push time, delete by tag) when the
settings have a Hub API (`hub.api_url`); any other registry through the Distribution API: the
tag list, each manifest's digest (and, for an index, its images'), the date from its image
config's `created` (the first platform's, for an index), and
`DELETE /v2/<name>/manifests/<digest>`, which a registry may refuse with 405 (Distribution
does unless started with `storage.delete.enabled: true`). A list is deleted before the images
inside it, so a failure part-way never leaves a list naming a deleted image.

What it must keep it never deletes on a guess (see `RegistryTags`): a listed tag it cannot read
stops every delete, and the tags are read again right before each DELETE.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import functools
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from hubtasks.dockerhub import client as hub
from hubtasks.errors import ConfigError, HubError, RegistryError
from hubtasks.pipeline.versions import parse_version

if TYPE_CHECKING:
    from hubtasks.pipeline.protocols import Registry
    from hubtasks.pipeline.session import Session
    from hubtasks.references import Repository
    from hubtasks.registry.client import RegistryClient
    from hubtasks.registry.manifests import ImageRecord
    from hubtasks.settings.resolve import Settings

_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_OLDEST = datetime.timedelta(days=36500)  # the longest --older-than: 100 years
_VERSION_PREFIX = re.compile(r"[vV]?\d+\.")


@dataclass(frozen=True)
class TagInfo:
    """A tag, the digest it points at and when it was pushed (or the image created); for a
    manifest list or index, the digests of the images inside it."""

    name: str
    digest: str | None
    pushed: datetime.datetime | None
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """What a rule decides: `delete`, and why the other matching tags stay."""

    delete: tuple[TagInfo, ...]
    kept: tuple[TagInfo, ...]  # matching, but among the newest or too recent
    shared: tuple[tuple[TagInfo, str], ...]  # (tag, the kept tag holding its digest)
    inside: tuple[tuple[TagInfo, str], ...]  # (tag, the kept tag whose list holds its image)
    versions: tuple[TagInfo, ...]  # matching version tags the pattern does not name


def parse_age(text: str) -> datetime.timedelta:
    """`30d`, `12h`, `2w`, `90m`, `45s` (or several: `1d12h`) → a timedelta."""
    cleaned = text.strip().lower()
    parts = _AGE.findall(cleaned)
    if not parts or _AGE.sub("", cleaned).strip():
        raise ConfigError(
            f"--older-than: '{text}' is not an age; write a number and a unit, e.g. 30d, "
            "12h, 2w (s, m, h, d, w)"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds > _OLDEST.total_seconds():  # also what a timedelta or a date could not hold
        raise ConfigError(
            f"--older-than: '{text}' is more than 100 years; no image is that old (write an "
            "age such as 30d, 12h or 2w)"
        )
    return datetime.timedelta(seconds=seconds)


def parse_keep(value: object) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"--keep: '{value}' is not a whole number of tags (0 or more)")
    return int(text)


def names_versions(pattern: str) -> bool:
    """Whether a pattern names version tags explicitly: it starts with a version number
    (`v1.*`, `1.2.*`, `v2.0.0-rc.*`) or is a version tag itself."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return bool(_VERSION_PREFIX.match(literal)) or parse_version(pattern) is not None


def _newest_first(tags: Iterable[TagInfo]) -> list[TagInfo]:
    """Unknown dates first (treated as newest, so kept), then newest to oldest."""
    return sorted(
        tags,
        key=lambda t: (t.pushed is not None, -(t.pushed.timestamp() if t.pushed else 0), t.name),
    )


def select(
    tags: Iterable[TagInfo],
    *,
    match: str,
    keep: int | None,
    older_than: datetime.timedelta | None,
    now: datetime.datetime,
) -> Selection:
    """Which tags a rule deletes (see the module docstring for what is never deleted)."""
    every = list(tags)
    matching = [t for t in every if fnmatch.fnmatchcase(t.name, match)]
    explicit = names_versions(match)
    versions = [t for t in matching if parse_version(t.name) and not explicit]
    eligible = _newest_first(t for t in matching if t not in versions)
    candidates = eligible[keep:] if keep is not None else eligible
    if older_than is not None:
        cutoff = now - older_than
        candidates = [t for t in candidates if t.pushed is not None and t.pushed < cutoff]
    chosen = {t.name for t in candidates}
    staying = [t for t in every if t.name not in chosen or t.digest is None]
    holders, lists = _held(staying, every)
    shared = [(t, holders[t.digest]) for t in candidates if t.digest in holders]
    inside = [
        (t, lists[t.digest]) for t in candidates if t.digest in lists and t.digest not in holders
    ]
    unknown = [(t, "") for t in candidates if t.digest is None]
    spared = {t.name for t, _ in (*shared, *inside, *unknown)}
    return Selection(
        delete=tuple(t for t in candidates if t.name not in spared),
        kept=tuple(t for t in eligible if t.name not in chosen),
        shared=(*shared, *unknown),
        inside=tuple(inside),
        versions=tuple(versions),
    )


def _held(staying: list[TagInfo], every: list[TagInfo]) -> tuple[dict[str, str], dict[str, str]]:
    """What the tags that stay hold, each digest → the first such tag: their own digests, and
    the images inside their lists (through lists inside lists, as far as `every` tells)."""
    holders: dict[str, str] = {}
    for t in staying:
        if t.digest:
            holders.setdefault(t.digest, t.name)
    children = {t.digest: t.children for t in every if t.digest}
    lists: dict[str, str] = {}
    pending = deque((child, t.name) for t in staying for child in t.children)
    while pending:
        digest, holder = pending.popleft()
        if digest not in lists:
            lists[digest] = holder
            pending.extend((child, holder) for child in children.get(digest, ()))
    return holders, lists


# --- where the tags are ------------------------------------------------------------------


class HubTags:
    """Docker Hub's tags API: last push times, delete by tag.

    Which images a tag's list holds comes with each tag (`hub.HubTag.images`: the Hub lists
    every platform's image of a multi-platform tag), so the images inside a kept list are
    spared here too.
    """

    dated = "pushed"

    def __init__(self, client: hub.HubClient, namespace: str, name: str, session: Session) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.session = session

    def read(self) -> list[TagInfo]:
        found = self.session.retrying(
            f"listing the tags of {self.namespace}/{self.name} on Docker Hub",
            lambda: self.client.tags(self.namespace, self.name),
        )
        return [TagInfo(t.name, t.digest, t.pushed, t.images) for t in found]

    def delete(self, tags: list[TagInfo], doomed: frozenset[str], every: list[TagInfo]) -> str:
        """Delete one tag (Docker Hub deletes by tag: no other tag goes with it)."""
        self.client.delete_tag(self.namespace, self.name, tags[0].name)
        return ""


class RegistryTags:
    """A Distribution registry: dates from image configs, delete by digest.

    A tag the listing names must be read: one whose manifest answers 404 is read again (within
    the retry budget) unless a new listing no longer names it; if it still cannot be read,
    prune deletes nothing, because a tag it cannot see may share a digest with a candidate.
    Right before each DELETE the tags are listed and read again (`holder_now`): a tag that
    stays and has moved onto the digest (or onto a list naming it) since spares it."""

    dated = "created"

    def __init__(self, client: RegistryClient, session: Session) -> None:
        self.client, self.session = client, session

    def read(self) -> list[TagInfo]:
        """Every tag with its digest and date, read up to four tags at a time."""
        from hubtasks.pipeline.gather import list_tags  # gather (and its imports) only now

        return self._each(list_tags(self.client, self.session), self._info)

    def _each(
        self, names: list[str], read: Callable[[Registry, str], TagInfo | None]
    ) -> list[TagInfo]:
        from hubtasks.pipeline.gather import each_tag_or_raise

        found = each_tag_or_raise(
            self.client,
            self.session,
            names,
            read,
            lambda name: f"reading {self.client.repository.canonical(name)}",
        )
        return [info for info in found if info is not None]

    def _info(self, client: Registry, name: str) -> TagInfo | None:
        """The tag's digest and its image config's `created` (for an index: its images'
        digests, and the first one's `created`)."""
        record = client.image_record(name)
        if record is None:
            self._gone(client, name)
            return None
        dated: ImageRecord | None = record
        if record.children:
            dated = client.image_record(record.children[0][0])
        created = hub.parse_time(dated.created) if dated is not None else None
        children = tuple(digest for digest, _ in record.children)
        return TagInfo(name, record.digest, created, children)

    def _holds(self, client: Registry, name: str) -> TagInfo | None:
        """What the tag holds now (digest, the images of a list); no date."""
        record = client.image_record(name)
        if record is None:
            self._gone(client, name)
            return None
        return TagInfo(name, record.digest, None, tuple(d for d, _ in record.children))

    def _gone(self, client: Registry, name: str) -> None:
        """A listed tag whose manifest answered 404: left out if a new listing no longer
        names it (deleted since), else a transient error, read again within the budget."""
        if name in client.tags():
            raise RegistryError(
                f"registry {client.repository.registry} lists "
                f"{client.repository.canonical(name)} but answers 404 for its manifest; prune "
                "deletes nothing while it cannot see what a listed tag holds (it may share a "
                "digest with a tag to delete)",
                status=404,
                transient=True,
            )

    def holder_now(self, digest: str, doomed: frozenset[str], every: list[TagInfo]) -> str:
        """Right before a DELETE: the tags listed now, each one not to be deleted read again;
        the first that holds `digest`, or a list naming it ("" when none does). `every` (the
        tags first read) tells what lists inside lists hold."""
        from hubtasks.pipeline.gather import list_tags

        names = [n for n in list_tags(self.client, self.session) if n not in doomed]
        staying = self._each(names, self._holds)
        holders, lists = _held(staying, [*staying, *every])
        return holders.get(digest) or lists.get(digest) or ""

    def delete(self, tags: list[TagInfo], doomed: frozenset[str], every: list[TagInfo]) -> str:
        """Delete the manifest every tag in `tags` points at (they share one digest), unless
        a tag that stays holds it now: then nothing is deleted and that tag's name returned."""
        digest = tags[0].digest or ""
        try:
            holder = self.holder_now(digest, doomed, every)
        except HubError as error:  # each read was retried already: not the DELETE again
            raise error.evolve(transient=False) from None
        if holder:
            return holder
        path = f"/v2/{self.client.repository.path}/manifests/{digest}"
        response = self.client.send("DELETE", path)
        if response.status in (200, 202, 404):
            return ""
        registry = self.client.repository.registry
        if response.status == 405:
            raise RegistryError(
                f"registry {registry} does not allow deleting images (HTTP 405); nothing more "
                "was deleted. A Distribution registry needs storage.delete.enabled: true",
                status=405,
            )
        if response.status in (401, 403):
            raise RegistryError(
                f"registry {registry} denied deleting {digest} (HTTP {response.status}); the "
                "token needs delete permission on the repository",
                status=response.status,
            )
        from hubtasks.registry.client import rate_limit_wait

        raise RegistryError(
            f"registry {registry} could not delete {digest} (HTTP {response.status})",
            status=response.status,
            transient=response.status == 429 or response.status >= 500,
            retry_after=rate_limit_wait(response.status, response.headers),  # a 429's wait
        )


# --- the task -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    selection: Selection
    deleted: tuple[TagInfo, ...]  # empty unless `yes`


def _source(settings: Settings, session: Session) -> HubTags | RegistryTags:
    base = hub.api_url(settings)
    if base is None:
        return RegistryTags(cast("RegistryClient", session.registry_for(settings)), session)
    namespace, name = hub.split_path(settings.require_repository())
    hub_client = hub.HubClient(base, settings.username or "", settings.token or "")
    return HubTags(hub_client, namespace, name, session)


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "date unknown"


def prune(
    settings: Settings,
    match: str | None,
    keep: object = None,
    older_than: str | None = None,
    yes: bool = False,
    session: Session | None = None,
    *,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
) -> PruneResult:
    """List (tag, digest, date) of what the rule deletes; delete only with `yes` and without
    `dry_run`."""
    from hubtasks.pipeline.session import session_for

    if not match:
        raise ConfigError("prune needs --match PATTERN (a glob such as 'sha-*')")
    kept_count, age = parse_keep(keep), parse_age(older_than) if older_than else None
    if kept_count is None and age is None:
        raise ConfigError("prune needs --keep N, --older-than AGE or both; it never guesses")
    settings.require("login")
    repository = settings.require_repository()
    session = session_for(settings, session)
    source = _source(settings, session)
    with session.console.activity("prune", f"reading the tags of {repository}"):
        tags = source.read()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    chosen = select(tags, match=match, keep=kept_count, older_than=age, now=now)
    _report(chosen, source.dated, session)
    deleting = yes and not dry_run
    deleted = _delete(chosen.delete, source, repository, session, tags) if deleting else ()
    count = f"{len(chosen.delete)} of {len(tags)} tag(s)"
    if deleting:
        session.console.stage("prune", f"deleted {len(deleted)} of {len(tags)} tag(s)")
    elif dry_run:
        session.console.stage("prune", f"would delete {count} (dry run: nothing deleted)")
    else:
        tail = "; run again with --yes to delete them" if chosen.delete else ""
        session.console.stage("prune", f"would delete {count}{tail}")
    return PruneResult(chosen, deleted)


def _delete(
    tags: tuple[TagInfo, ...],
    source: HubTags | RegistryTags,
    repository: Repository,
    session: Session,
    every: list[TagInfo],
) -> tuple[TagInfo, ...]:
    """Delete `tags`, saying so for each one only once it is gone; a failure names those
    deleted before it. A group a tag that stays has moved onto since the plan is kept."""
    deleted: list[TagInfo] = []
    doomed = frozenset(t.name for t in tags)
    try:
        for group in _by_digest(tags, by_tag=isinstance(source, HubTags)):
            delete = functools.partial(source.delete, group, doomed, every)
            with contextlib.ExitStack() as under_way:  # an interrupt: "may have landed"
                for tag in group:
                    ref = repository.canonical(tag.name, tag.digest)
                    under_way.enter_context(session.ledger.writing(f"the deletion of {ref}"))
                holder = session.retrying(f"deleting {group[0].name}", delete)
            for tag in group if holder else ():
                session.console.stage(
                    "prune",
                    f"keep {tag.name}: {holder} now holds its digest (moved since the plan)",
                )
            for tag in () if holder else group:
                deleted.append(tag)
                session.console.stage("prune", f"deleted {tag.name}  {tag.digest}")
                session.console.result(repository.canonical(tag.name, tag.digest))
    except HubError as error:
        done = ", ".join(t.name for t in deleted) or "none"
        raise error.evolve(f"{error} (deleted before this: {done})") from None
    return tuple(deleted)


def _by_digest(tags: Iterable[TagInfo], *, by_tag: bool) -> list[list[TagInfo]]:
    """Delete groups: one per tag (Docker Hub), or one per digest (a registry); lists first,
    so that a failure part-way never leaves a list naming an image already deleted."""
    groups: dict[str | None, list[TagInfo]] = {}
    for tag in tags:
        groups.setdefault(tag.name if by_tag else tag.digest, []).append(tag)
    return sorted(groups.values(), key=lambda group: not group[0].children)


def _report(chosen: Selection, dated: str, session: Session) -> None:
    """The plan, in the same words with or without --yes: "would delete" is what the rule
    chose; a tag is said to be "deleted" only once it is (`_delete`)."""
    console = session.console
    for tag in chosen.delete:
        console.stage(
            "prune", f"would delete {tag.name}  {tag.digest}  {dated} {_when(tag.pushed)}"
        )
    for tag, holder in chosen.shared:
        why = (
            f"its digest is also {holder}'s, which is kept"
            if holder
            else "its digest is unknown, so it cannot be checked against the kept tags"
        )
        console.stage("prune", f"keep {tag.name}: {why}")
    for tag, holder in chosen.inside:
        console.stage("prune", f"keep {tag.name}: an image inside {holder}'s list, which is kept")
    for tag in chosen.versions:
        console.stage(
            "prune",
            f"keep {tag.name}: a version tag; only a pattern that starts with a version "
            "(such as 'v1.*') deletes version tags",
        )
