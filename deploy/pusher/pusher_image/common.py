"""What both build steps share: the input paths, the image label, errors, progress lines and
``docker build`` of an in-memory context."""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

PUSHER_DIR = Path(__file__).resolve().parents[1]  # deploy/pusher
DOCKERFILE = PUSHER_DIR / "Dockerfile"
APT_PACKAGES = PUSHER_DIR / "apt-packages.txt"
REQUIREMENTS = PUSHER_DIR / "requirements.txt"
PROGRAM_DIR = PUSHER_DIR / "cctv_pusher"

IMAGE_LABEL = "cctv.pusher.image"  # "base" or "program"; the source of the image's hash
_TAIL_LINES = 40


class PusherImageError(RuntimeError):
    """The pusher image could not be built; the message says which step and why."""


def log(message: str) -> None:
    print(f"[pusher-image] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{step} ...")
    yield
    log(f"{step}: done in {time.monotonic() - started:.1f}s")


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def image_exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """One build-context member; ``data`` is None for a directory."""

    path: str
    mode: int
    data: bytes | None


def context_tar(dockerfile: str, entries: Sequence[Entry]) -> io.BytesIO:
    """An in-memory build context: the Dockerfile plus ``entries`` (mtimes 0, modes as given)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in [Entry("Dockerfile", 0o644, dockerfile.encode()), *entries]:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.mtime = entry.mode, 0
            if entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    buffer.seek(0)
    return buffer


def docker_build(
    client: Any, dockerfile: str, entries: Sequence[Entry], tag: str, labels: dict[str, str]
) -> None:
    """``docker build`` of ``dockerfile`` and ``entries``, never pulling; raises
    :class:`PusherImageError` with the build's last lines when it fails."""
    output: list[str] = []
    stream = client.api.build(
        fileobj=context_tar(dockerfile, entries),
        custom_context=True,
        tag=tag,
        pull=False,
        rm=True,
        forcerm=True,
        labels=labels,
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            output.append(str(chunk["stream"]))
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise PusherImageError(
                f"docker build of {tag} failed: {detail}\n{tail(''.join(output))}"
            )
    if not image_exists(client, tag):
        raise PusherImageError(f"docker build did not produce {tag}:\n{tail(''.join(output))}")
