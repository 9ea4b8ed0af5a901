"""Every Valkey key name is built here, and only here. See ``docs/keyspace.md``.

Lease members are the same string in all three lease sorted sets:
``<reservation_id>|<camera_id>|<source>``. The separator cannot occur in any of the three
parts (see ``domain.ids``), so a member routes itself: the expiry sweep knows every key a lease
touches without reading its hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.ids import TOTAL

PREFIX = "stream:"
SEP = "|"

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


@dataclass(frozen=True, slots=True)
class Lease:
    """The routing of one lease: which reservation, camera and source it belongs to."""

    reservation_id: str
    camera_id: str
    source: str

    @property
    def member(self) -> str:
        return SEP.join((self.reservation_id, self.camera_id, self.source))

    @classmethod
    def parse(cls, member: str) -> Lease:
        rid, camera_id, source = member.split(SEP)
        return cls(rid, camera_id, source)

    def keys(self) -> list[str]:
        """Reservation hash, source, camera and global lease sets, source counter, metadata."""
        return [
            reservation(self.reservation_id),
            source_leases(self.source),
            camera_leases(self.camera_id),
            ALL_LEASES,
            count(self.source),
            metadata(self.camera_id),
        ]
