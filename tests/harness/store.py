"""The camera registry and reservation store as the tests seed them (real Valkey)."""

from __future__ import annotations

import asyncio

import redis

from orchestrator.domain.models import Camera, Release
from orchestrator.errors import ReservationNotFound
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.reservations import ReservationStore


def camera(camera_id: str, *, enabled: bool = True) -> Camera:
    """``Camera <id>`` at an RTSP address nothing answers on."""
    return Camera(camera_id, f"Camera {camera_id}", f"rtsp://10.0.0.1/{camera_id}", enabled)


async def add_cameras(registry: CameraRegistry, *camera_ids: str, enabled: bool = True) -> None:
    await asyncio.gather(*(registry.put(camera(c, enabled=enabled)) for c in camera_ids))


async def register_cameras(valkey_url: str, *camera_ids: str) -> None:
    """:func:`add_cameras` through a connection of its own (scripts and benchmarks)."""
    client = connect(valkey_url, timeout_seconds=10.0)
    try:
        await add_cameras(CameraRegistry(client), *camera_ids)
    finally:
        await client.aclose()


def flushed(valkey_url: str) -> str:
    """``valkey_url``, emptied (synchronously): for a service that a module's tests share. The
    ``client`` fixture flushes before each test instead, while no service runs yet."""
    with redis.Redis.from_url(valkey_url) as sync:
        sync.flushall()
    return valkey_url


async def heartbeat_by_id(store: ReservationStore, reservation_id: str) -> int:
    """Renew a lease by its id, as the API does (the store itself works on leases)."""
    lease = await store.lease_of(reservation_id)
    if lease is None:
        raise ReservationNotFound(f"reservation {reservation_id} not found or expired")
    return (await store.renew(lease)).expires_at_ms


async def release_by_id(store: ReservationStore, reservation_id: str) -> Release:
    """Release a lease by its id; an unknown or released one reports ``released=False``."""
    lease = await store.lease_of(reservation_id)
    if lease is None:
        return Release(reservation_id, released=False)
    return await store.release_lease(lease)
