"""The Docker Hub web API client against the Hub double (devtools/hubdouble.py), and the pull
rate limit against the double's copy of Docker's documented probe."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from devtools.hubdouble import HubDouble
from hubtasks.dockerhub.client import HubClient, api_url, permission_hint, split_path
from hubtasks.errors import AuthError, ConfigError, HubError, RegistryError
from hubtasks.references import Repository
from hubtasks.registry.client import RegistryClient, read_rate_limit
from hubtasks.registry.ratelimit import (
    RateLimit,
    describe_limit,
    parse_rate_limit,
    too_many_requests,
)
from hubtasks.settings.resolve import resolve_settings

PAT = "dckr_pat_alice-secret"
NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def double():
    with HubDouble() as running:
        running.add_account("alice", PAT, level="delete", orgs={"team": "member"})
        running.add_account("writer", "dckr_pat_writer", level="write")
        running.add_account("acme", "dckr_oat_acme", kind="oat", level="push")
        yield running


def client(double: HubDouble, user: str = "alice", token: str = PAT) -> HubClient:
    return HubClient(double.url, user, token)


def test_create_read_update(double):
    hub = client(double)
    assert hub.repository("alice", "web") is None
    assert (
        hub.create_repository(
            "alice", "web", description="short", full_description="# long", private=True
        )
        is True
    )
    page = hub.repository("alice", "web")
    assert (page["description"], page["full_description"], page["is_private"]) == (
        "short",
        "# long",
        True,
    )
    hub.update_repository("alice", "web", {"full_description": "# new"})
    assert double.repositories[("alice", "web")].full_description == "# new"
    assert double.repositories[("alice", "web")].description == "short"


def test_create_of_an_existing_repository_is_not_an_error(double):
    """Docker Hub answers 400 (its reference has no 409 for this route); the repository then
    read is what says it exists: a retried create that had arrived, or another run's."""
    double.add_repository("alice", "web")
    made = client(double).create_repository(
        "alice", "web", description=None, full_description=None, private=False
    )
    assert made is False
    assert double.sent("POST", "/v2/namespaces/") == ["/v2/namespaces/alice/repositories"]
    assert double.sent("GET") == ["/v2/namespaces/alice/repositories/web"]


def test_a_400_to_a_create_of_a_missing_repository_stays_an_error(double):
    with pytest.raises(ConfigError, match="HTTP 400"):
        client(double).create_repository(
            "alice", "Not_Valid", description=None, full_description=None, private=False
        )


def test_tags_follow_every_page(double):
    double.max_page_size = 4
    for index in range(11):
        double.add_tag("alice", "web", f"sha-{index}", f"sha256:{index:064x}", NOW)
    tags = client(double).tags("alice", "web")
    assert sorted(t.name for t in tags) == sorted(f"sha-{i}" for i in range(11))
    assert len(double.sent("GET", "/v2/namespaces/alice/repositories/web/tags")) == 3
    assert all(t.pushed and abs((t.pushed - NOW).total_seconds()) < 1 for t in tags)
    assert {t.digest for t in tags} == {f"sha256:{i:064x}" for i in range(11)}


def test_delete_tag(double):
    double.add_tag("alice", "web", "old", "sha256:" + "a" * 64, NOW)
    hub = client(double)
    assert hub.delete_tag("alice", "web", "old") is True
    assert hub.delete_tag("alice", "web", "old") is False  # already gone
    assert double.repositories[("alice", "web")].tags == {}


def test_wrong_token_is_one_clear_auth_error(double):
    with pytest.raises(AuthError) as caught:
        client(double, token="dckr_pat_wrong").repository("alice", "web")
    assert "rejected the credentials of 'alice' (HTTP 401)" in str(caught.value)
    assert "dckr_pat_wrong" not in str(caught.value)


def test_read_and_write_token_cannot_change_a_page(double):
    double.add_repository("writer", "app")
    with pytest.raises(AuthError) as caught:
        client(double, "writer", "dckr_pat_writer").update_repository(
            "writer", "app", {"description": "x"}
        )
    message = str(caught.value)
    assert "HTTP 403: access denied: insufficient scope" in message
    assert "'Repo Read, Write, Delete' permission" in message
    assert "Read & Write' is enough to push" in message
    assert "namespace" not in message  # its own namespace: no membership clause


def test_a_namespace_the_user_does_not_manage_is_named(double):
    double.add_repository("team", "app")
    with pytest.raises(AuthError) as caught:
        client(double).update_repository("team", "app", {"description": "x"})
    assert "'team' is not alice's own namespace" in str(caught.value)
    with pytest.raises(AuthError, match="'stranger' is not alice's own namespace"):
        client(double).create_repository(
            "stranger", "app", description=None, full_description=None, private=False
        )


def test_organisation_token_needs_repository_admin(double):
    double.add_repository("acme", "app")
    with pytest.raises(AuthError, match="organisation access token needs repository admin"):
        client(double, "acme", "dckr_oat_acme").update_repository(
            "acme", "app", {"description": "x"}
        )


def test_field_limits_are_a_config_error_with_the_server_reason(double):
    with pytest.raises(ConfigError) as caught:
        client(double).create_repository(
            "alice", "a", description=None, full_description=None, private=False
        )
    assert "HTTP 400" in str(caught.value) and "name: Must be 2-255 characters" in str(caught.value)
    double.add_repository("alice", "web")
    with pytest.raises(ConfigError, match="description: Ensure this field has no more than 100"):
        client(double).update_repository("alice", "web", {"description": "x" * 101})


def test_rate_limited_answer_is_transient_with_its_wait(double):
    double.throttle(1, wait=7)
    with pytest.raises(RegistryError) as caught:
        client(double).repository("alice", "web")
    assert caught.value.transient and caught.value.status == 429
    assert caught.value.retry_after == 7
    assert client(double).repository("alice", "web") is None  # the next one passes


def test_an_expired_token_means_one_fresh_login(double):
    hub = client(double)
    hub.repository("alice", "web")
    double.expire_tokens()
    assert hub.repository("alice", "web") is None
    assert len(double.sent("POST", "/v2/auth/token")) == 2


def test_a_next_link_to_another_host_is_not_followed(double):
    for index, tag in enumerate(("v1", "v2")):
        double.add_tag("alice", "web", tag, f"sha256:{index}", NOW)
    double.max_page_size = 1  # a `next` link after the first tag
    # The double writes its links for 127.0.0.1; this client was given the API as localhost.
    hub = HubClient(double.url.replace("127.0.0.1", "localhost"), "alice", PAT)
    with pytest.raises(RegistryError, match=r"pointed to another host \(127\.0\.0\.1:"):
        hub.tags("alice", "web")
    assert len(double.sent("GET", "/v2/namespaces/alice/repositories/web/tags")) == 1


def test_unreachable_api_is_transient():
    with pytest.raises(HubError) as caught:
        HubClient("http://127.0.0.1:9", "alice", PAT, timeout=2).repository("alice", "web")
    assert caught.value.transient and "cannot reach Docker Hub's API" in str(caught.value)


def test_which_registries_have_a_hub_api():
    def settings(**environ: str):
        base = {"HUB_REPOSITORY": "alice/web", "HUB_USERNAME": "alice"}
        return resolve_settings(
            flags={}, environ={**base, **environ}, dotenv={}, config={}, cwd=Path(".")
        )

    assert api_url(settings()) == "https://hub.docker.com"
    assert api_url(settings(HUB_REGISTRY="ghcr.io")) is None
    assert api_url(settings(HUB_REGISTRY="ghcr.io", HUB_API_URL="http://127.0.0.1:1")) == (
        "http://127.0.0.1:1"
    )
    with pytest.raises(ConfigError, match="NAMESPACE/NAME"):
        split_path(Repository("docker.io", "a/b/c"))


def test_permission_hint_for_reading():
    assert permission_hint("read", "alice", "alice", PAT) == (
        "a personal access token needs the 'Repo Read-only' permission"
    )


# --- the pull rate limit ------------------------------------------------------------------


def test_parse_rate_limit_headers():
    found = parse_rate_limit(
        {"RateLimit-Limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"}
    )
    assert found == RateLimit(limit=100, remaining=76, window=21600, reset_in=None)
    assert describe_limit(found) == "76 of 100 pulls left (per 6 h, a rolling window)"
    assert parse_rate_limit({"Content-Type": "x"}) is None


def test_reset_from_a_delay_or_a_unix_time():
    headers = {
        "ratelimit-limit": "100;w=21600",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "600",
    }
    found = parse_rate_limit(headers, now=0)
    assert found is not None and found.reset_in == 600
    assert describe_limit(found, now=0) == (
        "0 of 100 pulls left (per 6 h); resets in 10 min (at 00:10 UTC)"
    )
    epoch = {**headers, "ratelimit-reset": str(2_000_000_000 + 3600)}
    assert parse_rate_limit(epoch, now=2_000_000_000).reset_in == 3600


def test_too_many_requests_messages():
    hub_limit = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    assert too_many_requests("docker.io", hub_limit).startswith(
        "Docker Hub's pull rate limit is used up (HTTP 429 TOOMANYREQUESTS): 0 of 100 pulls left"
    )
    assert "resets in 5 min" in too_many_requests("docker.io", {"Retry-After": "300"})
    assert "6-hour window" in too_many_requests("docker.io")
    assert too_many_requests("ghcr.io", {"Retry-After": "60"}) == (
        "registry ghcr.io is limiting requests (HTTP 429 TOOMANYREQUESTS); it asks to wait 1 min"
    )


def test_read_rate_limit_through_the_bearer_challenge(double):
    probe = RegistryClient(
        Repository("docker.io", "ratelimitpreview/test"), "alice", PAT, base_url=double.url
    )
    assert read_rate_limit(probe) == RateLimit(100, 76, 21600, None)
    assert double.sent("GET", "/token")  # it answered the challenge with a token first
    double.pull_limit = None
    assert read_rate_limit(probe) is None


def test_a_redirect_does_not_carry_the_bearer_token_to_another_host():
    """urllib copies plain headers to a redirect's target; the token must not go there."""
    import json
    import threading
    from http.server import ThreadingHTTPServer

    from .httpfakes import QuietHandler

    seen: list[str | None] = []

    class Elsewhere(QuietHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self._send(200, json.dumps({"name": "web"}).encode())

    class Api(QuietHandler):
        def do_POST(self):  # /v2/auth/token
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._send(200, json.dumps({"access_token": "hub-bearer-secret"}).encode())

        def do_GET(self):
            target = f"http://127.0.0.1:{elsewhere.server_address[1]}/copy"
            self._send(302, headers=[("Location", target)])

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), k) for k in (Api, Elsewhere)]
    api, elsewhere = servers
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        HubClient(f"http://127.0.0.1:{api.server_address[1]}", "alice", PAT).repository(
            "alice", "web"
        )
    except HubError:
        pass  # whatever the client makes of the answer: the point is what was sent
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert seen == [None]


def test_retry_after_as_an_http_date_is_honoured_by_the_hub_client_and_the_rate_limit_line():
    from email.utils import format_datetime

    from hubtasks.dockerhub.client import retry_after

    now = datetime.datetime.now(datetime.timezone.utc)
    later = format_datetime(now + datetime.timedelta(seconds=120), usegmt=True)
    assert 60 < retry_after({"Retry-After": later}) <= 120
    line = too_many_requests("ghcr.io", {"Retry-After": later})
    assert line.endswith("it asks to wait 2 min")
