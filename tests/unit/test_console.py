"""Console: results on stdout, progress on stderr, plain text off a terminal, secrets never."""

from __future__ import annotations

import io
import time

import pytest

from hubtasks.pipeline.stopwatch import Stopwatch
from hubtasks.ui import console as console_module
from hubtasks.ui import progress as progress_module
from hubtasks.ui.console import HIDDEN, Console, choose_mode, human_size
from tests.helpers.consoles import make_console

SECRET = "s3cr3t-token"


@pytest.fixture
def streams():
    return io.StringIO(), io.StringIO()


def make(streams, mode="plain", **kwargs) -> Console:
    out, err = streams
    return make_console(mode, out=out, err=err, secrets=[SECRET], **kwargs)


def written(streams) -> str:
    return streams[0].getvalue() + streams[1].getvalue()


def _build(c: Console, *chunks: str) -> None:
    with c.building("reg/app:v1"):
        for chunk in chunks:
            c.build_output(chunk)


@pytest.mark.parametrize("mode", ["plain", "rich"])
@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.stage("login", f"password {SECRET} rejected"),
        lambda c: c.result(f"docker.io/u/app:{SECRET}"),
        lambda c: c.warn(f"token {SECRET} expires soon"),
        lambda c: c.json_result({"token": SECRET}),
        lambda c: _build(c, f"Step 1/2 : RUN echo {SECRET}\n", f"{SECRET}\n"),
        # a token split across two daemon chunks is still redacted: lines are whole first
        lambda c: _build(c, "Step 1/1 : RUN x\n", "echo s3cr3", "t-token\n"),
    ],
)
def test_secret_is_never_written(streams, mode, write):
    c = make(streams, mode=mode, verbose=True)
    write(c)
    text = written(streams)
    assert SECRET not in text
    assert HIDDEN in text


def test_stage_and_warn_go_to_stderr_results_to_stdout(streams):
    c = make(streams)
    c.stage("build", "using it")
    c.warn("careful")
    c.result("docker.io/u/app:v1@sha256:x")
    assert streams[0].getvalue() == "docker.io/u/app:v1@sha256:x\n"
    assert streams[1].getvalue() == "[build] using it\nwarning: careful\n"


def test_plain_build_prints_whole_lines_without_escapes(streams):
    c = make(streams)
    _build(c, "Step 1/2 : RUN x\n\x1b[31mred", " text\x1b[0m\r\nprogress 50%\rprogress 100%\n")
    err = streams[1].getvalue()
    assert err == "Step 1/2 : RUN x\nred text\nprogress 50%\nprogress 100%\n"
    assert "\x1b" not in err and "\r" not in err


def test_partial_line_is_printed_when_the_build_fails(streams):
    c = make(streams)
    with pytest.raises(RuntimeError), c.building("reg/app:v1"):
        c.build_output("Step 1/1 : RUN false\nlast words")
        raise RuntimeError("build failed")
    assert streams[1].getvalue().endswith("last words\n")


def test_rich_mode_dumps_the_whole_log_on_failure_only(streams):
    c = make(streams, mode="rich")
    _build(c, "Step 1/2 : RUN a\n", "detail-one\n", "Step 2/2 : RUN b\n")
    quiet_success = streams[1].getvalue()
    assert "Step 2/2 : RUN b" in quiet_success and "detail-one" not in quiet_success

    failing = io.StringIO(), io.StringIO()
    c = make(failing, mode="rich")
    with pytest.raises(RuntimeError), c.building("reg/app:v1"):
        c.build_output("Step 1/1 : RUN a\ndetail-two\n")
        raise RuntimeError
    assert "detail-two" in failing[1].getvalue()
    assert "build log (2 lines)" in failing[1].getvalue()


def test_rich_mode_shows_buildkit_steps_and_their_end_not_internal_ones(streams):
    c = make(streams, mode="rich")
    _build(
        c,
        "#1 [internal] load build definition\n#1 DONE 0.0s\n",
        "#5 [stage-0 2/3] RUN make\n#5 compiling\n#5 DONE 1.2s\n",
        "#6 [stage-0 3/3] COPY . /app\n#6 CACHED\n",
    )
    shown = streams[1].getvalue()
    assert "[stage-0 2/3] RUN make" in shown and "DONE 1.2s" in shown
    assert "[stage-0 3/3] COPY . /app" in shown and "CACHED" in shown
    assert "[internal]" not in shown and "compiling" not in shown  # the tail, not the log


def test_quiet_prints_only_results(streams):
    c = make(streams, mode="quiet")
    c.stage("login", "ok")
    c.warn("w")
    _build(c, "Step 1/1 : RUN a\nout\n")
    c.result("ref@sha256:x")
    assert streams[1].getvalue() == ""
    assert streams[0].getvalue() == "ref@sha256:x\n"


def test_configure_quiet_and_verbose(streams):
    c = make(streams)
    c.configure(verbose=True)
    assert c.verbose and c.mode == "plain"
    c.configure(quiet=True)
    assert c.mode == "quiet"


def test_plain_push_progress_is_periodic_and_verbose_shows_layers(streams, monkeypatch):
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 0.0)
    c = make(streams, verbose=True)
    with c.pushing("reg/app:v1"):
        c.push_progress(
            {
                "status": "Pushing",
                "id": "aaa",
                "progressDetail": {"current": 500_000, "total": 1_000_000},
            }
        )
        c.push_progress({"status": "Pushed", "id": "aaa", "progressDetail": {}})
        c.push_progress({"status": "Layer already exists", "id": "bbb"})
    err = streams[1].getvalue()
    assert "[push]   layer aaa: pushed" in err
    assert "[push]   layer bbb: exists" in err
    assert "of 1.0 MB sent" in err


def test_plain_pull_progress_uses_the_push_view_with_pull_words(streams, monkeypatch):
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 0.0)
    c = make(streams, verbose=True)
    with c.pushing("reg/app@sha256:abc", stage="pull"):
        c.push_progress({"status": "Pulling from app", "id": "v1"})  # the tag, not a layer
        c.push_progress(
            {
                "status": "Downloading",
                "id": "aaa",
                "progressDetail": {"current": 250_000, "total": 1_000_000},
            }
        )
        c.push_progress({"status": "Pull complete", "id": "aaa", "progressDetail": {}})
        c.push_progress({"status": "Already exists", "id": "bbb"})
    err = streams[1].getvalue()
    assert "[pull]   layer aaa: pull complete" in err
    assert "[pull]   layer bbb: exists" in err
    assert "of 1.0 MB received" in err
    assert "v1" not in err and "[push]" not in err


def test_plain_heartbeat_says_still_working(streams, monkeypatch):
    monkeypatch.setattr(console_module, "HEARTBEAT_INTERVAL", 0.0)
    c = make(streams)
    with c.activity("login", "checking the credentials"):
        time.sleep(1.3)
    assert "[login] still checking the credentials (1s)" in streams[1].getvalue()


def test_choose_mode(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("HUB_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert choose_mode(Tty()) == "rich"
    assert choose_mode(io.StringIO()) == "plain"
    assert choose_mode(Tty(), quiet=True) == "quiet"
    monkeypatch.setenv("TERM", "dumb")
    assert choose_mode(Tty()) == "plain"
    monkeypatch.setenv("HUB_PROGRESS", "plain")
    monkeypatch.setenv("TERM", "xterm")
    assert choose_mode(Tty()) == "plain"


@pytest.mark.parametrize("short", ["", "a", "ab", "abc"])
def test_secrets_shorter_than_4_chars_are_not_redacted(streams, short):
    c = make_console(out=streams[0], err=streams[1], secrets=[short])
    c.result("abc def")
    assert streams[0].getvalue() == "abc def\n"


def test_longer_secret_is_redacted_first():
    c = make_console(secrets=["abcd", "abcdefgh"])
    assert c.redact("xabcdefghx") == f"x{HIDDEN}x"


def test_human_size():
    assert human_size(None) == "?"
    assert human_size(999) == "999 B"
    assert human_size(2_048_000) == "2.0 MB"
    assert human_size(3_500_000_000) == "3.5 GB"


def test_stopwatch_accumulates_per_stage():
    watch = Stopwatch()
    with watch.time("push"):
        time.sleep(0.01)
    with watch.time("push"):
        time.sleep(0.01)
    assert watch.timings["push"] >= 0.02


def test_progress_from_the_settings_forces_the_mode_but_not_over_quiet():
    forced = make_console("rich")
    forced.configure(progress="plain")
    assert forced.mode == "plain"
    kept = make_console("plain")
    kept.configure(progress="auto")
    assert kept.mode == "plain"
    quiet = make_console("plain")
    quiet.configure(quiet=True, progress="rich")
    assert quiet.mode == "quiet"


def test_quiet_is_for_one_task_of_a_chain():
    """`inv build -q push`: only the build is quiet (the push printed nothing on stderr)."""
    console = make_console("plain")
    console.configure(quiet=True)  # the build task
    assert console.mode == "quiet"
    console.configure(progress="auto")  # the same task, once its settings are read
    assert console.mode == "quiet"
    console.configure(quiet=False)  # the push task
    assert console.mode == "plain"
