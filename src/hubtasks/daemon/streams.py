"""Reading the daemon's JSON streams: a push's budget and what it said (`PushWatch`), a pull's
lines as build output, a classic build followed to its image ID or a `BuildError` naming the
step, and what to say when a foreign platform's RUN cannot run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hubtasks.daemon.messages import stream_error
from hubtasks.errors import BuildError, PushError
from hubtasks.platforms import same_platform
from hubtasks.references import Repository

OutputHandler = Callable[[str], None]
ProgressHandler = Callable[[Mapping[str, Any]], None]
BUILDKIT_HINT = (
    "; this build ran on the classic builder, which has no BuildKit features (RUN --mount, "
    "# syntax=): build with BuildKit (--builder buildkit, HUB_BUILDER; `inv doctor` says "
    "which builder this daemon gets)"
)


class PushWatch:
    """The time a push may take in all, and what its stream said meanwhile: layer uploads the
    registry refused (the daemon's "Retrying in N seconds") and layers it took."""

    def __init__(self, target: str, budget: float | None) -> None:
        self.target, self.budget = target, budget
        self.deadline = None if budget is None else time.monotonic() + budget
        self.retries = self.accepted = 0

    def check(self, line: Mapping[str, Any]) -> None:
        status = str(line.get("status") or "")
        if status.startswith("Retrying in"):
            self.retries += 1
        elif status == "Pushed":
            self.accepted += 1
        if self.deadline is None or time.monotonic() < self.deadline:
            return
        if self.retries and not self.accepted:
            why = "the registry refused every upload (the daemon kept retrying the layers)"
        elif self.retries:
            why = "the registry kept refusing uploads (the daemon kept retrying the layers)"
        else:
            why = "it was still going"
        raise PushError(
            f"push of {self.target} aborted after {self.budget:.0f}s (HUB_TIMEOUT): {why}",
            stage="push",
        )


def read_timeouts() -> tuple[type[BaseException], ...]:
    """What reading a daemon stream raises when a read waited longer than its timeout."""
    import requests
    import urllib3

    return (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError)


def pull_lines(on_output: OutputHandler) -> ProgressHandler:
    """A pull's progress as build output: only its digest and status lines."""

    def show(line: Mapping[str, Any]) -> None:
        status = str(line.get("status") or "")
        if status.startswith(("Digest", "Status")):
            on_output(f"{status}\n")

    return show


def follow_build(
    lines: Iterator[Mapping[str, Any]],
    what: str,
    names: tuple[str, str],
    on_output: OutputHandler,
    platform: str | None = None,
    foreign: bool = False,
) -> str | None:
    """Read the build stream to its end: output to `on_output`, an error line raised as a
    `BuildError` naming the step, the image ID from the `aux` line (or "Successfully built")."""
    step = None
    image_id = None
    said = ""  # what the current step printed
    for line in lines:
        text = line.get("stream")
        message = stream_error(line)
        if text:
            text = text.replace(*names)
            said += text
            if text.startswith("Step "):
                step, said = text.strip(), ""
            elif text.startswith("Successfully built ") and image_id is None:
                image_id = text.split()[-1]
            on_output(text)
        elif message is not None:
            message = message.replace(*names)
            where = f" at {step}" if step else ""
            hint = BUILDKIT_HINT if "buildkit" in message.lower() else ""
            cannot_run = "exec format error" in (message + said).lower()
            if cannot_run or (foreign and step and " : RUN " in step):
                hint = emulation_hint(platform, certain=cannot_run)
            raise BuildError(f"build of {what} failed{where}: {message}{hint}")
        elif line.get("status"):
            on_output(f"{line['status']} {line.get('progress', '')}".rstrip() + "\n")
        aux = line.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
    return image_id


def emulation_hint(platform: str | None, *, certain: bool) -> str:
    """What to do when a RUN step for another platform cannot run on the daemon."""
    arch = (platform or "/").split("/")[1] or "arm64"
    cause = "cannot run" if certain else "may not be able to run"
    return (
        f"; the daemon {cause} {platform or 'that platform'}'s programs: a RUN step for another "
        "platform needs binfmt emulation on the daemon's host (apt-get install "
        "qemu-user-static binfmt-support, or docker run --privileged --rm tonistiigi/binfmt "
        f"--install {arch}); `inv doctor --platform {platform}` checks it"
    )


def open_push_stream(
    docker: Any,
    api: Any,
    repository: Repository,
    tag: str,
    auth_config: Mapping[str, str],
    stall_timeout: float | None,
) -> tuple[Any, Iterator[Mapping[str, Any]]]:
    """The daemon's push response and its stream of JSON lines, each read of which waits
    at most `stall_timeout` (a read that times out closes the connection: urllib3 does on
    any read error). The request `APIClient.push(stream=True)` sends, made here so that
    the response is ours to close: a push past its budget is hung up on."""
    from urllib.parse import quote

    from docker.utils.json_stream import json_stream

    url = f"{api.base_url}/v{api.api_version}/images/{quote(repository.local_name, '/:')}/push"
    response = api.post(
        url,
        headers={"X-Registry-Auth": docker.auth.encode_header(dict(auth_config))},
        params={"tag": tag},
        stream=True,
        timeout=api.timeout if stall_timeout is None else max(stall_timeout, 1.0),
    )
    try:
        response.raise_for_status()
    except _requests_http_error() as error:
        failure = docker.errors.create_api_error_from_http_exception(error)
        response.close()
        raise failure from None
    # urllib3's own stream: each HTTP chunk as it arrives, and a read timeout as itself
    # (requests' iter_content would turn it into a ConnectionError).
    lines: Iterator[Any] = json_stream(response.raw.stream(None))
    return response, lines


def _requests_http_error() -> type[Exception]:
    import requests

    return requests.HTTPError


@contextmanager
def foreign_hints(
    platform: str | None,
    native: str,
    bases: Iterable[str],
    inspect: Callable[[str], Any],
) -> Iterator[None]:
    """A BuildKit build for another platform than the daemon's (`native`) that fails: a base
    image held only for another platform (`inspect` reads the local image), or a `RUN` the
    daemon cannot execute, said so."""
    try:
        yield
    except BuildError as error:
        if platform is None or native.startswith(platform):
            raise
        text = error.message
        for base in bases if "load metadata for" in text else ():
            local = inspect(base)
            if local and local.platform and not same_platform(platform, local.platform):
                raise error.evolve(
                    f"the base image {base} has no {platform} image here: the daemon holds "
                    f"it for {local.platform} only; push a {platform} version of {base}, or "
                    f"leave {platform} out of --platform (HUB_PLATFORMS)"
                ) from None
        cannot_run = "exec format error" in text.lower()
        if cannot_run or "] RUN " in text:
            raise error.evolve(text + emulation_hint(platform, certain=cannot_run)) from None
        raise
