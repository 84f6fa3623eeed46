"""Push progress on a terminal: a layer the registry already holds says "exists", with no
byte counts (it was never sent); an uploaded layer shows its bytes."""

from __future__ import annotations

import io
import re

from hubtasks.ui.progress import layer_status
from tests.helpers.consoles import make_console

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream rich takes for a terminal, so that the live progress is drawn into it."""

    def isatty(self) -> bool:
        return True


def drawn(*lines: dict) -> str:
    err = Terminal()
    console = make_console("rich", err=err)
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


def test_plain_progress_lines_say_only_what_is_known(monkeypatch):
    """Off a terminal: no "0 B of 0 B" line before anything moved, and no total the bytes
    sent have passed (the daemon's total is a layer's size before compression)."""
    from hubtasks.ui import progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 0.0)
    err = io.StringIO()
    console = make_console("plain", err=err)
    with console.pushing("reg/u/app:v1"):
        console.push_progress({"status": "Preparing", "id": "aaa"})
        console.push_progress(
            {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 500, "total": 1000}}
        )
        console.push_progress(
            {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 1100, "total": 1000}}
        )
    lines = [line for line in err.getvalue().splitlines() if "layers," in line]
    assert lines == [
        "[push]   0/1 layers, 500 B of 1.0 kB sent, " + lines[0].rsplit(", ", 1)[1],
        "[push]   0/1 layers, 1.1 kB sent, " + lines[1].rsplit(", ", 1)[1],
    ]


def test_plain_progress_says_the_registry_is_refusing_uploads(monkeypatch):
    """The daemon retrying refused uploads (issue 26 item 3): the line says so, not a rate."""
    from hubtasks.ui import progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 0.0)
    err = io.StringIO()
    console = make_console(err=err, mode="plain")
    with console.pushing("reg/u/app:v1"):
        console.push_progress({"status": "Preparing", "id": "aaa"})
        console.push_progress(
            {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 500, "total": 900}}
        )
        console.push_progress({"status": "Retrying in 5 seconds", "id": "aaa"})
        console.push_progress(
            {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 700, "total": 900}}
        )
    last = err.getvalue().strip().splitlines()[-1]
    assert "the registry is refusing uploads" in last, last
    assert "/s" not in last, last


def test_a_refused_layer_reads_refused_on_a_terminal():
    text = drawn(
        {"status": "Pushing", "id": "bbb", "progressDetail": {"current": 1000, "total": 2000}},
        {"status": "Retrying in 5 seconds", "id": "bbb"},
    )
    assert "refused, retrying in 5 seconds" in text, text
