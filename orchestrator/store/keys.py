"""Every Valkey key name is built here, and only here. See ``docs/keyspace.md``.

Lease members (``domain.models.Lease.member``) are the same string in all three lease sorted
sets, so a member routes itself: the expiry sweep knows every key a lease touches without
reading its hash.
"""

from __future__ import annotations

from orchestrator.domain.ids import TOTAL
from orchestrator.domain.models import Lease

PREFIX = "stream:"

ALL_LEASES = f"{PREFIX}leases"
ACTIVE_CAMERAS = f"{PREFIX}cameras:active"
SOURCES = f"{PREFIX}sources"
CAMERAS = f"{PREFIX}cameras"
TOTAL_LIMIT = f"{PREFIX}limit:{TOTAL}"


def reservation(reservation_id: str) -> str:
    return f"{PREFIX}reservation:{reservation_id}"


def source_leases(source: str) -> str:
    return f"{PREFIX}leases:source:{source}"


def camera_leases(camera_id: str) -> str:
    return f"{PREFIX}leases:camera:{camera_id}"


def count(source: str) -> str:
    return f"{PREFIX}count:{source}"


def limit(source: str) -> str:
    return f"{PREFIX}limit:{source}"


def metadata(camera_id: str) -> str:
    return f"{PREFIX}metadata:{camera_id}"


def camera(camera_id: str) -> str:
    return f"{PREFIX}camera:{camera_id}"


def presence(camera_id: str) -> str:
    """SET of reservation ids whose viewer is connected to the camera's LiveKit room."""
    return f"{PREFIX}presence:{camera_id}"


def webhook_event(event_id: str) -> str:
    """Marks a LiveKit webhook event id as applied (expires after the dedupe window)."""
    return f"{PREFIX}webhook:{event_id}"


def lease_keys(lease: Lease) -> list[str]:
    """Reservation hash, source, camera and global lease sets, source counter, metadata."""
    return [
        reservation(lease.reservation_id),
        source_leases(lease.source),
        camera_leases(lease.camera_id),
        ALL_LEASES,
        count(lease.source),
        metadata(lease.camera_id),
    ]
