"""The Docker Hub page as a release stage, and the doctor's pull-rate-limit row: a real daemon
and registry (the `project` fixture) with HUB_API_URL pointing at the Docker Hub double."""

from __future__ import annotations

import re

import pytest

from devtools.hubdouble import HubDouble

from .conftest import assert_clean_failure


@pytest.fixture
def hub(project, stack):
    """The double, knowing the stack's user; the project describes itself on release."""
    with HubDouble() as double:
        project.write("README.md", "# Demo\n\nReleased by hubtasks.\n")
        project.add_env(HUB_API_URL=double.url, HUB_DESCRIPTION="The demo image")
        yield double


def page(double, project):
    namespace, name = project.repository.split("/")
    return double.repositories.get((namespace, name))


def test_release_updates_the_page_after_verify(project, stack, hub):
    hub.add_account(stack.username, stack.password, level="delete")
    result = project.inv("release", "--tag", "v1", HUB_DESCRIBE="true")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["v1"]
    assert result.stderr.index("[verify]") < result.stderr.index("[describe]")
    assert page(hub, project).full_description == "# Demo\n\nReleased by hubtasks.\n"
    assert page(hub, project).description == "The demo image"
    # stdout holds the references only, not the page URL
    assert all("@sha256:" in line for line in result.stdout.splitlines())

    again = project.inv("release", "--tag", "v1", "--describe")
    assert again.returncode == 0, again.stderr
    assert ": unchanged" in again.stderr and hub.sent("PATCH") == []


def test_no_describe_no_hub_traffic(project, stack, hub):
    hub.add_account(stack.username, stack.password, level="delete")
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert hub.requests == [] and "[describe]" not in result.stderr


def test_a_failed_page_update_is_a_warning_unless_strict(project, stack, hub):
    hub.add_account(stack.username, stack.password, level="write")  # can push, not describe
    result = project.inv("release", "--tag", "v1", "--describe")
    assert result.returncode == 0, result.stderr
    assert project.tags() == ["v1"]  # published
    warning = next(line for line in result.stderr.splitlines() if "Docker Hub page" in line)
    assert warning.startswith("warning: the image is published, but the Docker Hub page was not")
    assert "'Repo Read, Write, Delete' permission" in warning
    assert "@sha256:" in result.stdout

    strict = project.inv("release", "--tag", "v2", "--describe", "--strict")
    last = assert_clean_failure(strict, project, mentions="the image is published, but")
    assert "HTTP 403" in last
    assert project.tags() == ["v1", "v2"]  # pushed and verified before the page failed


def test_doctor_shows_the_pull_rate_limit_only_for_docker_hub(project, stack, hub):
    project.drop_env("HUB_API_URL")
    plain = project.inv("doctor", "--tag", "v1")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "pull rate limit" not in plain.stdout
    project.add_env(HUB_API_URL=hub.url)  # "this registry has a Docker Hub API"
    result = project.inv("doctor", "--tag", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    row = re.search(r"^✓ pull rate limit\s+(.*)$", result.stdout, re.M)
    assert row, result.stdout
    assert row.group(1) == f"{stack.registry} sends no rate-limit headers: no pull limit"
