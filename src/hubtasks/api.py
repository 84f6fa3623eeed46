"""The public Python API: plain functions that take a `Settings` and know nothing of Invoke.

Each function validates what it needs before its first side effect. `release` validates
everything (settings, tags, Dockerfile, context, daemon, credentials, the registry's current
tags) before it pushes anything.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import plan as planning
from .console import Console, Stopwatch, human_size
from .engine import Engine, context_includes, remove_credentials, save_credentials
from .errors import (
    AuthError,
    ConfigError,
    ContextLeakError,
    HubError,
    PushError,
    RegistryError,
    ReleaseRefused,
    VerifyError,
)
from .gitinfo import GitState, is_tracked, read_git
from .hooks import Facts, Hooks
from .plan import Plan, Remote
from .references import Repository, validate_tag
from .retry import RetryPolicy, mark_transient
from .settings import Settings, read_env_file
from .versions import parse_version

if TYPE_CHECKING:
    from .registry import RegistryClient

T = TypeVar("T")


@dataclass(frozen=True)
class BuiltImage:
    repository: Repository
    image_id: str
    tags: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None


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
    """What a release did (or, with dry_run, would do)."""

    repository: Repository
    plan: Plan
    image: BuiltImage | None = None
    published: list[PushedTag] = field(default_factory=list)  # every tag now at this image
    timings: dict[str, float] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def digest(self) -> str | None:
        return self.published[0].digest if self.published else None

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable result (`--json`)."""
        digests = {p.tag: p.digest for p in self.published}
        return {
            "image": str(self.repository),
            "image_id": self.image.image_id if self.image else None,
            "digest": self.digest,
            "dry_run": self.dry_run,
            "tags": [
                {
                    "tag": d.tag,
                    "action": d.action,
                    "reason": d.reason,
                    "digest": digests.get(d.tag),
                    "previous_digest": d.remote.digest if d.remote else None,
                    "reference": self.repository.canonical(d.tag, digests[d.tag])
                    if d.tag in digests
                    else None,
                }
                for d in self.plan.decisions
            ],
            **{
                word: self.plan.of(action)
                for word, action in (
                    ("created", planning.CREATE),
                    ("moved", planning.MOVE),
                    ("skipped", planning.SKIP),
                    ("held", planning.HOLD),
                )
            },
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "commands": self.commands,
        }


class Session:
    """What the stages of one invocation share (`inv login build tag push` is one session).

    One daemon connection, one credential check per registry and user, the tags the last
    build or tag stage produced (a later stage without --tag uses them), and the hooks, each
    of which runs at most once.
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        context: Any = None,
        hook_commands: Mapping[str, str] | None = None,
    ) -> None:
        self.console = console or Console()
        if context is None:
            from invoke import Context

            context = Context()
        self.hooks = Hooks(hook_commands or {}, context, self.console.stage)
        self.engine: Engine | None = None
        self.logged_in: set[tuple[str, str]] = set()
        self.tags: tuple[str, ...] | None = None
        self.image_id: str | None = None
        self.policy: RetryPolicy | None = None
        self.warned = False

    def adopt(self, settings: Settings) -> Session:
        """Take this stage's secrets, hook commands and retry budget into the session."""
        for secret in settings.secrets:
            self.console.add_secret(secret)
        if settings.username and settings.token:
            # What a Basic auth header or a docker config file would hold.
            raw = f"{settings.username}:{settings.token}".encode()
            self.console.add_secret(base64.b64encode(raw).decode("ascii"))
        self.hooks.update_commands(settings.hooks)
        if self.policy is None:
            # One budget for the whole command line: a registry that is gone fails it in time.
            self.policy = RetryPolicy(
                attempts=settings.retries,
                budget=settings.timeout,
                base_delay=settings.retry_delay,
            )
        return self

    def retrying(self, what: str, operation: Callable[[], T]) -> T:
        """Run a network operation, retrying transient failures within the session's budget."""
        policy = self.policy or RetryPolicy()
        return policy.call(
            operation, what=what, on_retry=lambda line: self.console.stage("retry", line)
        )

    def engine_for(self, settings: Settings) -> Engine:
        if self.engine is None:
            self.engine = Engine(settings.docker_env)
        return self.engine


def _session(settings: Settings, session: Session | None) -> Session:
    return (session or Session(console=Console(secrets=settings.secrets))).adopt(settings)


def _facts(stage: str, repository: Repository, tags: tuple[str, ...] | list[str]) -> Facts:
    return Facts(stage=stage, image=str(repository), tags=list(tags))


def _repository(settings: Settings) -> Repository:
    if settings.repository is None:
        raise ConfigError("missing setting: HUB_REPOSITORY (or --repository)")
    return settings.repository


def check_context(settings: Settings) -> None:
    """Refuse a build context that would carry the token's `.env` into the image."""
    candidates = {settings.context / ".env"}
    if settings.env_file is not None:
        candidates.add(settings.env_file)
    for path in sorted(candidates):
        if not path.is_file() or not _holds_token(path):
            continue
        if context_includes(settings.context, path, settings.docker_env.get("DOCKER_HOST", "")):
            ignore_file = settings.context / ".dockerignore"
            relative = path.resolve().relative_to(settings.context.resolve())
            raise ContextLeakError(
                f"refusing to build: the context '{settings.context}' would send {path}, which "
                f"holds HUB_TOKEN, to the daemon and possibly into the image; add the line "
                f"'{relative}' to {ignore_file}"
            )


def env_file_warnings(settings: Settings) -> list[str]:
    """Warnings about the `.env` that holds the token: readable by others, tracked by git."""
    path = settings.env_file
    if path is None or not path.is_file() or not _holds_token(path):
        return []
    warnings = []
    mode = path.stat().st_mode
    if mode & 0o077:
        warnings.append(
            f"{path} holds HUB_TOKEN and other users may read it (mode {mode & 0o777:o}); "
            f"chmod 600 {path}"
        )
    if is_tracked(path):
        warnings.append(
            f"{path} holds HUB_TOKEN and git tracks it; `git rm --cached {path.name}`, add it "
            "to .gitignore, and rotate the token if it was ever pushed"
        )
    return warnings


def _holds_token(path: Path) -> bool:
    return bool(read_env_file(path).get("HUB_TOKEN"))


def resolve_tags(
    settings: Settings,
    git: GitState | None,
    *,
    allow_dirty: bool = False,
    chained: tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """The tags to publish: as given, else those of an earlier stage of the same command
    line (`chained`), else from git (exact tag at HEAD, else sha-<short>); then fanned out
    with `semver` and `latest`."""
    if settings.tags:
        base = list(settings.tags)
    elif chained:
        base = list(chained)
    else:
        if git is None:
            raise ConfigError(
                f"no tag given and {settings.cwd} is not in a git work tree: pass --tag or set "
                "HUB_TAGS"
            )
        default = git.exact_tag or f"sha-{git.short}"
        validate_tag(default, source="the git tag at HEAD")
        if git.dirty and not allow_dirty:
            raise ConfigError(
                f"the work tree has uncommitted changes, so the default tag '{default}' would "
                "not name what is built; commit them, pass --tag, or pass --allow-dirty"
            )
        base = [default]
    if settings.semver and not any(parse_version(t) for t in base):
        raise ConfigError(
            f"--semver (HUB_SEMVER) needs a version tag like v1.2.3; got {', '.join(base)}"
        )
    return tuple(planning.expand_tags(base, semver=settings.semver, latest=settings.latest))


def labels_for(settings: Settings, git: GitState | None, tags: tuple[str, ...]) -> dict[str, str]:
    repository = _repository(settings)
    return planning.image_labels(
        title=repository.path.rsplit("/", 1)[-1],
        tags=tags,
        revision=git.revision if git else None,
        source=git.remote_url if git else None,
        created_epoch=settings.source_date_epoch or (git.commit_time if git else None),
        extra=settings.labels,
    )


def login(
    settings: Settings,
    *,
    save: bool = False,
    session: Session | None = None,
) -> str | None:
    """Check the credentials against the registry; with `save`, store them like docker login.

    Returns where the credentials were saved, or None. Within one session the registry is
    asked once per user (a saving login always runs).
    """
    settings.require("login")
    repository = _repository(settings)
    session = _session(settings, session)
    assert settings.username and settings.token
    key = (repository.registry, settings.username)
    if key in session.logged_in and not save:
        return None
    facts = _facts("login", repository, settings.tags)
    session.hooks.run("pre", facts)
    console = session.console
    with console.activity(
        "login", f"checking the credentials of {settings.username} at {repository.registry}"
    ):
        client = _registry(settings)
        session.retrying(f"login to {repository.registry}", client.check_credentials)
    session.logged_in.add(key)
    console.stage("login", f"logged in to {repository.registry} as {settings.username}")
    where = None
    if save:
        where = save_credentials(repository, settings.username, settings.token, settings.docker_env)
        console.stage("login", f"credentials saved to {where}")
    session.hooks.run("post", facts)
    return where


def logout(settings: Settings, *, session: Session | None = None) -> str | None:
    """Remove what `login(save=True)` stored for this registry, and nothing else."""
    session = _session(settings, session)
    where = remove_credentials(settings.registry, settings.docker_env)
    if where:
        session.console.stage(
            "logout", f"removed the credentials for {settings.registry} from {where}"
        )
    else:
        session.console.stage("logout", f"no saved credentials for {settings.registry}")
    return where


def build(
    settings: Settings,
    *,
    tags: tuple[str, ...] | None = None,
    labels: dict[str, str] | None = None,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> BuiltImage:
    """Build the image with OCI labels, streaming the log, and give it every tag."""
    settings.require("build")
    repository = _repository(settings)
    check_context(settings)
    session = _session(settings, session)
    if tags is None or labels is None:
        git = read_git(settings.cwd)
        tags = tags or resolve_tags(settings, git, allow_dirty=allow_dirty)
        labels = labels if labels is not None else labels_for(settings, git, tags)
    facts = _facts("build", repository, tags)
    session.hooks.run("pre", facts)
    console = session.console
    engine = session.engine_for(settings)
    first, *others = tags
    console.stage(
        "build",
        f"building {repository.canonical(first)} from {settings.dockerfile} "
        f"(context {settings.context})",
    )
    start = time.monotonic()
    with console.building(repository.canonical(first)):
        image_id = engine.build(
            context=settings.context,
            dockerfile=settings.dockerfile,
            ref=repository.ref(first),
            build_args=settings.build_args,
            labels=labels,
            on_output=console.build_output,
        )
    for name in others:
        engine.tag(image_id, repository, name)
    size = engine.image_size(image_id)
    console.stage("build", f"built {image_id[:19]} ({human_size(size)}) tagged {', '.join(tags)}")
    session.tags, session.image_id = tags, image_id
    facts.image_id = image_id
    facts.timings["build"] = time.monotonic() - start
    session.hooks.run("post", facts)
    return BuiltImage(repository=repository, image_id=image_id, tags=tags, labels=labels, size=size)


def tag(
    settings: Settings,
    source: str | None = None,
    *,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> BuiltImage:
    """Add the configured tags to a local image, without rebuilding.

    `source` is a tag of the configured repository, or any local image reference or ID; by
    default the image an earlier build of this session made, else `latest`.
    """
    settings.require("tag")
    repository = _repository(settings)
    session = _session(settings, session)
    tags = resolve_tags(settings, read_git(settings.cwd), allow_dirty=allow_dirty)
    engine = session.engine_for(settings)
    if source is None and session.image_id:
        image_id: str | None = session.image_id
        source = image_id
    else:
        source = source or "latest"
        candidates = [repository.ref(source)] if _is_tag(source) else []
        candidates.append(source)
        image_id = next((i for i in map(engine.image_id, candidates) if i), None)
        if image_id is None:
            raise ConfigError(
                f"no local image '{source}' (looked for "
                f"{' and '.join(dict.fromkeys(candidates))}); build it first or pass --source "
                "with an existing tag, reference or image ID"
            )
    facts = _facts("tag", repository, tags)
    facts.image_id = image_id
    session.hooks.run("pre", facts)
    for name in tags:
        engine.tag(image_id, repository, name)
    session.console.stage("tag", f"{image_id[:19]} tagged {', '.join(tags)}")
    session.tags = tuple(dict.fromkeys((*(session.tags or ()), *tags)))
    session.image_id = image_id
    session.hooks.run("post", facts)
    return BuiltImage(repository=repository, image_id=image_id, tags=tags)


def _is_tag(text: str) -> bool:
    try:
        validate_tag(text)
    except ConfigError:
        return False
    return True


_CLIENTS: dict[tuple[object, ...], RegistryClient] = {}


def _registry(settings: Settings) -> RegistryClient:
    """One registry client (one connection, one token) per repository and credentials."""
    from .registry import RegistryClient  # urllib & co. only when the registry is needed

    repository = _repository(settings)
    key = (repository, settings.username, settings.token)
    if key not in _CLIENTS:
        _CLIENTS[key] = RegistryClient(repository, settings.username, settings.token)
    return _CLIENTS[key]


def _read_remote(
    registry: RegistryClient,
    tags: tuple[str, ...],
    session: Session,
    published: list[str] | None = None,
) -> dict[str, Remote | None]:
    """What the registry holds under each tag: one tag list, then a manifest per tag that
    exists (a new tag costs nothing)."""
    if published is None:
        published = session.retrying(f"listing the tags of {registry.repository}", registry.tags)
    existing = set(published)
    return {
        name: session.retrying(
            f"reading {registry.repository.canonical(name)}",
            lambda name=name: registry.manifest(name),
        )
        if name in existing
        else None
        for name in tags
    }


def _refuse(plan: Plan, repository: Repository) -> ReleaseRefused:
    details = "; ".join(f"{repository.canonical(d.tag)} {d.reason}" for d in plan.refused)
    return ReleaseRefused(f"refusing to release, nothing was pushed: {details}")


def _push_tags(
    settings: Settings,
    tags: list[str],
    *,
    session: Session,
    image_ids: Mapping[str, str | None] | None = None,
) -> list[PushedTag]:
    """Push each tag. The first tag of an image goes through the daemon (layers, manifest);
    the other tags of the same image are manifest copies in the registry, a few at a time —
    what `docker push` ends up doing after checking every layer again."""
    pushed: list[PushedTag] = []
    first_push: dict[str, PushedTag] = {}
    copies: dict[str, list[str]] = {}
    try:
        for name in tags:
            image_id = (image_ids or {}).get(name)
            if image_id is not None and image_id in first_push:
                copies.setdefault(image_id, []).append(name)
                continue
            item = _push_through_daemon(settings, name, session)
            pushed.append(item)
            if image_id is not None:
                first_push[image_id] = item
        for image_id, names in copies.items():
            _copy_tags(settings, first_push[image_id], names, session, pushed)
    except HubError as error:
        raise _with_progress(error, pushed) from None
    order = {name: index for index, name in enumerate(tags)}
    return sorted(pushed, key=lambda item: order[item.tag])


def _push_through_daemon(settings: Settings, name: str, session: Session) -> PushedTag:
    repository = _repository(settings)
    engine, console = session.engine_for(settings), session.console
    target = repository.canonical(name)
    console.stage("push", f"pushing {target}")
    with console.pushing(target):
        digest = session.retrying(
            f"push of {target}", lambda: _push_once(settings, engine, name, console)
        )
    console.stage("push", f"pushed {target} {digest}")
    return PushedTag(repository, name, digest)


_COPY_WORKERS = 4


@dataclass(frozen=True)
class _Refused:
    reason: str


def _copy_tags(
    settings: Settings,
    source: PushedTag,
    names: list[str],
    session: Session,
    done: list[PushedTag],
) -> None:
    """Point `names` at `source`'s manifest, on a few connections at once, appending each
    to `done` as it lands. A tag the registry will not take as a copy is pushed through the
    daemon instead; transient failures are retried like any other."""
    from concurrent.futures import ThreadPoolExecutor

    from .registry import RegistryClient

    repository = _repository(settings)
    local = threading.local()
    registry = _registry(settings)
    # Read once, before any PUT: distribution rewrites the revision link on every PUT of the
    # same manifest, and a GET by digest racing that write gets a 500.
    manifest = session.retrying(
        f"reading {repository.canonical(source.tag)}", lambda: registry.raw_manifest(source.digest)
    )

    def attempt(name: str) -> str | _Refused:
        if not hasattr(local, "client"):
            local.client = RegistryClient(repository, settings.username, settings.token)
        try:
            return local.client.copy_manifest(source.digest, name, manifest)
        except (RegistryError, AuthError) as error:
            if getattr(error, "transient", False):
                raise
            return _Refused(str(error))

    def copy(name: str) -> str | _Refused:
        return session.retrying(f"tagging {repository.canonical(name)}", lambda: attempt(name))

    fallback: list[str] = []
    failure: HubError | None = None
    with ThreadPoolExecutor(max_workers=min(_COPY_WORKERS, len(names))) as pool:
        for name, future in [(name, pool.submit(copy, name)) for name in names]:
            try:
                outcome = future.result()
            except HubError as error:
                failure = failure or error
                continue
            target = repository.canonical(name)
            if isinstance(outcome, _Refused):
                session.console.stage("push", f"{target}: manifest copy refused ({outcome.reason})")
                fallback.append(name)
                continue
            session.console.stage("push", f"tagged {target} {outcome} (same image as {source.tag})")
            done.append(PushedTag(repository, name, outcome))
    if failure is not None:
        raise failure
    for name in fallback:
        done.append(_push_through_daemon(settings, name, session))


def _push_once(settings: Settings, engine: Engine, tag_name: str, console: Console) -> str:
    """One push attempt. The daemon reports a registry hiccup during its auth handshake (a
    5xx on `/v2/`) as "authentication required"; when our own check shows the credentials are
    fine, that is a transient failure, and wrong credentials are never tried twice."""
    repository = _repository(settings)
    try:
        return engine.push(
            repository, tag_name, settings.auth_config, on_progress=console.push_progress
        )
    except AuthError as error:
        if "authentication required" not in str(error).lower():
            raise
        _registry(settings).check_credentials()  # raises AuthError if they really are wrong
        raise mark_transient(
            PushError(f"{error} although the credentials are valid (a registry hiccup)")
        ) from None


def _with_progress(error: HubError, pushed: list[PushedTag]) -> HubError:
    if not pushed:
        return type(error)(f"{error}; no tag was confirmed pushed")
    made_it = ", ".join(p.reference for p in pushed)
    return type(error)(f"{error}; already pushed: {made_it}")


def _skipped(plan: Plan, repository: Repository) -> list[PushedTag]:
    return [
        PushedTag(repository, d.tag, d.remote.digest)
        for d in plan.decisions
        if d.action == planning.SKIP and d.remote
    ]


def push(
    settings: Settings,
    *,
    force: bool = False,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> Release:
    """Push each tag explicitly and return what the registry now holds.

    Every tag must exist locally and the credentials must be accepted before the first push.
    A tag the registry already holds for the same image is skipped; a version tag it holds for
    another image is refused unless `force`. If a push fails, the error names what made it.
    """
    settings.require("push")
    repository = _repository(settings)
    session = _session(settings, session)
    tags = resolve_tags(
        settings, read_git(settings.cwd), allow_dirty=allow_dirty, chained=session.tags
    )
    engine = session.engine_for(settings)
    listed = {row["tag"]: row["id"] for row in engine.list_images(repository)}  # one call
    local = {name: listed.get(name) for name in tags}
    missing = [name for name, image_id in local.items() if image_id is None]
    if missing:
        names = ", ".join(repository.ref(t) for t in missing)
        raise ConfigError(
            f"no local image {names}; build it first (inv build --tag {missing[0]}) "
            "or tag an existing image (inv tag)"
        )
    login(settings, session=session)
    watch = Stopwatch()
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        remote = _read_remote(_registry(settings), tags, session)
    decisions = [
        planning.decide(
            [name], image_id=local[name], remote=remote, published=[], force=force
        ).decisions[0]
        for name in tags
    ]
    plan = Plan(tuple(decisions))
    if plan.refused:
        raise _refuse(plan, repository)
    _report_plan(plan, repository, session.console)
    facts = _facts("push", repository, tags)
    session.hooks.run("pre", facts)
    with watch.time("push"):
        pushed = _push_tags(
            settings, [d.tag for d in plan.to_push], session=session, image_ids=local
        )
    by_tag = {p.tag: p for p in pushed + _skipped(plan, repository)}
    published = [by_tag[name] for name in tags if name in by_tag]
    _fill(facts, published, watch)
    session.hooks.run("post", facts)
    return Release(repository, plan, published=published, timings=watch.timings)


def _fill(facts: Facts, published: list[PushedTag], watch: Stopwatch) -> None:
    facts.refs = [p.reference for p in published]
    facts.digest = published[0].digest if published else None
    facts.timings.update(watch.timings)


def verify(settings: Settings, pushed: list[PushedTag], *, session: Session | None = None) -> None:
    """Ask the registry for every pushed tag and compare its digest with the pushed one."""
    session = _session(settings, session)
    registry = _registry(settings)
    for item in pushed:
        with session.console.activity("verify", f"asking the registry for {item.tag}"):
            remote = session.retrying(
                f"verify of {item.repository.canonical(item.tag)}",
                lambda item=item: registry.digest(item.tag),
            )
        if remote is None:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} was pushed but the registry does not "
                "list it; run the release again"
            )
        if remote != item.digest:
            raise VerifyError(
                f"{item.repository.canonical(item.tag)} points at {remote} in the "
                f"registry, not at the pushed {item.digest}; another push may have raced this one"
            )
        session.console.stage("verify", f"{item.reference} is in the registry")


def _report_plan(plan: Plan, repository: Repository, console: Console) -> None:
    words = {
        planning.CREATE: "create",
        planning.MOVE: "move",
        planning.SKIP: "unchanged, skip",
        planning.HOLD: "hold back",
        planning.REFUSE: "REFUSE",
        planning.CHECK: "check",
    }
    for d in plan.decisions:
        console.stage("plan", f"{repository.canonical(d.tag)}: {words[d.action]} ({d.reason})")


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def release(
    settings: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    session: Session | None = None,
) -> Release:
    """validate → pre_release → login → read the registry → build → plan → tag → push →
    verify → post_release.

    With `dry_run`, stop after the plan: nothing is built, tagged or pushed, and no hook runs.
    The plan compares with the local image of the first tag when one with the same labels
    exists.
    """
    settings.require("release")
    check_context(settings)
    repository = _repository(settings)
    session = _session(settings, session)
    git = read_git(settings.cwd)
    tags = resolve_tags(settings, git, allow_dirty=allow_dirty, chained=session.tags)
    labels = labels_for(settings, git, tags)
    watch = Stopwatch()
    with watch.time("connect"):
        engine = session.engine_for(settings)
    facts = _facts("release", repository, tags)
    if not dry_run:
        session.hooks.run("pre", facts)
    with watch.time("login"):
        login(settings, session=session)
    with watch.time("plan"), session.console.activity("plan", "reading the registry"):
        registry = _registry(settings)
        published = session.retrying(f"listing the tags of {repository}", registry.tags)
        remote = _read_remote(registry, tags, session, published)

    if dry_run:
        image_id = engine.image_id(repository.ref(tags[0]))
        current = engine.image_labels(image_id) if image_id else {}
        if image_id is not None and any(current.get(k) != v for k, v in labels.items()):
            image_id = None  # built from something else; the real build decides
        plan = planning.decide(
            list(tags), image_id=image_id, remote=remote, published=published, force=force
        )
        commands = planning.equivalent_commands(
            registry=repository.registry,
            username=settings.username or "",
            local_name=repository.local_name,
            plan=plan,
            dockerfile=_relative(settings.dockerfile, settings.cwd),
            context=_relative(settings.context, settings.cwd),
            build_args=settings.build_args,
            labels=labels,
        )
        return Release(repository, plan, timings=watch.timings, commands=commands, dry_run=True)

    with watch.time("build"):
        image = build(settings, tags=tags[:1], labels=labels, session=session)
    plan = planning.decide(
        list(tags), image_id=image.image_id, remote=remote, published=published, force=force
    )
    _report_plan(plan, repository, session.console)
    if plan.refused:
        raise _refuse(plan, repository)
    later = [d.tag for d in plan.decisions[1:] if d.action != planning.HOLD]
    if later:
        with watch.time("tag"):
            tag_facts = _facts("tag", repository, later)
            tag_facts.image_id = image.image_id
            session.hooks.run("pre", tag_facts)
            for name in later:
                engine.tag(image.image_id, repository, name)
            session.hooks.run("post", tag_facts)
    push_facts = _facts("push", repository, [d.tag for d in plan.to_push])
    session.hooks.run("pre", push_facts)
    with watch.time("push"):
        pushed = _push_tags(
            settings,
            [d.tag for d in plan.to_push],
            session=session,
            image_ids=dict.fromkeys(tags, image.image_id),
        )
    with watch.time("verify"):
        verify(settings, pushed, session=session)
    by_tag = {p.tag: p for p in pushed + _skipped(plan, repository)}
    published_now = [by_tag[t] for t in tags if t in by_tag]
    _fill(push_facts, pushed, watch)
    session.hooks.run("post", push_facts)
    result = Release(repository, plan, image=image, published=published_now, timings=watch.timings)
    _fill(facts, published_now, watch)
    facts.image_id = image.image_id
    session.hooks.run("post", facts)
    return result
