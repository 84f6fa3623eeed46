"""How hubtasks answers a registry's authentication challenge: the flow object under
`RegistryClient` (as httpx keeps its auth apart from its client).

A 401 carries `WWW-Authenticate`: `Basic` means send the credentials; `Bearer realm=…,service=…,
scope=…` means fetch a token from the realm with them (or, for Docker's identity token, trade
it with the OAuth2 refresh-token POST docker sends) and send that. The state kept is the
`Authorization` header the client sends and the Bearer challenge it answered, which a fork
starts from and `share_login` hands over.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from hubtasks.errors import AuthError, RegistryError
from hubtasks.registry.transport import (
    CREDENTIALS_HINT,
    Transport,
    rejected_credentials,
    user_agent,
)

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(rest)}


class RegistryAuth:
    """The credentials of one registry login, and what answering its challenge gave."""

    def __init__(
        self, registry: str, username: str | None, token: str | None, *, identity: bool = False
    ) -> None:
        self.registry = registry
        self.username, self.token = username, token
        # `token` is an OAuth2 refresh token (Docker's identity token), traded at the realm.
        self.identity = identity
        self.authorization: str | None = None  # the header sent with every request
        self.bearer: dict[str, str] | None = None  # the Bearer challenge's parameters

    def copy(self) -> RegistryAuth:
        """The same login, for a fork: no new round trip to log in."""
        twin = RegistryAuth(self.registry, self.username, self.token, identity=self.identity)
        twin.authorization, twin.bearer = self.authorization, self.bearer
        return twin

    @property
    def has_credentials(self) -> bool:
        return bool(self.token and (self.username or self.identity))

    def basic(self) -> str:
        raw = f"{self.username or ''}:{self.token or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def answer(
        self, transport: Transport, challenge: str, *, default_scope: str, also: str | None = None
    ) -> None:
        """Answer a 401's challenge for the requests that follow. `default_scope` is asked when
        the challenge names none; `also` on top of it (pull on the repository a blob is
        mounted from)."""
        scheme, params = parse_challenge(challenge)
        if (scheme == "basic" or not scheme) and self.identity:
            raise AuthError(
                f"registry {self.registry} asks for a user and password; the Docker "
                "credentials hubtasks found are an identity token, which only its token "
                "service takes: set HUB_USERNAME and HUB_TOKEN",
                status=401,
            )
        if scheme == "basic" or not scheme:
            self.authorization = self.basic()
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(
                f"registry {self.registry} asked for unsupported authentication '{challenge[:60]}'"
            )
        self.bearer = params
        # One `scope` parameter per scope, as the Docker CLI asks (a challenge may name
        # several, space separated).
        scopes = (params.get("scope") or default_scope).split()
        if also and also not in scopes:
            scopes.append(also)
        self.authorization = f"Bearer {self.fetch_token(transport, params, *scopes)}"

    def _token_request(self, params: Mapping[str, str], scopes: tuple[str, ...]) -> Any:
        """The realm's token request: a GET with our credentials (Basic), or, for an identity
        token, the OAuth2 refresh-token POST docker sends (the token in the form only)."""
        query = [("service", params.get("service", "")), *(("scope", s) for s in scopes)]
        if self.identity:
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", self.token or ""),
                ("client_id", "hubtasks"),
                *query,
            ]
            request = urllib.request.Request(
                params["realm"], data=urllib.parse.urlencode(form).encode(), method="POST"
            )
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        else:
            request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
            if self.username and self.token:
                request.add_unredirected_header("Authorization", self.basic())
        request.add_header("User-Agent", user_agent())
        return request

    def fetch_token(self, transport: Transport, params: Mapping[str, str], *scopes: str) -> str:
        """A token for `scopes` from the Bearer realm, asked with our credentials."""
        response = transport.open(self._token_request(params, scopes))
        if response.status in (400, 401, 403) and self.identity:
            raise AuthError(
                f"the token service of {self.registry} rejected the identity token "
                f"(HTTP {response.status}); `docker login` again, or set HUB_USERNAME and "
                "HUB_TOKEN",
                status=401,
            )
        if response.status in (401, 403):
            raise rejected_credentials(
                f"the token service of {self.registry}",
                self.username,
                response.status,
                CREDENTIALS_HINT,
            )
        try:
            body = json.loads(response.body)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if response.status != 200 or not token:
            raise RegistryError(
                f"the token service of {self.registry} answered {response.status} without a token",
                status=response.status,
                transient=response.status == 429 or response.status >= 500,
            )
        return str(token)


def granted_actions(token: str, path: str) -> set[str] | None:
    """The actions a JWT's `access` claim grants on repository `path`; None when the token is
    not a JWT with such a claim (an opaque token tells us nothing)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    access = payload.get("access") if isinstance(payload, dict) else None
    if not isinstance(access, list):
        return None
    return {
        str(action)
        for entry in access
        if isinstance(entry, dict)
        and entry.get("type") == "repository"
        and entry.get("name") == path
        for action in entry.get("actions") or ()
    }
