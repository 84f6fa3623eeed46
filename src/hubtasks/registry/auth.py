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
from hubtasks.references import Repository
from hubtasks.registry.transport import (
    CREDENTIALS_HINT,
    Response,
    Transport,
    rejected_credentials,
    user_agent,
)

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 3

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
        if response.status in (404, 405, 501) and self.identity:  # no refresh-token POST
            raise AuthError(
                f"the token service of {self.registry} does not take identity tokens (HTTP "
                f"{response.status} to the refresh-token POST); set HUB_USERNAME and HUB_TOKEN",
                status=response.status,
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


class AuthenticatedRequests:
    """A registry's requests as one login sends them: redirects followed for reads (our
    credentials only ever to the registry's own address), a 401 answered once through the
    `RegistryAuth` flow, a 401 to credentials already sent final. Under `RegistryClient`."""

    def __init__(self, transport: Transport, auth: RegistryAuth, repository: Repository) -> None:
        self.transport, self.auth, self.repository = transport, auth, repository

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Response:
        """One request, following redirects for reads; our credentials go only to the
        registry's own address."""
        redirects = 0
        while True:
            request = urllib.request.Request(url, data=body, method=method)
            for name, value in headers.items():
                request.add_header(name, value)
            request.add_header("User-Agent", user_agent())
            own = urllib.parse.urlsplit(url).netloc == self.transport.netloc
            if self.auth.authorization and own:
                request.add_unredirected_header("Authorization", self.auth.authorization)
            response = self.transport.open(request)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or method not in ("GET", "HEAD") or not location:
                return response
            if redirects == _MAX_REDIRECTS:  # the last redirect is the answer
                return response
            redirects += 1
            url = urllib.parse.urljoin(url, location)

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        scope: str | None = None,
    ) -> Response:
        """A request to the registry (`path`, or a full URL it gave us), answering its
        authentication challenge once; `scope` is a token scope asked for on top of the
        challenge's (pull on the repository a blob is mounted from). Raises
        `AuthError(status=401)` when the credentials (or a freshly fetched token) are
        rejected."""
        url = path if "://" in path else f"{self.transport.base_url}{path}"
        headers = {k: v for k, v in (("Accept", accept), ("Content-Type", content_type)) if v}
        sent = self.auth.authorization
        response = self.send(method, url, headers, body)
        if response.status == 401 and not (sent or "").startswith("Basic "):
            # No credentials yet, or a token that may have expired or lack this scope.
            self.answer(response.headers.get("WWW-Authenticate") or "", also=scope)
            response = self.send(method, url, headers, body)
        if response.status == 401:
            raise rejected_credentials(
                f"registry {self.repository.registry}", self.auth.username, 401, CREDENTIALS_HINT
            )
        return response

    def answer(self, challenge: str, also: str | None = None) -> None:
        default = f"repository:{self.repository.path}:pull"
        self.auth.answer(self.transport, challenge, default_scope=default, also=also)
