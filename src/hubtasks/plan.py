"""Pure decisions about tags: which are created, moved, skipped, held back or refused.

Inputs are facts already gathered (the local image, what the registry holds); the output is a
`Plan` that `release` carries out and `--dry-run` prints. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .references import DOCKER_HUB
from .versions import (
    LATEST,
    Version,
    fan_out,
    floating_line,
    highest_in_line,
    parse_version,
)

CREATE, MOVE, SKIP, HOLD, REFUSE = "create", "move", "skip", "hold", "refuse"
# Only in a dry run with no local image yet: the tag exists and the build will decide.
CHECK = "check"


@dataclass(frozen=True)
class Remote:
    """What the registry holds under one tag."""

    digest: str  # manifest digest
    config_digest: str | None  # the image ID it names, when it is a single-image manifest


@dataclass(frozen=True)
class TagDecision:
    tag: str
    action: str  # one of CREATE, MOVE, SKIP, HOLD, REFUSE, CHECK
    reason: str
    remote: Remote | None = None

    @property
    def pushes(self) -> bool:
        return self.action in (CREATE, MOVE)


@dataclass(frozen=True)
class Plan:
    decisions: tuple[TagDecision, ...]

    @property
    def refused(self) -> list[TagDecision]:
        return [d for d in self.decisions if d.action == REFUSE]

    @property
    def to_push(self) -> list[TagDecision]:
        return [d for d in self.decisions if d.pushes]

    def of(self, action: str) -> list[str]:
        return [d.tag for d in self.decisions if d.action == action]


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
    image_id: str | None,
    remote: Mapping[str, Remote | None],
    published: list[str],
    force: bool = False,
) -> Plan:
    """Decide each tag. `image_id` is the local image (None when unknown, as in a dry run
    before any build); `remote` maps each tag to what the registry holds under it;
    `published` is the registry's whole tag list."""
    version = release_version(tags)
    decisions = []
    for tag in tags:
        current = remote.get(tag)
        same = current is not None and image_id is not None and current.config_digest == image_id
        if same:
            decisions.append(TagDecision(tag, SKIP, "unchanged", current))
            continue
        if is_floating(tag) and version is not None and not version.is_prerelease:
            highest = highest_in_line(published, tag)
            if highest is not None and version < highest:
                decisions.append(
                    TagDecision(tag, HOLD, f"{highest} is newer; {tag} stays on it", current)
                )
                continue
        if current is None:
            decisions.append(TagDecision(tag, CREATE, "new", None))
        elif image_id is None:
            otherwise = "refused" if is_immutable(tag) and not force else "moved"
            reason = (
                f"exists ({current.digest[:19]}); skipped if the build matches, else {otherwise}"
            )
            decisions.append(TagDecision(tag, CHECK, reason, current))
        elif is_immutable(tag) and not force:
            decisions.append(
                TagDecision(
                    tag,
                    REFUSE,
                    f"exists with another image ({current.digest[:19]}); version tags are "
                    "immutable (use --force to overwrite)",
                    current,
                )
            )
        else:
            reason = f"from {current.digest[:19]}" + (" (forced)" if is_immutable(tag) else "")
            decisions.append(TagDecision(tag, MOVE, reason, current))
    return Plan(tuple(decisions))


LABEL_PREFIX = "org.opencontainers.image."


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


def equivalent_commands(
    *,
    registry: str,
    username: str,
    local_name: str,
    plan: Plan,
    dockerfile: str,
    context: str,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
) -> list[str]:
    """The plain docker commands that would do what the plan does: every tag the real run
    may tag or push (a `check` tag is pushed when the build differs from the registry's)."""
    import shlex

    first = plan.decisions[0].tag
    server = "" if registry == DOCKER_HUB else f" {registry}"
    build = ["docker", "build", "-f", dockerfile, "-t", f"{local_name}:{first}"]
    for name, value in build_args.items():
        build += ["--build-arg", f"{name}={value}"]
    for name, value in labels.items():
        build += ["--label", f"{name}={value}"]
    build.append(context)
    commands = [
        f"docker login{server} --username {shlex.quote(username)} --password-stdin",
        shlex.join(build),
    ]
    # CHECK: the real run pushes the tag unless the build matches what the registry holds.
    for decision in plan.decisions:
        if decision.tag != first and decision.action in (CREATE, MOVE, SKIP, CHECK):
            commands.append(f"docker tag {local_name}:{first} {local_name}:{decision.tag}")
    for decision in plan.decisions:
        if decision.pushes or decision.action == CHECK:
            commands.append(f"docker push {local_name}:{decision.tag}")
    return commands
