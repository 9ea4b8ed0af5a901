"""Container runtime (Docker): the synchronous SDK kept off the event loop.

The container model is pure data in ``domain/containers.py``; ``parsing`` turns the engine's
JSON into it, and ``docker_runtime`` is the adapter that talks to the engine and translates
its errors.
"""

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    LABEL_PREFIX,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ContainerEvent,
    ContainerInfo,
    PusherSpec,
)
from orchestrator.runtime.docker_runtime import DockerRuntime

__all__ = [
    "CAMERA_LABEL",
    "GENERATION_LABEL",
    "LABEL_PREFIX",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "ContainerEvent",
    "ContainerInfo",
    "DockerRuntime",
    "PusherSpec",
]
