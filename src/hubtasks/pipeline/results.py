"""What the stages return: the built image, each pushed tag, a whole release."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubtasks.pipeline import plan as planning
from hubtasks.pipeline.plan import Plan
from hubtasks.references import Repository


@dataclass(frozen=True)
class BuiltImage:
    repository: Repository
    image_id: str
    tags: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    platform: str = ""  # os/arch[/variant] it was built for


@dataclass(frozen=True)
class PushedTag:
    repository: Repository
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """`registry/namespace/name:tag@sha256:…`"""
        return self.repository.canonical(self.tag, self.digest)


@dataclass
class Release:
    """What a release did (or, with dry_run, would do)."""

    repository: Repository
    plan: Plan
    image: BuiltImage | None = None
    published: list[PushedTag] = field(default_factory=list)  # every tag now at this image
    timings: dict[str, float] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    dry_run: bool = False
    # A multi-platform release: each platform → the digest of its manifest in the index.
    platforms: dict[str, str] = field(default_factory=dict)
    # Each further destination (HUB_REPOSITORY's later words): its plan and tags.
    mirrors: list[Release] = field(default_factory=list)

    @property
    def digest(self) -> str | None:
        return self.published[0].digest if self.published else None

    @property
    def destinations(self) -> list[Release]:
        """This destination, then each further one."""
        return [self, *self.mirrors]

    @property
    def everywhere(self) -> list[PushedTag]:
        """Every tag published, in every destination, in order."""
        return [item for each in self.destinations for item in each.published]

    def _tags(self) -> list[dict[str, Any]]:
        digests = {p.tag: p.digest for p in self.published}
        return [
            {
                "tag": d.tag,
                "action": d.action,
                "reason": d.reason,
                "digest": digests.get(d.tag),
                "previous_digest": d.remote.digest if d.remote else None,
                "reference": self.repository.canonical(d.tag, digests[d.tag])
                if d.tag in digests
                else None,
            }
            for d in self.plan.decisions
        ]

    def destination_dict(self) -> dict[str, Any]:
        return {
            "image": str(self.repository),
            "digest": self.digest,
            "tags": self._tags(),
            "references": [p.reference for p in self.published],
        }

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable result (`--json`)."""
        return {
            "image": str(self.repository),
            "image_id": self.image.image_id if self.image else None,
            "digest": self.digest,
            "dry_run": self.dry_run,
            "tags": self._tags(),
            **{
                word: self.plan.of(action)
                for word, action in (
                    ("created", planning.CREATE),
                    ("moved", planning.MOVE),
                    ("skipped", planning.SKIP),
                    ("held", planning.HOLD),
                )
            },
            "platforms": dict(self.platforms),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "commands": self.commands,
            # Every destination, the first included: its tags and references.
            "destinations": [each.destination_dict() for each in self.destinations],
        }
