"""The GitHub Actions step outputs of a release: `image` (the first destination), `images`
(every destination, comma separated), `digest`, `tags` and `refs` (every destination's), and
for a multi-platform image `platforms` and `platform-digests`."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from hubtasks.errors import HubError

if TYPE_CHECKING:
    from hubtasks.pipeline.results import Release


def write_github_output(path: str, release: Release) -> None:
    """Append `image`, `digest`, `tags` (comma separated) and `refs` (one per line, in a
    heredoc with a random delimiter) to the file GitHub names in `GITHUB_OUTPUT`."""
    tags = ",".join(p.tag for p in release.published)
    refs = "\n".join(p.reference for p in release.everywhere)  # every destination's
    delimiter = f"hubtasks_{uuid.uuid4().hex}"
    try:
        _append(path, release, tags, refs, delimiter)
    except OSError as error:
        published = [p.reference for p in release.everywhere]
        raise HubError(
            f"GITHUB_OUTPUT {path}: cannot write the step outputs ({error.strerror or error}); "
            "the release itself is published",
            stage="github-output",
            pushed=published,
        ) from None


def _append(path: str, release: Release, tags: str, refs: str, delimiter: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(f"image={release.repository}\n")
        stream.write(f"images={','.join(str(d.repository) for d in release.destinations)}\n")
        stream.write(f"digest={release.digest or ''}\n")
        stream.write(f"tags={tags}\n")
        stream.write(f"refs<<{delimiter}\n{refs}\n{delimiter}\n")
        if release.platforms:
            stream.write(f"platforms={','.join(release.platforms)}\n")
            lines = "\n".join(f"{p}={d}" for p, d in release.platforms.items())
            stream.write(f"platform-digests<<{delimiter}\n{lines}\n{delimiter}\n")
