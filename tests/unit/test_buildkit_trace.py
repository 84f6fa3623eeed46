"""BuildKit's trace messages decoded from wire bytes written out by hand (control.proto)."""

from __future__ import annotations

import base64

import pytest

from hubtasks.build.buildkit import messages, trace


def _field(number: int, payload: bytes) -> bytes:  # length-delimited, payloads under 128 bytes
    return bytes([number << 3 | 2, len(payload)]) + payload


_VERTEX = (
    _field(1, b"sha256:aa")
    + _field(3, b"[stage-0 2/3] RUN false")
    + b"\x20\x01"  # 4 cached = true
    + _field(5, b"\x08\x05")  # 5 started = {seconds: 5}
    + _field(7, b"exit code: 1")
)
_LOG = _field(1, b"sha256:aa") + b"\x18\x02" + _field(4, b"one\ntwo\nthr")  # 3 stream = 2
_WARNING = _field(1, b"sha256:aa") + _field(3, b"FromAsCasing") + _field(7, _field(1, b"\x08\x03"))
_STATUS = _field(1, b"sha256:aa") + _field(2, b"sha256:aa") + b"\x20\x0a\x28\x14"  # 4, 5 = 10, 20


def _aux(*fields: bytes) -> str:
    return base64.b64encode(b"".join(fields)).decode()


def test_decode_reads_vertexes_logs_warnings_and_progress():
    update = trace.decode(
        _aux(_field(1, _VERTEX), _field(2, _STATUS), _field(3, _LOG), _field(4, _WARNING))
    )
    (step,) = update.steps
    name = "[stage-0 2/3] RUN false"
    assert step == trace.Step("sha256:aa", name, True, 5.0, None, "exit code: 1")
    assert update.logs == (trace.Log("sha256:aa", 2, b"one\ntwo\nthr"),)
    assert update.progress == (trace.Progress("sha256:aa", "sha256:aa", 10, 20, False),)
    (warning,) = update.warnings
    assert (warning.text, warning.line) == ("FromAsCasing", 3)


def test_trace_keeps_each_steps_last_lines_across_messages_and_finds_the_failure():
    followed = trace.Trace()
    followed.add(trace.decode(_aux(_field(1, _VERTEX), _field(3, _LOG))))
    followed.add(trace.decode(_aux(_field(3, _field(1, b"sha256:aa") + _field(4, b"ee\nfour\n")))))
    failed = followed.failed()
    assert failed is not None
    assert failed.number == 1
    assert followed.last_lines(failed) == ["one", "two", "three", "four"]


@pytest.mark.parametrize("aux", ["not base64!", base64.b64encode(b"\x0a\x05ab").decode()])
def test_a_message_that_is_not_a_status_response_is_an_error(aux):
    with pytest.raises(messages.MessageError):
        trace.decode(aux)


def _vertex(digest: bytes, name: bytes, *more: bytes) -> bytes:
    return _field(1, _field(1, digest) + _field(3, name) + b"".join(more))


def test_plain_lines_read_like_docker_builds_progress_plain():
    lines = trace.PlainLines(trace.Trace())
    out = lines.lines(trace.decode(_aux(_vertex(b"d1", b"[1/2] FROM busybox"))))
    out += lines.lines(trace.decode(_aux(_vertex(b"d1", b"[1/2] FROM busybox", b"\x20\x01"))))
    started, done = _field(5, b"\x08\x05"), _field(6, b"\x08\x07")
    out += lines.lines(trace.decode(_aux(_vertex(b"d2", b"[2/2] RUN echo hi", started))))
    out += lines.lines(trace.decode(_aux(_field(3, _field(1, b"d2") + _field(4, b"hi\n")))))
    out += lines.lines(trace.decode(_aux(_vertex(b"d2", b"[2/2] RUN echo hi", started, done))))
    out += lines.lines(trace.decode(_aux(_field(4, _WARNING))))
    assert out == [
        "#1 [1/2] FROM busybox",
        "#1 CACHED",
        "#2 [2/2] RUN echo hi",
        "#2 hi",
        "#2 DONE 2.0s",
        "WARNING: FromAsCasing (line 3)",
    ]


def test_plain_lines_say_what_a_step_moved_once_it_is_done():
    lines = trace.PlainLines(trace.Trace())
    out = lines.lines(trace.decode(_aux(_vertex(b"d1", b"[internal] load build context"))))
    named = _field(1, b"transferring context:") + _field(2, b"d1")
    moving = named + b"\x20\x80\x10"  # current (4, a varint): 2048
    done = named + b"\x20\xc0\x84\x3d" + _field(8, b"\x08\x07")  # 1000000, completed
    out += lines.lines(trace.decode(_aux(_field(2, moving))))  # under way: nothing yet
    out += lines.lines(trace.decode(_aux(_field(2, done))))
    out += lines.lines(trace.decode(_aux(_field(2, done))))  # said once
    assert out == ["#1 transferring context: 1.00MB done"]


def test_a_failure_names_the_step_its_dockerfile_line_and_last_output():
    followed = trace.Trace()
    dockerfile = "FROM busybox:local\nRUN echo ok\nRUN echo one && \\\n    false\n"
    name = b"[stage-0 3/3] RUN echo one &&     false"
    followed.add(trace.decode(_aux(_vertex(b"d", name, _field(7, b"exit code: 1")))))
    followed.add(trace.decode(_aux(_field(3, _field(1, b"d") + _field(4, b"one\n")))))
    assert trace.failure(followed, dockerfile, "failed to solve") == (
        "at [stage-0 3/3] RUN echo one &&     false (Dockerfile line 3): exit code: 1; "
        "its last output: one"
    )
    assert trace.failure(trace.Trace(), dockerfile, "failed to solve") == "failed to solve"
