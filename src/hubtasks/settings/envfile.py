"""The `.env` file: read without touching `os.environ`, parsed once per version of it, and
every HUB_TOKEN in sight (so that even a settings error is redacted)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

from hubtasks.errors import ConfigError
from hubtasks.settings.destinations import read_registry_credentials, registry_secrets

ENV_FILE_NAME = ".env"


def read_env_file(path: Path) -> dict[str, str | None]:
    """Read a `.env` file without touching `os.environ` (python-dotenv, imported lazily).

    A line python-dotenv cannot parse is an error here, not a silently skipped setting. The
    file is parsed once per version of it, however many checks ask.
    """
    try:
        stat = path.stat()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return dict(_parse_env_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parse_env_file(path: str, _mtime_ns: int, _size: int) -> dict[str, str | None]:
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        lines = ", ".join(map(str, bad))
        raise ConfigError(
            f"{path}: line {lines} cannot be parsed; write each setting as KEY=VALUE and "
            "quote values that hold spaces or #"
        )
    return dict(dotenv_values(stream=io.StringIO(text)))


def token_candidates(
    cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Every HUB_TOKEN value in sight, so that even a settings error is redacted."""
    environ = os.environ if environ is None else environ
    found: list[str | None] = [environ.get("HUB_TOKEN")]
    found += registry_secrets(read_registry_credentials(environ, {}))
    env_path = (Path.cwd() if cwd is None else cwd) / ENV_FILE_NAME
    try:
        text = env_path.read_text(encoding="utf-8") if env_path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        # The value as the settings will read it (the parse is cached for them), and the raw
        # lines as well: a .env python-dotenv cannot parse may still be quoted in an error.
        with contextlib.suppress(ConfigError):
            dotenv = read_env_file(env_path)
            found.append(dotenv.get("HUB_TOKEN"))
            found += registry_secrets(read_registry_credentials({}, dotenv))
    token_line = r"^\s*(?:export\s+)?HUB_(?:REGISTRY_[A-Z0-9_]+_)?TOKEN\s*=\s*(.*)$"
    for match in re.finditer(token_line, text, re.MULTILINE):
        value = match.group(1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found.append(value)
    return list(dict.fromkeys(value.strip() for value in found if value and value.strip()))


def docker_env(dotenv: Mapping[str, str | None], environ: Mapping[str, str]) -> dict[str, str]:
    """Only the Docker client's own variables (never HUB_TOKEN), the environment's over
    `.env`'s; an empty one counts as unset."""
    found = {k: v for k, v in dotenv.items() if k.startswith("DOCKER_") and v}
    found.update({k: v for k, v in environ.items() if k.startswith("DOCKER_") and v})
    return found
