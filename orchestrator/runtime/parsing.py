"""The Docker engine's JSON (inspect, list, events) as the container model of
``domain/containers.py``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    EVENT_ACTIONS,
    GENERATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    STOPPED_STATES,
    ContainerEvent,
    ContainerInfo,
)

_EXITED = re.compile(r"^Exited \((-?\d+)\)")


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


def _info(
    cid: str, name: str, labels: Mapping[str, str], status: str, exit_code: int | None
) -> ContainerInfo:
    stopped = status in STOPPED_STATES
    return ContainerInfo(
        id=cid,
        name=name.lstrip("/"),
        camera_id=labels.get(CAMERA_LABEL),
        generation=_generation(labels),
        status=status,
        exit_code=exit_code if stopped else None,
        started_at=None,
        managed=labels.get(MANAGED_BY_LABEL) == MANAGED_BY,
    )


def info_from_inspect(data: Mapping[str, Any]) -> ContainerInfo:
    """From ``GET /containers/{id}/json``."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    info = _info(
        str(data["Id"]),
        str(data.get("Name", "")),
        config.get("Labels") or {},
        str(state.get("Status", "unknown")),
        _int_or_none(state.get("ExitCode")),
    )
    return replace(info, started_at=_parse_time(state.get("StartedAt")))


def info_from_summary(data: Mapping[str, Any]) -> ContainerInfo:
    """From one entry of ``GET /containers/json`` (exit code parsed from its status text)."""
    names = data.get("Names") or [""]
    match = _EXITED.match(str(data.get("Status", "")))
    return _info(
        str(data["Id"]),
        str(names[0]),
        data.get("Labels") or {},
        str(data.get("State", "unknown")),
        int(match.group(1)) if match else None,
    )


def event_from_raw(data: Mapping[str, Any]) -> ContainerEvent | None:
    """From one decoded ``GET /events`` message; None for anything we do not follow."""
    action = str(data.get("Action") or data.get("status") or "")
    if data.get("Type", "container") != "container" or action not in EVENT_ACTIONS:
        return None
    actor = data.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    time_nano = data.get("timeNano")
    return ContainerEvent(
        action=action,
        container_id=str(actor.get("ID") or data.get("id") or ""),
        name=str(attributes.get("name", "")),
        camera_id=attributes.get(CAMERA_LABEL),
        generation=_generation(attributes),
        exit_code=_int_or_none(attributes["exitCode"]) if "exitCode" in attributes else None,
        time=time_nano / 1e9 if isinstance(time_nano, int) else float(data.get("time") or 0),
    )
