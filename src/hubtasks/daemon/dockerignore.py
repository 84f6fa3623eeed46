"""What `.dockerignore` lets into the build context, decided as the docker CLI decides it on
Linux: the SDK's matcher, matching case-sensitively."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubtasks.build.context import ignore_patterns
from hubtasks.daemon.sdk import import_docker
from hubtasks.errors import ConfigError


def context_includes(context: Path, path: Path, docker_host: str = "") -> bool:
    """Whether `path` would be sent in the build context, honouring `.dockerignore`."""
    import_docker(docker_host)
    try:
        relative = path.resolve().relative_to(context.resolve())
    except ValueError:
        return False
    return not _matcher(ignore_patterns(context)).matches(str(relative))


def context_paths(context: Path, docker_host: str = "") -> tuple[str, ...]:
    """What `.dockerignore` lets through, as the CLI decides it: relative paths, sorted. The
    Dockerfile is not forced in: hubtasks sends a generated copy."""
    import_docker(docker_host)
    root = context.resolve()
    try:
        return tuple(sorted(_matcher(ignore_patterns(context)).walk(str(root))))
    except OSError as error:  # a folder that cannot be listed: the CLI refuses too
        where = error.filename or root
        raise ConfigError(
            f"cannot read {where} in the build context ({error.strerror or error}); fix its "
            "permissions or list it in .dockerignore"
        ) from None


def _matcher(patterns: list[str]) -> Any:
    """The SDK's `.dockerignore` matcher, matching case-sensitively as the Docker CLI does on
    Linux (the SDK lower-cases names and patterns: `build` also dropped `Build/`)."""
    from docker.utils import build
    from docker.utils.fnmatch import fnmatchcase

    class CasePattern(build.Pattern):
        def match(self, filepath: str) -> bool:
            return bool(fnmatchcase(build.normalize_slashes(filepath), self.cleaned_pattern))

    matcher = build.PatternMatcher([])
    matcher.patterns = [p for p in map(CasePattern, patterns) if p.dirs]
    matcher.patterns.append(CasePattern("!.dockerignore"))  # as the SDK: always sent
    return matcher
