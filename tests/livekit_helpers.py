"""Helpers shared by the LiveKit integration tests: signed deliveries, stats polling.

Webhook bodies are built from real ``livekit.protocol`` messages and signed like LiveKit
(livekit-wire.md §4.1) by the wire fake's signer; ``signed_at`` signs with a chosen issue time
(replay-window tests).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import httpx
import jwt
from livekit.protocol.models import DisconnectReason, ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from tests.fakes.livekit import SignedWebhook, encode_event, sign_event
from tests.fakes.livekit.ids import new_id
from tests.service_process import ADMIN_KEY, LIVEKIT_SECRET

LIVEKIT_KEY = "devkey"  # ServiceProcess leaves LIVEKIT_API_KEY at its default
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
WEBHOOK_PATH = "/api/v1/livekit/webhook"


def participant_event(
    name: str,
    room: str,
    identity: str,
    sid: str,
    joined_at_ms: int,
    *,
    kind: int = ParticipantInfo.Kind.STANDARD,
    reason: int = DisconnectReason.UNKNOWN_REASON,
) -> WebhookEvent:
    left = name != "participant_joined"
    participant = ParticipantInfo(
        sid=sid,
        identity=identity,
        state=ParticipantInfo.State.DISCONNECTED if left else ParticipantInfo.State.ACTIVE,
        joined_at=joined_at_ms // 1000,
        joined_at_ms=joined_at_ms,
        kind=kind,  # type: ignore[arg-type]
        disconnect_reason=reason if left else DisconnectReason.UNKNOWN_REASON,  # type: ignore[arg-type]
    )
    return WebhookEvent(
        event=name,
        room=Room(name=room),
        participant=participant,
        id=new_id("EV_"),
        created_at=int(time.time()),
    )


def signed(event: WebhookEvent, secret: str = LIVEKIT_SECRET) -> SignedWebhook:
    return sign_event(event, LIVEKIT_KEY, secret)


def signed_at(event: WebhookEvent, issued_at: int) -> SignedWebhook:
    """Signed like LiveKit, but issued at ``issued_at`` (valid 5 minutes from then)."""
    body = encode_event(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    claims = {
        "iss": LIVEKIT_KEY,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + 300,
        "sha256": digest,
    }
    return SignedWebhook(event, body, jwt.encode(claims, LIVEKIT_SECRET, algorithm="HS256"))


async def deliver(
    http: httpx.AsyncClient, delivery: SignedWebhook, *, authorization: str | None = None
) -> httpx.Response:
    return await http.post(
        WEBHOOK_PATH,
        content=delivery.body.encode(),
        headers={
            "Authorization": delivery.authorization if authorization is None else authorization,
            "Content-Type": "application/webhook+json",
            "User-Agent": "LiveKit",
        },
    )


async def reserve(http: httpx.AsyncClient, camera_id: str, source: str = "METRO") -> dict[str, Any]:
    body = {"camera_id": camera_id, "user_id": "operator", "source": source}
    response = await http.post("/api/v1/stream/reserve", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def stats(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/v1/stream/stats", headers=HEADERS)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def camera_stats(http: httpx.AsyncClient, camera_id: str) -> dict[str, Any]:
    for camera in (await stats(http))["camera_stats"]:
        if camera["camera_id"] == camera_id:
            return dict(camera)
    return {"viewer_count": 0, "reserved_count": 0, "publisher_connected": False}
