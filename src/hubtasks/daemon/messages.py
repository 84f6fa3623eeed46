"""What the daemon says, read once: a registry's error code or HTTP status inside a push or
login message, a network failure, an error line in a JSON stream, the exceptions a Docker SDK
or requests error wraps. Pure: no Docker import."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hubtasks.errors import AuthError, HubError, PushError
from hubtasks.references import Repository
from hubtasks.registry.transport import immutable_refusal, says_immutable

# The daemon prints a registry's error as "<code, lower case, spaces for _>: <message>"
# (distribution's errcode); the HTTP status each code stands for.
_REGISTRY_CODES = {
    "unauthorized": 401,
    "denied": 403,
    "name unknown": 404,
    "manifest unknown": 404,
    "blob unknown": 404,
    "blob upload unknown": 404,
    "unsupported": 405,
    "toomanyrequests": 429,
    "unknown": 500,
    "unavailable": 503,
}
_UNEXPECTED_STATUS = re.compile(r"unexpected http status: (\d{3})", re.IGNORECASE)
# What Go's net/http and the daemon say when the network, not the registry, failed.
_NETWORK_TROUBLE = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "eof",
    "i/o timeout",
    "timeout",
    "no route to host",
    "network is unreachable",
    "temporarily unavailable",
    "tls handshake",
)


def short_error(error: BaseException) -> str:
    """The most useful single line of a Docker SDK or requests error."""
    explanation = getattr(error, "explanation", None)
    text = str(explanation or error).strip()
    return " ".join(text.split())


def stream_error(line: Mapping[str, Any]) -> str | None:
    """The message of an error line in a daemon's JSON stream (build, pull, push, load), on
    one line; None for any other line."""
    if "error" not in line and "errorDetail" not in line:
        return None
    detail = line.get("errorDetail") or {}
    return " ".join(str(detail.get("message") or line.get("error") or "").split())


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception it wraps: requests and urllib3 keep the OSError that
    started it in `__cause__`, `__context__`, `reason` or `args`."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = (current.__cause__, current.__context__, getattr(current, "reason", None))
        todo.extend(x for x in (*nested, *current.args) if isinstance(x, BaseException))


@dataclass(frozen=True)
class DaemonMessage:
    """What a daemon's error message says, as fields: the registry's HTTP status when it names
    one, and whether trying again may help."""

    status: int | None
    transient: bool
    immutable: bool = False  # the registry's tag immutability refused the write


def read_daemon_message(message: str) -> DaemonMessage:
    """Read a daemon's push (or login) error message once: a registry error code prefix
    (`denied: …`, `toomanyrequests: …`), an "unexpected HTTP status: 503", or a network
    failure (connection refused or reset, EOF, timeouts)."""
    lowered = message.strip().lower()
    if says_immutable(lowered):
        return DaemonMessage(None, False, immutable=True)
    code = lowered.split(":", 1)[0].strip() if ":" in lowered else ""
    status = _REGISTRY_CODES.get(code)
    match = _UNEXPECTED_STATUS.search(lowered)
    if status is None and match:
        status = int(match.group(1))
    if status is not None:
        return DaemonMessage(status, status in (408, 429) or status >= 500)
    return DaemonMessage(None, any(marker in lowered for marker in _NETWORK_TROUBLE))


def push_failure(
    repository: Repository,
    tag: str,
    message: str,
    rate_limit_wait: Callable[[], float | None] | None,
) -> Exception:
    target = repository.canonical(tag)
    said = read_daemon_message(message)
    if said.immutable:
        return immutable_refusal(repository.registry, target, message)
    if said.status in (401, 403):
        return AuthError(
            f"registry {repository.registry} refused the push of {target}: {message}; "
            "check HUB_USERNAME, HUB_TOKEN and that the token may push to this repository",
            status=said.status,
            stage="push",
        )
    wait = None
    if said.status == 429 and rate_limit_wait is not None:
        try:
            wait = rate_limit_wait()
        except HubError:
            wait = None  # the registry did not say; the usual backoff applies
    if said.status == 429:
        from hubtasks.registry.ratelimit import too_many_requests

        message = f"{message} ({too_many_requests(repository.registry)})"
    return PushError(
        f"push of {target} failed: {message}",
        status=said.status,
        transient=said.transient,
        retry_after=wait,
        stage="push",
    )


def unreachable(host: str, action: str, error: BaseException) -> str:
    """Why the daemon at `host` cannot be reached, and what to do about it."""
    detail = short_error(error)
    if "paramiko" in detail:
        return (
            f"DOCKER_HOST={host} needs the paramiko package for ssh:// daemons: "
            "pip install 'hubtasks[ssh]'"
        )
    found = list(causes(error))
    if any(isinstance(cause, FileNotFoundError) for cause in found):
        reason = "no daemon is listening there"
    elif any(isinstance(cause, ConnectionRefusedError) for cause in found):
        reason = "connection refused"
    elif any(isinstance(cause, PermissionError) for cause in found):
        reason = "permission denied on the socket (add your user to the docker group)"
    else:
        reason = detail
    return (
        f"cannot {action} the Docker daemon at {host}: {reason}; "
        "start Docker or point DOCKER_HOST at a running daemon"
    )
