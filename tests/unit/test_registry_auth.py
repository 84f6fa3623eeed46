"""The registry client's auth flow (Basic and the Bearer token flow Docker Hub uses), and the
push-permission check before a build.

A small HTTP server on 127.0.0.1 plays a token-auth registry here, following the Distribution
token spec (docs/spec/auth/token.md and jwt.md) as Docker Hub implements it: a 401 names the
realm, service and scope; the realm answers `{"token": …}` for Basic credentials; the token is a
JWT whose `access` claim lists the actions granted on each repository, which may be fewer than
asked (a read-only token asking for `pull,push` gets `pull`). Its tokens can be expired on
demand. The htpasswd (Basic) flow is exercised against the real registry in tests/integration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse

import pytest

from hubtasks.errors import AuthError, RegistryError, VerifyError
from hubtasks.references import Repository
from hubtasks.registry.auth import parse_challenge
from hubtasks.registry.client import RegistryClient
from hubtasks.registry.transport import registry_base_url

from .httpfakes import QuietHandler, serving

USER, SECRET = "alice", "dckr_pat_0123456789"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:cfg"},
    }
).encode()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def jwt(actions: list[str], name: str = "alice/app") -> str:
    """An unsigned-looking JWT with the `access` claim a token service grants."""
    payload = {"access": [{"type": "repository", "name": name, "actions": actions}]}
    return f"{_b64({'alg': 'ES256', 'typ': 'JWT'})}.{_b64(payload)}.c2lnbmF0dXJl"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"config": {"Labels": {"dev.hubtasks.inputs": "sha256:in"}}}).encode()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": _sha(CONFIG)},
    }
).encode()


class TokenRegistry(QuietHandler):
    token_requests: list[dict] = []
    blob_reads = 0
    requests: list[str] = []
    valid: set[str] = set()  # tokens the registry accepts now
    may_push = True  # what the token service grants on alice/app
    opaque = False  # tokens that are not JWTs

    def issue_token(self):
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        TokenRegistry.token_requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "query": query}
        )
        if self.headers.get("Authorization") != expected:
            return self._send(401)
        asked = query.get("scope", [""])[0].rsplit(":", 1)[-1].split(",")
        granted = [a for a in asked if a == "pull" or (a == "push" and TokenRegistry.may_push)]
        number = len(TokenRegistry.token_requests)
        token = f"opaque-{number}-{','.join(granted)}" if TokenRegistry.opaque else jwt(granted)
        token += "" if TokenRegistry.opaque else f"{number}"  # each token its own
        TokenRegistry.valid.add(token)
        return self._send(200, json.dumps({"token": token}).encode())

    def _actions(self) -> list[str] | None:
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in TokenRegistry.valid:
            return None
        if TokenRegistry.opaque:
            return token.split("-", 2)[2].split(",")
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["access"][0]["actions"]

    def _challenge(self, scope: str):
        port = self.server.server_address[1]
        challenge = (
            f'Bearer realm="http://127.0.0.1:{port}/token",service="reg.test",'
            f'scope="repository:alice/app:{scope}"'
        )
        return self._send(401, headers=[("WWW-Authenticate", challenge)])

    def do_GET(self):
        if self.path.startswith("/token"):
            return self.issue_token()
        TokenRegistry.requests.append(f"{self.command} {self.path}")
        if self._actions() is None:
            return self._challenge("pull")
        if self.path.startswith("/v2/alice/app/tags/list"):
            if "last=" not in self.path:
                link = '</v2/alice/app/tags/list?last=b&n=2>; rel="next"'
                return self._send(200, json.dumps({"tags": ["a", "b"]}).encode(), [("Link", link)])
            return self._send(200, json.dumps({"tags": ["c"]}).encode())
        if self.path in ("/v2/alice/app/manifests/v1", "/v2/alice/app/manifests/lying"):
            assert "application/vnd.oci.image.manifest.v1+json" in self.headers["Accept"]
            claimed = _sha(MANIFEST) if self.path.endswith("/v1") else "sha256:" + "0" * 64
            return self._send(200, MANIFEST, [("Docker-Content-Digest", claimed)])
        if self.path == f"/v2/alice/app/blobs/{_sha(CONFIG)}":
            TokenRegistry.blob_reads += 1
            return self._send(200, CONFIG)
        if self.path == "/v2/":
            return self._send(200)
        return self._send(404)

    def do_POST(self):
        TokenRegistry.requests.append(f"{self.command} {self.path}")
        actions = self._actions()
        if actions is None or "push" not in actions:
            return self._challenge("pull,push")
        location = "/v2/alice/app/blobs/uploads/u-1?_state=x"
        return self._send(202, headers=[("Location", location)])

    def do_DELETE(self):
        TokenRegistry.requests.append(f"{self.command} {self.path}")
        return self._send(204)


@pytest.fixture
def server():
    TokenRegistry.token_requests = []
    TokenRegistry.requests = []
    TokenRegistry.valid = set()
    TokenRegistry.may_push = True
    TokenRegistry.opaque = False
    with serving(TokenRegistry) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"


def _client(base_url, secret=SECRET):
    repo = Repository(registry="reg.test", path="alice/app")
    return RegistryClient(repo, USER, secret, base_url=base_url, timeout=5)


def test_bearer_flow_lists_all_pages_and_reads_manifest(server):
    client = _client(server)
    assert client.tags() == ["a", "b", "c"]
    record = client.image_record("v1")
    assert record.digest == _sha(MANIFEST) and record.config_digest == _sha(CONFIG)
    assert record.labels == {"dev.hubtasks.inputs": "sha256:in"}
    assert client.image_record("v1") == record
    assert TokenRegistry.blob_reads == 1  # the config blob is read once per digest
    assert client.image_record("nope") is None
    # One token, reused; its request named the service and scope from the challenge.
    assert len(TokenRegistry.token_requests) == 1
    assert "service=reg.test" in TokenRegistry.token_requests[0]["path"]
    assert "scope=repository%3Aalice%2Fapp%3Apull" in TokenRegistry.token_requests[0]["path"]


def test_a_digest_header_that_does_not_match_the_bytes_is_refused(server):
    client = _client(server)
    with pytest.raises(VerifyError, match="not trusting it"):
        client.image_record("lying")
    with pytest.raises(VerifyError):
        client.digest("lying")
    assert client.digest("v1") == _sha(MANIFEST)


def test_bearer_flow_with_wrong_secret_is_an_auth_error_without_the_secret(server):
    with pytest.raises(AuthError) as caught:
        _client(server, secret="wrong-secret-value").tags()
    assert "rejected the credentials of 'alice'" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    assert caught.value.status == 401
    assert len(TokenRegistry.token_requests) == 1  # the rejected credentials went once


def test_an_expired_token_is_fetched_again_once(server):
    client = _client(server)
    client.tags()
    TokenRegistry.valid.clear()  # every token issued so far expires
    assert client.image_record("v1") is not None
    assert len(TokenRegistry.token_requests) == 2
    TokenRegistry.valid.clear()
    TokenRegistry.may_push = False
    # A token the registry rejects right after it was issued: final, no third token.
    original = TokenRegistry.issue_token

    def issue_dead_tokens(handler):
        original(handler)
        TokenRegistry.valid.clear()

    TokenRegistry.issue_token = issue_dead_tokens
    try:
        with pytest.raises(AuthError) as caught:
            client.image_record("v1")
    finally:
        TokenRegistry.issue_token = original
    assert caught.value.status == 401
    assert len(TokenRegistry.token_requests) == 3
    assert TokenRegistry.requests.count("GET /v2/alice/app/manifests/v1") == 4


def test_push_access_is_read_from_the_jwt_of_a_pull_push_token(server):
    client = _client(server)
    client.check_credentials()
    client.check_push_access()  # granted: nothing raised, nothing opened
    asked = TokenRegistry.token_requests[-1]["query"]["scope"]
    assert asked == ["repository:alice/app:pull,push"]
    assert not [r for r in TokenRegistry.requests if r.startswith(("POST", "DELETE"))]


def test_not_logged_in_the_upload_challenge_gives_the_push_token_at_once(server):
    client = _client(server)
    client.check_push_access()
    # One challenge (the upload request's, scope pull,push), one token that grants push:
    # nothing opened, no second token.
    assert TokenRegistry.requests == ["POST /v2/alice/app/blobs/uploads/"]
    assert [r["query"]["scope"] for r in TokenRegistry.token_requests] == [
        ["repository:alice/app:pull,push"]
    ]


def test_a_token_that_may_not_push_fails_the_check_in_one_line(server):
    TokenRegistry.may_push = False
    client = _client(server)
    with pytest.raises(AuthError) as caught:
        client.check_push_access()
    assert caught.value.status == 403
    message = str(caught.value)
    assert "may not push to reg.test/alice/app" in message and "granted pull" in message
    assert "\n" not in message and SECRET not in message
    # Not logged in, the client asked the upload request for its challenge (answered 401,
    # nothing opened), then read the token's grant: no upload opened, none to cancel.
    assert [r for r in TokenRegistry.requests if r.startswith(("POST", "DELETE"))] == [
        "POST /v2/alice/app/blobs/uploads/"
    ]
    assert TokenRegistry.token_requests[-1]["query"]["scope"] == ["repository:alice/app:pull,push"]


@pytest.mark.parametrize("may_push", [True, False])
def test_an_opaque_token_is_checked_by_opening_and_cancelling_an_upload(server, may_push):
    TokenRegistry.opaque = True
    TokenRegistry.may_push = may_push
    client = _client(server)
    if may_push:
        client.check_push_access()
        assert TokenRegistry.requests[-2:] == [
            "POST /v2/alice/app/blobs/uploads/",
            "DELETE /v2/alice/app/blobs/uploads/u-1?_state=x",
        ]
    else:
        with pytest.raises(AuthError, match="may not push") as caught:
            client.check_push_access()
        assert caught.value.status == 403
        assert not [r for r in TokenRegistry.requests if r.startswith("DELETE")]


def test_unreachable_registry_is_a_registry_error():
    with pytest.raises(RegistryError, match="cannot reach registry reg.test") as caught:
        _client("http://127.0.0.1:9").tags()
    assert caught.value.transient


def test_parse_challenge():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/x:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/x:pull",
    }
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


@pytest.mark.parametrize(
    ("registry", "url"),
    [
        ("docker.io", "https://registry-1.docker.io"),
        ("ghcr.io", "https://ghcr.io"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("registry.example:443", "https://registry.example:443"),
    ],
)
def test_base_url(registry, url):
    assert registry_base_url(registry) == url
