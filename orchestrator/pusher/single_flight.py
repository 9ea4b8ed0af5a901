"""One operation per camera at a time in this process: later ones queue behind it, so a claim
arriving while the same camera is still being torn down waits for the teardown instead of
racing it. Who acts at all is decided in Valkey, never here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from orchestrator.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """A short, secret-free reason for stats (the runtime already redacted its messages)."""
    return f"{type(exc).__name__}: {exc}"[:300]


class PerCamera:
    """The per-camera operation queue; a failed operation is counted and logged (the tick and
    the reconcile pass retry it)."""

    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else ServiceMetrics(None)
        self._ops: dict[str, asyncio.Task[None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    def busy(self, camera_id: str) -> bool:
        return camera_id in self._ops

    def spawn(self, camera_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after any operation already running for this camera here."""
        previous = self._ops.get(camera_id)

        async def chained() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the tick and reconcile retry
                self.metrics.dependency_error(exc)
                log.warning(
                    "pusher operation failed",
                    extra={"camera_id": camera_id, "error": describe(exc)},
                )

        task = asyncio.create_task(chained(), name=f"pusher:{camera_id}")
        self._ops[camera_id] = task
        task.add_done_callback(lambda done: self._forget(camera_id, done))

    def spawn_later(
        self, delay_s: float, camera_id: str, work: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """:meth:`spawn` ``work()`` after ``delay_s``; forgotten by :meth:`close`."""
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timers.discard(handle)
            self.spawn(camera_id, work())

        handle = loop.call_later(delay_s, due)
        self._timers.add(handle)

    def _forget(self, camera_id: str, task: asyncio.Task[None]) -> None:
        if self._ops.get(camera_id) is task:
            del self._ops[camera_id]

    async def close(self, timeout_seconds: float = 15.0) -> None:
        """Let running operations finish (bounded), then cancel what is left."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        tasks = list(self._ops.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
