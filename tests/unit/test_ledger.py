"""The one record of what a command line wrote: marks, read-backs counted once."""

from __future__ import annotations

import threading

from hubtasks.pipeline.ledger import Ledger
from hubtasks.pipeline.results import PushedTag
from hubtasks.references import Repository

REPO = Repository("127.0.0.1:5000", "team/app")


def _tag(name: str) -> PushedTag:
    return PushedTag(REPO, name, "sha256:" + "a" * 64)


def test_since_a_mark_is_what_a_stage_wrote():
    ledger = Ledger()
    ledger.landed(_tag("a"))
    mark = ledger.mark()
    ledger.landed(_tag("b"))
    assert ledger.since(mark) == [_tag("b")]
    assert ledger.since() == [_tag("a"), _tag("b")]
    ledger.since().clear()  # a copy: the record cannot be changed from outside
    assert len(ledger.since()) == 2


def test_a_read_back_spares_one_verify_only():
    ledger = Ledger()
    ledger.read_back(_tag("a"))
    assert ledger.unverified([_tag("a"), _tag("b")]) == [_tag("b")]
    assert ledger.unverified([_tag("a")]) == [_tag("a")]  # pushed again: read again


def test_writes_from_several_workers_are_all_recorded():
    ledger = Ledger()
    workers = [
        threading.Thread(target=lambda n=n: [ledger.landed(_tag(f"t{n}-{i}")) for i in range(200)])
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len({item.tag for item in ledger.since()}) == 800


def test_a_write_interrupted_may_have_landed_and_a_failed_one_did_not():
    ledger = Ledger()
    with ledger.writing("r/app:a"):
        assert ledger.in_flight() == ["r/app:a"]
    assert ledger.in_flight() == []
    try:
        with ledger.writing("r/app:b"):
            raise RuntimeError("refused")
    except RuntimeError:
        pass
    assert ledger.in_flight() == []
    try:
        with ledger.writing("r/app:c"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert ledger.in_flight() == ["r/app:c"]
