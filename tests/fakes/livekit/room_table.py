"""The room table: records and get-or-create, as the OSS server keeps them
(docs/architecture.md, "LiveKit facts").

CreateRoom is get-or-create. On a live room it changes nothing: the request's timeouts and other
fields are ignored (`roommanager.go` getOrCreateRoom returns the live room), so a room an
early viewer auto-created keeps 300 s / 20 s. `create_overwrites_live = True` brings back the
fake's old overwrite. A room that only the store knows (left by an unclean stop; made here
by a ghost participant) is not live: it sends no room_started and never closes for idleness
until CreateRoom or a join opens it, which then applies the request like a new room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import CreateRoomRequest

from .errors import TwirpFailure
from .events import ROOM_STARTED, Clock, EventBus
from .ids import ROOM, new_id

DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
INGRESS_ID_ATTRIBUTE = "ingress.ingressID"
_DEPENDENT_KINDS = (ParticipantInfo.Kind.EGRESS, ParticipantInfo.Kind.AGENT)
_CREATE_FIELDS = ("empty_timeout", "departure_timeout", "max_participants", "metadata")


def is_dependent(p: ParticipantInfo) -> bool:
    """Agents and egress (by kind or grant) neither count nor keep a room open."""
    return p.kind in _DEPENDENT_KINDS or p.permission.agent or p.permission.recorder


@dataclass
class RoomRecord:
    info: Room
    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    ghosts: set[str] = field(default_factory=set)  # store-only identities
    live: bool = True  # open on a (fake) node; False: only the store knows it
    last_left_at: float | None = None

    def connected(self) -> list[ParticipantInfo]:
        return [p for i, p in self.participants.items() if i not in self.ghosts]


class RoomTable:
    def __init__(self, bus: EventBus, clock: Clock, *, max_name_length: int = 256) -> None:
        self._bus = bus
        self._clock = clock
        self._max_name_length = max_name_length
        self._rooms: dict[str, RoomRecord] = {}
        self.create_overwrites_live = False

    # ---- rooms -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._rooms)

    def snapshot(self, name: str) -> Room:
        """A copy of the room with exact counts (a store-only room counts its stale records)."""
        record = self._rooms[name]
        live = record.connected() if record.live else list(record.participants.values())
        record.info.num_participants = sum(1 for p in live if not is_dependent(p))
        record.info.num_publishers = sum(1 for p in live if p.is_publisher)
        room = Room()
        room.CopyFrom(record.info)
        return room

    def create(self, req: CreateRoomRequest) -> Room:
        """Get-or-create: an existing room keeps its sid, and a live one all its settings."""
        if len(req.name) > self._max_name_length:
            raise TwirpFailure("invalid_argument", "room name length exceeds limits")
        record = self._rooms.get(req.name)
        if record is None:
            self._open(req.name, req)
        elif not record.live:
            _apply(record.info, req)
            self._go_live(record)
        elif self.create_overwrites_live:
            _apply(record.info, req)
        return self.snapshot(req.name)

    def ensure(self, name: str, req: CreateRoomRequest | None = None) -> RoomRecord:
        """Auto-create on join or ingress publish (`room.auto_create: true`); a join token's
        `roomConfig` (`req`) configures a room the join creates (server `utils.go`
        SetRoomConfiguration), never one that exists."""
        record = self._rooms.get(name)
        if record is None:
            return self._open(name, req)
        if not record.live:
            self._go_live(record)
        return record

    def _open(
        self, name: str, req: CreateRoomRequest | None = None, live: bool = True
    ) -> RoomRecord:
        now = self._clock()
        info = Room(
            sid=new_id(ROOM),
            name=name,
            empty_timeout=DEFAULT_EMPTY_TIMEOUT,
            departure_timeout=DEFAULT_DEPARTURE_TIMEOUT,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            turn_password=new_id(),
        )
        info.enabled_codecs.add(mime="audio/opus")
        info.enabled_codecs.add(mime="video/H264")
        if req is not None:
            _apply(info, req)
        record = self._rooms[name] = RoomRecord(info, live=False)
        if live:
            self._go_live(record)
        return record

    def _go_live(self, record: RoomRecord) -> None:
        record.live = True
        self._bus.emit(ROOM_STARTED, room=self.snapshot(record.info.name))

    def list_rooms(self, names: Iterable[str]) -> list[Room]:
        wanted = list(names)
        chosen = [n for n in wanted if n in self._rooms] if wanted else list(self._rooms)
        return [self.snapshot(n) for n in chosen]


def _apply(info: Room, req: CreateRoomRequest) -> None:
    """The request's non-zero fields (`roomallocator.go` CreateRoom)."""
    for attr in _CREATE_FIELDS:
        value = getattr(req, attr)
        if value:
            setattr(info, attr, value)
