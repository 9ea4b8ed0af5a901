"""A camera's pusher as the state machine sees it, and the decisions taken from it. Pure.

States (docs/architecture.md, flows 1 and 2)::

    IDLE --first lease--> STARTING(generation, claim deadline) --container up--> RUNNING
    RUNNING --last lease gone--> DRAINING(deadline) --new lease--> RUNNING (no restart)
    DRAINING --deadline passed, still no lease--> STOPPING --container removed--> IDLE
    STARTING/RUNNING --start failed, container died--> FAILED(retry time) --due--> STARTING

The scripts make every transition; these predicates only say when one is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PusherState(StrEnum):
    IDLE = "IDLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    DRAINING = "DRAINING"
    STOPPING = "STOPPING"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class PusherView:
    """One camera's pusher metadata as stored (``stream:metadata:<camera_id>``)."""

    camera_id: str
    state: str
    generation: int
    container_id: str | None
    claim_deadline_ms: int | None
    drain_deadline_ms: int | None
    retry_at_ms: int | None
    attempts: int
    restarts: int
    last_error: str | None
    resume: str | None
    running_since_ms: int | None = None
    node: str | None = None  # where this generation's workload runs (a Swarm node)
    waiting: str | None = None  # why it does not run yet, in the runtime's words

    @classmethod
    def parse(cls, camera_id: str, meta: dict[str, str]) -> PusherView:
        def num(name: str) -> int | None:
            value = meta.get(name)
            return int(value) if value not in (None, "") else None

        return cls(
            camera_id=camera_id,
            state=meta.get("state", PusherState.IDLE),
            generation=num("generation") or 0,
            container_id=meta.get("container_id") or None,
            claim_deadline_ms=num("claim_deadline"),
            drain_deadline_ms=num("drain_deadline"),
            retry_at_ms=num("retry_at"),
            attempts=num("attempts") or 0,
            restarts=num("restarts") or 0,
            last_error=meta.get("last_error") or None,
            resume=meta.get("resume") or None,
            running_since_ms=num("running_since"),
            **placement(meta),
        )

    @property
    def phase(self) -> str:
        """The state that counts for the container: DRAINING keeps its resume state's."""
        if self.state == PusherState.DRAINING:
            return self.resume or PusherState.STARTING
        return self.state


# The metadata hash fields :func:`placement` reads.
PLACEMENT_FIELDS = ("generation", "placement_generation", "node", "waiting")


def placement(meta: dict[str, str]) -> dict[str, str | None]:
    """``node`` and ``waiting`` as recorded for the camera's current generation (None for an
    older generation's record)."""
    current = meta.get("placement_generation") == meta.get("generation", "")
    return {
        "node": (meta.get("node") or None) if current else None,
        "waiting": (meta.get("waiting") or None) if current else None,
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every active camera's metadata and the cameras that have live leases, read at once."""

    views: dict[str, PusherView]
    watched: dict[str, int]  # camera id -> live lease count
    now_ms: int


def due_for_stop(view: PusherView, live: int, now_ms: int) -> bool:
    """The drain grace is over (or a stopper died) and nobody watches."""
    if live > 0:
        return False
    if view.state == PusherState.DRAINING:
        return (view.drain_deadline_ms or 0) <= now_ms
    return view.state == PusherState.STOPPING and (view.claim_deadline_ms or 0) <= now_ms


def due_for_start(view: PusherView, live: int, now_ms: int) -> bool:
    """Viewers wait and no start is under way: idle, a failure's retry time reached, or a
    claim (or stop) whose owner died."""
    if live == 0:
        return False
    if view.state == PusherState.IDLE:
        return True
    if view.state == PusherState.FAILED:
        return (view.retry_at_ms or 0) <= now_ms
    if view.state in (PusherState.STARTING, PusherState.STOPPING):
        return (view.claim_deadline_ms or 0) <= now_ms
    return False
