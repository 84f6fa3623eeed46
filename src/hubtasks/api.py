"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, Dockerfile, context, daemon, credentials) before it builds or pushes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .console import Console, Stopwatch
from .engine import Engine, context_includes, save_credentials
from .errors import ConfigError, ContextLeakError, HubError, VerifyError
from .references import Repository, validate_tag
from .settings import Settings, read_env_file


@dataclass(frozen=True)
class BuiltImage:
    repository: Repository
    image_id: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PushedTag:
    repository: Repository
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """`registry/namespace/name:tag@sha256:…`"""
        return self.repository.canonical(self.tag, self.digest)


@dataclass
class Release:
    """What a release did: the image, each pushed tag with its digest, seconds per stage."""

    image: BuiltImage
    pushed: list[PushedTag] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _repository(settings: Settings) -> Repository:
    if settings.repository is None:
        raise ConfigError("missing setting: HUB_REPOSITORY (or --repository)")
    return settings.repository


def open_engine(settings: Settings) -> Engine:
    """Connect to the daemon named by DOCKER_HOST & co. (environment, then `.env`)."""
    return Engine(settings.docker_env)


def check_context(settings: Settings) -> None:
    """Refuse a build context that would carry the token's `.env` into the image."""
    candidates = {settings.context / ".env"}
    if settings.env_file is not None:
        candidates.add(settings.env_file)
    for path in sorted(candidates):
        if not path.is_file() or not _holds_token(path):
            continue
        if context_includes(settings.context, path):
            ignore_file = settings.context / ".dockerignore"
            relative = path.resolve().relative_to(settings.context.resolve())
            raise ContextLeakError(
                f"refusing to build: the context '{settings.context}' would send {path}, which "
                f"holds HUB_TOKEN, to the daemon and possibly into the image; add the line "
                f"'{relative}' to {ignore_file}"
            )


def _holds_token(path: Path) -> bool:
    return bool(read_env_file(path).get("HUB_TOKEN"))


def login(
    settings: Settings,
    *,
    save: bool = False,
    engine: Engine | None = None,
    console: Console | None = None,
) -> str | None:
    """Check the credentials against the registry; with `save`, store them like docker login.

    Returns where the credentials were saved, or None.
    """
    settings.require("login")
    repository = _repository(settings)
    console = console or Console(secrets=settings.secrets)
    engine = engine or open_engine(settings)
    assert settings.username and settings.token
    console.stage("login", f"checking credentials of {settings.username} at {repository.registry}")
    engine.login(repository, settings.username, settings.token)
    console.stage("login", f"logged in to {repository.registry} as {settings.username}")
    if not save:
        return None
    where = save_credentials(repository, settings.username, settings.token, settings.docker_env)
    console.stage("login", f"credentials saved to {where}")
    return where


def build(
    settings: Settings,
    *,
    engine: Engine | None = None,
    console: Console | None = None,
) -> BuiltImage:
    """Build the image, streaming the log, and give it every configured tag."""
    settings.require("build")
    repository = _repository(settings)
    check_context(settings)
    console = console or Console(secrets=settings.secrets)
    engine = engine or open_engine(settings)
    first, *others = settings.tags
    console.stage(
        "build",
        f"building {repository.canonical(first)} from {settings.dockerfile} "
        f"(context {settings.context})",
    )
    image_id = engine.build(
        context=settings.context,
        dockerfile=settings.dockerfile,
        ref=repository.ref(first),
        build_args=settings.build_args,
        on_output=console.build_output,
    )
    for tag in others:
        engine.tag(image_id, repository, tag)
    console.stage("build", f"built {image_id[:19]} tagged {', '.join(settings.tags)}")
    return BuiltImage(repository=repository, image_id=image_id, tags=settings.tags)


def tag(
    settings: Settings,
    source: str = "latest",
    *,
    engine: Engine | None = None,
    console: Console | None = None,
) -> BuiltImage:
    """Add the configured tags to a local image, without rebuilding.

    `source` is a tag of the configured repository, or any local image reference or ID.
    """
    settings.require("tag")
    repository = _repository(settings)
    console = console or Console(secrets=settings.secrets)
    engine = engine or open_engine(settings)
    candidates = [repository.ref(source)] if _is_tag(source) else []
    candidates.append(source)
    image_id = next((i for i in map(engine.image_id, candidates) if i), None)
    if image_id is None:
        raise ConfigError(
            f"no local image '{source}' (looked for {' and '.join(dict.fromkeys(candidates))}); "
            "build it first or pass --source with an existing tag, reference or image ID"
        )
    for name in settings.tags:
        engine.tag(image_id, repository, name)
    console.stage("tag", f"{image_id[:19]} tagged {', '.join(settings.tags)}")
    return BuiltImage(repository=repository, image_id=image_id, tags=settings.tags)


def _is_tag(text: str) -> bool:
    try:
        validate_tag(text)
    except ConfigError:
        return False
    return True


def push(
    settings: Settings,
    *,
    engine: Engine | None = None,
    console: Console | None = None,
    checked_login: bool = False,
) -> list[PushedTag]:
    """Push each configured tag explicitly and return its manifest digest.

    Every tag must exist locally and the credentials must be accepted before the first push.
    If a push fails, the error names the tags that made it.
    """
    settings.require("push")
    repository = _repository(settings)
    console = console or Console(secrets=settings.secrets)
    engine = engine or open_engine(settings)
    missing = [t for t in settings.tags if engine.image_id(repository.ref(t)) is None]
    if missing:
        names = ", ".join(repository.ref(t) for t in missing)
        raise ConfigError(
            f"no local image {names}; build it first (inv build --tag {missing[0]}) "
            "or tag an existing image (inv tag)"
        )
    if not checked_login:
        login(settings, engine=engine, console=console)
    pushed: list[PushedTag] = []
    for name in settings.tags:
        console.stage("push", f"pushing {repository.canonical(name)}")
        console.reset_layers()
        try:
            digest = engine.push(
                repository, name, settings.auth_config, on_progress=console.push_progress
            )
        except HubError as error:
            raise _with_progress(error, pushed) from None
        pushed.append(PushedTag(repository, name, digest))
        console.stage("push", f"pushed {repository.canonical(name)} {digest}")
    return pushed


def _with_progress(error: HubError, pushed: list[PushedTag]) -> HubError:
    if not pushed:
        return type(error)(f"{error}; nothing was pushed")
    made_it = ", ".join(p.reference for p in pushed)
    return type(error)(f"{error}; already pushed: {made_it}")


def verify(
    settings: Settings,
    pushed: list[PushedTag],
    *,
    engine: Engine | None = None,
    console: Console | None = None,
) -> None:
    """Ask the registry for every pushed tag and compare its digest with the pushed one."""
    console = console or Console(secrets=settings.secrets)
    engine = engine or open_engine(settings)
    for item in pushed:
        remote = engine.remote_digest(item.repository, item.tag, settings.auth_config)
        if remote is None:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} was pushed but the registry does not "
                "list it; run the release again"
            )
        if remote != item.digest:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} points at {remote} in the registry, not "
                f"at the pushed {item.digest}; another push may have raced this one"
            )
        console.stage("verify", f"{item.reference} is in the registry")


def release(
    settings: Settings,
    *,
    engine: Engine | None = None,
    console: Console | None = None,
) -> Release:
    """validate → login → build → tag → push → verify; returns what was published."""
    settings.require("release")
    check_context(settings)
    console = console or Console(secrets=settings.secrets)
    watch = Stopwatch()
    with watch.time("connect"):
        engine = engine or open_engine(settings)
    with watch.time("login"):
        login(settings, engine=engine, console=console)
    with watch.time("build"):
        image = build(settings, engine=engine, console=console)
    with watch.time("push"):
        pushed = push(settings, engine=engine, console=console, checked_login=True)
    with watch.time("verify"):
        verify(settings, pushed, engine=engine, console=console)
    return Release(image=image, pushed=pushed, timings=watch.timings)
