"""What one command line wrote to registries: the one record of what landed.

Every write (a daemon push, a manifest copy, a platform image, a list) is recorded as it lands,
by the stage that made it; a failure part-way, an interruption and the final report read it.
A read-back that already checked a pushed tag's bytes is remembered here too, so verify does
not read that tag twice, and so is every write under way: an interruption names those as
"may have landed" (dockerd finishes a push whose client hung up). Nothing else keeps this
state; it is written only through these methods (from the workers of a parallel copy too,
hence the lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubtasks.pipeline.results import PushedTag


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._landed: list[PushedTag] = []
        self._read_back: set[PushedTag] = set()
        self._writing: list[str] = []

    @contextmanager
    def writing(self, reference: str) -> Iterator[None]:
        """A write to `reference` is under way inside this block. An error ends it (the write
        failed); an interruption (`KeyboardInterrupt`, a signal) leaves it listed, because the
        registry may still take it."""
        with self._lock:
            self._writing.append(reference)
        try:
            yield
        except Exception:
            self._done(reference)
            raise
        self._done(reference)

    def _done(self, reference: str) -> None:
        with self._lock:
            self._writing.remove(reference)

    def in_flight(self) -> list[str]:
        """The references whose write was under way and not answered: they may have landed."""
        with self._lock:
            return list(dict.fromkeys(self._writing))

    def landed(self, item: PushedTag) -> None:
        """`item` is in the registry now (its write was answered)."""
        with self._lock:
            self._landed.append(item)

    def withdrawn(self, item: PushedTag) -> None:
        """`item` landed, but another writer replaced it since: no longer this run's."""
        with self._lock:
            self._landed = [landed for landed in self._landed if landed != item]

    def mark(self) -> int:
        """A point to ask `since` about: what a stage wrote from here on."""
        with self._lock:
            return len(self._landed)

    def since(self, mark: int = 0) -> list[PushedTag]:
        """Every tag that landed after `mark` (all of them by default), in order."""
        with self._lock:
            return list(self._landed[mark:])

    def read_back(self, item: PushedTag) -> None:
        """The registry served `item`'s tag at its digest after the push (bytes checked)."""
        with self._lock:
            self._read_back.add(item)

    def unverified(self, items: Iterable[PushedTag]) -> list[PushedTag]:
        """Those of `items` no read-back has checked yet; each read counts for one push, so
        the others are forgotten as they are handed out."""
        items = list(items)
        with self._lock:
            found = [item for item in items if item not in self._read_back]
            self._read_back.difference_update(items)
        return found
