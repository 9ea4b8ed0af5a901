"""Follow the Docker engine's container events: a dead pusher is noticed within a second.

Events are hints, not truth. On every (re)connect the watcher notes the time, runs a full
reconcile pass (a re-list by label), then subscribes with ``since`` = that time, so a death
that happened while it was away is found by the re-list and one that happens right after by
the replayed events. A broken stream (engine restart) backs off and repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from orchestrator.domain.containers import ContainerEvent
from orchestrator.errors import OrchestratorError
from orchestrator.reconcile.containers import Reconciler

log = logging.getLogger(__name__)


class EventWatcher:
    def __init__(self, reconciler: Reconciler, *, max_backoff_seconds: float = 30.0) -> None:
        self.reconciler = reconciler
        self.max_backoff_seconds = max_backoff_seconds
        self.reconnects = 0

    async def on_event(self, event: ContainerEvent) -> bool:
        """A ``die``/``destroy`` of a recorded container marks it failed. True when it did."""
        if event.action not in ("die", "destroy") or not event.camera_id:
            return False
        reason = (
            f"container exited with code {event.exit_code}"
            if event.exit_code is not None
            else f"container {event.action}"
        )
        retry_at = await self.reconciler.lifecycle.pushers.mark_failed(
            event.camera_id, event.generation or 1, reason, container_id=event.container_id
        )
        if retry_at is not None:
            log.warning(
                "pusher died; restart scheduled",
                extra={
                    "camera_id": event.camera_id,
                    "container_id": event.container_id,
                    "reason": reason,
                    "retry_at_ms": retry_at,
                },
            )
        return retry_at is not None

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        runtime = self.reconciler.lifecycle.runtime
        while not stop.is_set():
            since = time.time()
            try:
                await self.reconciler.run_once()
                async with contextlib.aclosing(runtime.events(stop, since=since)) as events:
                    failures = 0
                    async for event in events:
                        await self.on_event(event)
            except OrchestratorError as exc:
                failures += 1
                self.reconnects += 1
                delay = min(self.max_backoff_seconds, 0.5 * 2 ** min(failures, 8))
                delay *= 0.5 + random.random() / 2
                log.warning(
                    "docker events interrupted; re-listing after backoff",
                    extra={"error": repr(exc), "delay_seconds": round(delay, 2)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
