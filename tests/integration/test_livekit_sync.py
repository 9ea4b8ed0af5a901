"""The LiveKit pass against the strict fake, when LiveKit refuses part of it.

After an unclean LiveKit stop, participant records stay in its store: ListParticipants lists
them ACTIVE, and RemoveParticipant answers 503. The pass must treat each
identity on its own, keep going (other ghosts, the orphan ingress, presence), count the
failure and retry it on the next pass; and a stale INGRESS record must not make the camera's
publisher look connected. A real ``serve`` process, real Valkey, the fake over real HTTP.
"""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol.models import ParticipantInfo

from orchestrator.domain.ids import new_reservation_id, publisher_identity, room_name
from tests.harness.http import admit, camera_stats, release
from tests.harness.livekit import (
    SYNC_S,
    NewStack,
    base_env,
    create_orphan_ingress,
    join_stranger,
)
from tests.harness.metrics import scrape, value
from tests.harness.waiting import eventually

FAILURES = "cctv_livekit_sync_failures_total"


@pytest.mark.parametrize("no_response_seconds", [0.0, 1.0], ids=["503", "503-after-1s"])
async def test_a_ghost_livekit_refuses_to_remove_does_not_stop_the_pass(
    new_stack: NewStack, no_response_seconds: float
) -> None:
    """1 s: the real server's delay, past the service's 0.5 s attempt timeout (a timeout
    then, not a 503): the same outcome either way."""
    camera_id, room = "cam-503", room_name("cam-503")
    env = base_env(CCTV_LEASE_SECONDS="300")  # no heartbeats needed over the test
    async with new_stack(env, cameras=[camera_id]) as s:
        s.fake.no_response_seconds = no_response_seconds
        kept = await admit(s.http, camera_id)
        released = await admit(s.http, camera_id)
        webhook_url, s.fake.webhook_url = s.fake.webhook_url, None  # webhooks dropped
        s.fake.join(kept["token"])
        s.fake.join(released["token"])
        stranger = join_stranger(s.fake, camera_id)
        stale = f"viewer_{new_reservation_id()}"  # left in LiveKit's store by an unclean stop
        s.fake.ghost(room, stale)
        s.fake.ghost(room, publisher_identity(camera_id), ParticipantInfo.Kind.INGRESS)
        orphan = await create_orphan_ingress(s.fake, "cam-deleted")
        await release(s.http, released["reservation_id"])

        def identities() -> set[str]:
            return {p.identity for p in s.fake.participants(room)}

        async def pass_done() -> bool:
            camera = await camera_stats(s.http, camera_id)
            return (
                {released["identity"], stranger}.isdisjoint(identities())
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
    new_stack: NewStack,
) -> None:
    """LiveKit keeps a live room's timeouts whatever CreateRoom asks later: the
    viewer's token carries them, so the first join creates the room with them."""
    camera_id = "cam-early"
    async with new_stack(base_env(), cameras=[camera_id]) as s:  # no pusher: no CreateRoom
        s.fake.join((await admit(s.http, camera_id))["token"])
        room = s.fake.rooms()[room_name(camera_id)]
        assert (room.empty_timeout, room.departure_timeout) == (120, 30)
        assert "livekit.RoomService/CreateRoom" not in s.fake.twirp_calls
