"""Checks and decisions made before anything is built or pushed: the build context, the
`.env` file, the tags to publish and the labels to put on the image."""

from __future__ import annotations

from typing import Any

from hubtasks.build.gitinfo import GitState, read_git, why_no_git
from hubtasks.daemon.dockerignore import context_includes
from hubtasks.errors import (
    ConfigError,
    ContextLeakError,
)
from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.session import holds_token
from hubtasks.pipeline.versions import parse_version
from hubtasks.references import validate_tag
from hubtasks.settings.resolve import Settings


def check_context(settings: Settings) -> None:
    """Refuse a build context that would carry the token's `.env` into the image."""
    candidates = {settings.context / ".env"}
    if settings.env_file is not None:
        candidates.add(settings.env_file)
    for path in sorted(candidates):
        if not path.is_file() or not holds_token(path):
            continue
        if context_includes(settings.context, path, settings.docker_env.get("DOCKER_HOST", "")):
            ignore_file = settings.context / ".dockerignore"
            relative = path.resolve().relative_to(settings.context.resolve())
            raise ContextLeakError(
                f"refusing to build: the context '{settings.context}' would send {path}, which "
                f"holds HUB_TOKEN, to the daemon and possibly into the image; add the line "
                f"'{relative}' to {ignore_file}"
            )


_UNREAD: Any = object()


def resolve_tags(
    settings: Settings,
    git: GitState | None = _UNREAD,
    *,
    allow_dirty: bool = False,
    chained: tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """The tags to publish: this task's --tag, else those of an earlier stage of the same
    command line (`chained`: `inv build --tag v9 push` pushes v9 whatever HUB_TAGS says),
    else HUB_TAGS, else from git (exact tag at HEAD, else sha-<short>); then fanned out with
    `semver` and `latest`. Without `git` (what `read_git` gave), git is asked only when the
    tags come from it."""
    flagged = settings.source_of("tags").startswith("--")
    if settings.tags and (flagged or not chained):
        base = list(settings.tags)
    elif chained:
        base = list(chained)
    else:
        if git is _UNREAD:
            git = read_git(settings.cwd)
        if git is None:
            raise ConfigError(
                f"no tag given and {settings.cwd} {why_no_git(settings.cwd)}: pass --tag or "
                "set HUB_TAGS"
            )
        default = git.exact_tag or f"sha-{git.short}"
        validate_tag(default, source="the git tag at HEAD")
        if git.dirty and not allow_dirty:
            raise ConfigError(
                f"the work tree has uncommitted changes, so the default tag '{default}' would "
                "not name what is built; commit them, pass --tag, or pass --allow-dirty"
            )
        base = [default]
    if settings.semver and not any(parse_version(t) for t in base):
        raise ConfigError(
            f"--semver (HUB_SEMVER) needs a version tag like v1.2.3; got {', '.join(base)}"
        )
    return tuple(planning.expand_tags(base, semver=settings.semver, latest=settings.latest))


def labels_for(settings: Settings, git: GitState | None, tags: tuple[str, ...]) -> dict[str, str]:
    repository = settings.require_repository()
    return planning.image_labels(
        title=repository.path.rsplit("/", 1)[-1],
        tags=tags,
        revision=git.revision if git else None,
        source=git.remote_url if git else None,
        created_epoch=settings.source_date_epoch or (git.commit_time if git else None),
        extra=settings.labels,
    )
