"""Runtime adapters: the runtime port (``domain/runtime.py``) over real engines.

Docker today: the synchronous SDK kept off the event loop. The workload model is pure data in
``domain/containers.py``; ``parsing`` turns the engine's JSON into it, and ``docker_runtime``
is the adapter that talks to the engine and translates its errors. Only ``wiring`` picks an
adapter (``CCTV_RUNTIME``); everything above it sees the port.
"""

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    INSTANCE_LABEL,
    LABEL_PREFIX,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    EventKind,
    Phase,
    PusherSpec,
    RuntimeEvent,
    Workload,
)
from orchestrator.runtime.docker_runtime import DockerRuntime

__all__ = [
    "CAMERA_LABEL",
    "GENERATION_LABEL",
    "INSTANCE_LABEL",
    "LABEL_PREFIX",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "DockerRuntime",
    "EventKind",
    "Phase",
    "PusherSpec",
    "RuntimeEvent",
    "Workload",
]
