"""A registry with Bearer token auth, as Docker Hub, GHCR and most cloud registries do it.

`docker-registry serve` with `auth: token`, and a token service of our own on 127.0.0.1:
`GET /token?service=…&scope=repository:NAME:pull,push` with the user's Basic credentials
answers `{"token": …, "access_token": …}`, an RS256 JWT whose `x5c` header carries a
self-signed certificate the registry trusts (`rootcertbundle`), granting what was asked for
(a user named in `read_only` gets pull only). Used by the tests of several destinations:

    with TokenRegistry(root, "dave", "secret") as registry:
        registry.address, registry.tokens     # "127.0.0.1:PORT", tokens issued so far

Needs `cryptography` (installed with paramiko, the test extra).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devtools.stack import Registry

SERVICE, ISSUER = "hubtasks-test-registry", "hubtasks-test-tokens"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenRegistry(Registry):
    """A `Registry` whose auth is a Bearer token service (its own thread)."""

    def __init__(self, root: Path, username: str, password: str, *, read_only: tuple = ()):
        super().__init__(root, username, password)
        self.read_only = set(read_only)
        self.tokens = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.root.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        bundle = self.root / "token-cert.pem"
        bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._start_service()
        realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._auth = (
            f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n"
        )
        super().start()

    def _start_service(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                user = owner.check_basic(self.headers.get("Authorization") or "")
                if user is None:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                token = owner.issue(user, query.get("scope", []))
                body = json.dumps({"token": token, "access_token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def check_basic(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return user if (user, secret) == (self.username, self.password) else None

    def issue(self, user: str, scopes: list[str]) -> str:
        """A JWT granting `scopes` (`repository:NAME:ACTIONS`) to `user`."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in (s for text in scopes for s in text.split()):
            kind, name, actions = scope.rsplit(":", 2) if scope.count(":") >= 2 else ("", "", "")
            granted = [a for a in actions.split(",") if a == "pull" or user not in self.read_only]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self._x5c]}
        signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.tokens += 1
        return f"{signed}.{_b64(signature)}"

    def config_auth(self) -> str:
        return self._auth

    def request(self, path: str, *, method: str = "GET", accept: str | None = None):
        """A registry API request with a token for the repository the path names."""
        import urllib.request

        name = path.removeprefix("/v2/").split("/manifests/")[0].split("/blobs/")[0]
        token = self.issue(self.username, [f"repository:{name}:pull"])
        request = urllib.request.Request(f"http://{self.address}{path}", method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if accept:
            request.add_header("Accept", accept)
        return urllib.request.urlopen(request, timeout=10)

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
