"""The LiveKit pass against the strict fake, when LiveKit refuses part of it (issue 14).

After an unclean LiveKit stop, participant records stay in its store: ListParticipants lists
them ACTIVE, and RemoveParticipant answers 503 (livekit-wire §9.2). The pass must treat each
identity on its own, keep going (other ghosts, the orphan ingress, presence), count the
failure and retry it on the next pass; and a stale INGRESS record must not make the camera's
publisher look connected. A real ``serve`` process, real Valkey, the fake over real HTTP.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from livekit.api import CreateIngressRequest, IngressInput, LiveKitAPI
from livekit.protocol.models import ParticipantInfo
from redis.asyncio import Redis

from orchestrator.domain.ids import new_reservation_id, publisher_identity, room_name
from orchestrator.livekit.tokens import TokenMinter
from orchestrator.store.cameras import CameraRegistry
from tests.conftest import add_cameras
from tests.integration.test_service_metrics import scrape, value
from tests.livekit_helpers import HEADERS, LIVEKIT_KEY, camera_stats, reserve
from tests.livekit_stack import SYNC_S, base_env, stack
from tests.service_process import LIVEKIT_SECRET
from tests.waiting import eventually

FAILURES = "cctv_livekit_sync_failures_total"


@pytest.mark.parametrize("no_response_seconds", [0.0, 1.0], ids=["503", "503-after-1s"])
async def test_a_ghost_livekit_refuses_to_remove_does_not_stop_the_pass(
    client: Redis, valkey_url: str, tmp_path: Path, no_response_seconds: float
) -> None:
    """1 s: the real server's delay, past the service's 0.5 s attempt timeout (a timeout
    then, not a 503): the same outcome either way."""
    camera_id, room = "cam-503", room_name("cam-503")
    await add_cameras(CameraRegistry(client), camera_id)
    env = base_env(CCTV_LEASE_SECONDS="300")  # no heartbeats needed over the test
    async with stack(tmp_path, valkey_url, env) as s:
        s.fake.no_response_seconds = no_response_seconds
        kept = await reserve(s.http, camera_id)
        released = await reserve(s.http, camera_id)
        webhook_url, s.fake.webhook_url = s.fake.webhook_url, None  # webhooks dropped
        s.fake.join(kept["token"])
        s.fake.join(released["token"])
        stranger = new_reservation_id()  # a valid token, but no reservation was ever made
        minter = TokenMinter(LIVEKIT_KEY, LIVEKIT_SECRET)
        expires_ms = int(time.time() * 1000) + 600_000
        s.fake.join(minter.viewer_token(stranger, "intruder", camera_id, expires_ms))
        stale = f"viewer_{new_reservation_id()}"  # left in LiveKit's store by an unclean stop
        s.fake.ghost(room, stale)
        s.fake.ghost(room, publisher_identity(camera_id), ParticipantInfo.Kind.INGRESS)
        async with LiveKitAPI(s.fake.url, LIVEKIT_KEY, LIVEKIT_SECRET) as lk:
            orphan = await asyncio.wait_for(
                lk.ingress.create_ingress(
                    CreateIngressRequest(
                        input_type=IngressInput.WHIP_INPUT,
                        name=publisher_identity("cam-deleted"),
                        room_name=room_name("cam-deleted"),
                        participant_identity=publisher_identity("cam-deleted"),
                    )
                ),
                5,
            )
        response = await s.http.delete(
            f"/api/v1/stream/release/{released['reservation_id']}", headers=HEADERS
        )
        assert response.status_code == 200

        def identities() -> set[str]:
            return {p.identity for p in s.fake.participants(room)}

        async def pass_done() -> bool:
            camera = await camera_stats(s.http, camera_id)
            return (
                {released["identity"], f"viewer_{stranger}"}.isdisjoint(identities())
                and orphan.ingress_id not in s.fake.ingresses()
                and camera["viewer_count"] == 1  # kept's join came through the listing only
            )

        await eventually(pass_done, 10 * SYNC_S + 10, "ghosts, the orphan and presence handled")
        assert identities() == {kept["identity"], stale, publisher_identity(camera_id)}
        camera = await camera_stats(s.http, camera_id)
        assert camera["publisher_connected"] is False, "a stale INGRESS record is not a publisher"
        first = value(await scrape(s.http), FAILURES, step="ghost_removal")
        assert first >= 1, "the refused removal is counted"

        async def retried() -> bool:  # the next passes try the stale ghost again
            return value(await scrape(s.http), FAILURES, step="ghost_removal") >= first + 2

        await eventually(retried, 10 * SYNC_S + 10, "the refused removal retried by later passes")
        assert value(await scrape(s.http), FAILURES, step="listing") == 0
        assert (await camera_stats(s.http, camera_id))["viewer_count"] == 1

        s.fake.remove_ghost(room, stale)  # LiveKit's store finally forgets it
        s.fake.webhook_url = webhook_url
        settled = value(await scrape(s.http), FAILURES, step="ghost_removal")
        await asyncio.sleep(3 * SYNC_S + 1)
        assert value(await scrape(s.http), FAILURES, step="ghost_removal") <= settled + 1
        assert identities() == {kept["identity"], publisher_identity(camera_id)}


async def test_a_room_a_viewer_creates_first_gets_the_services_timeouts(
    client: Redis, valkey_url: str, tmp_path: Path
) -> None:
    """LiveKit keeps a live room's timeouts whatever CreateRoom asks later (§9.9): the
    viewer's token carries them, so the first join creates the room with them."""
    camera_id = "cam-early"
    await add_cameras(CameraRegistry(client), camera_id)
    async with stack(tmp_path, valkey_url, base_env()) as s:  # no pusher: no CreateRoom
        s.fake.join((await reserve(s.http, camera_id))["token"])
        room = s.fake.rooms()[room_name(camera_id)]
        assert (room.empty_timeout, room.departure_timeout) == (120, 30)
        assert "livekit.RoomService/CreateRoom" not in s.fake.twirp_calls
