"""The tracked stats reader (key tracking plus the leases whose deadline passed) answers what a
reader that asks for every camera answers, after every kind of change stats show: reserves,
releases, renewals, leases that expire with nobody writing, the expiry sweep, presence,
pusher metadata and names written by hand, cameras going idle and coming back. And it asks
Valkey for far fewer cameras."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from orchestrator.domain.models import Lease
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.changes import ChangedKeys
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from orchestrator.store.stats import CAMERA_PREFIXES, StatsReader, StreamStats
from tests.harness.store import add_cameras

CAMERAS = [f"cam-track-{i}" for i in range(12)]
SHORT_LEASE_MS = 300


def shown(stats: StreamStats) -> tuple[object, ...]:
    """Everything a read shows but its time."""
    return (stats.cameras, stats.sources, stats.total_current, stats.total_limit)


async def test_the_tracked_reader_agrees_with_a_full_read_after_every_change(
    client: Redis,
    scripts: Scripts,
    registry: CameraRegistry,
    store: ReservationStore,
    policy: LeasePolicy,
) -> None:
    await add_cameras(registry, *CAMERAS)
    short = ReservationStore(
        client,
        scripts,
        LeasePolicy(
            lease_ms=SHORT_LEASE_MS,
            drain_grace_ms=policy.drain_grace_ms,
            claim_ms=policy.claim_ms,
            default_limits=policy.default_limits,
        ),
        owner="test-owner",
    )
    changes = ChangedKeys(client, CAMERA_PREFIXES, timeout_seconds=5.0)
    tracked = StatsReader(client, scripts, policy, changes=changes)
    rng = random.Random(20)
    leases: list[Lease] = []

    async def reserve() -> None:
        admission = await store.reserve(rng.choice(CAMERAS), rng.choice(["METRO", "BUS"]), "u")
        lease = await store.lease_of(admission.reservation_id)
        assert lease is not None
        leases.append(lease)

    async def release() -> None:
        if leases:
            await store.release_lease(leases.pop(rng.randrange(len(leases))))

    async def renew() -> None:
        if leases:
            await store.renew(rng.choice(leases))

    async def lapse() -> None:
        """A lease whose deadline passes with no key written: only the time tells."""
        await short.reserve(rng.choice(CAMERAS), "METRO", "short")
        await tracked.read()  # read while it is live: the camera's row counts it
        await asyncio.sleep(SHORT_LEASE_MS / 1000 + 0.2)

    async def sweep() -> None:
        await store.expire_all()

    async def connect_viewer() -> None:
        if leases:
            lease = rng.choice(leases)
            await client.sadd(keys.presence(lease.camera_id), lease.reservation_id)

    async def write_metadata() -> None:
        camera = rng.choice(CAMERAS)
        await client.hset(keys.metadata(camera), mapping={"state": "RUNNING", "restarts": "2"})

    async def rename() -> None:
        camera = rng.choice(CAMERAS)
        await client.hset(keys.camera(camera), "name", f"renamed {rng.random():.3f}")

    steps: list[Callable[[], Awaitable[None]]] = [
        reserve,
        reserve,
        release,
        renew,
        lapse,
        sweep,
        connect_viewer,
        write_metadata,
        rename,
    ]
    try:
        for _ in range(4):
            await reserve()
        for step in range(60):
            action = rng.choice(steps)
            await action()
            got = await tracked.read()
            full = await StatsReader(client, scripts, policy).read()
            assert shown(got) == shown(full), f"step {step} ({action.__name__}) differs"
        assert changes.connects == 1, "tracking reconnected: the test did not test it"
        assert tracked.cameras_read < 60 * len(CAMERAS) / 3, tracked.cameras_read
    finally:
        await changes.aclose()


async def test_when_tracking_cannot_say_what_changed_every_camera_is_read(
    client: Redis,
    scripts: Scripts,
    registry: CameraRegistry,
    store: ReservationStore,
    policy: LeasePolicy,
) -> None:
    await add_cameras(registry, *CAMERAS[:3])
    for camera in CAMERAS[:3]:
        await store.reserve(camera, "METRO", "u")
    changes = ChangedKeys(client, CAMERA_PREFIXES, timeout_seconds=5.0)
    reader = StatsReader(client, scripts, policy, changes=changes)
    try:
        await reader.read()
        before = reader.cameras_read
        await reader.read()
        assert reader.cameras_read == before, "nothing changed, yet cameras were read"
        await changes.aclose()  # tracking gone: what changed is not known
        await store.reserve(CAMERAS[0], "METRO", "v")
        stats = await reader.read()
        assert reader.cameras_read == before + 3
        assert {c.camera_id: c.reserved_count for c in stats.cameras}[CAMERAS[0]] == 2
    finally:
        await changes.aclose()
