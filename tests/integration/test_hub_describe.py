"""`inv describe` end to end: a throwaway project whose HUB_API_URL points at the Docker Hub
double (devtools/hubdouble.py). HUB_API_URL set explicitly is what makes hubtasks treat the
registry (here an unused 127.0.0.1 address) as Docker Hub. No daemon or registry is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from devtools.hubdouble import HubDouble

PAT = "dckr_pat_describe-secret-1234"
README = "# Web\n\n![shot](docs/shot.png)\n\nSee [the guide](docs/guide.md) and `[code](x.md)`.\n"


@pytest.fixture
def double():
    with HubDouble() as running:
        running.add_account("alice", PAT, level="delete")
        running.add_account("writer", "dckr_pat_writer-only-5678", level="write")
        yield running


class HubProject:
    def __init__(self, path: Path, double: HubDouble):
        self.path, self.double = path, double

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=self.path,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def inv(self, *args: str, **environ: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
        env.update(environ)
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def page(self, name: str = "web"):
        return self.double.repositories.get(("alice", name))


@pytest.fixture
def project(tmp_path, double) -> HubProject:
    proj = HubProject(tmp_path / "project", double)
    proj.path.mkdir()
    proj.write("tasks.py", "from hubtasks import ns\n")
    proj.write(
        ".env",
        "HUB_REGISTRY=127.0.0.1:5999\nHUB_USERNAME=alice\n"
        f"HUB_TOKEN={PAT}\nHUB_REPOSITORY=web\nHUB_API_URL={double.url}\n"
        "HUB_DESCRIPTION=A small web server\nHUB_RETRY_DELAY=0.1\n",
    ).chmod(0o600)
    proj.write("README.md", README)
    proj.git("init", "-q")
    proj.git("remote", "add", "origin", "git@github.com:alice/web.git")
    proj.git("add", "README.md", "tasks.py")
    proj.git("commit", "-qm", "init")
    return proj


def one_line_failure(result, *, code: int, mentions: str) -> str:
    everything = result.stdout + result.stderr
    assert result.returncode == code, everything
    assert "Traceback" not in everything and PAT not in everything
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hubtasks: ") and mentions in last, last
    return last


def test_creates_the_repository_with_the_page(project, double):
    result = project.inv("describe")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{double.url}/r/alice/web\n"
    assert "created public repository alice/web" in result.stderr
    page = project.page()
    rev = project.git("rev-parse", "HEAD")
    assert page.description == "A small web server" and page.is_private is False
    assert page.full_description == (
        f"# Web\n\n![shot](https://github.com/alice/web/raw/{rev}/docs/shot.png)\n\n"
        f"See [the guide](https://github.com/alice/web/blob/{rev}/docs/guide.md) and "
        "`[code](x.md)`.\n"
    )
    assert PAT not in result.stdout + result.stderr


@pytest.fixture
def hub_proxy(double):
    """The double behind the per-request fault proxy: HUB_API_URL=http://{proxy.address}."""
    port = int(double.url.rsplit(":", 1)[1])
    with HttpFaultProxy(port) as running:
        yield running


def test_a_create_whose_answer_was_lost_is_a_success(project, double, hub_proxy):
    """The create reached Docker Hub, its answer did not: the retried create answers 400
    ("already exists"), and the repository read then is what counts."""
    creates = hub_proxy.add(
        Rule(method="POST", path="^/v2/namespaces/alice/repositories$", truncate=0, times=1)
    )
    result = project.inv("describe", HUB_API_URL=f"http://{hub_proxy.address}")
    assert result.returncode == 0, result.stderr
    assert creates.fired == 1 and hub_proxy.count("POST", "/repositories$") == 2
    assert "[retry]" in result.stderr
    page = project.page()
    assert page is not None and page.description == "A small web server"
    assert page.full_description.startswith("# Web")
    assert PAT not in result.stdout + result.stderr


def test_two_describe_runs_at_once_both_succeed(project, double, hub_proxy):
    """Both read "no repository" (the proxy answers their first reads 404), both create: one
    gets 201, the other Docker Hub's 400 for an existing repository, and updates instead."""
    hub_proxy.add(
        Rule(method="GET", path="^/v2/namespaces/alice/repositories/web$", status=404, times=2)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    env["HUB_API_URL"] = f"http://{hub_proxy.address}"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "invoke", "describe"],
            cwd=project.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(run.communicate(timeout=120), run.returncode) for run in runs]
    for (_, err), code in outcomes:
        assert code == 0, err
    assert hub_proxy.count("POST", "/repositories$") == 2
    assert sum("created public repository" in err for (_, err), _ in outcomes) == 1
    assert project.page().description == "A small web server"


def test_unchanged_sends_nothing_and_update_sends_only_what_differs(project, double):
    assert project.inv("describe").returncode == 0
    double.requests.clear()
    again = project.inv("describe")
    assert again.returncode == 0, again.stderr
    assert ": unchanged" in again.stderr
    assert double.sent("PATCH") == [] and double.sent("POST", "/v2/namespaces") == []

    project.write("README.md", README + "\nNew section.\n")
    changed = project.inv("describe")
    assert changed.returncode == 0, changed.stderr
    assert ": updated (overview)" in changed.stderr
    assert double.sent("PATCH") == ["/v2/repositories/alice/web/"]
    assert project.page().full_description.endswith("New section.\n")
    assert project.page().description == "A small web server"


def test_flags_win_and_private_repositories(project):
    project.write("docs/HUB.md", "[up](../README.md)\n")
    result = project.inv(
        "describe",
        "--visibility",
        "private",
        "--description",
        "From the flag",
        "--readme",
        "docs/HUB.md",
    )
    assert result.returncode == 0, result.stderr
    page = project.page()
    assert page.is_private is True and page.description == "From the flag"
    rev = project.git("rev-parse", "HEAD")
    assert page.full_description == f"[up](https://github.com/alice/web/blob/{rev}/README.md)\n"


def test_existing_visibility_is_not_changed_but_named(project, double):
    double.add_repository("alice", "web", is_private=False, description="old")
    result = project.inv("describe", HUB_VISIBILITY="private")
    assert result.returncode == 0, result.stderr
    assert "describe only sets the visibility of a repository it creates" in result.stderr
    assert project.page().is_private is False
    assert ": updated (short description, overview)" in result.stderr


def test_long_overview_is_truncated_or_refused_with_strict(project, double):
    project.write("README.md", "ü" * 15_000)  # 30,000 bytes
    refused = project.inv("describe", "--strict")
    one_line_failure(refused, code=2, mentions="30,000 bytes; Docker Hub keeps 25,000")
    assert double.requests == []  # refused before anything was sent
    result = project.inv("describe")
    assert result.returncode == 0, result.stderr
    assert "warning: the overview from README.md is 30,000 bytes" in result.stderr
    assert project.page().full_description == "ü" * 12_500


def test_long_description_is_refused_before_sending(project, double):
    result = project.inv("describe", "--description", "x" * 101)
    one_line_failure(result, code=2, mentions="101 characters long; Docker Hub allows 100")
    assert double.requests == []


def test_wrong_token(project):
    result = project.inv("describe", HUB_TOKEN="dckr_pat_not-the-right-one")
    line = one_line_failure(result, code=1, mentions="rejected the credentials of 'alice'")
    assert "not-the-right-one" not in result.stdout + result.stderr
    assert "HTTP 401" in line


def test_read_and_write_token_is_told_the_permission_it_needs(project, double):
    double.add_repository("writer", "web")
    result = project.inv("describe", HUB_USERNAME="writer", HUB_TOKEN="dckr_pat_writer-only-5678")
    line = one_line_failure(result, code=1, mentions="HTTP 403")
    assert "'Repo Read, Write, Delete' permission" in line
    assert "dckr_pat_writer-only-5678" not in result.stdout + result.stderr


def test_a_namespace_alice_does_not_belong_to_is_named(project):
    result = project.inv("describe", HUB_REPOSITORY="bigcorp/web")
    one_line_failure(result, code=1, mentions="'bigcorp' is not alice's own namespace")


def test_a_name_docker_hub_refuses_is_a_settings_error(project):
    result = project.inv("describe", HUB_REPOSITORY="alice/a")
    line = one_line_failure(result, code=2, mentions="HTTP 400")
    assert "name: Must be 2-255 characters" in line


def test_rate_limit_is_waited_out_or_reported(project, double):
    double.throttle(1, wait=1)
    waited = project.inv("describe")
    assert waited.returncode == 0, waited.stderr
    assert "[retry]" in waited.stderr and "rate limit" in waited.stderr
    double.throttle(5, wait=1)
    result = project.inv("describe", HUB_RETRIES="1")
    one_line_failure(result, code=1, mentions="Docker Hub's API rate limit")


def test_registries_other_than_docker_hub_are_left_alone(project, double):
    project.write(".env", (project.path / ".env").read_text().replace("HUB_API_URL=", "X="))
    result = project.inv("describe")
    assert result.returncode == 0, result.stderr
    assert "the repository page is a Docker Hub feature" in result.stderr
    assert result.stdout == ""
    assert double.requests == []


def test_help_lists_every_flag(project):
    result = project.inv("--help", "describe")
    for flag in ("--readme", "--description", "--visibility", "--strict", "--repository"):
        assert flag in result.stdout
    prune = project.inv("--help", "prune")
    for flag in ("--match", "--keep", "--older-than", "--yes"):
        assert flag in prune.stdout
