"""Building `livekit.WebhookEvent`s for every state change (livekit-wire.md §4.2, §9.11).

ENDPOINT_BUFFERING sends none (§4.2, §9.5); a participant that leaves before it was ACTIVE gets
`participant_connection_aborted`, not `participant_left` (§9.11).
"""

from __future__ import annotations

from collections.abc import Callable

from livekit.protocol.ingress import IngressInfo
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from .ids import EVENT, new_id

Clock = Callable[[], float]

ROOM_STARTED = "room_started"
ROOM_FINISHED = "room_finished"
PARTICIPANT_JOINED = "participant_joined"
PARTICIPANT_LEFT = "participant_left"
PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"  # left before ACTIVE (§9.11)
INGRESS_STARTED = "ingress_started"
INGRESS_ENDED = "ingress_ended"


class EventBus:
    """Stamps each event with `id=EV_…` and `created_at` (seconds), records it, hands it on."""

    def __init__(self, clock: Clock, deliver: Callable[[WebhookEvent], None]) -> None:
        self._clock = clock
        self._deliver = deliver
        self.history: list[WebhookEvent] = []

    def build(
        self,
        name: str,
        *,
        room: Room | None = None,
        participant: ParticipantInfo | None = None,
        ingress_info: IngressInfo | None = None,
    ) -> WebhookEvent:
        """A fresh event that is neither recorded nor delivered (for tests to craft)."""
        event = WebhookEvent(event=name, id=new_id(EVENT), created_at=int(self._clock()))
        if room is not None:
            event.room.CopyFrom(room)
        if participant is not None:
            event.participant.CopyFrom(participant)
        if ingress_info is not None:
            event.ingress_info.CopyFrom(ingress_info)
        return event

    def emit(
        self,
        name: str,
        *,
        room: Room | None = None,
        participant: ParticipantInfo | None = None,
        ingress_info: IngressInfo | None = None,
    ) -> WebhookEvent:
        event = self.build(name, room=room, participant=participant, ingress_info=ingress_info)
        self.history.append(event)
        self._deliver(event)
        return event
