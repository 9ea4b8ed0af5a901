"""Timestamps on the wire: RFC 3339 UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def iso_required(ms: int) -> str:
    return iso(ms) or ""
