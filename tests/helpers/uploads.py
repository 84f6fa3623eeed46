"""Images put into a registry over its HTTP API (Basic auth): a config blob with a chosen
`created`, one small layer, a schema 2 manifest, under the tags asked for. No daemon involved:
the dates and which tags share a digest are exactly what a test needs."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import urllib.parse
import urllib.request

from devtools.stack import Registry

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


class Uploader:
    """Puts images into a registry over its HTTP API (Basic auth)."""

    def __init__(self, registry: Registry):
        self.base = f"http://{registry.address}"
        raw = f"{registry.username}:{registry.password}".encode()
        self.auth = "Basic " + base64.b64encode(raw).decode()

    def _call(self, method: str, url: str, body: bytes | None = None, kind: str | None = None):
        request = urllib.request.Request(
            url if url.startswith("http") else self.base + url, data=body, method=method
        )
        request.add_header("Authorization", self.auth)
        if kind:
            request.add_header("Content-Type", kind)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response

    def blob(self, name: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = self._call("POST", f"/v2/{name}/blobs/uploads/").headers["Location"]
        joiner = "&" if "?" in location else "?"
        url = f"{location}{joiner}digest={urllib.parse.quote(digest)}"
        self._call("PUT", url, data, "application/octet-stream")
        return digest

    def image(self, name: str, tags: list[str], created: datetime.datetime) -> str:
        layer = f"layer of {tags[0]} {created.isoformat()}".encode()
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),  # nanoseconds, as Docker
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        }
        config_bytes = json.dumps(config).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": SCHEMA2,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": len(config_bytes),
                    "digest": self.blob(name, config_bytes),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer),
                        "digest": self.blob(name, layer),
                    }
                ],
            }
        ).encode()
        for tag in tags:
            self._call("PUT", f"/v2/{name}/manifests/{tag}", manifest, SCHEMA2)
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    def tag(self, name: str, tag: str, digest: str) -> None:
        """Point `tag` at the image manifest `digest` (a promote, a rollback)."""
        request = urllib.request.Request(f"{self.base}/v2/{name}/manifests/{digest}")
        request.add_header("Authorization", self.auth)
        request.add_header("Accept", SCHEMA2)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        self._call("PUT", f"/v2/{name}/manifests/{tag}", body, SCHEMA2)
