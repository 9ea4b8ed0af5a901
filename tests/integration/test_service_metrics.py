"""The per-replica counters and histograms of ``/metrics`` move with what really happened
a real ``serve`` with real Valkey, the real Docker engine and the LiveKit fake.

LiveKit hangs first, so the first start fails on a dependency and is restarted once LiveKit
answers again; a quota rejection, a heartbeat, an unknown path, viewer webhooks and a
hand-started orphan container each leave their mark.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.harness.docker import pusher_containers, start_orphan
from tests.harness.http import ADMIN_HEADERS, admit, reserve
from tests.harness.livekit import NewStack, pusher_env
from tests.harness.metrics import scrape, value
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]


async def test_counters_follow_reserves_starts_failures_webhooks_and_corrections(
    docker_api: Any,
    pusher_image: str,
    whip_pusher_image: str,
    new_stack: NewStack,
) -> None:
    limits = json.dumps({"METRO": 2, "TOTAL": 10})
    env = pusher_env(whip_pusher_image, CCTV_SOURCE_LIMITS=limits)
    async with new_stack(env, cameras=["cam-a", "cam-stray"]) as s:
        s.fake.hang()
        first = await admit(s.http, "cam-a")

        async def failed_on_livekit() -> bool:
            m = await scrape(s.http)
            return (
                value(m, "cctv_pusher_starts_total", result="failed") >= 1
                and value(m, "cctv_dependency_errors_total", dependency="livekit") >= 1
            )

        await eventually(failed_on_livekit, 30, "the start failed on the hung LiveKit")
        s.fake.release()

        async def running() -> bool:
            return (
                len(await asyncio.to_thread(pusher_containers, docker_api, "cam-a", running=True))
                == 1
            )

        await eventually(running, 30, "the pusher restarted once LiveKit answered")
        s.fake.join(first["token"])
        await admit(s.http, "cam-a")
        refused = await reserve(s.http, "cam-a")
        assert refused.status_code == 429
        rid = first["reservation_id"]
        beat = await s.http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
        assert beat.status_code == 200
        assert (await s.http.get("/no/such/path")).status_code == 404
        start_orphan(docker_api, pusher_image, "cam-stray", generation=3)

        async def orphan_counted() -> bool:
            m = await scrape(s.http)
            return value(m, "cctv_reconcile_corrections_total", kind="orphan") >= 1

        await eventually(orphan_counted, 20, "the reconcile loop removed and counted the orphan")
        m = await scrape(s.http)

    assert value(m, "cctv_reservations_total", source="METRO", result="admitted") == 2
    assert value(m, "cctv_reservations_total", source="METRO", result="quota_exceeded") == 1
    assert value(m, "cctv_quota_rejections_total", source="METRO") == 1
    assert value(m, "cctv_pusher_starts_total", result="running") == 1
    assert value(m, "cctv_pusher_restarts_total") >= 1
    assert value(m, "cctv_pusher_start_seconds_count") == 1
    assert value(m, "cctv_dependency_errors_total", dependency="valkey") == 0
    heartbeat = {
        "method": "POST",
        "route": "/api/v1/stream/heartbeat/{reservation_id}",
        "status": "200",
    }
    assert value(m, "cctv_http_request_duration_seconds_count", **heartbeat) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(m, "cctv_http_request_duration_seconds_count", **unmatched) == 1
    assert not any(rid in str(labels) for (_, labels) in m), "ids never become label values"
    joined = sum(
        v
        for (name, labels), v in m.items()
        if name == "cctv_webhooks_total" and ("event", "participant_joined") in labels
    )
    assert joined >= 2, "the viewer's and the publisher's joins were counted"
