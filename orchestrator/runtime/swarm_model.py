"""Swarm's vocabulary as the runtime-neutral workload model: service names, the task states
that become phases, and the env file a pusher reads its secrets from. Pure: no I/O.

**Names.** A camera's pusher is the service ``whip-pusher-<camera_id>`` when that is a valid
service name: Swarm wants a DNS label (letters, digits, ``-`` and ``_``, not ending in ``-``,
at most 63 characters) and compares names without case. Any other camera id (one with a
``.``, upper case, or too long) gets ``whip-pusher-<lower-cased, cleaned prefix>-<hash>``, a
name of its own that no valid id maps to, so two cameras never share a service name.

**Phases.** A service has one task (1 replica, restart condition ``none``). No task yet, or a
task before ``running``: PENDING (with the scheduler's reason while no node has room). Then:

- on a node that is not ready (down, unknown, disconnected) or drained, whatever it last
  reported: LOST and *displaced* (a dead node's task keeps reporting ``running``; a drained
  node's is shut down by Swarm, which never places it again with restart condition none);
- ``running``: RUNNING, on its node (by hostname);
- ``complete``, ``failed``, ``shutdown``: EXITED (with the container's exit code);
- ``rejected`` (no such image), ``orphaned``, ``remove``: LOST.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Phase,
    Workload,
)
from orchestrator.domain.ids import CONTAINER_PREFIX, validate_camera_id

MAX_SERVICE_NAME = 63
_PLAIN = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")  # a DNS label, no "--", no "_" at the end
_UNSAFE = re.compile(r"[^a-z0-9-]+")

STOPPED = {"complete": Phase.EXITED, "failed": Phase.EXITED, "shutdown": Phase.EXITED}
LOST = frozenset({"rejected", "orphaned", "remove"})
NODE_UP = "ready"
DRAINED = "drain"


@dataclass(frozen=True)
class NodeStatus:
    """A node as the manager reports it: its state, availability and hostname."""

    state: str
    availability: str = "active"
    hostname: str = ""

    @property
    def up(self) -> bool:
        return self.state == NODE_UP

    @property
    def keeps_tasks(self) -> bool:
        """Up and not drained: a task there is not being taken away."""
        return self.up and self.availability != DRAINED


UNKNOWN_NODE = NodeStatus("unknown")

ENV_FILE_VARIABLE = "PUSHER_ENV_FILE"  # where the pusher finds its secret env (a file path)
ENV_FILE_TARGET = "pusher.env"  # the secret's file name under /run/secrets


def service_name(camera_id: str) -> str:
    """The camera's service name: ``whip-pusher-<camera_id>`` when valid, else hashed."""
    validate_camera_id(camera_id)
    plain = f"{CONTAINER_PREFIX}{camera_id}"
    if _PLAIN.fullmatch(camera_id) and len(plain) <= MAX_SERVICE_NAME:
        return plain
    digest = hashlib.sha256(camera_id.encode()).hexdigest()[:12]
    room = MAX_SERVICE_NAME - len(CONTAINER_PREFIX) - len(digest) - 2
    cleaned = _UNSAFE.sub("-", camera_id.lower()).strip("-")[:room].strip("-")
    # The ``--`` never occurs in a plain name of this shape: no valid id maps here.
    return f"{CONTAINER_PREFIX}{cleaned}--{digest}" if cleaned else f"{CONTAINER_PREFIX}-{digest}"


def env_file(env: Mapping[str, str]) -> bytes:
    """The pusher's env as ``KEY='value'`` lines: POSIX ``sh`` sources it (``set -a; .``), and
    the pusher program reads it with ``shlex``. Kept in a Swarm secret, never in the spec."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items()).encode()


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def parse_time(value: object) -> datetime | None:
    """Swarm's RFC 3339 timestamps, nanoseconds cut to microseconds."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{frac[:6]}" if frac else head).replace(tzinfo=UTC)
    except ValueError:
        return None


def latest_task(tasks: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest task of a service (by creation time, then version)."""
    newest: Mapping[str, Any] | None = None
    for task in tasks:
        key = (str(task.get("CreatedAt", "")), int((task.get("Version") or {}).get("Index", 0)))
        if newest is None or key > (
            str(newest.get("CreatedAt", "")),
            int((newest.get("Version") or {}).get("Index", 0)),
        ):
            newest = task
    return newest


def _node_of(task: Mapping[str, Any] | None, nodes: Mapping[str, NodeStatus]) -> NodeStatus | None:
    node = (task or {}).get("NodeID")
    return nodes.get(str(node), UNKNOWN_NODE) if node else None


def task_phase(task: Mapping[str, Any] | None, nodes: Mapping[str, NodeStatus]) -> Phase:
    """The phase of a service whose newest task is ``task`` (node id -> its status)."""
    if task is None:
        return Phase.PENDING
    state = str((task.get("Status") or {}).get("State", ""))
    node = _node_of(task, nodes)
    if node is not None and not node.keeps_tasks and (state == "running" or state in STOPPED):
        return Phase.LOST
    if state == "running":
        return Phase.RUNNING
    if state in STOPPED:
        return STOPPED[state]
    if state in LOST:
        return Phase.LOST
    return Phase.PENDING


def workload_of(
    service: Mapping[str, Any],
    tasks: Iterable[Mapping[str, Any]],
    nodes: Mapping[str, NodeStatus],
) -> Workload:
    """A service (``GET /services/{id}``), its tasks and the nodes as a workload."""
    spec = service.get("Spec") or {}
    labels: Mapping[str, str] = spec.get("Labels") or {}
    task = latest_task(tasks)
    phase = task_phase(task, nodes)
    status = (task or {}).get("Status") or {}
    container = status.get("ContainerStatus") or {}
    state = str(status.get("State", "no task yet"))
    desired = str((task or {}).get("DesiredState", ""))
    node = _node_of(task, nodes)
    displaced = phase is Phase.LOST and node is not None and not node.keeps_tasks
    reason = str(status.get("Err") or "") if phase is Phase.PENDING else ""
    return Workload(
        ref=str(service["ID"]),
        name=str(spec.get("Name", "")),
        camera_id=labels.get(CAMERA_LABEL),
        generation=_int(labels.get(GENERATION_LABEL, "")),
        phase=phase,
        managed=labels.get(MANAGED_BY_LABEL) == MANAGED_BY,
        instance=labels.get(INSTANCE_LABEL),
        exit_code=_int(container.get("ExitCode", "")) if phase is Phase.EXITED else None,
        engine_state=f"{state} (desired {desired})" if desired else state,
        started_at=parse_time(status.get("Timestamp")) if phase is Phase.RUNNING else None,
        node=(node.hostname or None) if node is not None else None,
        waiting=reason[:300] or None,
        displaced=displaced,
    )


def tasks_by_service(tasks: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for task in tasks:
        grouped.setdefault(str(task.get("ServiceID", "")), []).append(task)
    return grouped


def node_states(nodes: Iterable[Mapping[str, Any]]) -> dict[str, NodeStatus]:
    """Node id -> its status as the manager reports it (from ``GET /nodes``)."""
    return {
        str(n["ID"]): NodeStatus(
            state=str((n.get("Status") or {}).get("State", "unknown")),
            availability=str((n.get("Spec") or {}).get("Availability", "active")),
            hostname=str((n.get("Description") or {}).get("Hostname", "")),
        )
        for n in nodes
    }


def still_held(
    tasks: Iterable[Mapping[str, Any]], service_id: str, nodes: Mapping[str, NodeStatus]
) -> int:
    """How many tasks of a (removed) service may still run: not ended, on a node that is up.
    A removal waits for none, so a camera's next pusher never overlaps its last one."""
    return sum(
        1
        for t in tasks
        if t.get("ServiceID") == service_id
        and str((t.get("Status") or {}).get("State", "")) not in {*STOPPED, *LOST}
        and ((node := _node_of(t, nodes)) is None or node.up)
    )
