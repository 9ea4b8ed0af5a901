"""What a pusher container is: its spec, its labels, and what a runtime reports about it.

Pure data: no I/O. Labels live under one reserved prefix (``cctv.orchestrator/``); the env
(RTSP URL, WHIP bearer token) is secret and never appears in a repr, a label or a log line.
The Docker adapter turns the engine's JSON into these (``runtime/parsing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.domain.ids import container_name, validate_camera_id
from orchestrator.errors import InvalidInput, OrchestratorError

LABEL_PREFIX = "cctv.orchestrator/"
MANAGED_BY_LABEL = f"{LABEL_PREFIX}managed-by"
CAMERA_LABEL = f"{LABEL_PREFIX}camera"
GENERATION_LABEL = f"{LABEL_PREFIX}generation"
MANAGED_BY = "cctv-orchestrator"
MANAGED_FILTER = f"{MANAGED_BY_LABEL}={MANAGED_BY}"

EVENT_ACTIONS = ("start", "die", "destroy")

_MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PusherSpec:
    """Everything needed to run ``whip-pusher-<camera_id>``.

    ``env`` is excluded from ``repr`` (it holds the camera credentials and the WHIP token).
    ``network`` is a Docker network mode: ``bridge``, ``host``, ``none``, a network name, or
    ``container:<name>``. ``extra_labels`` may not use the reserved prefix.
    """

    camera_id: str
    generation: int
    image: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    network: str = "bridge"
    mem_limit: str = "256m"
    nano_cpus: int = 1_000_000_000
    stop_timeout_seconds: int = 10
    log_max_size: str = "10m"
    log_max_file: int = 3
    init: bool = True
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_camera_id(self.camera_id)
        if isinstance(self.generation, bool) or self.generation < 1:
            raise InvalidInput("generation must be a positive integer", field="generation")
        if not self.image.strip():
            raise InvalidInput("image must not be empty", field="image")
        if not self.network.strip():
            raise InvalidInput("network must not be empty", field="network")
        if not _MEMORY.fullmatch(self.mem_limit):
            raise InvalidInput("mem_limit must look like 256m", field="mem_limit")
        if not _MEMORY.fullmatch(self.log_max_size):
            raise InvalidInput("log_max_size must look like 10m", field="log_max_size")
        for name, value in (
            ("nano_cpus", self.nano_cpus),
            ("stop_timeout_seconds", self.stop_timeout_seconds),
            ("log_max_file", self.log_max_file),
        ):
            if value < 1:
                raise InvalidInput(f"{name} must be positive", field=name)
        for key in self.env:
            if not _ENV_KEY.fullmatch(key):
                raise InvalidInput("env names must be shell identifiers", field="env")
        for key in self.extra_labels:
            if key.startswith(LABEL_PREFIX):
                raise InvalidInput(f"label prefix {LABEL_PREFIX} is reserved", field="labels")

    @property
    def name(self) -> str:
        return container_name(self.camera_id)

    def labels(self) -> dict[str, str]:
        """The container's labels: the extra ones plus the reserved three. Never env values."""
        return {
            **self.extra_labels,
            MANAGED_BY_LABEL: MANAGED_BY,
            CAMERA_LABEL: self.camera_id,
            GENERATION_LABEL: str(self.generation),
        }


STOPPED_STATES = ("exited", "dead")


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine reports it.

    ``managed`` is false for a container that holds a pusher name without our labels; then
    ``camera_id`` and ``generation`` may be None and the orchestrator must leave it alone.
    ``exit_code`` is set only once the container has stopped (``exited``/``dead``).
    ``started_at`` is None when never started, and in :meth:`DockerRuntime.list_managed`
    results (the list endpoint does not report it; use ``get`` for details).
    """

    id: str
    name: str
    camera_id: str | None
    generation: int | None
    status: str
    exit_code: int | None
    started_at: datetime | None
    managed: bool

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def stopped(self) -> bool:
        """Exited or dead. A ``created`` container is not: its start may still be in flight."""
        return self.status in STOPPED_STATES


@dataclass(frozen=True)
class ContainerEvent:
    """One ``start``/``die``/``destroy`` of a managed container (a hint, not truth)."""

    action: str
    container_id: str
    name: str
    camera_id: str | None
    generation: int | None
    exit_code: int | None
    time: float


class ContainerConflict(OrchestratorError):
    """The engine refused a second ``whip-pusher-<camera_id>`` (HTTP 409).

    ``existing`` is the container that holds the name (None when it vanished before it could
    be read: try again). The caller adopts it (if it is managed and of an acceptable
    generation) and never replaces it.
    """

    code = "CONTAINER_CONFLICT"

    def __init__(self, message: str, *, existing: ContainerInfo | None) -> None:
        super().__init__(message)
        self.existing = existing
