"""The aiortc engine's camera side: access units handed from a demux thread to an aiortc track.

FFmpeg's reads block, so :func:`camera.access_units` runs in a worker thread and each access
unit is handed to the event loop as it arrives. The track yields ``av.Packet`` objects, which
aiortc packetizes into RTP as they are. Keyframes get the SDP's SPS/PPS in band when they lack
them (a WebRTC decoder needs them before the IDR).

Liveness is bounded twice: the camera module's read timeouts, and a watchdog on the loop side
that fails the source when no packet arrived for the read timeout (a camera that stays
connected but sends nothing counts as down).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from functools import partial

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.container import InputContainer

from .camera import (
    CameraFailure,
    Packet,
    SourceStats,
    StreamInfo,
    access_units,
    nal_types,
    open_camera,
    with_parameter_sets,
)
from .config import PusherConfig
from .logs import Log

__all__ = [
    "CameraFailure",
    "PassthroughTrack",
    "RtspSource",
    "SourceStats",
    "StreamInfo",
    "nal_types",
    "with_parameter_sets",
]

# A live stream is never buffered: past this many queued access units the sender is behind, and
# everything up to the next keyframe is dropped (a decoder cannot use frames without their IDR).
MAX_QUEUED = 50


class RtspSource:
    """One camera's H.264 stream as an aiortc track, read over RTSP/TCP in a thread."""

    def __init__(self, config: PusherConfig, log: Log) -> None:
        self._config = config
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Packet | None] = asyncio.Queue()
        self._container: InputContainer | None = None
        self._closing = threading.Event()
        self._synced = False  # a keyframe has been queued since the last drop
        self._last_packet = time.monotonic()
        self.stats = SourceStats()
        self.failed: asyncio.Future[str] = self._loop.create_future()
        self.track = PassthroughTrack(self._queue)
        self._reader: threading.Thread | None = None
        self._watching: asyncio.Task[None] | None = None

    async def open(self) -> StreamInfo:
        """Connect and describe the stream; :class:`CameraFailure` if it is unusable."""
        self._container, info = await asyncio.to_thread(open_camera, self._config)
        return info

    def start(self) -> None:
        assert self._container is not None, "open() first"
        self._last_packet = time.monotonic()
        self._reader = threading.Thread(target=self._read, args=(self._container,), daemon=True)
        self._reader.start()
        self._watching = self._loop.create_task(self._watchdog())

    def close(self) -> None:
        self._closing.set()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """:meth:`close`, then wait (bounded) until the demux thread and the watchdog ended.

        The thread ends at its next packet or read error, so a caller that wants it gone at
        once also stops the camera side."""
        self.close()
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, timeout_s)

    def _read(self, container: InputContainer) -> None:
        extradata = container.streams.video[0].codec_context.extradata
        reason = None
        try:
            for packet, data in access_units(
                container, self._log_soon, self.stats, self._closing.is_set
            ):
                if packet.is_keyframe:
                    joined = with_parameter_sets(packet, extradata, data)
                    if joined is not packet:
                        self.stats.injected_parameter_sets += 1  # read in the loop: a hint only
                    packet = joined
                self._loop.call_soon_threadsafe(self._deliver, packet)
        except CameraFailure as exc:
            reason = str(exc)
        finally:
            container.close()
        if reason is not None and not self._closing.is_set():
            self._loop.call_soon_threadsafe(self._fail, reason)

    def _log_soon(self, level: str, event: str, /, **fields: object) -> None:
        """Log from the demux thread: the line is written on the loop, like every other."""
        self._loop.call_soon_threadsafe(partial(self._log, level, event, **fields))

    def _deliver(self, packet: Packet) -> None:
        self._last_packet = time.monotonic()
        if packet.is_keyframe and self._queue.qsize() < MAX_QUEUED:
            self._synced = True
        if not self._synced or self._queue.qsize() >= MAX_QUEUED:
            self._synced = False
            self.stats.dropped += 1
            return
        self._queue.put_nowait(packet)

    def _fail(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_result(reason)
        self._queue.put_nowait(None)

    async def _watchdog(self) -> None:
        limit = self._config.rtsp_read_timeout_s
        while not self.failed.done() and not self._closing.is_set():
            await asyncio.sleep(min(1.0, limit / 4))
            idle = time.monotonic() - self._last_packet
            if idle > limit:
                self._fail(f"no packet from the camera for {idle:.1f} s")


class PassthroughTrack(MediaStreamTrack):
    """A video track whose items are encoded H.264 packets, not frames (aiortc then packs them)."""

    kind = "video"

    def __init__(self, queue: asyncio.Queue[Packet | None]) -> None:
        super().__init__()
        self._queue = queue

    async def recv(self) -> Packet:
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError("camera stream ended")
        return packet
