"""One clock for whether a lease is live: Valkey's ``TIME``, never a replica's own clock.

Every script reads ``TIME``; anything outside a script that compares lease deadlines with
"now" (stats, the shared-state gauges, the expiry sweep) reads the same clock, so replicas
whose clocks drift apart still agree on which leases are live. ``offset_ms`` is the tests'
time travel, added to the server clock exactly as the scripts add it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from orchestrator.store.errors import translated


def time_ms(reply: Any) -> int:
    """Milliseconds of a ``TIME`` reply (``[seconds, microseconds]``)."""
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


async def server_ms(client: Redis, offset_ms: int = 0) -> int:
    async with translated():
        return time_ms(await client.time()) + offset_ms
