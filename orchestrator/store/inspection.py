"""Read-only views of the keyspace for the on-call commands (never writes a key).

Counts come from the lease sets (the truth); counters are read raw so drift shows: a
``stream:count:<S>`` that differs from the live leases of S is what ``recount`` repairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from orchestrator.domain.ids import TOTAL
from orchestrator.domain.models import Lease, ReservationInfo
from orchestrator.store import keys
from orchestrator.store.errors import translated
from orchestrator.store.reservations import reservation_info


@dataclass(frozen=True, slots=True)
class CounterState:
    source: str
    raw: str | None  # stream:count:<S> as stored (None: absent, which reads as 0)
    live: int  # live leases of the source (the truth)

    @property
    def counter(self) -> int | None:
        """The counter's value; None when it is not a number (corrupt)."""
        if self.raw is None:
            return 0
        try:
            return int(self.raw)
        except ValueError:
            return None

    @property
    def drift(self) -> bool:
        return self.counter != self.live


@dataclass(frozen=True, slots=True)
class LeaseRow:
    lease: Lease
    expires_at_ms: int
    info: ReservationInfo | None  # None when the hash is gone (a lease the sweep will end)


class StateInspector:
    def __init__(self, client: Redis, *, clock_offset_ms: int = 0) -> None:
        self._client = client
        self.clock_offset_ms = clock_offset_ms

    async def now_ms(self) -> int:
        """The server's clock, the one every script uses."""
        async with translated():
            seconds, micros = await self._client.time()
        return int(seconds) * 1000 + int(micros) // 1000 + self.clock_offset_ms

    async def sources(self, configured: set[str]) -> list[str]:
        """Every source with a counter, a limit or a lease set known to Valkey, plus
        ``configured`` ones (``TOTAL`` is the global limit, not a source)."""
        async with translated():
            known = {str(s) for s in await self._client.smembers(keys.SOURCES)}
            async for key in self._client.scan_iter(match=keys.count("*"), count=500):
                known.add(str(key).removeprefix(keys.count("")))
        return sorted((known | configured) - {TOTAL})

    async def counters(self, sources: list[str]) -> list[CounterState]:
        now = await self.now_ms()
        async with translated(), self._client.pipeline(transaction=False) as pipe:
            for source in sources:
                pipe.get(keys.count(source))
                pipe.zcount(keys.source_leases(source), f"({now}", "+inf")
            rows = await pipe.execute()
        return [
            CounterState(
                source, None if rows[2 * i] is None else str(rows[2 * i]), int(rows[2 * i + 1])
            )
            for i, source in enumerate(sources)
        ]

    async def leases(
        self, camera_id: str | None = None, *, live_only: bool = True
    ) -> list[LeaseRow]:
        """Leases (of one camera, or all), soonest expiry first, with their reservations."""
        now = await self.now_ms()
        zset = keys.ALL_LEASES if camera_id is None else keys.camera_leases(camera_id)
        low = f"({now}" if live_only else "-inf"
        async with translated():
            members: list[tuple[str, float]] = await self._client.zrange(
                zset, low, "+inf", byscore=True, withscores=True
            )  # type: ignore[assignment]
            leases = [(Lease.parse(str(m)), int(score)) for m, score in members]
            async with self._client.pipeline(transaction=False) as pipe:
                for lease, _ in leases:
                    pipe.hgetall(keys.reservation(lease.reservation_id))
                hashes = await pipe.execute()
        return [
            LeaseRow(lease, expires, reservation_info(lease.reservation_id, data) if data else None)
            for (lease, expires), data in zip(leases, hashes, strict=True)
        ]

    async def cameras_in_use(self) -> set[str]:
        """Cameras with pusher state or any lease, live or not (what a full reset visits)."""
        async with translated():
            active = {str(c) for c in await self._client.smembers(keys.ACTIVE_CAMERAS)}
            members = await self._client.zrange(keys.ALL_LEASES, 0, -1)
        return active | {Lease.parse(str(m)).camera_id for m in members}
