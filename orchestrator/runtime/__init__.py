"""Container runtime (Docker): the synchronous SDK kept off the event loop.

``spec`` holds the pure data (what a pusher container is, its labels, what the engine reports);
``docker_runtime`` is the adapter that talks to the engine and translates its errors.
"""

from orchestrator.runtime.docker_runtime import DockerRuntime
from orchestrator.runtime.spec import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    LABEL_PREFIX,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ContainerEvent,
    ContainerInfo,
    PusherSpec,
)

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
