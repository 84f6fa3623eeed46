"""redaction: registered secrets, keyed values in printed mappings, and every log record.

The registry of secrets is process-wide (as in the product), so each test registers secrets of
its own that no other test's text contains. A token split across build-output chunks is
covered where the chunks are joined, in test_console.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from hubtasks.ui.redaction import HIDDEN, add_secret, install_log_redaction, redact, redact_keyed


def new_secret(prefix: str = "tok") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def test_a_registered_secret_is_hidden_wherever_it_appears():
    secret = new_secret()
    add_secret(secret)
    assert redact(f"Authorization: Bearer {secret}") == f"Authorization: Bearer {HIDDEN}"
    assert redact(f"{secret}{secret}x") == f"{HIDDEN}{HIDDEN}x"
    assert redact("nothing to hide") == "nothing to hide"


def test_a_longer_secret_wins_over_its_own_prefix():
    short = new_secret()
    longer = f"{short}-and-more"
    add_secret(short)
    add_secret(longer)
    # Were the prefix replaced first, "-and-more" would be left in the clear.
    assert redact(f"[{longer}]") == f"[{HIDDEN}]"
    assert redact(f"[{short}]") == f"[{HIDDEN}]"


@pytest.mark.parametrize("value", [None, "", "abc"])
def test_empty_and_very_short_values_are_not_registered(value):
    add_secret(value)
    assert redact("abc and more") == "abc and more"


@pytest.mark.parametrize(
    "key", ["token", "password", "secret", "auth", "identitytoken", "registrytoken", "PassWord"]
)
@pytest.mark.parametrize("quote", ["'", '"'])
def test_keyed_values_are_hidden_in_dicts_and_json(key, quote):
    value = new_secret("unregistered")
    text = f"{{{quote}{key}{quote}: {quote}{value}{quote}, {quote}user{quote}: {quote}bob{quote}}}"
    hidden = redact_keyed(text)
    assert value not in hidden
    assert f"{quote}{key}{quote}: {quote}{HIDDEN}{quote}" in hidden
    assert f"{quote}user{quote}: {quote}bob{quote}" in hidden  # other keys stay


def test_keyed_values_in_a_logged_auth_config():
    # The shape docker-py's auth configs take when a mapping is printed (repr and json.dumps).
    first, second = new_secret(), new_secret()
    text = f"{{'username': 'u', 'password': '{first}'}} / {{\"IdentityToken\":\"{second}\"}}"
    hidden = redact_keyed(text)
    assert first not in hidden and second not in hidden
    assert hidden.count(HIDDEN) == 2
    assert "'username': 'u'" in hidden


def test_keys_that_only_contain_a_secret_word_are_left_alone():
    text = "{'token_type': 'bearer', 'author': 'me', 'token': 5}"
    assert redact_keyed(text) == text  # no exact key with a quoted value


def _record(message: str, *args: object) -> logging.LogRecord:
    """A record made the way every logger makes one: through the record factory."""
    return logging.getLogger("some.library").makeRecord(
        "some.library", logging.DEBUG, __file__, 1, message, args, None
    )


def test_log_records_of_any_library_are_redacted():
    install_log_redaction()
    secret = new_secret()
    add_secret(secret)  # registered after the factory was installed: still applies
    record = _record("sending %s with %r", secret, {"password": "plain-in-a-dict"})
    message = record.getMessage()
    assert secret not in message and "plain-in-a-dict" not in message
    assert message == f"sending {HIDDEN} with {{'password': '{HIDDEN}'}}"
    assert record.args == ()  # the formatted, cleaned message replaced msg and args


def test_a_clean_record_keeps_its_arguments():
    install_log_redaction()
    record = _record("pulled %d layers", 3)
    assert (record.msg, record.args) == ("pulled %d layers", (3,))


def test_a_broken_format_string_is_left_to_logging():
    install_log_redaction()
    record = _record("%d layers", "not a number")  # the factory must not raise here
    assert (record.msg, record.args) == ("%d layers", ("not a number",))
    with pytest.raises(TypeError):
        record.getMessage()


def test_installing_twice_wraps_the_factory_once():
    install_log_redaction()
    installed = logging.getLogRecordFactory()
    install_log_redaction()
    assert logging.getLogRecordFactory() is installed


def test_caplog_sees_redacted_messages(caplog):
    install_log_redaction()
    secret = new_secret()
    add_secret(secret)
    with caplog.at_level(logging.INFO, logger="docker.api"):
        logging.getLogger("docker.api").info("login with %s", secret)
    assert caplog.messages == [f"login with {HIDDEN}"]
    assert secret not in caplog.text
