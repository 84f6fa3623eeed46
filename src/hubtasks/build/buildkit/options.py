"""What the BuildKit path takes from the command line: which builder, the build secrets
(`--secret`, as `docker build` spells them) and `--ssh`. Pure, apart from reading the secrets'
files and variables at the moment of the build."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hubtasks.errors import ConfigError

BUILDERS = ("auto", "buildkit", "classic")
# The Engine API that serves `POST /build?version=2` and `POST /session` (Docker 18.09).
BUILDKIT_API = (1, 39)
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def choose_builder(setting: str, daemon_os: str, api_version: str) -> tuple[str, str]:
    """`buildkit` or `classic`, and why (what `inv doctor` says)."""
    if setting not in BUILDERS:
        raise ConfigError(
            f"HUB_BUILDER={setting!r} is not a builder: use one of {', '.join(BUILDERS)}"
        )
    if setting != "auto":
        return setting, f"asked for (HUB_BUILDER={setting})"
    try:
        version = tuple(int(part) for part in api_version.split(".")[:2])
    except ValueError:
        version = (0, 0)
    if daemon_os != "linux":
        return "classic", f"the daemon runs {daemon_os or 'an unknown OS'} (BuildKit: Linux only)"
    if version < BUILDKIT_API:
        return "classic", f"the daemon's API {api_version} is older than 1.39 (BuildKit)"
    return "buildkit", f"the daemon runs Linux with API {api_version} (≥ 1.39)"


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


def refuse_ssh(specs: Iterable[str]) -> None:
    """`--ssh` is not served yet: say so before anything is built."""
    given = [spec.partition("=")[0] for spec in specs if spec.strip()]
    if given:
        raise ConfigError(
            f"--ssh {given[0]}: SSH agent forwarding (RUN --mount=type=ssh) is not supported "
            "by hubtasks yet; build such a Dockerfile with docker buildx"
        )


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
    network: str = "",
    no_cache: bool = False,
    pull: bool = False,
) -> str:
    """The `docker buildx build …` that builds what hubtasks' BuildKit build does."""
    import shlex

    words = ["docker", "buildx", "build", "--load", "-f", dockerfile, "-t", ref]
    if platform:
        words += ["--platform", platform]
    if target:
        words += ["--target", target]
    if network:
        words += ["--network", network]
    words += [word for secret in secrets for word in ("--secret", secret.spec)]
    words += ["--no-cache"] * no_cache + ["--pull"] * pull
    for name, value in build_args.items():
        words += ["--build-arg", f"{name}={value}"]
    for name, value in labels.items():
        words += ["--label", f"{name}={value}"]
    words.append(context)
    return shlex.join(words)
