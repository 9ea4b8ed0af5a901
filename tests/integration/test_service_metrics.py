"""The per-replica counters and histograms of ``/metrics`` move with what really happened
(issue 6): a real ``serve`` with real Valkey, the real Docker engine and the LiveKit fake.

LiveKit hangs first, so the first start fails on a dependency and is restarted once LiveKit
answers again; a quota rejection, a heartbeat, an unknown path, viewer webhooks and a
hand-started orphan container each leave their mark.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from orchestrator.runtime import CAMERA_LABEL, GENERATION_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from orchestrator.store.cameras import CameraRegistry
from tests.conftest import add_cameras
from tests.livekit_helpers import HEADERS, reserve
from tests.livekit_stack import pusher_env, running_pushers, stack
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counters_follow_reserves_starts_failures_webhooks_and_corrections(
    client: Redis,
    docker_api: Any,
    pusher_image: str,
    whip_pusher_image: str,
    valkey_url: str,
    tmp_path: Path,
) -> None:
    await add_cameras(CameraRegistry(client), "cam-a", "cam-stray")
    limits = json.dumps({"METRO": 2, "TOTAL": 10})
    env = pusher_env(whip_pusher_image, CCTV_SOURCE_LIMITS=limits)
    async with stack(tmp_path, valkey_url, env) as s:
        s.fake.hang()
        first = await reserve(s.http, "cam-a")

        async def failed_on_livekit() -> bool:
            m = await scrape(s.http)
            return (
                value(m, "cctv_pusher_starts_total", result="failed") >= 1
                and value(m, "cctv_dependency_errors_total", dependency="livekit") >= 1
            )

        await eventually(failed_on_livekit, 30, "the start failed on the hung LiveKit")
        s.fake.release()

        async def running() -> bool:
            return len(await asyncio.to_thread(running_pushers, docker_api, "cam-a")) == 1

        await eventually(running, 30, "the pusher restarted once LiveKit answered")
        s.fake.join(first["token"])
        await reserve(s.http, "cam-a")
        refused = await s.http.post(
            "/api/v1/stream/reserve",
            json={"camera_id": "cam-a", "user_id": "op", "source": "METRO"},
            headers=HEADERS,
        )
        assert refused.status_code == 429
        rid = first["reservation_id"]
        beat = await s.http.post(f"/api/v1/stream/heartbeat/{rid}", headers=HEADERS)
        assert beat.status_code == 200
        assert (await s.http.get("/no/such/path")).status_code == 404
        docker_api.containers.run(
            pusher_image,
            name="whip-pusher-cam-stray",
            detach=True,
            network_mode="none",
            labels={MANAGED_BY_LABEL: MANAGED_BY, CAMERA_LABEL: "cam-stray", GENERATION_LABEL: "3"},
        )

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
