"""Docker Hub's web API (hub.docker.com, not the registry): repository pages and tags.

Standard library only, like `registry.py`. A personal access token (or an organisation access
token, with the organisation as the identifier) is exchanged for a short-lived Bearer token;
credentials only ever travel in a request body or header, and the Bearer token joins the
redaction filter.

Endpoints, and where each was confirmed (Docker Hub API reference, docs.docker.com/reference/
api/hub/latest, and its OpenAPI file in docker/docs, read from stored copies):

- `POST /v2/auth/token` `{identifier, secret}` → `{access_token}` (valid 10 minutes); 401 on
  wrong credentials — reference, "Create access token" (AuthCreateAccessToken).
- `GET /v2/namespaces/{ns}/repositories/{name}` → repository_info (`description`,
  `full_description`, `is_private`, …); 401/403/404 as `{"errinfo": …, "message": …}` —
  reference, "Get repository in a namespace" (GetRepository).
- `POST /v2/namespaces/{ns}/repositories` `{name, namespace, description (≤ 100),
  full_description (≤ 25,000), is_private}` → 201 repository_info — reference, "Create a new
  repository" (CreateRepository, added 2025-09-19; limits from its repo_creation_request schema).
- `GET /v2/namespaces/{ns}/repositories/{name}/tags?page=&page_size=` (page_size ≤ 100) →
  `{count, next, previous, results}`, each tag with `name`, `tag_last_pushed`, `images[].digest`
  — reference, "List repository tags". Live answers also carry the tag's own `digest`, which
  the schema does not list; without it the image digests stand in.
- `PATCH /v2/repositories/{ns}/{name}/` `{description, full_description}` — NOT in the
  reference we read: the route peter-evans/dockerhub-description (the most used page updater)
  calls with a Bearer token from `/v2/auth/token`.
- `DELETE /v2/repositories/{ns}/{name}/tags/{tag}/` — NOT in the reference (its tag routes are
  GET and HEAD only): the route of docker/hub-tool's `RemoveTag`.
- This API's own rate limit: `X-RateLimit-Limit/-Remaining/-Reset` on answers and, at the
  limit, 429 with `X-Retry-After` (a unix time) — reference, "Rate Limiting". A plain
  `Retry-After` (seconds) is honoured too.

Permissions (docs "Access token reference"): a personal access token with "Repo Read & Write"
can push; changing a repository page, creating a repository or deleting tags needs "Repo
Read, Write, Delete"; an organisation access token needs repository admin on the repository.
"""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubtasks.errors import AuthError, ConfigError, HubError, RegistryError
from hubtasks.references import DOCKER_HUB, Repository
from hubtasks.registry.transport import (
    Headers,
    Transport,
    rejected_credentials,
    status_error,
    user_agent,
)
from hubtasks.retry import retry_after_seconds
from hubtasks.ui.redaction import add_secret

if TYPE_CHECKING:
    from hubtasks.settings.resolve import Settings

DEFAULT_API_URL = "https://hub.docker.com"
PAGE_SIZE = 100  # the documented maximum
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 3
OVERVIEW_LIMIT = 25_000  # bytes of full_description
DESCRIPTION_LIMIT = 100  # characters of description
_MAX_PAGES = 10_000

# What each action needs, in the words Docker's token settings use.
READ, WRITE = "read", "admin"
_PAT_PERMISSION = {READ: "Repo Read-only", WRITE: "Repo Read, Write, Delete"}


def api_url(settings: Settings) -> str | None:
    """The Hub web API for these settings: HUB_API_URL when set (it says "this registry has a
    Docker Hub API"), else hub.docker.com for docker.io, else None (not Docker Hub)."""
    if settings.api_url:
        return settings.api_url
    repository = settings.repository
    registry = repository.registry if repository is not None else settings.registry
    return DEFAULT_API_URL if registry == DOCKER_HUB else None


def page_url(base: str, namespace: str, name: str) -> str:
    """The repository's page on the Hub website (hub.docker.com/r/…)."""
    return f"{base}/r/{namespace}/{name}"


def split_path(repository: Repository) -> tuple[str, str]:
    """`alice/web` → ("alice", "web"); Docker Hub repositories have exactly two parts."""
    namespace, _, name = repository.path.partition("/")
    if not name or "/" in name:
        raise ConfigError(
            f"'{repository.path}' is not a Docker Hub repository name; Docker Hub repositories "
            "are NAMESPACE/NAME"
        )
    return namespace, name


def token_kind(token: str | None) -> str:
    """Which kind of secret this is, from its documented prefix (never shown)."""
    if token and token.startswith("dckr_oat_"):
        return "organisation access token"
    if token and token.startswith("dckr_pat_"):
        return "personal access token"
    return "token"


def permission_hint(need: str, username: str, namespace: str, token: str | None) -> str:
    """What the credentials lack, in one clause: the token's permission and, for a namespace
    that is not the user's own, the membership it needs."""
    kind = token_kind(token)
    if kind == "organisation access token":
        return (
            f"an organisation access token needs {'read' if need == READ else 'repository admin'}"
            f" access to {namespace}'s repository"
        )
    clauses = []
    if namespace != username.lower():
        clauses.append(
            f"'{namespace}' is not {username}'s own namespace: {username} must belong to the "
            f"organisation '{namespace}' with permission to "
            f"{'read' if need == READ else 'manage'} its repositories"
        )
    clauses.append(
        f"a personal access token needs the '{_PAT_PERMISSION[need]}' permission"
        + (" ('Repo Read & Write' is enough to push, not for this)" if need == WRITE else "")
    )
    return "; ".join(clauses)


@dataclass(frozen=True)
class HubTag:
    """One tag as the Hub lists it: its digest (or its images' digests) and last push;
    `images`, the digests of the images a multi-platform tag's list holds."""

    name: str
    digest: str | None
    pushed: datetime.datetime | None
    images: tuple[str, ...] = ()


@dataclass
class _Answer:
    status: int
    headers: Headers
    document: Any


def parse_time(value: object) -> datetime.datetime | None:
    """An ISO 8601 time as the Hub (and image configs) write it; None when absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # at most microseconds (image configs carry nanoseconds)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def retry_after(headers: Headers, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or the Hub's
    `X-Retry-After` (unix time)."""
    after = retry_after_seconds(headers.get("Retry-After"))
    if after is not None:
        return after
    value = headers.get("X-Retry-After")
    if value and value.strip().isdigit():
        return max(0.0, float(value.strip()) - (time.time() if now is None else now))
    return None


def _server_says(document: Any) -> str:
    """The reason in an error body: `message`/`detail`/`text`, then each field's complaint."""
    if not isinstance(document, Mapping):
        return ""
    said = [str(document[k]) for k in ("message", "detail", "text") if document.get(k)]
    fields = document.get("fields") or (document.get("errinfo") or {}).get("fields")
    if isinstance(fields, Mapping):
        for name, problems in fields.items():
            listed = problems if isinstance(problems, list) else [problems]
            said.append(f"{name}: {' '.join(map(str, listed))}")
    return "; ".join(said)


class HubClient:
    """One account's session with the Hub web API (`base_url` is HUB_API_URL or the default)."""

    def __init__(self, base_url: str, username: str, token: str, *, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self._token = username, token
        self._bearer: str | None = None
        split = urllib.parse.urlsplit(self.base_url)
        self._origin = (split.scheme, split.netloc)
        self._transport = Transport(self.base_url, what="Docker Hub's API", timeout=timeout)

    # --- transport ----------------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        """A path of this API, or a `next` link — only on this API's own host and scheme."""
        split = urllib.parse.urlsplit(path_or_url)
        if not split.scheme:
            return f"{self.base_url}{path_or_url}"
        if (split.scheme, split.netloc) != self._origin:
            raise RegistryError(
                f"Docker Hub's API at {self.base_url} pointed to another host ({split.netloc}); "
                "hubtasks does not send the token there"
            )
        return path_or_url

    def _send(self, method: str, url: str, body: Any = None) -> _Answer:
        """One request over the shared transport (kept-alive, deadlines, proxies, TLS trust);
        a read follows up to three redirects, the Bearer token only ever to this API's host."""
        data = None if body is None else json.dumps(body).encode()
        redirects = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Accept", "application/json")
            request.add_header("User-Agent", user_agent())
            if data is not None:
                request.add_header("Content-Type", "application/json")
            split = urllib.parse.urlsplit(url)
            own = (split.scheme, split.netloc) == self._origin
            if self._bearer and own and not url.endswith("/v2/auth/token"):
                request.add_unredirected_header("Authorization", f"Bearer {self._bearer}")
            response = self._transport.open(request)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or method not in ("GET", "HEAD") or not location:
                break
            if redirects == _MAX_REDIRECTS:  # the last redirect is the answer
                break
            redirects += 1
            url = urllib.parse.urljoin(url, location)
        try:
            document = json.loads(response.body) if response.body.strip() else None
        except ValueError:
            document = None
        return _Answer(response.status, response.headers, document)

    def login(self) -> None:
        """Exchange the username and token for a Bearer token (`POST /v2/auth/token`)."""
        answer = self._send(
            "POST",
            f"{self.base_url}/v2/auth/token",
            {"identifier": self.username, "secret": self._token},
        )
        token = answer.document.get("access_token") if isinstance(answer.document, dict) else None
        if answer.status == 200 and token:
            add_secret(token)
            self._bearer = token
            return
        if answer.status in (401, 403):
            raise rejected_credentials(
                f"Docker Hub ({self.base_url})",
                self.username,
                answer.status,
                "check HUB_USERNAME and HUB_TOKEN (a personal access token, or an organisation "
                "access token with the organisation as HUB_USERNAME)",
            )
        raise self._failure(answer, "log in to")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        need: str,
        what: str,
        namespace: str,
        passes: tuple[int, ...] = (404,),
    ) -> _Answer:
        """One API call with the Bearer token (logging in first, and once more if it expired).
        2xx and the `passes` statuses come back; anything else raises, a 401/403 with what the
        credentials lack."""
        if self._bearer is None:
            self.login()
        answer = self._send(method, self._url(path), body)
        if answer.status == 401:  # the 10-minute token ran out: one fresh login
            self.login()
            answer = self._send(method, self._url(path), body)
        if 200 <= answer.status < 300 or answer.status in passes:
            return answer
        if answer.status in (401, 403):
            said = _server_says(answer.document) or "denied"
            raise AuthError(
                f"Docker Hub denied {self.username} permission to {what} (HTTP {answer.status}: "
                f"{said}); {permission_hint(need, self.username, namespace, self._token)}",
                status=answer.status,
            )
        raise self._failure(answer, what)

    def _failure(self, answer: _Answer, what: str) -> HubError:
        said = _server_says(answer.document)
        detail = f": {said}" if said else ""
        if answer.status == 429:
            wait = retry_after(answer.headers)
            when = f"; it allows more in {wait:.0f}s" if wait is not None else ""
            return RegistryError(
                f"Docker Hub's API rate limit stopped '{what}' (HTTP 429{detail}){when}",
                status=429,
                transient=True,
                retry_after=wait,
            )
        if answer.status == 400:
            return ConfigError(f"Docker Hub refused to {what} (HTTP 400{detail})", status=400)
        return status_error(
            answer.status, f"Docker Hub could not {what} (HTTP {answer.status}{detail})"
        )

    # --- repositories -------------------------------------------------------------------------
    def repository(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The repository's page fields, or None when it does not exist."""
        answer = self._call(
            "GET",
            f"/v2/namespaces/{namespace}/repositories/{name}",
            need=READ,
            what=f"read {namespace}/{name}",
            namespace=namespace,
        )
        if answer.status == 404:
            return None
        return answer.document if isinstance(answer.document, dict) else {}

    def create_repository(
        self,
        namespace: str,
        name: str,
        *,
        description: str | None,
        full_description: str | None,
        private: bool,
    ) -> bool:
        """Create the repository with its page: True when created, False when it exists
        already (a retried create that had in fact arrived, or another run's). Docker Hub
        answers an existing repository with a 400 (its reference lists no 409 for this route;
        a 409 is taken too): whether it exists is read then, not guessed from the message."""
        body: dict[str, Any] = {"name": name, "namespace": namespace, "is_private": private}
        if description is not None:
            body["description"] = description
        if full_description is not None:
            body["full_description"] = full_description
        what = f"create {namespace}/{name}"
        answer = self._call(
            "POST",
            f"/v2/namespaces/{namespace}/repositories",
            body,
            need=WRITE,
            what=what,
            namespace=namespace,
            passes=(400, 404, 409),
        )
        if answer.status == 404:
            raise RegistryError(
                f"Docker Hub has no namespace '{namespace}' to create {name} in; check "
                "HUB_REPOSITORY",
                status=404,
            )
        if answer.status in (400, 409):
            if self.repository(namespace, name) is None:
                raise self._failure(answer, what)
            return False
        return True

    def update_repository(self, namespace: str, name: str, fields: Mapping[str, str]) -> None:
        """Set page fields (`description`, `full_description`) of an existing repository."""
        answer = self._call(
            "PATCH",
            f"/v2/repositories/{namespace}/{name}/",
            dict(fields),
            need=WRITE,
            what=f"change the page of {namespace}/{name}",
            namespace=namespace,
        )
        if answer.status == 404:
            raise RegistryError(
                f"Docker Hub has no repository {namespace}/{name} to update", status=404
            )

    # --- tags -------------------------------------------------------------------------------
    def tags(self, namespace: str, name: str) -> list[HubTag]:
        """Every tag, following `next` links; [] when the repository does not exist."""
        link: str | None = (
            f"/v2/namespaces/{namespace}/repositories/{name}/tags?page_size={PAGE_SIZE}"
        )
        found: list[HubTag] = []
        seen: set[str] = set()
        while link and link not in seen and len(seen) < _MAX_PAGES:
            seen.add(link)
            answer = self._call(
                "GET",
                link,
                need=READ,
                what=f"list the tags of {namespace}/{name}",
                namespace=namespace,
            )
            if answer.status == 404:
                return []
            document = answer.document if isinstance(answer.document, dict) else {}
            found.extend(_hub_tag(item) for item in document.get("results") or [])
            link = document.get("next") or None
        return found

    def delete_tag(self, namespace: str, name: str, tag: str) -> bool:
        """Delete one tag; False when it was already gone."""
        answer = self._call(
            "DELETE",
            f"/v2/repositories/{namespace}/{name}/tags/{urllib.parse.quote(tag)}/",
            need=WRITE,
            what=f"delete tags of {namespace}/{name}",
            namespace=namespace,
        )
        return answer.status != 404


def _hub_tag(item: Mapping[str, Any]) -> HubTag:
    digest = item.get("digest")
    images = sorted({i.get("digest") for i in item.get("images") or [] if i.get("digest")})
    held = tuple(image for image in images if image != digest)  # a list's images
    if not digest:
        if len(images) == 1:
            digest = images[0]
        elif images:  # several platforms and no index digest: the set stands for the tag
            digest = "images:" + ",".join(images)
    pushed = parse_time(item.get("tag_last_pushed")) or parse_time(item.get("last_updated"))
    return HubTag(name=str(item.get("name")), digest=digest, pushed=pushed, images=held)
