"""Contention, expiry and durability of the reservation engine (issue 2, must-show 2-4)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from orchestrator.domain.models import Admission
from orchestrator.errors import QuotaExceeded
from orchestrator.reconciler.loops import GuardedLoop, LoopGroup
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.conftest import add_cameras


async def test_quota_under_contention_admits_exactly_the_limit(
    valkey_url: str, client: Redis, registry: CameraRegistry, policy: LeasePolicy
) -> None:
    cameras = [f"cam-{i}" for i in range(10)]
    await add_cameras(registry, *cameras)
    pools = [connect(valkey_url, timeout_seconds=10.0, max_connections=32) for _ in range(3)]
    stores = [
        ReservationStore(p, Scripts(p), policy, owner=f"pool-{i}") for i, p in enumerate(pools)
    ]
    await stores[0].set_limit("METRO", 100)

    async def attempt(i: int) -> Admission | QuotaExceeded:
        try:
            return await stores[i % 3].reserve(cameras[i % 10], "METRO", f"user-{i}")
        except QuotaExceeded as refusal:
            return refusal

    try:
        results = await asyncio.gather(*(attempt(i) for i in range(1000)))
    finally:
        for pool in pools:
            await pool.aclose()
    admitted = [r for r in results if isinstance(r, Admission)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(admitted) == 100 and len(refused) == 900
    assert all((r.scope, r.current, r.limit) == ("SOURCE", 100, 100) for r in refused)
    assert sorted(a.current_usage for a in admitted) == list(range(1, 101))
    assert await client.get(keys.count("METRO")) == "100"
    assert await client.zcard(keys.source_leases("METRO")) == 100
    claims = [a for a in admitted if a.claimed]
    assert sorted(a.camera_id for a in claims) == cameras  # one start claim per camera


async def test_unrenewed_lease_frees_quota_and_camera_by_itself(
    client: Redis, scripts: Scripts, registry: CameraRegistry
) -> None:
    """The predecessor's "counter not decreasing": nobody releases, the sweeper frees it."""
    await add_cameras(registry, "cam-1")
    store = ReservationStore(
        client,
        scripts,
        LeasePolicy(lease_ms=400, default_limits=(("BUS", 1), ("TOTAL", 10))),
        owner="t",
    )
    lease = await store.reserve("cam-1", "BUS", "ghost")
    try:
        await store.reserve("cam-1", "BUS", "waiting")
        raise AssertionError("second reserve should be over the limit")
    except QuotaExceeded:
        pass
    sweeper = LoopGroup([GuardedLoop("sweep", store.expire_all, interval_seconds=0.1)])
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if await client.get(keys.count("BUS")) == "0":
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert await client.get(keys.count("BUS")) == "0"
    assert await client.zcard(keys.camera_leases("cam-1")) == 0
    assert not await client.exists(keys.reservation(lease.reservation_id))
    assert await client.hget(keys.metadata("cam-1"), "state") == "DRAINING"
    assert (await store.reserve("cam-1", "BUS", "waiting")).current_usage == 1


CHILD = """
import asyncio, json, sys, time
from pathlib import Path
from orchestrator.domain.models import Camera
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts

async def main(url):
    client = connect(url)
    await CameraRegistry(client).put(Camera("cam-1", "One", "rtsp://127.0.0.1/one"))
    store = ReservationStore(client, Scripts(client), LeasePolicy(
        lease_ms=600_000, default_limits=(("METRO", 30), ("TOTAL", 500))), owner="child")
    ids = [(await store.reserve("cam-1", "METRO", f"u{i}")).reservation_id for i in range(5)]
    await client.aclose()
    return ids

server = EmbeddedValkey(Path(sys.argv[1]))
ids = asyncio.run(main(server.start()))
print(json.dumps(ids), flush=True)
time.sleep(3600)
"""


async def test_reservations_survive_sigkill_of_the_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=30)
    reserved = json.loads(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdout.close()

    server = EmbeddedValkey(data)
    client = connect(server.start(), timeout_seconds=5.0)
    try:
        assert await client.get(keys.count("METRO")) == "5"
        for rid in reserved:
            assert await client.hget(keys.reservation(rid), "camera_id") == "cam-1"
        store = ReservationStore(
            client, Scripts(client), LeasePolicy(default_limits=(("METRO", 30),)), owner="t"
        )
        assert (await store.recount("METRO")).after == 5
    finally:
        await client.aclose()
        server.stop()
