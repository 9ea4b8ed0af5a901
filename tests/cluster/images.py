"""Getting images into the cluster's nodes without a registry.

The nodes have no route out and there is no registry, so an image goes ``docker save`` on
the host's engine (read only: nothing there is created or removed) into a tar under the
cluster's data directory, then ``docker load`` into each node. The image ID is checked on
every node afterwards, and a node that already holds that ID is skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tests.cluster.system import ClusterError


@dataclass(frozen=True)
class SavedImage:
    """One image saved from the host engine: its tag, its ID and the tar holding it."""

    tag: str
    image_id: str
    tar: Path


def save_images(tags: list[str], directory: Path) -> list[SavedImage]:
    """``docker save`` every tag from the host engine (``DOCKER_HOST`` or its socket)."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    host = docker.from_env(timeout=300)
    try:
        for tag in tags:
            try:
                image_id = host.images.get(tag).id
            except docker.errors.ImageNotFound as exc:
                raise ClusterError(
                    f"image {tag} is not on the host engine: build it first"
                ) from exc
            tar = directory / f"{hashlib.sha256(tag.encode()).hexdigest()[:16]}.tar"
            with tar.open("wb") as out:
                for chunk in host.api.get_image(tag):
                    out.write(chunk)
            saved.append(SavedImage(tag, image_id, tar))
    finally:
        host.close()
    return saved


def image_id(client: Any, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def load_into(client: Any, node: str, images: list[SavedImage]) -> None:
    """``docker load`` each image into one node, unless the node has that ID already."""
    for image in images:
        if image_id(client, image.tag) == image.image_id:
            continue
        with image.tar.open("rb") as data:
            client.images.load(data)
        found = image_id(client, image.tag)
        if found != image.image_id:
            raise ClusterError(
                f"after `docker load` on {node}, {image.tag} is {found}, not {image.image_id}"
            )
