"""Every request hubtasks makes itself honours HTTP(S)_PROXY and NO_PROXY: the registry
client's and the Docker Hub client's, over the one transport."""

from __future__ import annotations

import json

import pytest

from hubtasks.dockerhub.client import HubClient
from hubtasks.references import parse_repository
from hubtasks.registry.client import RegistryClient
from tests.unit.httpfakes import QuietHandler, serving


def _recorder():
    seen: list[tuple[str, str]] = []

    class Handler(QuietHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.command, self.path))
            self._send(200, json.dumps({"access_token": "hub-access"}).encode())

        do_GET = do_POST = _answer

    return Handler, seen


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch):
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_registry_and_hub_requests_go_through_the_proxy(monkeypatch) -> None:
    proxy_handler, through_proxy = _recorder()
    target_handler, direct = _recorder()
    with serving(proxy_handler) as proxy, serving(target_handler) as target:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        origin = f"http://127.0.0.1:{target.server_address[1]}"
        repository = parse_repository("team/app", registry="127.0.0.1:1", username=None)
        assert RegistryClient(repository, "u", "p", base_url=origin).ping() == 200
        HubClient(origin, "alice", "pat").login()
    assert through_proxy == [("GET", f"{origin}/v2/"), ("POST", f"{origin}/v2/auth/token")]
    assert direct == []


def test_no_proxy_goes_direct(monkeypatch) -> None:
    proxy_handler, through_proxy = _recorder()
    target_handler, direct = _recorder()
    with serving(proxy_handler) as proxy, serving(target_handler) as target:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        origin = f"http://127.0.0.1:{target.server_address[1]}"
        repository = parse_repository("team/app", registry="127.0.0.1:1", username=None)
        assert RegistryClient(repository, "u", "p", base_url=origin).ping() == 200
        HubClient(origin, "alice", "pat").login()
    assert through_proxy == []
    assert direct == [("GET", "/v2/"), ("POST", "/v2/auth/token")]
