"""`inv promote` against the real registry, with no Docker daemon at all (DOCKER_HOST names a
socket that does not exist): tags copied registry-side within a repository, blobs mounted
across repositories, refusals and the dry run. What the registry ends up holding is read
through its own API (`stack.registry_server`), not through hubtasks; which requests hubtasks
made is recorded by a small HTTP proxy in front of the registry."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import assert_clean_failure

NO_DAEMON = "unix:///nonexistent.sock"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class _Forward(BaseHTTPRequestHandler):
    """Forwards each request to the registry as it came (Host included, so the registry's
    `Location`s name the proxy) and records method, path and status."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        with self.server.lock:
            self.server.seen.append((self.command, self.path, response.status))
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


@pytest.fixture
def recorder(stack):
    """The registry behind a recording proxy: `.address` to use, `.seen` requests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
    server.target_port = stack.registry_server.port
    server.seen, server.lock = [], threading.Lock()
    server.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _release(project, tag: str, greeting: str = "hello") -> str:
    """Publish `tag` with the daemon (a release), return its digest."""
    result = project.inv("release", "--tag", tag, "--build-arg", f"GREETING={greeting}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().rsplit("@", 1)[1]


def _promote(project, recorder, *args: str):
    return project.inv("promote", *args, HUB_REGISTRY=recorder.address, DOCKER_HOST=NO_DAEMON)


def _probes(recorder) -> list[tuple[str, str, int]]:
    """The push-permission check (as a release makes it, started ahead): an upload opened
    without a mount and cancelled, nothing stored."""
    return [
        (method, path, status)
        for method, path, status in recorder.seen
        if (method == "POST" and path.endswith("/blobs/uploads/"))
        or (method == "DELETE" and "/blobs/uploads/" in path)
    ]


def _writes(recorder) -> list[tuple[str, str, int]]:
    """Requests that store something (the push-permission check aside)."""
    probes = _probes(recorder)
    return [
        seen
        for seen in recorder.seen
        if seen[0] in ("POST", "PUT", "PATCH", "DELETE") and seen not in probes
    ]


def _blobs(stack, repository: str, digest: str) -> list[str]:
    path = f"/v2/{repository}/manifests/{digest}"
    with stack.registry_server.request(path, accept=MANIFEST_V2) as response:
        manifest = json.load(response)
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def _has_blob(stack, repository: str, digest: str) -> bool:
    try:
        with stack.registry_server.request(f"/v2/{repository}/blobs/{digest}", method="HEAD"):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def test_promote_within_the_repository_needs_no_daemon_and_moves_no_blob(project, stack, recorder):
    rc = _release(project, "v1.2.3-rc.1")
    result = _promote(project, recorder, "--source", "v1.2.3-rc.1", "--tag", "v1.2.3", "--semver")
    assert result.returncode == 0, result.stderr
    tags = ["v1.2.3", "v1.2", "v1", "latest"]
    assert result.stdout.split() == [
        f"{recorder.address}/{project.repository}:{tag}@{rc}" for tag in tags
    ]
    for tag in tags:
        assert stack.registry_server.manifest_digest(project.repository, tag) == rc
    writes = _writes(recorder)
    assert [(method, status) for method, _, status in writes] == [("PUT", 201)] * 4
    opened = [seen for seen in _probes(recorder) if seen[0] == "POST"]
    # The push check: its own challenge (a 401) or not, then the upload opened; before writes.
    assert [status for _, _, status in opened][-1:] == [202] and len(opened) <= 2
    assert recorder.seen.index(opened[-1]) < recorder.seen.index(writes[0])
    assert all("/manifests/" in path for _, path, _ in writes)  # no blob upload, no mount
    assert "daemon" not in result.stderr.lower()

    # Again: every tag unchanged, nothing written.
    recorder.seen.clear()
    again = _promote(project, recorder, "--source", "v1.2.3-rc.1", "--tag", "v1.2.3", "--semver")
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    assert _writes(recorder) == []


def test_promote_from_another_repository_mounts_the_blobs(project, stack, recorder):
    rc = _release(project, "v1.0.0-rc.1")
    source_blobs = _blobs(stack, project.repository, rc)
    target = f"{project.repository}-prod"
    result = _promote(
        project,
        recorder,
        "--source",
        f"{project.repository}:v1.0.0-rc.1",
        "--repository",
        target,
        "--tag",
        "v1.0.0",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["digest"] == rc
    assert [(t["tag"], t["action"], t["digest"]) for t in document["tags"]] == [
        ("v1.0.0", "create", rc)
    ]
    assert stack.registry_server.manifest_digest(target, "v1.0.0") == rc
    assert _blobs(stack, target, rc) == source_blobs
    assert all(_has_blob(stack, target, blob) for blob in source_blobs)
    # Every write is a mount the registry made (201) or a manifest PUT: no byte uploaded.
    mounts = [seen for seen in _writes(recorder) if seen[0] == "POST"]
    assert len(mounts) == len(source_blobs)
    for method, path, status in _writes(recorder):
        mounted = method == "POST" and "mount=" in path and status == 201
        assert mounted or (method == "PUT" and "/manifests/" in path), (method, path, status)
    assert f"{len(source_blobs)} mounted" in result.stderr


def test_a_source_that_cannot_be_read_fails_with_one_line(project, recorder):
    # Another registry is copied from, not refused (tests/integration/test_destinations.py);
    # one nobody can reach (no network here) is one line naming it, before any write.
    result = _promote(project, recorder, "--source", "registry.invalid/team/app:v1", "--tag", "v1")
    assert_clean_failure(result, project, mentions="registry.invalid")
    missing = _promote(project, recorder, "--source", "v0.0.1", "--tag", "v1")
    assert_clean_failure(missing, project, mentions="is not in the registry")
    assert missing.returncode == 1  # the registry's state, not a setting
    assert recorder.seen and _writes(recorder) == []


def test_a_version_tag_with_other_content_is_refused_and_the_dry_run_says_so(
    project, stack, recorder
):
    final = _release(project, "v2.0.0", greeting="final")
    rc = _release(project, "v2.0.0-rc.1", greeting="candidate")
    assert final != rc
    runs = {
        dry: _promote(
            project,
            recorder,
            "--source",
            "v2.0.0-rc.1",
            "--tag",
            "v2.0.0",
            *(["--dry-run"] if dry else []),
        )
        for dry in (True, False)
    }
    lines = {
        dry: assert_clean_failure(run, project, mentions="immutable") for dry, run in runs.items()
    }
    assert lines[True] == lines[False]
    assert lines[True].startswith("hubtasks: refusing to promote, nothing was pushed:")
    assert runs[True].returncode == runs[False].returncode == 1
    assert stack.registry_server.manifest_digest(project.repository, "v2.0.0") == final
    assert _writes(recorder) == []

    # The dry run of an allowed promotion: the plan and the equivalent commands, no writes.
    dry = _promote(project, recorder, "--source", "v2.0.0-rc.1", "--tag", "edge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "edge" in dry.stdout and "create" in dry.stdout
    assert (
        f"docker buildx imagetools create --tag {recorder.address}/{project.repository}:edge"
        in (dry.stdout)
    )
    assert "edge" not in project.tags()
    assert _writes(recorder) == []


def _put_index(stack, repository: str, tag: str, child: str) -> str:
    """PUT an OCI index over the manifest `child` under `tag`, through the registry API."""
    with stack.registry_server.request(
        f"/v2/{repository}/manifests/{child}", accept=MANIFEST_V2
    ) as response:
        size = len(response.read())
    platform = {"os": "linux", "architecture": "amd64"}
    entry = {"mediaType": MANIFEST_V2, "digest": child, "size": size, "platform": platform}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode()
    request = urllib.request.Request(
        f"http://{stack.registry}/v2/{repository}/manifests/{tag}", data=body, method="PUT"
    )
    login = base64.b64encode(f"{stack.username}:{stack.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {login}")
    request.add_header("Content-Type", OCI_INDEX)
    urllib.request.urlopen(request, timeout=10).close()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_an_index_is_promoted_with_its_child_manifest(project, stack, recorder):
    child = _release(project, "v3.0.0-rc.1")
    index = _put_index(stack, project.repository, "v3.0.0-rc.1-index", child)
    target = f"{project.repository}-multi"
    args = ("--source", f"{project.repository}:v3.0.0-rc.1-index", "--repository", target)
    result = _promote(project, recorder, *args, "--tag", "v3.0.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{recorder.address}/{target}:v3.0.0@{index}"]
    assert stack.registry_server.manifest_digest(target, "v3.0.0") == index
    assert stack.registry_server.manifest_digest(target, child) == child
    assert all(_has_blob(stack, target, blob) for blob in _blobs(stack, target, child))

    recorder.seen.clear()  # again: unchanged, decided by the index digest; nothing written
    again = _promote(project, recorder, *args, "--tag", "v3.0.0")
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout and "unchanged" in again.stderr
    assert _writes(recorder) == []


@pytest.mark.parametrize("status", [401, 403])
def test_promote_into_a_repository_the_token_may_not_push_to(project, stack, status):
    """The target repository refuses uploads (a token that may read the source but not push
    to the target): the push-permission line, asked before any mount or manifest PUT."""
    from devtools.httpfault import HttpFaultProxy, Rule

    rc = _release(project, "v3.0.0-rc.1")
    target = f"{project.repository}-locked"
    with HttpFaultProxy(stack.registry_server.port) as proxy:
        proxy.add(
            Rule(method="POST", path=f"^/v2/{target}/blobs/uploads/", status=status, times=None)
        )
        result = project.inv(
            "promote",
            "--source",
            f"{project.repository}:v3.0.0-rc.1",
            "--repository",
            target,
            "--tag",
            "v3.0.0",
            HUB_REGISTRY=proxy.address,
            DOCKER_HOST=NO_DAEMON,
        )
        writes = proxy.count("PUT") + proxy.count("POST", "mount=")
        locked = f"{proxy.address}/{target}"
    last = assert_clean_failure(result, project, mentions=f"may not push to {locked}")
    assert "may read" not in last and "[retry]" not in result.stderr
    assert result.returncode == 1 and result.stdout == ""
    assert writes == 0  # refused before the first mount or manifest PUT
    assert stack.registry_server.tags(target) == []
    assert stack.registry_server.manifest_digest(project.repository, "v3.0.0-rc.1") == rc
