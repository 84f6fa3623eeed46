"""Pure decisions about tags: which are created, moved, skipped, held back or refused.

Inputs are facts already gathered (the local image, what the registry holds); the output is a
`Plan` that the executor carries out (release, push, promote) and `--dry-run` prints, with the
equivalent docker commands. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hubtasks.build.buildkit.options import buildx_command
from hubtasks.errors import ReleaseRefused
from hubtasks.pipeline.versions import (
    LATEST,
    Version,
    fan_out,
    floating_line,
    highest_in_line,
    parse_version,
)
from hubtasks.references import DOCKER_HUB, Repository


class Action(str, Enum):
    """What a release does with one tag: the one vocabulary of plans, results and output."""

    CREATE = "create"
    MOVE = "move"
    SKIP = "skip"  # the registry already holds these inputs (or this image) under the tag
    HOLD = "hold"  # a floating tag stays on a newer release
    REFUSE = "refuse"
    # Only before a build: the tag holds an image without our inputs label (pushed by another
    # tool or an older hubtasks), so only the built image's ID can decide.
    CHECK = "check"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def pushes(self) -> bool:
        return self in (Action.CREATE, Action.MOVE)

    @property
    def words(self) -> str:
        """How a person reads it (stderr); the value is what scripts read (stdout, --json)."""
        return _WORDS[self]


_WORDS = {
    Action.CREATE: "create",
    Action.MOVE: "move",
    Action.SKIP: "unchanged",
    Action.HOLD: "hold back",
    Action.REFUSE: "REFUSE",
    Action.CHECK: "check after the build",
}

CREATE, MOVE, SKIP, HOLD, REFUSE, CHECK = (
    Action.CREATE,
    Action.MOVE,
    Action.SKIP,
    Action.HOLD,
    Action.REFUSE,
    Action.CHECK,
)


@dataclass(frozen=True)
class Remote:
    """What the registry holds under one tag."""

    digest: str  # manifest digest, computed from the manifest's bytes
    config_digest: str | None  # the image ID it names, when it is a single-image manifest
    inputs: str | None = None  # our build-inputs label on that image, if it carries one


@dataclass(frozen=True)
class TagDecision:
    tag: str
    action: Action
    reason: str
    remote: Remote | None = None

    @property
    def pushes(self) -> bool:
        return self.action.pushes


@dataclass(frozen=True)
class Plan:
    """Every tag's decision, and how the image gets there: `build` when it has to be built
    and pushed; else `source`, an image the registry holds with the same inputs, is copied
    registry-side to the tags that need it (no build, no layer traffic)."""

    decisions: tuple[TagDecision, ...]
    build: bool = True
    source: Remote | None = None

    @property
    def refused(self) -> list[TagDecision]:
        return [d for d in self.decisions if d.action == REFUSE]

    @property
    def to_push(self) -> list[TagDecision]:
        return [d for d in self.decisions if d.pushes]

    def of(self, action: Action) -> list[str]:
        return [d.tag for d in self.decisions if d.action == action]


def platform_tag(tag: str, platform: str) -> str:
    """The tag one platform's image is pushed under: `v1.2.3` → `v1.2.3-linux-arm64`."""
    return f"{tag}-{platform.replace('/', '-')}"[:128]


def expand_tags(tags: list[str], *, semver: bool, latest: bool) -> list[str]:
    """The tags a release asks for: with `semver`, each version fans out; `latest` adds latest."""
    expanded: list[str] = []
    for tag in tags:
        version = parse_version(tag)
        expanded.extend(fan_out(version) if semver and version else [tag])
    if latest and not any((v := parse_version(t)) and v.is_prerelease for t in tags):
        expanded.append(LATEST)
    return list(dict.fromkeys(expanded))


def is_floating(tag: str) -> bool:
    return tag == LATEST or floating_line(tag) is not None


def is_immutable(tag: str) -> bool:
    """Version tags and `sha-…` tags name one build forever."""
    return parse_version(tag) is not None or tag.startswith("sha-")


def release_version(tags: list[str]) -> Version | None:
    """The version being released: the highest full version among the requested tags."""
    return max((v for v in map(parse_version, tags) if v), default=None)


def decide(
    tags: list[str],
    *,
    remote: Mapping[str, Remote | None],
    published: list[str],
    inputs: str | None = None,
    image_id: str | None = None,
    force: bool = False,
    built: bool = False,
) -> Plan:
    """Decide each tag, before any build. `inputs` is the build-inputs digest of what would
    be built; `image_id` the image when it is known (after a build, or a local image); `remote`
    maps each tag to what the registry holds under it; `published` is its whole tag list.

    A tag holding the same inputs is unchanged. A tag holding other inputs is refused when it
    is immutable (unless `force`), else moved. A tag holding an image without our label is
    compared by image ID — after the build when the ID is not known yet (CHECK). `built`: the
    build has happened, nothing is left to check (a multi-platform image has no image ID:
    only its inputs can call a tag unchanged)."""
    source = next((r for r in remote.values() if r and inputs and r.inputs == inputs), None)
    if image_id is None and source is not None:
        image_id = source.config_digest
    # With a source nothing is built, so nothing is left to check after a build: a tag
    # holding an image without our label holds another image (a list has no image ID).
    built = built or source is not None
    version = release_version(tags)
    decisions = tuple(
        _decide_tag(tag, remote.get(tag), inputs, image_id, version, published, force, built)
        for tag in tags
    )
    needs_image = any(d.pushes or d.action == CHECK for d in decisions)
    return Plan(decisions, build=needs_image and source is None, source=source)


def after_build(
    tags: list[str],
    *,
    remote: Mapping[str, Remote | None],
    published: list[str],
    inputs: str | None,
    image_id: str | None,
    force: bool,
) -> Plan:
    """The decisions only the built image can settle (a CHECK; a tag that moved meanwhile is
    read again by the caller): the plan of a release once its image exists. `image_id` is
    None for a multi-platform image (an index has none: only its inputs can call a tag
    unchanged)."""
    plan = decide(
        tags,
        remote=remote,
        published=published,
        inputs=inputs,
        image_id=image_id,
        force=force,
        built=True,
    )
    return Plan(plan.decisions, build=True, source=None)


def plan_push(
    tags: Sequence[str],
    *,
    remote: Mapping[str, Remote | None],
    local: Mapping[str, str],
    inputs: Mapping[str, str | None],
    force: bool,
) -> Plan:
    """`push` of local images: each tag decided on its own, from its local image (`local`:
    tag → image ID; `inputs`: image ID → its inputs label). Nothing is built."""
    decisions = tuple(
        decide(
            [name],
            remote=remote,
            published=[],
            inputs=inputs[local[name]],
            image_id=local[name],
            force=force,
        ).decisions[0]
        for name in tags
    )
    return Plan(decisions, build=False, source=None)


def approved_locally(plan: Plan) -> list[str]:
    """The tags the built image gets in the daemon: those it is, or will be, published under."""
    return [d.tag for d in plan.decisions if d.pushes or d.action == SKIP]


def refusal(plan: Plan, repository: Repository, what: str = "release") -> ReleaseRefused:
    """The error for a plan with refused tags: each names its tag and why; `what` is the
    task refused (release, push, promote)."""
    details = "; ".join(f"{repository.canonical(d.tag)} {d.reason}" for d in plan.refused)
    return ReleaseRefused(f"refusing to {what}, nothing was pushed: {details}", stage="plan")


def _decide_tag(
    tag: str,
    current: Remote | None,
    inputs: str | None,
    image_id: str | None,
    version: Version | None,
    published: list[str],
    force: bool,
    built: bool,
) -> TagDecision:
    if current is not None and (
        (inputs is not None and current.inputs == inputs)
        or (image_id is not None and current.config_digest == image_id)
    ):
        return TagDecision(tag, SKIP, "the registry holds these inputs", current)
    held = _held_back(tag, version, published, force)
    if held:
        return TagDecision(tag, HOLD, held, current)
    if current is None:
        return TagDecision(tag, CREATE, "new", None)
    if image_id is None and not built and (current.inputs is None or inputs is None):
        # Only an image ID (after a build) or a digest (a promotion) can tell.
        otherwise = "refused" if is_immutable(tag) and not force else "moved"
        unknown = "without the inputs label" if current.inputs is None else "of unknown inputs"
        reason = (
            f"holds {current.digest[:19]}, an image {unknown}; "
            f"unchanged if the image matches it, else {otherwise}"
        )
        return TagDecision(tag, CHECK, reason, current)
    what = "other inputs" if current.inputs is not None else "another image"
    return moved_or_refused(tag, current, f"built from {what}", force)


def decide_platform_tags(
    first: str,
    inputs: Mapping[str, str | None],
    remote: Mapping[str, Remote | None],
    *,
    force: bool,
) -> dict[str, TagDecision]:
    """Each platform's own tag (`platform_tag(first, platform)`, platform → its inputs digest)
    decided as any tag is, from that platform's inputs: unchanged when the registry holds them
    (that platform is not built again), refused when it holds other inputs and is immutable
    (`v1.2.3-linux-amd64`; unless `force`), else moved or created. Nothing is left to CHECK:
    a per-platform tag holding an image without our label holds another image."""
    decisions = {}
    for platform, digest in inputs.items():
        tag = platform_tag(first, platform)
        decisions[platform] = _decide_tag(
            tag, remote.get(tag), digest, None, None, [], force, built=True
        )
    return decisions


def moved_or_refused(tag: str, current: Remote, held: str, force: bool) -> TagDecision:
    """A tag the registry holds for another image (`held` says which): a version tag is
    immutable, refused unless `force`; any other tag moves."""
    if is_immutable(tag) and not force:
        kind = "version tags are" if parse_version(tag) is not None else "sha-… tags are"
        reason = f"holds {current.digest[:19]}, {held}; {kind} immutable (use --force to overwrite)"
        return TagDecision(tag, REFUSE, reason, current)
    reason = f"from {current.digest[:19]}" + (" (forced)" if is_immutable(tag) else "")
    return TagDecision(tag, MOVE, reason, current)


def _held_back(tag: str, version: Version | None, published: list[str], force: bool) -> str:
    """Why a floating tag stays where it is ("" when it may move): `latest` and `vX[.Y]`
    only move forward, and `latest` stays on the highest version once one exists."""
    if not is_floating(tag) or (force and version is None):
        return ""
    highest = highest_in_line(published, tag)
    if highest is None:
        return ""
    if version is None:
        if tag != LATEST:
            return ""
        return f"{highest} is the highest version; {tag} stays on it unless --force"
    if not version.is_prerelease and version < highest:
        return f"{highest} is newer; {tag} stays on it"
    return ""


LABEL_PREFIX = "org.opencontainers.image."
# The build-inputs digest on every image hubtasks builds (README: "Identity").
INPUTS_LABEL = "dev.hubtasks.inputs"


def image_labels(
    *,
    title: str,
    tags: list[str] | tuple[str, ...],
    revision: str | None,
    source: str | None,
    created_epoch: int | None,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """OCI labels. `created` is the commit time (or SOURCE_DATE_EPOCH), never "now", so that
    rebuilding one commit gives one image ID and a re-run release is a no-op."""
    import datetime

    labels = {f"{LABEL_PREFIX}title": title}
    version = release_version(list(tags))
    labels[f"{LABEL_PREFIX}version"] = str(version) if version else tags[0]
    if created_epoch is not None:
        moment = datetime.datetime.fromtimestamp(created_epoch, tz=datetime.timezone.utc)
        labels[f"{LABEL_PREFIX}created"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if revision:
        labels[f"{LABEL_PREFIX}revision"] = revision
    if source:
        labels[f"{LABEL_PREFIX}source"] = source
    labels.update(extra)
    return labels


@dataclass(frozen=True)
class BuildCommand:
    """One `docker build` of the plan: its platform (None: the daemon's), labels and args."""

    platform: str | None
    labels: Mapping[str, str]
    build_args: Mapping[str, str]
    # The BuildKit path: `docker buildx build` with these (target, secrets, network, no_cache,
    # pull; `options.buildx_command`'s keywords); None: the classic `docker build`.
    buildkit: Mapping[str, Any] | None = None


def equivalent_commands(
    *,
    registry: str,
    username: str,
    local_name: str,
    plan: Plan,
    dockerfile: str,
    context: str,
    builds: list[BuildCommand],
    cache_from: Sequence[str] = (),
) -> list[str]:
    """The plain docker commands that would do what the plan does, for every tag the real
    run may touch (a CHECK tag is pushed when the build differs from what it holds). Several
    platforms: one build and push per platform, then `docker manifest create/push`. The
    `cache_from` images are pulled before the build."""
    import shlex

    touched = [d.tag for d in plan.decisions if d.pushes or d.action == CHECK]
    server = "" if registry == DOCKER_HUB else f" {registry}"
    commands = [f"docker login{server} --username {shlex.quote(username)} --password-stdin"]
    if not touched:
        return commands
    if not plan.build and plan.source is not None:
        source = f"{local_name}@{plan.source.digest}"
        return commands + [
            f"docker buildx imagetools create --tag {local_name}:{name} {source}"
            for name in touched
        ]
    first = plan.decisions[0].tag
    if len(builds) > 1:
        children = []
        for build in builds:
            child = f"{local_name}:{platform_tag(first, build.platform or '')}"
            # Each platform's build takes the cache images pulled for its own platform.
            commands.extend(f"docker pull --platform {build.platform} {r}" for r in cache_from)
            commands.append(_build_command(build, child, dockerfile, context, cache_from))
            commands.append(f"docker push {child}")
            children.append(child)
        for name in touched:
            commands.append(f"docker manifest create {local_name}:{name} {' '.join(children)}")
            commands.append(f"docker manifest push {local_name}:{name}")
        return commands
    for_platform = f"--platform {builds[0].platform} " if builds[0].platform else ""
    commands.extend(f"docker pull {for_platform}{ref}" for ref in cache_from)
    commands.append(
        _build_command(builds[0], f"{local_name}:{first}", dockerfile, context, cache_from)
    )
    for name in touched:
        if name != first:
            commands.append(f"docker tag {local_name}:{first} {local_name}:{name}")
    commands.extend(f"docker push {local_name}:{name}" for name in touched)
    return commands


def _build_command(
    build: BuildCommand, ref: str, dockerfile: str, context: str, cache_from: Sequence[str]
) -> str:
    import shlex

    if build.buildkit is not None:
        return buildx_command(
            dockerfile=dockerfile,
            context=context,
            ref=ref,
            labels=build.labels,
            build_args=build.build_args,
            platform=build.platform,
            cache_from=cache_from,
            **build.buildkit,
        )
    words = ["docker", "build", "-f", dockerfile, "-t", ref]
    if build.platform:
        words += ["--platform", build.platform]
    for image in cache_from:
        words += ["--cache-from", image]
    for name, value in build.build_args.items():
        words += ["--build-arg", f"{name}={value}"]
    for name, value in build.labels.items():
        words += ["--label", f"{name}={value}"]
    words.append(context)
    return shlex.join(words)
