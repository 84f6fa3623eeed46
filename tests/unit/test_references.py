"""Image reference grammar: tags, registry hosts, repositories (pure, no Docker)."""

from __future__ import annotations

import pytest

from hubtasks.errors import ConfigError, InvalidReferenceError
from hubtasks.references import (
    DOCKER_HUB_AUTH_KEY,
    Repository,
    is_valid_tag,
    normalize_registry,
    parse_image_reference,
    parse_repository,
    validate_tag,
)

DIGEST = "sha256:" + "a" * 64


def test_reference_errors_are_config_errors_with_exit_code_2():
    assert issubclass(InvalidReferenceError, ConfigError)
    assert InvalidReferenceError.exit_code == 2


# --- tags -------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["v1", "1.2.3", "_x", "latest", "A-b_c.D", "x" * 128, "1-2--3..4"])
def test_valid_tags(tag):
    assert is_valid_tag(tag)
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag, fragment",
    [
        (".x", "'.x' is not a valid tag"),
        ("-x", "'-x' is not a valid tag"),
        ("a b", "'a b' is not a valid tag"),
        ("a/b", "'a/b' is not a valid tag"),
        ("a:b", "'a:b' is not a valid tag"),
        ("é", "'é' is not a valid tag"),
    ],
)
def test_invalid_tags_name_the_value(tag, fragment):
    assert not is_valid_tag(tag)
    with pytest.raises(InvalidReferenceError) as info:
        validate_tag(tag, source="HUB_TAGS in .env")
    assert fragment in str(info.value)
    assert str(info.value).startswith("HUB_TAGS in .env: ")


def test_empty_tag_is_rejected():
    assert not is_valid_tag("")
    with pytest.raises(InvalidReferenceError, match=r"^--tag: a tag cannot be empty$"):
        validate_tag("", source="--tag")


def test_129_character_tag_names_its_start_and_length():
    tag = "abcdefghij" * 12 + "klmnopqrs"
    assert len(tag) == 129
    assert not is_valid_tag(tag)
    with pytest.raises(InvalidReferenceError) as info:
        validate_tag(tag)
    message = str(info.value)
    assert tag[:20] in message
    assert "129 characters" in message
    assert "128" in message


def test_invalid_tag_error_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        validate_tag("a b")
    assert info.value.exit_code == 2


# --- registries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("HTTPS://Index.Docker.IO/V1/", "docker.io"),
        ("https://docker.io/", "docker.io"),
        ("  docker.io  ", "docker.io"),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000"),
        ("localhost", "localhost"),
        ("GHCR.IO", "ghcr.io"),
        ("Registry.Example.COM:8443", "registry.example.com:8443"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_normalize_registry(value, expected):
    assert normalize_registry(value) == expected


@pytest.mark.parametrize(
    "value", ["bad host", ":5000", "", "   ", "host:port", "-bad.example", "ghcr.io/v2", "a_b.io"]
)
def test_invalid_registry_names_the_value(value):
    with pytest.raises(InvalidReferenceError) as info:
        normalize_registry(value, source="HUB_REGISTRY in the environment")
    message = str(info.value)
    assert message.startswith("HUB_REGISTRY in the environment: ")
    assert f"'{value}' is not a registry host" in message
    assert info.value.exit_code == 2


# --- repositories -----------------------------------------------------------------------


def parse(value, *, registry=None, username="user"):
    return parse_repository(value, registry=registry, username=username, source="src")


def test_bare_name_gets_the_username_as_namespace():
    assert parse("app") == Repository("docker.io", "user/app")


def test_bare_name_lowercases_the_username():
    assert parse("app", username="JohnDoe").path == "johndoe/app"


@pytest.mark.parametrize("username", [None, ""])
def test_bare_name_without_username_asks_for_hub_username(username):
    with pytest.raises(InvalidReferenceError) as info:
        parse("app", username=username)
    message = str(info.value)
    assert "'app'" in message
    assert "HUB_USERNAME" in message
    assert "NAMESPACE/app" in message


def test_username_that_cannot_be_a_namespace_is_named():
    with pytest.raises(InvalidReferenceError) as info:
        parse("app", username="me@example.com")
    assert "'me@example.com'" in str(info.value)
    assert "NAMESPACE/app" in str(info.value)


@pytest.mark.parametrize(
    "value, registry, expected",
    [
        ("ns/name", None, Repository("docker.io", "ns/name")),
        ("ns/sub/name", None, Repository("docker.io", "ns/sub/name")),
        ("ns/name", "ghcr.io", Repository("ghcr.io", "ns/name")),
        ("  ns/name  ", None, Repository("docker.io", "ns/name")),
        ("ghcr.io/o/r", None, Repository("ghcr.io", "o/r")),
        ("localhost:5000/o/r", None, Repository("localhost:5000", "o/r")),
        ("localhost/o/r", None, Repository("localhost", "o/r")),
        ("GHCR.io/o/r", None, Repository("ghcr.io", "o/r")),
        ("ghcr.io/o/r", "ghcr.io", Repository("ghcr.io", "o/r")),
        ("index.docker.io/o/r", "docker.io", Repository("docker.io", "o/r")),
        ("docker.io/library/nginx", None, Repository("docker.io", "library/nginx")),
        ("ghcr.io/app", None, Repository("ghcr.io", "user/app")),
        ("a--b/c__d", None, Repository("docker.io", "a--b/c__d")),
        ("ns/c-d_e.f", None, Repository("docker.io", "ns/c-d_e.f")),
        # A first component with a dot or a port is a host, as docker reads it.
        ("my.ns/app/x", None, Repository("my.ns", "app/x")),
    ],
)
def test_parse_repository(value, registry, expected):
    assert parse(value, registry=registry) == expected


def test_host_conflicting_with_explicit_registry_names_both():
    with pytest.raises(InvalidReferenceError) as info:
        parse("ghcr.io/o/r", registry="docker.io")
    message = str(info.value)
    assert "'ghcr.io/o/r'" in message
    assert "registry ghcr.io" in message
    assert "registry setting is docker.io" in message


def test_uppercase_component_says_lowercase():
    with pytest.raises(InvalidReferenceError) as info:
        parse("Bad/name")
    message = str(info.value)
    assert "'Bad/name'" in message
    assert "component 'Bad'" in message
    assert "repository names must be lowercase" in message


@pytest.mark.parametrize(
    "value, component",
    [
        ("ns/a..b", "a..b"),
        ("ns/a_._b", "a_._b"),
        ("ns/a___b", "a___b"),
        ("ns/name-", "name-"),
        ("ns/-name", "-name"),
        ("ns/.name", ".name"),
        ("ns//name", ""),
        ("ns/na me", "na me"),
        ("ns/", ""),
    ],
)
def test_invalid_component_is_named(value, component):
    with pytest.raises(InvalidReferenceError) as info:
        parse(value)
    message = str(info.value)
    assert f"'{value}' is not a valid repository name" in message
    assert f"component '{component}'" in message
    assert "must be lowercase" not in message  # the hint is only for uppercase


@pytest.mark.parametrize("value", ["ns/name:v1", f"ns/name@{DIGEST}", "localhost:5000/o/r:v1"])
def test_tag_or_digest_in_repository_is_refused(value):
    with pytest.raises(InvalidReferenceError) as info:
        parse(value)
    message = str(info.value)
    assert f"'{value}'" in message
    assert "tag or digest" in message


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_repository_is_refused(value):
    with pytest.raises(InvalidReferenceError, match=r"^src: the repository name is empty$"):
        parse(value)


def test_path_of_255_characters_is_accepted():
    path = "ns/" + "a" * 252
    assert len(path) == 255
    assert parse(path).path == path


def test_path_of_256_characters_is_refused():
    path = "ns/" + "a" * 253
    with pytest.raises(InvalidReferenceError) as info:
        parse(path)
    message = str(info.value)
    assert path in message
    assert "256 characters" in message
    assert "255" in message


def test_bare_name_counts_the_added_namespace_in_the_length():
    name = "a" * 252
    with pytest.raises(InvalidReferenceError, match="256 characters"):
        parse(name, username="bob")


def test_repository_errors_carry_the_source_and_exit_code_2():
    with pytest.raises(ConfigError) as info:
        parse_repository("Bad", registry=None, username="u", source="HUB_REPOSITORY in .env")
    assert str(info.value).startswith("HUB_REPOSITORY in .env: ")
    assert info.value.exit_code == 2


# --- Repository -------------------------------------------------------------------------

HUB = Repository("docker.io", "user/app")
OFFICIAL = Repository("docker.io", "library/nginx")
LOCAL = Repository("localhost:5000", "team/app")


@pytest.mark.parametrize(
    "repository, local_name",
    [
        (HUB, "user/app"),
        (OFFICIAL, "nginx"),
        (LOCAL, "localhost:5000/team/app"),
        (Repository("ghcr.io", "library/x"), "ghcr.io/library/x"),
    ],
)
def test_local_name(repository, local_name):
    assert repository.local_name == local_name


@pytest.mark.parametrize(
    "repository, ref",
    [(HUB, "user/app:v1"), (OFFICIAL, "nginx:v1"), (LOCAL, "localhost:5000/team/app:v1")],
)
def test_ref(repository, ref):
    assert repository.ref("v1") == ref


@pytest.mark.parametrize(
    "repository, canonical",
    [
        (HUB, "docker.io/user/app:v1"),
        (OFFICIAL, "docker.io/library/nginx:v1"),
        (LOCAL, "localhost:5000/team/app:v1"),
    ],
)
def test_canonical(repository, canonical):
    assert repository.canonical("v1") == canonical
    assert repository.canonical("v1", None) == canonical
    assert repository.canonical("v1", DIGEST) == f"{canonical}@{DIGEST}"


@pytest.mark.parametrize(
    "repository, auth_key",
    [
        (HUB, "https://index.docker.io/v1/"),
        (OFFICIAL, "https://index.docker.io/v1/"),
        (LOCAL, "localhost:5000"),
        (Repository("ghcr.io", "o/r"), "ghcr.io"),
    ],
)
def test_auth_key(repository, auth_key):
    assert repository.auth_key == auth_key


def test_docker_hub_auth_key_constant():
    assert DOCKER_HUB_AUTH_KEY == "https://index.docker.io/v1/"
    assert HUB.is_docker_hub and not LOCAL.is_docker_hub


def test_str_is_registry_and_path():
    assert str(HUB) == "docker.io/user/app"
    assert str(LOCAL) == "localhost:5000/team/app"


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("v1.2.3-rc.1", LOCAL, "v1.2.3-rc.1", None),
        (DIGEST, LOCAL, None, DIGEST),
        ("team/other:v1", Repository("localhost:5000", "team/other"), "v1", None),
        ("other:v1", Repository("localhost:5000", "alice/other"), "v1", None),
        ("localhost:5000/team/other:v1", Repository("localhost:5000", "team/other"), "v1", None),
        (f"team/other@{DIGEST}", Repository("localhost:5000", "team/other"), None, DIGEST),
        (f"team/other:v1@{DIGEST}", Repository("localhost:5000", "team/other"), "v1", DIGEST),
        ("ghcr.io/team/other:v1", Repository("ghcr.io", "team/other"), "v1", None),
        ("docker.io/library/x:1", Repository("docker.io", "library/x"), "1", None),
    ],
)
def test_image_references_default_to_the_configured_repository_and_registry(
    text, repository, tag, digest
):
    image = parse_image_reference(text, default=LOCAL, username="alice")
    assert (image.repository, image.tag, image.digest) == (repository, tag, digest)
    assert image.reference == (digest or tag)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256:abc", "is not a digest"),
        ("team/other@sha256:xyz", "is not a digest"),
        ("team/other", "names a repository but no image"),
        ("team/Other:v1", "must be lowercase"),
        ("team/other:-bad", "not a valid tag"),
    ],
)
def test_bad_image_references_say_what_is_wrong(text, message):
    with pytest.raises(InvalidReferenceError, match=message):
        parse_image_reference(text, default=LOCAL, username="alice")
