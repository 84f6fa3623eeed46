"""Bad input never does harm: one clear line, a non-zero exit, no traceback, nothing pushed."""

from __future__ import annotations

import pytest

from .conftest import assert_clean_failure


def _env(**values):
    return lambda project: project.add_env(**values)


def _dockerfile(text):
    return lambda project: project.write("Dockerfile", text)


def _env_line(line):
    def setup(project):
        env = project.path / ".env"
        env.write_text(env.read_text() + line + "\n")

    return setup


def _no_dockerignore(project):
    (project.path / ".dockerignore").unlink()


def _dockerfile_is_a_folder(project):
    (project.path / "Dockerfile").unlink()
    (project.path / "Dockerfile").mkdir()


def _without(key):
    return lambda project: project.drop_env(key)


def _docker_config(document):
    def setup(project):
        import json

        project.docker_config.mkdir(parents=True, exist_ok=True)
        (project.docker_config / "config.json").write_text(json.dumps(document))

    return setup


NOTHING = None
# (id, setup, task arguments, environment, what the one line must mention)
CASES = [
    # settings, names and tags
    ("tag-chars", NOTHING, ["--tag", "v1!"], {}, "'v1!' is not a valid tag"),
    ("tag-too-long", NOTHING, ["--tag", "a" * 129], {}, "the limit is 128"),
    ("tag-leading-dot", NOTHING, ["--tag", ".v1"], {}, "not starting with '.'"),
    ("tag-in-env", _env(HUB_TAGS="ok,b@d"), [], {}, "HUB_TAGS in .env"),
    ("repo-uppercase", NOTHING, ["--tag", "v1", "--repository", "Web"], {}, "lowercase"),
    (
        "repo-with-tag",
        NOTHING,
        ["--tag", "v1", "--repository", "u/web:v2"],
        {},
        "contains a tag or digest",
    ),
    (
        "repo-double-slash",
        NOTHING,
        ["--tag", "v1", "--repository", "u//web"],
        {},
        "not a valid repository name",
    ),
    (
        "registry-bad-host",
        NOTHING,
        ["--tag", "v1", "--registry", "bad host"],
        {},
        "not a registry host",
    ),
    (
        "registry-conflict",
        NOTHING,
        ["--tag", "v1", "--repository", "ghcr.io/u/web"],
        {},
        "names registry ghcr.io",
    ),
    ("build-arg-no-equals", NOTHING, ["--tag", "v1", "--build-arg", "FOO"], {}, "NAME=VALUE"),
    ("label-no-equals", NOTHING, ["--tag", "v1", "--label", "=x"], {}, "is not a label"),
    ("semver-not-bool", _env(HUB_SEMVER="perhaps"), ["--tag", "v1"], {}, "HUB_SEMVER"),
    ("semver-needs-version", NOTHING, ["--tag", "main", "--semver"], {}, "needs a version tag"),
    ("retries-zero", _env(HUB_RETRIES="0"), ["--tag", "v1"], {}, "HUB_RETRIES"),
    ("timeout-text", _env(HUB_TIMEOUT="soon"), ["--tag", "v1"], {}, "HUB_TIMEOUT"),
    ("retry-delay-negative", _env(HUB_RETRY_DELAY="-1"), ["--tag", "v1"], {}, "HUB_RETRY_DELAY"),
    (
        "source-date-epoch",
        NOTHING,
        ["--tag", "v1"],
        {"SOURCE_DATE_EPOCH": "yesterday"},
        "SOURCE_DATE_EPOCH",
    ),
    ("no-tag-no-git", NOTHING, [], {}, "not in a git work tree"),
    ("missing-username", _without("HUB_USERNAME"), ["--tag", "v1"], {}, "HUB_USERNAME"),
    ("missing-token", _without("HUB_TOKEN"), ["--tag", "v1"], {}, "HUB_TOKEN"),
    ("missing-repository", _without("HUB_REPOSITORY"), ["--tag", "v1"], {}, "HUB_REPOSITORY"),
    # .env syntax
    ("env-unclosed-quote", _env_line('HUB_TAGS="v1'), ["--tag", "v1"], {}, "cannot be parsed"),
    (
        "env-garbage-line",
        _env_line("this is not a setting"),
        ["--tag", "v1"],
        {},
        "cannot be parsed",
    ),
    (
        "build-args-unbalanced",
        _env_line('HUB_BUILD_ARGS="A=\'1"'),
        ["--tag", "v1"],
        {},
        "HUB_BUILD_ARGS in .env",
    ),
    # Dockerfile and context
    ("no-dockerfile", NOTHING, ["--tag", "v1", "--dockerfile", "Nope"], {}, "not found"),
    ("dockerfile-is-folder", _dockerfile_is_a_folder, ["--tag", "v1"], {}, "not found"),
    ("no-context", NOTHING, ["--tag", "v1", "--context", "missing-dir"], {}, "is not a folder"),
    (
        "unknown-instruction",
        _dockerfile("FROM busybox:local\nFOO bar\n"),
        ["--tag", "v1"],
        {},
        "unknown instruction",
    ),
    ("empty-dockerfile", _dockerfile(""), ["--tag", "v1"], {}, "build of"),
    (
        "buildkit-only",
        _dockerfile("FROM busybox:local\nRUN --mount=type=cache,target=/c true\n"),
        ["--tag", "v1"],
        {"HUB_BUILDER": "classic"},  # BuildKit builds it
        "BuildKit",
    ),
    (
        "failing-run",
        _dockerfile("FROM busybox:local\nRUN exit 9\n"),
        ["--tag", "v1"],
        {"HUB_BUILDER": "classic"},
        "non-zero code: 9",
    ),
    (
        "failing-run-buildkit",
        _dockerfile("FROM busybox:local\nRUN exit 9\n"),
        ["--tag", "v1"],
        {"HUB_BUILDER": "buildkit"},
        "at [2/2] RUN exit 9 (Dockerfile line 2): executor failed running [/bin/sh -c exit 9]: "
        "exit code: 9",
    ),
    (
        "secret-file-missing",
        NOTHING,
        ["--tag", "v1", "--secret", "id=tok,src=/nonexistent/tok"],
        {"HUB_BUILDER": "buildkit"},
        "--secret id=tok: cannot read /nonexistent/tok",
    ),
    ("env-in-context", _no_dockerignore, ["--tag", "v1"], {}, ".dockerignore"),
    # credentials
    (
        "wrong-token",
        NOTHING,
        ["--tag", "v1"],
        {"HUB_TOKEN": "not-it-at-all"},
        "rejected the credentials",
    ),
    (
        "wrong-username",
        NOTHING,
        ["--tag", "v1"],
        {"HUB_USERNAME": "mallory"},
        "rejected the credentials of 'mallory'",
    ),
    # daemon and registry states
    (
        "daemon-socket-missing",
        NOTHING,
        ["--tag", "v1"],
        {"DOCKER_HOST": "unix:///nonexistent/d.sock"},
        "/nonexistent/d.sock",
    ),
    ("docker-host-garbage", NOTHING, ["--tag", "v1"], {"DOCKER_HOST": "bogus://x"}, "bogus://x"),
    (
        "daemon-tcp-closed",
        NOTHING,
        ["--tag", "v1"],
        {"DOCKER_HOST": "tcp://127.0.0.1:9"},
        "tcp://127.0.0.1:9",
    ),
    (
        "tls-without-certs",
        NOTHING,
        ["--tag", "v1"],
        {
            "DOCKER_HOST": "tcp://127.0.0.1:9",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": "/nonexistent/certs",
        },
        "tcp://127.0.0.1:9",
    ),
    (
        "missing-creds-store",
        _docker_config({"credsStore": "not-installed"}),
        ["--tag", "v1"],
        # The classic build reads the Docker config for its base images; BuildKit asks the
        # session, which answers from hubtasks' own login.
        {"HUB_BUILDER": "classic"},
        "docker-credential-not-installed",
    ),
    (
        "missing-cred-helper",
        NOTHING,
        ["--tag", "v1"],
        {"HUB_BUILDER": "classic"},
        "docker-credential-gone",
    ),
    (
        "registry-closed",
        _env(HUB_TIMEOUT="1", HUB_RETRY_DELAY="0.1"),
        ["--tag", "v1"],
        {"HUB_REGISTRY": "127.0.0.1:9"},
        "connection refused",
    ),
]


@pytest.mark.parametrize(
    ("setup", "args", "env", "mentions"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_release_input(project, setup, args, env, mentions):
    if setup:
        setup(project)
    if "docker-credential-gone" in mentions:  # needs the registry's address
        _docker_config({"credHelpers": {project.stack.registry: "gone"}})(project)
    result = project.inv("release", *args, **env)
    assert_clean_failure(result, project, mentions=mentions)
    assert project.tags() == []


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["push", "--tag", "never-built"], "no local image"),
        (["tag", "--source", "nope", "--tag", "x"], "no local image 'nope'"),
        (["push", "--tag", "v1", "--tag", "x y"], "'x y' is not a valid tag"),
    ],
    ids=["push-unbuilt", "tag-missing-source", "push-bad-tag"],
)
def test_bad_input_to_other_tasks(project, args, mentions):
    result = project.inv(*args)
    assert_clean_failure(result, project, mentions=mentions)
    assert project.tags() == []
