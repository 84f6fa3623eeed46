"""One BuildKit build as the daemon engine runs it: a session for its length (serving the
context's files), the build request, the trace shown as `--progress=plain` lines, a failure
told in one line."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from hubtasks.build.buildkit import client, filesync, sshforward, trace
from hubtasks.build.buildkit import session as grpc_session
from hubtasks.build.buildkit.options import BuildKitRun
from hubtasks.build.context import BuildContext
from hubtasks.errors import BuildError, ConfigError


def build_image(
    http: client.DaemonHttp,
    api_root: str,
    *,
    request: client.BuildRequest,
    folders: Mapping[str, filesync.Folder],
    shared_key: str,
    credentials: grpc_session.CredentialsLookup,
    secrets: Mapping[str, bytes],
    dockerfile_text: str,
    on_output: Callable[[str], None],
    ssh: Mapping[str, str] | None = None,
) -> str:
    """Build with BuildKit, the files sent through the session; the image ID. A failure is a
    `BuildError` naming the failing step, its Dockerfile line and its last output (a context
    file that cannot be read: a `ConfigError` naming it); Ctrl-C cancels the build and the
    session."""
    followed = trace.Trace()
    plain = trace.PlainLines(followed)
    unreadable: list[str] = []

    def show(update: trace.Update) -> None:
        for line in plain.lines(update):
            on_output(line + "\n")

    streams = dict.fromkeys(filesync.METHODS, filesync.opener(folders, unreadable.append))
    agents = sshforward.Agents(ssh or {})  # served without --ssh too: its refusal names it
    session = client.open_session(
        http,
        api_root,
        {**grpc_session.handlers(credentials, secrets), **agents.handlers()},
        {**streams, **agents.streams()},
        shared_key=shared_key,
    )
    agents.wake = session.server.wake
    try:
        return client.build(http, api_root, request, session, show)
    except BuildError as error:
        if unreadable:
            hint = "; fix its permissions or list it in .dockerignore"
            raise ConfigError(unreadable[0] + hint) from None
        if session.server.ended:  # the cause: the daemon's message is only a consequence
            raise
        failure = trace.failure(followed, dockerfile_text, error.message)
        raise error.evolve(failure + agents.hint(failure)) from None
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
    pending) go as build metadata, the user's Dockerfile as it was read (no LABEL step, no
    `FROM scratch` stand-in: BuildKit builds it for any platform)."""
    pending = context.pending
    if pending is not None and pending.digest is None:
        pending.files = context.files_digest()
        pending.digest = pending.digest_of(pending.files)
    request = client.BuildRequest(
        dockerfile=context.dockerfile.name,
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
    try:
        return build_image(
            http,
            api_root,
            request=request,
            folders=folders_of(context),
            shared_key=shared_key(context),
            credentials=run.credentials,
            secrets=run.secrets,
            ssh=run.ssh,
            dockerfile_text=context.dockerfile_bytes.decode("utf-8", "replace"),
            on_output=on_output,
        )
    except BuildError as error:
        raise error.evolve(f"build of {what} failed: {error.message}") from None


def folders_of(context: BuildContext) -> dict[str, filesync.Folder]:
    """What the daemon may ask for: "context" (the files `.dockerignore` lets through) and
    "dockerfile" (the Dockerfile's folder, the Dockerfile from the bytes read and hashed)."""
    name = context.dockerfile.name
    dockerfile = filesync.data_entry(name, context.dockerfile_bytes, 0o644, context.mtime)
    return {
        "context": filesync.Folder(str(context.root), context.paths, context.mtime),
        "dockerfile": filesync.Folder(
            str(context.dockerfile.parent), (), context.mtime, {name: dockerfile}
        ),
    }


def shared_key(context: BuildContext) -> str:
    """The name the daemon keeps this project's synced files under between builds (the CLI
    names them after the folder too)."""
    where = f"hubtasks\n{context.root.resolve()}\n{context.dockerfile.parent.resolve()}"
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _with_epoch(build_args: Mapping[str, str], epoch: int | None) -> dict[str, str]:
    """The build arguments, with SOURCE_DATE_EPOCH when hubtasks was given one, and
    BUILDKIT_INLINE_CACHE=1: the image carries its cache metadata, so that a fresh runner's
    build takes its steps from the published image (pulled by digest first and named so in
    `cachefrom`: pipeline/cache.py, moby/buildkit#1981). The user's own --build-arg wins."""
    extra = {"BUILDKIT_INLINE_CACHE": "1"}
    if epoch is not None:
        extra["SOURCE_DATE_EPOCH"] = str(epoch)
    return {**extra, **build_args}
