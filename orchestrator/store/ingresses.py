"""Each camera's reusable LiveKit ingress as recorded in Valkey: its id (compare-and-set,
``ingress_bind.lua``) and its last reported status (``ingress_event.lua``, from webhooks and
listings, applied only when newer than the recorded one). The stream key is never stored.
"""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.store import keys
from orchestrator.store.errors import translated
from orchestrator.store.presence import DEDUPE_WINDOW_MS, NS_DIGITS
from orchestrator.store.scripts import Scripts, check


class IngressRecords:
    def __init__(self, client: Redis, scripts: Scripts, *, clock_offset_ms: int = 0) -> None:
        self._client = client
        self._scripts = scripts
        self.clock_offset_ms = clock_offset_ms

    async def ingress_event(
        self, event_id: str, camera_id: str, *, ingress_id: str, status: str, at_ns: int, error: str
    ) -> str:
        reply = await self._scripts.ingress_event(
            [keys.webhook_event(event_id), keys.metadata(camera_id)],
            [
                self.clock_offset_ms,
                ingress_id,
                status,
                f"{max(at_ns, 0):0{NS_DIGITS}d}",
                error[:300],
                DEDUPE_WINDOW_MS,
            ],
        )
        return str(check("ingress_event", reply)[0])

    async def ingress_id(self, camera_id: str) -> str | None:
        async with translated():
            value = await self._client.hget(keys.metadata(camera_id), "ingress_id")
        return str(value) if value else None

    async def bind_ingress(self, camera_id: str, *, expected: str | None, ingress_id: str) -> str:
        """Keep ``ingress_id`` unless another one was bound since ``expected``; returns the kept."""
        reply = await self._scripts.ingress_bind(
            [keys.metadata(camera_id)], [expected or "", ingress_id]
        )
        return str(check("ingress_bind", reply)[0])
