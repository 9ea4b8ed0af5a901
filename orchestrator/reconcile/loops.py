"""A named, guarded periodic task (kopf/arq style).

A body that raises is logged and retried on the next tick (after a bounded backoff when it
keeps failing); cancellation always propagates, so shutdown never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class GuardedLoop:
    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[object]],
        *,
        interval_seconds: float,
        max_backoff_seconds: float = 30.0,
        on_error: Callable[[Exception], None] | None = None,
        on_pass: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._on_error = on_error
        self._on_pass = on_pass
        self._body = body
        self.interval_seconds = interval_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.failures = 0
        self.runs = 0

    async def run_once(self) -> object:
        """One pass of the body, errors propagating (what tests call)."""
        result = await self._body()
        self.runs += 1
        if self._on_pass is not None:
            self._on_pass(self.name)
        return result

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = self.interval_seconds
            try:
                await self.run_once()
                self.failures = 0
            except Exception as exc:  # noqa: BLE001 - the guard: log, back off, keep going
                self.failures += 1
                if self._on_error is not None:
                    self._on_error(exc)
                delay = min(self.max_backoff_seconds, delay * 2 ** min(self.failures, 8))
                delay *= 0.5 + random.random() / 2
                log.warning(
                    "loop pass failed",
                    extra={"loop": self.name, "error": repr(exc), "failures": self.failures},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


class LoopGroup:
    """Runs loops as named tasks; ``stop()`` ends them in order and waits."""

    def __init__(self, loops: list[GuardedLoop]) -> None:
        self.loops = loops
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stop_event(self) -> asyncio.Event:
        """Set when the group stops: long-running bodies (an event stream) wait on it."""
        return self._stop

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(loop.run_forever(self._stop), name=f"loop:{loop.name}")
            for loop in self.loops
        ]

    async def stop(self, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=timeout_seconds)
            except TimeoutError:
                log.error("loop did not stop in time; cancelling", extra={"task": task.get_name()})
                task.cancel()
        self._tasks = []
