"""Follow the runtime's pusher events: a dead pusher is noticed within a second.

Events are hints, not truth. On every (re)connect the watcher notes the time, runs a full
reconcile pass (a re-list), then subscribes with ``since`` = that time, so a death that
happened while it was away is found by the re-list and one that happens right after by the
events the runtime resumes from ``since`` (how it resumes is the adapter's: Docker replays).
A runtime that may have missed something says so with a RELIST event: the watcher re-lists
at once, without dropping the subscription. A broken watch (engine restart) backs off and
repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from orchestrator.domain.containers import EventKind, RuntimeEvent
from orchestrator.errors import OrchestratorError
from orchestrator.reconcile.containers import Reconciler

log = logging.getLogger(__name__)


def failure_reason(event: RuntimeEvent) -> str:
    if event.displaced:
        return "pusher lost: the runtime took it away (its node is down or drained)"
    if event.exit_code is not None:
        return f"container exited with code {event.exit_code}"
    return "container removed" if event.kind is EventKind.REMOVED else "container died"


class EventWatcher:
    def __init__(self, reconciler: Reconciler, *, max_backoff_seconds: float = 30.0) -> None:
        self.reconciler = reconciler
        self.max_backoff_seconds = max_backoff_seconds
        self.reconnects = 0
        self.relists = 0

    async def on_event(self, event: RuntimeEvent) -> bool:
        """An end or removal of a recorded pusher marks it failed; RELIST runs a reconcile
        pass. True when it did either."""
        if event.kind is EventKind.RELIST:
            self.relists += 1
            await self.reconciler.run_once()
            return True
        runtime = self.reconciler.lifecycle.runtime
        if event.kind not in (EventKind.ENDED, EventKind.REMOVED) or not event.camera_id:
            return False
        if not event.owned_by(runtime.instance):
            return False  # another deployment's pusher (the runtime filters already)
        reason = failure_reason(event)
        retry_at = await self.reconciler.lifecycle.pushers.mark_failed(
            event.camera_id,
            event.generation or 1,
            reason,
            container_id=event.ref,
            displaced=event.displaced,
        )
        if retry_at is not None:
            log.warning(
                "pusher died; restart scheduled",
                extra={
                    "camera_id": event.camera_id,
                    "container_id": event.ref,
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
                    "runtime events interrupted; re-listing after backoff",
                    extra={
                        "runtime": runtime.kind,
                        "error": repr(exc),
                        "delay_seconds": round(delay, 2),
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
