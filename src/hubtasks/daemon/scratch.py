"""The empty image of a platform, as `docker load` reads it: what stands for `FROM scratch`
when the classic builder builds for another platform (`build.context.scratch_image`)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile


def scratch_archive(name: str, platform: str) -> bytes:
    """A `docker load` archive of the image `name`: no layers, a config naming `platform`."""
    os_name, arch, *variant = platform.split("/")
    config: dict[str, object] = {"architecture": arch, "os": os_name, "config": {}, "history": []}
    if variant:
        config["variant"] = variant[0]
    config["rootfs"] = {"type": "layers", "diff_ids": []}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": []}]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for member, raw in (
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return archive.getvalue()
