"""Step 2, the program layer: ``cctv-pusher:<hash12>`` on top of the root filesystem image.

A classic ``docker build`` of ``FROM <base>`` followed by the Dockerfile's own program layer
(the lines after its ``FROM base``), so the layer has one source of truth. The tag hashes the
base tag, that text and every file of ``deploy/pusher/cctv_pusher/``. Takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pusher_image.common import (
    DOCKERFILE,
    IMAGE_LABEL,
    PROGRAM_DIR,
    PUSHER_DIR,
    Entry,
    PusherImageError,
    docker_build,
)

PROGRAM_REPO = "cctv-pusher"
PROGRAM_MARKER = "# --- program layer"


def program_layer(dockerfile_text: str) -> str:
    """The Dockerfile lines after the ``FROM base`` that follows the program-layer marker."""
    lines = dockerfile_text.splitlines()
    marker = next((i for i, line in enumerate(lines) if line.startswith(PROGRAM_MARKER)), None)
    if marker is None:
        raise PusherImageError(f"{DOCKERFILE}: no line starting {PROGRAM_MARKER!r}")
    for index in range(marker + 1, len(lines)):
        if re.fullmatch(r"FROM\s+base", lines[index].strip(), re.IGNORECASE):
            return "\n".join(lines[index + 1 :]) + "\n"
    raise PusherImageError(f"{DOCKERFILE}: no `FROM base` line after {PROGRAM_MARKER!r}")


def program_entries() -> list[Entry]:
    """``cctv_pusher/`` as context entries, ``__pycache__`` skipped.

    Modes are normalised to 0755/0644 like git does: the hash then does not depend on the
    checkout's umask, and uid 65534 in the image can always read the files.
    """
    if not PROGRAM_DIR.is_dir():
        raise PusherImageError(f"{PROGRAM_DIR} is missing: the program layer copies it")
    entries = [Entry(PROGRAM_DIR.name, 0o755, None)]
    for root, dirs, files in os.walk(PROGRAM_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = Path(root)
        for name in dirs:
            entries.append(Entry((base / name).relative_to(PUSHER_DIR).as_posix(), 0o755, None))
        for name in sorted(files):
            path = base / name
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            rel = path.relative_to(PUSHER_DIR).as_posix()
            entries.append(Entry(rel, mode, path.read_bytes()))
    return entries


def _program_dockerfile(base: str) -> str:
    return f"FROM {base}\n{program_layer(DOCKERFILE.read_text())}"


def program_tag(base: str, entries: Sequence[Entry] | None = None) -> str:
    """``cctv-pusher:<hash12>`` over the base tag, the program layer and ``cctv_pusher/``."""
    digest = hashlib.sha256(_program_dockerfile(base).encode())
    for entry in entries if entries is not None else program_entries():
        digest.update(f"\0{entry.path}\0{entry.mode:o}\0".encode())
        if entry.data is not None:
            digest.update(hashlib.sha256(entry.data).digest())
    return f"{PROGRAM_REPO}:{digest.hexdigest()[:12]}"


def build_program_image(client: Any, base: str, tag: str, entries: Sequence[Entry]) -> None:
    """``docker build`` the program layer on ``base``; raises with the build's last lines."""
    docker_build(client, _program_dockerfile(base), entries, tag, {IMAGE_LABEL: "program"})
