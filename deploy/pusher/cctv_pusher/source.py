"""The camera side: demux the RTSP stream's H.264 access units without decoding them.

FFmpeg (PyAV) reads RTSP over TCP in a worker thread, since its calls block; each packet is
handed to the event loop as it arrives. Nothing is decoded and nothing is encoded: the track
yields ``av.Packet`` objects, which aiortc packetizes into RTP as they are.

Liveness is bounded twice: FFmpeg's own socket timeout plus PyAV's interrupt timeout on every
blocking call, and a watchdog on the loop side that fails the source when no packet arrived for
the read timeout (a camera that stays connected but sends nothing counts as down).

The demux thread also shows every access unit to a :class:`CodecWatch`, which logs what the
camera really encodes (the ``codec`` event) at a cost of a few byte comparisons per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

import av
import av.error
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.container import InputContainer
from av.video.stream import VideoStream

from .codec_watch import CodecWatch
from .config import PusherConfig
from .logs import Log

Packet: TypeAlias = "av.Packet[Any]"
START_CODE = b"\x00\x00\x00\x01"
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
# A live stream is never buffered: past this many queued access units the sender is behind, and
# everything up to the next keyframe is dropped (a decoder cannot use frames without their IDR).
MAX_QUEUED = 50
MAX_PLAUSIBLE_FPS = 240  # FFmpeg's guess is sometimes a clock rate (90000), not a frame rate


class CameraFailure(Exception):
    """The camera could not be read: unreachable, refused, not H.264, stalled or ended."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    profile: str | None


@dataclass(slots=True)
class SourceStats:
    packets: int = 0
    keyframes: int = 0
    bytes: int = 0
    dropped: int = 0
    injected_parameter_sets: int = 0


def nal_types(data: bytes) -> set[int]:
    """NAL unit types in an Annex-B buffer (headers only; the payload is not touched)."""
    found: set[int] = set()
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        found.add(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return found


def with_parameter_sets(
    packet: Packet, extradata: bytes | None, data: bytes | None = None
) -> Packet:
    """The keyframe ``packet``, prefixed with SPS/PPS from ``extradata`` when it has none.

    Many cameras send SPS/PPS only in the SDP (``sprop-parameter-sets``); FFmpeg puts them in
    the stream's extradata. A WebRTC decoder needs them in band before the IDR. ``data``: the
    packet's bytes, when the caller has them already.
    """
    data = bytes(packet) if data is None else data
    if not extradata or not extradata.startswith((b"\x00\x00\x01", START_CODE)):
        return packet
    if NAL_SPS in nal_types(data):
        return packet
    joined = av.Packet(extradata + data)
    joined.pts, joined.dts = packet.pts, packet.dts
    if packet.time_base is not None:
        joined.time_base = packet.time_base
    joined.is_keyframe = True
    return joined


def stream_fps(stream: VideoStream) -> float | None:
    """The frame rate FFmpeg gives the stream (the SDP's ``a=framerate``, else its guess), for
    cameras whose SPS carries no timing; None when neither is plausible."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and 0 < rate <= MAX_PLAUSIBLE_FPS:
            return round(float(rate), 3)
    return None


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
        container = await asyncio.to_thread(self._open)
        self._container = container
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = StreamInfo(ctx.name, ctx.width, ctx.height, ctx.profile)
        if info.codec != "h264":
            container.close()
            raise CameraFailure(
                f"camera sends {info.codec}, not H.264; the pusher never transcodes"
            )
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

    def _open(self) -> InputContainer:
        c = self._config
        options = {
            "rtsp_transport": "tcp",  # interleaved on the RTSP connection: no UDP to firewall
            "timeout": str(round(c.rtsp_read_timeout_s * 1_000_000)),  # socket I/O, in µs
            "user_agent": "cctv-pusher",
            # Probe briefly: SPS/PPS usually come with the SDP, and every probed 100 ms is
            # 100 ms more before the first frame reaches a viewer.
            "analyzeduration": "200000",
            "probesize": "500000",
            "fpsprobesize": "0",
        }
        try:
            return av.open(
                c.rtsp_url,
                format="rtsp",
                options=options,
                timeout=(c.rtsp_open_timeout_s, c.rtsp_read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraFailure(f"cannot open the camera stream: {exc}") from None

    def _read(self, container: InputContainer) -> None:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata
        codec = CodecWatch(self._log_soon, extradata, stream_fps(stream))
        reason = "camera ended the stream"
        last_pts = -1
        try:
            for packet in container.demux(stream):
                if self._closing.is_set():
                    return
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    # FFmpeg gives the first packet after probing no pts; it plays right
                    # before the next one, so it gets the tick after the last known one.
                    packet.pts = packet.dts if packet.dts is not None else last_pts + 1
                last_pts = packet.pts
                data = bytes(packet)
                keyframe = packet.is_keyframe or NAL_IDR in nal_types(data)
                codec.feed(data, packet.pts, keyframe)
                if keyframe:
                    packet.is_keyframe = True
                    joined = with_parameter_sets(packet, extradata, data)
                    if joined is not packet:
                        self.stats.injected_parameter_sets += 1  # read in the loop: a hint only
                    packet = joined
                self._loop.call_soon_threadsafe(self._deliver, packet)
        except (av.error.FFmpegError, OSError) as exc:
            reason = f"camera read failed: {exc}"
        finally:
            container.close()
        if not self._closing.is_set():
            self._loop.call_soon_threadsafe(self._fail, reason)

    def _log_soon(self, level: str, event: str, /, **fields: object) -> None:
        """Log from the demux thread: the line is written on the loop, like every other."""
        self._loop.call_soon_threadsafe(partial(self._log, level, event, **fields))

    def _deliver(self, packet: Packet) -> None:
        self._last_packet = time.monotonic()
        stats = self.stats
        stats.packets += 1
        stats.bytes += packet.size
        if packet.is_keyframe:
            stats.keyframes += 1
            if self._queue.qsize() < MAX_QUEUED:
                self._synced = True
        if not self._synced or self._queue.qsize() >= MAX_QUEUED:
            self._synced = False
            stats.dropped += 1
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
