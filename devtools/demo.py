"""A complete demo release, as a new user would do it, against a registry started here.

Starts a private dockerd and an htpasswd registry on 127.0.0.1, follows the README's quick start
in a temporary folder (`hubtasks init`, fill in .env, a Dockerfile), runs
`inv release --tag v1 --tag latest`, pulls the image back from the registry and runs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.stack import BASE_IMAGE, Stack

REPO_ROOT = Path(__file__).resolve().parents[1]


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def main() -> int:
    with Stack() as stack, tempfile.TemporaryDirectory(prefix="hubtasks-demo-") as tmp:
        project = Path(tmp)
        _say(f"registry {stack.registry} (user {stack.username}), dockerd {stack.daemon.host}")
        env = {**stack.env(), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        env["DOCKER_CONFIG"] = str(project / ".docker")
        _say("hubtasks init")
        hubtasks = str(Path(sys.executable).parent / "hubtasks")
        init = subprocess.run([hubtasks, "init"], cwd=project, check=False)
        if init.returncode != 0:
            return init.returncode
        shutil.copy(REPO_ROOT / "demo" / "Dockerfile", project / "Dockerfile")
        values = {
            "HUB_REGISTRY": stack.registry,
            "HUB_USERNAME": stack.username,
            "HUB_TOKEN": stack.password,
            "HUB_REPOSITORY": "demo",
            "HUB_BUILD_ARGS": f"BASE={BASE_IMAGE}",
        }
        lines = []  # what a person does in an editor: fill in a value, or uncomment one
        for line in (project / ".env").read_text().splitlines():
            key = line.removeprefix("# ").split("=", 1)[0]
            lines.append(f"{key}={values.pop(key)}" if key in values and "=" in line else line)
        (project / ".env").write_text("\n".join(lines) + "\n")
        _say(f"consumer project in {project}: .env filled in, Dockerfile from demo/")

        _say("inv release --tag v1 --tag latest")
        release = subprocess.run(
            [sys.executable, "-m", "invoke", "release", "--tag", "v1", "--tag", "latest"],
            cwd=project,
            env=env,
            check=False,
        )
        if release.returncode != 0:
            return release.returncode

        import docker

        client = docker.DockerClient(base_url=stack.daemon.host)
        name = f"{stack.registry}/{stack.username}/demo"
        for image in client.images.list(name=name):
            client.images.remove(image.id, force=True)
        _say(f"registry tags: {stack.registry_server.tags(f'{stack.username}/demo')}")
        auth = {"username": stack.username, "password": stack.password}
        client.images.pull(name, tag="v1", auth_config=auth)
        output = client.containers.run(f"{name}:v1", remove=True, network_mode="none")
        _say(f"pulled {name}:v1 back and ran it: {output.decode().strip()}")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
