"""One stats snapshot per replica, shared by every reader: dashboards, the status page and the
``/metrics`` gauges (:class:`StatsSnapshots`); the same single flight serves ``/ready``'s
dependency checks (:class:`SharedReads`).

Every open dashboard polls ``GET /api/v1/stream/stats``. Reading Valkey for each poll would
cost each replica one full read per request; instead a replica reads at most once per
``max_age_s`` (``CCTV_STATS_MAX_AGE_SECONDS``):

* a snapshot younger than ``max_age_s`` is answered as it is;
* an older one is replaced by one new read, which every caller that arrives meanwhile awaits
  (single flight: no stampede however many pollers there are);
* a failed read is not kept: its callers get the error, and the next caller reads again.

A caller that gives up (a closed connection) never cancels the read the others await.
``max_age_s`` 0 reads for every request that does not find a read in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from orchestrator.store.stats import StreamStats

T = TypeVar("T")


class StatsSource(Protocol):
    async def read(self) -> StreamStats: ...


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[T]):
    value: T
    taken_at: float  # the clock (monotonic) when its read began: its age is never understated

    @property
    def stats(self) -> T:  # what a stats snapshot holds
        return self.value

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.taken_at)


class SharedReads(Generic[T]):
    """``await shared.snapshot()``: the shared snapshot of ``read()``, at most ``max_age_s``
    old; ``read()`` of this object is the snapshot's value.

    ``on_read(seconds)`` is told of each read made (the metric that shows how often a replica
    reads, whatever the number of pollers)."""

    def __init__(
        self,
        source: Callable[[], Awaitable[T]],
        max_age_s: float,
        *,
        on_read: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age_s < 0:
            raise ValueError("max_age_s must be >= 0")
        self._source = source
        self.max_age_s = max_age_s
        self._on_read = on_read
        self.clock = clock
        self._current: Snapshot[T] | None = None
        self._reading: asyncio.Future[Snapshot[T]] | None = None

    async def snapshot(self) -> Snapshot[T]:
        current = self._current
        if current is not None and current.age_s(self.clock()) < self.max_age_s:
            return current
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
            self._reading.add_done_callback(self._finished)
        return await asyncio.shield(self._reading)

    async def read(self) -> T:
        return (await self.snapshot()).value

    async def _read(self) -> Snapshot[T]:
        started = self.clock()
        value = await self._source()
        snapshot = Snapshot(value, started)
        self._current = snapshot
        if self._on_read is not None:
            self._on_read(self.clock() - started)
        return snapshot

    def _finished(self, reading: asyncio.Future[Snapshot[T]]) -> None:
        self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved: its awaiters got it; nothing is left unlogged


class StatsSnapshots(SharedReads[StreamStats]):
    """The stats snapshot of one replica: a :class:`StatsSource` too (the ``/metrics`` gauges
    read through it)."""

    def __init__(
        self,
        source: StatsSource,
        max_age_s: float,
        *,
        on_read: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source.read, max_age_s, on_read=on_read, clock=clock)
