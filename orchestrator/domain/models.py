"""Value objects returned by the stores. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


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
