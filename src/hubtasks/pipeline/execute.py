"""Execute: carry out a plan, and nothing the plan did not approve.

build (only when no image in the registry holds these inputs) → tag locally the tags the plan
approved → push the first through the daemon, copy the others registry-side (or copy them all
from the image the registry already holds) → verify each against the registry, digests
computed from the manifest bytes. Hooks run around each stage that runs. `release`, `push`,
`tag` and `promote` all go through here.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hubtasks.build.buildkit.options import BuildKitRun, refuse_on_classic, run_for
from hubtasks.daemon.credentials import credentials_for
from hubtasks.errors import BuildError, HubError, ReleaseRefused, VerifyError
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.cache import build_sources
from hubtasks.pipeline.gather import (
    BuildSet,
    Inputs,
    RegistryState,
    each_tag_or_raise,
)
from hubtasks.pipeline.hooks import Facts
from hubtasks.pipeline.plan import Plan, Remote, platform_tag
from hubtasks.pipeline.publish import (
    check_arrived,
    copy_tags,
    now_published,
    push_tags,
    warn_moved,
    with_progress,
)
from hubtasks.pipeline.results import BuiltImage, PushedTag
from hubtasks.pipeline.session import Session
from hubtasks.pipeline.stopwatch import Stopwatch
from hubtasks.platforms import same_platform
from hubtasks.references import Repository
from hubtasks.registry.manifests import ImageRecord, manifest_list
from hubtasks.settings.resolve import Settings
from hubtasks.ui.console import human_size


def facts_for(stage: str, repository: Repository, tags: tuple[str, ...] | list[str]) -> Facts:
    return Facts(stage=stage, image=str(repository), tags=list(tags))


@dataclass(frozen=True)
class Published:
    """Every requested tag now at the planned image; for a multi-platform image, each
    platform's manifest digest."""

    published: list[PushedTag]
    platforms: dict[str, str]


@dataclass
class Executor:
    """Runs the stages of one command for one repository; timings go to `watch`."""

    settings: Settings
    session: Session
    watch: Stopwatch
    # Where in the session's ledger a failure starts listing what landed (None: at this
    # push); a further destination of a release lists the whole release's writes.
    since: int | None = None

    @property
    def repository(self) -> Repository:
        return self.settings.require_repository()

    def build(
        self,
        builds: BuildSet,
        tags: tuple[str, ...],
        *,
        tag_now: bool,
        cache: list[str] | None = None,
    ) -> list[BuiltImage]:
        """Build the image for each platform (hooks once around them all), after pulling the
        `cache` images for the builds to reuse (`cache.pull_sources`). With `tag_now` the
        first platform's image gets every tag at once (the build task) and, for several
        platforms, each image its per-platform tag too; else the images stay untagged until
        the plan approves their tags."""
        session, repository = self.session, self.repository
        facts = facts_for("build", repository, tags)
        session.hooks.run("pre", facts)
        start = time.monotonic()
        cache_from: dict[str, list[str]] = {}  # platform → what its build names
        buildkit = self._buildkit()
        if cache:
            with self.watch.time("pull"):
                cache_from = build_sources(self.settings, session, cache, builds, bool(buildkit))
        images = [
            self._build_one(
                inputs, tags, builds.multi, cache_from.get(inputs.platform, []), buildkit
            )
            for inputs in builds.platforms
        ]
        if tag_now:
            engine = session.engine_for(self.settings)
            for name in tags:
                engine.tag(images[0].image_id, repository, name)
            if builds.multi:
                for image in images:
                    engine.tag(image.image_id, repository, platform_tag(tags[0], image.platform))
        facts.image_id = images[0].image_id
        facts.platforms = {image.platform: image.image_id for image in images}
        facts.timings["build"] = time.monotonic() - start
        session.hooks.run("post", facts)
        return images

    def _build_one(
        self,
        inputs: Inputs,
        tags: tuple[str, ...],
        multi: bool,
        cache_from: list[str],
        buildkit: dict[str, BuildKitRun],
    ) -> BuiltImage:
        settings, session, repository = self.settings, self.session, self.repository
        console, engine = session.console, session.engine_for(settings)
        target = repository.canonical(tags[0])
        for_platform = f" for {inputs.platform}" if inputs.requested else ""
        console.stage(
            "build",
            f"building {target}{for_platform} from {settings.dockerfile} "
            f"(context {settings.context})",
        )
        try:
            with self.watch.time("build"), console.building(target):
                image_id = engine.build(
                    context=inputs.context,
                    ref=None,
                    build_args=inputs.build_args,
                    on_output=console.build_output,
                    platform=inputs.platform if inputs.requested else None,
                    cache_from=cache_from,
                    **buildkit,
                )
        except HubError as error:
            raise error.evolve(stage=error.stage or "build") from None
        inspected = engine.inspect(image_id)
        if inspected is not None:
            image_id = inspected.id  # the full ID, whatever form the stream gave
        built_for = inspected.platform if inspected is not None else ""
        if inputs.requested and built_for and not same_platform(inputs.platform, built_for):
            raise BuildError(
                f"asked for {inputs.platform}, the daemon built {built_for}; "
                "it may not support building for other platforms",
                stage="build",
            )
        size = inspected.size if inspected else None
        console.stage("build", f"built {image_id[:19]}{for_platform} ({human_size(size)})")
        labels = inputs.context.final_labels  # with the inputs digest hashed while streaming
        return BuiltImage(
            repository, image_id, tags, labels=labels, size=size, platform=inputs.platform
        )

    def _buildkit(self) -> dict[str, BuildKitRun]:
        """`buildkit=` for the engine's build when the builder is BuildKit (HUB_BUILDER)."""
        settings, session = self.settings, self.session
        builder, why = session.engine_for(settings).builder(settings.builder)
        if builder != "buildkit":
            refuse_on_classic(settings, why)
            return {}
        stored = functools.partial(credentials_for, environment=settings.docker_env)
        return {"buildkit": run_for(settings, os.environ, session.console.add_secret, stored)}

    def tag_locally(self, image_id: str, tags: list[str], *, stage: str = "tag") -> None:
        """Give the local image the tags (hooks around it when `stage` is "tag")."""
        if not tags:
            return
        engine, repository = self.session.engine_for(self.settings), self.repository
        facts = facts_for("tag", repository, tags)
        facts.image_id = image_id
        self.session.hooks.run("pre", facts)
        with self.watch.time("tag"):
            for name in tags:
                engine.tag(image_id, repository, name)
        self.session.console.stage(stage, f"{image_id[:19]} tagged {', '.join(tags)}")
        self.session.hooks.run("post", facts)

    def push(
        self,
        plan: Plan,
        tags: tuple[str, ...],
        image_ids: Mapping[str, str | None],
        platform_images: list[BuiltImage] | None = None,
        *,
        prepare: Callable[[], None] | None = None,
        held: Mapping[str, str] | None = None,
    ) -> Published:
        """Get the plan's tags into the registry (hooks around it) and verify them; return
        every requested tag now at the planned image, and for a multi-platform image each
        platform's manifest digest. With `platform_images`, each is pushed under its
        per-platform tag and an index listing them (and the images of `held`, platform →
        digest, which the registry already holds under theirs) goes under the plan's tags.
        `prepare` runs
        first (after the pre hook) when a tag is to be written: a promotion brings the source
        image into the repository there."""
        settings, session, repository = self.settings, self.session, self.repository
        names = [d.tag for d in plan.to_push]
        facts = facts_for("push", repository, names)
        facts.image_id = next((i for i in image_ids.values() if i), None)
        # As after the build: each platform's image ID until the push gives manifest digests.
        facts.platforms = {image.platform: image.image_id for image in platform_images or ()}
        session.hooks.run("pre", facts)
        platforms: dict[str, str] = {}
        pushed: list[PushedTag] = []
        if names and prepare is not None:
            with self.watch.time("push"):
                prepare()
        # One place says what landed when a write or a check fails part-way: every tag this
        # push wrote (daemon pushes, copies, platform images, a list) is in `session.ledger`.
        before = session.ledger.mark() if self.since is None else self.since
        stage = "push"
        try:
            with self.watch.time("push"):
                if names and platform_images is not None:
                    pushed, platforms = self._push_index(
                        names, tags[0], platform_images, held or {}
                    )
                elif names and (plan.build or plan.source is None):
                    pushed = push_tags(settings, names, session=session, image_ids=image_ids)
                elif names and plan.source is not None:  # the registry holds these inputs
                    copy_tags(
                        settings, plan.source.digest, names, session, pushed, daemon_fallback=False
                    )
            stage = "verify"
            with self.watch.time("verify"):
                # A tag verified on its way (read before the copies were written) is read
                # once more if it is a version tag; `verify` reads the others after every write.
                self.still_ours(self.verify(pushed))
        except HubError as error:
            raise with_progress(error, session.ledger.since(before), stage) from None
        published = now_published(tags, pushed, plan, repository)
        facts.record_published(published, platforms, self.watch.timings)
        session.hooks.run("post", facts)
        warn_moved(settings, session, pushed)
        return Published(published, platforms)

    def _push_index(
        self, names: list[str], first: str, images: list[BuiltImage], held: Mapping[str, str]
    ) -> tuple[list[PushedTag], dict[str, str]]:
        """Push each platform's image through the daemon under its per-platform tag, check
        each manifest's config names the platform it was built for, PUT a manifest list of
        them and of the `held` images under the first tag and copy it to the others."""
        settings, session = self.settings, self.session
        registry = session.registry_for(settings)
        built = zip([i.platform for i in images], self._push_children(first, images), strict=True)
        kept = [
            (platform, _held_record(session, registry.image_record, platform, digest))
            for platform, digest in held.items()
        ]
        order = {platform: index for index, platform in enumerate(settings.platforms)}
        pairs = sorted([*built, *kept], key=lambda pair: order.get(pair[0], len(order)))
        records = [record for _, record in pairs]
        body, media_type = manifest_list(records)
        digest = session.retrying(
            f"putting the index as {self.repository.canonical(names[0])}",
            lambda: registry.put_manifest(names[0], body, media_type),
        )
        children = ", ".join(platform_tag(first, platform) for platform, _ in pairs)
        session.console.stage(
            "push", f"pushed {self.repository.canonical(names[0], digest)} (index of {children})"
        )
        pushed = [PushedTag(self.repository, names[0], digest)]
        session.ledger.landed(pushed[0])
        copy_tags(settings, digest, names[1:], session, pushed, daemon_fallback=False)
        return pushed, {r.platform or "": r.digest for r in records}

    def _push_children(self, first: str, images: list[BuiltImage]) -> list[ImageRecord]:
        """Each built platform's image pushed under its per-platform tag and read back: its
        config must name the platform it was built for."""
        if not images:
            return []
        settings, session = self.settings, self.session
        engine, registry = session.engine_for(settings), session.registry_for(settings)
        child_tags = {image.platform: platform_tag(first, image.platform) for image in images}
        for image in images:
            engine.tag(image.image_id, self.repository, child_tags[image.platform])
        children = push_tags(
            settings,
            list(child_tags.values()),
            session=session,
            image_ids={child_tags[i.platform]: i.image_id for i in images},
        )
        records = []
        for image, child in zip(images, children, strict=True):
            record = session.retrying(
                f"reading {child.reference}",
                functools.partial(registry.image_record, child.digest, after_push=True),
            )
            if record is None or not same_platform(image.platform, record.platform or ""):
                found = record.platform if record else "nothing"
                raise VerifyError(
                    f"{child.reference} should be {image.platform}, the registry holds {found}"
                )
            records.append(record)
        return records

    def still_ours(self, pushed: list[PushedTag]) -> None:
        """After every write, one more read of each version tag of `pushed`: another release
        of the same version may have overwritten it. A tag that holds another image is an
        error naming what it holds; this run's digest is never reported for it."""
        mine = [item for item in pushed if planning.is_immutable(item.tag)]
        if not mine:
            return
        found = self._digests_now(mine, "reading {} again")
        for item, now in zip(mine, found, strict=True):
            if now != item.digest:
                raise self._taken(item, now)

    def _digests_now(self, pushed: list[PushedTag], what: str) -> list[str | None]:
        """What the registry serves now under each pushed tag (the sha256 of the manifest
        bytes), read side by side; `what` names a read in a failure ("verify of {}")."""
        registry = self.session.registry_for(self.settings)
        return each_tag_or_raise(
            registry,
            self.session,
            [item.tag for item in pushed],
            lambda client, name: client.digest(name, after_push=True),
            lambda name: what.format(registry.repository.canonical(name)),
        )

    def _taken(self, item: PushedTag, now: str | None) -> ReleaseRefused:
        """A version tag this run wrote that now holds another image: it landed, but is no
        longer there, so it is not "already pushed" in the error either."""
        self.session.ledger.withdrawn(item)
        return ReleaseRefused(
            f"{item.repository.canonical(item.tag)} was taken by another run: it holds "
            f"{now}, not this run's {item.digest}; version tags are immutable, so this run's "
            "image is not published under it",
            stage="verify",
        )

    def verify(self, pushed: list[PushedTag]) -> list[PushedTag]:
        """Read every pushed tag back: the sha256 of the manifest bytes the registry serves
        must be the digest the push reported. Returns the ones a read-back had checked on the
        way (before later writes), which are not read here."""
        if not pushed:
            return []
        unread = self.session.ledger.unverified(pushed)
        if unread:
            with self.session.console.activity(
                "verify", f"asking the registry for {', '.join(p.tag for p in unread)}"
            ):
                found = self._digests_now(unread, "verify of {}")
            for item, remote in zip(unread, found, strict=True):
                if remote not in (None, item.digest) and planning.is_immutable(item.tag):
                    raise self._taken(item, remote)
                check_arrived(item, remote)
        for item in pushed:
            self.session.console.stage("verify", f"{item.reference} is in the registry")
        return [item for item in pushed if item not in unread]


@dataclass(frozen=True)
class Outcome:
    """What a release's execution did: the plan followed (settled after a build), the images
    built, the tags published and, for a multi-platform image, each platform's digest."""

    plan: Plan
    images: list[BuiltImage]
    published: list[PushedTag]
    platforms: dict[str, str]


def _held_record(
    session: Session,
    read: Callable[[str], ImageRecord | None],
    platform: str,
    digest: str,
) -> ImageRecord:
    """The registry's record of a platform's image it already holds (planned unchanged)."""
    record = session.retrying(f"reading {digest[:19]}", lambda: read(digest))
    if record is None or not same_platform(platform, record.platform or ""):
        found = record.platform if record else "nothing"
        raise VerifyError(f"{digest} should be {platform}, the registry holds {found}")
    return record


def fresh_remote(
    executor: Executor, plan: Plan, state: RegistryState
) -> tuple[dict[str, Remote | None], list[str]]:
    """What each version tag the plan would write holds now, read again right before the
    writes (a build takes a while: another release of this version may have landed since the
    registry was read), and the tags that changed meanwhile."""
    names = [d.tag for d in plan.decisions if planning.is_immutable(d.tag) and d.action in _WRITES]
    remote = dict(state.remote)
    if not names:
        return remote, []
    session, repository = executor.session, executor.repository
    records = each_tag_or_raise(
        session.registry_for(executor.settings),
        session,
        names,
        lambda client, name: client.image_record(name),
        lambda name: f"reading {repository.canonical(name)}",
    )
    changed = []
    for name, record in zip(names, records, strict=True):
        before = state.remote.get(name)
        if (record.digest if record else None) == (before.digest if before else None):
            continue
        changed.append(name)
        remote[name] = (
            Remote(record.digest, record.config_digest, record.labels.get(planning.INPUTS_LABEL))
            if record
            else None
        )
    return remote, changed


def raced(plan: Plan, changed: list[str], repository: Repository) -> ReleaseRefused:
    """A version tag another run published while this one built: refused, naming the winner."""
    won = [d for d in plan.refused if d.tag in changed and d.remote is not None]
    if not won:
        return planning.refusal(plan, repository)
    details = "; ".join(
        f"{repository.canonical(d.tag)} was published by another run while this one built: "
        f"it holds {d.remote.digest if d.remote else '?'}"
        for d in won
    )
    return ReleaseRefused(f"refusing to release, nothing was pushed: {details}", stage="plan")


def release(
    executor: Executor,
    plan: Plan,
    *,
    tags: tuple[str, ...],
    builds: BuildSet,
    state: RegistryState,
    force: bool,
    cache: list[str] | None = None,
    held: Mapping[str, str] | None = None,
) -> Outcome:
    """Carry out a release plan: build when it says so (then the plan settles what only the
    built image could: `plan.after_build`), tag locally what it approves, push or copy,
    verify. `held` (`plan_platform_tags`): platforms whose registry image goes into the list
    as it is, not built again."""
    images: list[BuiltImage] = []
    image_id = plan.source.config_digest if plan.source else None
    session, repository = executor.session, executor.repository
    if plan.build:
        building = BuildSet(tuple(i for i in builds.platforms if i.platform not in (held or {})))
        if building.platforms:
            images = executor.build(building, tags, tag_now=False, cache=cache)
        image_id = None if builds.multi else images[0].image_id
        remote, changed = fresh_remote(executor, plan, state)
        plan = planning.after_build(
            list(tags),
            remote=remote,
            published=state.published,
            inputs=builds.digest,
            image_id=image_id,
            force=force,
        )
        session.console.plan_lines(plan, repository)
        if plan.refused:
            raise raced(plan, changed, repository)
        if not builds.multi:
            executor.tag_locally(images[0].image_id, planning.approved_locally(plan))
    # A list to make only when this run builds (or holds) its platforms' images; else the
    # registry holds the release's list, and new tags are copies of it.
    children = images if builds.multi and plan.build else None
    done = executor.push(plan, tags, dict.fromkeys(tags, image_id), children, held=held)
    platforms = done.platforms
    if not platforms and done.published:
        platforms = dict(state.indexes.get(done.published[0].digest, {}))
    return Outcome(plan, images, done.published, platforms)


_WRITES = (planning.CREATE, planning.MOVE, planning.CHECK)
