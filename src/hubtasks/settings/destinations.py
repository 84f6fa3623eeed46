"""Several destinations of one release: the repositories and each one's credentials.

`HUB_REPOSITORY` (or repeated `--repository`) may name several repositories; the first is
where the daemon pushes, the others (`Settings.mirrors`) receive copies registry to registry.

Credentials per registry, one scheme (`.env.example` documents it):

- the first destination's registry, and any other destination in that same registry:
  `HUB_USERNAME` / `HUB_TOKEN`;
- any other registry: `HUB_REGISTRY_<HOST>_USERNAME` / `HUB_REGISTRY_<HOST>_TOKEN`, the host
  (with its port) upper-cased and every other character than A-Z and 0-9 written `_`:
  `ghcr.io` → `HUB_REGISTRY_GHCR_IO_TOKEN`, `127.0.0.1:5001` →
  `HUB_REGISTRY_127_0_0_1_5001_TOKEN`. The environment wins over `.env`.

`credentials_for` is the one seam that answers from settings. What these settings leave
unset is asked of Docker's config and credential helpers (`daemon.credentials`, which settings
may not import) where the pipeline takes the destinations, `pipeline.mirror.destinations`,
before `require_mirror_credentials`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from hubtasks.errors import ConfigError
from hubtasks.references import Repository

if TYPE_CHECKING:
    from hubtasks.settings.resolve import Settings

_PREFIX = "HUB_REGISTRY_"
_CREDENTIAL = re.compile(r"HUB_REGISTRY_([A-Z0-9_]+)_(USERNAME|TOKEN)")


def registry_variables(host: str) -> tuple[str, str]:
    """The two settings that hold a registry's credentials: `(…_USERNAME, …_TOKEN)`."""
    stem = _PREFIX + re.sub(r"[^A-Z0-9]", "_", host.upper())
    return f"{stem}_USERNAME", f"{stem}_TOKEN"


def read_registry_credentials(
    environ: Mapping[str, str], dotenv: Mapping[str, str | None]
) -> dict[str, str]:
    """Every `HUB_REGISTRY_<HOST>_USERNAME/_TOKEN` set, the environment's over `.env`'s."""
    found = {k: v.strip() for k, v in dotenv.items() if v and _CREDENTIAL.fullmatch(k)}
    found.update({k: v.strip() for k, v in environ.items() if v and _CREDENTIAL.fullmatch(k)})
    return {k: v for k, v in found.items() if v}


def registry_secrets(values: Mapping[str, str]) -> tuple[str, ...]:
    """The tokens among `read_registry_credentials`'s values (to redact everywhere)."""
    return tuple(v for k, v in values.items() if k.endswith("_TOKEN"))


def credentials_for(settings: Settings, host: str) -> tuple[str | None, str | None]:
    """(username, secret) for `host`: HUB_USERNAME/HUB_TOKEN for the first destination's
    registry, else HUB_REGISTRY_<HOST>_USERNAME/_TOKEN; (None, None) when none are set
    (`pipeline.mirror.destinations` then asks Docker's config and credential helpers)."""
    if settings.repository is not None and host == settings.repository.registry:
        return settings.username, settings.token
    user_key, token_key = registry_variables(host)
    found = settings.registry_credentials
    return found.get(user_key), found.get(token_key)


def destination_settings(settings: Settings, repository: Repository) -> Settings:
    """The settings of one more destination: its repository and its registry's credentials,
    no further mirrors."""
    username, token = credentials_for(settings, repository.registry)
    if settings.repository is not None and repository.registry == settings.repository.registry:
        return replace(settings, repository=repository, mirrors=())
    # Another registry: its own credentials, never the first one's identity-token mark or the
    # sources that say where the first one's came from.
    return replace(
        settings,
        registry=repository.registry,
        repository=repository,
        username=username,
        token=token,
        identity_token=False,
        sources={**settings.sources, **_sources(repository.registry, username, token)},
        mirrors=(),
    )


def _sources(host: str, username: str | None, token: str | None) -> dict[str, str]:
    user_key, token_key = registry_variables(host)
    return {
        name: key
        for name, key, value in (("username", user_key, username), ("token", token_key, token))
        if value
    }


def mirror_settings(settings: Settings) -> Iterator[Settings]:
    """The settings of every destination after the first, in the order given."""
    for mirror in settings.mirrors:
        yield destination_settings(settings, mirror)


def require_mirror_credentials(others: Iterable[Settings]) -> None:
    """Raise `ConfigError` naming the settings a further destination's registry lacks
    (`others`: each destination's settings, Docker's credentials already asked)."""
    missing: list[str] = []
    hosts: list[str] = []
    for each in others:
        user_key, token_key = registry_variables(each.registry)
        given = ((user_key, each.username or each.identity_token), (token_key, each.token))
        lacking = [key for key, value in given if not value]
        missing += lacking
        hosts += [each.registry] if lacking else []
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        logins = " / ".join(f"`docker login {host}`" for host in dict.fromkeys(hosts))
        raise ConfigError(
            f"missing setting{'s' if len(missing) > 1 else ''}: {names} (the credentials of "
            f"a further destination in HUB_REPOSITORY); set them in .env or the environment, "
            f"or log in with {logins} (Docker's credentials are used when they are unset)"
        )
