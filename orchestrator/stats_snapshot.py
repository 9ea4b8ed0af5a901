"""One stats snapshot per replica, shared by every reader: dashboards, the status page and the
``/metrics`` gauges (:class:`StatsSnapshots`); the same single flight serves ``/ready``'s
dependency checks (:class:`SharedReads`).

Every open dashboard polls ``GET /api/v1/stream/stats``. Reading Valkey for each poll would
cost each replica one full read per request; instead a replica reads at most once per
``max_age_s`` (``CCTV_STATS_MAX_AGE_SECONDS``):

* a snapshot younger than ``max_age_s`` is answered as it is;
* an older one is replaced by one new read, which every caller that arrives meanwhile awaits
  (single flight: no stampede however many pollers there are);
* a caller never gets a read that began ``max_age_s`` or more before it came: it could miss
  what the caller did just before asking. Such a caller waits for the next read, which all of
  them share. So with ``max_age_s`` 0 every caller reads its own writes;
* a failed read is not kept: its callers get the error, and the next caller reads again.

A caller that gives up (a closed connection) never cancels the read the others await.
``max_age_s`` 0 reads for every request, sharing only reads that began after it came.
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
        self._reading_started = 0.0

    async def snapshot(self) -> Snapshot[T]:
        arrival = self.clock()
        while True:
            current = self._current
            if current is not None and self._fresh(current.taken_at, arrival):
                return current
            reading = self._reading
            if reading is None or reading.done():
                started = self.clock()
                reading = asyncio.ensure_future(self._read(started))
                reading.add_done_callback(self._finished)
                self._reading, self._reading_started = reading, started
            started = self._reading_started
            snapshot = await asyncio.shield(reading)
            if self._fresh(started, arrival):
                return snapshot
            # That read began too long before this caller came: it may miss what the caller
            # did just before asking. The next read, which every such caller shares, will not.

    def _fresh(self, started: float, arrival: float) -> bool:
        """A read that began less than ``max_age_s`` before the caller came, or after."""
        return started >= arrival or arrival - started < self.max_age_s

    async def read(self) -> T:
        return (await self.snapshot()).value

    async def _read(self, started: float) -> Snapshot[T]:
        value = await self._source()
        snapshot = Snapshot(value, started)
        self._current = snapshot
        if self._on_read is not None:
            self._on_read(self.clock() - started)
        return snapshot

    def _finished(self, reading: asyncio.Future[Snapshot[T]]) -> None:
        if self._reading is reading:
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
