"""Docker's credentials as the docker CLI finds them: the config's `auths` (and legacy keys),
`credsStore`/`credHelpers` helpers run with the key on stdin, identity tokens,
DOCKER_AUTH_CONFIG; a helper that is missing or fails is one line."""

from __future__ import annotations

import base64
import dataclasses
import json
import stat
from pathlib import Path

import pytest

from hubtasks.daemon.credentials import credentials_for
from hubtasks.errors import ConfigError

HUB_KEY = "https://index.docker.io/v1/"


def _auth(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def _config(folder: Path, document: dict[str, object]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(document))
    return {"DOCKER_CONFIG": str(folder)}


def _helper(bin_dir: Path, name: str, body: str) -> None:
    """A docker-credential-NAME on PATH: `body` is sh, with the action in $1 and the key
    on stdin (read into $key); it logs each call to calls.log next to itself."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / f"docker-credential-{name}"
    program.write_text(f'#!/bin/sh\nkey=$(cat)\necho "$1 $key" >> "{bin_dir}/calls.log"\n{body}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)


def _env(tmp_path: Path, document: dict[str, object]) -> dict[str, str]:
    env = _config(tmp_path / "docker", document)
    env["PATH"] = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    env["HOME"] = str(tmp_path)
    return env


def test_auths_entry_of_a_registry(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"registry.test:5000": {"auth": _auth("robot", "s3:cret")}}})
    found = credentials_for("registry.test:5000", env)
    assert found is not None
    assert (found.username, found.secret, found.identity_token) == ("robot", "s3:cret", False)
    assert found.source == f"{tmp_path / 'docker' / 'config.json'} (auths['registry.test:5000'])"
    assert "s3:cret" not in repr(found)
    assert credentials_for("other.test:5000", env) is None


def test_legacy_key_with_scheme_is_found_by_its_host(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"http://registry.test:5000/v1/": {"auth": _auth("a", "b")}}})
    found = credentials_for("registry.test:5000", env)
    assert found is not None and (found.username, found.secret) == ("a", "b")


@pytest.mark.parametrize("alias", ["docker.io"])
def test_docker_hub_is_keyed_as_docker_keys_it(tmp_path: Path, alias: str) -> None:
    env = _env(
        tmp_path,
        {
            "auths": {
                # docker/cli reads Docker Hub only under its index key, never under these.
                "docker.io": {"auth": _auth("wrong", "x")},
                "registry-1.docker.io": {"auth": _auth("wrong", "y")},
                HUB_KEY: {"auth": _auth("hubuser", "dckr_pat_1")},
            }
        },
    )
    found = credentials_for(alias, env)
    assert found is not None and (found.username, found.secret) == ("hubuser", "dckr_pat_1")


def test_identity_token_entry(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"acr.test": {"identitytoken": "refresh-abc"}}})
    found = credentials_for("acr.test", env)
    assert found is not None
    assert (found.username, found.secret, found.identity_token) == (None, "refresh-abc", True)


def test_entry_without_secret_is_nothing(tmp_path: Path) -> None:
    # docker login with a helper leaves `{}` under auths; an email-only entry is as empty.
    env = _env(tmp_path, {"auths": {"registry.test": {}, HUB_KEY: {"email": "a@b"}}})
    assert credentials_for("registry.test", env) is None
    assert credentials_for("docker.io", env) is None


def test_bad_auth_field_is_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"registry.test": {"auth": "not base64!"}}})
    with pytest.raises(ConfigError, match=r"'auth' of .*registry.test.* is not base64"):
        credentials_for("registry.test", env)


def test_creds_store_helper_gets_the_key_on_stdin(tmp_path: Path) -> None:
    _helper(
        tmp_path / "bin",
        "fake",
        '[ "$1" = get ] && printf \'{"ServerURL":"%s","Username":"u","Secret":"tok"}\' "$key"',
    )
    env = _env(tmp_path, {"credsStore": "fake", "auths": {HUB_KEY: {}}})
    found = credentials_for("docker.io", env)
    assert found is not None and (found.username, found.secret) == ("u", "tok")
    assert found.source.startswith("docker-credential-fake (credsStore in ")
    assert (tmp_path / "bin" / "calls.log").read_text() == f"get {HUB_KEY}\n"


def test_cred_helpers_win_over_creds_store(tmp_path: Path) -> None:
    _helper(tmp_path / "bin", "ecr-login", 'echo \'{"Username":"AWS","Secret":"ecrpass"}\'')
    _helper(tmp_path / "bin", "desktop", "exit 1")
    env = _env(
        tmp_path,
        {"credsStore": "desktop", "credHelpers": {"1234.dkr.ecr.test": "ecr-login"}},
    )
    found = credentials_for("1234.dkr.ecr.test", env)
    assert found is not None and (found.username, found.secret) == ("AWS", "ecrpass")
    assert "credHelpers['1234.dkr.ecr.test']" in found.source


def test_helper_token_username_is_an_identity_token(tmp_path: Path) -> None:
    _helper(tmp_path / "bin", "fake", 'echo \'{"Username":"<token>","Secret":"refresh"}\'')
    env = _env(tmp_path, {"credsStore": "fake"})
    found = credentials_for("registry.test", env)
    assert found is not None and found.identity_token and found.username is None


def test_helper_not_found_answer_is_no_credentials(tmp_path: Path) -> None:
    _helper(tmp_path / "bin", "fake", 'echo "credentials not found in native keychain"; exit 1')
    env = _env(tmp_path, {"credsStore": "fake"})
    assert credentials_for("registry.test", env) is None


def test_failing_helper_is_one_line_naming_it(tmp_path: Path) -> None:
    _helper(tmp_path / "bin", "pass", 'echo "gpg: decryption failed: No secret key" >&2; exit 1')
    env = _env(tmp_path, {"credsStore": "pass"})
    with pytest.raises(ConfigError) as caught:
        credentials_for("registry.test", env)
    message = str(caught.value)
    assert "\n" not in message
    assert "docker-credential-pass (credsStore in " in message
    assert "exit 1: gpg: decryption failed: No secret key" in message
    assert "set HUB_TOKEN" in message


def test_missing_helper_is_one_line_naming_it(tmp_path: Path) -> None:
    env = _env(tmp_path, {"credHelpers": {"registry.test": "nosuch"}})
    with pytest.raises(ConfigError, match=r"docker-credential-nosuch .* is not installed"):
        credentials_for("registry.test", env)


def test_helper_answering_garbage_is_one_line(tmp_path: Path) -> None:
    _helper(tmp_path / "bin", "fake", "echo hello")
    env = _env(tmp_path, {"credsStore": "fake"})
    with pytest.raises(ConfigError, match="not its JSON"):
        credentials_for("registry.test", env)


def test_helper_is_not_given_hub_token(tmp_path: Path) -> None:
    _helper(
        tmp_path / "bin",
        "fake",
        'printf \'{"Username":"u","Secret":"%s"}\' "${HUB_TOKEN:-unset}"',
    )
    env = _env(tmp_path, {"credsStore": "fake"})
    env["HUB_TOKEN"] = "ours"
    found = credentials_for("registry.test", env)
    assert found is not None and found.secret == "unset"


def test_docker_auth_config_is_asked_first(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"registry.test": {"auth": _auth("file", "f")}}})
    env["DOCKER_AUTH_CONFIG"] = json.dumps({"auths": {"registry.test": {"auth": _auth("e", "v")}}})
    found = credentials_for("registry.test", env)
    assert found is not None and (found.username, found.source) == (
        "e",
        "DOCKER_AUTH_CONFIG (auths['registry.test'])",
    )
    env["DOCKER_AUTH_CONFIG"] = "{"
    with pytest.raises(ConfigError, match="DOCKER_AUTH_CONFIG is not a JSON"):
        credentials_for("registry.test", env)


def test_no_config_is_no_credentials(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    assert credentials_for("registry.test", env) is None


def test_unreadable_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="cannot read the Docker config"):
        credentials_for("registry.test", {"DOCKER_CONFIG": str(tmp_path)})


def test_save_then_find_then_remove_in_the_config_file(tmp_path: Path) -> None:
    from hubtasks.daemon.credentials import remove_credentials, save_credentials
    from hubtasks.references import parse_repository

    env = _env(tmp_path, {"auths": {"other.test": {"auth": _auth("x", "y")}}})
    repository = parse_repository("registry.test:5000/team/app", registry=None, username=None)
    where = save_credentials(repository, "robot$ci+bot", "s3cret", env)
    config = tmp_path / "docker" / "config.json"
    assert where == str(config) and stat.S_IMODE(config.stat().st_mode) == 0o600
    found = credentials_for("registry.test:5000", env)
    assert found is not None and (found.username, found.secret) == ("robot$ci+bot", "s3cret")
    assert remove_credentials("registry.test:5000", env, "someone") == (None, "robot$ci+bot")
    assert remove_credentials("registry.test:5000", env, "robot$ci+bot") == (str(config), None)
    assert credentials_for("registry.test:5000", env) is None
    assert credentials_for("other.test", env) is not None  # the other entry stays


def _resolved(env: dict[str, str], **values: str):
    from hubtasks.settings.resolve import resolve_settings

    environ = {"HUB_REGISTRY": "registry.test:5000", "HUB_REPOSITORY": "team/app", **values}
    settings = resolve_settings(flags={}, environ=environ, dotenv={}, config={}, cwd=Path("."))
    return dataclasses.replace(settings, docker_env=env)


def test_with_docker_credentials_fills_an_empty_token_and_says_where_from(tmp_path: Path) -> None:
    from hubtasks.daemon.credentials import from_docker_store, with_docker_credentials

    env = _env(tmp_path, {"auths": {"registry.test:5000": {"auth": _auth("robot", "s3cret")}}})
    settings = with_docker_credentials(_resolved(env))
    assert (settings.username, settings.token, settings.identity_token) == (
        "robot",
        "s3cret",
        False,
    )
    where = f"{tmp_path / 'docker' / 'config.json'} (auths['registry.test:5000'])"
    assert settings.source_of("token") == settings.source_of("username") == where
    # HUB_TOKEN set: Docker's store is not even read.
    own = _resolved({"DOCKER_CONFIG": str(tmp_path / "none")}, HUB_USERNAME="me", HUB_TOKEN="t")
    assert with_docker_credentials(own) is own
    # The same user named in HUB_USERNAME: only the token comes from Docker.
    named = with_docker_credentials(_resolved(env, HUB_USERNAME="robot"))
    assert named.source_of("username") == "HUB_USERNAME in the environment"
    assert from_docker_store(settings) and from_docker_store(named)
    assert not from_docker_store(own)


def test_docker_credentials_of_another_user_are_not_taken(tmp_path: Path) -> None:
    from hubtasks.daemon.credentials import with_docker_credentials

    env = _env(tmp_path, {"auths": {"registry.test:5000": {"auth": _auth("bob", "b")}}})
    with pytest.raises(ConfigError, match="are bob's, not alice's"):
        with_docker_credentials(_resolved(env, HUB_USERNAME="alice"))


def test_an_identity_token_is_marked_as_one(tmp_path: Path) -> None:
    from hubtasks.daemon.credentials import with_docker_credentials

    env = _env(tmp_path, {"auths": {"registry.test:5000": {"identitytoken": "refresh"}}})
    settings = with_docker_credentials(_resolved(env))
    assert settings.identity_token and settings.username is None
    settings.require("login")  # no HUB_USERNAME needed
    assert settings.auth_config == {
        "identitytoken": "refresh",
        "serveraddress": "registry.test:5000",
    }


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed and not yet reaped, does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_hanging_helper_is_stopped_with_the_programs_it_started(tmp_path, monkeypatch) -> None:
    import time

    from hubtasks.daemon import credentials

    monkeypatch.setattr(credentials, "_HELPER_TIMEOUT", 0.5)
    # The helper waits on a program of its own, as `pass` waits on gpg's pinentry.
    _helper(tmp_path / "bin", "hang", f'sleep 30 & echo $! > "{tmp_path}/child"; wait')
    env = _env(tmp_path, {"credsStore": "hang"})
    with pytest.raises(ConfigError, match="did not answer within"):
        credentials_for("registry.test", env)
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the helper's own child outlived it"


def test_logout_without_a_username_leaves_a_docker_login_alone(tmp_path):
    """`inv logout` removes only what `inv login --save` stored; without HUB_USERNAME it
    cannot tell, so a `docker login`'s entry stays (found by a tester)."""
    import base64
    import json

    from hubtasks import api
    from hubtasks.settings.resolve import resolve_settings

    config = tmp_path / "config.json"
    auth = base64.b64encode(b"alice:pw").decode()
    config.write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": auth}}}))
    settings = resolve_settings(
        flags={},
        environ={"HUB_REGISTRY": "127.0.0.1:5000", "DOCKER_CONFIG": str(tmp_path)},
        dotenv={},
        config={},
        cwd=tmp_path,
    )
    assert api.logout(settings) is None
    assert json.loads(config.read_text())["auths"]["127.0.0.1:5000"]["auth"] == auth
