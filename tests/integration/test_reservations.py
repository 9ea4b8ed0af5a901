"""Reservation engine semantics against a real Valkey."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from orchestrator.domain.models import Admission
from orchestrator.errors import (
    CameraDisabled,
    CameraNotFound,
    LimitBelowUsage,
    QuotaExceeded,
    ReservationNotFound,
)
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.reservations import ReservationStore
from tests.harness.store import add_cameras, heartbeat_by_id, release_by_id


async def test_reserve_returns_lease_and_claims_first_viewer(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    first = await store.reserve("cam-1", "METRO", "alice")
    assert len(first.reservation_id) >= 22
    assert first.identity == f"viewer_{first.reservation_id}"
    assert first.current_usage == 1
    assert first.limit == 30
    assert first.claimed and first.generation == 1 and first.pusher_state == "STARTING"
    second = await store.reserve("cam-1", "METRO", "bob")
    assert not second.claimed and second.generation == 1
    assert second.reservation_id != first.reservation_id
    assert await client.get(keys.count("METRO")) == "2"
    data = await client.hgetall(keys.reservation(first.reservation_id))
    assert data["camera_id"] == "cam-1" and data["source"] == "METRO"
    meta = await client.hgetall(keys.metadata("cam-1"))
    assert meta["state"] == "STARTING" and meta["owner"] == "test-owner"
    assert int(float(meta["claim_deadline"])) > 0


async def test_unknown_or_disabled_camera_writes_nothing(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-off", enabled=False)
    before = set(await client.keys("*"))
    with pytest.raises(CameraNotFound):
        await store.reserve("cam-missing", "METRO", "alice")
    with pytest.raises(CameraDisabled):
        await store.reserve("cam-off", "METRO", "alice")
    assert set(await client.keys("*")) == before


async def test_source_limit_refusal_reports_usage_and_limit(
    store: ReservationStore, registry: CameraRegistry
) -> None:
    await add_cameras(registry, "cam-1")
    await store.set_limit("BUS", 2)
    await store.reserve("cam-1", "BUS", "u")
    await store.reserve("cam-1", "BUS", "u")
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve("cam-1", "BUS", "u")
    assert (info.value.scope, info.value.current, info.value.limit) == ("SOURCE", 2, 2)
    assert info.value.source == "BUS"


async def test_total_limit_refusal(store: ReservationStore, registry: CameraRegistry) -> None:
    await add_cameras(registry, "cam-1")
    await store.set_limit("TOTAL", 3)
    for source in ("BUS", "METRO", "OTHER"):
        await store.reserve("cam-1", source, "u")
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve("cam-1", "DUBAI_POLICE", "u")
    assert (info.value.scope, info.value.current, info.value.limit) == ("TOTAL", 3, 3)


async def test_unconfigured_source_uses_default_limit(
    store: ReservationStore, registry: CameraRegistry
) -> None:
    await add_cameras(registry, "cam-1")
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve("cam-1", "UNLISTED", "u")
    assert info.value.limit == 0


async def test_release_is_idempotent_and_drains_empty_camera(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    a = await store.reserve("cam-1", "METRO", "a")
    b = await store.reserve("cam-1", "METRO", "b")
    first = await release_by_id(store, a.reservation_id)
    assert first.released and not first.camera_empty
    again = await release_by_id(store, a.reservation_id)
    assert not again.released
    assert await client.get(keys.count("METRO")) == "1"
    last = await release_by_id(store, b.reservation_id)
    assert last.released and last.camera_empty and last.drain_deadline_ms > 0
    meta = await client.hgetall(keys.metadata("cam-1"))
    assert meta["state"] == "DRAINING" and meta["resume"] == "STARTING"
    assert await client.get(keys.count("METRO")) == "0"
    assert not await client.exists(keys.reservation(b.reservation_id))


async def test_viewer_during_drain_cancels_teardown_without_new_claim(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    a = await store.reserve("cam-1", "METRO", "a")
    await client.hset(keys.metadata("cam-1"), "state", "RUNNING")
    await release_by_id(store, a.reservation_id)
    b = await store.reserve("cam-1", "METRO", "b")
    assert not b.claimed and b.pusher_state == "RUNNING" and b.generation == 1


async def test_heartbeat_extends_and_never_shortens(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    a = await store.reserve("cam-1", "METRO", "a")
    store.clock_offset_ms = 30_000
    renewed = await heartbeat_by_id(store, a.reservation_id)
    assert renewed >= a.expires_at_ms + 29_000
    store.clock_offset_ms = 0  # a replica whose lease is shorter must not shorten it
    store.policy = type(store.policy)(lease_ms=1_000, default_limits=store.policy.default_limits)
    assert await heartbeat_by_id(store, a.reservation_id) == renewed
    score = await client.zscore(keys.ALL_LEASES, f"{a.reservation_id}|cam-1|METRO")
    assert score == renewed


async def test_heartbeat_of_unknown_or_expired_lease_is_not_found(
    store: ReservationStore, registry: CameraRegistry
) -> None:
    await add_cameras(registry, "cam-1")
    with pytest.raises(ReservationNotFound):
        await heartbeat_by_id(store, "A" * 22)
    a = await store.reserve("cam-1", "METRO", "a")
    store.clock_offset_ms = 61_000
    with pytest.raises(ReservationNotFound):
        await heartbeat_by_id(store, a.reservation_id)


async def test_expire_frees_quota_and_reports_empty_cameras(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1", "cam-2")
    await store.set_limit("BUS", 2)
    a = await store.reserve("cam-1", "BUS", "a")
    await store.reserve("cam-2", "BUS", "b")
    store.clock_offset_ms = 30_000
    keep = await store.reserve("cam-2", "METRO", "c")
    store.clock_offset_ms = 61_000
    report = await store.expire_all(batch=1)
    assert report.expired == 2
    assert report.emptied_cameras == ["cam-1"]
    assert await client.get(keys.count("BUS")) == "0"
    assert not await client.exists(keys.reservation(a.reservation_id))
    assert (await client.hgetall(keys.metadata("cam-1")))["state"] == "DRAINING"
    assert (await client.hgetall(keys.metadata("cam-2")))["state"] == "STARTING"
    assert await store.lease_of(keep.reservation_id) is not None  # the live one survives
    assert (await store.expire()).expired == 0  # a second sweep changes nothing


async def test_recount_repairs_a_corrupted_counter(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    await store.reserve("cam-1", "METRO", "a")
    await client.set(keys.count("METRO"), 17)
    result = await store.recount("METRO")
    assert (result.before, result.after) == (17, 1)
    await client.set(keys.count("METRO"), "garbage")
    assert (await store.recount("METRO")).before is None
    assert await client.get(keys.count("METRO")) == "1"


async def test_set_limit_refuses_below_live_usage(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    await store.reserve("cam-1", "METRO", "a")
    await store.reserve("cam-1", "METRO", "b")
    with pytest.raises(LimitBelowUsage):
        await store.set_limit("METRO", 1)
    assert await client.get(keys.limit("METRO")) is None
    assert await store.set_limit("METRO", 2) is None
    assert await store.set_limit("METRO", 5) == 2


async def test_scripts_survive_a_flushed_script_cache(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    await store.reserve("cam-1", "METRO", "a")
    await client.script_flush()
    b = await store.reserve("cam-1", "METRO", "b")
    assert b.current_usage == 2


async def test_abandoned_claim_is_taken_over(
    store: ReservationStore, registry: CameraRegistry, client: Redis
) -> None:
    await add_cameras(registry, "cam-1")
    a = await store.reserve("cam-1", "METRO", "a")
    await release_by_id(store, a.reservation_id)  # DRAINING, resume STARTING, claim still held
    store.clock_offset_ms = 31_000  # the claimant never reported back
    b = await store.reserve("cam-1", "METRO", "b")
    assert b.claimed and b.generation == 2


async def test_batched_calls_keep_their_own_results(
    store: ReservationStore, registry: CameraRegistry
) -> None:
    """Auto-pipelined calls share one round trip but never each other's errors."""
    await add_cameras(registry, "cam-1")
    results = await asyncio.gather(
        store.reserve("cam-1", "METRO", "a"),
        store.reserve("cam-missing", "METRO", "b"),
        store.reserve("cam-1", "METRO", "c"),
        return_exceptions=True,
    )
    assert isinstance(results[1], CameraNotFound)
    assert {type(results[0]), type(results[2])} == {Admission}
