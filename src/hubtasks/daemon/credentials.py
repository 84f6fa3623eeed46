"""Docker's own credentials, found where `docker login` left them, as the docker CLI finds them.

The Docker config is `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`). For a
registry, the CLI's key is its host (`host:port`), or `https://index.docker.io/v1/` for Docker
Hub (whatever alias named it: docker.io, index.docker.io, registry-1.docker.io). The key's
helper is `credHelpers[key]`, else `credsStore`; a helper is the program
`docker-credential-NAME` on PATH, asked `get` with the key on its stdin, answering
`{"ServerURL", "Username", "Secret"}` (a `Username` of `<token>` makes the secret an identity
token), or "credentials not found in native keychain". Without a helper the key's `auths`
entry holds `auth` (base64 of `user:secret`) or an `identitytoken`; an entry under a legacy
key (`http://host:port/v1/`) is found by its host. `DOCKER_AUTH_CONFIG` (a JSON document with
`auths`, as newer CLIs read it) is asked first. Nothing here writes the store except
`save_credentials`/`remove_credentials` (`inv login --save`, `inv logout`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any

from hubtasks.errors import ConfigError
from hubtasks.references import DOCKER_HUB, Repository, auth_key
from hubtasks.registry.transport import Trust, speaks_tls
from hubtasks.settings.resolve import Settings

TOKEN_USERNAME = "<token>"  # a helper's answer for an identity token (docker/cli)
_NOT_FOUND = "credentials not found in native keychain"
_HELPER_PREFIX = "docker-credential-"
_HELPER_TIMEOUT = 60.0  # a helper may ask for a passphrase (pass, gpg-agent)
# Variables a helper is never given: ours, not its business.
_WITHHELD = ("HUB_TOKEN",)


@dataclass(frozen=True)
class DockerCredentials:
    """What the Docker store holds for one registry, and where it was found (for `doctor`
    and `-v`; never the secret)."""

    username: str | None
    secret: str = field(repr=False)
    source: str
    identity_token: bool = False


def config_folder(environment: Mapping[str, str]) -> Path:
    """Where the docker CLI keeps its config: $DOCKER_CONFIG, else ~/.docker."""
    folder = environment.get("DOCKER_CONFIG") or os.environ.get("DOCKER_CONFIG")
    return Path(folder) if folder else Path.home() / ".docker"


def docker_config_path(environment: Mapping[str, str]) -> Path:
    return config_folder(environment) / "config.json"


def read_config(path: Path) -> dict[str, Any]:
    """The Docker config as a JSON object ({} when there is none)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the Docker config {path}: {_short(error)}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"the Docker config {path} is not a JSON object; fix or remove it")
    return config


def helper_for(config: Mapping[str, Any], key: str) -> tuple[str, str] | None:
    """The helper that holds `key`'s credentials and the setting that names it."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, Mapping) and helpers.get(key):
        return str(helpers[key]), f"credHelpers[{key!r}]"
    store = config.get("credsStore")
    return (str(store), "credsStore") if store else None


def credentials_for(
    registry: str, environment: Mapping[str, str] | None = None
) -> DockerCredentials | None:
    """The credentials Docker holds for `registry` (a host[:port], or docker.io), as
    `docker push` would use them; None when it holds none. A helper that is named but
    missing, or fails, is a `ConfigError` of one line naming it and the config file."""
    environment = _environment(environment)
    key = auth_key(registry)
    from_env = _from_auth_config_env(environment, key)
    if from_env is not None:
        return from_env
    path = docker_config_path(environment)
    config = read_config(path)
    named = helper_for(config, key)
    if named is not None:
        helper, setting = named
        return _from_helper(helper, key, environment, f"{setting} in {path}")
    return _from_auths(config.get("auths"), key, f"{path}")


def _environment(environment: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment with the settings' DOCKER_* variables over it."""
    merged = dict(os.environ)
    merged.update(environment or {})
    return merged


def _from_auth_config_env(environment: Mapping[str, str], key: str) -> DockerCredentials | None:
    text = environment.get("DOCKER_AUTH_CONFIG")
    if not text:
        return None
    try:
        document = json.loads(text)
        auths = document.get("auths") if isinstance(document, dict) else None
    except ValueError:
        raise ConfigError(
            'DOCKER_AUTH_CONFIG is not a JSON document like {"auths": {...}}; fix or unset it'
        ) from None
    return _from_auths(auths, key, "DOCKER_AUTH_CONFIG")


def _from_auths(auths: object, key: str, where: str) -> DockerCredentials | None:
    """The `auths` entry for `key` (or a legacy `scheme://host/v1/` key of the same host)."""
    if not isinstance(auths, Mapping):
        return None
    found_key = key if key in auths else next((k for k in auths if _hostname(k) == key), None)
    if found_key is None:
        return None
    entry = auths[found_key]
    if not isinstance(entry, Mapping):
        return None
    source = f"{where} (auths[{found_key!r}])"
    if entry.get("identitytoken"):
        user = entry_user(entry)
        return DockerCredentials(user, str(entry["identitytoken"]), source, identity_token=True)
    user, secret = _decode_auth(entry, source)
    if user and secret:
        return DockerCredentials(user, secret, source)
    return None  # an entry that only remembers an email or a helper's registration


def _hostname(key: str) -> str:
    """docker/cli's ConvertToHostname: `https://host:port/v1/` → `host:port`."""
    if "://" in key:
        netloc = urllib.parse.urlsplit(key).netloc
        if netloc:
            return netloc
    return key.split("/", 1)[0]


def _decode_auth(entry: Mapping[str, Any], source: str) -> tuple[str | None, str | None]:
    if not entry.get("auth"):
        user, secret = entry.get("username"), entry.get("password")
        return (str(user) if user else None), (str(secret) if secret else None)
    try:
        decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(f"the 'auth' of {source} is not base64 of user:secret") from None
    user, colon, secret = decoded.partition(":")
    if not colon or not user:
        raise ConfigError(f"the 'auth' of {source} is not base64 of user:secret")
    return user, secret.strip("\x00")


def entry_user(entry: object) -> str | None:
    """The user of an `auths` entry: its `username`, else the `auth` field's."""
    if not isinstance(entry, Mapping):
        return None
    if entry.get("username"):
        return str(entry["username"])
    try:
        decoded = base64.b64decode(str(entry.get("auth") or ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, _ = decoded.partition(":")
    return user if colon and user else None  # no colon: not user:secret, say nothing of it


# --- writing: only `inv login --save` and `inv logout` --------------------------------------


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write atomically with mode 0600: the file may hold credentials."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".config.json.")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(config, stream, indent="\t")
        os.replace(temp_name, path)
    except OSError as error:
        Path(temp_name).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the Docker config {path}: {_short(error)}") from None


def save_credentials(
    repository: Repository, username: str, token: str, environment: Mapping[str, str]
) -> str:
    """Store credentials as `docker login` does; return where they went.

    The registry's credential helper (`credHelpers`, else `credsStore`) gets them through its
    stdin; without one they go to the config file's `auths`, written with mode 0600.
    """
    environment = _environment(environment)
    key = repository.auth_key
    path = docker_config_path(environment)
    config = read_config(path)
    named = helper_for(config, key)
    if named is not None:
        helper, setting = named
        document = {"ServerURL": key, "Username": username, "Secret": token}
        where = f"{setting} in {path}"
        status, output = run_helper(
            helper, "store", json.dumps(document).encode(), environment, where
        )
        if status != 0:
            raise ConfigError(
                f"{_HELPER_PREFIX}{helper} ({where}) could not store the credentials (exit "
                f"{status}: {_said(output) or 'no message'})"
            )
        return _HELPER_PREFIX + helper
    encoded = base64.b64encode(f"{username}:{token}".encode()).decode("ascii")
    auths = config.setdefault("auths", {})
    auths[key] = {"auth": encoded}
    _write_config(path, config)
    return str(path)


def remove_credentials(
    registry: str, environment: Mapping[str, str], username: str | None = None
) -> tuple[str | None, str | None]:
    """Undo `save_credentials` for this registry only: (where they were removed from, None),
    or (None, None) when nothing is saved. With `username`, an entry saved for another user
    (a `docker login` of another account) stays: (None, that user)."""
    environment = _environment(environment)
    key = auth_key(registry)
    path = docker_config_path(environment)
    config = read_config(path)
    named = helper_for(config, key)
    if named is not None:
        return _erase_from_helper(named, key, environment, path, username)
    auths = config.get("auths") or {}
    if key not in auths:
        return None, None
    saved_for = entry_user(auths[key])
    if username and saved_for and saved_for != username:
        return None, saved_for
    del auths[key]
    _write_config(path, config)
    return str(path), None


def _erase_from_helper(
    named: tuple[str, str],
    key: str,
    environment: Mapping[str, str],
    path: Path,
    username: str | None,
) -> tuple[str | None, str | None]:
    helper, setting = named
    where = f"{setting} in {path}"
    try:
        found = _from_helper(helper, key, environment, where)
    except ConfigError:
        if helper_program(helper, environment) is None:
            raise
        found = DockerCredentials(None, "", where)  # it will not say whose: erase as asked
    if found is not None and username and found.username and found.username != username:
        return None, found.username
    status, output = run_helper(helper, "erase", key.encode(), environment, where)
    if status != 0:
        if _said(output) == _NOT_FOUND:
            return None, None
        raise ConfigError(
            f"{_HELPER_PREFIX}{helper} ({where}) could not erase the credentials (exit "
            f"{status}: {_said(output) or 'no message'})"
        )
    return _HELPER_PREFIX + helper, None


# --- credential helpers ----------------------------------------------------------------------


def helper_program(helper: str, environment: Mapping[str, str]) -> str | None:
    return shutil.which(_HELPER_PREFIX + helper, path=environment.get("PATH"))


def run_helper(
    helper: str, action: str, stdin: bytes, environment: Mapping[str, str], where: str
) -> tuple[int, bytes]:
    """Run `docker-credential-HELPER ACTION` with `stdin`: (exit status, stdout). A helper
    that is missing, hangs or cannot start is one `ConfigError` line."""
    name = _HELPER_PREFIX + helper
    program = helper_program(helper, environment)
    if program is None:
        raise ConfigError(
            f"the credential helper {name} ({where}) is not installed (not on PATH); "
            "install it, or remove it from the Docker config, or set HUB_TOKEN"
        )
    env = {k: v for k, v in environment.items() if k not in _WITHHELD}
    try:  # a session of its own: a hanging helper is stopped with what it started (pinentry)
        process = subprocess.Popen(
            [program, action], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=env, start_new_session=True
        )
    except OSError as error:
        raise ConfigError(
            f"cannot run the credential helper {name} ({where}): {_short(error)}"
        ) from None
    with process:  # pipes closed, the helper waited for
        try:
            stdout, stderr = process.communicate(stdin, timeout=_HELPER_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise ConfigError(
                f"the credential helper {name} ({where}) did not answer within "
                f"{_HELPER_TIMEOUT:.0f}s; unlock its store or set HUB_TOKEN"
            ) from None
    return process.returncode, stdout if process.returncode == 0 else stdout + stderr


def _from_helper(
    helper: str, key: str, environment: Mapping[str, str], where: str
) -> DockerCredentials | None:
    name = _HELPER_PREFIX + helper
    status, output = run_helper(helper, "get", key.encode(), environment, where)
    if status != 0:
        said = _said(output)
        if said == _NOT_FOUND:
            return None
        raise ConfigError(
            f"the credential helper {name} ({where}) failed for {key} (exit {status}: "
            f"{said or 'no message'}); fix the helper or set HUB_TOKEN"
        )
    try:
        answer = json.loads(output)
        username, secret = str(answer.get("Username") or ""), str(answer.get("Secret") or "")
    except (ValueError, AttributeError):
        raise ConfigError(
            f"the credential helper {name} ({where}) answered something that is not its "
            "JSON ({ServerURL, Username, Secret}); fix the helper or set HUB_TOKEN"
        ) from None
    if not secret:
        return None
    source = f"{name} ({where})"
    if username == TOKEN_USERNAME:
        return DockerCredentials(None, secret, source, identity_token=True)
    return DockerCredentials(username or None, secret, source)


def _said(output: bytes) -> str:
    """A helper's message, one line, short."""
    text = " ".join(output.decode("utf-8", "replace").split())
    return text[:200]


def _short(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def from_docker_store(settings: Settings) -> bool:
    """Whether the token is Docker's (`with_docker_credentials`), not a HUB_TOKEN setting."""
    return (
        bool(settings.token)
        and settings.sources.get("token")
        not in (
            None,
            "default",
        )
        and not str(settings.sources.get("token")).startswith(("HUB_TOKEN", "hub.token"))
    )


def with_docker_credentials(settings: Settings) -> Settings:
    """`settings` with Docker's credentials for its registry when HUB_TOKEN is empty (the
    store's user when HUB_USERNAME is empty too); `sources` then says where they came from.
    Credentials Docker holds for another user than HUB_USERNAME are not taken."""
    if settings.token:
        return settings
    found = credentials_for(settings.registry, settings.docker_env)
    if found is None:
        return settings
    if settings.username and found.username and found.username != settings.username:
        raise ConfigError(
            f"HUB_TOKEN is empty and the Docker credentials for {settings.registry} "
            f"({found.source}) are {found.username}'s, not {settings.username}'s "
            f"({settings.source_of('username')}); set HUB_TOKEN, or `docker login` as "
            f"{settings.username}"
        )
    sources = dict(settings.sources)
    sources["token"] = found.source
    if not settings.username:
        sources["username"] = found.source
    return dataclasses.replace(
        settings,
        username=settings.username or found.username,
        token=found.secret,
        identity_token=found.identity_token,
        sources=sources,
    )


# --- trusting a registry as the daemon does ------------------------------------------------------

SYSTEM_CERTS_D = Path("/etc/docker/certs.d")


def certs_d_folders(registry: str, environment: Mapping[str, str] | None = None) -> list[Path]:
    """Where Docker keeps a registry's CAs and client certificates: /etc/docker/certs.d/HOST,
    and the rootless daemon's $XDG_CONFIG_HOME/docker/certs.d/HOST (~/.config/...)."""
    environment = _environment(environment)
    config_home = environment.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    roots = [SYSTEM_CERTS_D, Path(config_home) / "docker" / "certs.d"]
    return [root / registry for root in roots]


def read_certs_d(registry: str, environment: Mapping[str, str] | None = None) -> Trust:
    """The CAs (`*.crt`) and client certificate (`*.cert` with its `*.key`) of `registry`'s
    certs.d folders, as dockerd reads them; a key without its certificate (or the reverse)
    is one line."""
    cas: list[str] = []
    client: tuple[str, str] | None = None
    folders = certs_d_folders(registry, environment)
    for folder in folders:
        try:
            names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
        except OSError:
            continue
        cas += [str(folder / name) for name in names if name.endswith(".crt")]
        for name in names:
            if name.endswith(".cert"):
                key = name.removesuffix(".cert") + ".key"
                if key not in names:
                    raise ConfigError(f"{folder / name} has no key: put it in {folder / key}")
                client = (str(folder / name), str(folder / key))
            elif name.endswith(".key") and name.removesuffix(".key") + ".cert" not in names:
                raise ConfigError(
                    f"{folder / name} has no certificate: put it in "
                    f"{folder / (name.removesuffix('.key') + '.cert')}"
                )
    home = next((str(f) for f in folders if f.is_dir()), str(folders[0]))
    return Trust(ca_files=tuple(cas), client_cert=client, certs_dir=home)


def insecure_by_daemon(
    registry: str,
    registry_config: Mapping[str, Any],
    resolve: Callable[[str], list[str]] | None = None,
) -> bool:
    """Whether the daemon reaches `registry` without TLS verification (moby's
    isSecureIndex): its `IndexConfigs[registry].Secure` when listed, else whether an address
    the host resolves to lies in `InsecureRegistryCIDRs`."""
    indexes = registry_config.get("IndexConfigs") or {}
    if isinstance(indexes, Mapping) and isinstance(indexes.get(registry), Mapping):
        return not indexes[registry].get("Secure", True)
    networks = []
    for cidr in registry_config.get("InsecureRegistryCIDRs") or ():
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(str(cidr), strict=False))
    if not networks:
        return False
    host = urllib.parse.urlsplit(f"//{registry}").hostname or registry
    addresses = (resolve or _resolve)(host)
    for address in addresses:
        with contextlib.suppress(ValueError):
            if any(ipaddress.ip_address(address) in net for net in networks):
                return True
    return False


def _resolve(host: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except OSError:
        return []


def registry_trust(
    registry: str, environment: Mapping[str, str] | None, *, insecure: bool
) -> tuple[str | None, Trust]:
    """The base URL (None: the usual one) and the trust to reach `registry` with: its certs.d
    folder's certificates; for a registry the daemon treats as insecure, HTTPS without
    verification when it speaks TLS (what dockerd tries first), else plain HTTP."""
    trust = read_certs_d(registry, environment)
    if not insecure or registry == DOCKER_HUB:
        return None, trust
    trust = dataclasses.replace(trust, insecure=True)
    scheme = "https" if speaks_tls(registry) else "http"
    return f"{scheme}://{registry}", trust
