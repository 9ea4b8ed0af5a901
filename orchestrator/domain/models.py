"""Value objects returned by the stores. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

LEASE_SEP = "|"


@dataclass(frozen=True, slots=True)
class Lease:
    """The routing of one lease: which reservation, camera and source it belongs to.

    ``member`` is ``<reservation_id>|<camera_id>|<source>``; the separator cannot occur in
    any part (see ``domain.ids``).
    """

    reservation_id: str
    camera_id: str
    source: str

    @property
    def member(self) -> str:
        return LEASE_SEP.join((self.reservation_id, self.camera_id, self.source))

    @classmethod
    def parse(cls, member: str) -> Lease:
        rid, camera_id, source = member.split(LEASE_SEP)
        return cls(rid, camera_id, source)


@dataclass(frozen=True, slots=True)
class Admission:
    """A granted reservation. ``claimed`` tells the caller it must start the camera's pusher."""

    reservation_id: str
    identity: str
    camera_id: str
    source: str
    expires_at_ms: int
    current_usage: int
    limit: int
    claimed: bool
    generation: int
    pusher_state: str
    camera_name: str
    token_expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewed lease; ``token_expires_at_ms`` is set when a fresh viewer token is due."""

    lease: Lease
    expires_at_ms: int
    token_expires_at_ms: int | None
    user_id: str


@dataclass(frozen=True, slots=True)
class Release:
    reservation_id: str
    released: bool
    camera_id: str | None = None
    camera_empty: bool = False
    drain_deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class ExpireReport:
    expired: int
    emptied_cameras: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recount:
    source: str
    before: int | None
    after: int


@dataclass(frozen=True, slots=True)
class ReservationInfo:
    reservation_id: str
    camera_id: str
    source: str
    user_id: str
    quality: str
    created_at_ms: int
    expires_at_ms: int
    connected: bool


@dataclass(frozen=True, slots=True)
class Camera:
    """A registered camera. ``rtsp_url`` is a secret: never logged, never returned."""

    camera_id: str
    name: str
    rtsp_url: str = field(repr=False)
    enabled: bool = True
