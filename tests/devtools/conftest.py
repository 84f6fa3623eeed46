"""Fixtures for the tests of the test tools themselves.

The proxies' tests need no daemon. The TLS daemon's test checks that it runs next to an
ordinary stack, so it gets one of its own here, for its module only: in a full run this
directory comes before tests/integration, whose session stack has not started yet, so the two
stacks never run at once. Tests using these fixtures are marked `integration` by
tests/conftest.py.
"""

from __future__ import annotations

import docker
import pytest

from devtools.stack import Stack, missing_packages


@pytest.fixture(scope="module")
def stack():
    missing = missing_packages()
    if missing:
        pytest.fail(f"the stack needs: apt-get install {' '.join(missing)}")
    with Stack() as running:
        yield running


@pytest.fixture(scope="module")
def client(stack):
    c = docker.DockerClient(base_url=stack.daemon.host, timeout=120)
    yield c
    c.close()
