"""Read what a new pusher reports about its camera's stream, and keep it for stats.

The pusher logs a ``codec`` event once it has seen the camera's SPS and a short observation
window, and again when something changes (a first B-frame, a new SPS). The replica that
started the pusher reads the container's recent log lines a few times over its first minute
(``POLL_AFTER_SECONDS``) and records the latest report, fenced by generation. Each poll is
one bounded ``logs`` call of the runtime; a failed poll is skipped. When that replica dies
before a report arrives, the camera shows none until its next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from orchestrator.domain.codec import CodecReport
from orchestrator.errors import OrchestratorError, TemporaryError
from orchestrator.store.pushers import PusherStore

log = logging.getLogger(__name__)

POLL_AFTER_SECONDS = (3.0, 6.0, 12.0, 24.0, 48.0)  # since RUNNING, cumulative
LOG_LINES = 200

Logs = Callable[[str, int], Awaitable[str]]  # container id, tail -> text


class CodecProbe:
    def __init__(
        self,
        pushers: PusherStore,
        logs: Logs,
        *,
        poll_after_seconds: tuple[float, ...] = POLL_AFTER_SECONDS,
    ) -> None:
        self._pushers = pushers
        self._logs = logs
        self._schedule = poll_after_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, camera_id: str, generation: int, container_id: str) -> None:
        """Start polling the new pusher's log in the background."""
        task = asyncio.create_task(
            self._poll(camera_id, generation, container_id), name=f"codec:{camera_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _poll(self, camera_id: str, generation: int, container_id: str) -> None:
        recorded: CodecReport | None = None
        waited = 0.0
        for at in self._schedule:
            await asyncio.sleep(at - waited)
            waited = at
            try:
                report = CodecReport.latest_in(await self._logs(container_id, LOG_LINES))
                if report is None or report == recorded:
                    continue
                if not await self._pushers.record_codec(camera_id, generation, report):
                    return  # a newer generation runs: its own probe reports
            except TemporaryError:
                continue
            except OrchestratorError as exc:
                log.warning(
                    "codec report not recorded", extra={"camera_id": camera_id, "error": str(exc)}
                )
                return
            recorded = report
            log.info(
                "camera codec",
                extra={
                    "camera_id": camera_id,
                    "generation": generation,
                    "profile": report.profile,
                    "h264_level": report.level,
                    "width": report.width,
                    "height": report.height,
                    "fps": report.fps,
                    "b_frames": report.b_frames,
                },
            )
