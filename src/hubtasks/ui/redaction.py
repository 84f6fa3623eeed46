"""One redaction filter for every path to the user: console output, errors and log records.

Secrets are registered once (`add_secret`); `redact` replaces them, and the record factory
installed by `install_log_redaction` applies the same to every log record any library makes
(Invoke's `-d` debug output included), plus any `'token': '…'` / `"password": "…"` value that
shows up in a logged mapping before hubtasks has read its settings.

Importing this module changes nothing. The factory is installed by the Invoke layer when Invoke
loads the collection (before it logs its config files under `-d`), and by `add_secret` the
first time hubtasks holds a secret (the Python API, at its first call).
"""

from __future__ import annotations

import logging
import re
import threading

HIDDEN = "<hidden>"
# Process-global on purpose: every Console, every error and every log record (from any library,
# in any thread) must hide the same secrets, whoever registered them.
_SECRETS: set[str] = set()
_ORDERED: tuple[str, ...] = ()  # longest first, so that a secret's prefix never wins
_LOCK = threading.Lock()
# A quoted key of a printed dict or JSON object, then its quoted value.
_KEYED = re.compile(
    r"""(?P<key>(?P<kq>['"])(?:token|password|secret|auth|identitytoken|registrytoken)"""
    r"""(?P=kq)\s*:\s*)(?P<quote>['"])(?P<value>[^'"]*)(?P=quote)""",
    re.IGNORECASE,
)
_installed = False


def add_secret(secret: str | None) -> None:
    """Hide `secret` in every console write, error and log record from now on."""
    global _ORDERED  # noqa: PLW0603 (the process-wide registry above)
    # Very short values would redact ordinary words; tokens are long.
    if secret and len(secret) >= 4 and secret not in _SECRETS:
        with _LOCK:
            _SECRETS.add(secret)
            _ORDERED = tuple(sorted(_SECRETS, key=len, reverse=True))
        install_log_redaction()


def redact(text: str) -> str:
    for secret in _ORDERED:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


def redact_keyed(text: str) -> str:
    """Hide the value of token/password/auth keys in a printed mapping."""
    return _KEYED.sub(lambda m: f"{m['key']}{m['quote']}{HIDDEN}{m['quote']}", text)


def install_log_redaction() -> None:
    """Make every log record in this process pass through `redact` (idempotent)."""
    global _installed  # noqa: PLW0603 (logging's record factory is process-wide too)
    with _LOCK:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a broken format string is logging's business, not ours)
            return record
        cleaned = redact_keyed(redact(message))
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)
