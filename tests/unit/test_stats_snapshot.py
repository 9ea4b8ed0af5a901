"""The shared stats snapshot (``orchestrator/stats_snapshot.py``): single flight, the max age,
failures not kept, a caller that gives up never cancels the read others await. Pure logic: the
source is a stand-in whose reads the test releases; the HTTP side is tested against real
Valkey in ``tests/integration/test_stats_snapshot.py``."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import StoreUnavailable
from orchestrator.stats_snapshot import StatsSnapshots
from orchestrator.store.stats import StreamStats


class Source:
    """Each read waits for ``release``; counts reads; fails while ``failing``."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.failing = False

    async def read(self) -> StreamStats:
        self.reads += 1
        await self.release.wait()
        if self.failing:
            raise StoreUnavailable("valkey is down")
        return StreamStats(timestamp_ms=self.reads)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_read() -> None:
    source = Source()
    snapshots = StatsSnapshots(source, 0.5)
    callers = [asyncio.create_task(snapshots.snapshot()) for _ in range(50)]
    await asyncio.sleep(0)
    source.release.set()
    got = await asyncio.gather(*callers)
    assert source.reads == 1
    assert len({id(s) for s in got}) == 1


async def test_a_snapshot_is_reused_until_it_is_older_than_the_max_age() -> None:
    source, clock = Source(), Clock()
    source.release.set()
    reads: list[float] = []
    snapshots = StatsSnapshots(source, 0.5, clock=clock, on_read=reads.append)
    first = await snapshots.snapshot()
    clock.now += 0.4
    assert await snapshots.snapshot() is first
    assert first.age_s(clock.now) == pytest.approx(0.4)
    clock.now += 0.2
    second = await snapshots.snapshot()
    assert second is not first and second.stats.timestamp_ms == 2
    assert source.reads == 2 and len(reads) == 2


async def test_max_age_zero_reads_for_each_caller_that_finds_no_read_in_flight() -> None:
    source = Source()
    source.release.set()
    snapshots = StatsSnapshots(source, 0)
    for _ in range(3):
        await snapshots.snapshot()
    assert source.reads == 3


async def test_a_caller_never_gets_a_read_that_began_too_long_before_it_came() -> None:
    """Read your writes: a read in flight that began ``max_age_s`` or more before a caller
    came may miss that caller's last write, so the caller waits for the next read; the
    callers who came during the old read all share that next one."""
    for max_age, late in ((0.0, 0.001), (0.5, 0.6)):
        source, clock = Source(), Clock()
        snapshots = StatsSnapshots(source, max_age, clock=clock)
        early = asyncio.create_task(snapshots.snapshot())
        await asyncio.sleep(0)
        clock.now += late
        latecomers = [asyncio.create_task(snapshots.snapshot()) for _ in range(5)]
        await asyncio.sleep(0)
        source.release.set()
        assert (await early).stats.timestamp_ms == 1
        assert {(await c).stats.timestamp_ms for c in latecomers} == {2}, max_age
        assert source.reads == 2


async def test_a_failed_read_reaches_its_callers_and_is_not_kept() -> None:
    source = Source()
    source.failing = True
    snapshots = StatsSnapshots(source, 60)
    callers = [asyncio.create_task(snapshots.snapshot()) for _ in range(5)]
    await asyncio.sleep(0)
    source.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert source.reads == 1
    source.failing = False
    assert (await snapshots.snapshot()).stats.timestamp_ms == 2  # read again, not cached


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_read() -> None:
    source = Source()
    snapshots = StatsSnapshots(source, 60)
    quitter = asyncio.create_task(snapshots.snapshot())
    stayer = asyncio.create_task(snapshots.snapshot())
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    source.release.set()
    assert (await stayer).stats.timestamp_ms == 1
    assert quitter.cancelled()
    assert source.reads == 1


def test_a_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        StatsSnapshots(Source(), -1)
