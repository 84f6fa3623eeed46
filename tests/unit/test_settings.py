"""Settings: precedence of every source, validation, require(), secrets (pure, no Docker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubtasks.errors import ConfigError
from hubtasks.references import Repository
from hubtasks.settings.keys import KEYS, KEYS_BY_NAME
from hubtasks.settings.resolve import Settings, load_settings, resolve_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CWD = Path("/project")


def resolve(*, flags=None, environ=None, dotenv=None, config=None, cwd=CWD, env_file=None):
    return resolve_settings(
        flags=flags or {},
        environ=environ or {},
        dotenv=dotenv or {},
        config=config or {},
        cwd=cwd,
        env_file=env_file,
    )


# --- precedence -------------------------------------------------------------------------

LEVELS = ("flag", "environ", "dotenv", "config", "default")

# name -> (value at each level flag/environ/dotenv/config, expected value per level incl.
# default, how to read the value back from Settings)
PRECEDENCE = {
    "registry": (
        ("flag.example:1", "env.example:2", "dotenv.example:3", "config.example:4"),
        ("flag.example:1", "env.example:2", "dotenv.example:3", "config.example:4", "docker.io"),
        lambda s: s.registry,
    ),
    "repository": (
        ("f/app", "e/app", "d/app", "c/app"),
        ("f/app", "e/app", "d/app", "c/app", None),
        lambda s: s.repository and s.repository.path,
    ),
    "dockerfile": (
        ("F.Dockerfile", "E.Dockerfile", "D.Dockerfile", "C.Dockerfile"),
        ("F.Dockerfile", "E.Dockerfile", "D.Dockerfile", "C.Dockerfile", "Dockerfile"),
        lambda s: str(s.dockerfile.relative_to(CWD)),
    ),
    "context": (
        ("f-ctx", "e-ctx", "d-ctx", "c-ctx"),
        ("f-ctx", "e-ctx", "d-ctx", "c-ctx", "."),
        lambda s: str(s.context.relative_to(CWD)),
    ),
    "tags": (
        (["f1"], "e1", "d1", "c1"),
        (("f1",), ("e1",), ("d1",), ("c1",), ()),  # no tag: the API falls back to git
        lambda s: s.tags,
    ),
    "build_args": (
        (["F=1"], "E=2", "D=3", {"C": "4"}),
        ({"F": "1"}, {"E": "2"}, {"D": "3"}, {"C": "4"}, {}),
        lambda s: dict(s.build_args),
    ),
    "labels": (
        (["f.x=1"], "e.x=2", "d.x=3", {"c.x": "4"}),
        ({"f.x": "1"}, {"e.x": "2"}, {"d.x": "3"}, {"c.x": "4"}, {}),
        lambda s: dict(s.labels),
    ),
    "platforms": (
        (["linux/arm64"], "linux/amd64,linux/arm64", "linux/arm/v7", ["linux/s390x"]),
        (
            ("linux/arm64",),
            ("linux/amd64", "linux/arm64"),
            ("linux/arm/v7",),
            ("linux/s390x",),
            (),
        ),
        lambda s: s.platforms,
    ),
    "cache_from": (
        (["f:1"], "e/app:2", "d:3", ["c/app@sha256:" + "c" * 64]),
        (("f:1",), ("e/app:2",), ("d:3",), ("c/app@sha256:" + "c" * 64,), ("auto",)),
        lambda s: s.cache_from,
    ),
    # A bool flag can only say yes (left off it is False, which counts as unset), so the
    # lower levels say no and lose.
    "semver": (
        (True, "true", "yes", "on"),
        (True, True, True, True, False),
        lambda s: s.semver,
    ),
    "latest": (
        (True, "1", "TRUE", "Yes"),
        (True, True, True, True, False),
        lambda s: s.latest,
    ),
    "readme": (
        ("F.md", "E.md", "D.md", "C.md"),
        ("F.md", "E.md", "D.md", "C.md", None),
        lambda s: s.readme and str(s.readme.relative_to(CWD)),
    ),
    "description": (
        ("f", "e", "d", "c"),
        ("f", "e", "d", "c", None),
        lambda s: s.description,
    ),
    "visibility": (
        ("private", "PUBLIC", "private", "public"),
        ("private", "public", "private", "public", "public"),
        lambda s: s.visibility,
    ),
    "describe": (
        (True, "true", "yes", "on"),
        (True, True, True, True, False),
        lambda s: s.describe_after_release,
    ),
    "builder": (
        ("classic", "BUILDKIT", "classic", "buildkit"),
        ("classic", "buildkit", "classic", "buildkit", "auto"),
        lambda s: s.builder,
    ),
    "target": (("f", "e", "d", "c"), ("f", "e", "d", "c", None), lambda s: s.target),
    "secrets": (
        (["id=f,src=a b"], "id=e,env=E id=e2", "id=d", ["id=c"]),
        (("id=f,src=a b",), ("id=e,env=E", "id=e2"), ("id=d",), ("id=c",), ()),
        lambda s: s.secret_specs,
    ),
    "ssh": (
        (["default"], "e=/k", "d", ["c"]),
        (("default",), ("e=/k",), ("d",), ("c",), ()),
        lambda s: s.ssh,
    ),
    "network": (
        ("none", "host", "default", "none"),
        ("none", "host", "default", "none", None),
        lambda s: s.network,
    ),
    "no_cache": (
        (True, "true", "yes", "on"),
        (True, True, True, True, False),
        lambda s: s.no_cache,
    ),
    "pull": ((True, "true", "yes", "on"), (True, True, True, True, False), lambda s: s.pull),
}

SOURCE_NAMES = {
    "registry": ("--registry", "HUB_REGISTRY"),
    "repository": ("--repository", "HUB_REPOSITORY"),
    "dockerfile": ("--dockerfile", "HUB_DOCKERFILE"),
    "context": ("--context", "HUB_CONTEXT"),
    "tags": ("--tag", "HUB_TAGS"),
    "build_args": ("--build-arg", "HUB_BUILD_ARGS"),
    "labels": ("--label", "HUB_LABELS"),
    "platforms": ("--platform", "HUB_PLATFORMS"),
    "cache_from": ("--cache-from", "HUB_CACHE_FROM"),
    "semver": ("--semver", "HUB_SEMVER"),
    "latest": ("--latest", "HUB_LATEST"),
    "readme": ("--readme", "HUB_README"),
    "description": ("--description", "HUB_DESCRIPTION"),
    "visibility": ("--visibility", "HUB_VISIBILITY"),
    "describe": ("--describe", "HUB_DESCRIBE"),
    "builder": ("--builder", "HUB_BUILDER"),
    "target": ("--target", "HUB_TARGET"),
    "secrets": ("--secret", "HUB_SECRETS"),
    "ssh": ("--ssh", "HUB_SSH"),
    "network": ("--network", "HUB_NETWORK"),
    "no_cache": ("--no-cache", "HUB_NO_CACHE"),
    "pull": ("--pull", "HUB_PULL"),
}


def expected_source(name: str, level: str) -> str:
    flag, env = SOURCE_NAMES[name]
    return {
        "flag": flag,
        "environ": f"{env} in the environment",
        "dotenv": f"{env} in .env",
        "config": f"hub.{name} in Invoke config",
        "default": "default",
    }[level]


def sources_from(name: str, level: str, *, above: str) -> dict[str, dict]:
    """Sources where `level` and every lower level hold a value.

    Levels above `level` are absent (`above="absent"`) or hold an empty value (`"empty"`).
    """
    values = PRECEDENCE[name][0]
    env = KEYS_BY_NAME[name].env
    keys = {"flag": name, "environ": env, "dotenv": env, "config": name}
    sources: dict[str, dict] = {"flags": {}, "environ": {}, "dotenv": {}, "config": {}}
    arg_of = {"flag": "flags", "environ": "environ", "dotenv": "dotenv", "config": "config"}
    for index, current in enumerate(LEVELS[:-1]):
        target = sources[arg_of[current]]
        if index >= LEVELS.index(level):
            target[keys[current]] = values[index]
        elif above == "empty":
            # Invoke gives [] for an iterable flag that was not passed.
            target[keys[current]] = [] if isinstance(values[index], list) else ""
    return sources


@pytest.mark.parametrize("above", ["absent", "empty"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", list(PRECEDENCE))
def test_precedence(name, level, above):
    settings = resolve(**sources_from(name, level, above=above))
    expected, read = PRECEDENCE[name][1][LEVELS.index(level)], PRECEDENCE[name][2]
    assert read(settings) == expected
    assert settings.sources[name] == expected_source(name, level)


def test_precedence_table_covers_every_key_with_a_flag():
    assert set(PRECEDENCE) == {key.name for key in KEYS if key.flag}


@pytest.mark.parametrize(
    "environ, dotenv, config, expected, source",
    [
        (
            {"HUB_USERNAME": "env"},
            {"HUB_USERNAME": "dot"},
            {"username": "cfg"},
            "env",
            "HUB_USERNAME in the environment",
        ),
        (
            {"HUB_USERNAME": ""},
            {"HUB_USERNAME": "dot"},
            {"username": "cfg"},
            "dot",
            "HUB_USERNAME in .env",
        ),
        ({}, {"HUB_USERNAME": ""}, {"username": "cfg"}, "cfg", "hub.username in Invoke config"),
        ({}, {}, {"username": ""}, None, "default"),
    ],
)
def test_username_precedence(environ, dotenv, config, expected, source):
    settings = resolve(environ=environ, dotenv=dotenv, config=config)
    assert settings.username == expected
    assert settings.sources["username"] == source


def test_token_precedence_environ_over_dotenv():
    settings = resolve(environ={"HUB_TOKEN": "from-env"}, dotenv={"HUB_TOKEN": "from-dotenv"})
    assert settings.token == "from-env"
    assert settings.sources["token"] == "HUB_TOKEN in the environment"


def test_none_flags_count_as_unset():
    settings = resolve(
        flags={"registry": None, "repository": None, "tags": None, "build_args": None},
        environ={"HUB_REGISTRY": "ghcr.io", "HUB_REPOSITORY": "o/r", "HUB_TAGS": "v1"},
    )
    assert (settings.registry, settings.repository, settings.tags) == (
        "ghcr.io",
        Repository("ghcr.io", "o/r"),
        ("v1",),
    )


def test_dotenv_none_value_counts_as_unset():
    # python-dotenv gives None for a line `HUB_REPOSITORY` without `=`.
    settings = resolve(dotenv={"HUB_REPOSITORY": None}, config={"repository": "c/app"})
    assert settings.repository == Repository("docker.io", "c/app")


def test_whitespace_only_value_counts_as_unset():
    settings = resolve(environ={"HUB_REPOSITORY": "   "}, dotenv={"HUB_REPOSITORY": "d/app"})
    assert settings.repository == Repository("docker.io", "d/app")
    assert settings.sources["repository"] == "HUB_REPOSITORY in .env"


def test_registry_and_repository_combine():
    settings = resolve(
        environ={"HUB_REGISTRY": "http://127.0.0.1:5000/"}, dotenv={"HUB_REPOSITORY": "team/app"}
    )
    assert settings.registry == "127.0.0.1:5000"
    assert settings.repository == Repository("127.0.0.1:5000", "team/app")


def test_host_in_repository_sets_the_registry_when_registry_is_default():
    settings = resolve(environ={"HUB_REPOSITORY": "ghcr.io/o/r"})
    assert settings.registry == "ghcr.io"
    assert settings.repository == Repository("ghcr.io", "o/r")


def test_host_in_repository_conflicting_with_registry_names_both_sources():
    with pytest.raises(ConfigError) as info:
        resolve(flags={"registry": "docker.io"}, environ={"HUB_REPOSITORY": "ghcr.io/o/r"})
    message = str(info.value)
    assert message.startswith("HUB_REPOSITORY in the environment: 'ghcr.io/o/r'")
    assert "docker.io" in message


def test_bare_repository_uses_username_from_any_source():
    settings = resolve(dotenv={"HUB_USERNAME": "Alice"}, config={"repository": "app"})
    assert settings.repository == Repository("docker.io", "alice/app")


def test_invalid_repository_error_names_its_source():
    with pytest.raises(ConfigError) as info:
        resolve(dotenv={"HUB_REPOSITORY": "Bad/Name"})
    assert str(info.value).startswith("HUB_REPOSITORY in .env: 'Bad/Name'")
    assert info.value.exit_code == 2


def test_invalid_registry_error_names_its_source():
    with pytest.raises(ConfigError, match=r"^--registry: 'bad host' is not a registry host"):
        resolve(flags={"registry": "bad host"})


def test_absolute_dockerfile_and_context_are_kept(tmp_path):
    settings = resolve(
        environ={"HUB_DOCKERFILE": str(tmp_path / "D"), "HUB_CONTEXT": str(tmp_path)}
    )
    assert settings.dockerfile == tmp_path / "D"
    assert settings.context == tmp_path


# --- tags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("v1", ("v1",)),
        ("v1,v2", ("v1", "v2")),
        ("v1 v2", ("v1", "v2")),
        (" v1 ,\tv2\nv3,, v4 ", ("v1", "v2", "v3", "v4")),
        ("v2,v1,v2,v1", ("v2", "v1")),
        ("latest 1.0 latest", ("latest", "1.0")),
        (",, ,", ()),
    ],
)
def test_hub_tags_split_on_commas_and_whitespace(value, expected):
    assert resolve(environ={"HUB_TAGS": value}).tags == expected


def test_no_tag_given_leaves_tags_empty():
    # The default tag is no longer `latest`: api.resolve_tags derives it from git.
    settings = resolve()
    assert settings.tags == ()
    assert settings.sources["tags"] == "default"


def test_config_tags_may_be_a_list():
    assert resolve(config={"tags": ["v1 v2", "v3,v1"]}).tags == ("v1", "v2", "v3")


def test_flag_tags_are_deduplicated_in_order():
    assert resolve(flags={"tags": ["v2", "v1", "v2"]}).tags == ("v2", "v1")


@pytest.mark.parametrize("value", ["bad tag!", "v1 v2", "v1,v2", "a\tb"])
def test_flag_tag_is_one_whole_tag(value):
    with pytest.raises(ConfigError) as info:
        resolve(flags={"tags": ["ok", value]})
    message = str(info.value)
    assert message.startswith(f"--tag: '{value}' is not a valid tag")


def test_invalid_tag_in_setting_names_tag_and_source():
    with pytest.raises(ConfigError) as info:
        resolve(dotenv={"HUB_TAGS": "v1 .hidden"})
    assert str(info.value).startswith("HUB_TAGS in .env: '.hidden' is not a valid tag")


# --- build args -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sources, expected",
    [
        ({"environ": {"HUB_BUILD_ARGS": 'A=1 "B=two words"'}}, {"A": "1", "B": "two words"}),
        ({"dotenv": {"HUB_BUILD_ARGS": "A=1 B='x y'"}}, {"A": "1", "B": "x y"}),
        ({"config": {"build_args": {"A": "1", "B": "two words"}}}, {"A": "1", "B": "two words"}),
        ({"config": {"build_args": {"N": 3}}}, {"N": "3"}),
        ({"config": {"build_args": ["A=1", "B=two words"]}}, {"A": "1", "B": "two words"}),
        ({"flags": {"build_args": ["A=1", "B=two words"]}}, {"A": "1", "B": "two words"}),
        (
            {"environ": {"HUB_BUILD_ARGS": "URL=a=b EMPTY= _x=1"}},
            {"URL": "a=b", "EMPTY": "", "_x": "1"},
        ),
    ],
)
def test_build_args(sources, expected):
    assert dict(resolve(**sources).build_args) == expected


@pytest.mark.parametrize(
    "sources, source, item",
    [
        ({"environ": {"HUB_BUILD_ARGS": "A=1 X"}}, "HUB_BUILD_ARGS in the environment", "X"),
        ({"dotenv": {"HUB_BUILD_ARGS": "1A=2"}}, "HUB_BUILD_ARGS in .env", "1A=2"),
        ({"config": {"build_args": ["=x"]}}, "hub.build_args in Invoke config", "=x"),
        ({"config": {"build_args": {"A-B": "1"}}}, "hub.build_args in Invoke config", "A-B=1"),
        ({"flags": {"build_args": ["X"]}}, "--build-arg", "X"),
    ],
)
def test_invalid_build_arg_names_item_and_source(sources, source, item):
    with pytest.raises(ConfigError) as info:
        resolve(**sources)
    assert str(info.value).startswith(f"{source}: '{item}' is not a build argument")
    assert "NAME=VALUE" in str(info.value)


def test_unbalanced_quote_in_build_args_is_a_config_error_naming_value_and_source():
    with pytest.raises(ConfigError) as info:
        resolve(environ={"HUB_BUILD_ARGS": 'A="open'})
    assert 'A="open' in str(info.value)
    assert str(info.value).startswith("HUB_BUILD_ARGS in the environment")


# --- yes/no settings, labels, SOURCE_DATE_EPOCH -----------------------------------------


@pytest.mark.parametrize(
    "sources, expected, source",
    [
        # A yes/no flag left off is None: the environment decides.
        (
            {"flags": {"semver": None}, "environ": {"HUB_SEMVER": "true"}},
            True,
            "HUB_SEMVER in the environment",
        ),
        # `--no-semver` is False, and a flag beats a true environment or .env.
        (
            {"flags": {"semver": False}, "environ": {"HUB_SEMVER": "true"}},
            False,
            "--no-semver",
        ),
        ({"flags": {"semver": True}, "dotenv": {"HUB_SEMVER": "no"}}, True, "--semver"),
        (
            {"environ": {"HUB_SEMVER": "false"}, "dotenv": {"HUB_SEMVER": "true"}},
            False,
            "HUB_SEMVER in the environment",
        ),
        ({"dotenv": {"HUB_SEMVER": "0"}, "config": {"semver": True}}, False, "HUB_SEMVER in .env"),
        ({"config": {"semver": "no"}}, False, "hub.semver in Invoke config"),
        ({"config": {"semver": True}}, True, "hub.semver in Invoke config"),
        ({"config": {"semver": False}}, False, "hub.semver in Invoke config"),
        ({}, False, "default"),
        ({"environ": {"HUB_SEMVER": " OFF "}}, False, "HUB_SEMVER in the environment"),
    ],
)
def test_yes_no_setting(sources, expected, source):
    settings = resolve(**sources)
    assert settings.semver is expected
    assert settings.sources["semver"] == source


@pytest.mark.parametrize("name, env", [("semver", "HUB_SEMVER"), ("latest", "HUB_LATEST")])
def test_invalid_yes_no_value_names_it_and_its_source(name, env):
    with pytest.raises(ConfigError) as info:
        resolve(dotenv={env: "maybe"})
    assert str(info.value).startswith(f"{env} in .env: 'maybe' is not a yes/no value")


def test_labels_accept_oci_names_and_shell_quoting():
    settings = resolve(
        environ={"HUB_LABELS": 'org.opencontainers.image.title=demo "com.example/x=two words"'}
    )
    assert dict(settings.labels) == {
        "org.opencontainers.image.title": "demo",
        "com.example/x": "two words",
    }


@pytest.mark.parametrize("item", ["-x=1", "novalue", ".a=1"])
def test_invalid_label_names_item_and_source(item):
    with pytest.raises(ConfigError) as info:
        resolve(flags={"labels": [item]})
    assert str(info.value).startswith(f"--label: '{item}' is not a label")


@pytest.mark.parametrize(
    "environ, dotenv, expected",
    [
        ({}, {}, None),
        ({"SOURCE_DATE_EPOCH": "1700000000"}, {"SOURCE_DATE_EPOCH": "1"}, 1700000000),
        ({"SOURCE_DATE_EPOCH": ""}, {"SOURCE_DATE_EPOCH": " 42 "}, 42),
        ({"SOURCE_DATE_EPOCH": "   "}, {}, None),
    ],
)
def test_source_date_epoch(environ, dotenv, expected):
    assert resolve(environ=environ, dotenv=dotenv).source_date_epoch == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "1e9", "yesterday"])
def test_invalid_source_date_epoch_names_the_value(value):
    with pytest.raises(ConfigError) as info:
        resolve(environ={"SOURCE_DATE_EPOCH": value})
    assert str(info.value).startswith(f"SOURCE_DATE_EPOCH: '{value}' is not a number")


def test_non_ascii_digit_source_date_epoch_is_a_config_error():
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        resolve(environ={"SOURCE_DATE_EPOCH": "²"})


def test_cwd_is_kept(tmp_path):
    assert resolve(cwd=tmp_path).cwd == tmp_path


# --- token ------------------------------------------------------------------------------

TOKEN = "dckr_pat_s3cr3t-VALUE"


@pytest.fixture
def with_token():
    return resolve(
        environ={"HUB_TOKEN": f"{TOKEN}\r\n", "HUB_USERNAME": "u"},
        dotenv={"HUB_REPOSITORY": "app"},
    )


def test_token_line_breaks_are_dropped(with_token):
    """A pasted secret's line break is never part of a token; spaces may be of a password's,
    so they stay (with a warning: tests/unit/test_settings_mistakes.py)."""
    assert with_token.token == TOKEN
    assert with_token.secrets == (TOKEN,)
    assert with_token.token_warning is None


def test_token_never_in_repr(with_token):
    assert TOKEN not in repr(with_token)
    assert TOKEN not in str(with_token)
    assert "username='u'" in repr(with_token)  # the repr is not simply empty


def test_whitespace_only_token_is_no_token():
    settings = resolve(environ={"HUB_TOKEN": "   "})
    assert not settings.token
    assert settings.secrets == ()


def test_auth_config(with_token):
    assert with_token.auth_config == {
        "username": "u",
        "password": TOKEN,
        "serveraddress": "https://index.docker.io/v1/",
    }


def test_auth_config_without_credentials_is_an_error():
    with pytest.raises(ConfigError, match="require"):
        _ = Settings().auth_config


# --- require ----------------------------------------------------------------------------


def test_require_lists_everything_missing_at_once():
    with pytest.raises(ConfigError) as info:
        Settings().require("release")
    message = str(info.value)
    assert message.startswith(
        "missing settings: HUB_REPOSITORY (or --repository), HUB_USERNAME, HUB_TOKEN;"
    )
    assert "hubtasks init" in message


@pytest.mark.parametrize(
    "stage, settings, expected",
    [
        (
            "login",
            Settings(username="u", repository=Repository("docker.io", "o/r")),
            "missing setting: HUB_TOKEN;",
        ),
        (
            "login",
            Settings(token="t", repository=Repository("docker.io", "o/r")),
            "missing setting: HUB_USERNAME;",
        ),
        # Both at once: the credential check needs a repository too (it was asked for after).
        (
            "login",
            Settings(username="u"),
            "missing settings: HUB_REPOSITORY (or --repository), HUB_TOKEN;",
        ),
        (
            "push",
            Settings(username="u", token="t"),
            "missing setting: HUB_REPOSITORY (or --repository);",
        ),
        (
            "tag",
            Settings(username="u", token="t"),
            "missing setting: HUB_REPOSITORY (or --repository);",
        ),
    ],
)
def test_require_names_the_missing_setting(stage, settings, expected):
    """Every missing setting in one line, not one run at a time."""
    with pytest.raises(ConfigError) as info:
        settings.require(stage)
    assert str(info.value).startswith(expected)
    assert info.value.exit_code == 2


def test_require_tag_needs_no_credentials_nor_dockerfile(tmp_path):
    settings = resolve(environ={"HUB_REPOSITORY": "o/r"}, cwd=tmp_path)
    settings.require("tag")  # no Dockerfile in tmp_path, no username/token


def test_require_build_passes_with_dockerfile_and_context(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    settings = resolve(environ={"HUB_REPOSITORY": "o/r"}, cwd=tmp_path)
    settings.require("build")


def test_require_build_names_the_missing_dockerfile(tmp_path):
    settings = resolve(
        environ={"HUB_REPOSITORY": "o/r"}, dotenv={"HUB_DOCKERFILE": "docker/App"}, cwd=tmp_path
    )
    with pytest.raises(ConfigError) as info:
        settings.require("build")
    message = str(info.value)
    assert f"Dockerfile '{tmp_path / 'docker' / 'App'}' (HUB_DOCKERFILE in .env) not found" in (
        message
    )
    assert "--dockerfile" in message


def test_require_release_names_missing_default_dockerfile(tmp_path):
    settings = resolve(
        environ={"HUB_REPOSITORY": "o/r", "HUB_USERNAME": "u", "HUB_TOKEN": "t"}, cwd=tmp_path
    )
    with pytest.raises(ConfigError, match=r"Dockerfile '.*/Dockerfile' \(default\) not found"):
        settings.require("release")


@pytest.mark.parametrize("make_file", [False, True])
def test_require_build_names_the_missing_context(tmp_path, make_file):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    if make_file:
        (tmp_path / "ctx").write_text("not a folder")
    settings = resolve(flags={"repository": "o/r", "context": "ctx"}, cwd=tmp_path)
    with pytest.raises(ConfigError) as info:
        settings.require("build")
    message = str(info.value)
    assert f"build context '{tmp_path / 'ctx'}' (--context) is not a folder" in message
    assert "HUB_CONTEXT" in message


def test_source_of_falls_back_to_the_env_name():
    assert Settings().source_of("context") == "HUB_CONTEXT"


# --- docker_env -------------------------------------------------------------------------


def test_docker_env_from_dotenv_with_environ_winning():
    settings = resolve(
        environ={"DOCKER_HOST": "tcp://from-env:2375"},
        dotenv={
            "DOCKER_HOST": "unix:///from-dotenv.sock",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": None,
            "HUB_TOKEN": "secret-in-dotenv",
            "OTHER": "x",
        },
    )
    assert settings.docker_env["DOCKER_HOST"] == "tcp://from-env:2375"
    assert settings.docker_env["DOCKER_TLS_VERIFY"] == "1"
    assert "DOCKER_CERT_PATH" not in settings.docker_env
    assert "HUB_TOKEN" not in settings.docker_env
    assert "OTHER" not in settings.docker_env


def test_docker_env_not_in_repr():
    settings = resolve(dotenv={"DOCKER_HOST": "unix:///very-specific.sock"})
    assert settings.docker_env["DOCKER_HOST"] == "unix:///very-specific.sock"
    assert "very-specific" not in repr(settings)


def test_empty_docker_host_in_environ_does_not_mask_dotenv():
    settings = resolve(
        environ={"DOCKER_HOST": ""}, dotenv={"DOCKER_HOST": "unix:///from-dotenv.sock"}
    )
    assert settings.docker_env.get("DOCKER_HOST") == "unix:///from-dotenv.sock"


# --- load_settings ----------------------------------------------------------------------


def test_load_settings_reads_dotenv_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nHUB_USERNAME=u\nHUB_REPOSITORY=app\nHUB_TAGS='v1, v2'\n"
        "DOCKER_HOST=unix:///x.sock\n"
    )
    settings = load_settings(cwd=tmp_path, environ={"HUB_TAGS": "v3"})
    assert settings.env_file == env_file
    assert settings.repository == Repository("docker.io", "u/app")
    assert settings.sources["repository"] == "HUB_REPOSITORY in .env"
    assert settings.tags == ("v3",)
    assert settings.docker_env["DOCKER_HOST"] == "unix:///x.sock"
    assert settings.dockerfile == tmp_path / "Dockerfile"


def test_load_settings_passes_flags_and_config(tmp_path):
    (tmp_path / ".env").write_text("HUB_REPOSITORY=dot/app\n")
    settings = load_settings({"repository": "flag/app"}, {"tags": "c1"}, cwd=tmp_path, environ={})
    assert settings.repository == Repository("docker.io", "flag/app")
    assert settings.tags == ("c1",)


def test_load_settings_without_dotenv(tmp_path):
    settings = load_settings(cwd=tmp_path, environ={"HUB_REPOSITORY": "o/r"})
    assert settings.env_file is None
    assert settings.repository == Repository("docker.io", "o/r")


def test_load_settings_uses_given_environ_not_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_REPOSITORY", "from/os-environ")
    monkeypatch.delenv("HUB_USERNAME", raising=False)
    (tmp_path / ".env").write_text("HUB_USERNAME=u\n")
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.repository is None
    assert "HUB_USERNAME" not in os.environ  # reading .env does not export it


def test_load_settings_with_unreadable_dotenv_is_a_config_error(tmp_path):
    (tmp_path / ".env").write_bytes(b"HUB_USERNAME=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"cannot read .*\.env"):
        load_settings(cwd=tmp_path, environ={})


# --- defaults and documentation ---------------------------------------------------------


def test_env_names_are_hub_prefixed():
    assert all(key.env == f"HUB_{key.name.upper()}" for key in KEYS)
    assert {"HUB_TOKEN", "HUB_TAGS", "HUB_BUILD_ARGS", "HUB_LABELS"} <= {key.env for key in KEYS}
    assert KEYS_BY_NAME["token"].flag is None  # never a flag


def test_env_example_mentions_every_setting():
    example = REPO_ROOT / ".env.example"
    if not example.is_file():
        pytest.skip(f"{example} does not exist yet")
    text = example.read_text(encoding="utf-8")
    missing = [key.env for key in KEYS if key.env not in text]
    assert missing == []


@pytest.mark.parametrize("bad", ["arm64", "linux/", "linux/arm64/v8/x", "Linux arm64!"])
def test_a_platform_that_is_not_os_arch_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="os/arch"):
        resolve(flags={"platforms": [bad]})


@pytest.mark.parametrize(
    "given, normal",
    [
        ("linux/x86_64", ("linux/amd64",)),
        ("linux/aarch64,linux/x86_64", ("linux/arm64", "linux/amd64")),
        ("linux/arm64/v8", ("linux/arm64",)),
        ("linux/armhf", ("linux/arm/v7",)),
    ],
)
def test_platforms_are_normalised_as_buildkit_names_them(given, normal):
    assert resolve(flags={"platforms": [given]}).platforms == normal


@pytest.mark.parametrize(
    "given, named",
    [
        ("linux/arm64,linux/arm64/v8", "'linux/arm64/v8' names linux/arm64 again"),
        ("linux/amd64,linux/amd64", "'linux/amd64' names linux/amd64 again"),
        ("linux/x86_64 linux/amd64", "'linux/amd64' names linux/amd64 again"),
        ("linux/arm,linux/armhf", "'linux/armhf' names linux/arm/v7 again"),
    ],
)
def test_one_platform_named_twice_is_refused(given, named):
    with pytest.raises(ConfigError, match=named) as caught:
        resolve(flags={"platforms": [given]})
    assert caught.value.exit_code == 2


# --- the registry build cache -----------------------------------------------------------


def test_cache_from_takes_references_tags_auto_or_none():
    assert resolve().cache_from == ("auto",)
    assert resolve(environ={"HUB_CACHE_FROM": "none"}).cache_from == ("none",)
    given = resolve(
        flags={"cache_from": ["v1", "127.0.0.1:5000/a/b:v2", "alpine@sha256:" + "a" * 64]}
    )
    assert given.cache_from == ("v1", "127.0.0.1:5000/a/b:v2", "alpine@sha256:" + "a" * 64)
    assert resolve(environ={"HUB_CACHE_FROM": "v1, v2 v1"}).cache_from == ("v1", "v2")


@pytest.mark.parametrize(
    "value, message",
    [
        ("auto v1", "'auto' cannot be combined"),
        ("v1 none", "'none' cannot be combined"),
        ("Bad/Name:v1", "not a valid image reference"),
        ("a/b:-x", "not a valid tag"),
        ("a/b@sha256:xyz", "no valid digest"),
        (".hidden", "not a valid tag"),
    ],
)
def test_cache_from_rejects_what_the_daemon_could_not_pull(value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        resolve(environ={"HUB_CACHE_FROM": value})
    assert "HUB_CACHE_FROM in the environment" in str(caught.value)


def test_the_token_hidden_before_the_settings_load_is_the_one_they_read(tmp_path):
    """`HUB_TOKEN=abc # note`: python-dotenv reads `abc`; that value is hidden from the first
    line the task prints, not only once the settings are loaded."""
    from hubtasks.settings.envfile import token_candidates

    (tmp_path / ".env").write_text("HUB_TOKEN=s3cr3t-value # the CI token\n")
    assert "s3cr3t-value" in token_candidates(tmp_path, environ={})


def test_hub_progress_comes_from_dotenv_too_and_is_checked():
    assert resolve().progress == "auto"
    assert resolve(dotenv={"HUB_PROGRESS": "plain"}).progress == "plain"
    assert resolve(environ={"HUB_PROGRESS": "rich"}, dotenv={"HUB_PROGRESS": "plain"}).progress == (
        "rich"
    )
    with pytest.raises(ConfigError, match="'fancy' is not one of auto, plain, rich"):
        resolve(dotenv={"HUB_PROGRESS": "fancy"})


def test_a_misspelt_setting_name_is_refused_not_ignored():
    with pytest.raises(ConfigError, match="unknown setting 'tag'; settings are registry, "):
        resolve(flags={"tag": ["v1"]})


def test_a_zero_timeout_is_refused():
    with pytest.raises(ConfigError, match="HUB_TIMEOUT in the environment: 0 is out of range"):
        resolve(environ={"HUB_TIMEOUT": "0"})


def test_every_key_has_a_kind_with_a_parser_and_a_settings_field():
    from dataclasses import fields

    from hubtasks.settings import resolve
    from hubtasks.settings.keys import KINDS

    names = {f.name for f in fields(Settings)}
    for key in KEYS:
        assert key.kind in KINDS and key.kind in resolve.PARSERS, key.name
        assert key.kind == "hook" or key.attribute in names, key.name
    assert set(resolve.PARSERS) == set(KINDS)
