"""The smaller holes an outside probe found, each against a
real ``serve`` process and real Valkey; hole 2 also against the real Docker engine.

Keys: an admin key, a ``*`` viewer key (every source), and one viewer key per agency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis

from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from tests.harness.constants import ADMIN_KEY, METRO_KEY, POLICE_KEY, STAR_KEY
from tests.harness.docker import pusher_containers
from tests.harness.http import ADMIN_HEADERS, auth, reserve
from tests.harness.metrics import scrape
from tests.harness.service import NewService, ServiceProcess, cli_run
from tests.harness.store import add_cameras
from tests.harness.waiting import eventually

PROBE_LIMITS = {"METRO": 100, "DUBAI_POLICE": 100, "TOTAL": 1000}


Probe = Callable[..., contextlib.AbstractAsyncContextManager[tuple[ServiceProcess, AsyncClient]]]


@pytest.fixture
def probe(registry: CameraRegistry, new_service: NewService) -> Probe:
    """``probe(camera_id, **env)``: the camera registered, then a ``serve`` with PROBE_LIMITS
    (pushers off unless ``env`` brings them); the service and its client."""

    @contextlib.asynccontextmanager
    async def start(
        camera_id: str, **env: str
    ) -> AsyncIterator[tuple[ServiceProcess, AsyncClient]]:
        await add_cameras(registry, camera_id)
        async with new_service(
            "probe", CCTV_SOURCE_LIMITS=json.dumps(PROBE_LIMITS), **env
        ) as service:
            yield service, service.http

    return start


async def test_hole_1_total_is_not_a_source_to_reserve_under(client: Redis, probe: Probe) -> None:
    async with probe("cam-total") as (_, http):
        for key in (ADMIN_KEY, STAR_KEY):
            response = await reserve(http, "cam-total", "TOTAL", key=key)
            assert response.status_code == 422, response.text
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert not await client.exists(keys.source_leases("TOTAL"), keys.count("TOTAL"))
        assert await client.zcard(keys.ALL_LEASES) == 0
        ok = await reserve(http, "cam-total", "METRO", key=STAR_KEY)
        assert ok.status_code == 201, ok.text


async def test_hole_3_a_refused_reserve_for_an_unconfigured_source_writes_nothing(
    client: Redis, probe: Probe
) -> None:
    async with probe("cam-quota") as (_, http):
        before = set(await client.keys("*"))
        invented = [f"AGENCY_{i}" for i in range(40)]
        for i, source in enumerate(invented):
            response = await reserve(
                http, "cam-quota", source, key=STAR_KEY if i % 2 else ADMIN_KEY
            )
            assert response.status_code == 429, response.text
            assert response.json()["error"]["code"] == "AGENCY_LIMIT_EXCEEDED"
        assert set(await client.keys("*")) == before, "a refused reserve wrote to Valkey"
        samples = await scrape(http)
        labels = {dict(labels).get("source") for (_, labels) in samples}
        assert not labels & set(invented), "a refused source became a metric label"
        refused = [
            v
            for (name, labels), v in samples.items()
            if name == "cctv_reservations_total" and dict(labels).get("source") == "_other"
        ]
        assert refused == [40.0]
        stats = (await http.get("/api/v1/stream/stats")).json()
        assert set(stats["source_stats"]) == {"METRO", "DUBAI_POLICE"}


async def test_hole_7_another_agencys_reservation_looks_like_a_missing_one(
    client: Redis, probe: Probe
) -> None:
    async with probe("cam-tenant") as (_, http):
        police = (await reserve(http, "cam-tenant", "DUBAI_POLICE", key=POLICE_KEY)).json()
        rid = police["reservation_id"]
        missing = "R" + rid[1:] if rid[0] != "R" else "S" + rid[1:]
        answers = []
        for target in (rid, missing):
            beat = await http.post(f"/api/v1/stream/heartbeat/{target}", headers=auth(METRO_KEY))
            gone = await http.delete(f"/api/v1/stream/release/{target}", headers=auth(METRO_KEY))
            answers.append(
                (
                    beat.status_code,
                    beat.json()["error"]["code"],
                    beat.text.replace(target, "<id>"),
                    gone.status_code,
                    gone.json(),
                )
            )
        assert answers[0] == answers[1], "another agency's reservation is told apart"
        assert answers[0][:2] == (404, "RESERVATION_NOT_FOUND")
        assert "POLICE" not in answers[0][2] and "police" not in answers[0][2]
        assert await client.exists(keys.reservation(rid)), "the other agency's lease survived"
        own = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=auth(POLICE_KEY))
        assert own.status_code == 200


@pytest.fixture
def pusher_env(pusher_image: str) -> Iterator[dict[str, str]]:
    yield {
        "CCTV_PUSHERS_ENABLED": "true",
        "CCTV_PUSHER_IMAGE": pusher_image,
        "CCTV_PUSHER_NETWORK": "none",
        "CCTV_PUSHER_TICK_SECONDS": "0.1",
        "CCTV_RECONCILE_INTERVAL_SECONDS": "1",
        "CCTV_DRAIN_GRACE_SECONDS": "30",  # long: the stop must not wait for it
        "CCTV_WHIP_URL": "http://127.0.0.1:9/whip",
    }


@pytest.mark.docker
@pytest.mark.usefixtures("swept")
@pytest.mark.parametrize("how", ["disable", "delete"])
async def test_hole_2_a_deleted_or_disabled_camera_stops_being_watched(
    client: Redis,
    docker_api: Any,
    pusher_env: dict[str, str],
    probe: Probe,
    how: str,
) -> None:
    camera_id = f"cam-{how}"
    async with probe(camera_id, **pusher_env) as (service, http):
        rids = [(await reserve(http, camera_id, "METRO")).json()["reservation_id"] for _ in "ab"]

        async def running() -> bool:
            rows = await asyncio.to_thread(pusher_containers, docker_api, camera_id)
            return any(row["State"] == "running" for row in rows)

        await eventually(running, 30, "the camera's pusher runs")
        if how == "disable":
            body = {"name": "off", "rtsp_url": "rtsp://10.0.0.1/off", "enabled": False}
            changed = await http.put(
                f"/api/v1/cameras/{camera_id}", json=body, headers=ADMIN_HEADERS
            )
        else:
            changed = await http.delete(f"/api/v1/cameras/{camera_id}", headers=ADMIN_HEADERS)
        assert changed.status_code == 200, changed.text

        # The leases are gone at once, through the scripts: counters and stats agree.
        assert await client.zcard(keys.camera_leases(camera_id)) == 0
        assert await client.get(keys.count("METRO")) == "0"
        stats = (await http.get("/api/v1/stream/stats")).json()
        assert stats["total_reserved"] == 0
        for rid in rids:
            beat = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
            assert beat.status_code == 404, beat.text
            assert "token" not in beat.text
        again = await reserve(http, camera_id, "METRO")
        assert again.status_code == (409 if how == "disable" else 404), again.text

        async def torn_down() -> bool:
            return not await asyncio.to_thread(pusher_containers, docker_api, camera_id)

        # Well inside the 30 s drain grace: the stop does not wait for it (liveness bound).
        took = await eventually(torn_down, 25, "the pusher is torn down")
        print(f"{how}: pusher removed {took:.2f} s after the change")
        done = cli_run(service, "cameras", "--json")
        assert done.returncode == 0, done.stderr


async def test_hole_2_a_lease_of_a_disabled_camera_is_never_renewed_nor_given_a_token(
    client: Redis, probe: Probe
) -> None:
    """The moment between the registry write and the releases: heartbeat refuses (409) and
    mints nothing, because the heartbeat script reads the camera itself."""
    env = {"CCTV_TOKEN_REFRESH_SECONDS": "3600"}  # over the TTL: every heartbeat has a token
    async with probe("cam-race", **env) as (_, http):
        rid = (await reserve(http, "cam-race", "METRO")).json()["reservation_id"]
        fresh = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
        assert fresh.status_code == 200 and fresh.json()["token"], fresh.text
        await client.hset(keys.camera("cam-race"), "enabled", "0")  # the write, not yet the rest
        expires = await client.zscore(keys.ALL_LEASES, f"{rid}|cam-race|METRO")
        refused = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "CAMERA_DISABLED"
        assert "token" not in refused.json()
        assert await client.zscore(keys.ALL_LEASES, f"{rid}|cam-race|METRO") == expires
        await client.delete(keys.camera("cam-race"))
        deleted = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
        assert deleted.status_code == 404, deleted.text
