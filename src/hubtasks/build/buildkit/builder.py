"""One BuildKit build as the daemon engine runs it: a session for its length, the build
request, the trace shown as `--progress=plain` lines, a failure told in one line."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hubtasks.build.buildkit import client, trace
from hubtasks.build.buildkit import session as grpc_session
from hubtasks.errors import BuildError


def build_image(
    http: client.DaemonHttp,
    api_root: str,
    *,
    request: client.BuildRequest,
    body: Iterable[bytes],
    credentials: grpc_session.CredentialsLookup,
    secrets: Mapping[str, bytes],
    dockerfile_text: str,
    on_output: Callable[[str], None],
) -> str:
    """Build with BuildKit; the image ID. A failure is a `BuildError` naming the failing
    step, its Dockerfile line and its last output; Ctrl-C cancels the build and the session."""
    followed = trace.Trace()
    plain = trace.PlainLines(followed)

    def show(update: trace.Update) -> None:
        for line in plain.lines(update):
            on_output(line + "\n")

    session = client.open_session(http, api_root, grpc_session.handlers(credentials, secrets))
    try:
        return client.build(http, api_root, request, body, session, show)
    except BuildError as error:
        raise error.evolve(trace.failure(followed, dockerfile_text, error.message)) from None
    finally:
        session.close()
