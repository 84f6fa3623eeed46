"""An identity token (what `docker login` stores as `identitytoken`, or a helper's `<token>`
user) is an OAuth2 refresh token: the registry client trades it at the Bearer realm with a
POST (grant_type=refresh_token), as docker does, and never sends it as a password."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from hubtasks.errors import AuthError
from hubtasks.references import parse_repository
from hubtasks.registry.client import RegistryClient
from tests.unit.httpfakes import QuietHandler, serving


def _server(scheme: str = "Bearer"):
    seen: list[tuple[str, str, dict[str, list[str]], str]] = []

    class Handler(QuietHandler):
        def _challenge(self):
            port = self.server.server_address[1]
            if scheme == "Basic":
                value = 'Basic realm="registry"'
            else:
                value = f'Bearer realm="http://127.0.0.1:{port}/token",service="registry.test"'
            self._send(401, b"{}", [("WWW-Authenticate", value)])

        def do_GET(self):
            seen.append(("GET", self.path, {}, self.headers.get("Authorization") or ""))
            if self.headers.get("Authorization") == "Bearer access-1":
                self._send(200, b"{}")
            else:
                self._challenge()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            seen.append(("POST", self.path, form, self.headers.get("Authorization") or ""))
            if self.path == "/token" and form.get("refresh_token") == ["refresh-1"]:
                self._send(200, json.dumps({"access_token": "access-1"}).encode())
            else:
                self._send(401, b'{"error": "invalid_grant"}')

    return Handler, seen


def _client(port: int, token: str = "refresh-1") -> RegistryClient:
    repository = parse_repository("team/app", registry="registry.test", username=None)
    return RegistryClient(
        repository,
        None,
        token,
        base_url=f"http://127.0.0.1:{port}",
        identity_token=True,
        timeout=5,
    )


def test_an_identity_token_is_traded_at_the_realm_with_a_post() -> None:
    handler, seen = _server()
    with serving(handler) as httpd:
        _client(httpd.server_address[1]).check_credentials()
    posts = [entry for entry in seen if entry[0] == "POST"]
    assert len(posts) == 1
    _, path, form, authorization = posts[0]
    assert path == "/token" and authorization == ""  # the token travels in the form only
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["refresh-1"]
    assert form["service"] == ["registry.test"] and form["client_id"] == ["hubtasks"]
    assert form["scope"] == ["repository:team/app:pull"]
    assert seen[-1][3] == "Bearer access-1"


def test_a_refused_identity_token_is_one_line() -> None:
    handler, _ = _server()
    with serving(handler) as httpd, pytest.raises(AuthError) as caught:
        _client(httpd.server_address[1], token="expired").check_credentials()
    assert "rejected the identity token" in str(caught.value) and "expired" not in str(caught.value)


def test_a_basic_registry_cannot_take_an_identity_token() -> None:
    handler, seen = _server("Basic")
    with serving(handler) as httpd, pytest.raises(AuthError) as caught:
        _client(httpd.server_address[1]).check_credentials()
    assert "asks for a user and password" in str(caught.value)
    assert all("refresh-1" not in entry[3] for entry in seen)  # never sent as a password


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_token_service_without_the_refresh_token_post_is_one_line_not_retried(status) -> None:
    # A token service that takes only the GET (an older or home-made one) cannot trade an
    # identity token: that is a setting to change, not a failure to retry.
    class Handler(QuietHandler):
        def do_GET(self):
            port = self.server.server_address[1]
            realm = f'Bearer realm="http://127.0.0.1:{port}/token",service="registry.test"'
            self._send(401, b"{}", [("WWW-Authenticate", realm)])

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(status, b"not here")

    with serving(Handler) as httpd, pytest.raises(AuthError) as caught:
        _client(httpd.server_address[1]).check_credentials()
    message = str(caught.value)
    assert "does not take identity tokens" in message and "HUB_TOKEN" in message
    assert not caught.value.transient
