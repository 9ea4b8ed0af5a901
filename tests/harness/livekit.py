"""LiveKit for the service tests: the wire fake with a real ``serve`` wired to it (:func:`stack`),
webhook deliveries signed like LiveKit's, and viewer tokens for the fake's own tests.

Webhook bodies are built from real ``livekit.protocol`` messages and signed by the wire fake's
signer; :func:`signed_at` signs with a chosen issue time (replay-window tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from livekit import api
from livekit.protocol.models import DisconnectReason, ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from orchestrator.domain.ids import new_reservation_id, publisher_identity, room_name
from orchestrator.livekit.tokens import TokenMinter
from tests.fakes.livekit import FakeLiveKit, SignedWebhook, WebhookPolicy, encode_event, sign_event
from tests.fakes.livekit.ids import new_id
from tests.harness.constants import LIVEKIT_KEY, LIVEKIT_SECRET, TEST_ROOM, WEBHOOK_PATH
from tests.harness.service import ServiceProcess
from tests.harness.store import register_cameras

LEASE_S = 6.0
RECONNECT_GRACE_S = 1.5
SYNC_S = 1.0


# --- the fake and a service wired to it ------------------------------------------------------


@dataclass
class Stack:
    fake: FakeLiveKit
    service: ServiceProcess
    http: httpx.AsyncClient


# The ``new_stack`` fixture: ``new_stack(env, whip_base_url=None, cameras=())``, to ``async with``.
NewStack = Callable[..., contextlib.AbstractAsyncContextManager[Stack]]


def base_env(**extra: str) -> dict[str, str]:
    """LiveKit's server API on, short passes and leases, no pushers."""
    return {
        "CCTV_LIVEKIT_ENABLED": "true",
        "CCTV_LIVEKIT_SYNC_INTERVAL_SECONDS": str(SYNC_S),
        "CCTV_LIVEKIT_TIMEOUT_SECONDS": "0.5",
        "CCTV_RECONNECT_GRACE_SECONDS": str(RECONNECT_GRACE_S),
        "CCTV_LEASE_SECONDS": str(LEASE_S),
        "CCTV_SWEEP_INTERVAL_SECONDS": "0.2",
        "CCTV_PUSHERS_ENABLED": "false",
        "CCTV_SOURCE_LIMITS": json.dumps({"METRO": 10_000, "TOTAL": 10_000}),
        **extra,
    }


def pusher_env(image: str, **extra: str) -> dict[str, str]:
    """:func:`base_env` with pushers of ``image`` on the host network, restarting quickly."""
    defaults = {
        "CCTV_PUSHERS_ENABLED": "true",
        "CCTV_PUSHER_IMAGE": image,
        "CCTV_PUSHER_NETWORK": "host",
        "CCTV_PUSHER_STOP_TIMEOUT_SECONDS": "2",
        "CCTV_DRAIN_GRACE_SECONDS": "1",
        "CCTV_PUSHER_TICK_SECONDS": "0.1",
        "CCTV_RECONCILE_INTERVAL_SECONDS": "1",
        "CCTV_RESTART_INITIAL_SECONDS": "0.5",
        "CCTV_RESTART_MAX_SECONDS": "2",
    }
    return base_env(**{**defaults, **extra})


@contextlib.asynccontextmanager
async def stack(
    tmp: Path,
    valkey_url: str,
    env: dict[str, str],
    *,
    whip_base_url: str | None = None,
    cameras: Iterable[str] = (),
    host: str = "127.0.0.1",
) -> AsyncIterator[Stack]:
    """``cameras`` registered, then the fake, a service pointing at it, and the fake's webhooks
    pointed back at the service. ``whip_base_url``: the ingress URL the fake hands out
    (default: its own WHIP endpoint). ``host``: where the fake listens (an address of this
    machine pushers reach, such as the test cluster's host link)."""
    await register_cameras(valkey_url, *cameras)
    policy = WebhookPolicy(backoff_seconds=0.05)
    fake_lk = FakeLiveKit(
        LIVEKIT_KEY, LIVEKIT_SECRET, webhook_policy=policy, whip_base_url=whip_base_url, host=host
    )
    async with (
        fake_lk as fake,
        ServiceProcess("lk", tmp, valkey_url, {"LIVEKIT_URL": fake.url, **env}) as service,
    ):
        fake.webhook_url = service.url + WEBHOOK_PATH
        yield Stack(fake, service, service.http)


# --- webhooks --------------------------------------------------------------------------------


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


# --- tokens ----------------------------------------------------------------------------------


def viewer_token(identity: str, room: str = TEST_ROOM, secret: str = LIVEKIT_SECRET) -> str:
    """A subscribe-only token for ``room``, as the service mints them (signed with ``secret``)."""
    grants = api.VideoGrants(
        room_join=True, room=room, can_subscribe=True, can_publish=False, can_publish_data=False
    )
    return api.AccessToken(LIVEKIT_KEY, secret).with_identity(identity).with_grants(grants).to_jwt()


def join_stranger(fake: FakeLiveKit, camera_id: str) -> str:
    """Join the camera's room with a valid viewer token for which no reservation was ever
    made; the stranger's identity."""
    stranger = new_reservation_id()
    expires_ms = int(time.time() * 1000) + 600_000
    minter = TokenMinter(LIVEKIT_KEY, LIVEKIT_SECRET)
    fake.join(minter.viewer_token(stranger, "intruder", camera_id, expires_ms))
    return f"viewer_{stranger}"


async def create_orphan_ingress(fake: FakeLiveKit, camera_id: str) -> api.IngressInfo:
    """An ingress made in LiveKit for ``camera_id`` behind the service's back (the real
    ``livekit-api`` client, as an operator's script would)."""
    async with api.LiveKitAPI(fake.url, LIVEKIT_KEY, LIVEKIT_SECRET) as lk:
        request = api.CreateIngressRequest(
            input_type=api.IngressInput.WHIP_INPUT,
            name=publisher_identity(camera_id),
            room_name=room_name(camera_id),
            participant_identity=publisher_identity(camera_id),
        )
        return await asyncio.wait_for(lk.ingress.create_ingress(request), 5)
