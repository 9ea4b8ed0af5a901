"""The aiortc engine: aiortc packetizes the camera's access units and runs ICE, DTLS and SRTP.

It verifies the ingress's DTLS fingerprint and its HTTPS certificate, which FFmpeg's WHIP
muxer does not: the engine for paths to the ingress that cross an untrusted network, and for
cameras that send B-frames. It costs about twice the FFmpeg engine's CPU and memory
(``docs/benchmarks.md``).

The run ends on SIGTERM/SIGINT (the session is deleted, exit 0), on a camera failure (exit 1)
or on a WHIP failure (exit 3). Every wait is bounded by a configured timeout, and a stop signal
interrupts any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from . import ExitCode
from .camera import StatsLine
from .config import PusherConfig
from .logs import Log, safe_url
from .memory import heap_trimmer
from .publisher import Publisher
from .source import CameraFailure, RtspSource
from .whip import WhipClient, WhipError

T = TypeVar("T")
# What the media path is made of, logged at start: there is no decoder and no encoder in it.
PIPELINE = ("rtsp-tcp-demux", "h264-passthrough", "rtp-h264-packetizer", "srtp", "whip")
DELETE_TIMEOUT_S = 3.0


class Stopped(Exception):
    """A stop signal arrived while waiting."""


async def run(config: PusherConfig, log: Log) -> ExitCode:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("starting", camera=safe_url(config.rtsp_url), whip=safe_url(config.whip_url))
    source = RtspSource(config, log)
    try:
        return await _run(config, log, source, stop)
    except Stopped:
        log.info("stopped", reason="signal before publishing")
        return ExitCode.STOPPED
    finally:
        source.close()


async def _run(config: PusherConfig, log: Log, source: RtspSource, stop: asyncio.Event) -> ExitCode:
    started = time.monotonic()
    try:
        info = await _unless_stopped(source.open(), stop)
    except CameraFailure as exc:
        log.error("camera_failed", reason=str(exc))
        return ExitCode.CAMERA
    log.info(
        "camera_open",
        codec=info.codec,
        width=info.width,
        height=info.height,
        profile=info.profile,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("pipeline", engine="aiortc", elements=list(PIPELINE), decoder=None, encoder=None)
    source.start()
    publisher = Publisher(source.track, config.ice_servers)
    whip = WhipClient(config.whip_url, config.whip_token, config.whip_timeout_s)
    try:
        return await _publish(config, log, source, publisher, whip, stop, started)
    finally:
        await _teardown(log, publisher, whip)


async def _publish(
    config: PusherConfig,
    log: Log,
    source: RtspSource,
    publisher: Publisher,
    whip: WhipClient,
    stop: asyncio.Event,
    started: float,
) -> ExitCode:
    try:
        codec = await _unless_stopped(publisher.connect(whip, config.ice_connect_timeout_s), stop)
    except WhipError as exc:
        log.error("whip_failed", reason=str(exc), status=exc.status)
        return ExitCode.WHIP
    assert publisher.session is not None
    log.info(
        "publishing",
        codec=codec,
        session=safe_url(publisher.session.location),
        seconds=round(time.monotonic() - started, 3),
    )
    stats = asyncio.ensure_future(_report(config, log, source))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        ends: list[asyncio.Future[Any]] = [stopped, source.failed, publisher.dropped]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stats.cancel()
        stopped.cancel()
    if stop.is_set():
        log.info("stopping", reason="signal")
        return ExitCode.STOPPED
    if source.failed.done():
        log.error("camera_failed", reason=source.failed.result())
        return ExitCode.CAMERA
    log.error("whip_failed", reason=f"connection {publisher.dropped.result()}")
    return ExitCode.WHIP


async def _teardown(log: Log, publisher: Publisher, whip: WhipClient) -> None:
    """DELETE the WHIP session (bounded) and close the peer connection."""
    session = publisher.session
    if session is not None:
        try:
            status = await asyncio.wait_for(whip.delete(session), DELETE_TIMEOUT_S)
            log.info("whip_deleted", status=status)
        except (WhipError, TimeoutError) as exc:
            log.error("whip_delete_failed", reason=str(exc) or "timeout")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(publisher.close(), DELETE_TIMEOUT_S)


async def _report(config: PusherConfig, log: Log, source: RtspSource) -> None:
    """Every second, trim the heap; every stats interval, log a stats line."""
    trim = heap_trimmer()
    line = StatsLine(log, source.stats, config.stats_interval_s, time.monotonic())
    while True:
        await asyncio.sleep(1.0)
        trim()
        line.tick(time.monotonic())


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise Stopped
    return task.result()
