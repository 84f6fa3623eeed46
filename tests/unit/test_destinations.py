"""Several destinations: the settings (repositories, each registry's credentials, redaction),
what a release reports per destination, and the streamed blob copy against small fake
registries (a HEAD first, credentials never sent where a redirect points)."""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hubtasks.errors import AuthError, ConfigError, RegistryError, ReleaseRefused
from hubtasks.pipeline import mirror
from hubtasks.pipeline.plan import CREATE, SKIP, Plan, TagDecision
from hubtasks.pipeline.results import PushedTag, Release
from hubtasks.pipeline.session import Session
from hubtasks.references import Repository
from hubtasks.registry.client import RegistryClient
from hubtasks.registry.copy import copy_blob
from hubtasks.registry.transport import CREDENTIALS_HINT, rejected_credentials
from hubtasks.settings.destinations import (
    credentials_for,
    mirror_settings,
    registry_variables,
    require_mirror_credentials,
)
from hubtasks.settings.envfile import token_candidates
from hubtasks.settings.resolve import resolve_settings
from tests.helpers.consoles import make_console

from .fakes import FakeRegistry
from .fakes import Store as FakeStore
from .httpfakes import serving

CWD = Path("/project")
BASE = {"HUB_USERNAME": "alice", "HUB_TOKEN": "hub-secret"}


def resolve(environ=None, dotenv=None, flags=None):
    return resolve_settings(
        flags=flags or {},
        environ={**BASE, **(environ or {})},
        dotenv=dotenv or {},
        config={},
        cwd=CWD,
    )


def test_several_repositories_space_separated_the_first_is_pushed():
    settings = resolve(
        {"HUB_REPOSITORY": "app ghcr.io/alice/app  registry.example.com:5000/team/app app"}
    )
    assert settings.repository == Repository("docker.io", "alice/app")
    assert settings.registry == "docker.io"
    assert settings.mirrors == (
        Repository("ghcr.io", "alice/app"),
        Repository("registry.example.com:5000", "team/app"),
    )


def test_a_repeated_flag_and_a_further_repository_without_host_in_the_explicit_registry():
    settings = resolve(
        {"HUB_REGISTRY": "reg.example.com"},
        flags={"repository": ["app", "ghcr.io/alice/app", "team/app"]},
    )
    assert settings.repository == Repository("reg.example.com", "alice/app")
    assert settings.mirrors == (
        Repository("ghcr.io", "alice/app"),
        Repository("reg.example.com", "team/app"),
    )


def test_a_bad_word_among_several_is_named_with_the_whole_setting():
    with pytest.raises(ConfigError) as caught:
        resolve({"HUB_REPOSITORY": "app Bad/Name"})
    assert "('app Bad/Name'): 'Bad/Name'" in str(caught.value)


def test_one_repository_has_no_mirrors():
    assert resolve({"HUB_REPOSITORY": "app"}).mirrors == ()


@pytest.mark.parametrize(
    ("host", "names"),
    [
        ("ghcr.io", ("HUB_REGISTRY_GHCR_IO_USERNAME", "HUB_REGISTRY_GHCR_IO_TOKEN")),
        (
            "127.0.0.1:5001",
            ("HUB_REGISTRY_127_0_0_1_5001_USERNAME", "HUB_REGISTRY_127_0_0_1_5001_TOKEN"),
        ),
        ("docker.io", ("HUB_REGISTRY_DOCKER_IO_USERNAME", "HUB_REGISTRY_DOCKER_IO_TOKEN")),
    ],
)
def test_each_registry_has_its_two_settings(host, names):
    assert registry_variables(host) == names


def test_credentials_per_registry_the_environment_over_dotenv():
    settings = resolve(
        {
            "HUB_REPOSITORY": "app ghcr.io/alice/app docker.io/alice/other",
            "HUB_REGISTRY_GHCR_IO_TOKEN": "ghcr-from-env",
        },
        dotenv={
            "HUB_REGISTRY_GHCR_IO_USERNAME": "alice-gh",
            "HUB_REGISTRY_GHCR_IO_TOKEN": "ghcr-from-dotenv",
        },
    )
    assert credentials_for(settings, "ghcr.io") == ("alice-gh", "ghcr-from-env")
    # Another repository in the first destination's registry: HUB_USERNAME / HUB_TOKEN.
    assert credentials_for(settings, "docker.io") == ("alice", "hub-secret")
    ghcr, other = mirror_settings(settings)
    assert (ghcr.username, ghcr.token, ghcr.registry, ghcr.mirrors) == (
        "alice-gh",
        "ghcr-from-env",
        "ghcr.io",
        (),
    )
    assert (other.username, other.token) == ("alice", "hub-secret")
    assert "ghcr-from-env" in settings.secrets and "hub-secret" in settings.secrets
    assert "ghcr-from-env" not in repr(settings)


def test_missing_credentials_of_a_further_registry_are_named():
    settings = resolve({"HUB_REPOSITORY": "app quay.io/alice/app"})
    with pytest.raises(ConfigError) as caught:
        require_mirror_credentials(mirror_settings(settings))
    assert "HUB_REGISTRY_QUAY_IO_USERNAME, HUB_REGISTRY_QUAY_IO_TOKEN" in str(caught.value)
    assert "`docker login quay.io`" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_further_registry_takes_what_docker_login_left(tmp_path):
    import base64
    import json

    from hubtasks.pipeline.mirror import destinations

    auth = base64.b64encode(b"bob:bob-secret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"quay.io": {"auth": auth}}}))
    settings = resolve({"HUB_REPOSITORY": "app quay.io/alice/app", "DOCKER_CONFIG": str(tmp_path)})
    (other,) = destinations(settings)
    assert (other.username, other.token) == ("bob", "bob-secret")
    assert str(tmp_path / "config.json") in other.source_of("token")
    assert "bob-secret" not in repr(other)


def test_every_registry_token_in_sight_is_redacted(tmp_path):
    (tmp_path / ".env").write_text("HUB_TOKEN=a-token\nHUB_REGISTRY_GHCR_IO_TOKEN='gh-token'\n")
    found = token_candidates(tmp_path, {"HUB_REGISTRY_QUAY_IO_TOKEN": "quay-token"})
    assert {"a-token", "gh-token", "quay-token"} <= set(found)


def _release(repository: Repository, tag: str, digest: str, action=CREATE) -> Release:
    plan = Plan((TagDecision(tag, action, "new"),), build=False)
    return Release(repository, plan, published=[PushedTag(repository, tag, digest)])


def test_a_release_reports_every_destination():
    first, ghcr = Repository("docker.io", "alice/app"), Repository("ghcr.io", "alice/app")
    digest = "sha256:" + "a" * 64
    release = _release(first, "v1", digest)
    release.mirrors.append(_release(ghcr, "v1", digest, SKIP))
    assert [p.reference for p in release.everywhere] == [
        f"docker.io/alice/app:v1@{digest}",
        f"ghcr.io/alice/app:v1@{digest}",
    ]
    document = release.to_dict()
    assert [d["image"] for d in document["destinations"]] == [str(first), str(ghcr)]
    assert document["destinations"][1]["tags"][0]["action"] == "skip"
    assert document["destinations"][1]["references"] == [f"ghcr.io/alice/app:v1@{digest}"]


def test_a_failure_part_way_names_the_destinations_left():
    error = mirror.still_to_do(RegistryError("boom"), ["ghcr.io/alice/app"])
    assert "boom" in str(error) and "not (wholly) published yet: ghcr.io/alice/app" in str(error)
    assert mirror.still_to_do(RegistryError("boom"), []).message == "boom"


# --- the streamed copy --------------------------------------------------------------------

BLOB = b"layer bytes " * 1000
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


SEEN: dict[str, list] = {}


class Store(BaseHTTPRequestHandler):  # where the source's redirect points
    def log_message(self, *args):
        pass

    def do_GET(self):
        SEEN["store"].append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BLOB)))
        self.end_headers()
        self.wfile.write(BLOB)


class Source(BaseHTTPRequestHandler):
    store = ""

    def log_message(self, *args):
        pass

    def _auth(self) -> bool:
        if self.headers.get("Authorization", "").startswith("Basic "):
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="fake"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_HEAD(self):
        if self._auth():
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()

    def do_GET(self):
        if self._auth():
            SEEN["source"].append(self.path)
            self.send_response(307)
            self.send_header("Location", f"http://{self.store}/blob")
            self.send_header("Content-Length", "0")
            self.end_headers()


class Target(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        self._answer(200 if SEEN["target"] else 404)

    def do_POST(self):
        self._answer(202, Location="/v2/bob/app/blobs/uploads/u1?_state=x")

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SEEN["target"].append((self.path, body))
        self._answer(201)


def test_a_blob_is_streamed_across_credentials_stay_home_and_a_second_copy_sends_nothing():
    SEEN.update(store=[], source=[], target=[])
    seen = SEEN
    with serving(Store) as s, serving(Source) as a, serving(Target) as b:
        Source.store = f"127.0.0.1:{s.server_address[1]}"
        origin = RegistryClient(
            Repository(f"127.0.0.1:{a.server_address[1]}", "alice/app"), "alice", "secret"
        )
        into = RegistryClient(Repository(f"127.0.0.1:{b.server_address[1]}", "bob/app"), None, None)
        assert copy_blob(origin, into, DIGEST) is True
        assert copy_blob(origin, into, DIGEST) is False  # a HEAD says it is there
    assert seen["store"] == [None]  # the redirect got no credentials
    assert len(seen["source"]) == 1
    [(path, body)] = seen["target"]
    assert body == BLOB
    assert path == f"/v2/bob/app/blobs/uploads/u1?_state=x&digest={DIGEST.replace(':', '%3A')}"


def test_a_further_registry_does_not_inherit_the_first_ones_identity_token(tmp_path):
    from dataclasses import replace

    from hubtasks.pipeline.mirror import destinations

    first = replace(
        resolve({"HUB_REPOSITORY": "app ghcr.io/alice/app", "DOCKER_CONFIG": str(tmp_path)}),
        identity_token=True,
        sources={"token": "docker-credential-desktop (credsStore)"},
        registry_credentials={
            "HUB_REGISTRY_GHCR_IO_USERNAME": "alice-gh",
            "HUB_REGISTRY_GHCR_IO_TOKEN": "ghcr-secret",
        },
    )
    (ghcr,) = destinations(first)
    assert (ghcr.token, ghcr.identity_token) == ("ghcr-secret", False)
    # `-v` and doctor say where a further registry's credentials came from: its own settings.
    assert ghcr.source_of("token") == "HUB_REGISTRY_GHCR_IO_TOKEN"
    assert ghcr.auth_config["password"] == "ghcr-secret"


class _Refusing(FakeRegistry):
    def check_credentials(self) -> None:
        raise rejected_credentials(
            f"registry {self.repository.registry}", "alice-gh", 401, CREDENTIALS_HINT
        )


def test_a_further_registry_refusing_its_credentials_names_its_own_settings():
    from hubtasks import api

    settings = resolve(
        {
            "HUB_REPOSITORY": "app ghcr.io/alice/app",
            "HUB_REGISTRY_GHCR_IO_USERNAME": "alice-gh",
            "HUB_REGISTRY_GHCR_IO_TOKEN": "wrong",
        }
    )
    (ghcr,) = mirror_settings(settings)
    session = Session(
        console=make_console("plain"),
        context=object(),
        registry_factory=lambda s: _Refusing(s.require_repository(), FakeStore()),
    )
    with pytest.raises(AuthError) as caught:
        api.login(ghcr, session=session)
    message = str(caught.value)
    assert "check HUB_REGISTRY_GHCR_IO_USERNAME and HUB_REGISTRY_GHCR_IO_TOKEN" in message
    assert "HUB_USERNAME" not in message


def test_a_refusal_does_not_say_that_running_again_finishes():
    # Another run's image under the version tag: a re-run is refused again, it finishes nothing.
    refused = ReleaseRefused("refusing to release, nothing was pushed: …", stage="plan")
    error = mirror.still_to_do(refused, ["ghcr.io/alice/app"])
    assert isinstance(error, ReleaseRefused) and "ghcr.io/alice/app" in str(error)
    assert "run the release again" not in str(error)
