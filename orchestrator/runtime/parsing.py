"""The Docker engine's JSON (inspect, list, events) as the runtime-neutral workload model of
``domain/containers.py``: Docker's container states become phases, its event actions kinds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    EventKind,
    Phase,
    RuntimeEvent,
    Workload,
)

_EXITED = re.compile(r"^Exited \((-?\d+)\)")

# Docker's states; any other (created, paused, restarting, removing) is PENDING: it holds the
# name without running or having stopped.
PHASES = {"running": Phase.RUNNING, "exited": Phase.EXITED, "dead": Phase.LOST}
EVENT_KINDS = {"start": EventKind.STARTED, "die": EventKind.ENDED, "destroy": EventKind.REMOVED}
EVENT_ACTIONS = tuple(EVENT_KINDS)


def phase_of(state: str) -> Phase:
    return PHASES.get(state, Phase.PENDING)


def _generation(labels: Mapping[str, str]) -> int | None:
    try:
        return int(labels[GENERATION_LABEL])
    except (KeyError, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _parse_time(value: object) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds; its zero time means "never"."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def _workload(
    cid: str,
    name: str,
    labels: Mapping[str, str],
    state: str,
    exit_code: int | None,
    started_at: datetime | None = None,
) -> Workload:
    phase = phase_of(state)
    return Workload(
        ref=cid,
        name=name.lstrip("/"),
        camera_id=labels.get(CAMERA_LABEL),
        generation=_generation(labels),
        phase=phase,
        managed=labels.get(MANAGED_BY_LABEL) == MANAGED_BY,
        instance=labels.get(INSTANCE_LABEL),
        exit_code=exit_code if phase in (Phase.EXITED, Phase.LOST) else None,
        engine_state=state,
        started_at=started_at,
    )


def info_from_inspect(data: Mapping[str, Any]) -> Workload:
    """From ``GET /containers/{id}/json``."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    return _workload(
        str(data["Id"]),
        str(data.get("Name", "")),
        config.get("Labels") or {},
        str(state.get("Status", "unknown")),
        _int_or_none(state.get("ExitCode")),
        _parse_time(state.get("StartedAt")),
    )


def info_from_summary(data: Mapping[str, Any]) -> Workload:
    """From one entry of ``GET /containers/json`` (exit code parsed from its status text; the
    list does not report the start time)."""
    names = data.get("Names") or [""]
    match = _EXITED.match(str(data.get("Status", "")))
    return _workload(
        str(data["Id"]),
        str(names[0]),
        data.get("Labels") or {},
        str(data.get("State", "unknown")),
        int(match.group(1)) if match else None,
    )


def event_from_raw(data: Mapping[str, Any]) -> RuntimeEvent | None:
    """From one decoded ``GET /events`` message; None for anything we do not follow."""
    action = str(data.get("Action") or data.get("status") or "")
    kind = EVENT_KINDS.get(action)
    if data.get("Type", "container") != "container" or kind is None:
        return None
    actor = data.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    time_nano = data.get("timeNano")
    return RuntimeEvent(
        kind=kind,
        ref=str(actor.get("ID") or data.get("id") or ""),
        name=str(attributes.get("name", "")),
        camera_id=attributes.get(CAMERA_LABEL),
        generation=_generation(attributes),
        instance=attributes.get(INSTANCE_LABEL),
        exit_code=_int_or_none(attributes["exitCode"]) if "exitCode" in attributes else None,
        time=time_nano / 1e9 if isinstance(time_nano, int) else float(data.get("time") or 0),
    )
