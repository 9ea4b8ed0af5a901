"""Key tracking (``store/changes.py``) against a real Valkey: what a take answers after
writes from other connections and scripts, expiries, a flush, a killed connection and a
restarted server. ``None`` means "not known: read everything", and must be said whenever a
change could have been missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.store.changes import ChangedKeys
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey

PREFIXES = ("t:a:", "t:b:")


@pytest.fixture
async def changes(client: Redis) -> AsyncIterator[ChangedKeys]:
    tracked = ChangedKeys(client, PREFIXES, timeout_seconds=5.0)
    try:
        yield tracked
    finally:
        await tracked.aclose()


async def test_a_take_names_the_ids_written_under_the_prefixes_since_the_last(
    client: Redis, changes: ChangedKeys
) -> None:
    assert await changes.take() is None, "the first take cannot know what changed before it"
    assert await changes.take() == set()
    await client.set("t:a:one", 1)
    await client.hset("t:b:two", "f", "v")
    await client.set("t:c:other", 1)  # not watched
    await client.set("t:a", 1)  # the prefix without an id: not one of ours either
    assert await changes.take() == {"one", "two"}
    assert await changes.take() == set()
    await client.eval("redis.call('SADD', KEYS[1], 'x'); return 1", 1, "t:a:three")
    await client.delete("t:b:two")
    assert await changes.take() == {"three", "two"}


async def test_every_acknowledged_write_is_in_the_next_take(
    client: Redis, changes: ChangedKeys
) -> None:
    """Read your writes: a write another connection made just before is never missed (the
    take's PING follows the write's invalidation)."""
    await changes.take()
    for i in range(300):
        await client.eval("redis.call('HSET', KEYS[1], 'n', ARGV[1]); return 1", 1, f"t:a:{i}", i)
        assert await changes.take() == {str(i)}, f"write {i} was not told before the take"


async def test_thousands_of_changes_between_two_takes_are_all_told(
    client: Redis, changes: ChangedKeys
) -> None:
    """Pushes are drained one at a time as they come, however many arrive between takes
    (one write per round trip: Valkey sends one push per event-loop pass)."""
    await changes.take()
    for i in range(3000):
        await client.set(f"t:a:{i}", i)
    assert await changes.take() == {str(i) for i in range(3000)}
    assert changes.connects == 1, "the tracking connection failed under the pushes"


async def test_expiry_and_flush_are_told(client: Redis, changes: ChangedKeys) -> None:
    await changes.take()
    await client.set("t:b:short", 1, px=50)
    assert await changes.take() == {"short"}
    await asyncio.sleep(0.3)
    assert await client.get("t:b:short") is None  # expired (lazily, by this read at the latest)
    assert await changes.take() == {"short"}
    await client.flushall()
    assert await changes.take() is None, "after a flush everything may have changed"
    assert await changes.take() == set()


async def test_a_killed_tracking_connection_is_said_and_replaced(
    client: Redis, changes: ChangedKeys
) -> None:
    await changes.take()
    assert changes.connects == 1
    killed = await client.client_kill_filter(_type="normal", skipme=True)
    assert int(killed) >= 1
    await client.set("t:a:during", 1)  # its invalidation went nowhere
    assert await changes.take() is None, "changes made while nobody listened are unknown"
    for _ in range(3):  # the failure may be seen by that take, the reconnect by the next
        if await changes.take() is not None:
            break
    assert changes.connects == 2
    await client.set("t:a:after", 1)
    assert await changes.take() == {"after"}


async def test_a_restarted_valkey_is_said_and_tracking_resumes(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    client = connect(url, timeout_seconds=2.0)
    changes = ChangedKeys(client, PREFIXES, timeout_seconds=2.0)
    try:
        await changes.take()
        await client.set("t:a:before", 1)
        assert await changes.take() == {"before"}
        server.stop()
        assert await changes.take() is None, "Valkey is down: nothing is known"
        server.start()
        for _ in range(100):  # the reconnect waits for its backoff (0.5 s, then doubling)
            taken = await changes.take()
            if changes.connects == 2:
                break
            assert taken is None
            await asyncio.sleep(0.1)
        assert changes.connects == 2, "tracking did not come back after the restart"
        await client.set("t:b:after", 1)
        assert await changes.take() == {"after"}
    finally:
        await changes.aclose()
        await client.aclose()
        server.stop()
