"""The registry client's promotion requests: cross-repository blob mounts (and the 202
fallback), monolithic blob uploads, manifest PUTs, and the token scope they ask for.

A small HTTP server on 127.0.0.1 plays a token-auth registry here, following what the
Distribution spec documents and Distribution does: a 401 challenge names every scope the
request needs, space separated (for a mount, pull on the `from` repository too); a mount of a
blob the source repository holds is 201, anything else falls back to an upload (202 with a
`Location`); a monolithic upload is a PUT to that location with `digest=`, checked by the
registry. The real mount against Distribution is exercised in tests/integration/test_promote.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse

import pytest

from hubtasks.errors import AuthError, RegistryError, VerifyError
from hubtasks.references import Repository
from hubtasks.registry.client import RegistryClient

from .httpfakes import QuietHandler, serving

USER, SECRET = "alice", "dckr_pat_0123456789"
APP = Repository(registry="reg.test", path="alice/app")
STAGING = Repository(registry="reg.test", path="alice/staging")
LAYER = b"layer bytes"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MountRegistry(QuietHandler):
    staging_blobs = {_sha(LAYER)}
    state: dict = {}

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self, needed: list[str]) -> bool:
        """Distribution's check: every needed scope granted, else a challenge naming them."""
        auth = self.headers.get("Authorization", "")
        granted = json.loads(base64.b64decode(auth[7:])) if auth.startswith("Bearer ") else []
        if all(scope in granted for scope in needed):
            return True
        port = self.server.server_address[1]
        challenge = (
            f'Bearer realm="http://127.0.0.1:{port}/token",service="reg.test",'
            f'scope="{" ".join(needed)}"'
        )
        self._body()
        self._send(401, headers=[("WWW-Authenticate", challenge)])
        return False

    def do_GET(self):
        split = urllib.parse.urlsplit(self.path)
        if split.path == "/token":
            query = urllib.parse.parse_qs(split.query)
            self.state["token_scopes"].append(query.get("scope", []))
            token = base64.b64encode(json.dumps(query.get("scope", [])).encode()).decode()
            return self._send(200, json.dumps({"token": token}).encode())
        return self._send(404)

    def do_POST(self):
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        if self.state.get("deny"):  # a token that may read, not push: Docker Hub's 403
            self._body()
            return self._send(403, b'{"errors":[{"code":"DENIED"}]}')
        needed = ["repository:alice/app:pull,push"]
        if "from" in query:
            needed.append(f"repository:{query['from']}:pull")
        if not self._authorized(needed):
            return None
        self._body()
        self.state["requests"].append(("POST", self.path))
        if query.get("mount") in self.staging_blobs and query.get("from") == STAGING.path:
            location = f"/v2/alice/app/blobs/{query['mount']}"
            return self._send(201, headers=[("Location", location)])
        location = self.state.get("location", "/v2/alice/app/blobs/uploads/u1?_state=s1")
        return self._send(202, headers=[("Location", location)])

    def do_DELETE(self):
        if self._authorized(["repository:alice/app:pull,push"]):
            self.state["requests"].append(("DELETE", self.path))
            self._send(204)

    def do_PUT(self):
        if not self._authorized(["repository:alice/app:pull,push"]):
            return None
        body = self._body()
        split = urllib.parse.urlsplit(self.path)
        self.state["requests"].append(("PUT", self.path))
        if split.path.startswith("/v2/alice/app/blobs/uploads/"):
            digest = dict(urllib.parse.parse_qsl(split.query)).get("digest")
            if digest != _sha(body):
                return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            self.state["uploaded"][digest] = body
            return self._send(201)
        if split.path.startswith("/v2/alice/app/manifests/"):
            claimed = self.state.get("claim") or _sha(body)
            return self._send(201, headers=[("Docker-Content-Digest", claimed)])
        return self._send(404)


@pytest.fixture
def server():
    MountRegistry.state = {"token_scopes": [], "requests": [], "uploaded": {}}
    with serving(MountRegistry) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"


def _client(base_url):
    return RegistryClient(APP, USER, SECRET, base_url=base_url, timeout=5)


def test_a_mount_asks_for_a_token_that_may_also_pull_the_source_repository(server):
    client = _client(server)
    assert client.mount_blob(_sha(LAYER), STAGING) is True
    assert MountRegistry.state["token_scopes"] == [
        ["repository:alice/app:pull,push", "repository:alice/staging:pull"]
    ]
    query = urllib.parse.urlencode({"mount": _sha(LAYER), "from": "alice/staging"})
    assert MountRegistry.state["requests"] == [("POST", f"/v2/alice/app/blobs/uploads/?{query}")]


def test_a_mount_the_registry_answers_with_an_upload_is_cancelled_and_false(server):
    client = _client(server)
    assert client.mount_blob(_sha(b"not in staging"), STAGING) is False
    assert MountRegistry.state["requests"][-1] == (
        "DELETE",
        "/v2/alice/app/blobs/uploads/u1?_state=s1",
    )


def test_an_upload_is_one_post_and_one_put_with_the_digest(server):
    client = _client(server)
    client.upload_blob(_sha(LAYER), LAYER)
    assert MountRegistry.state["uploaded"] == {_sha(LAYER): LAYER}
    methods = [method for method, _ in MountRegistry.state["requests"]]
    assert methods == ["POST", "PUT"]
    put_path = MountRegistry.state["requests"][1][1]
    assert put_path.startswith("/v2/alice/app/blobs/uploads/u1?_state=s1&digest=sha256%3A")
    with pytest.raises(RegistryError, match="HTTP 400"):
        client.upload_blob(_sha(b"other"), LAYER)  # the registry checks the digest


def test_an_upload_location_on_another_host_is_refused(server):
    MountRegistry.state["location"] = "http://elsewhere.test/upload?x=1"
    with pytest.raises(RegistryError, match="sent an upload to elsewhere.test"):
        _client(server).upload_blob(_sha(LAYER), LAYER)
    assert [m for m, _ in MountRegistry.state["requests"]] == ["POST"]


def test_put_manifest_returns_the_digest_of_the_bytes_and_refuses_a_lying_header(server):
    client = _client(server)
    body = b'{"schemaVersion": 2}'
    media_type = "application/vnd.oci.image.manifest.v1+json"
    assert client.put_manifest("v1", body, media_type) == _sha(body)
    assert client.raw_manifest(_sha(body)) == (body, media_type)  # no GET needed afterwards
    MountRegistry.state["claim"] = "sha256:" + "0" * 64
    with pytest.raises(VerifyError, match="not trusting it"):
        client.put_manifest("v2", body, media_type)


@pytest.mark.parametrize("write", ["mount", "upload"])
def test_a_denied_mount_or_upload_says_the_token_may_not_push(server, write):
    MountRegistry.state["deny"] = True
    client = _client(server)
    with pytest.raises(AuthError, match="may not push to reg.test/alice/app") as caught:
        if write == "mount":
            client.mount_blob(_sha(LAYER), STAGING)
        else:
            client.upload_blob(_sha(LAYER), LAYER)
    assert caught.value.status == 403 and "may read" not in str(caught.value)
