"""One BuildKit build as the daemon engine runs it: a session for its length, the build
request, the trace shown as `--progress=plain` lines, a failure told in one line."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from hubtasks.build.buildkit import client, trace
from hubtasks.build.buildkit import session as grpc_session
from hubtasks.build.buildkit.options import BuildKitRun
from hubtasks.build.context import BuildContext
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


def build_context(
    http: client.DaemonHttp,
    api_root: str,
    *,
    context: BuildContext,
    ref: str | None,
    build_args: Mapping[str, str],
    platform: str | None,
    cache_from: tuple[str, ...],
    run: BuildKitRun,
    on_output: Callable[[str], None],
    what: str,
) -> str:
    """Build `context` with BuildKit: the labels (with the inputs digest, hashed first when
    pending) go as build metadata, the context as sent holds the user's Dockerfile as is
    (no LABEL step, no `FROM scratch` stand-in: BuildKit builds it for any platform)."""
    pending = context.pending
    if pending is not None and pending.digest is None:
        pending.files = context.files_digest()
        pending.digest = pending.digest_of(pending.files)
    sent = replace(
        context, labels={}, pending=None, scratch=None, whole_seconds=True, verbatim=True
    )
    request = client.BuildRequest(
        dockerfile=sent.sent_dockerfile,
        tags=(ref,) if ref else (),
        labels=context.final_labels,
        build_args=_with_epoch(build_args, run.source_date_epoch),
        target=run.target,
        platform=platform or "",
        network=run.network,
        no_cache=run.no_cache,
        pull=run.pull,
        cache_from=cache_from,
    )
    names = (sent.sent_dockerfile, context.dockerfile.name)
    try:
        return build_image(
            http,
            api_root,
            request=request,
            body=sent.stream(),
            credentials=run.credentials,
            secrets=run.secrets,
            dockerfile_text=context.dockerfile_bytes.decode("utf-8", "replace"),
            on_output=lambda text: on_output(text.replace(*names)),
        )
    except BuildError as error:
        message = error.message.replace(*names)
        raise error.evolve(f"build of {what} failed: {message}") from None


def _with_epoch(build_args: Mapping[str, str], epoch: int | None) -> dict[str, str]:
    """The build arguments, with SOURCE_DATE_EPOCH when hubtasks was given one, and
    BUILDKIT_INLINE_CACHE=1: the image carries its cache metadata, so that a fresh runner's
    build takes its steps from the published image (`cachefrom`, resolved through the session)
    without pulling it first. The user's own --build-arg wins."""
    extra = {"BUILDKIT_INLINE_CACHE": "1"}
    if epoch is not None:
        extra["SOURCE_DATE_EPOCH"] = str(epoch)
    return {**extra, **build_args}
