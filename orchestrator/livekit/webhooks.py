"""LiveKit webhooks: verify them (signature, body hash, age), then apply what they say.

LiveKit signs each delivery with a JWT in the ``Authorization`` header, *without* a ``Bearer``
prefix, whose ``sha256`` claim is the hash of the exact body bytes.
So the body is verified as received and never re-serialised. A token older than
``max_age_seconds`` is refused (a captured delivery cannot be replayed later), and within
that window an event id is applied once (the scripts remember ids for longer than it).

Effects (webhooks are hints: docs/architecture.md, flow 3):
- ``participant_joined`` / ``participant_left`` of ``viewer_<rid>`` (kind not INGRESS) mark
  the viewer connected or gone; a left that ends the viewing (any reason but a
  DUPLICATE_IDENTITY replacement) cuts the lease to the reconnect grace.
- the same events of ``camera_<id>_publisher`` (kind INGRESS) set ``publisher_connected``.
- ``ingress_started`` / ``ingress_ended`` of the camera's own ingress record its status; an
  ERROR restarts the camera's pusher (``ingress_status``).
Everything else is acknowledged and ignored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import jwt
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from orchestrator.domain.ids import (
    EVENT_ID_PATTERN,
    camera_of_publisher,
    camera_of_room,
    reservation_of_identity,
)
from orchestrator.errors import WebhookRejected
from orchestrator.livekit.ingress_status import IngressStatus
from orchestrator.store.presence import PresenceStore, session_version
from orchestrator.store.reservations import ReservationStore

MAX_BODY_BYTES = 256 * 1024
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_PARTICIPANT_EVENTS = ("participant_joined", "participant_left", "participant_connection_aborted")
_INGRESS_EVENTS = ("ingress_started", "ingress_ended")
UNVERIFIED = "unverified"  # the event label of a delivery that failed verification
KNOWN_EVENTS = frozenset(
    (*_PARTICIPANT_EVENTS, *_INGRESS_EVENTS, "room_started", "room_finished", UNVERIFIED)
)


def participant_version(p: ParticipantInfo) -> str:
    """The order of ``p``'s session among its identity's sessions (``session_version``)."""
    return session_version(p.joined_at_ms or p.joined_at * 1000, p.sid)


class WebhookVerifier:
    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._receiver = WebhookReceiver(TokenVerifier(api_key, api_secret))
        self._max_age = max_age_seconds
        self._clock = clock

    def verify(self, body: bytes, authorization: str | None) -> WebhookEvent:
        """The event, or :class:`WebhookRejected` naming what failed (never the token)."""
        if not authorization:
            raise WebhookRejected("missing Authorization header")
        if authorization[:7].lower() == "bearer ":
            raise WebhookRejected("LiveKit sends the bare JWT; a Bearer token is not a webhook")
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRejected("body too large")
        try:
            text = body.decode("utf-8")
            event = self._receiver.receive(text, authorization)
            claims = jwt.decode(authorization, options={"verify_signature": False})
        except Exception as exc:  # noqa: BLE001 - the receiver raises bare Exception / jwt.*
            raise WebhookRejected(f"signature check failed ({type(exc).__name__})") from None
        issued = claims.get("iat", claims.get("nbf"))
        if not isinstance(issued, int | float):
            raise WebhookRejected("token has no issue time")
        if self._clock() - float(issued) > self._max_age:
            raise WebhookRejected("token is older than the replay window")
        if not _EVENT_ID.fullmatch(event.id):
            raise WebhookRejected("event has no valid id")
        return event


def event_label(event: str) -> str:
    """The metric label of an event name: a known event, or ``other`` (bounded)."""
    return event if event in KNOWN_EVENTS else "other"


class WebhookEffects:
    def __init__(
        self, presence: PresenceStore, leases: ReservationStore, ingresses: IngressStatus
    ) -> None:
        self._presence = presence
        self._leases = leases
        self._ingresses = ingresses

    async def apply(self, event: WebhookEvent) -> str:
        """Apply one verified event; returns its outcome (see the scripts)."""
        if event.event in _PARTICIPANT_EVENTS:
            return await self._participant(event)
        if event.event in _INGRESS_EVENTS:
            return await self._ingress(event)
        return "ignored"

    async def _participant(self, event: WebhookEvent) -> str:
        camera_id = camera_of_room(event.room.name)
        p = event.participant
        if camera_id is None or not p.sid:
            return "ignored"
        joined = event.event == "participant_joined"
        version = participant_version(p)
        if p.kind == ParticipantInfo.Kind.INGRESS:
            if camera_of_publisher(p.identity) != camera_id:
                return "ignored"
            return await self._presence.publisher_event(
                event.id, camera_id, joined=joined, sid=p.sid, version=version
            )
        rid = reservation_of_identity(p.identity)
        if rid is None:
            return "ignored"
        lease = await self._leases.lease_of(rid)
        if lease is None or lease.camera_id != camera_id:
            return "unknown"  # a ghost: the reconcile pass removes the participant
        ends = event.event == "participant_left" and (
            p.disconnect_reason != DisconnectReason.DUPLICATE_IDENTITY
        )
        outcome, _ = await self._presence.viewer_event(
            event.id, lease, joined=joined, sid=p.sid, version=version, ends_viewing=ends
        )
        return outcome

    async def _ingress(self, event: WebhookEvent) -> str:
        info = event.ingress_info
        camera_id = camera_of_room(info.room_name or event.room.name)
        if not info.ingress_id or camera_id is None or camera_of_publisher(info.name) != camera_id:
            return "ignored"
        return await self._ingresses.record(event.id, camera_id, info)
