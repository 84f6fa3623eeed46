"""The Docker daemon, through the Docker SDK: build (per platform), tag, push, pull, inspect and
list images. It does no login: hubtasks checks credentials over the registry API and hands them
to each push. The Docker config's credentials are `daemon.credentials`'s; what the daemon says
is read by `daemon.messages`, its streams by `daemon.streams`; `.dockerignore` is
`daemon.dockerignore`'s. The `daemon` package is the only one that imports `docker` (on first
use, `daemon.sdk`, so that `inv --list` stays fast).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hubtasks.build.buildkit.options import (
    INLINE_CACHE_API,
    BuildKitRun,
    api_at_least,
    choose_builder,
)
from hubtasks.build.context import BuildContext, base_images
from hubtasks.daemon.credentials import docker_config_path
from hubtasks.daemon.messages import (
    push_failure,
    read_daemon_message,
    short_error,
    stream_error,
    unreachable,
)
from hubtasks.daemon.scratch import scratch_archive
from hubtasks.daemon.sdk import import_docker
from hubtasks.daemon.streams import (
    BUILDKIT_HINT,
    OutputHandler,
    ProgressHandler,
    PushWatch,
    follow_build,
    foreign_hints,
    open_push_stream,
    pull_lines,
    read_timeouts,
)
from hubtasks.errors import AuthError, BuildError, ConfigError, DaemonError, HubError, PushError
from hubtasks.platforms import same_platform
from hubtasks.references import Repository

# Pushes of large layers can keep a single read waiting for minutes.
DEFAULT_TIMEOUT = 600
_DEFAULT_HOST = "unix:///var/run/docker.sock"
# How the daemon says a pulled tag or repository does not exist (Distribution and Docker Hub).
_MISSING_MARKERS = ("not found", "manifest unknown", "name unknown", "does not exist")


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
            docker = import_docker(self.host)
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
            raise DaemonError(unreachable(self.host, action, error)) from None
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
                raise DaemonError(unreachable(self.host, action, error)) from None
            raise

    def _credential_store_error(self, error: BaseException) -> str:
        detail = short_error(error).removeprefix("Credentials store error: ")
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
        """The daemon's own platform, `os/arch`: what it builds when none is asked for."""
        return self._platform

    def builder(self, setting: str) -> tuple[str, str]:
        """`buildkit` or `classic` for this daemon (HUB_BUILDER), and why."""
        return choose_builder(setting, self._platform.split("/")[0], self._api_version)

    def inline_cache_from_registry(self) -> bool:
        """Whether BuildKit keeps the cache of steps taken from a registry image (#1981)."""
        return api_at_least(self._api_version, INLINE_CACHE_API)

    def _default_network(self) -> str:
        """ "" (the daemon's default), or "none" on a daemon without a `bridge` network
        (`dockerd --bridge=none`), where BuildKit's RUN fails with "network bridge not found"."""
        if self._network is None:
            with self._daemon_errors("query"):
                names = {n.name for n in self.client.networks.list(names=["bridge"])}
            self._network = "" if "bridge" in names else "none"
        return self._network

    def _prepare_foreign(
        self, context: BuildContext, platform: str, on_output: OutputHandler
    ) -> None:
        """A classic build for `platform`: refused for another OS; its scratch stand-in and
        base images for that platform pulled first."""
        self.check_platforms((platform,))
        if context.scratch:
            self.ensure_scratch(context.scratch, platform)
        for base in base_images(context.dockerfile_bytes):
            self._pull_base(base, platform, on_output)

    def _build_with_buildkit(
        self,
        context: BuildContext,
        buildkit: BuildKitRun,
        on_output: OutputHandler,
        what: str,
        *,
        ref: str | None,
        build_args: Mapping[str, str],
        platform: str | None,
        cache_from: tuple[str, ...],
    ) -> str:
        """The build on BuildKit, through our own session (`build.buildkit`)."""
        if platform:
            self.check_platforms((platform,))
        run = replace(buildkit, network=buildkit.network or self._default_network())
        api = self.client.api
        # Imported here: h2, protobuf and requests cost ~140 ms, for builds only.
        from hubtasks.build.buildkit import builder as buildkit_builder

        bases = base_images(context.dockerfile_bytes)
        hints = foreign_hints(platform, self.platform(), bases, self.inspect)
        with self._daemon_errors("build with"), hints:
            return buildkit_builder.build_context(
                api,
                f"{api.base_url}/v{api.api_version}",
                context=context,
                ref=ref,
                build_args=build_args,
                platform=platform,
                cache_from=cache_from,
                run=run,
                on_output=on_output,
                what=what,
            )

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
            return self._build_with_buildkit(
                context, buildkit, on_output, what,
                ref=ref, build_args=build_args, platform=platform, cache_from=tuple(cache_from),
            )  # fmt: skip
        names = (context.dockerfile_name, context.dockerfile.name)
        if platform:
            self._prepare_foreign(context, platform, on_output)
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
                image_id = follow_build(lines, what, names, on_output, platform, foreign)
            except StoreError as error:
                raise DaemonError(self._credential_store_error(error)) from None
            except errors.APIError as error:
                message = short_error(error).replace(*names)
                hint = BUILDKIT_HINT if "buildkit" in message.lower() else ""
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
                    message = stream_error(line)
                    if message is not None:
                        self._pull_failure(ref, message, None)
                        return None
                    on_progress(line)
            except errors.APIError as error:
                self._pull_failure(ref, short_error(error), error.status_code)
                return None
        return self.image_id(ref)

    def _pull_base(self, base: str, platform: str, on_output: OutputHandler) -> None:
        """Pull a `FROM` image for `platform` before that platform's build: the classic
        builder takes whatever platform the local tag holds. An image only this daemon has
        (or a registry out of reach) is built from as it is, unless it is of another
        platform: the builder would build that platform instead, and the base is what is
        missing."""
        try:
            found = self.pull(base, None, on_progress=pull_lines(on_output), platform=platform)
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
                raise DaemonError(f"cannot inspect image {ref}: {short_error(error)}") from None
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
        archive = scratch_archive(name, platform)
        errors = self._docker.errors
        with self._daemon_errors("load images into"):
            try:
                for line in self.client.api.load_image(archive):
                    message = stream_error(line)
                    if message is not None:
                        raise DaemonError(self._load_failure(platform, message))
            except errors.APIError as error:
                raise DaemonError(self._load_failure(platform, short_error(error))) from None

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
                raise DaemonError(f"cannot list images: {short_error(error)}") from None
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
                    f"cannot tag {image} as {repository.ref(tag)}: {short_error(error)}"
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
        watch = PushWatch(repository.canonical(tag), stall_timeout)
        with self._daemon_errors("push with"):
            try:
                response, lines = open_push_stream(
                    self._docker, self.client.api, repository, tag, auth_config, stall_timeout
                )
                for line in lines:
                    message = stream_error(line)
                    if message is not None:
                        raise push_failure(repository, tag, message, rate_limit_wait)
                    aux = line.get("aux")
                    if isinstance(aux, Mapping) and aux.get("Digest"):
                        digest = str(aux["Digest"])
                    on_progress(line)
                    watch.check(line)
            except errors.APIError as error:
                raise push_failure(repository, tag, short_error(error), rate_limit_wait) from None
            except read_timeouts() as error:
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
