"""The registry as a build cache: which images a build pulls first and names in `cache_from`.

On a runner whose daemon holds nothing of the repository (a fresh CI runner), the classic
builder runs every step again, however little changed. Given `cache_from`, it takes a step
from one of those images instead (`Using cache`) when the step's parent and command match the
image's history — so a pulled earlier release gives back its `RUN pip install …` layers.

`HUB_CACHE_FROM` / `--cache-from`:
- `auto` (the default): before a release that builds, the repository's newest release (the
  highest version tag the registry lists, else `latest`, else a tag being released that the
  registry already holds, such as a `main` moved on every push), unless the daemon holds that
  tag already — then its own build cache serves, without a pull. A release named only by new
  tags (`sha-…`) has no such image: name one (`--cache-from main`).
- `none`: never.
- image references, or tags of the repository: always these (release and build).

With `cache_from`, the classic builder accepts a local cache hit only from an ancestor of one
of the named images, so the local images of the repository are named too: a developer's own
earlier builds stay cached. docs/benchmarks.md (row 5) measures what a pull costs and saves.

Several platforms: each build pulls the cache images for its own platform and names only those
(by image ID: one list digest stands for an image per platform). The classic builder matches a
step on an empty parent (`FROM scratch`) against any named image, whatever its platform, and
would build an arm64 image on an amd64 layer.

BuildKit (Engine 20.10, BuildKit v0.8) takes a step from the cache images' inline cache. An
image named in `cachefrom` as the registry holds it gives its steps, but the image built from
them carries no usable cache for the steps it took (moby/buildkit#1981): the registry importer
keys the layers it took by their compressed digests, the daemon's export keys the new image's
layers by their diff IDs, and the inline cache keeps only records whose layers it matched; so
the next fresh runner missed them all, every second release paid the full build. An image the
daemon holds under the very name in `cachefrom` is read from its own store instead (moby's
local inline-cache importer), keyed by diff IDs as the export is, and the image built from it
carries the cache on. So BuildKit's cache images are pulled too, by digest, and named as
pulled. BuildKit on this Engine downloads every layer of a step it takes anyway: the pull adds
only the layers above those steps. A name in the daemon's store stands for one image: a list
digest pulled for two platforms names the last one's image, so for one platform BuildKit's
cache image of a list is pulled and named by its own digest, and when several platforms are
built another repository's image (pulled by tag) is named as the registry holds it, unpulled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from hubtasks.errors import HubError
from hubtasks.pipeline.plan import Remote
from hubtasks.pipeline.session import Session
from hubtasks.pipeline.versions import LATEST, highest_in_line
from hubtasks.platforms import same_platform
from hubtasks.references import Repository, parse_pull_reference
from hubtasks.settings.keys import CACHE_AUTO, CACHE_NONE
from hubtasks.settings.resolve import Settings

if TYPE_CHECKING:
    from hubtasks.pipeline.gather import BuildSet
    from hubtasks.pipeline.protocols import Daemon

# Local images of the repository also named in `cache_from` (newest first).
LOCAL_SOURCES = 8


def newest_release(published: list[str]) -> str | None:
    """The highest released version tag the registry lists, else `latest`, else None."""
    highest = highest_in_line(published, LATEST)
    if highest is not None:
        return str(highest)
    return LATEST if LATEST in published else None


def cache_refs(
    settings: Settings,
    *,
    published: list[str] | None,
    local: Callable[[str], str | None],
    remote: Mapping[str, Remote | None] | None = None,
) -> list[str]:
    """The references to pull before a build. `published` is the registry's tag list (None
    when it was not read: `auto` then means none), `local(tag)` the image ID the daemon holds
    under a tag of the repository, `remote` what the registry holds under the planned tags."""
    repository = settings.require_repository()
    if settings.cache_from == (CACHE_NONE,):
        return []
    if settings.cache_from != (CACHE_AUTO,):
        return [resolve(item, repository) for item in settings.cache_from]
    remote = remote or {}
    newest = newest_release(published or [])
    if newest is None:  # e.g. `--tag main` on every push: what the tag holds now
        newest = next((name for name, held in remote.items() if held is not None), None)
    if newest is None:
        return []
    held = local(newest)
    known = remote.get(newest)
    if held is not None and (known is None or known.config_digest in (None, held)):
        return []  # the daemon built or pulled it: its own cache is at least as good
    if known is not None:
        return [f"{repository.local_name}@{known.digest}"]
    return [repository.ref(newest)]


def resolve(item: str, repository: Repository) -> str:
    """A `--cache-from` value as the daemon names it: a bare word is a tag of `repository`."""
    if not any(mark in item for mark in "/:@"):
        return repository.ref(item)
    image, reference = parse_pull_reference(item, source="HUB_CACHE_FROM")
    separator = "@" if ":" in reference else ":"  # a digest is algorithm:hex, a tag has no ':'
    return f"{image.local_name}{separator}{reference}"


def build_sources(
    settings: Settings, session: Session, refs: list[str], builds: BuildSet, buildkit: bool
) -> dict[str, list[str]]:
    """What each platform's build names in `cache_from` (platform → names), the `refs`
    pulled first (BuildKit building several platforms: only the repository's own)."""
    if not refs:
        return {}
    if buildkit and not _pull_first(session.engine_for(settings), builds):
        # BuildKit resolves them in the registry through the session and downloads only the
        # layers of the steps it takes.
        return {inputs.platform: list(refs) for inputs in builds.platforms}
    repository = settings.require_repository()
    pulled, named = list(refs), []
    if buildkit and builds.multi:
        # Another repository's image is pulled by tag, which would name only the last
        # platform's image: BuildKit resolves it in the registry, for each platform.
        pulled = [ref for ref in refs if _image(ref) == repository]
        named = [ref for ref in refs if ref not in pulled]
    return {
        # Any platform asked for (one foreign platform too): its own cache image.
        inputs.platform: pull_sources(
            settings, session, pulled, inputs.platform if inputs.requested else None, buildkit
        )
        + named
        for inputs in builds.platforms
    }


_RUN = re.compile(rb"^\s*RUN\s", re.IGNORECASE | re.MULTILINE)


def _pull_first(engine: Daemon, builds: BuildSet) -> bool:
    """Whether BuildKit's cache images are pulled before the build. Engine 23+ keeps the
    inline cache of the steps it took from an image named in the registry: no. Engine 20.10
    (BuildKit 0.8) drops it (moby/buildkit#1981), so the next fresh runner would run those
    steps again: pulled first when the Dockerfile runs something (a `RUN`). A Dockerfile of
    `COPY` steps has no slow step to keep: a pull of every layer would cost more than the
    steps it saves (those take the registry's layers as they are)."""
    if engine.inline_cache_from_registry():
        return False
    return any(_RUN.search(inputs.context.dockerfile_bytes) for inputs in builds.platforms)


def _image(ref: str) -> Repository:
    return parse_pull_reference(ref, source="HUB_CACHE_FROM")[0]


def pull_sources(
    settings: Settings,
    session: Session,
    refs: list[str],
    platform: str | None = None,
    buildkit: bool = False,
) -> list[str]:
    """Pull each of `refs` (progress shown like a push's) and return what the build names in
    `cache_from`: the images that arrived, then the repository's other local images. An image
    that cannot be pulled is a note, not an error: the build goes on without it. With
    `platform` (one build of several), each is pulled for that platform and only the images
    that arrived are named, by ID. With `buildkit`, only the images that arrived, by the
    references they were pulled by (BuildKit looks a name up in the daemon's store, not an
    ID)."""
    if not refs:
        return []
    for_platform = f" for {platform}" if platform else ""
    repository = settings.require_repository()
    engine, console = session.engine_for(settings), session.console
    pulled: dict[str, str] = {}  # image ID → reference
    for ref in refs:
        image, _ = parse_pull_reference(ref, source="HUB_CACHE_FROM")
        same_registry = image.registry == repository.registry and settings.token
        auth = settings.auth_config if same_registry else None
        try:
            exact = _exact(settings, session, ref, platform if buildkit else None)
            image_id = None
            if exact is not None:
                shown = ref if exact == ref else f"{ref} ({exact.rsplit('@', 1)[1][:19]})"
                console.stage("cache", f"pulling {shown}{for_platform} for its layers")
                with console.pushing(exact, stage="pull"):
                    image_id = engine.pull(
                        exact, auth, on_progress=console.push_progress, platform=platform
                    )
        except HubError as error:
            console.stage("cache", f"note: {error}; building without it")
            continue
        if image_id is None:
            console.stage(
                "cache", f"note: the registry has no {ref}{for_platform}; building without it"
            )
            continue
        if platform is not None and not _serves(engine, image_id, platform):
            # A single-platform image arrives whatever platform was asked for; named in the
            # build's cache_from, its steps would match this platform's `FROM scratch` ones.
            console.stage("cache", f"note: {ref} has no image{for_platform}; building without it")
            continue
        pulled.setdefault(image_id, exact or ref)
    if not pulled:
        return []
    if buildkit:
        return list(dict.fromkeys(pulled.values()))
    if platform is not None:
        return list(pulled)
    local = [row["id"] for row in engine.list_images(repository)]
    others = [i for i in dict.fromkeys(local) if i not in pulled][:LOCAL_SOURCES]
    return [*pulled.values(), *others]


def _serves(engine: Daemon, image_id: str, platform: str) -> bool:
    found = engine.inspect(image_id)
    return found is not None and same_platform(platform, found.platform)


def _exact(settings: Settings, session: Session, ref: str, platform: str | None) -> str | None:
    """What to pull `ref` by: another repository's image as named, the repository's by digest
    (None: not there). With `platform` (BuildKit), an image of a list by its own digest: a list
    digest pulled for two platforms names only the last one's image in the daemon's store."""
    if _image(ref) != settings.require_repository():
        return ref
    exact = by_digest(settings, session, ref)
    if exact is None or platform is None:
        return exact
    name, _, digest = exact.partition("@")
    record = session.registry_for(settings).image_record(digest)
    if record is None or not record.children:
        return exact
    found = (child for child, held in record.children if same_platform(platform, held))
    return next((f"{name}@{child}" for child in found), None)


def by_digest(settings: Settings, session: Session, ref: str) -> str | None:
    """`ref` of the repository as `name@digest` (asking the registry for a tag's digest), so
    that the pull leaves the daemon's tags where they are; None when the tag is not there."""
    name, at, _ = ref.partition("@")
    if at:
        return ref
    name, _, tag = name.rpartition(":")
    found = session.registry_for(settings).digest(tag)
    return f"{name}@{found}" if found else None
