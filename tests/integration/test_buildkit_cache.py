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


def _release(project, tag: str, app: str, name: str = "app.txt", *args: str):
    project.write(name, app)
    result = project.inv("release", "--tag", tag, *args, HUB_PROGRESS="plain")
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


# The steps are `COPY`s (an arm64 `RUN` needs an emulator); the `RUN` of a stage the target
# never builds makes hubtasks pull the cache images first, as for a Dockerfile that runs
# something (it reads the text, not which stages a target needs).
MULTI = (
    "FROM busybox:local AS tools\nRUN true\n"
    "FROM scratch\nARG TARGETARCH\nCOPY deps-${TARGETARCH} /deps\nCOPY app /app\n"
)
_DEPS_STEP = re.compile(r"^#(\d+) \[(?:stage-1 )?\d+/\d+\] COPY deps-(\w+) /deps$", re.M)


def test_every_fresh_runner_release_of_two_platforms_takes_each_platforms_steps(
    project, client, stack
):
    """Each platform's build takes the unchanged step from its own platform's image of the
    newest release (pulled by that image's digest), release after release."""
    project.builder = "buildkit"
    project.write("Dockerfile", MULTI)
    project.write("deps-amd64", "x86 deps\n")
    project.write("deps-arm64", "arm deps\n")
    platforms = ("--platform", "linux/amd64,linux/arm64")
    _release(project, "v1.0.0", "v1.0.0\n", "app", *platforms)
    for tag in ("v1.0.1", "v1.0.2", "v1.0.3"):
        _fresh_runner(client, project)
        result = _release(project, tag, f"{tag}\n", "app", *platforms)
        builds = result.stderr.split("[build] building ")[1:]  # each numbers its steps from 1
        steps = [(_DEPS_STEP.search(build), build) for build in builds]
        assert [found.group(2) for found, _ in steps if found] == ["amd64", "arm64"], result.stderr
        missed = [
            found.group(2) for found, build in steps if f"#{found.group(1)} CACHED\n" not in build
        ]
        assert not missed, f"{tag}: the unchanged step ran again for {missed}\n{result.stderr}"
