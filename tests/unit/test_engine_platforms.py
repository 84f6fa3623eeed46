"""`Engine` building for a platform other than the daemon's own, against a small fake Docker
daemon on 127.0.0.1: a platform of another OS is refused before anything is sent, a load of
the empty `FROM scratch` image that the daemon refuses is an error naming the platform, and a
base image held only for another platform stops that platform's build before it starts.

The fake answers what docker-py asks (Engine API v1.41): `GET /version` (with the daemon's
`Os`/`Arch`), `GET /images/{name}/json`, `POST /images/load`, `POST /images/create` (a pull)
and `POST /build`, each stream a chunked 200 of JSON lines as dockerd 20.10 sends them.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

import pytest

from hubtasks.build.context import BuildContext
from hubtasks.daemon.engine import Engine
from hubtasks.errors import BuildError, ConfigError, DaemonError

from .httpfakes import serving

IMAGE_ID = "sha256:" + "cd" * 32


class FakeDaemon(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, lines: list[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = json.dumps(line).encode() + b"\r\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _read_body(self) -> None:
        """Drain the request body: a build context comes chunked, a load with a length."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if size == 0:
                    return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        if path == "/version":
            self._reply(200, {"ApiVersion": "1.41", "Os": "linux", "Arch": "amd64"})
            return
        name = path.removeprefix("/v1.41/images/").removesuffix("/json")
        image = self.server.images.get(name)
        if image is None:
            self._reply(404, {"message": f"No such image: {name}"})
        else:
            self._reply(200, {"Id": IMAGE_ID, **image})

    def do_POST(self):
        self._read_body()
        path = unquote(urlsplit(self.path).path)
        self.server.posts.append(path.removeprefix("/v1.41"))
        if path.endswith("/images/load"):
            self._stream(self.server.load)
        elif path.endswith("/images/create"):
            message = "pull access denied for busybox, repository does not exist"
            self._reply(404, {"message": message})
        else:
            step = {"stream": "Step 1/1 : FROM busybox:local\n"}
            self._stream([step, {"aux": {"ID": IMAGE_ID}}, {"stream": "Successfully built cd\n"}])


@pytest.fixture
def daemon():
    with serving(FakeDaemon) as httpd:
        httpd.images, httpd.posts = {}, []
        httpd.load = [{"stream": "Loaded image: hubtasks-scratch:linux-arm64\n"}]
        yield httpd


def _engine(daemon) -> Engine:
    return Engine({"DOCKER_HOST": f"tcp://127.0.0.1:{daemon.server_address[1]}"})


def _context(tmp_path, dockerfile: str, scratch: str | None = None) -> BuildContext:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return BuildContext(
        root=tmp_path, paths=(), dockerfile=tmp_path / "Dockerfile", scratch=scratch
    )


def _build(daemon, context: BuildContext, platform: str, output: list[str]) -> str:
    return _engine(daemon).build(
        context=context, ref=None, build_args={}, on_output=output.append, platform=platform
    )


def test_platforms_of_the_daemons_own_os_pass_the_check(daemon):
    _engine(daemon).check_platforms(("linux/amd64", "linux/arm64", "linux/arm/v7"))


def test_a_platform_of_another_os_is_refused_naming_the_daemons_os(daemon):
    engine = _engine(daemon)
    with pytest.raises(ConfigError) as caught:
        engine.check_platforms(("linux/amd64", "windows/amd64", "darwin/arm64"))
    assert str(caught.value) == (
        f"the Docker daemon at {engine.host} runs linux; it cannot build windows/amd64, "
        "darwin/arm64: leave them out of --platform (HUB_PLATFORMS)"
    )
    assert daemon.posts == []


def test_a_build_for_another_os_is_refused_before_anything_is_sent(daemon, tmp_path):
    context = _context(tmp_path, "FROM scratch\n", scratch="hubtasks-scratch:windows-amd64")
    with pytest.raises(ConfigError, match="runs linux; it cannot build windows/amd64"):
        _build(daemon, context, "windows/amd64", [])
    assert daemon.posts == []


def test_a_scratch_image_the_daemon_will_not_load_is_an_error_naming_the_platform(daemon):
    daemon.load = [{"error": "cannot load windows image on linux"}]
    engine = _engine(daemon)
    with pytest.raises(DaemonError) as caught:
        engine.ensure_scratch("hubtasks-scratch:windows-amd64", "windows/amd64")
    assert str(caught.value) == (
        f"the Docker daemon at {engine.host} cannot load an image for windows/amd64: "
        "cannot load windows image on linux"
    )
    assert daemon.posts == ["/images/load"]


def test_a_scratch_image_is_loaded_once(daemon):
    engine = _engine(daemon)
    engine.ensure_scratch("hubtasks-scratch:linux-arm64", "linux/arm64")
    daemon.images["hubtasks-scratch:linux-arm64"] = {"Os": "linux", "Architecture": "arm64"}
    engine.ensure_scratch("hubtasks-scratch:linux-arm64", "linux/arm64")
    assert daemon.posts == ["/images/load"]


def test_a_base_image_held_only_for_another_platform_stops_the_build(daemon, tmp_path):
    daemon.images["busybox:local"] = {"Os": "linux", "Architecture": "amd64"}
    context = _context(tmp_path, "FROM busybox:local\nRUN true\n")
    output: list[str] = []
    with pytest.raises(BuildError) as caught:
        _build(daemon, context, "linux/arm64", output)
    assert str(caught.value) == (
        "the base image busybox:local has no linux/arm64 image here: the daemon holds it for "
        "linux/amd64 only and could not pull it for linux/arm64 (the registry has no such "
        "image); push a linux/arm64 version of busybox:local, or leave linux/arm64 out of "
        "--platform (HUB_PLATFORMS)"
    )
    assert daemon.posts == ["/images/create"]  # the pull; no build
    assert output == []


@pytest.mark.parametrize(
    ("platform", "held"),
    [("linux/amd64", "linux/amd64"), ("linux/arm64", "linux/arm64/v8")],
)
def test_a_local_base_of_the_platform_asked_for_is_built_from(daemon, tmp_path, platform, held):
    os_name, arch, variant = held.split("/") + [""] * (3 - len(held.split("/")))
    daemon.images["busybox:local"] = {"Os": os_name, "Architecture": arch, "Variant": variant}
    context = _context(tmp_path, "FROM busybox:local\nRUN true\n")
    output: list[str] = []
    assert _build(daemon, context, platform, output) == IMAGE_ID
    assert output[0] == (
        f"note: could not pull busybox:local for {platform} (the registry has no such image); "
        "using the local one\n"
    )
    assert daemon.posts == ["/images/create", "/build"]


def test_a_base_image_nowhere_is_not_called_the_local_one(daemon, tmp_path):
    context = _context(tmp_path, "FROM busybox:gone\nRUN true\n")
    output: list[str] = []
    assert _build(daemon, context, "linux/amd64", output) == IMAGE_ID
    assert output[0] == (
        "note: could not pull busybox:gone for linux/amd64 (the registry has no such image), "
        "and the daemon has no local copy: the build will look for it itself\n"
    )
