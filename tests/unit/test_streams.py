"""The classic builder's JSON stream read by `daemon.streams.follow_build`."""

from __future__ import annotations

import pytest

from hubtasks.daemon.streams import follow_build
from hubtasks.errors import BuildError


def test_a_buildkit_only_feature_on_the_classic_builder_names_the_way_out():
    lines = iter(
        [
            {"stream": "Step 2/3 : RUN --mount=type=cache,target=/c true\n"},
            {"error": "the --mount option requires BuildKit. Refer to https://docs.docker.com"},
        ]
    )
    shown: list[str] = []
    with pytest.raises(BuildError) as failure:
        follow_build(lines, "app:v1", ("x", "x"), shown.append)
    message = str(failure.value)
    assert message.startswith("build of app:v1 failed at Step 2/3 : RUN --mount")
    assert "classic builder" in message and "--builder buildkit" in message
    assert "\n" not in message
