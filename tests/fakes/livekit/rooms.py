"""Rooms and their participants, with the OSS server's semantics (livekit-wire.md §2.4, §5.1-5.2).

Differences from the real server, on purpose: `num_participants` is always exact (the real one
can be ~5 s stale), a participant goes straight to ACTIVE, and idle rooms close only when a test
calls `close_idle` (the real server checks every second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from livekit.protocol.models import DisconnectReason, ParticipantInfo, Room
from livekit.protocol.room import CreateRoomRequest

from .errors import TwirpFailure
from .events import (
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    ROOM_FINISHED,
    ROOM_STARTED,
    Clock,
    EventBus,
)
from .ids import ROOM, new_id

DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
INGRESS_ID_ATTRIBUTE = "ingress.ingressID"
_DEPENDENT_KINDS = (ParticipantInfo.Kind.EGRESS, ParticipantInfo.Kind.AGENT)


def is_dependent(p: ParticipantInfo) -> bool:
    """Agents and egress (by kind or grant) neither count nor keep a room open (§5.1)."""
    return p.kind in _DEPENDENT_KINDS or p.permission.agent or p.permission.recorder


@dataclass
class RoomRecord:
    info: Room
    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    last_left_at: float | None = None


IngressGone: TypeAlias = "Callable[[str, DisconnectReason], None]"


class RoomStore:
    def __init__(self, bus: EventBus, clock: Clock, *, max_name_length: int = 256) -> None:
        self._bus = bus
        self._clock = clock
        self._max_name_length = max_name_length
        self._rooms: dict[str, RoomRecord] = {}
        # Called with (ingress_id, reason) when an INGRESS participant is removed by anything
        # other than its own WHIP session ending (RemoveParticipant, DeleteRoom, a duplicate).
        self.on_ingress_removed: IngressGone | None = None

    # ---- rooms -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._rooms)

    def snapshot(self, name: str) -> Room:
        """A copy of the room with exact counts."""
        record = self._rooms[name]
        live = list(record.participants.values())
        record.info.num_participants = sum(1 for p in live if not is_dependent(p))
        record.info.num_publishers = sum(1 for p in live if p.is_publisher)
        room = Room()
        room.CopyFrom(record.info)
        return room

    def create(self, req: CreateRoomRequest) -> Room:
        """Get-or-create: an existing room keeps its sid; non-zero fields overwrite it."""
        if len(req.name) > self._max_name_length:
            raise TwirpFailure("invalid_argument", "room name length exceeds limits")
        record = self._rooms.get(req.name)
        if record is None:
            record = self._open(req.name)
        info = record.info
        for attr in ("empty_timeout", "departure_timeout", "max_participants", "metadata"):
            value = getattr(req, attr)
            if value:
                setattr(info, attr, value)
        return self.snapshot(req.name)

    def ensure(self, name: str) -> RoomRecord:
        """Auto-create on join or ingress publish (`room.auto_create: true`)."""
        return self._rooms.get(name) or self._open(name)

    def _open(self, name: str) -> RoomRecord:
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
        record = self._rooms[name] = RoomRecord(info)
        self._bus.emit(ROOM_STARTED, room=self.snapshot(name))
        return record

    def list_rooms(self, names: Iterable[str]) -> list[Room]:
        wanted = list(names)
        chosen = [n for n in wanted if n in self._rooms] if wanted else list(self._rooms)
        return [self.snapshot(n) for n in chosen]

    def delete(self, name: str) -> None:
        if name not in self._rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        self._close(name, DisconnectReason.ROOM_DELETED)

    def _close(self, name: str, reason: DisconnectReason) -> None:
        for identity in list(self._rooms[name].participants):
            self._drop(name, identity, reason)
        room = self.snapshot(name)
        del self._rooms[name]
        self._bus.emit(ROOM_FINISHED, room=room)

    def close_idle(self, now: float | None = None) -> list[str]:
        """Close rooms whose empty/departure timeout has passed (`rtc/room.go` CloseIfEmpty)."""
        at = self._clock() if now is None else now
        closing = []
        for name, record in self._rooms.items():
            if any(not is_dependent(p) for p in record.participants.values()):
                continue
            info = record.info
            if record.last_left_at is not None:
                deadline = record.last_left_at + info.departure_timeout
            else:
                deadline = info.creation_time + info.empty_timeout
            if at >= deadline:
                closing.append(name)
        for name in closing:
            self._close(name, DisconnectReason.ROOM_CLOSED)
        return closing

    # ---- participants ------------------------------------------------------------------
    def participants(self, room: str) -> list[ParticipantInfo]:
        record = self._rooms.get(room)
        return [_copy(p) for p in record.participants.values()] if record else []

    def get(self, room: str, identity: str) -> ParticipantInfo:
        record = self._rooms.get(room)
        if record is None or identity not in record.participants:
            raise TwirpFailure("not_found", "participant does not exist")
        return _copy(record.participants[identity])

    def remove(
        self,
        room: str,
        identity: str,
        reason: DisconnectReason,
        *,
        notify_ingress: bool = True,
    ) -> ParticipantInfo:
        self.get(room, identity)
        return self._drop(room, identity, reason, notify_ingress=notify_ingress)

    def add(self, room: str, participant: ParticipantInfo) -> ParticipantInfo:
        """Join (auto-creating the room); an existing identity is evicted first (§5.2)."""
        record = self.ensure(room)
        if participant.identity in record.participants:
            self._drop(room, participant.identity, DisconnectReason.DUPLICATE_IDENTITY)
        participant.state = ParticipantInfo.State.ACTIVE
        record.participants[participant.identity] = participant
        self._bus.emit(PARTICIPANT_JOINED, room=self.snapshot(room), participant=_copy(participant))
        return _copy(participant)

    def _drop(
        self,
        room: str,
        identity: str,
        reason: DisconnectReason,
        *,
        notify_ingress: bool = True,
    ) -> ParticipantInfo:
        record = self._rooms[room]
        gone = record.participants.pop(identity)
        if not is_dependent(gone):
            record.last_left_at = self._clock()
        gone.state = ParticipantInfo.State.DISCONNECTED
        gone.disconnect_reason = reason
        self._bus.emit(PARTICIPANT_LEFT, room=self.snapshot(room), participant=_copy(gone))
        ingress_id = gone.attributes.get(INGRESS_ID_ATTRIBUTE)
        is_ingress = gone.kind == ParticipantInfo.Kind.INGRESS
        if notify_ingress and is_ingress and ingress_id and self.on_ingress_removed:
            self.on_ingress_removed(ingress_id, reason)
        return _copy(gone)


def _copy(p: ParticipantInfo) -> ParticipantInfo:
    out = ParticipantInfo()
    out.CopyFrom(p)
    return out
