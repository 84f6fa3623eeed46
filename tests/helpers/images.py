"""The daemon's side of an integration test: what a fresh CI runner has."""

from __future__ import annotations


def forget_everything(client, project) -> None:
    """What a fresh CI runner has of the repository: nothing (images and build cache)."""
    name = f"{project.stack.registry}/{project.repository}"
    for image in client.images.list(name=name):
        client.images.remove(image.id, force=True)
    client.images.prune()  # dangling layers of earlier builds: the classic build cache
    assert client.images.list(name=name) == []
