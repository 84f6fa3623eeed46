"""Client for the registry HTTP API (Distribution spec): the credential and push-permission
checks, tag lists, manifests and blobs, manifest copies, and the registry's rate-limit headers.

A digest is the sha256 of the bytes read or sent, never a header: when the registry names one
(`Docker-Content-Digest`) it must agree, or the request fails with `DigestMismatchError`.

Authentication follows what Docker Hub does: a 401 carries `WWW-Authenticate`; `Basic` means
send the credentials, `Bearer realm=…,service=…,scope=…` means fetch a token from the realm
with them and send that. A 401 to credentials already sent is final (a Bearer token is fetched
again once: it may have expired). Credentials only ever travel in headers, and never to
another host a redirect points at. Standard library only.

Every request waits at most `timeout` seconds and never longer than the `deadline` callable
(the retry policy's `remaining`) allows; a failed request is not sent again here: it raises a
transient `RegistryError`, and the caller's retry policy decides (and says so).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from hubtasks.errors import AuthError, DigestMismatchError, HubError, RegistryError, VerifyError
from hubtasks.references import Repository
from hubtasks.registry.auth import AuthenticatedRequests, RegistryAuth, granted_actions
from hubtasks.registry.manifests import (
    MANIFEST_TYPES,
    ImageRecord,
    image_of,
    index_or_bare,
    sha256_digest,
)
from hubtasks.registry.ratelimit import RateLimit, parse_rate_limit, too_many_requests
from hubtasks.registry.transport import (
    Response,
    Transport,
    Trust,
    immutable_refusal,
    next_link,
    registry_base_url,
    says_immutable,
    status_error,
)
from hubtasks.registry.transport import (  # re-exported: dockerhub.prune reads it here
    rate_limit_wait as rate_limit_wait,
)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PAGE_SIZE = 1000
# A manifest copy the registry cannot do (it takes no manifest PUTs, or not of this media
# type): the caller may push the tag through the daemon instead. 401/403 are never this.
COPY_UNSUPPORTED = frozenset({405, 415})
# A request never waits less than this, even when the budget is nearly spent.
_MIN_WAIT = 1.0
_READ_CHUNK = 64 * 1024


def copy_unsupported(error: HubError) -> bool:
    """Whether a failed `copy_manifest` means "this registry does not copy like that" (push the
    tag through the daemon instead) rather than a refusal or a fault."""
    return not error.transient and error.status in COPY_UNSUPPORTED


class RegistryClient:
    def __init__(
        self,
        repository: Repository,
        username: str | None,
        token: str | None,
        *,
        timeout: float = 30,
        base_url: str | None = None,
        deadline: Callable[[], float] | None = None,
        trust: Trust | None = None,
        transport: Transport | None = None,
        identity_token: bool = False,
    ) -> None:
        self.repository = repository
        trust = trust or Trust()
        transport = transport or Transport(
            base_url or registry_base_url(repository.registry, insecure=trust.insecure),
            what=f"registry {repository.registry}",
            timeout=timeout,
            deadline=deadline,
            trust=trust,
        )
        auth = RegistryAuth(repository.registry, username, token, identity=identity_token)
        self._http = AuthenticatedRequests(transport, auth, repository)
        self._transport, self._auth = transport, auth
        self._request, self._send = self._http.request, self._http.send
        self.base_url = transport.base_url
        # raw_manifest's cache: digest → (body, media type); what a digest names never changes
        self._manifests: dict[str, tuple[bytes, str]] = {}
        self._configs: dict[str, dict[str, Any]] = {}  # config blobs by digest, shared by forks

    def fork(self) -> RegistryClient:
        """A client of its own connection for another thread, starting with this one's
        authorization (no new login round trip) and the manifests it has read."""
        twin = RegistryClient(self.repository, None, None, transport=self._transport.fork())
        twin._http.auth = twin._auth = self._auth.copy()
        twin._manifests = dict(self._manifests)
        twin._configs = self._configs
        return twin

    # --- transport: registry/transport.py ---------------------------------------------------

    def connect(self) -> None:
        """Open the kept-open connection now (TCP, and TLS for https), before a request."""
        self._transport.connect()

    def close(self) -> None:
        self._transport.close()

    # --- authentication --------------------------------------------------------------------

    def check_credentials(self) -> None:
        """Log in for real, as `docker login` does: `GET /v2/` and answer its challenge
        (Basic, or a token from the Bearer realm). Raises `AuthError` when the registry
        rejects the credentials, a transient `RegistryError` when it is unwell."""
        self._require_credentials()
        self._check(self._request("GET", "/v2/"), "log in to")

    def _require_credentials(self) -> None:
        if not self._auth.has_credentials:
            raise AuthError("HUB_USERNAME and HUB_TOKEN are needed to log in")

    def login_listing_tags(self) -> list[str]:
        """Log in by listing the repository's tags (`tags`): the registry's challenge is
        answered as `check_credentials` answers it, and the tag list the release reads next
        comes with the same round trip. Raises as `check_credentials` does."""
        self._require_credentials()
        return self.tags()

    def check_push_access(
        self, *, cancel_with: Callable[[Callable[[], object]], object] | None = None
    ) -> None:
        """Whether these credentials may push to the repository, asked without pushing.

        With a Bearer token service: a token for `pull,push`, whose granted `access` (the JWT
        payload; the signature is not checked) must include push. Otherwise, or when the token
        is not a JWT: a blob upload opened and cancelled at once (`POST …/blobs/uploads/`,
        `DELETE` its location). Raises `AuthError(status=403)` when they may not push.
        `cancel_with` runs the cancellation (the answer is known once the upload opened, so
        nobody needs to wait for it); by default it runs here. Not logged in yet, the client
        answers the upload request's own challenge (one round trip less than a login first)."""
        path = f"/v2/{self.repository.path}/blobs/uploads/"
        auth = self._auth
        opened = self._challenge("POST", path) if auth.authorization is None else None
        if auth.bearer is not None:
            token = (auth.authorization or "").removeprefix("Bearer ")
            if "push" not in (granted_actions(token, self.repository.path) or ()):
                # The token in hand (the challenge's scope) does not say push: ask for it.
                scope = f"repository:{self.repository.path}:pull,push"
                token = auth.fetch_token(self._transport, auth.bearer, scope)
            granted = granted_actions(token, self.repository.path)
            if granted is not None and "push" not in granted:
                actions = ",".join(sorted(granted)) or "nothing"
                raise self._may_not_push(f"the token service granted {actions}")
            if granted is not None:
                auth.authorization = f"Bearer {token}"
                return
        try:
            opened = opened or self._request("POST", path)
        except AuthError:
            raise self._may_not_push("HTTP 401 to opening an upload") from None
        if opened.status in (401, 403):
            raise self._may_not_push(f"HTTP {opened.status} to opening an upload")
        self._check(opened, "open an upload in")
        location = opened.headers.get("Location")
        if location:
            cancel = functools.partial(self._cancel_upload, location)
            if cancel_with is None:
                cancel()
            else:
                cancel_with(cancel)

    def _challenge(self, method: str, path: str) -> Response | None:
        """Send the request without credentials and answer the registry's challenge (Basic,
        or a token from the Bearer realm) for the requests that follow. Returns the answer
        when there was no challenge: a registry that asks for no login."""
        self._require_credentials()
        first = self._send(method, f"{self.base_url}{path}", {}, None)
        if first.status != 401:
            return first
        self._http.answer(first.headers.get("WWW-Authenticate") or "")
        return None

    def share_login(self, other: object) -> None:
        """Take the authorization of `other`, a fork that was granted more (a token for
        pull,push after `check_push_access`), so that this client's writes need no new token."""
        if isinstance(other, RegistryClient) and other.login_state[0] is not None:
            self._auth.authorization, self._auth.bearer = other.login_state

    @property
    def login_state(self) -> tuple[str | None, dict[str, str] | None]:
        """The Authorization this client sends and the Bearer challenge it answered."""
        return self._auth.authorization, self._auth.bearer

    def _may_not_push(self, why: str) -> AuthError:
        return AuthError(
            f"the token of '{self._auth.username}' may not push to {self.repository} ({why}); "
            "use a token with write access to that repository",
            status=403,
        )

    def ping(self) -> int:
        """The HTTP status of `GET /v2/` without credentials: any answer means reachable."""
        return self._transport.open(urllib.request.Request(f"{self.base_url}/v2/")).status

    # --- reads -------------------------------------------------------------------------------

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
            path = next_link(response.headers.get("Link"))
        return found

    def named(self, reference: str) -> str:
        """`registry/path:tag`, or `registry/path@sha256:…` for a digest."""
        if reference.startswith("sha256:"):
            return f"{self.repository}@{reference}"
        return self.repository.canonical(reference)

    def _manifest(self, reference: str, after_push: bool) -> tuple[Response, str] | None:
        """GET a manifest with the types we understand, and its digest (the sha256 of the
        bytes, checked against the registry's header and a digest reference); None when it
        is not there. `after_push`: we have just pushed it, so a 404 is the registry's
        read-after-write lag, a transient `VerifyError` the retry policy tries again."""
        path = f"/v2/{self.repository.path}/manifests/{reference}"
        response = self._request("GET", path, accept=", ".join(MANIFEST_TYPES))
        if response.status == 404:
            if after_push:
                raise VerifyError(
                    f"{self.named(reference)} is not in the registry (yet?) although it was "
                    "just pushed",
                    status=404,
                    transient=True,
                )
            return None
        self._check(response, f"read {reference} of")
        digest = self._checked_digest(response, response.body, self.named(reference))
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatchError(
                f"registry {self.repository.registry} answered {self.named(reference)} with a "
                f"manifest whose sha256 is {digest}"
            )
        return response, digest

    def _checked_digest(self, response: Response, body: bytes, what: str) -> str:
        """The sha256 of `body`; the registry's `Docker-Content-Digest`, if any, must agree."""
        digest = sha256_digest(body)
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed.strip() != digest:
            raise DigestMismatchError(
                f"registry {self.repository.registry} says {what} is {claimed.strip()}, but "
                f"the manifest's sha256 is {digest}; not trusting it"
            )
        return digest

    def image_record(self, reference: str, *, after_push: bool = False) -> ImageRecord | None:
        """What the registry holds under a tag or digest: the manifest's digest (the sha256
        of its bytes) and size; for an index its entries' digests and platforms; for a single
        image its config digest, labels, platform and creation time (the config blob is read
        once per digest). None when the reference does not exist."""
        found = self._manifest(reference, after_push)
        if found is None:
            return None
        response, digest = found
        try:
            document = json.loads(response.body)
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        header_type = (response.headers.get("Content-Type") or "").split(";")[0]
        media_type = str(document.get("mediaType") or header_type or MANIFEST_TYPES[0])
        if reference.startswith("sha256:") or response.headers.get("Docker-Content-Digest"):
            # Vouched for: asked by digest, or the registry named it. Bytes read by tag with
            # no header are not kept under their own hash: what is copied from them is read
            # again by digest, which the registry answers only if it holds exactly those.
            self._manifests.setdefault(digest, (response.body, media_type))
        size = len(response.body)
        record = index_or_bare(digest, media_type, document, size)
        if record is not None:
            return record
        config_digest = str(document["config"]["digest"])
        if config_digest not in self._configs:
            try:
                image = json.loads(self.blob(config_digest))
            except ValueError:
                raise RegistryError(f"{self.named(reference)} has an unreadable config") from None
            self._configs[config_digest] = image if isinstance(image, dict) else {}
        return image_of(digest, media_type, config_digest, self._configs[config_digest], size)

    def digest(self, tag: str, *, after_push: bool = False) -> str | None:
        """The digest of the manifest under `tag` (read whole and hashed), or None."""
        found = self._manifest(tag, after_push)
        return found[1] if found else None

    def raw_manifest(self, reference: str, *, after_push: bool = False) -> tuple[bytes, str]:
        """The manifest bytes and media type under a tag or digest (digests cached)."""
        if reference not in self._manifests:
            found = self._manifest(reference, after_push)
            if found is None:
                raise RegistryError(f"{self.named(reference)} is not in the registry", status=404)
            response = found[0]
            media_type = (response.headers.get("Content-Type") or MANIFEST_TYPES[0]).split(";")[0]
            if not reference.startswith("sha256:"):
                return response.body, media_type
            self._manifests[reference] = (response.body, media_type)
        return self._manifests[reference]

    def blob(self, digest: str) -> bytes:
        """The bytes of a blob (e.g. an image config), checked against their digest."""
        if not _DIGEST.match(digest):
            raise RegistryError(f"'{digest}' is not a sha256 digest")
        response = self._request("GET", f"/v2/{self.repository.path}/blobs/{digest}")
        if response.status == 404:
            raise RegistryError(f"blob {self.named(digest)} is not in the registry", status=404)
        self._check(response, f"read blob {digest} of")
        if sha256_digest(response.body) != digest:
            raise DigestMismatchError(
                f"registry {self.repository.registry} answered blob {digest} with bytes whose "
                f"sha256 is {sha256_digest(response.body)}"
            )
        return response.body

    def rate_limit_wait(self, reference: str = "latest") -> float | None:
        """Seconds the registry asks us to wait, read from a manifest HEAD of our own:
        `Retry-After`, else `RateLimit-Reset` / `X-RateLimit-Reset` once `RateLimit-Remaining`
        is 0 or the answer is a 429. None when it says nothing."""
        path = f"/v2/{self.repository.path}/manifests/{reference}"
        response = self._request("HEAD", path, accept=", ".join(MANIFEST_TYPES))
        return rate_limit_wait(response.status, response.headers)

    # --- writes ------------------------------------------------------------------------------

    def copy_manifest(
        self, source: str, tag: str, manifest: tuple[bytes, str] | None = None
    ) -> str:
        """Point `tag` at the manifest `source` (a tag or digest) the registry already holds:
        a PUT of its bytes (read once, or given), no layer traffic. Returns the sha256 of the
        bytes sent, which the registry's answer must agree with. Errors carry the `status`
        (`copy_unsupported` tells which ones mean "push it through the daemon instead")."""
        body, media_type = manifest or self.raw_manifest(source)
        return self._put_manifest(tag, body, media_type, f"tag {tag} in")

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (or index) under a tag or digest; returns the sha256 of `body`,
        which the registry's answer must agree with."""
        action = f"put a manifest as {reference} in"
        digest = self._put_manifest(reference, body, media_type, action)
        self._manifests.setdefault(digest, (body, media_type))
        return digest

    def _put_manifest(self, reference: str, body: bytes, media_type: str, action: str) -> str:
        """The manifest PUT: a 401 or 403 means the token may not push here; the sha256 of
        `body` is returned, checked against the registry's answer."""
        path = f"/v2/{self.repository.path}/manifests/{reference}"
        try:
            put = self._request("PUT", path, body=body, content_type=media_type)
        except AuthError:
            raise self._may_not_push(f"HTTP 401 to the manifest PUT of {reference}") from None
        if 400 <= put.status < 500 and says_immutable(put.body.decode("utf-8", "replace")):
            said = put.body.decode("utf-8", "replace")
            target = self.repository.canonical(reference)
            raise immutable_refusal(self.repository.registry, target, said)
        if put.status in (401, 403):
            raise self._may_not_push(f"HTTP {put.status} to the manifest PUT of {reference}")
        self._check(put, action)
        return self._checked_digest(put, body, self.named(reference))

    def send(self, method: str, path: str, *, accept: str | None = None) -> Response:
        """Any request to this registry's API (`/v2/…`) with the client's login, answered as it
        came: status, headers, body. Raises `AuthError` only on a 401 after logging in.
        (Used by prune for deletes and read_rate_limit for its HEAD.)"""
        return self._request(method, path, accept=accept)

    def _check(self, response: Response, action: str) -> None:
        if 200 <= response.status < 300:
            return
        message = f"cannot {action} {self.repository}: registry answered HTTP {response.status}"
        if response.status == 403:
            message = (
                f"registry {self.repository.registry} denied access to {self.repository}; "
                "check that the token may read it"
            )
        elif response.status == 429:
            said = too_many_requests(self.repository.registry, response.headers)
            message = f"cannot {action} {self.repository}: {said}"
        raise status_error(
            response.status,
            message,
            retry_after=rate_limit_wait(response.status, response.headers),
        )

    # --- promotion: blobs and manifests written registry-side (no daemon) ------------------

    def mount_blob(self, digest: str, from_repository: Repository) -> bool:
        """Link blob `digest` of `from_repository` (same registry) into this repository:
        `POST /v2/<this>/blobs/uploads/?mount=<digest>&from=<that>`. True when the registry
        mounted it (201). A registry that cannot (it does not hold the blob there, or may not
        read it for us) answers 202 and starts an upload instead; that upload is cancelled
        (DELETE, best effort: an abandoned upload expires) and False returned, for the caller
        to copy the bytes. The token asked for also grants pull on `from_repository`."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository.path})
        try:
            response = self._request(
                "POST",
                f"/v2/{self.repository.path}/blobs/uploads/?{query}",
                body=b"",
                scope=f"repository:{from_repository.path}:pull",
            )
        except AuthError:
            raise self._may_not_push("HTTP 401 to a blob mount") from None
        if response.status in (401, 403):
            raise self._may_not_push(f"HTTP {response.status} to a blob mount")
        self._check(response, f"mount blob {digest[:19]} into")
        if response.status == 201:
            return True
        location = response.headers.get("Location")
        if location:
            self._cancel_upload(location)
        return False

    def _cancel_upload(self, location: str) -> None:
        """Cancel an upload we opened; one that cannot be cancelled (or lives on another
        host, which gets no credentials) expires by itself."""
        with contextlib.suppress(RegistryError, AuthError):
            self._request("DELETE", self._upload_path(location))

    def upload_blob(self, digest: str, data: bytes) -> None:
        """Store `data` as blob `digest` in one monolithic upload: `POST …/blobs/uploads/`,
        then `PUT <Location>&digest=…` with the bytes (the registry checks the digest)."""
        start = self._request("POST", f"/v2/{self.repository.path}/blobs/uploads/", body=b"")
        if start.status == 403:
            raise self._may_not_push("HTTP 403 to opening an upload")
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


def read_rate_limit(client: RegistryClient, reference: str = "latest") -> RateLimit | None:
    """The limit as a `HEAD` of one manifest shows it (any status: the headers are what
    count); None when the registry sends no `ratelimit-*` headers."""
    path = f"/v2/{client.repository.path}/manifests/{reference}"
    response = client.send("HEAD", path, accept=", ".join(MANIFEST_TYPES))
    return parse_rate_limit(response.headers)
