"""LiveKit webhooks over real HTTP into a real ``serve`` process on real Valkey.

Deliveries are real ``livekit.protocol`` events, serialised and signed exactly as LiveKit does
(the wire fake's signer). No Docker and no LiveKit server are needed: the endpoint verifies
with the key and secret alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.webhook import WebhookEvent
from redis.asyncio import Redis

from orchestrator.domain.ids import publisher_identity, room_name
from orchestrator.store.cameras import CameraRegistry
from tests.fakes.livekit import SignedWebhook
from tests.fakes.livekit.ids import new_id
from tests.harness.constants import WRONG_SECRET
from tests.harness.http import admit, camera_stats, release, stats
from tests.harness.livekit import deliver, participant_event, signed, signed_at
from tests.harness.metrics import scrape, value
from tests.harness.service import NewService
from tests.harness.store import add_cameras

SEQUENCES = 1000
WORKERS = 16
DUP = DisconnectReason.DUPLICATE_IDENTITY
LEFT, JOINED = "participant_left", "participant_joined"


@pytest.fixture
async def http(new_service: NewService) -> AsyncIterator[httpx.AsyncClient]:
    limits = {"METRO": 10_000, "TOTAL": 10_000}
    env = {"CCTV_SOURCE_LIMITS": json.dumps(limits), "CCTV_SWEEP_INTERVAL_SECONDS": "0.2"}
    async with new_service("hooks", **env) as service:
        yield service.http


def joined(camera_id: str, rid: str, sid: str, at_ms: int) -> WebhookEvent:
    return participant_event(JOINED, room_name(camera_id), f"viewer_{rid}", sid, at_ms)


async def test_forged_tampered_replayed_and_bearer_deliveries_are_rejected(
    client: Redis, http: httpx.AsyncClient
) -> None:
    await add_cameras(CameraRegistry(client), "cam-sec")
    rid = (await admit(http, "cam-sec"))["reservation_id"]
    now_ms = int(time.time() * 1000)
    good = signed(joined("cam-sec", rid, "PA_first", now_ms))

    forged = signed(good.event, secret=WRONG_SECRET)
    assert (await deliver(http, forged)).status_code == 401
    tampered = SignedWebhook(
        good.event, good.body.replace("PA_first", "PA_other"), good.authorization
    )
    assert (await deliver(http, tampered)).status_code == 401
    bearer = await deliver(http, good, authorization=f"Bearer {good.authorization}")
    assert bearer.status_code == 401
    assert bearer.json()["error"]["code"] == "WEBHOOK_REJECTED"
    assert (await deliver(http, good, authorization="")).status_code == 401
    stale = signed_at(joined("cam-sec", rid, "PA_first", now_ms), int(time.time()) - 301)
    assert (await deliver(http, stale)).status_code == 401, "a token older than 5 min"
    assert (await camera_stats(http, "cam-sec"))["viewer_count"] == 0, "nothing was applied"

    first = await deliver(http, good)
    assert first.status_code == 200 and first.json()["outcome"] == "connected"
    recent = signed_at(joined("cam-sec", rid, "PA_first", now_ms), int(time.time()) - 200)
    assert (await deliver(http, recent)).json()["outcome"] == "connected", "inside the window"

    left = signed(
        participant_event(LEFT, room_name("cam-sec"), f"viewer_{rid}", "PA_first", now_ms)
    )
    assert (await deliver(http, left)).json()["outcome"] == "disconnected"
    replay = await deliver(http, good)  # the same delivery again: acknowledged, not re-applied
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    camera = await camera_stats(http, "cam-sec")
    assert camera["viewer_count"] == 0 and camera["reserved_count"] == 1

    metrics = await scrape(http)
    assert value(metrics, "cctv_webhooks_total", event="unverified", result="rejected") == 5.0
    assert (
        value(metrics, "cctv_webhooks_total", event="participant_joined", result="duplicate") == 1.0
    )


@dataclass
class Scenario:
    """One camera's true history, then a randomly duplicated and reordered delivery of it."""

    camera_id: str
    events: list[WebhookEvent] = field(default_factory=list)
    connected: set[str] = field(default_factory=set)
    publisher: bool = False


def history(
    rng: random.Random, camera_id: str, rids: list[str], start_ms: int, publisher: bool
) -> Scenario:
    """Per identity: sessions join at increasing times; each earlier session ends by a
    DUPLICATE_IDENTITY replacement or a plain leave (page refresh); the last may leave.
    Viewers are new in each scenario; the camera's publisher carries over from the last one."""
    scenario = Scenario(camera_id, publisher=publisher)
    room = room_name(camera_id)
    clock = start_ms
    identities = [(f"viewer_{rid}", ParticipantInfo.Kind.STANDARD, rid) for rid in rids]
    identities.append((publisher_identity(camera_id), ParticipantInfo.Kind.INGRESS, ""))
    for identity, kind, rid in identities:
        sessions = rng.randint(0, 3)
        if sessions and not rid:
            scenario.publisher = False
        for i in range(sessions):
            clock += rng.randint(1, 50)
            sid = new_id("PA_")
            scenario.events.append(participant_event(JOINED, room, identity, sid, clock, kind=kind))
            last = i == sessions - 1
            if last and rng.random() < 0.5:
                if rid:
                    scenario.connected.add(rid)
                else:
                    scenario.publisher = True
                continue
            reason = DUP if not last and rng.random() < 0.5 else DisconnectReason.CLIENT_INITIATED
            left = participant_event(LEFT, room, identity, sid, clock, kind=kind, reason=reason)
            scenario.events.append(left)
    return scenario


def deliveries(rng: random.Random, scenario: Scenario) -> list[SignedWebhook]:
    """Every event, some twice (same id: a retry), some lefts three times (new ids), shuffled."""
    out: list[SignedWebhook] = []
    for event in scenario.events:
        delivery = signed(event)
        out.append(delivery)
        if rng.random() < 0.3:
            out.append(delivery)
        if event.event == LEFT and rng.random() < 0.3:
            for _ in range(2):
                again = WebhookEvent()
                again.CopyFrom(event)
                again.id = new_id("EV_")
                out.append(signed(again))
    rng.shuffle(out)
    return out


async def test_duplicated_and_reordered_webhooks_never_make_counts_drift(
    client: Redis, http: httpx.AsyncClient
) -> None:
    cameras = [f"cam-order-{w}" for w in range(WORKERS)]
    await add_cameras(CameraRegistry(client), *cameras)
    rng = random.Random(20261121)
    seeds = [rng.randrange(2**32) for _ in range(SEQUENCES)]
    checked = 0

    async def worker(w: int) -> None:
        nonlocal checked
        camera_id = cameras[w]
        publisher = False
        start_ms = int(time.time() * 1000) - 3_600_000
        for n, seed in enumerate(seeds[w::WORKERS]):
            local = random.Random(seed)
            rids = [(await admit(http, camera_id))["reservation_id"] for _ in range(3)]
            scenario = history(local, camera_id, rids, start_ms + n * 1_000, publisher)
            publisher = scenario.publisher
            for delivery in deliveries(local, scenario):
                response = await deliver(http, delivery)
                assert response.status_code == 200, response.text
            camera = await camera_stats(http, camera_id)
            assert camera["viewer_count"] == len(scenario.connected), (seed, scenario)
            assert camera["publisher_connected"] is scenario.publisher, seed
            assert camera["reserved_count"] == 3, "a left cuts a lease to the grace, never ends it"
            for rid in rids:
                await release(http, rid)
            assert (await camera_stats(http, camera_id))["viewer_count"] == 0
            checked += 1

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    assert checked == SEQUENCES
    body = await stats(http)
    assert body["total_viewers"] == 0 and body["total_reserved"] == 0
    assert body["source_stats"]["METRO"]["current"] == 0
