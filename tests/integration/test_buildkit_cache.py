"""BuildKit's inline cache on a fresh runner, release after release: every release on an empty
daemon takes the unchanged slow step from the newest release, including a release whose cache
source had itself been built from the inline cache (moby/buildkit#1981: on Engine 20.10 an
image built from a cache imported from the registry carries no usable cache for the steps it
took from it, so every second fresh-runner release used to run the step again)."""

from __future__ import annotations

import re

from tests.helpers.images import forget_everything

SLOW = 2  # seconds: the `RUN` that stands for installing dependencies
RUN = f"RUN sleep {SLOW} && echo deps > /deps"
DOCKERFILE = f'FROM busybox:local\n{RUN}\nCOPY app.txt /app.txt\nCMD ["cat", "/deps", "/app.txt"]\n'


def _cached_steps(stderr: str) -> set[str]:
    """The instructions BuildKit's plain progress says it took from the cache."""
    names = dict(re.findall(r"^#(\d+) \[\d+/\d+\] (.+)$", stderr, re.M))
    cached = set(re.findall(r"^#(\d+) CACHED$", stderr, re.M))
    return {names[number] for number in cached if number in names}


def _fresh_runner(client, project) -> None:
    """What a fresh CI runner holds: no image of the repository, no BuildKit cache."""
    forget_everything(client, project)
    client.api.prune_builds(all=True)


def _release(project, tag: str, app: str):
    project.write("app.txt", app)
    result = project.inv("release", "--tag", tag, HUB_PROGRESS="plain")
    assert result.returncode == 0, result.stderr
    return result


def test_every_fresh_runner_release_takes_the_slow_step_from_the_inline_cache(
    project, client, stack
):
    project.builder = "buildkit"
    project.write("Dockerfile", DOCKERFILE)
    first = _release(project, "v1.0.0", "one\n")
    assert RUN not in _cached_steps(first.stderr)
    name = f"{stack.registry}/{project.repository}"
    for tag, app in (("v1.0.1", "two\n"), ("v1.0.2", "three\n"), ("v1.0.3", "four\n")):
        _fresh_runner(client, project)
        result = _release(project, tag, app)
        cached = _cached_steps(result.stderr)
        # `--cache-from auto`: the newest release, built from the inline cache itself.
        assert RUN in cached, f"{tag}: the {SLOW}s step ran again\n{result.stderr}"
        assert "COPY app.txt /app.txt" not in cached, result.stderr
        output = client.containers.run(f"{name}:{tag}", remove=True, network_mode="none")
        assert output == f"deps\n{app}".encode()
