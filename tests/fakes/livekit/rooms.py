"""Participants in rooms, with the OSS server's semantics.

* A participant is JOINING from its signal join until ACTIVE; `participant_joined` fires at
  ACTIVE, and one that goes before ACTIVE gets `participant_connection_aborted`.
  ListParticipants lists JOINING ones too.
* A new join with an identity already present evicts the old session (DUPLICATE_IDENTITY).
* Ghosts are participant records left in the store after an unclean server stop: listed
  as ACTIVE with no connection behind them. RemoveParticipant answers 503 `unavailable` after
  the psrpc timeout, they send no webhooks and keep no room open, a real join with the same
  identity overwrites them silently, and they go with their room.

Differences from the real server, on purpose: `num_participants` is always exact (the real one
can be ~5 s stale), and idle rooms close only when a test calls `close_idle` (the real server
checks every second).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.room import CreateRoomRequest

from .errors import NoResponse, TwirpFailure
from .events import (
    PARTICIPANT_CONNECTION_ABORTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    ROOM_FINISHED,
    Clock,
    EventBus,
)
from .room_table import INGRESS_ID_ATTRIBUTE, RoomTable, is_dependent

__all__ = ["INGRESS_ID_ATTRIBUTE", "IngressGone", "RoomStore"]

State = ParticipantInfo.State

# (ingress_id, participant sid, reason) of an INGRESS participant that left the room.
IngressGone: TypeAlias = "Callable[[str, str, DisconnectReason], None]"


class RoomStore(RoomTable):
    def __init__(self, bus: EventBus, clock: Clock, *, max_name_length: int = 256) -> None:
        super().__init__(bus, clock, max_name_length=max_name_length)
        # Called when an INGRESS participant is removed by anything other than its own WHIP
        # session ending (RemoveParticipant, DeleteRoom, idle close, a duplicate identity).
        self.on_ingress_removed: IngressGone | None = None

    # ---- closing rooms -----------------------------------------------------------------
    def delete(self, name: str) -> None:
        if name not in self._rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        self._close(name, DisconnectReason.ROOM_DELETED)

    def _close(self, name: str, reason: DisconnectReason) -> None:
        record = self._rooms[name]
        for identity in list(record.participants):
            if identity in record.ghosts:
                del record.participants[identity]  # the store record goes with the room
            else:
                self._drop(name, identity, reason)
        room = self.snapshot(name)
        del self._rooms[name]
        self._bus.emit(ROOM_FINISHED, room=room)

    def close_idle(self, now: float | None = None) -> list[str]:
        """Close rooms whose empty/departure timeout has passed (`rtc/room.go` CloseIfEmpty)."""
        at = self._clock() if now is None else now
        closing = []
        for name, record in self._rooms.items():
            if not record.live or any(not is_dependent(p) for p in record.connected()):
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

    def is_ghost(self, room: str, identity: str) -> bool:
        record = self._rooms.get(room)
        return record is not None and identity in record.ghosts

    def remove(
        self,
        room: str,
        identity: str,
        reason: DisconnectReason,
        *,
        notify_ingress: bool = True,
    ) -> ParticipantInfo:
        self.get(room, identity)
        if self.is_ghost(room, identity):
            raise NoResponse()  # no node serves that participant's topic
        return self._drop(room, identity, reason, notify_ingress=notify_ingress)

    def add(
        self,
        room: str,
        participant: ParticipantInfo,
        *,
        active: bool = True,
        create: CreateRoomRequest | None = None,
    ) -> ParticipantInfo:
        """Join (auto-creating the room, with `create`'s settings), ACTIVE or JOINING; an
        existing identity is evicted first, a ghost with that identity is overwritten
        silently."""
        record = self.ensure(room, create)
        identity = participant.identity
        if identity in record.ghosts:
            record.ghosts.discard(identity)
            del record.participants[identity]
        elif identity in record.participants:
            self._drop(room, identity, DisconnectReason.DUPLICATE_IDENTITY)
        participant.state = State.ACTIVE if active else State.JOINING
        record.participants[identity] = participant
        if active:
            self._bus.emit(
                PARTICIPANT_JOINED, room=self.snapshot(room), participant=_copy(participant)
            )
        return _copy(participant)

    def activate(self, room: str, identity: str) -> ParticipantInfo:
        """A JOINING participant's media connects: ACTIVE, then participant_joined."""
        self.get(room, identity)
        participant = self._rooms[room].participants[identity]
        if participant.state != State.JOINING or identity in self._rooms[room].ghosts:
            raise ValueError(f"{identity} in {room} is not JOINING")
        participant.state = State.ACTIVE
        participant.version += 1
        self._bus.emit(PARTICIPANT_JOINED, room=self.snapshot(room), participant=_copy(participant))
        return _copy(participant)

    def ghost(self, room: str, participant: ParticipantInfo) -> ParticipantInfo:
        """Leave a store-only ACTIVE record (no webhook; the room is store-only if new)."""
        record = self._rooms.get(room) or self._open(room, live=False)
        if participant.identity in record.participants.keys() - record.ghosts:
            raise ValueError(f"{participant.identity} is connected to {room}")
        participant.state = State.ACTIVE
        record.participants[participant.identity] = participant
        record.ghosts.add(participant.identity)
        return _copy(participant)

    def remove_ghost(self, room: str, identity: str) -> None:
        if not self.is_ghost(room, identity):
            raise KeyError(f"no ghost {identity} in {room}")
        self._rooms[room].ghosts.discard(identity)
        del self._rooms[room].participants[identity]

    def _drop(
        self, room: str, identity: str, reason: DisconnectReason, notify_ingress: bool = True
    ) -> ParticipantInfo:
        record = self._rooms[room]
        gone = record.participants.pop(identity)
        if not is_dependent(gone):
            record.last_left_at = self._clock()
        was_active = gone.state == State.ACTIVE
        gone.state = State.DISCONNECTED
        gone.disconnect_reason = reason
        event = PARTICIPANT_LEFT if was_active else PARTICIPANT_CONNECTION_ABORTED
        self._bus.emit(event, room=self.snapshot(room), participant=_copy(gone))
        ingress_id = gone.attributes.get(INGRESS_ID_ATTRIBUTE)
        is_ingress = gone.kind == ParticipantInfo.Kind.INGRESS
        if notify_ingress and is_ingress and ingress_id and self.on_ingress_removed:
            self.on_ingress_removed(ingress_id, gone.sid, reason)
        return _copy(gone)


def _copy(p: ParticipantInfo) -> ParticipantInfo:
    out = ParticipantInfo()
    out.CopyFrom(p)
    return out
