"""`KEYS`: the one table of settings.

Each row is one setting, declared once: its `hub.*` name (also the `Settings` field), the
environment variable (derived from the name), default, kind and, when it has one, its
command-line flag with short form, value placeholder, help and the tasks that take it. The
resolver (`resolve.py`) parses each value by its kind; the task layer (`cli/flags.py`) builds
every flag (help text, repeatable flags, `--[no-]…` forms) and every task's parameters from
these rows. Adding a setting with a flag is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubtasks.references import DOCKER_HUB

# HUB_CACHE_FROM's words besides image references (pipeline/cache.py decides "auto").
CACHE_AUTO, CACHE_NONE = "auto", "none"

# The kinds a key may have; `resolve.py` has one parser per kind.
KINDS = (
    "text",  # a string, stripped; empty is unset
    "secret",  # a string never shown (no flag)
    "registry",  # host[:port], normalised (docker.io is Docker Hub)
    "repositories",  # [REGISTRY/]namespace/name, several (after `registry` and `username`)
    "list",  # several values (repeated flag, or comma/space separated); each an `item`
    "pairs",  # NAME=VALUE shell words (repeated flag); `item` names a pair in errors
    "bool",  # yes/no; a flag gets a `--no-…` form; unset stays None when the default is None
    "int",  # a whole number, at least `minimum`
    "number",  # a number, at least `minimum`
    "path",  # a path relative to the current folder
    "url",  # an http(s) URL, without a trailing slash
    "choice",  # one of `choices` (case-insensitive)
    "hook",  # a shell command run around a stage (`Settings.hooks`)
)

# Tasks that name the image they work on, and groups of tasks that take the same flags.
_ON_A_REPOSITORY = (
    "login",
    "build",
    "tag",
    "push",
    "release",
    "promote",
    "doctor",
    "images",
    "describe",
    "prune",
)
_WITH_TAGS = ("build", "tag", "push", "release", "promote", "doctor")
_BUILDING = ("build", "release")  # tasks that build (doctor checks some of their inputs)
_PUBLISHING = ("release", "promote")  # tasks that decide the tags of a release


@dataclass(frozen=True, kw_only=True)
class Key:
    """One setting, declared once: its `hub.*` name (also the `Settings` field), default,
    kind and, when it has one, its command-line flag with short form, value placeholder and
    help. The environment variable is derived from the name; the task layer builds every
    flag (help text, repeatable flags, `--no-…` forms) from these rows."""

    name: str
    default: object = None
    kind: str = "text"  # one of KINDS
    flag: str | None = None  # "--tag"; None: settings only, never a flag
    short: str | None = None  # "-t"
    metavar: str | None = None  # the value of a repeatable flag in --help: TAG, NAME=VALUE
    help: str = ""  # what the flag does (flags only)
    shown_default: str | None = None  # the default in words, when `default` does not say it
    tasks: tuple[str, ...] = ()  # the Invoke tasks that take the flag (cli/flags.py)
    item: str = ""  # list: what each item is (tag, platform, image); pairs: what a pair is
    choices: tuple[str, ...] = ()  # choice: the words it takes, the first is the default
    minimum: float = 0  # int, number: the smallest value
    field: str = ""  # the `Settings` field, when it is not `name`

    @property
    def env(self) -> str:
        return f"HUB_{self.name.upper()}"

    @property
    def attribute(self) -> str:
        """The `Settings` field this key fills (hooks fill `Settings.hooks`)."""
        return self.field or self.name

    @property
    def parameter(self) -> str | None:
        """The task parameter that carries the flag: --build-arg → build_arg."""
        return self.flag.removeprefix("--").replace("-", "_") if self.flag else None


# The stages a hook can run around (hooks.py runs them); a setting per hook, e.g. HUB_PRE_PUSH.
STAGES = ("login", "build", "tag", "push", "release")
HOOK_NAMES = tuple(f"{side}_{stage}" for stage in STAGES for side in ("pre", "post"))

KEYS: tuple[Key, ...] = (
    Key(
        name="registry",
        default=DOCKER_HUB,
        kind="registry",
        flag="--registry",
        short="-e",
        help="Registry host[:port]; docker.io is Docker Hub",
        tasks=("logout", *_ON_A_REPOSITORY),
    ),
    Key(name="username"),
    Key(name="token", kind="secret"),  # never a flag: it would show in the process list
    Key(
        name="repository",
        kind="repositories",
        flag="--repository",
        short="-r",
        metavar="REPOSITORY",
        help="Repository as [REGISTRY/]namespace/name (a bare name means HUB_USERNAME/name); "
        "several (repeated or space separated): the first is pushed, the others get copies",
        tasks=_ON_A_REPOSITORY,
    ),
    Key(
        name="tags",
        kind="list",
        flag="--tag",
        short="-t",
        metavar="TAG",
        help="Tag to build or push",
        shown_default="the git tag at HEAD, else sha-<short sha>",
        tasks=_WITH_TAGS,
        item="tag",
    ),
    Key(
        name="dockerfile",
        default="Dockerfile",
        kind="path",
        flag="--dockerfile",  # no short flag: `inv -d` is Invoke's debug flag
        help="Path of the Dockerfile, relative to the current folder",
        tasks=(*_BUILDING, "doctor"),
    ),
    Key(
        name="context",
        default=".",
        kind="path",
        flag="--context",
        short="-c",
        help="Build context folder",
        tasks=(*_BUILDING, "doctor"),
    ),
    Key(
        name="build_args",
        kind="pairs",
        flag="--build-arg",
        short="-b",
        metavar="NAME=VALUE",
        help="Build argument",
        tasks=_BUILDING,
        item="build argument",
    ),
    Key(
        name="semver",
        default=False,
        kind="bool",
        flag="--semver",
        short="-s",
        help="Fan a version tag out: v1.2.3 also publishes v1.2, v1 and latest, each moved "
        "only forward",
        tasks=_PUBLISHING,
    ),
    Key(
        name="latest",
        default=False,
        kind="bool",
        flag="--latest",
        help="Also publish latest, moved only forward",
        tasks=_PUBLISHING,
    ),
    Key(
        name="labels",
        kind="pairs",
        flag="--label",
        short="-l",
        metavar="NAME=VALUE",
        help="Image label, added to or overriding the OCI labels",
        tasks=_BUILDING,
        item="label",
    ),
    Key(
        name="platforms",
        kind="list",
        flag="--platform",
        metavar="OS/ARCH",
        help="Platform to build, e.g. linux/arm64; several (repeated or comma separated) "
        "publish one multi-platform image",
        shown_default="the daemon's own",
        tasks=(*_BUILDING, "doctor"),
        item="platform",
    ),
    Key(
        name="cache_from",
        default=CACHE_AUTO,
        kind="list",
        flag="--cache-from",
        metavar="REF",
        help="Image whose layers the build may reuse (pulled first; BuildKit takes the steps "
        "its inline cache names): a reference or a tag of the "
        "repository; auto (the newest release when the daemon lacks it) or none",
        tasks=_BUILDING,
        item="image",
    ),
    # The BuildKit path (build/buildkit): which builder, and the flags docker build has for it.
    Key(
        name="builder",
        default="auto",
        kind="choice",
        choices=("auto", "buildkit", "classic"),
        flag="--builder",
        help="auto (BuildKit when the daemon runs Linux with API 1.39 or newer, else the "
        "classic builder), buildkit or classic",
        tasks=(*_BUILDING, "doctor"),
    ),
    Key(
        name="target",
        flag="--target",
        help="Build only up to this stage (BuildKit)",
        tasks=_BUILDING,
    ),
    Key(
        name="secrets",
        kind="list",
        flag="--secret",
        metavar="id=NAME[,src=PATH|,env=VAR]",
        help="A build secret for RUN --mount=type=secret (BuildKit); never in the image, the "
        "output or the inputs digest (its id is)",
        tasks=_BUILDING,
        item="secret",
        field="secret_specs",  # the specs as given: values are read at build time
    ),
    Key(
        name="ssh",
        kind="list",
        flag="--ssh",
        metavar="default|ID=SOCKET",
        help="An SSH agent forwarded, read-only, to RUN --mount=type=ssh (BuildKit); default: "
        "the agent of SSH_AUTH_SOCK. Keys stay in the agent; the inputs digest covers the id, "
        "never the socket",
        tasks=_BUILDING,
        item="ssh",
    ),
    Key(
        name="network",
        flag="--network",
        help="Network of RUN steps (BuildKit): default, none or host",
        shown_default="the daemon's default; none when it has no bridge network",
        tasks=_BUILDING,
    ),
    Key(
        name="no_cache",
        default=False,
        kind="bool",
        flag="--no-cache",
        help="Build every step again (BuildKit)",
        tasks=_BUILDING,
    ),
    Key(
        name="pull",
        default=False,
        kind="bool",
        flag="--pull",
        help="Resolve the base images in the registry again (BuildKit)",
        tasks=_BUILDING,
    ),
    Key(name="retries", default=5, kind="int", minimum=1),
    Key(name="timeout", default=120, kind="number", minimum=1),
    Key(name="retry_delay", default=1.0, kind="number", minimum=0),
    *(Key(name=name, kind="hook") for name in HOOK_NAMES),
    # The Docker Hub page and tag retention (describe.py, prune.py, hub.py).
    Key(name="api_url", kind="url"),  # Docker Hub web API URL (default https://hub.docker.com)
    Key(
        name="readme",
        kind="path",
        flag="--readme",
        help="File whose text becomes the Docker Hub overview",
        shown_default="README.md",
        tasks=("describe",),
    ),
    Key(
        name="description",
        flag="--description",
        help="Docker Hub short description (at most 100 characters)",
        tasks=("describe",),
    ),
    Key(
        name="visibility",
        default="public",
        kind="choice",
        choices=("public", "private"),
        flag="--visibility",
        help="public or private: the visibility of a Docker Hub repository describe creates",
        tasks=("describe",),
    ),
    # How stderr looks: auto (a terminal gets bars and spinners), plain lines, or rich.
    Key(name="progress", default="auto", kind="choice", choices=("auto", "plain", "rich")),
    # Reach the registry over plain HTTP (or HTTPS unverified) as the daemon's
    # insecure-registries does; unset (None): ask the daemon (release, push), else no.
    Key(name="insecure", kind="bool"),
    Key(
        name="describe",
        default=False,
        kind="bool",
        flag="--describe",
        help="Update the Docker Hub page after a verified release (a failure is a warning "
        "unless --strict)",
        tasks=("release",),
        field="describe_after_release",  # `describe` would read as a verb
    ),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}
