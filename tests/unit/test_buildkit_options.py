"""Which builder, and the BuildKit path's --secret / --ssh, as `docker build` spells them."""

from __future__ import annotations

import pytest

from hubtasks.build.buildkit import options
from hubtasks.errors import ConfigError


@pytest.mark.parametrize(
    ("setting", "os", "api", "chosen"),
    [
        ("auto", "linux", "1.41", "buildkit"),
        ("auto", "linux", "1.39", "buildkit"),
        ("auto", "linux", "1.38", "classic"),
        ("auto", "windows", "1.41", "classic"),
        ("classic", "linux", "1.41", "classic"),
        ("buildkit", "linux", "1.41", "buildkit"),
    ],
)
def test_auto_is_buildkit_on_linux_with_api_1_39(setting, os, api, chosen):
    name, why = options.choose_builder(setting, os, api)
    assert name == chosen
    assert why


def test_an_unknown_builder_is_one_line():
    with pytest.raises(ConfigError, match="HUB_BUILDER='kaniko' is not a builder"):
        options.choose_builder("kaniko", "linux", "1.41")


@pytest.mark.parametrize(
    ("spec", "secret"),
    [
        ("id=tok", options.Secret("tok", env="tok")),
        ("id=tok,env=API_TOKEN", options.Secret("tok", env="API_TOKEN")),
        ("id=tok,src=./t.txt", options.Secret("tok", src="./t.txt")),
        ("id=tok,source=t.txt", options.Secret("tok", src="t.txt")),
        ("type=env,id=tok,src=API", options.Secret("tok", env="API")),
        ("type=file,id=tok", options.Secret("tok", src="tok")),
    ],
)
def test_parse_secret_as_buildx_does(spec, secret):
    assert options.parse_secret(spec) == secret


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tok", "is not id=NAME"),
        ("src=x", "needs id=NAME"),
        ("id=a b", "needs id=NAME"),
        ("id=t,src=a,env=B", "not both"),
        ("id=t,value=hunter2", "id=t,…"),
    ],
)
def test_a_bad_secret_spec_is_one_line_without_a_value(spec, says):
    with pytest.raises(ConfigError) as failure:
        options.parse_secret(spec)
    assert says in str(failure.value)
    assert "hunter2" not in str(failure.value)


def test_secrets_are_read_from_files_and_variables(tmp_path):
    (tmp_path / "t").write_bytes(b"from-file")
    secrets = options.parse_secrets([f"id=a,src={tmp_path / 't'}", "id=b,env=B", ""])
    assert options.read_secrets(secrets, {"B": "from-env"}) == {
        "a": b"from-file",
        "b": b"from-env",
    }
    with pytest.raises(ConfigError, match="the environment variable B is not set"):
        options.read_secrets(secrets, {})
    with pytest.raises(ConfigError, match="id=c: cannot read /nonexistent"):
        options.read_secrets([options.Secret("c", src="/nonexistent")], {})
    with pytest.raises(ConfigError, match="id=a is given twice"):
        options.parse_secrets(["id=a", "id=a,env=X"])


def test_ssh_is_refused_with_its_name():
    options.refuse_ssh([])
    with pytest.raises(ConfigError, match="--ssh default: SSH agent forwarding"):
        options.refuse_ssh(["default"])


def test_the_equivalent_buildx_command_names_ids_and_sources_never_values():
    command = options.buildx_command(
        dockerfile="Dockerfile",
        context=".",
        ref="r/app:1",
        labels={"a": "b c"},
        build_args={"X": "1"},
        target="final",
        secrets=[options.Secret("tok", env="API_TOKEN")],
        network="none",
        no_cache=True,
    )
    assert command == (
        "docker buildx build --load -f Dockerfile -t r/app:1 --target final --network none "
        "--secret id=tok,env=API_TOKEN --no-cache --build-arg X=1 --label 'a=b c' ."
    )


def test_the_inputs_digest_covers_target_and_secret_ids_never_values(tmp_path):
    from hubtasks.build.context import BuildContext
    from hubtasks.pipeline.gather import digest_options
    from hubtasks.settings.resolve import Settings

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    context = BuildContext(tmp_path, ("Dockerfile",), tmp_path / "Dockerfile")

    def digest(**settings) -> str:
        options_ = digest_options(Settings(**settings))
        return context.inputs_digest(build_args={}, platform="linux/amd64", options=options_)

    plain = digest()
    assert plain == context.inputs_digest(build_args={}, platform="linux/amd64")  # as before
    assert digest(target="final") != plain
    with_secret = digest(secret_specs=("id=tok,env=A",))
    assert with_secret != plain
    assert digest(secret_specs=("id=tok,src=/elsewhere",)) == with_secret  # the id, not the source
    assert digest(ssh=("default",)) != plain


class _Stored:
    def __init__(self, username, secret, identity_token=False):
        self.username, self.secret, self.identity_token = username, secret, identity_token


def test_the_session_answers_each_registry_with_its_own_login_as_the_docker_cli(tmp_path):
    from tests.helpers.pipeline import release_settings

    settings = release_settings(
        tmp_path,
        registry_credentials={
            "HUB_REGISTRY_GHCR_IO_USERNAME": "octo",
            "HUB_REGISTRY_GHCR_IO_TOKEN": "ghp-token",
        },
    )
    asked: list[str] = []
    hidden: list[str] = []

    def stored(registry: str):
        asked.append(registry)
        return {
            "docker.io": _Stored(None, "identity-tok", identity_token=True),
            "quay.io": _Stored("q", "quay-pw"),
        }.get(registry)

    logins = options.session_logins(settings, hidden.append, stored)
    assert logins("127.0.0.1:5000") == ("alice", "s3cret")  # HUB_REGISTRY: HUB_USERNAME/TOKEN
    assert logins("ghcr.io") == ("octo", "ghp-token")  # HUB_REGISTRY_<HOST>_…
    assert logins("quay.io") == ("q", "quay-pw")  # what `docker login quay.io` left
    assert logins("registry-1.docker.io") == ("", "identity-tok")  # a token without a user
    assert logins("elsewhere.example") is None  # anonymous
    assert logins("quay.io") == ("q", "quay-pw")
    assert asked == ["quay.io", "docker.io", "elsewhere.example"]  # each host once
    assert hidden == ["quay-pw", "identity-tok"]  # redacted before being handed over


def test_a_failing_credential_helper_leaves_the_daemon_anonymous(tmp_path):
    from hubtasks.errors import ConfigError
    from tests.helpers.pipeline import release_settings

    def stored(registry: str):
        raise ConfigError("docker-credential-pass failed")

    logins = options.session_logins(release_settings(tmp_path), lambda _: None, stored)
    assert logins("quay.io") is None
