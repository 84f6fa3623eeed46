"""What people see: a real pseudo-terminal, plain pipes, NO_COLOR, --quiet, doctor, images."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers.terminal import run_in_pty

from .conftest import assert_clean_failure

ESCAPE = re.compile(r"\x1b")
COLOR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|38;|48;)[0-9;]*m")


def slow_build(project) -> str:
    """A build whose RUN output is new for each project (no cache hit across tests)."""
    name = project.repository.split("/")[1]
    return (
        "FROM busybox:local\n"
        f"RUN for i in 1 2 3 4 5 6 7 8 9 10; do echo {name}-line-$i; done && sleep 1\n"
        'RUN dd if=/dev/zero of=/blob bs=1024 count=2048 2>/dev/null\nCMD ["cat", "/blob"]\n'
    )


@pytest.mark.parametrize(("builder", "step"), [("classic", "Step 2/"), ("buildkit", "[2/3] RUN")])
def test_terminal_shows_live_steps_progress_and_summary(project, stack, builder, step):
    project.write("Dockerfile", slow_build(project))
    code, output = run_in_pty(project, "release", "--tag", "v1", HUB_BUILDER=builder)
    assert code == 0, output
    assert ESCAPE.search(output), "a terminal gets live rendering"
    assert step in output and "RUN for i in" in output
    assert "published" in output  # the summary table's title
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert f"{stack.registry}/{project.repository}:v1@{digest}" in output
    assert project.token not in output
    assert "-line-10" in output  # the tail of the step's output was shown live


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
def test_terminal_build_failure_shows_the_whole_log(project, builder):
    name = project.repository.split("/")[1]
    project.write("Dockerfile", f"FROM busybox:local\nRUN echo first-line-{name} && exit 4\n")
    code, output = run_in_pty(project, "build", "--tag", "x", HUB_BUILDER=builder)
    assert code != 0
    assert "the build log" in output and f"first-line-{name}" in output
    assert "Traceback" not in output


@pytest.mark.builds
def test_no_color_on_a_terminal(project):
    code, output = run_in_pty(project, "release", "--tag", "v1", NO_COLOR="1")
    assert code == 0, output
    assert not COLOR.search(output), repr(COLOR.search(output))
    plain_code, colored = run_in_pty(project, "release", "--tag", "v2")
    assert plain_code == 0
    assert COLOR.search(colored), "without NO_COLOR the terminal output has colour"


@pytest.mark.builds
def test_pipes_get_plain_lines_only(project, stack):
    project.write("Dockerfile", slow_build(project))
    result = project.inv("release", "--tag", "v1")
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert not ESCAPE.search(stream)
        assert "\r" not in stream
    assert "-line-10" in result.stderr  # the whole build log, as lines
    assert "[summary]" in result.stderr
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    assert result.stdout == f"{stack.registry}/{project.repository}:v1@{digest}\n"


@pytest.mark.builds
def test_quiet_prints_only_the_references(project, stack):
    result = project.inv("release", "--tag", "v1", "--tag", "v1-extra", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    digest = stack.registry_server.manifest_digest(project.repository, "v1")
    prefix = f"{stack.registry}/{project.repository}"
    assert result.stdout.splitlines() == [f"{prefix}:v1@{digest}", f"{prefix}:v1-extra@{digest}"]
    code, output = run_in_pty(project, "release", "--tag", "v1", "--quiet")
    assert code == 0 and not ESCAPE.search(output)


def _doctor(project, *args, **env):
    return project.inv("doctor", *args, **env)


def test_doctor_healthy(project, stack):
    result = _doctor(project, "--tag", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in (
        "Docker daemon",
        "settings",
        "required settings",
        "tags",
        "Dockerfile and context",
        "registry",
        "credentials",
    ):
        assert re.search(rf"^✓ {re.escape(name)}\b", out, re.M), (name, out)
    assert "Docker Engine" in out and "API 1." in out
    assert "✗" not in out
    assert project.token not in out + result.stderr


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("auto", "buildkit: the daemon runs Linux with API 1.41"),
        ("classic", "classic: asked for (HUB_BUILDER=classic)"),
    ],
)
def test_doctor_says_which_builder_and_why(project, setting, says):
    result = _doctor(project, "--tag", "v1", HUB_BUILDER=setting)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^✓ builder +{re.escape(says)}", result.stdout, re.M), result.stdout


@pytest.mark.parametrize(
    ("change", "failing", "hint"),
    [
        ({"HUB_TOKEN": "wrong-token-123"}, "credentials", "HUB_TOKEN"),
        (
            {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
            "Docker daemon",
            "/nonexistent/docker.sock",
        ),
        ({"HUB_DOCKERFILE": "Nope.Dockerfile"}, "Dockerfile and context", "Nope.Dockerfile"),
        ({"HUB_REGISTRY": "127.0.0.1:9"}, "registry", "127.0.0.1:9"),
        ({"HUB_REPOSITORY": "Bad Name"}, "settings", "Bad Name"),
    ],
    ids=["wrong-token", "daemon-stopped", "no-dockerfile", "registry-down", "bad-name"],
)
def test_doctor_finds_the_problem(project, change, failing, hint):
    result = _doctor(project, "--tag", "v1", **change)
    assert result.returncode != 0
    assert re.search(rf"^✗ {re.escape(failing)}\b.*{re.escape(hint)}", result.stdout, re.M), (
        result.stdout
    )
    # A settings error names the value and where it came from: no fix line repeats it.
    assert ("fix:" in result.stdout) == (failing != "settings")
    assert "see the message" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert project.token not in result.stdout + result.stderr
    assert "wrong-token-123" not in result.stdout + result.stderr


def test_doctor_catches_env_in_context(project):
    (project.path / ".dockerignore").unlink()
    result = _doctor(project, "--tag", "v1")
    assert result.returncode != 0
    assert re.search(r"^✗ Dockerfile and context .*\.dockerignore", result.stdout, re.M)
    fix = re.search(r"fix: (echo \.env >> \S+/\.dockerignore)$", result.stdout, re.M)
    assert fix, result.stdout
    subprocess.run(fix.group(1), shell=True, cwd=project.path, check=True)  # the fix works
    assert _doctor(project, "--tag", "v1").returncode == 0


@pytest.mark.builds
def test_images_after_build(project, client, stack):
    assert project.inv("build", "--tag", "one", "--tag", "two").returncode == 0
    result = project.inv("images")
    assert result.returncode == 0, result.stderr
    image_id = client.images.get(f"{stack.registry}/{project.repository}:one").id
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert {row[0] for row in rows} == {"one", "two"}
    assert all(row[1] == image_id.removeprefix("sha256:")[:12] for row in rows)
    assert all(row[3] in ("MB", "kB") for row in rows)
    empty = project.inv("images", "--repository", "nothing-here")
    assert empty.returncode == 0 and "no local images" in empty.stdout
    bad = project.inv("images", "--repository", "UPPER")
    assert_clean_failure(bad, project, mentions="lowercase")


def test_terminal_push_shows_bytes_per_layer(project):
    name = project.repository.split("/")[1]
    project.write(
        "Dockerfile",
        f"FROM busybox:local\nRUN echo {name} && "
        "dd if=/dev/urandom of=/big bs=1024 count=24576 2>/dev/null\n",
    )
    assert project.inv("build", "--tag", "big").returncode == 0
    code, output = run_in_pty(project, "push", "--tag", "big")
    assert code == 0, output
    assert re.search(r"\d+(\.\d)?/2\d\.\d MB", output), "no per-layer byte progress"
    assert "MB/s" in output or "kB/s" in output
