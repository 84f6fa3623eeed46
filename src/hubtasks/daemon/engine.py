"""The only module that imports `docker`: build (per platform), tag, push, pull, inspect and
list images, the `.dockerignore` matcher (`context_paths`, `context_includes`). The Docker
config's credentials are `daemon.credentials`'s. It does no login: hubtasks
checks credentials over the registry API (`registry.py`) and hands them to each push.

It turns the Docker SDK's many failure shapes (exceptions, HTTP 500s carrying a registry's 401,
error lines inside a 200 stream) into the `HubError` subclasses the rest of hubtasks speaks,
with their fields set: a daemon's error message is read once, by `read_daemon_message`.
`docker` is imported on first use so that `inv --list` stays fast.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hubtasks.build.buildkit.options import BuildKitRun, choose_builder
from hubtasks.build.context import BuildContext, base_images, ignore_patterns
from hubtasks.daemon.credentials import docker_config_path
from hubtasks.errors import AuthError, BuildError, ConfigError, DaemonError, HubError, PushError
from hubtasks.platforms import same_platform
from hubtasks.references import Repository
from hubtasks.registry.transport import immutable_refusal, says_immutable

# Pushes of large layers can keep a single read waiting for minutes.
DEFAULT_TIMEOUT = 600
_DEFAULT_HOST = "unix:///var/run/docker.sock"
# How the daemon says a pulled tag or repository does not exist (Distribution and Docker Hub).
_MISSING_MARKERS = ("not found", "manifest unknown", "name unknown", "does not exist")
_BUILDKIT_HINT = (
    "; hubtasks builds through the Docker API's classic builder, which has no BuildKit "
    "features (RUN --mount, # syntax=)"
)
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

OutputHandler = Callable[[str], None]
ProgressHandler = Callable[[Mapping[str, Any]], None]


def _short(error: BaseException) -> str:
    """The most useful single line of a Docker SDK or requests error."""
    explanation = getattr(error, "explanation", None)
    text = str(explanation or error).strip()
    return " ".join(text.split())


def _stream_error(line: Mapping[str, Any]) -> str | None:
    """The message of an error line in a daemon's JSON stream (build, pull, push, load), on
    one line; None for any other line."""
    if "error" not in line and "errorDetail" not in line:
        return None
    detail = line.get("errorDetail") or {}
    return " ".join(str(detail.get("message") or line.get("error") or "").split())


def _causes(error: BaseException) -> Iterator[BaseException]:
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


def _import_docker(host: str) -> Any:
    """`import docker`, without paramiko unless the daemon is reached over ssh://: the SDK
    imports it whenever it is installed, which costs ~30 ms and ~13 MB for nothing."""
    if "docker" in sys.modules or host.startswith("ssh://") or "paramiko" in sys.modules:
        import docker

        return docker
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # makes `import paramiko` fail
    try:
        import docker
    finally:
        del sys.modules["paramiko"]
    return docker


def import_sdk(host: str) -> None:
    """Import the Docker SDK now (on a worker thread while another does other work)."""
    _import_docker(host)


def context_includes(context: Path, path: Path, docker_host: str = "") -> bool:
    """Whether `path` would be sent in the build context, honouring `.dockerignore`."""
    _import_docker(docker_host)
    try:
        relative = path.resolve().relative_to(context.resolve())
    except ValueError:
        return False
    return not _matcher(ignore_patterns(context)).matches(str(relative))


def context_paths(context: Path, docker_host: str = "") -> tuple[str, ...]:
    """What `.dockerignore` lets through, as the CLI decides it: relative paths, sorted. The
    Dockerfile is not forced in: hubtasks sends a generated copy."""
    _import_docker(docker_host)
    root = context.resolve()
    try:
        return tuple(sorted(_matcher(ignore_patterns(context)).walk(str(root))))
    except OSError as error:  # a folder that cannot be listed: the CLI refuses too
        where = error.filename or root
        raise ConfigError(
            f"cannot read {where} in the build context ({error.strerror or error}); fix its "
            "permissions or list it in .dockerignore"
        ) from None


def _matcher(patterns: list[str]) -> Any:
    """The SDK's `.dockerignore` matcher, matching case-sensitively as the Docker CLI does on
    Linux (the SDK lower-cases names and patterns: `build` also dropped `Build/`)."""
    from docker.utils import build
    from docker.utils.fnmatch import fnmatchcase

    class CasePattern(build.Pattern):
        def match(self, filepath: str) -> bool:
            return bool(fnmatchcase(build.normalize_slashes(filepath), self.cleaned_pattern))

    matcher = build.PatternMatcher([])
    matcher.patterns = [p for p in map(CasePattern, patterns) if p.dirs]
    matcher.patterns.append(CasePattern("!.dockerignore"))  # as the SDK: always sent
    return matcher


@dataclass(frozen=True)
class LocalImage:
    id: str
    size: int | None
    labels: dict[str, str]
    platform: str = ""  # os/architecture[/variant]


class Engine:
    """A connection to one Docker daemon, configured like the docker CLI (DOCKER_HOST, …)."""

    def __init__(self, environment: Mapping[str, str], *, timeout: int = DEFAULT_TIMEOUT):
        self.host = environment.get("DOCKER_HOST") or _DEFAULT_HOST
        self.environment = dict(environment)
        with self._daemon_errors("connect to"):
            docker = _import_docker(self.host)
            self._docker = docker
            options = docker.utils.kwargs_from_env(environment=dict(environment))
            if str(options.get("base_url", "")).startswith("ssh://"):
                options["use_ssh_client"] = True  # the system ssh: its config, keys, agent
            # Ask the daemon's API version ourselves (what version="auto" does) on a session
            # that ignores REQUESTS_CA_BUNDLE & co.: they must not replace DOCKER_CERT_PATH's
            # CA, and the daemon is never reached through an HTTP proxy (docker-py#2433).
            probe = docker.APIClient(
                version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=30, **options
            )
            probe.trust_env = False
            try:
                info = probe.version(api_version=False)
            finally:
                probe.close()
            server_version = info["ApiVersion"]
            self._api_version = str(server_version)
            self._network: str | None = None
            # The daemon's own platform comes with the same answer: no second request.
            self._platform = f"{info.get('Os', 'linux')}/{info.get('Arch', 'amd64')}"
            self.client = docker.DockerClient(version=server_version, timeout=timeout, **options)
            self.client.api.trust_env = False

    @contextmanager
    def _daemon_errors(self, action: str) -> Iterator[None]:
        """Translate connection-level failures into one `DaemonError` naming the host."""
        import warnings

        import requests

        try:
            with warnings.catch_warnings():
                # docker.credentials warns (a multi-line UserWarning) about a missing helper
                # before failing; the failure below says it in one line.
                warnings.simplefilter("ignore")
                yield
        except requests.exceptions.RequestException as error:
            raise DaemonError(self._unreachable(action, error)) from None
        except Exception as error:
            docker = sys.modules.get("docker")
            if docker is None:
                raise
            from docker.credentials.errors import StoreError

            # The SDK reports a helper's failure as a DockerException raised while handling
            # the helper's StoreError.
            if isinstance(error, StoreError) or isinstance(error.__context__, StoreError):
                raise DaemonError(self._credential_store_error(error)) from None
            if type(error) in (docker.errors.DockerException, docker.errors.TLSParameterError):
                raise DaemonError(self._unreachable(action, error)) from None
            raise

    def _unreachable(self, action: str, error: BaseException) -> str:
        detail = _short(error)
        if "paramiko" in detail:
            return (
                f"DOCKER_HOST={self.host} needs the paramiko package for ssh:// daemons: "
                "pip install 'hubtasks[ssh]'"
            )
        causes = list(_causes(error))
        if any(isinstance(cause, FileNotFoundError) for cause in causes):
            reason = "no daemon is listening there"
        elif any(isinstance(cause, ConnectionRefusedError) for cause in causes):
            reason = "connection refused"
        elif any(isinstance(cause, PermissionError) for cause in causes):
            reason = "permission denied on the socket (add your user to the docker group)"
        else:
            reason = detail
        return (
            f"cannot {action} the Docker daemon at {self.host}: {reason}; "
            "start Docker or point DOCKER_HOST at a running daemon"
        )

    def _credential_store_error(self, error: BaseException) -> str:
        detail = _short(error).removeprefix("Credentials store error: ")
        detail = re.sub(r"^StoreError\((['\"])(.*)\1\)$", r"\2", detail)
        return (
            f"the Docker credential helper failed: {detail}; fix or remove 'credsStore'/"
            f"'credHelpers' in {docker_config_path(self.environment)}"
        )

    def version(self) -> Mapping[str, Any]:
        with self._daemon_errors("query"):
            version: Mapping[str, Any] = self.client.version()
        return version

    def registry_config(self) -> Mapping[str, Any]:
        """`GET /info`'s RegistryConfig: which registries the daemon reaches without TLS
        verification (`IndexConfigs[host].Secure`, `InsecureRegistryCIDRs`)."""
        with self._daemon_errors("query"):
            info: Mapping[str, Any] = self.client.info()
        config = info.get("RegistryConfig")
        return config if isinstance(config, Mapping) else {}

    def platform(self) -> str:
        """The daemon's own platform, `os/arch` (from the version query made on connecting):
        what it builds when none is asked for."""
        return self._platform

    def builder(self, setting: str) -> tuple[str, str]:
        """`buildkit` or `classic` for this daemon (HUB_BUILDER), and why."""
        return choose_builder(setting, self._platform.split("/")[0], self._api_version)

    @contextmanager
    def _foreign_hints(self, platform: str | None, bases: Iterable[str]) -> Iterator[None]:
        """A BuildKit build for another platform than the daemon's that fails: a base image
        held only for another platform, or a `RUN` the daemon cannot execute, said so."""
        try:
            yield
        except BuildError as error:
            if platform is None or self.platform().startswith(platform):
                raise
            text = error.message
            for base in bases if "load metadata for" in text else ():
                local = self.inspect(base)
                if local and local.platform and not same_platform(platform, local.platform):
                    raise error.evolve(
                        f"the base image {base} has no {platform} image here: the daemon holds "
                        f"it for {local.platform} only; push a {platform} version of {base}, or "
                        f"leave {platform} out of --platform (HUB_PLATFORMS)"
                    ) from None
            cannot_run = "exec format error" in text.lower()
            if cannot_run or "] RUN " in text:
                raise error.evolve(text + _emulation_hint(platform, certain=cannot_run)) from None
            raise

    def _default_network(self) -> str:
        """ "" (the daemon's default), or "none" on a daemon without a `bridge` network
        (`dockerd --bridge=none`), where BuildKit's RUN fails with "network bridge not found"."""
        if self._network is None:
            with self._daemon_errors("query"):
                names = {n.name for n in self.client.networks.list(names=["bridge"])}
            self._network = "" if "bridge" in names else "none"
        return self._network

    def check_platforms(self, platforms: Iterable[str]) -> None:
        """Refuse platforms of another OS than the daemon's before anything is built: a linux
        daemon cannot even load a windows image, and the classic builder, handed one, looks
        for the `FROM` image on Docker Hub instead of saying so."""
        own_os = self._platform.split("/")[0]
        other = [platform for platform in platforms if platform.split("/")[0] != own_os]
        if other:
            them = "it" if len(other) == 1 else "them"
            raise ConfigError(
                f"the Docker daemon at {self.host} runs {own_os}; it cannot build "
                f"{', '.join(other)}: leave {them} out of --platform (HUB_PLATFORMS)"
            )

    def build(
        self,
        *,
        context: BuildContext,
        ref: str | None,
        build_args: Mapping[str, str],
        on_output: OutputHandler,
        platform: str | None = None,
        cache_from: tuple[str, ...] | list[str] = (),
        buildkit: BuildKitRun | None = None,
    ) -> str:
        """Build from the streamed context (its generated Dockerfile carries the labels),
        showing the daemon's output as it comes; tag it `ref` when given; return the image ID.
        `cache_from` names local images whose layers steps may reuse (the classic builder
        then takes a local cache hit only from their ancestors). Messages name the user's
        Dockerfile, not the generated copy."""
        what = (ref or str(context.dockerfile)) + (f" for {platform}" if platform else "")
        if buildkit is not None:
            if platform:
                self.check_platforms((platform,))
            run = replace(buildkit, network=buildkit.network or self._default_network())
            api = self.client.api
            # Imported here: h2, protobuf and requests cost ~140 ms, for builds only.
            from hubtasks.build.buildkit import builder as buildkit_builder

            hints = self._foreign_hints(platform, base_images(context.dockerfile_bytes))
            with self._daemon_errors("build with"), hints:
                return buildkit_builder.build_context(
                    api,
                    f"{api.base_url}/v{api.api_version}",
                    context=context,
                    ref=ref,
                    build_args=build_args,
                    platform=platform,
                    cache_from=tuple(cache_from),
                    run=run,
                    on_output=on_output,
                    what=what,
                )
        names = (context.dockerfile_name, context.dockerfile.name)
        if platform:
            self.check_platforms((platform,))
            if context.scratch:
                self.ensure_scratch(context.scratch, platform)
            for base in base_images(context.dockerfile_bytes):
                self._pull_base(base, platform, on_output)
        errors = self._docker.errors
        from docker.credentials.errors import StoreError

        with self._daemon_errors("build with"):
            try:
                lines = self.client.api.build(
                    fileobj=context.stream(),
                    custom_context=True,
                    dockerfile=context.dockerfile_name,
                    tag=ref,
                    buildargs=dict(build_args),
                    platform=platform,
                    cache_from=list(cache_from) or None,
                    rm=True,
                    forcerm=True,
                    decode=True,
                )
                foreign = platform is not None and not self.platform().startswith(platform)
                image_id = _follow_build(lines, what, names, on_output, platform, foreign)
            except StoreError as error:
                raise DaemonError(self._credential_store_error(error)) from None
            except errors.APIError as error:
                message = _short(error).replace(*names)
                hint = _BUILDKIT_HINT if "buildkit" in message.lower() else ""
                raise BuildError(f"build of {what} failed: {message}{hint}") from None
        if image_id is None:
            raise BuildError(f"build of {what} ended without producing an image")
        return image_id

    def pull(
        self,
        ref: str,
        auth_config: Mapping[str, str] | None,
        *,
        on_progress: ProgressHandler,
        platform: str | None = None,
    ) -> str | None:
        """Pull `ref` (`name:tag` or `name@digest`; for `platform` when given), feeding every
        progress line to `on_progress`; return the local image ID, or None when the registry
        does not hold it. With `auth_config` None the daemon gets the docker config's
        credentials, if any."""
        errors = self._docker.errors
        with self._daemon_errors("pull with"):
            try:
                lines = self.client.api.pull(
                    ref,
                    stream=True,
                    decode=True,
                    auth_config=dict(auth_config) if auth_config else None,
                    platform=platform,
                )
                for line in lines:
                    message = _stream_error(line)
                    if message is not None:
                        self._pull_failure(ref, message, None)
                        return None
                    on_progress(line)
            except errors.APIError as error:
                self._pull_failure(ref, _short(error), error.status_code)
                return None
        return self.image_id(ref)

    def _pull_base(self, base: str, platform: str, on_output: OutputHandler) -> None:
        """Pull a `FROM` image for `platform` before that platform's build: the classic
        builder takes whatever platform the local tag holds. An image only this daemon has
        (or a registry out of reach) is built from as it is, unless it is of another
        platform: the builder would build that platform instead, and the base is what is
        missing."""
        try:
            found = self.pull(base, None, on_progress=_pull_lines(on_output), platform=platform)
        except HubError as error:
            found, why = None, str(error)
        else:
            why = "the registry has no such image"
        if found is None:
            local = self.inspect(base)
            if local is not None and local.platform and not same_platform(platform, local.platform):
                raise BuildError(
                    f"the base image {base} has no {platform} image here: the daemon holds it "
                    f"for {local.platform} only and could not pull it for {platform} ({why}); "
                    f"push a {platform} version of {base}, or leave {platform} out of "
                    "--platform (HUB_PLATFORMS)"
                )
            if local is None:
                on_output(
                    f"note: could not pull {base} for {platform} ({why}), and the daemon has "
                    "no local copy: the build will look for it itself\n"
                )
                return
            on_output(f"note: could not pull {base} for {platform} ({why}); using the local one\n")

    def _pull_failure(self, ref: str, message: str, status: int | None) -> None:
        """Return when the registry has no such image; else raise what went wrong."""
        lowered = message.lower()
        if status == 404 or any(m in lowered for m in _MISSING_MARKERS):
            return
        said = read_daemon_message(message)
        if said.status in (401, 403) or status in (401, 403):
            raise AuthError(f"the registry refused the pull of {ref}: {message}", stage="pull")
        raise DaemonError(
            f"pull of {ref} failed: {message}", stage="pull", transient=said.transient
        )

    def inspect(self, ref: str) -> LocalImage | None:
        """The local image `ref` (a reference or an ID), or None when there is no such image."""
        errors = self._docker.errors
        with self._daemon_errors("inspect images with"):
            try:
                data = self.client.api.inspect_image(ref)
            except errors.ImageNotFound:
                return None
            except errors.APIError as error:
                if error.status_code == 404:
                    return None
                raise DaemonError(f"cannot inspect image {ref}: {_short(error)}") from None
        labels = (data.get("Config") or {}).get("Labels") or {}
        platform = "/".join(
            str(part)
            for part in (data.get("Os"), data.get("Architecture"), data.get("Variant"))
            if part
        )
        return LocalImage(
            id=str(data["Id"]), size=data.get("Size"), labels=dict(labels), platform=platform
        )

    def ensure_scratch(self, name: str, platform: str) -> None:
        """Load the empty image `name` for `platform` unless the daemon has it: no layers,
        a config naming the platform (`docker load` of a two-file archive). The daemon
        reports a refusal (an OS it cannot run) inside the stream: it is raised here, or the
        build would look for `name` on Docker Hub and fail with that instead."""
        if self.inspect(name) is not None:
            return
        import hashlib
        import io
        import json
        import tarfile

        os_name, arch, *variant = platform.split("/")
        config = {"architecture": arch, "os": os_name, "config": {}, "history": []}
        if variant:
            config["variant"] = variant[0]
        config["rootfs"] = {"type": "layers", "diff_ids": []}
        config_bytes = json.dumps(config).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        manifest = [{"Config": config_name, "RepoTags": [name], "Layers": []}]
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for member, data in ((config_name, config_bytes), ("manifest.json", manifest)):
                raw = data if isinstance(data, bytes) else json.dumps(data).encode()
                info = tarfile.TarInfo(member)
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
        errors = self._docker.errors
        with self._daemon_errors("load images into"):
            try:
                for line in self.client.api.load_image(archive.getvalue()):
                    message = _stream_error(line)
                    if message is not None:
                        raise DaemonError(self._load_failure(platform, message))
            except errors.APIError as error:
                raise DaemonError(self._load_failure(platform, _short(error))) from None

    def _load_failure(self, platform: str, message: str) -> str:
        return f"the Docker daemon at {self.host} cannot load an image for {platform}: {message}"

    def image_id(self, ref: str) -> str | None:
        image = self.inspect(ref)
        return image.id if image else None

    def list_images(self, repository: Repository) -> list[dict[str, Any]]:
        """Local images of `repository`: one row per tag with ID, size, creation time and
        labels."""
        errors = self._docker.errors
        with self._daemon_errors("list images with"):
            try:
                images = self.client.api.images(name=repository.local_name)
            except errors.APIError as error:
                raise DaemonError(f"cannot list images: {_short(error)}") from None
        rows = []
        prefix = repository.local_name + ":"
        for image in images:
            for ref in image.get("RepoTags") or []:
                if ref.startswith(prefix):
                    rows.append(
                        {
                            "tag": ref[len(prefix) :],
                            "id": image.get("Id", ""),
                            "size": image.get("Size"),
                            "created": image.get("Created"),
                            "labels": image.get("Labels") or {},
                        }
                    )
        return sorted(rows, key=lambda row: (-(row["created"] or 0), row["tag"]))

    def tag(self, image: str, repository: Repository, tag: str) -> None:
        errors = self._docker.errors
        with self._daemon_errors("tag with"):
            try:
                self.client.api.tag(image, repository.local_name, tag)
            except errors.APIError as error:
                raise DaemonError(
                    f"cannot tag {image} as {repository.ref(tag)}: {_short(error)}"
                ) from None

    def push(
        self,
        repository: Repository,
        tag: str,
        auth_config: Mapping[str, str],
        *,
        on_progress: ProgressHandler,
        stall_timeout: float | None = None,
        rate_limit_wait: Callable[[], float | None] | None = None,
    ) -> str:
        """Push one explicit tag, read the whole stream, and return the manifest digest.

        `stall_timeout` (the retry budget): the push may take that many seconds. When the daemon
        sends nothing for that long, or keeps talking past it (retrying layer uploads the
        registry refuses, 5 to 20 s apart), the push is aborted (its connection closed, which
        cancels it in the daemon) with a `PushError` that is not transient. When the stream
        reports `toomanyrequests`, `rate_limit_wait` (a request of our own to the registry)
        says how long to wait before the next try."""
        errors = self._docker.errors
        ref = repository.ref(tag)
        digest, response = None, None
        watch = _PushWatch(repository.canonical(tag), stall_timeout)
        with self._daemon_errors("push with"):
            try:
                response, lines = self._push_stream(repository, tag, auth_config, stall_timeout)
                for line in lines:
                    message = _stream_error(line)
                    if message is not None:
                        raise self._push_failure(repository, tag, message, rate_limit_wait)
                    aux = line.get("aux")
                    if isinstance(aux, Mapping) and aux.get("Digest"):
                        digest = str(aux["Digest"])
                    on_progress(line)
                    watch.check(line)
            except errors.APIError as error:
                raise self._push_failure(repository, tag, _short(error), rate_limit_wait) from None
            except _read_timeouts() as error:
                if stall_timeout is None:
                    raise
                raise PushError(
                    f"push of {repository.canonical(tag)} stalled: the daemon reported no "
                    f"progress for {stall_timeout:.0f}s (HUB_TIMEOUT), so the push was aborted",
                    stage="push",
                ) from error
            finally:
                if response is not None:
                    response.close()  # at once, also when aborted: the daemon cancels its push
        if digest is None:
            raise PushError(f"push of {ref} ended without a digest from the registry", stage="push")
        return digest

    def _push_stream(
        self,
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

        api = self.client.api
        url = f"{api.base_url}/v{api.api_version}/images/{quote(repository.local_name, '/:')}/push"
        response = api.post(
            url,
            headers={"X-Registry-Auth": self._docker.auth.encode_header(dict(auth_config))},
            params={"tag": tag},
            stream=True,
            timeout=api.timeout if stall_timeout is None else max(stall_timeout, 1.0),
        )
        try:
            response.raise_for_status()
        except self._requests_http_error() as error:
            failure = self._docker.errors.create_api_error_from_http_exception(error)
            response.close()
            raise failure from None
        # urllib3's own stream: each HTTP chunk as it arrives, and a read timeout as itself
        # (requests' iter_content would turn it into a ConnectionError).
        lines: Iterator[Any] = json_stream(response.raw.stream(None))
        return response, lines

    @staticmethod
    def _requests_http_error() -> type[Exception]:
        import requests

        return requests.HTTPError

    def _push_failure(
        self,
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


class _PushWatch:
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


def _read_timeouts() -> tuple[type[BaseException], ...]:
    """What reading a daemon stream raises when a read waited longer than its timeout."""
    import requests
    import urllib3

    return (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError)


def _pull_lines(on_output: OutputHandler) -> ProgressHandler:
    """A pull's progress as build output: only its digest and status lines."""

    def show(line: Mapping[str, Any]) -> None:
        status = str(line.get("status") or "")
        if status.startswith(("Digest", "Status")):
            on_output(f"{status}\n")

    return show


def _follow_build(
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
        message = _stream_error(line)
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
            hint = _BUILDKIT_HINT if "buildkit" in message.lower() else ""
            cannot_run = "exec format error" in (message + said).lower()
            if cannot_run or (foreign and step and " : RUN " in step):
                hint = _emulation_hint(platform, certain=cannot_run)
            raise BuildError(f"build of {what} failed{where}: {message}{hint}")
        elif line.get("status"):
            on_output(f"{line['status']} {line.get('progress', '')}".rstrip() + "\n")
        aux = line.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
    return image_id


def _emulation_hint(platform: str | None, *, certain: bool) -> str:
    """What to do when a RUN step for another platform cannot run on the daemon."""
    arch = (platform or "/").split("/")[1] or "arm64"
    cause = "cannot run" if certain else "may not be able to run"
    return (
        f"; the daemon {cause} {platform or 'that platform'}'s programs: a RUN step for another "
        "platform needs binfmt emulation on the daemon's host (apt-get install "
        "qemu-user-static binfmt-support, or docker run --privileged --rm tonistiigi/binfmt "
        f"--install {arch}); `inv doctor --platform {platform}` checks it"
    )
