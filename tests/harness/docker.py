"""The real Docker engine as the tests see it: one connection, and the listings they check.

Listings are single low-level requests (no per-container inspect that could race a removal).
"""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any

import docker
import docker.errors
import pytest

from orchestrator.runtime import CAMERA_LABEL, GENERATION_LABEL, MANAGED_BY, MANAGED_BY_LABEL


def engine(timeout: int = 30) -> Any:
    """A client of the engine that answers a ping; a test failure (never a skip) otherwise."""
    client: Any = None
    reason = ""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        reason = f"Docker engine at {host} is not reachable ({exc})"
    if reason:
        if client is not None:
            client.close()
        with warnings.catch_warnings():  # the SDK leaves its failed socket to the collector
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.fail(f"{reason}; start one with `bash scripts/ensure-docker.sh`", pytrace=False)
    return client


def pusher_containers(
    docker_api: Any, camera_id: str | None = None, *, running: bool = False
) -> list[dict[str, Any]]:
    """The camera's containers (by its camera label), or every managed one without
    ``camera_id``; in any state, or only running ones."""
    label = f"{CAMERA_LABEL}={camera_id}" if camera_id else f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    if running:
        found = docker_api.api.containers(filters={"label": label, "status": "running"})
    else:
        found = docker_api.api.containers(all=True, filters={"label": label})
    return list(found)


def container_env(docker_api: Any, container_id: str) -> dict[str, str]:
    env = docker_api.api.inspect_container(container_id)["Config"]["Env"]
    return dict(item.split("=", 1) for item in env)


def start_orphan(docker_api: Any, image: str, camera_id: str, generation: int) -> Any | None:
    """A container started by hand with the orchestrator's labels (no network): an orphan the
    service did not start. None when a running service's reconcile pass removed it between
    its create and its start (seen on a busy machine): the orphan was found and handled."""
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        CAMERA_LABEL: camera_id,
        GENERATION_LABEL: str(generation),
    }
    try:
        return docker_api.containers.run(
            image, name=f"whip-pusher-{camera_id}", detach=True, network_mode="none", labels=labels
        )
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "removal" in str(exc):
            return None
        raise
