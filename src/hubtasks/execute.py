"""Execute: carry out a plan, and nothing the plan did not approve.

build (only when no image in the registry holds these inputs) → tag locally the tags the plan
approved → push the first through the daemon, copy the others registry-side (or copy them all
from the image the registry already holds) → verify each against the registry, digests
computed from the manifest bytes. Hooks run around each stage that runs. `release`, `push` and
`tag` all go through here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from . import plan as planning
from .cache import pull_sources
from .console import Stopwatch, human_size
from .errors import ReleaseRefused, VerifyError
from .gather import Inputs, RegistryState, each_tag_or_raise
from .hooks import Facts
from .plan import Plan
from .publish import copy_tags, now_published, push_tags, refusal
from .references import Repository
from .results import BuiltImage, PushedTag
from .session import Session
from .settings import Settings


def facts_for(stage: str, repository: Repository, tags: tuple[str, ...] | list[str]) -> Facts:
    return Facts(stage=stage, image=str(repository), tags=list(tags))


@dataclass
class Executor:
    """Runs the stages of one command for one repository; timings go to `watch`."""

    settings: Settings
    session: Session
    watch: Stopwatch

    @property
    def repository(self) -> Repository:
        return self.settings.require_repository()

    def build(
        self,
        inputs: Inputs,
        tags: tuple[str, ...],
        *,
        tag_now: bool,
        cache: list[str] | None = None,
    ) -> BuiltImage:
        """Build the image (hooks around it), after pulling the `cache` images for the build
        to reuse (`cache.pull_sources`). With `tag_now` it gets every tag at once (the build
        task); else it stays untagged until the plan approves its tags."""
        settings, session, repository = self.settings, self.session, self.repository
        console, engine = session.console, session.engine_for(settings)
        facts = facts_for("build", repository, tags)
        session.hooks.run("pre", facts)
        target = repository.canonical(tags[0])
        start = time.monotonic()
        cache_from: list[str] = []
        if cache:
            with self.watch.time("pull"):
                cache_from = pull_sources(settings, session, cache)
        console.stage(
            "build",
            f"building {target} from {settings.dockerfile} (context {settings.context})",
        )
        with self.watch.time("build"), console.building(target):
            image_id = engine.build(
                context=inputs.context,
                ref=repository.ref(tags[0]) if tag_now else None,
                build_args=settings.build_args,
                on_output=console.build_output,
                cache_from=cache_from,
            )
        inspected = engine.inspect(image_id)
        if inspected is not None:
            image_id = inspected.id  # the full ID, whatever form the stream gave
        if tag_now:
            for name in tags[1:]:
                engine.tag(image_id, repository, name)
        size = inspected.size if inspected else None
        done = f"tagged {', '.join(tags)}" if tag_now else "untagged until the plan approves"
        console.stage("build", f"built {image_id[:19]} ({human_size(size)}) {done}")
        facts.image_id = image_id
        facts.timings["build"] = time.monotonic() - start
        session.hooks.run("post", facts)
        labels = dict(inputs.context.labels)
        return BuiltImage(repository, image_id, tags, labels=labels, size=size)

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
        self, plan: Plan, tags: tuple[str, ...], image_ids: Mapping[str, str | None]
    ) -> list[PushedTag]:
        """Get the plan's tags into the registry (hooks around it) and verify them; return
        every requested tag now at the planned image."""
        settings, session, repository = self.settings, self.session, self.repository
        names = [d.tag for d in plan.to_push]
        facts = facts_for("push", repository, names)
        facts.image_id = next((i for i in image_ids.values() if i), None)
        session.hooks.run("pre", facts)
        with self.watch.time("push"):
            if not names:
                pushed = []
            elif plan.build or plan.source is None:
                pushed = push_tags(settings, names, session=session, image_ids=image_ids)
            else:
                pushed = []
                copy_tags(
                    settings, plan.source.digest, names, session, pushed, daemon_fallback=False
                )
        with self.watch.time("verify"):
            self.verify(pushed)
        published = now_published(tags, pushed, plan, repository)
        facts.refs = [p.reference for p in published]
        facts.digest = published[0].digest if published else None
        facts.timings.update(self.watch.timings)
        session.hooks.run("post", facts)
        return published

    def verify(self, pushed: list[PushedTag]) -> None:
        """Read every pushed tag back: the sha256 of the manifest bytes the registry serves
        must be the digest the push reported."""
        if not pushed:
            return
        registry = self.session.registry_for(self.settings)
        with self.session.console.activity(
            "verify", f"asking the registry for {', '.join(p.tag for p in pushed)}"
        ):
            found = each_tag_or_raise(
                registry,
                self.session,
                [item.tag for item in pushed],
                lambda client, name: client.digest(name),
                lambda name: f"verify of {registry.repository.canonical(name)}",
            )
        for item, remote in zip(pushed, found, strict=True):
            target = item.repository.canonical(item.tag)
            if remote is None:
                raise VerifyError(
                    f"{target} was pushed but the registry does not list it; run the release "
                    "again",
                    stage="verify",
                )
            if remote != item.digest:
                raise VerifyError(
                    f"{target} points at {remote} in the registry, not at the pushed "
                    f"{item.digest}; another push may have raced this one",
                    stage="verify",
                )
            self.session.console.stage("verify", f"{item.reference} is in the registry")


def release(
    executor: Executor,
    plan: Plan,
    *,
    tags: tuple[str, ...],
    inputs: Inputs,
    state: RegistryState,
    force: bool,
    cache: list[str] | None = None,
) -> tuple[Plan, BuiltImage | None, list[PushedTag]]:
    """Carry out a release plan: build when it says so (after pulling the `cache` images),
    then decide the tags only the built image could decide, tag locally what it approves,
    push or copy, verify."""
    image = None
    if plan.build:
        image = executor.build(inputs, tags, tag_now=False, cache=cache)
        plan = planning.decide(
            list(tags),
            remote=state.remote,
            published=state.published,
            inputs=inputs.digest,
            image_id=image.image_id,
            force=force,
        )
        plan = Plan(plan.decisions, build=True, source=None)
        report_plan(plan, executor.repository, executor.session)
        if plan.refused:
            raise refuse(plan, executor.repository)
        approved = [d.tag for d in plan.decisions if d.pushes or d.action == planning.SKIP]
        executor.tag_locally(image.image_id, approved)
    image_id = image.image_id if image else (plan.source.config_digest if plan.source else None)
    published = executor.push(plan, tags, dict.fromkeys(tags, image_id))
    return plan, image, published


def refuse(plan: Plan, repository: Repository) -> ReleaseRefused:
    error = refusal(plan, repository)
    return error.evolve(stage="plan")  # type: ignore[return-value]


_WORDS = {
    planning.CREATE: "create",
    planning.MOVE: "move",
    planning.SKIP: "unchanged",
    planning.HOLD: "hold back",
    planning.REFUSE: "REFUSE",
    planning.CHECK: "check after the build",
}


def report_plan(plan: Plan, repository: Repository, session: Session) -> None:
    how = ""
    if plan.to_push and not plan.build and plan.source is not None:
        how = f" (copy of {plan.source.digest[:19]}, no build)"
    for d in plan.decisions:
        suffix = how if d.pushes else ""
        session.console.stage(
            "plan", f"{repository.canonical(d.tag)}: {_WORDS[d.action]} ({d.reason}){suffix}"
        )

