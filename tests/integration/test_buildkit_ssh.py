"""`inv build --ssh` against the real daemon, with a real `ssh-agent` holding a fresh key: a
`RUN --mount=type=ssh` step lists the key through hubtasks' session (the host's ssh-add and its
libraries copied into the image), cannot change the agent, and nothing of the socket or the
key reaches the output; the refusals are one line each."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import assert_clean_failure

SSH_ADD, SSH_KEYGEN = "/usr/bin/ssh-add", "/usr/bin/ssh-keygen"


@pytest.fixture(scope="module")
def agent():
    """A running `ssh-agent -D -a SOCK` holding a fresh ed25519 key: (socket, fingerprint,
    the private key's text, the public key's). A short folder under /tmp: a socket's path
    has at most 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="hub-ssh-"))
    sock = folder / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        key = folder / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hubtasks-test", "-f", str(key)],
            check=True,
        )
        for _ in range(50):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run([SSH_ADD, "-q", str(key)], check=True, env=env, capture_output=True)
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{key}.pub"], check=True, capture_output=True, text=True
        ).stdout
        fingerprint = listed.split()[1]
        assert fingerprint.startswith("SHA256:")
        yield str(sock), fingerprint, key.read_text(), Path(f"{key}.pub").read_text()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _with_ssh_tools(project, public_key: str = "") -> None:
    """The host's ssh-add and ssh-keygen and the shared libraries they load, under `root/` in
    the context; the public key as `root/key.pub`."""
    needed = {SSH_ADD, SSH_KEYGEN}
    for program in (SSH_ADD, SSH_KEYGEN):
        listed = subprocess.run(["ldd", program], check=True, capture_output=True, text=True)
        needed.update(re.findall(r"(/\S+) \(0x", listed.stdout))
    for path in sorted(needed):
        target = project.path / "root" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)  # a symlink's target, as a file where ldd named it
    project.write("root/key.pub", public_key)


def _file_in(client, image: str, path: str) -> str:
    container = client.containers.create(image, command=["x"])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            data = tar.extractfile(tar.getmembers()[0])
            assert data is not None
            return data.read().decode()
    finally:
        container.remove()


_DOCKERFILE = (
    "FROM busybox:local\n"
    "COPY root/ /\n"
    "RUN --mount=type=ssh{id} ssh-add -l > /listed\n"
    # A signature by the agent (ssh-keygen finds the key's user in /etc/passwd first).
    "RUN echo root:x:0:0:root:/root:/bin/sh > /etc/passwd && echo signed > /data\n"
    "RUN --mount=type=ssh{id} if [ -s /key.pub ]; then ssh-keygen -Y sign -f /key.pub -n test "
    "/data; fi\n"
    # Read-only: removing the keys is refused (ssh-add -D fails), the agent keeps them.
    "RUN --mount=type=ssh{id} if ssh-add -D; then echo removed; else echo refused; fi > /removal\n"
)


def _assert_nothing_leaked(result, sock: str, private: str) -> None:
    everything = result.stdout + result.stderr
    assert sock not in everything
    assert os.path.dirname(sock) not in everything
    body = "".join(private.splitlines()[1:-1])
    assert body[:40] not in everything.replace("\n", "")


def test_build_forwards_the_agent_of_ssh_auth_sock(project, client, stack, agent, tmp_path):
    sock, fingerprint, private, public = agent
    _with_ssh_tools(project, public)
    project.write("Dockerfile", _DOCKERFILE.format(id=""))
    result = project.inv(
        "build",
        "--tag",
        "v1",
        "--ssh",
        "default",
        "--verbose",
        HUB_BUILDER="buildkit",
        HUB_PROGRESS="plain",
        SSH_AUTH_SOCK=sock,
    )
    assert result.returncode == 0, result.stderr
    image = f"{stack.registry}/{project.repository}:v1"
    assert fingerprint in _file_in(client, image, "/listed")
    assert "hubtasks-test" in _file_in(client, image, "/listed")
    assert _file_in(client, image, "/removal").strip() == "refused"
    # The agent signed in the step (a sign request through the session): valid on the host.
    (tmp_path / "data.sig").write_text(_file_in(client, image, "/data.sig"))
    checked = subprocess.run(
        [SSH_KEYGEN, "-Y", "check-novalidate", "-n", "test", "-s", str(tmp_path / "data.sig")],
        input=_file_in(client, image, "/data"),
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0 and "Good" in checked.stdout, checked.stdout + checked.stderr
    still = subprocess.run(
        [SSH_ADD, "-l"], env={**os.environ, "SSH_AUTH_SOCK": sock}, capture_output=True, text=True
    )
    assert fingerprint in still.stdout  # the agent still holds the key
    _assert_nothing_leaked(result, sock, private)


def test_an_agent_given_by_id_and_socket_and_its_id_in_the_inputs_digest(
    project, client, stack, agent
):
    sock, fingerprint, private, _ = agent
    _with_ssh_tools(project)
    project.write("Dockerfile", _DOCKERFILE.format(id=",id=git"))
    result = project.inv(
        "build", "--tag", "v1", "--ssh", f"git={sock}", HUB_BUILDER="buildkit", SSH_AUTH_SOCK=""
    )
    assert result.returncode == 0, result.stderr
    image = client.images.get(f"{stack.registry}/{project.repository}:v1")
    assert fingerprint in _file_in(client, image.id, "/listed")
    inputs = image.attrs["Config"]["Labels"]["dev.hubtasks.inputs"]
    _assert_nothing_leaked(result, sock, private)
    assert sock not in str(image.attrs) and sock not in str(client.api.history(image.id))
    # The same agent under another path: the same inputs (ids, never sockets).
    other = Path(tempfile.mkdtemp(prefix="hub-ssh-")) / "link.sock"
    other.symlink_to(sock)
    try:
        again = project.inv("build", "--tag", "v2", "--ssh", f"git={other}", HUB_BUILDER="buildkit")
        assert again.returncode == 0, again.stderr
        second = client.images.get(f"{stack.registry}/{project.repository}:v2")
        assert second.attrs["Config"]["Labels"]["dev.hubtasks.inputs"] == inputs
    finally:
        shutil.rmtree(other.parent)


def test_a_build_that_needs_an_agent_given_none_fails_in_one_line(project, agent):
    _with_ssh_tools(project)
    project.write("Dockerfile", _DOCKERFILE.format(id=""))
    result = project.inv(  # --no-cache: a step built before with the agent would be reused
        "build", "--tag", "v1", "--no-cache", HUB_BUILDER="buildkit", SSH_AUTH_SOCK=agent[0]
    )
    # The mount is optional (no required=true): the step ran without an agent and failed.
    last = assert_clean_failure(result, project, mentions="Error connecting to agent")
    assert "asked for the SSH agent 'default': give it with --ssh default" in last
    assert agent[0] not in result.stdout + result.stderr, last
    project.write(
        "Dockerfile", "FROM busybox:local\nRUN --mount=type=ssh,id=git,required=true true\n"
    )
    result = project.inv("build", "--tag", "v1", "--no-cache", HUB_BUILDER="buildkit")
    last = assert_clean_failure(result, project, mentions="give it with --ssh git (HUB_SSH)")
    assert last.count("--ssh git") == 1, last  # said once, by the daemon's own error


def test_ssh_default_without_an_agent_is_one_line_before_building(project):
    project.write("Dockerfile", "FROM busybox:local\nRUN --mount=type=ssh true\n")
    result = project.inv(
        "build", "--tag", "v1", "--ssh", "default", HUB_BUILDER="buildkit", SSH_AUTH_SOCK=""
    )
    assert_clean_failure(result, project, mentions="--ssh default: SSH_AUTH_SOCK is not set")
    assert "#1" not in result.stderr  # nothing was built


def test_a_key_file_is_refused_with_ssh_add_named(project, agent):
    folder = Path(tempfile.mkdtemp(prefix="hub-ssh-"))
    key = folder / "id_ed25519"
    key.write_text(agent[2])
    try:
        result = project.inv("build", "--tag", "v1", "--ssh", f"git={key}", HUB_BUILDER="buildkit")
    finally:
        shutil.rmtree(folder)
    last = assert_clean_failure(result, project, mentions="is a file, not an SSH agent's socket")
    assert f"ssh-add {key}" in last
    assert "".join(agent[2].splitlines()[1:-1])[:40] not in result.stdout + result.stderr


def test_ssh_on_the_classic_builder_is_one_line(project, agent):
    result = project.inv(
        "build", "--tag", "v1", "--ssh", "default", HUB_BUILDER="classic", SSH_AUTH_SOCK=agent[0]
    )
    assert_clean_failure(result, project, mentions="--ssh needs the BuildKit builder")


def test_dry_run_shows_ssh_in_the_buildx_command(project):
    result = project.inv(
        "release", "--tag", "v1", "--dry-run", "--ssh", "default", HUB_BUILDER="auto"
    )
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if "docker buildx build" in line]
    assert "--ssh default" in command
