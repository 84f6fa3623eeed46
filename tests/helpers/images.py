"""The daemon's side of an integration test: what a fresh CI runner has."""

from __future__ import annotations


def forget_everything(client, project) -> None:
    """What a fresh CI runner has of the repository: nothing (images and build cache)."""
    name = f"{project.stack.registry}/{project.repository}"
    for image in client.images.list(name=name):
        client.images.remove(image.id, force=True)
    client.images.prune()  # dangling layers of earlier builds: the classic build cache
    assert client.images.list(name=name) == []


def registry_only_image(client, stack, path: str, dockerfile: str) -> str:
    """An image only the registry holds: built from `dockerfile`, pushed to `path` (`:1`) in
    the stack's registry with its login, then removed from the daemon. Its reference."""
    import io

    import docker
    import pytest

    name = f"{stack.registry}/{path}"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{name}:1")
    auth = {"username": stack.username, "password": stack.password}
    client.images.push(name, "1", auth_config=auth)
    client.images.remove(f"{name}:1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image.id)
    return f"{name}:1"
