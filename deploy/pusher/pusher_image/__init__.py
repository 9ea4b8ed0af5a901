"""The WHIP pusher image of ``deploy/pusher/``, built on this machine without any registry.

``deploy/pusher/Dockerfile`` starts ``FROM debian:bookworm-slim``, which needs a registry. This
package builds the same image from local means only, in two content-addressed steps so that an
edit rebuilds only what it touches:

1. :mod:`pusher_image.rootfs`, the root filesystem: ``cctv-pusher-base:<hash12>``, a Debian
   root filesystem with the venv, made by ``mmdebstrap`` and ``docker import``-ed.
2. :mod:`pusher_image.program`, the program layer: ``cctv-pusher:<hash12>``, the Dockerfile's
   program-layer lines built ``FROM`` that base with ``cctv_pusher/`` as the context.

Existing tags are reused and old tags are left alone; :func:`remove_stale` (or ``python -m
pusher_image --remove-stale``) drops the ones that are no longer current.

Run it with ``PYTHONPATH=deploy/pusher python -m pusher_image`` (what ``make pusher-image``
does): it prints the tag.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from pusher_image.common import REQUIREMENTS, PusherImageError, image_exists, log, timed
from pusher_image.program import (
    PROGRAM_REPO,
    build_program_image,
    program_entries,
    program_tag,
)
from pusher_image.rootfs import BASE_REPO, build_rootfs_image, rootfs_tag

__all__ = [
    "BASE_REPO",
    "PROGRAM_REPO",
    "REQUIREMENTS",
    "PusherImageError",
    "ensure_pusher_image",
    "remove_stale",
]

LOCK_PATH = Path(tempfile.gettempdir()) / "cctv-pusher-image.lock"


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder per machine: a second process waits, then finds the tags already built."""
    with LOCK_PATH.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another process is building (lock {LOCK_PATH}); waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_pusher_image(client: docker.DockerClient | None = None) -> str:
    """Return ``cctv-pusher:<hash12>``, building the root filesystem and/or the program image
    if missing."""
    client = client or docker.from_env(timeout=120)
    base = rootfs_tag()
    entries = program_entries()
    tag = program_tag(base, entries)
    if image_exists(client, tag):
        return tag
    with _build_lock():
        if not image_exists(client, base):
            with timed(f"base image {base}"):
                build_rootfs_image(client, base)
        if not image_exists(client, tag):
            with timed(f"program image {tag}"):
                build_program_image(client, base, tag, entries)
    return tag


def remove_stale(client: docker.DockerClient) -> list[str]:
    """Untag every ``cctv-pusher:*`` / ``cctv-pusher-base:*`` but the current two.

    Nothing calls this automatically: old tags are a cache (switching branches back reuses
    them). Program tags go first so that their bases are no longer in use; a tag that a
    container still uses stays and is reported on stderr. Returns the removed tags.
    """
    base = rootfs_tag()
    current = {base, program_tag(base)}
    removed: list[str] = []
    for repository in (PROGRAM_REPO, BASE_REPO):
        for image in client.images.list(name=repository):
            for tag in image.tags:
                if tag.partition(":")[0] != repository or tag in current:
                    continue
                try:
                    client.images.remove(tag)
                except docker.errors.APIError as exc:
                    log(f"kept {tag}: {exc}")
                    continue
                removed.append(tag)
    return removed
