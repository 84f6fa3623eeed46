"""What the BuildKit path takes from the command line: which builder, the build secrets
(`--secret`, as `docker build` spells them) and the SSH agents (`--ssh`). Pure, apart from
reading the secrets' files and variables and finding the agents' sockets at the moment of the
build."""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hubtasks.errors import ConfigError, HubError
from hubtasks.settings import destinations
from hubtasks.settings.resolve import Settings

BUILDERS = ("auto", "buildkit", "classic")
# The Engine API that serves `POST /build?version=2` and `POST /session` (Docker 18.09).
BUILDKIT_API = (1, 39)
# The Engine API of Docker 23.0, whose BuildKit (0.11) keeps the inline cache of the steps it
# took from an image named only in the registry; Engine 20.10's drops it (moby/buildkit#1981,
# #2274), so there the cache image is pulled first (pipeline/cache.py).
INLINE_CACHE_API = (1, 42)
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def api_at_least(api_version: str, wanted: tuple[int, int]) -> bool:
    """Whether the daemon's API version (`1.41`) is `wanted` or newer."""
    try:
        version = tuple(int(part) for part in api_version.split(".")[:2])
    except ValueError:
        return False
    return version >= wanted


def choose_builder(setting: str, daemon_os: str, api_version: str) -> tuple[str, str]:
    """`buildkit` or `classic`, and why (what `inv doctor` says)."""
    if setting not in BUILDERS:
        raise ConfigError(
            f"HUB_BUILDER={setting!r} is not a builder: use one of {', '.join(BUILDERS)}"
        )
    if setting != "auto":
        return setting, f"asked for (HUB_BUILDER={setting})"
    if daemon_os != "linux":
        return "classic", f"the daemon runs {daemon_os or 'an unknown OS'} (BuildKit: Linux only)"
    if not api_at_least(api_version, BUILDKIT_API):
        return "classic", f"the daemon's API {api_version} is older than 1.39 (BuildKit)"
    return "buildkit", f"the daemon runs Linux with API {api_version} (≥ 1.39)"


def _anonymous(_: str) -> tuple[str, str] | None:
    return None


@dataclass(frozen=True)
class BuildKitRun:
    """What a build on the BuildKit path takes besides the classic builder's arguments."""

    target: str = ""
    secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    ssh: Mapping[str, str] = field(default_factory=dict, repr=False)  # id → agent's socket
    network: str = ""  # "": the daemon's default (none when it has no bridge network)
    no_cache: bool = False
    pull: bool = False
    # SOURCE_DATE_EPOCH given to hubtasks: passed on as a build argument (BuildKit ≥ 0.11
    # stamps image timestamps with it; Engine 20.10's BuildKit only hands it to an `ARG`).
    source_date_epoch: int | None = None
    # registry host → (user, secret), asked by the daemon through the session
    credentials: Callable[[str], tuple[str, str] | None] = field(default=_anonymous, repr=False)


@dataclass(frozen=True)
class Secret:
    """One `--secret`: its id (what `RUN --mount=type=secret,id=…` names) and where its
    value comes from: a file (`src`) or an environment variable (`env`)."""

    id: str
    src: str = ""
    env: str = ""

    @property
    def spec(self) -> str:
        """As `docker buildx build --secret` takes it."""
        source = f",src={self.src}" if self.src else f",env={self.env}" if self.env else ""
        return f"id={self.id}{source}"


def parse_secret(spec: str) -> Secret:
    """`id=NAME[,src=PATH|,env=VAR]` (also `source=`, and `type=file|env`); only `id=NAME`:
    the variable NAME, as buildx reads it."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        key = "src" if key == "source" else key
        if not sep or key not in ("id", "src", "env", "type") or not value:
            raise ConfigError(
                f"--secret {_shown(spec)} is not id=NAME[,src=PATH|,env=VAR] (HUB_SECRETS)"
            )
        fields[key] = value
    secret_id = fields.get("id", "")
    if not _ID.match(secret_id):
        raise ConfigError(f"--secret {_shown(spec)} needs id=NAME (letters, digits, . _ -)")
    if "src" in fields and "env" in fields:
        raise ConfigError(f"--secret id={secret_id} takes src= or env=, not both")
    kind = fields.get("type", "")
    if kind not in ("", "file", "env"):
        raise ConfigError(f"--secret id={secret_id}: type={kind} is not file or env")
    if kind == "env" and "src" in fields:
        return Secret(secret_id, env=fields["src"])
    if "src" in fields or kind == "file":
        return Secret(secret_id, src=fields.get("src", secret_id))
    return Secret(secret_id, env=fields.get("env", secret_id))


def spec_id(spec: str) -> str:
    """A `--secret` spec's id, as written (what the inputs digest covers)."""
    for part in spec.split(","):
        key, _, value = part.strip().partition("=")
        if key == "id":
            return value
    return ""


def _shown(spec: str) -> str:
    """A spec as an error may show it: ids and paths, never what follows an `=` we do not
    know (a value pasted in by mistake)."""
    return ",".join(
        part if part.partition("=")[0] in ("id", "src", "source", "env", "type") else "…"
        for part in spec.split(",")
    )


def parse_secrets(specs: Iterable[str]) -> tuple[Secret, ...]:
    secrets = tuple(parse_secret(spec) for spec in specs if spec.strip())
    ids = [secret.id for secret in secrets]
    twice = sorted({name for name in ids if ids.count(name) > 1})
    if twice:
        raise ConfigError(f"--secret id={twice[0]} is given twice")
    return secrets


def read_secrets(secrets: Iterable[Secret], environ: Mapping[str, str]) -> dict[str, bytes]:
    """Each secret's value, read now; a missing file or variable is one line naming it."""
    values: dict[str, bytes] = {}
    for secret in secrets:
        if secret.src:
            path = os.path.expanduser(secret.src)
            try:
                with open(path, "rb") as file:
                    values[secret.id] = file.read()
            except OSError as error:
                raise ConfigError(
                    f"--secret id={secret.id}: cannot read {secret.src}: {error.strerror or error}"
                ) from None
        elif secret.env in environ:
            values[secret.id] = environ[secret.env].encode()
        else:
            raise ConfigError(
                f"--secret id={secret.id}: the environment variable {secret.env} is not set"
            )
    return values


@dataclass(frozen=True)
class SshAgent:
    """One `--ssh`: its id (what `RUN --mount=type=ssh,id=…` names; "default" when the mount
    names none) and what was given for it: nothing (SSH_AUTH_SOCK) or paths."""

    id: str
    paths: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """As `docker buildx build --ssh` takes it."""
        return f"{self.id}={','.join(self.paths)}" if self.paths else self.id


def parse_ssh(specs: Iterable[str]) -> tuple[SshAgent, ...]:
    """`default` or `ID` (the agent of SSH_AUTH_SOCK), `ID=PATH` (an agent's socket), as
    `docker build --ssh` takes them; an id given twice is refused."""
    agents = []
    for spec in specs:
        if not spec.strip():
            continue
        name, sep, rest = spec.strip().partition("=")
        if not _ID.match(name):
            raise ConfigError(
                f"--ssh {_shown_ssh(spec)} is not default or ID=SOCKET (letters, digits, . _ -)"
            )
        paths = tuple(path for path in rest.split(",") if path) if sep else ()
        if sep and not paths:
            raise ConfigError(f"--ssh {name}= needs the path of an SSH agent's socket")
        agents.append(SshAgent(name, paths))
    ids = [agent.id for agent in agents]
    twice = sorted({name for name in ids if ids.count(name) > 1})
    if twice:
        raise ConfigError(f"--ssh {twice[0]} is given twice")
    return tuple(agents)


def _shown_ssh(spec: str) -> str:
    name = spec.strip().partition("=")[0]
    return f"{name}=…" if "=" in spec else name


def ssh_sockets(agents: Iterable[SshAgent], environ: Mapping[str, str]) -> dict[str, str]:
    """Each agent's socket, checked now (id → path): a key file instead of a socket is
    refused, the docker CLI's in-process agent is not something hubtasks makes."""
    sockets = {}
    for agent in agents:
        if not agent.paths:
            path = environ.get("SSH_AUTH_SOCK", "")
            if not path:
                raise ConfigError(
                    f"--ssh {agent.id}: SSH_AUTH_SOCK is not set, no SSH agent to forward; "
                    f"start one (eval $(ssh-agent); ssh-add) or give --ssh {agent.id}=SOCKET"
                )
            sockets[agent.id] = _agent_socket(agent.id, path, "SSH_AUTH_SOCK")
            continue
        for path in agent.paths:
            _agent_socket(agent.id, path, path)
        if len(agent.paths) > 1:
            raise ConfigError(f"--ssh {agent.id}: give one agent socket, not several")
        sockets[agent.id] = os.path.expanduser(agent.paths[0])
    return sockets


def _agent_socket(ssh_id: str, path: str, named: str) -> str:
    """`path` when it is a socket; else one line: what it is, and what to do."""
    try:
        mode = os.stat(os.path.expanduser(path)).st_mode
    except OSError as error:
        raise ConfigError(
            f"--ssh {ssh_id}: {named} is not an SSH agent's socket: {error.strerror or error}"
        ) from None
    if stat.S_ISSOCK(mode):
        return os.path.expanduser(path)
    if stat.S_ISREG(mode):
        raise ConfigError(
            f"--ssh {ssh_id}: {named} is a file, not an SSH agent's socket; hubtasks forwards "
            f"an agent, never a key: load the key with ssh-add {shlex.quote(path)} and give "
            f"--ssh {ssh_id} (the agent of SSH_AUTH_SOCK)"
        )
    raise ConfigError(f"--ssh {ssh_id}: {named} is not an SSH agent's socket")


def buildx_command(
    *,
    dockerfile: str,
    context: str,
    ref: str,
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    platform: str | None = None,
    target: str = "",
    secrets: Iterable[Secret] = (),
    ssh: Iterable[SshAgent] = (),
    network: str = "",
    no_cache: bool = False,
    pull: bool = False,
    cache_from: Iterable[str] = (),
) -> str:
    """The `docker buildx build …` that builds what hubtasks' BuildKit build does."""
    words = ["docker", "buildx", "build", "--load", "-f", dockerfile, "-t", ref]
    if platform:
        words += ["--platform", platform]
    if target:
        words += ["--target", target]
    if network:
        words += ["--network", network]
    words += [word for secret in secrets for word in ("--secret", secret.spec)]
    words += [word for agent in ssh for word in ("--ssh", agent.spec)]
    words += ["--no-cache"] * no_cache + ["--pull"] * pull
    words += [word for image in cache_from for word in ("--cache-from", image)]
    for name, value in build_args.items():
        words += ["--build-arg", f"{name}={value}"]
    for name, value in labels.items():
        words += ["--label", f"{name}={value}"]
    words.append(context)
    return shlex.join(words)


_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class StoredLogin(Protocol):
    """What `docker login` left for a registry (`daemon.credentials.DockerCredentials`)."""

    @property
    def username(self) -> str | None: ...

    @property
    def secret(self) -> str: ...

    @property
    def identity_token(self) -> bool: ...


def session_logins(
    settings: Settings,
    hide: Callable[[str], None],
    stored: Callable[[str], StoredLogin | None] | None = None,
) -> Callable[[str], tuple[str, str] | None]:
    """The login the session answers the daemon with for a registry host, as the docker CLI
    does: HUB_USERNAME/HUB_TOKEN for HUB_REGISTRY, HUB_REGISTRY_<HOST>_USERNAME/_TOKEN for
    another, else what `docker login` left (`stored`; an identity token goes without a user
    name). Each host is looked up once; a secret found is added to the redaction set first."""
    username, token, registry = settings.username, settings.token, settings.registry
    hosts = _HUB_HOSTS if registry in _HUB_HOSTS else (registry,)
    found: dict[str, tuple[str, str] | None] = {}

    def lookup(host: str) -> tuple[str, str] | None:
        if username and token and host in hosts:
            return username, token
        user, secret = destinations.credentials_for(settings, host)
        if user and secret:
            return user, secret
        try:
            login = stored("docker.io" if host in _HUB_HOSTS else host) if stored else None
        except HubError:  # a helper that fails: the daemon goes on anonymously
            return None
        if login is None or not login.secret:
            return None
        hide(login.secret)
        return ("" if login.identity_token else login.username or ""), login.secret

    def credentials(host: str) -> tuple[str, str] | None:
        if host not in found:
            found[host] = lookup(host)
        return found[host]

    return credentials


def run_for(
    settings: Settings,
    environ: Mapping[str, str],
    hide: Callable[[str], None],
    stored: Callable[[str], StoredLogin | None] | None = None,
) -> BuildKitRun:
    """A BuildKit build's options from the settings: secrets read now (each value handed to
    `hide`, the redaction set, first) and the registry logins answered through the session
    (`session_logins`)."""
    sockets = ssh_sockets(parse_ssh(settings.ssh), environ)
    values = read_secrets(parse_secrets(settings.secret_specs), environ)
    for value in values.values():
        hide(value.decode("utf-8", "replace"))
    credentials = session_logins(settings, hide, stored)
    return BuildKitRun(
        target=settings.target or "",
        secrets=values,
        ssh=sockets,
        network=settings.network or "",
        no_cache=settings.no_cache,
        pull=settings.pull,
        source_date_epoch=settings.source_date_epoch,
        credentials=credentials,
    )


def refuse_on_classic(settings: Settings, why: str) -> None:
    """What only BuildKit does, asked of the classic builder: one line that says so."""
    asked = [
        flag
        for flag, given in (
            ("--target", settings.target),
            ("--secret", settings.secret_specs),
            ("--ssh", settings.ssh),
            ("--network", settings.network),
            ("--no-cache", settings.no_cache),
            ("--pull", settings.pull),
        )
        if given
    ]
    if asked:
        raise ConfigError(
            f"{asked[0]} needs the BuildKit builder, and the classic builder is used: {why}"
        )
