"""Building `livekit.WebhookEvent`s for every state change.

ENDPOINT_BUFFERING sends none; a participant that leaves before it was ACTIVE gets
`participant_connection_aborted`, not `participant_left`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, Unpack

from livekit.protocol.ingress import IngressInfo
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from .ids import EVENT, new_id

Clock = Callable[[], float]

ROOM_STARTED = "room_started"
ROOM_FINISHED = "room_finished"
PARTICIPANT_JOINED = "participant_joined"
PARTICIPANT_LEFT = "participant_left"
PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"  # left before ACTIVE
INGRESS_STARTED = "ingress_started"
INGRESS_ENDED = "ingress_ended"


class EventParts(TypedDict, total=False):
    """What an event carries besides its name (each part copied in when given)."""

    room: Room | None
    participant: ParticipantInfo | None
    ingress_info: IngressInfo | None


class EventBus:
    """Stamps each event with `id=EV_…` and `created_at` (seconds), records it, hands it on."""

    def __init__(self, clock: Clock, deliver: Callable[[WebhookEvent], None]) -> None:
        self._clock = clock
        self._deliver = deliver
        self.history: list[WebhookEvent] = []

    def build(self, name: str, **parts: Unpack[EventParts]) -> WebhookEvent:
        """A fresh event that is neither recorded nor delivered (for tests to craft)."""
        event = WebhookEvent(event=name, id=new_id(EVENT), created_at=int(self._clock()))
        if (room := parts.get("room")) is not None:
            event.room.CopyFrom(room)
        if (participant := parts.get("participant")) is not None:
            event.participant.CopyFrom(participant)
        if (ingress_info := parts.get("ingress_info")) is not None:
            event.ingress_info.CopyFrom(ingress_info)
        return event

    def emit(self, name: str, **parts: Unpack[EventParts]) -> WebhookEvent:
        event = self.build(name, **parts)
        self.history.append(event)
        self._deliver(event)
        return event
