"""A Docker Hub web API double for tests: `http.server` on 127.0.0.1 (ThreadingHTTPServer).

Docker Hub cannot be reached from here, so this stands in for hub.docker.com. It follows the
Docker Hub API reference (docs.docker.com/reference/api/hub/latest and its OpenAPI file in the
docker/docs repository), read for this purpose:

- `POST /v2/auth/token` {identifier, secret} → 200 {access_token} (expires in 10 minutes),
  401 on wrong credentials ("Create access token").
- `GET /v2/namespaces/{ns}/repositories/{name}` → repository_info; anonymous access allowed
  for public repositories ("Get repository in a namespace").
- `POST /v2/namespaces/{ns}/repositories` with repo_creation_request (name 2–255 characters
  `^[a-z0-9]+(?:[._-][a-z0-9]+)*$`, description ≤ 100, full_description ≤ 25,000,
  is_private) → 201 repository_info ("Create a new repository").
- `GET /v2/namespaces/{ns}/repositories/{name}/tags?page=&page_size=` (default 10, at most
  100) → {count, next, previous, results} with absolute `next` URLs ("List repository tags");
  each tag carries `digest` and `media_type` as live answers do, besides the documented
  `images`, `tag_last_pushed`, `last_updated`.
- Error bodies: {"errinfo": …, "message": …} (the spec's `error` schema, with its examples
  "unauthorized", "permission denied", "not found"); 400 uses the spec's ValueError shape
  {"fields": {field: [problems]}, "text": …}; 429 carries `X-RateLimit-*` and `X-Retry-After`
  (a unix time) as the spec's "Rate Limiting" section says, a `Retry-After` in seconds, and the
  body of the spec's 429 example {"detail": "Rate limit exceeded", "error": false}.

Two routes are not in that reference and follow the tools that use them:
`PATCH /v2/repositories/{ns}/{name}/` {description, full_description}
(peter-evans/dockerhub-description) and `DELETE /v2/repositories/{ns}/{name}/tags/{tag}/`
(docker/hub-tool). Creating a repository that exists answers 400 in the ValueError shape: the
reference lists 201, 400, 401, 403, 404 and 500 for "Create a new repository" and no 409, so
"already exists" is one of its 400s (the exact text is not documented).

Permissions follow the "Access token reference": a personal access token is Repo Public
Read-only, Repo Read-only, Repo Read & Write (push) or Repo Read, Write, Delete (also delete
images and manage repositories) — the last one is needed to change a page, create a repository
or delete a tag, and a 403 then says "access denied: insufficient scope". A namespace that is
not the user's own needs membership of that organisation (owner or editor to manage; a 403
"permission denied" otherwise). An organisation access token (identifier: the organisation)
acts on its organisation only, at the level it was given (pull, push or admin).

It also answers Docker's documented pull-rate-limit probe, as registry-1.docker.io would:
`HEAD /v2/ratelimitpreview/test/manifests/latest` behind the Bearer challenge of `/token`,
with `ratelimit-limit` / `ratelimit-remaining` headers ("Docker Hub pull usage and limits").
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAT_LEVELS = {"public_read": 0, "read": 1, "write": 2, "delete": 3}
OAT_LEVELS = {"pull": 1, "push": 2, "admin": 3}
READ, PUSH, ADMIN = 1, 2, 3
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
TOKEN_LIFETIME = 600


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Account:
    name: str  # the user, or the organisation of an organisation access token
    secret: str
    level: str = "delete"  # PAT: public_read/read/write/delete; OAT: pull/push/admin
    kind: str = "pat"  # "pat" or "oat"
    orgs: dict[str, str] = field(default_factory=dict)  # organisation → owner/editor/member


@dataclass
class TagRecord:
    digest: str
    pushed: datetime.datetime


@dataclass
class Repository:
    namespace: str
    name: str
    description: str = ""
    full_description: str = ""
    is_private: bool = False
    tags: dict[str, TagRecord] = field(default_factory=dict)
    registered: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )

    def info(self) -> dict[str, Any]:
        """repository_info, as GetRepository answers."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "repository_type": "image",
            "status": 1,
            "status_description": "active",
            "description": self.description,
            "full_description": self.full_description,
            "is_private": self.is_private,
            "star_count": 0,
            "pull_count": 0,
            "collaborator_count": 0,
            "categories": [],
            "content_types": ["image"] if self.tags else [],
            "date_registered": _iso(self.registered),
            "last_updated": _iso(
                max((t.pushed for t in self.tags.values()), default=self.registered)
            ),
            "has_starred": False,
            "hub_user": self.namespace,
        }


class HubError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str) -> HubError:
    return HubError(status, {"errinfo": None, "message": message})


class HubDouble:
    """The double's state and server. `with HubDouble() as hub: hub.url …`"""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.repositories: dict[tuple[str, str], Repository] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path); never bodies
        self.max_page_size = 100
        self.pull_limit: tuple[int, int, int] | None = (100, 76, 21600)
        self._tokens: dict[str, tuple[Account, float]] = {}
        self._registry_tokens: set[str] = set()
        self._throttled = 0
        self._throttle_wait = 1
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- set-up -------------------------------------------------------------------------------
    def add_account(self, name: str, secret: str, **options: Any) -> Account:
        account = Account(name, secret, **options)
        self.accounts[secret] = account
        return account

    def add_repository(self, namespace: str, name: str, **fields: Any) -> Repository:
        repository = Repository(namespace, name, **fields)
        self.repositories[(namespace, name)] = repository
        return repository

    def add_tag(
        self, namespace: str, name: str, tag: str, digest: str, pushed: datetime.datetime
    ) -> None:
        repository = self.repositories.get((namespace, name)) or self.add_repository(
            namespace, name
        )
        repository.tags[tag] = TagRecord(digest, pushed)

    def throttle(self, count: int, wait: int = 1) -> None:
        """Answer the next `count` API requests with 429 (Retry-After: `wait` seconds)."""
        self._throttled, self._throttle_wait = count, wait

    def expire_tokens(self) -> None:
        """Every Bearer token handed out so far expires now (as after 10 minutes)."""
        with self._lock:
            self._tokens.clear()

    def sent(self, method: str, prefix: str = "/v2/") -> list[str]:
        return [path for m, path in self.requests if m == method and path.startswith(prefix)]

    # --- server -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubDouble:
        double = self

        class Handler(_Handler):
            hub = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- authentication and permission ------------------------------------------------------
    def issue_token(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict) or not body.get("identifier") or not body.get("secret"):
            raise HubError(400, {"fields": {"identifier": ["required"]}, "text": "bad request"})
        account = self.accounts.get(str(body["secret"]))
        if account is None or account.name != body["identifier"]:
            raise _error(401, "unauthorized")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (account, time.monotonic() + TOKEN_LIFETIME)
        return {"access_token": token}

    def bearer(self, header: str | None) -> Account | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        with self._lock:
            found = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if found is None or found[1] < time.monotonic():
            raise _error(401, "unauthorized")
        return found[0]

    def check(self, account: Account | None, namespace: str, need: int, public: bool) -> None:
        """Raise 401/403 unless `account` may do something of level `need` in `namespace`."""
        if need == READ and public:
            return
        if account is None:
            raise _error(401, "unauthorized")
        if account.kind == "oat":
            if account.name != namespace:
                raise _error(403, "permission denied")
            if OAT_LEVELS[account.level] < need:
                raise _error(403, "access denied: insufficient scope")
            return
        role = "owner" if account.name == namespace else account.orgs.get(namespace)
        if role is None or (role == "member" and need > READ):
            raise _error(403, "permission denied")
        if PAT_LEVELS[account.level] < need:
            raise _error(403, "access denied: insufficient scope")

    def take_throttle(self) -> None:
        with self._lock:
            if self._throttled <= 0:
                return
            self._throttled -= 1
        reset = int(time.time()) + self._throttle_wait
        raise HubError(
            429,
            {"detail": "Rate limit exceeded", "error": False},
            {
                "Retry-After": str(self._throttle_wait),
                "X-Retry-After": str(reset),
                "X-RateLimit-Limit": "180",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            },
        )

    # --- routes -------------------------------------------------------------------------------
    def repository(self, namespace: str, name: str) -> Repository:
        found = self.repositories.get((namespace, name))
        if found is None:
            raise _error(404, "not found")
        return found

    def create(self, account: Account | None, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HubError(400, {"fields": {}, "text": "a JSON object is required"})
        self.check(account, namespace, ADMIN, public=False)
        problems = _creation_problems(namespace, body)
        if problems:
            raise HubError(400, {"fields": problems, "text": "invalid repository"})
        name = str(body["name"])
        if (namespace, name) in self.repositories:
            text = "Repository with this Name and Namespace already exists."
            raise HubError(400, {"fields": {"name": [text]}, "text": text})
        repository = self.add_repository(
            namespace,
            name,
            description=str(body.get("description") or ""),
            full_description=str(body.get("full_description") or ""),
            is_private=bool(body.get("is_private", False)),
        )
        return repository.info()

    def update(self, account: Account | None, namespace: str, name: str, body: Any) -> dict:
        repository = self.repository(namespace, name)
        self.check(account, namespace, ADMIN, public=False)
        if not isinstance(body, dict):
            raise HubError(400, {"fields": {}, "text": "a JSON object is required"})
        problems = _field_problems(body)
        if problems:
            raise HubError(400, {"fields": problems, "text": "invalid fields"})
        for key in ("description", "full_description"):
            if key in body:
                setattr(repository, key, str(body[key]))
        return repository.info()

    def tag_page(
        self, account: Account | None, namespace: str, name: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        repository = self.repository(namespace, name)
        self.check(account, namespace, READ, public=not repository.is_private)
        page = int((query.get("page") or ["1"])[0])
        size = min(int((query.get("page_size") or ["10"])[0]), self.max_page_size)
        if page < 1 or size < 1:
            raise HubError(400, {"fields": {"page": ["must be positive"]}, "text": "bad page"})
        ordered = sorted(repository.tags.items(), key=lambda kv: kv[1].pushed, reverse=True)
        chunk = ordered[(page - 1) * size : page * size]
        base = f"{self.url}/v2/namespaces/{namespace}/repositories/{name}/tags"
        more = page * size < len(ordered)
        return {
            "count": len(ordered),
            "next": f"{base}?page={page + 1}&page_size={size}" if more else None,
            "previous": f"{base}?page={page - 1}&page_size={size}" if page > 1 else None,
            "results": [_tag_json(index, tag, record) for index, (tag, record) in enumerate(chunk)],
        }

    def delete_tag(self, account: Account | None, namespace: str, name: str, tag: str) -> None:
        repository = self.repository(namespace, name)
        self.check(account, namespace, ADMIN, public=False)
        if tag not in repository.tags:
            raise _error(404, "not found")
        del repository.tags[tag]


def _field_problems(body: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if len(str(body.get("description") or "")) > 100:
        problems["description"] = ["Ensure this field has no more than 100 characters."]
    if len(str(body.get("full_description") or "")) > 25_000:
        problems["full_description"] = ["Ensure this field has no more than 25000 characters."]
    return problems


def _creation_problems(namespace: str, body: dict[str, Any]) -> dict[str, list[str]]:
    problems = _field_problems(body)
    name = str(body.get("name") or "")
    if not (2 <= len(name) <= 255) or not _NAME.fullmatch(name):
        problems["name"] = [
            "Must be 2-255 characters long and may only include lowercase alphanumeric "
            "characters, periods, underscores or hyphens."
        ]
    if body.get("namespace") not in (None, namespace):
        problems["namespace"] = ["does not match the namespace in the path"]
    return problems


def _tag_json(index: int, tag: str, record: TagRecord) -> dict[str, Any]:
    pushed = _iso(record.pushed)
    image = {
        "architecture": "amd64",
        "os": "linux",
        "digest": record.digest,
        "size": 1024,
        "status": "active",
        "last_pulled": None,
        "last_pushed": pushed,
    }
    return {
        "creator": 1,
        "id": 1000 + index,
        "images": [image],
        "last_updated": pushed,
        "last_updater": 1,
        "last_updater_username": "hubtasks",
        "name": tag,
        "repository": 1,
        "full_size": 1024,
        "v2": True,
        "tag_status": "active",
        "tag_last_pulled": None,
        "tag_last_pushed": pushed,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "content_type": "image",
        "digest": record.digest,
    }


_ROUTES = [
    ("POST", re.compile(r"/v2/auth/token"), "auth"),
    ("GET", re.compile(r"/v2/namespaces/([^/]+)/repositories/([^/]+)/tags"), "tags"),
    ("GET", re.compile(r"/v2/namespaces/([^/]+)/repositories/([^/]+)/?"), "get"),
    ("POST", re.compile(r"/v2/namespaces/([^/]+)/repositories/?"), "create"),
    ("PATCH", re.compile(r"/v2/repositories/([^/]+)/([^/]+)/"), "update"),
    ("DELETE", re.compile(r"/v2/repositories/([^/]+)/([^/]+)/tags/([^/]+)/"), "delete"),
]


class _Handler(BaseHTTPRequestHandler):
    hub: HubDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _handle(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        body = self._body()
        self.hub.requests.append((self.command, path))
        try:
            if path in ("/token", "/v2/") or path.startswith("/v2/ratelimitpreview/"):
                self._registry_probe(path, urllib.parse.parse_qs(split.query))
                return
            status, answer = self._route(path, body, urllib.parse.parse_qs(split.query))
            self._reply(
                status, answer, {"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "179"}
            )
        except HubError as error:
            self._reply(error.status, error.body, error.headers)

    def _route(self, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        hub = self.hub
        for method, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None or method != self.command:
                continue
            if name == "auth":
                return 200, hub.issue_token(body)
            hub.take_throttle()
            account = hub.bearer(self.headers.get("Authorization"))
            if name == "tags":
                return 200, hub.tag_page(account, *match.groups(), query)
            if name == "get":
                repository = hub.repository(*match.groups())
                hub.check(account, repository.namespace, READ, public=not repository.is_private)
                return 200, repository.info()
            if name == "create":
                return 201, hub.create(account, match.group(1), body)
            if name == "update":
                return 200, hub.update(account, *match.groups(), body)
            hub.delete_tag(account, *match.groups())
            return 204, None
        raise _error(404 if not any(p.fullmatch(path) for _, p, _ in _ROUTES) else 405, "not found")

    def _registry_probe(self, path: str, query: dict[str, list[str]]) -> None:
        """registry-1.docker.io's answer to Docker's rate-limit probe, and its token realm."""
        hub = self.hub
        if path == "/token":
            token = secrets.token_urlsafe(16)
            hub._registry_tokens.add(token)
            self._reply(200, {"token": token, "access_token": token, "expires_in": 300})
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token not in hub._registry_tokens:
            challenge = (
                f'Bearer realm="{hub.url}/token",service="registry.docker.io",'
                'scope="repository:ratelimitpreview/test:pull"'
            )
            body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            self._reply(401, body, {"WWW-Authenticate": challenge})
            return
        headers = {"Docker-Content-Digest": "sha256:" + "0" * 64}
        if hub.pull_limit is not None:
            limit, remaining, window = hub.pull_limit
            headers["ratelimit-limit"] = f"{limit};w={window}"
            headers["ratelimit-remaining"] = f"{remaining};w={window}"
            headers["docker-ratelimit-source"] = "127.0.0.1"
        self._reply(200, None, headers)

    do_GET = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle
