"""One clock: whether a lease is live is decided by Valkey's ``TIME`` everywhere, so a replica
whose own clock is off reports the same live leases as every other (issue 20, "one clock").

The replica's clock is moved, not Valkey's: ``time.time`` is patched two minutes ahead, past
the 60 s lease, for the reads below only. A reader on the local clock would see every lease as
expired; one on Valkey's sees them live, as the scripts do."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from orchestrator.store.stats import StatsReader, StreamStats
from tests.harness.store import add_cameras

AHEAD_S = 120.0  # past the lease (60 s): a local-clock reader would count nothing live


async def test_stats_and_the_sweep_ignore_a_replicas_clock_that_is_off(
    client: Redis,
    scripts: Scripts,
    registry: CameraRegistry,
    store: ReservationStore,
    policy: LeasePolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_cameras(registry, "cam-clock-1", "cam-clock-2")
    for camera, user in (("cam-clock-1", "a"), ("cam-clock-1", "b"), ("cam-clock-2", "c")):
        await store.reserve(camera, "METRO", user)
    reader = StatsReader(client, scripts, policy)
    agreed = await reader.read()

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + AHEAD_S)
    skewed = await reader.read()
    swept = await store.expire()
    monkeypatch.setattr(time, "time", real)

    def live(stats: StreamStats) -> dict[str, int]:
        return {c.camera_id: c.reserved_count for c in stats.cameras}

    assert live(agreed) == {"cam-clock-1": 2, "cam-clock-2": 1}
    assert live(skewed) == live(agreed)
    assert skewed.total_current == agreed.total_current == 3
    assert {s.source: s.current for s in skewed.sources}["METRO"] == 3
    assert abs(skewed.timestamp_ms - agreed.timestamp_ms) < AHEAD_S * 1000 / 2, "local time"
    assert swept.expired == 0
