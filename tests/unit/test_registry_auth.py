"""The registry client's auth flow (Basic and the Bearer token flow Docker Hub uses).

A small HTTP server on 127.0.0.1 plays a token-auth registry here; the htpasswd (Basic) flow is
exercised against the real registry in tests/integration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hubtasks.errors import AuthError, RegistryError, VerifyError
from hubtasks.references import Repository
from hubtasks.registry import RegistryClient, parse_challenge, registry_base_url

USER, SECRET = "alice", "dckr_pat_0123456789"


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


class TokenRegistry(BaseHTTPRequestHandler):
    token_requests: list[dict] = []
    blob_reads = 0

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
            TokenRegistry.token_requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization")}
            )
            if self.headers.get("Authorization") != expected:
                return self._send(401)
            return self._send(200, json.dumps({"token": "T0K"}).encode())
        if self.headers.get("Authorization") != "Bearer T0K":
            challenge = (
                f'Bearer realm="http://127.0.0.1:{port}/token",service="reg.test",'
                'scope="repository:alice/app:pull"'
            )
            return self._send(401, headers=[("WWW-Authenticate", challenge)])
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
        return self._send(404)


@pytest.fixture
def server():
    TokenRegistry.token_requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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
    with pytest.raises(VerifyError, match="refusing to trust the header"):
        client.image_record("lying")
    with pytest.raises(VerifyError):
        client.digest("lying")
    assert client.digest("v1") == _sha(MANIFEST)


def test_bearer_flow_with_wrong_secret_is_an_auth_error_without_the_secret(server):
    with pytest.raises(AuthError) as caught:
        _client(server, secret="wrong-secret-value").tags()
    assert "rejected the credentials of 'alice'" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def test_unreachable_registry_is_a_registry_error():
    with pytest.raises(RegistryError, match="cannot reach registry reg.test"):
        _client("http://127.0.0.1:9").tags()


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
