"""What a pusher workload is, whatever runs it: its spec, its labels, and what a runtime
reports about it (docs/architecture.md, "The runtime port").

Pure data: no I/O and no engine vocabulary. Each adapter turns its engine's answers into these
(the Docker adapter in ``runtime/parsing.py``). Labels live under one reserved prefix
(``cctv.orchestrator/``); the env (RTSP URL, WHIP bearer token) is secret and never appears in
a repr, a label or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from orchestrator.domain.ids import validate_camera_id
from orchestrator.errors import InvalidInput, OrchestratorError

LABEL_PREFIX = "cctv.orchestrator/"
MANAGED_BY_LABEL = f"{LABEL_PREFIX}managed-by"
CAMERA_LABEL = f"{LABEL_PREFIX}camera"
GENERATION_LABEL = f"{LABEL_PREFIX}generation"
INSTANCE_LABEL = f"{LABEL_PREFIX}instance"
MANAGED_BY = "cctv-orchestrator"
MANAGED_FILTER = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
DEFAULT_INSTANCE = "default"

INSTANCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_INSTANCE = re.compile(INSTANCE_PATTERN)
_MEMORY = re.compile(r"^([1-9][0-9]*)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_instance(value: str) -> str:
    """A deployment instance label: 1-63 letters, digits, '.', '_' or '-', not leading."""
    if not isinstance(value, str) or _INSTANCE.fullmatch(value) is None:
        raise InvalidInput(
            "instance must be 1-63 letters, digits, '.', '_' or '-'", field="instance"
        )
    return value


def parse_memory(text: str) -> int:
    """``256m`` (Docker's units, powers of 1024: b, k, m, g) -> bytes."""
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise InvalidInput("memory must look like 256m (b, k, m or g)", field="memory")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class PusherSpec:
    """Everything a runtime needs to run camera ``camera_id``'s pusher, in plain units.

    The runtime maps the camera to its workload's name (``whip-pusher-<camera_id>``).
    ``env`` is excluded from ``repr`` (it holds the camera credentials and the WHIP token).
    ``network`` names what the runtime attaches the pusher to (for Docker a network mode:
    ``bridge``, ``host``, ``none``, a network name, ``container:<name>``). ``extra_labels``
    may not use the reserved prefix.
    """

    camera_id: str
    generation: int
    image: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    instance: str = DEFAULT_INSTANCE
    network: str = "bridge"
    memory_bytes: int = 256 * 1024**2
    cpus: float = 1.0
    stop_grace_seconds: int = 10
    init: bool = True
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_camera_id(self.camera_id)
        validate_instance(self.instance)
        if isinstance(self.generation, bool) or self.generation < 1:
            raise InvalidInput("generation must be a positive integer", field="generation")
        if not self.image.strip():
            raise InvalidInput("image must not be empty", field="image")
        if not self.network.strip():
            raise InvalidInput("network must not be empty", field="network")
        if self.cpus <= 0:
            raise InvalidInput("cpus must be positive", field="cpus")
        for name, value in (
            ("memory_bytes", self.memory_bytes),
            ("stop_grace_seconds", self.stop_grace_seconds),
        ):
            if value < 1:
                raise InvalidInput(f"{name} must be positive", field=name)
        for key in self.env:
            if not _ENV_KEY.fullmatch(key):
                raise InvalidInput("env names must be shell identifiers", field="env")
        for key in self.extra_labels:
            if key.startswith(LABEL_PREFIX):
                raise InvalidInput(f"label prefix {LABEL_PREFIX} is reserved", field="labels")

    def labels(self) -> dict[str, str]:
        """The workload's labels: the extra ones plus the reserved four. Never env values."""
        return {
            **self.extra_labels,
            MANAGED_BY_LABEL: MANAGED_BY,
            CAMERA_LABEL: self.camera_id,
            GENERATION_LABEL: str(self.generation),
            INSTANCE_LABEL: self.instance,
        }


class Phase(StrEnum):
    """Where a workload is, in any runtime's terms.

    PENDING holds the name but neither runs nor has stopped (created, scheduled, between
    states): a start may still be in flight. EXITED stopped (``exit_code`` when known). LOST:
    the runtime lost it (a dead container, a task on a node that is down); it counts as
    stopped.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    LOST = "LOST"


@dataclass(frozen=True)
class Workload:
    """A pusher as its runtime reports it.

    ``ref`` is opaque (a container id, a service id): only the runtime that gave it reads it.
    ``managed`` is false for something that holds a pusher name without our labels; then
    ``camera_id`` and ``generation`` may be None and the orchestrator must leave it alone.
    ``instance`` is the deployment label (None on a pusher made before there was one: it
    counts as the default instance's). ``engine_state`` is the engine's own word, for people.
    ``started_at`` is None when unknown (listings may not report it). ``node`` names where it
    runs when the runtime spreads pushers over hosts (None on one engine). ``waiting`` is the
    runtime's reason, in its words, why a PENDING one does not run yet (no node has room).
    ``displaced``: the runtime took it away (its node died or was drained), not a crash of
    the pusher, so its restart need not wait out a backoff.
    """

    ref: str
    name: str
    camera_id: str | None
    generation: int | None
    phase: Phase
    managed: bool
    instance: str | None = None
    exit_code: int | None = None
    engine_state: str = ""
    started_at: datetime | None = None
    node: str | None = None
    waiting: str | None = None
    displaced: bool = False

    @property
    def running(self) -> bool:
        return self.phase is Phase.RUNNING

    @property
    def stopped(self) -> bool:
        """Exited or lost. A PENDING one is not: its start may still be in flight."""
        return self.phase in (Phase.EXITED, Phase.LOST)

    def owned_by(self, instance: str) -> bool:
        """Ours to adopt, fence and remove: managed, and of deployment ``instance``."""
        return self.managed and (self.instance or DEFAULT_INSTANCE) == instance


class EventKind(StrEnum):
    STARTED = "started"
    ENDED = "ended"  # stopped running (exit code when known)
    REMOVED = "removed"  # gone from the runtime
    RELIST = "relist"  # events may have been missed: list now (no workload)


@dataclass(frozen=True)
class RuntimeEvent:
    """A hint about one of this deployment's pushers, or the "re-list now" signal."""

    kind: EventKind
    ref: str = ""
    name: str = ""
    camera_id: str | None = None
    generation: int | None = None
    instance: str | None = None
    exit_code: int | None = None
    time: float = 0.0
    displaced: bool = False  # an ENDED pusher its runtime took away (node down, drained)

    def owned_by(self, instance: str) -> bool:
        return (self.instance or DEFAULT_INSTANCE) == instance


class ContainerConflict(OrchestratorError):
    """The runtime refused a second pusher of the camera: its name is held.

    ``existing`` is what holds the name, whoever owns it (None when it vanished before it
    could be read: try again); the runtime left it exactly as it was. The lifecycle decides
    (``pusher/placement.py``): adopt, clear and create again, or refuse.
    """

    code = "CONTAINER_CONFLICT"

    def __init__(self, message: str, *, existing: Workload | None) -> None:
        super().__init__(message)
        self.existing = existing
