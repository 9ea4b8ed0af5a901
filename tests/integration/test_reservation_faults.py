"""Contention, expiry and durability of the reservation engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from redis.asyncio import Redis

from orchestrator.domain.models import Admission
from orchestrator.errors import QuotaExceeded
from orchestrator.reconcile.loops import GuardedLoop, LoopGroup
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.harness.http import ADMIN_HEADERS, admit
from tests.harness.service import ServiceProcess
from tests.harness.store import add_cameras


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


async def test_reservations_survive_sigkill_of_the_service(tmp_path: Path) -> None:
    """The real service with its embedded Valkey: SIGKILL it, start it again, nothing lost."""
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n  - {camera_id: cam-1, name: One, rtsp_url: 'rtsp://127.0.0.1/one'}\n"
    )
    # No VALKEY_URL: the service runs its own Valkey in its data folder; pushers and LiveKit
    # as `make run` has them.
    env = {
        "CCTV_CAMERAS_FILE": str(cameras),
        "CCTV_PUSHERS_ENABLED": None,
        "CCTV_LIVEKIT_ENABLED": None,
    }
    service = ServiceProcess("durable", tmp_path, None, env, log_level="warning")
    async with service.client(headers=ADMIN_HEADERS) as http:
        await asyncio.to_thread(service.start)
        try:
            reserved = [(await admit(http, "cam-1"))["reservation_id"] for _ in range(5)]
        finally:
            service.kill()

        await asyncio.to_thread(service.start)  # the same port and data folder
        try:
            stats = (await http.get("/api/v1/stream/stats")).json()
            assert stats["source_stats"]["METRO"]["current"] == 5
            assert [c["reserved_count"] for c in stats["camera_stats"]] == [5]
            for rid in reserved:
                renewed = await http.post(f"/api/v1/stream/heartbeat/{rid}")
                assert renewed.status_code == 200, renewed.text
        finally:
            # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean exit
            assert await asyncio.to_thread(service.stop) in (0, -signal.SIGTERM), (
                "no clean shutdown"
            )
    pid_file = service.data_dir / "valkey.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    if pid is not None:  # Valkey removes its pid file on a clean exit
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            raise AssertionError("the embedded Valkey outlived the service")
