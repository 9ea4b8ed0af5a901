"""The on-call CLI against a live service.

A real ``serve`` process runs with real Valkey, the real Docker engine (the WHIP stand-in
pusher on the host network) and the LiveKit wire fake; every command runs as its own
``python -m orchestrator`` process with the service's environment, as on-call would run it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from orchestrator.domain.ids import room_name
from orchestrator.store import keys
from tests.harness.docker import pusher_containers, start_orphan
from tests.harness.http import ADMIN_HEADERS, admit, camera_stats
from tests.harness.livekit import NewStack, Stack, pusher_env
from tests.harness.service import cli, cli_json
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]


async def counters(client: Redis, *sources: str) -> dict[str, int]:
    values = await client.mget([keys.count(s) for s in sources])
    return {s: int(v or 0) for s, v in zip(sources, values, strict=True)}


async def watched(s: Stack, docker_api: Any, camera_id: str, viewers: int) -> list[str]:
    """Reserve ``viewers`` slots, join them to the fake room; wait for pusher and counts."""
    tokens = [await admit(s.http, camera_id) for _ in range(viewers)]
    for body in tokens:
        s.fake.join(body["token"])

    async def settled() -> bool:
        stat = await camera_stats(s.http, camera_id)
        running = await asyncio.to_thread(pusher_containers, docker_api, camera_id, running=True)
        return stat["viewer_count"] == viewers and len(running) == 1

    await eventually(settled, 30, f"{camera_id}: pusher running and {viewers} viewers counted")
    return [str(body["reservation_id"]) for body in tokens]


def viewer_identities(s: Stack, camera_id: str) -> set[str]:
    return {
        p.identity
        for p in s.fake.participants(room_name(camera_id))
        if p.identity.startswith("viewer_")
    }


async def test_reset_camera_with_connected_viewers_leaves_other_cameras_and_counts_right(
    client: Redis, docker_api: Any, whip_pusher_image: str, new_stack: NewStack
) -> None:
    async with new_stack(pusher_env(whip_pusher_image), cameras=["cam-a", "cam-b"]) as s:
        await watched(s, docker_api, "cam-a", 2)
        [kept] = await watched(s, docker_api, "cam-b", 1)
        assert len(viewer_identities(s, "cam-a")) == 2

        report = await asyncio.to_thread(cli_json, s.service, "reset-camera", "cam-a")
        assert report["released"] == 2 and report["kicked"] == 2, report
        assert report["state"] == "IDLE" and report["container_left"] is False, report

        assert await asyncio.to_thread(pusher_containers, docker_api, "cam-a", running=True) == []
        assert (
            len(await asyncio.to_thread(pusher_containers, docker_api, "cam-b", running=True)) == 1
        )
        assert viewer_identities(s, "cam-a") == set(), "the viewers were disconnected"
        assert await client.zcard(keys.camera_leases("cam-a")) == 0
        assert await counters(client, "METRO") == {"METRO": 1}
        status = await asyncio.to_thread(cli_json, s.service, "status")
        assert status["reservations"] == 1 and status["drift"] == [], status
        heartbeat = await s.http.post(f"/api/v1/stream/heartbeat/{kept}", headers=ADMIN_HEADERS)
        assert heartbeat.status_code == 200, "the other camera's viewer is untouched"

        again = await asyncio.to_thread(cli_json, s.service, "reset-camera", "cam-a")
        assert (again["released"], again["kicked"], again["state"]) == (0, 0, "IDLE")
        assert await counters(client, "METRO") == {"METRO": 1}


async def test_reset_all_yes_leaves_the_seeds_clean_state(
    client: Redis, docker_api: Any, whip_pusher_image: str, new_stack: NewStack
) -> None:
    async with new_stack(pusher_env(whip_pusher_image), cameras=["cam-a", "cam-b", "cam-c"]) as s:
        for camera_id, viewers in (("cam-a", 2), ("cam-b", 1), ("cam-c", 3)):
            await watched(s, docker_api, camera_id, viewers)
        assert len(pusher_containers(docker_api)) == 3

        refused = await asyncio.to_thread(cli, s.service, "reset", "--all", code=1)
        assert refused == "" and len(pusher_containers(docker_api)) == 3, (
            "no --yes, no tty: nothing done"
        )

        result = await asyncio.to_thread(cli_json, s.service, "reset", "--all", "--yes")
        assert sorted(r["camera_id"] for r in result["cameras"]) == ["cam-a", "cam-b", "cam-c"]
        assert sum(r["released"] for r in result["cameras"]) == 6

        # The seed's "verify clean state", answered by the engine and Valkey themselves.
        assert pusher_containers(docker_api) == []
        assert [k async for k in client.scan_iter(match="stream:reservation:*")] == []
        assert await counters(client, "METRO", "BUS") == {"METRO": 0, "BUS": 0}
        for camera_id in ("cam-a", "cam-b", "cam-c"):
            assert viewer_identities(s, camera_id) == set()
        status = await asyncio.to_thread(cli_json, s.service, "status")
        assert status["reservations"] == 0 and status["containers"] == [], status
        assert status["drift"] == [] and status["pushers"]["IDLE"] == 0, status


async def test_recount_repairs_a_counter_corrupted_by_hand(
    client: Redis, docker_api: Any, whip_pusher_image: str, new_stack: NewStack
) -> None:
    async with new_stack(pusher_env(whip_pusher_image), cameras=["cam-a"]) as s:
        await watched(s, docker_api, "cam-a", 3)
        await client.set(keys.count("METRO"), 42)  # what the seed's `SET stream:count:X` did
        await client.set(keys.count("BUS"), "garbage")

        screen = await asyncio.to_thread(cli, s.service, "status")
        assert "counter METRO: stored '42', live leases 3 (run: recount METRO)" in screen
        assert "counter BUS: stored 'garbage', live leases 0" in screen

        [metro] = await asyncio.to_thread(cli_json, s.service, "recount", "METRO")
        assert (metro["source"], metro["before"], metro["after"]) == ("METRO", 42, 3)
        assert await counters(client, "METRO") == {"METRO": 3}
        every = await asyncio.to_thread(cli_json, s.service, "recount")
        assert {r["source"]: r["after"] for r in every}["BUS"] == 0
        assert await counters(client, "BUS") == {"BUS": 0}

        again = await asyncio.to_thread(cli, s.service, "recount")
        assert "yes" not in again, f"a second recount repairs nothing:\n{again}"
        status = await asyncio.to_thread(cli_json, s.service, "status")
        assert status["drift"] == [], status


async def test_reconcile_dry_run_changes_nothing_and_prints_its_plan(
    client: Redis,
    docker_api: Any,
    pusher_image: str,
    whip_pusher_image: str,
    new_stack: NewStack,
) -> None:
    env = pusher_env(whip_pusher_image, CCTV_RECONCILE_INTERVAL_SECONDS="600")
    async with new_stack(env, cameras=["cam-a", "cam-stray"]) as s:
        await watched(s, docker_api, "cam-a", 1)
        stray = start_orphan(docker_api, pusher_image, "cam-stray", generation=4)
        assert stray is not None, "the orphan was removed before it started"
        await client.set(keys.count("METRO"), 9)
        before = {c["Id"]: c["State"] for c in pusher_containers(docker_api)}
        meta_before = await client.hgetall(keys.metadata("cam-stray"))

        plan = await asyncio.to_thread(cli, s.service, "reconcile", "--dry-run")
        assert plan.startswith("plan (dry run, nothing changed):"), plan
        assert "orphan   cam-stray" in plan and stray.id[:12] in plan, plan
        assert "counter" in plan and "METRO: stored '9', live 1" in plan, plan
        assert {c["Id"]: c["State"] for c in pusher_containers(docker_api)} == before
        assert await client.get(keys.count("METRO")) == "9"
        assert await client.hgetall(keys.metadata("cam-stray")) == meta_before  # no fence

        applied = await asyncio.to_thread(cli_json, s.service, "reconcile")
        assert [(c["kind"], c["camera_id"]) for c in applied["corrections"]] == [
            ("orphan", "cam-stray")
        ]
        assert stray.id not in {c["Id"] for c in pusher_containers(docker_api)}
        assert await counters(client, "METRO") == {"METRO": 1}
        assert (
            len(await asyncio.to_thread(pusher_containers, docker_api, "cam-a", running=True)) == 1
        )

        second = await asyncio.to_thread(cli_json, s.service, "reconcile", "--dry-run")
        assert second["corrections"] == [] and second["counters"] == [], second
