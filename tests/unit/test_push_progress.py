"""Push progress on a terminal: a layer the registry already holds says "exists", with no
byte counts (it was never sent); an uploaded layer shows its bytes."""

from __future__ import annotations

import io
import re

from hubtasks.console import Console, layer_status

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream rich takes for a terminal, so that the live progress is drawn into it."""

    def isatty(self) -> bool:
        return True


def drawn(*lines: dict) -> str:
    err = Terminal()
    console = Console(out=io.StringIO(), err=err, mode="rich")
    with console.pushing("reg/u/app:v1"):
        for line in lines:
            console.push_progress(line)
    return ESCAPES.sub("", err.getvalue())


def test_existing_layer_reads_exists_without_bytes():
    text = drawn(
        {"status": "Preparing", "id": "aaa"},
        {"status": "Layer already exists", "id": "aaa"},
        {"status": "Pushing", "id": "bbb", "progressDetail": {"current": 1000, "total": 2000}},
        {"status": "Pushed", "id": "bbb", "progressDetail": {}},
    )
    assert "exists" in text
    assert "already exists" not in text
    assert "1/1 bytes" not in text and "?/? bytes" not in text and "0/? bytes" not in text
    assert "2.0/2.0 kB" in text  # the uploaded layer keeps its byte count
    assert "pushed" in text


def test_layer_status_words():
    assert layer_status("Layer already exists") == "exists"
    assert layer_status("Mounted from u/base") == "mounted from u/base"
    assert layer_status("Pushed") == "pushed"
