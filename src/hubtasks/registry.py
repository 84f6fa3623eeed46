"""Client for the registry HTTP API (Distribution spec): credential check, tag lists,
manifests and config blobs, manifest copies.

Authentication follows what Docker Hub does: a 401 carries `WWW-Authenticate`; `Basic` means
send the credentials, `Bearer realm=…,service=…,scope=…` means fetch a token from the realm
with them and send that. Credentials only ever travel in headers. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AuthError, RegistryError, VerifyError
from .references import DOCKER_HUB, Repository
from .retry import mark_transient

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_SINGLE_IMAGE_TYPES = (MANIFEST_TYPES[0], MANIFEST_TYPES[2])
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_PAGE_SIZE = 1000


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(rest)}


def registry_base_url(registry: str) -> str:
    """Docker Hub's API lives at registry-1.docker.io; loopback registries speak plain HTTP."""
    if registry == DOCKER_HUB:
        return "https://registry-1.docker.io"
    host = registry.rsplit(":", 1)[0].strip("[]") if registry.count(":") <= 1 else registry
    if host == "localhost":
        return f"http://{registry}"
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return f"http://{registry}"
    except ValueError:
        pass
    return f"https://{registry}"


@dataclass(frozen=True)
class ImageRecord:
    """A manifest in the registry: its digest and type, and for a single image its config
    digest and labels."""

    digest: str
    media_type: str
    config_digest: str | None
    labels: Mapping[str, str]


@dataclass
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    def __init__(
        self,
        repository: Repository,
        username: str | None,
        token: str | None,
        *,
        timeout: float = 30,
        base_url: str | None = None,
    ) -> None:
        self.repository = repository
        self.base_url = base_url or registry_base_url(repository.registry)
        self._username, self._token = username, token
        self._timeout = timeout
        self._authorization: str | None = None
        # raw_manifest's cache: reference (a digest, in practice) → (body, media type)
        self._manifests: dict[str, tuple[bytes, str]] = {}
        self._configs: dict[str, dict] = {}  # config blobs by digest, shared with forks
        self._connection: http.client.HTTPConnection | None = None
        parts = urllib.parse.urlsplit(self.base_url)
        self._netloc, self._https = parts.netloc, parts.scheme == "https"
        # One kept-open connection to the registry, unless a proxy is configured for it.
        proxies = urllib.request.getproxies()
        self._direct = not proxies or bool(urllib.request.proxy_bypass(parts.hostname or ""))

    def fork(self) -> RegistryClient:
        """A client of its own connection for another thread, starting with this one's
        authorization (no new login round trip) and the manifests it has read."""
        twin = RegistryClient(
            self.repository,
            self._username,
            self._token,
            timeout=self._timeout,
            base_url=self.base_url,
        )
        twin._authorization = self._authorization
        twin._manifests = dict(self._manifests)
        twin._configs = self._configs
        return twin

    def connect(self) -> None:
        """Open the kept-open connection now (TCP, and TLS for https), before a request."""
        if self._direct and self._connection is None:
            self._connection = self._new_connection()
            try:
                self._connection.connect()
            except OSError as error:
                self.close()
                raise self._unreachable(error) from None

    def _new_connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._netloc, timeout=self._timeout)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _basic(self) -> str:
        raw = f"{self._username or ''}:{self._token or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _open(self, request: urllib.request.Request) -> _Response:
        if self._direct and urllib.parse.urlsplit(request.full_url).netloc == self._netloc:
            return self._open_kept(request)
        return self._open_urllib(request)

    def _open_kept(self, request: urllib.request.Request) -> _Response:
        """The same request over one kept-open connection (retried once if it went stale)."""
        split = urllib.parse.urlsplit(request.full_url)
        target = split.path + (f"?{split.query}" if split.query else "")
        headers = dict(request.header_items())
        for attempt in range(2):
            fresh = self._connection is None
            if fresh:
                self._connection = self._new_connection()
            try:
                self._connection.request(
                    request.get_method(), target, body=request.data, headers=headers
                )
                response = self._connection.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return _Response(response.status, response.headers, body)
            except (http.client.HTTPException, OSError) as error:
                self.close()
                if fresh or attempt == 1:
                    raise self._unreachable(error) from None
        raise AssertionError("unreachable")

    def _unreachable(self, error: BaseException) -> RegistryError:
        reason = getattr(error, "reason", error)
        if isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror.lower()
        return mark_transient(
            RegistryError(
                f"cannot reach registry {self.repository.registry} ({self.base_url}): {reason}"
            )
        )

    def _open_urllib(self, request: urllib.request.Request) -> _Response:
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return _Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return _Response(error.code, error.headers, error.read())
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        scope: str | None = None,
    ) -> _Response:
        """One request, answering a 401 challenge once; `scope` is a token scope asked for
        on top of the challenge's (pull on the repository a blob is mounted from)."""
        url = f"{self.base_url}{path}"
        for attempt in range(2):
            request = urllib.request.Request(url, data=body, method=method)
            if accept:
                request.add_header("Accept", accept)
            if content_type:
                request.add_header("Content-Type", content_type)
            if self._authorization:
                request.add_header("Authorization", self._authorization)
            response = self._open(request)
            if response.status != 401 or attempt == 1:
                break
            self._authenticate(response.headers.get("WWW-Authenticate", ""), also=scope)
        if response.status == 401:
            raise AuthError(
                f"registry {self.repository.registry} rejected the credentials of user "
                f"'{self._username}'; check HUB_USERNAME and HUB_TOKEN"
            )
        return response

    def _authenticate(self, challenge: str, also: str | None = None) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic" or not scheme:
            self._authorization = self._basic()
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(
                f"registry {self.repository.registry} asked for unsupported authentication "
                f"'{challenge[:60]}'"
            )
        # One `scope` parameter per scope, as the Docker CLI asks (a challenge may name
        # several, space separated).
        scopes = (params.get("scope") or f"repository:{self.repository.path}:pull").split()
        if also and also not in scopes:
            scopes.append(also)
        query = [("service", params.get("service", "")), *(("scope", s) for s in scopes)]
        url = f"{params['realm']}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url)
        if self._username and self._token:
            request.add_header("Authorization", self._basic())
        response = self._open(request)
        if response.status in (401, 403):
            raise AuthError(
                f"the token service of {self.repository.registry} rejected the credentials of "
                f"'{self._username}'; check HUB_USERNAME and HUB_TOKEN"
            )
        try:
            body = json.loads(response.body)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if response.status != 200 or not token:
            raise RegistryError(
                f"the token service of {self.repository.registry} answered {response.status} "
                "without a token"
            )
        self._authorization = f"Bearer {token}"

    def check_credentials(self) -> None:
        """Log in for real, as `docker login` does: `GET /v2/` and answer its challenge
        (Basic, or a token from the Bearer realm). Raises `AuthError` when the registry
        rejects the credentials, a transient `RegistryError` when it is unwell."""
        if not (self._username and self._token):
            raise AuthError("HUB_USERNAME and HUB_TOKEN are needed to log in")
        self._check(self._request("GET", "/v2/"), "log in to")

    def ping(self) -> int:
        """The HTTP status of `GET /v2/` without credentials: any answer means reachable."""
        return self._open(urllib.request.Request(f"{self.base_url}/v2/")).status

    def tags(self) -> list[str]:
        """Every tag of the repository (following pagination); [] when it does not exist."""
        path: str | None = f"/v2/{self.repository.path}/tags/list?n={_PAGE_SIZE}"
        found: list[str] = []
        while path:
            response = self._request("GET", path)
            if response.status == 404:
                return []
            self._check(response, "list the tags of")
            try:
                found.extend(json.loads(response.body).get("tags") or [])
            except ValueError:
                raise RegistryError(
                    f"registry {self.repository.registry} sent an unreadable tag list"
                ) from None
            path = _next_link(response.headers.get("Link"))
        return found

    def _manifest(self, method: str, reference: str) -> _Response | None:
        """GET or HEAD a manifest with the types we understand; None when it is not there."""
        path = f"/v2/{self.repository.path}/manifests/{reference}"
        response = self._request(method, path, accept=", ".join(MANIFEST_TYPES))
        if response.status == 404:
            return None
        self._check(response, f"read {reference} of")
        return response

    def raw_manifest(self, reference: str) -> tuple[bytes, str]:
        """The manifest bytes and media type under a tag or digest (cached per reference)."""
        if reference not in self._manifests:
            response = self._manifest("GET", reference)
            if response is None:
                raise RegistryError(
                    f"{self.repository.canonical(reference)} is not in the registry"
                )
            media_type = (response.headers.get("Content-Type") or MANIFEST_TYPES[0]).split(";")[0]
            self._manifests[reference] = (response.body, media_type)
        return self._manifests[reference]

    def copy_manifest(
        self, source: str, tag: str, manifest: tuple[bytes, str] | None = None
    ) -> str:
        """Point `tag` at the manifest `source` (a tag or digest) the registry already holds:
        a PUT of its bytes (read once, or given), no layer traffic. Returns the digest."""
        body, media_type = manifest or self.raw_manifest(source)
        path = f"/v2/{self.repository.path}/manifests/{tag}"
        put = self._request("PUT", path, body=body, content_type=media_type)
        self._check(put, f"tag {tag} in")
        return _verified_digest(_Response(put.status, put.headers, body), f"{tag} (copied)")

    def digest(self, tag: str) -> str | None:
        """The manifest digest under `tag` — the sha256 of the bytes the registry sends,
        checked against its header — or None when the tag is not there."""
        response = self._manifest("GET", tag)
        if response is None:
            return None
        return _verified_digest(response, self.repository.canonical(tag))

    def image_record(self, reference: str) -> ImageRecord | None:
        """What the registry holds under a tag or digest: the manifest's digest (the sha256
        of its bytes), and for a single image its config digest and labels (the config
        blob is read once per digest). None when the reference does not exist."""
        response = self._manifest("GET", reference)
        if response is None:
            return None
        digest = _verified_digest(response, self.repository.canonical(reference))
        media_type = (response.headers.get("Content-Type") or "").split(";")[0]
        try:
            document = json.loads(response.body)
        except ValueError:
            document = {}
        media_type = document.get("mediaType") or media_type
        self._manifests.setdefault(digest, (response.body, media_type or MANIFEST_TYPES[0]))
        config = document.get("config") if isinstance(document, dict) else None
        if not isinstance(config, dict) or not config.get("digest"):
            return ImageRecord(digest, media_type, None, {})
        config_digest = str(config["digest"])
        if config_digest not in self._configs:
            self._configs[config_digest] = json.loads(self.blob(config_digest))
        labels = (self._configs[config_digest].get("config") or {}).get("Labels") or {}
        return ImageRecord(digest, media_type, config_digest, dict(labels))

    def blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest. A redirect to storage elsewhere is
        followed without our credentials."""
        response = self._request("GET", f"/v2/{self.repository.path}/blobs/{digest}")
        if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            location = urllib.parse.urljoin(self.base_url, response.headers["Location"])
            response = self._open_urllib(urllib.request.Request(location))
        self._check(response, f"read blob {digest[:19]} of")
        found = "sha256:" + hashlib.sha256(response.body).hexdigest()
        if found != digest:
            raise RegistryError(
                f"registry {self.repository.registry} sent blob {digest[:19]} of "
                f"{self.repository} with other content ({found[:19]})",
                transient=True,
            )
        return response.body

    def _check(self, response: _Response, action: str) -> None:
        if 200 <= response.status < 300:
            return
        if response.status == 403:
            raise AuthError(
                f"registry {self.repository.registry} denied access to {self.repository}; "
                "check that the token may read it"
            )
        failure = RegistryError(
            f"cannot {action} {self.repository}: registry answered HTTP {response.status}"
        )
        if response.status == 429 or response.status >= 500:
            raise mark_transient(failure, _retry_after(response.headers.get("Retry-After")))
        raise failure

    # --- promotion: blobs and manifests written registry-side (no daemon) ------------------

    def mount_blob(self, digest: str, from_repository: Repository) -> bool:
        """Link blob `digest` of `from_repository` (same registry) into this repository:
        `POST /v2/<this>/blobs/uploads/?mount=<digest>&from=<that>`. True when the registry
        mounted it (201). A registry that cannot (it does not hold the blob there, or may not
        read it for us) answers 202 and starts an upload instead; that upload is cancelled
        (DELETE, best effort: an abandoned upload expires) and False returned, for the caller
        to copy the bytes. The token asked for also grants pull on `from_repository`."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository.path})
        response = self._request(
            "POST",
            f"/v2/{self.repository.path}/blobs/uploads/?{query}",
            body=b"",
            scope=f"repository:{from_repository.path}:pull",
        )
        self._check(response, f"mount blob {digest[:19]} into")
        if response.status == 201:
            return True
        location = response.headers.get("Location")
        if location:
            try:
                self._request("DELETE", self._upload_path(location))
            except (RegistryError, AuthError):
                pass
        return False

    def upload_blob(self, digest: str, data: bytes) -> None:
        """Store `data` as blob `digest` in one monolithic upload: `POST …/blobs/uploads/`,
        then `PUT <Location>&digest=…` with the bytes (the registry checks the digest)."""
        start = self._request("POST", f"/v2/{self.repository.path}/blobs/uploads/", body=b"")
        self._check(start, f"start an upload of blob {digest[:19]} to")
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(
                f"registry {self.repository.registry} started an upload to {self.repository} "
                "without a Location"
            )
        path = self._upload_path(location)
        separator = "&" if "?" in path else "?"
        query = urllib.parse.urlencode({"digest": digest})
        put = self._request(
            "PUT", f"{path}{separator}{query}", body=data, content_type="application/octet-stream"
        )
        self._check(put, f"upload blob {digest[:19]} to")

    def _upload_path(self, location: str) -> str:
        """The path and query of an upload `Location` (relative, or on this registry); an
        upload elsewhere is refused rather than sent our credentials."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(self.base_url + "/", location))
        if f"{target.scheme}://{target.netloc}" != self.base_url:
            raise RegistryError(
                f"registry {self.repository.registry} sent an upload to {target.netloc}; "
                "hubtasks only uploads to the registry itself"
            )
        return target.path + (f"?{target.query}" if target.query else "")

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """PUT manifest bytes under a tag or digest; returns their digest (the sha256 of the
        bytes, checked against the registry's header). Every blob and child manifest it
        names must already be in this repository."""
        path = f"/v2/{self.repository.path}/manifests/{reference}"
        put = self._request("PUT", path, body=body, content_type=media_type)
        self._check(put, f"put manifest {reference[:19]} in")
        digest = _verified_digest(
            _Response(put.status, put.headers, body), self.repository.canonical(reference)
        )
        self._manifests.setdefault(digest, (body, media_type))
        return digest


def _verified_digest(response: _Response, what: str) -> str:
    """The sha256 of the manifest bytes; a `Docker-Content-Digest` header that names another
    digest is an error, never believed."""
    digest = "sha256:" + hashlib.sha256(response.body).hexdigest()
    claimed = response.headers.get("Docker-Content-Digest")
    if claimed and claimed != digest:
        raise VerifyError(
            f"the registry says {what} is {claimed[:19]}…, but its manifest bytes hash to "
            f"{digest[:19]}…; refusing to trust the header"
        )
    return digest


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        import datetime

        moment = parsedate_to_datetime(value)
        return max(0.0, (moment - datetime.datetime.now(moment.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def _next_link(header: str | None) -> str | None:
    """The path of a `Link: </v2/…?last=x&n=…>; rel="next"` header, if any."""
    if not header:
        return None
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', header)
    if not match:
        return None
    parsed = urllib.parse.urlsplit(match.group(1))
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")
