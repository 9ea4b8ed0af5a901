"""Gauges of shared state read from Valkey at scrape time: replicas agree.

Two real ``serve`` processes share one real Valkey; each ``/metrics`` scrape is parsed with
prometheus_client's own text parser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from tests.harness.http import admit
from tests.harness.metrics import Samples, scrape, series
from tests.harness.service import ServiceProcess, running
from tests.harness.store import add_cameras

STATE_GAUGES = ("cctv_reservations_active", "cctv_source_limit", "cctv_pushers")


@pytest.fixture
async def replicas(
    client: Redis, valkey_url: str, tmp_path: Path
) -> AsyncIterator[list[ServiceProcess]]:
    limits = json.dumps({"METRO": 40, "BUS": 7, "TOTAL": 50})
    procs = [
        ServiceProcess(f"replica-{i}", tmp_path, valkey_url, {"CCTV_SOURCE_LIMITS": limits})
        for i in range(2)
    ]
    async with running(*procs) as started:
        yield started


async def state(service: ServiceProcess) -> Samples:
    return {
        (name, labels): sample
        for (name, labels), sample in (await scrape(service.http)).items()
        if name.startswith(STATE_GAUGES) or name == "cctv_camera_viewers"
    }


async def test_state_gauges_agree_across_replicas_sharing_one_valkey(
    client: Redis, replicas: list[ServiceProcess]
) -> None:
    await add_cameras(CameraRegistry(client), "cam-m1", "cam-m2")
    for _ in range(3):
        await admit(replicas[0].http, "cam-m1")
    await admit(replicas[1].http, "cam-m2", "BUS")

    one, two = await asyncio.gather(*(state(r) for r in replicas))
    assert one == two, "every replica reports the same shared state"
    assert one[series("cctv_reservations_active", source="METRO")] == 3
    assert one[series("cctv_reservations_active", source="BUS")] == 1
    assert one[series("cctv_source_limit", source="BUS")] == 7
    assert one[series("cctv_source_limit", source="TOTAL")] == 50
    assert one[series("cctv_camera_viewers", camera_id="cam-m1")] == 0, "nobody joined LiveKit"
    assert sum(v for (name, _), v in one.items() if name == "cctv_pushers") == 2
