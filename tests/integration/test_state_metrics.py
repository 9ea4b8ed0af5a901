"""Gauges of shared state read from Valkey at scrape time: replicas agree (issue 6, part).

Two real ``serve`` processes share one real Valkey; each ``/metrics`` scrape is parsed with
prometheus_client's own text parser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from tests.conftest import add_cameras
from tests.livekit_helpers import reserve
from tests.service_process import ServiceProcess

STATE_GAUGES = ("cctv_reservations_active", "cctv_source_limit", "cctv_pushers")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def replicas(valkey_url: str, tmp_path: Path) -> AsyncIterator[list[ServiceProcess]]:
    env = {
        "CCTV_SOURCE_LIMITS": json.dumps({"METRO": 40, "BUS": 7, "TOTAL": 50}),
        "CCTV_PUSHERS_ENABLED": "false",
    }
    procs = [ServiceProcess(f"replica-{i}", tmp_path, valkey_url, **env) for i in range(2)]
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
    try:
        yield procs
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in procs))


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith(STATE_GAUGES) or sample.name == "cctv_camera_viewers":
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_state_gauges_agree_across_replicas_sharing_one_valkey(
    client: Redis, replicas: list[ServiceProcess]
) -> None:
    await add_cameras(CameraRegistry(client), "cam-m1", "cam-m2")
    async with httpx.AsyncClient(base_url=replicas[0].url, timeout=10) as first:
        for _ in range(3):
            await reserve(first, "cam-m1")
    async with httpx.AsyncClient(base_url=replicas[1].url, timeout=10) as second:
        await reserve(second, "cam-m2", source="BUS")

    one, two = await asyncio.gather(*(scrape(r.url) for r in replicas))
    assert one == two, "every replica reports the same shared state"
    assert one[("cctv_reservations_active", (("source", "METRO"),))] == 3
    assert one[("cctv_reservations_active", (("source", "BUS"),))] == 1
    assert one[("cctv_source_limit", (("source", "BUS"),))] == 7
    assert one[("cctv_source_limit", (("source", "TOTAL"),))] == 50
    assert one[("cctv_camera_viewers", (("camera_id", "cam-m1"),))] == 0, "nobody joined LiveKit"
    assert sum(v for (name, _), v in one.items() if name == "cctv_pushers") == 2
