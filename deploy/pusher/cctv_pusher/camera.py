"""The camera side of both engines: open RTSP over TCP and read H.264 access units unchanged.

FFmpeg (PyAV) only demuxes here: nothing is decoded and nothing is encoded. Opening is bounded
by PyAV's interrupt timeout and by FFmpeg's own socket timeout; reads by the socket timeout
alone, so a camera that stays connected but sends nothing fails the read after
``PUSHER_RTSP_READ_TIMEOUT_SECONDS`` (each engine also watches for packets that stop coming).
PyAV's read timeout is left off: it calls back into Python, under the GIL, on every wait of
every read, which was a tenth of the FFmpeg engine's CPU.

:func:`access_units` is the per-packet work both engines share: the missing first pts, the
keyframe flag (some cameras' IDRs come unflagged) and the :class:`CodecWatch` that reports what
the camera really encodes. It imports nothing of WebRTC, so the FFmpeg engine stays lean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import av
import av.error
from av.container import InputContainer
from av.video.stream import VideoStream

from .codec_watch import CodecWatch, Emit
from .config import PusherConfig
from .h264info import MAX_PLAUSIBLE_FPS, leading_nal_units
from .rtp_h264 import START_CODE

Packet: TypeAlias = "av.Packet[Any]"
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
# An access unit's first slice starts within this many bytes (after AUD, SPS, PPS and SEI):
# reading only them keeps the per-frame cost flat however large the picture is.
HEAD_BYTES = 1024


class CameraFailure(Exception):
    """The camera could not be read: unreachable, refused, not H.264, stalled or ended."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    profile: str | None
    b_frames: bool  # the SPS announces frame reordering (FFmpeg's ``has_b_frames``)


@dataclass(slots=True)
class SourceStats:
    packets: int = 0
    keyframes: int = 0
    bytes: int = 0
    dropped: int = 0
    injected_parameter_sets: int = 0


class StatsLine:
    """The ``stats`` log line both engines write every ``interval_s``, with the frame rate
    since the previous one. Call :meth:`tick` about once a second."""

    def __init__(self, emit: Emit, stats: SourceStats, interval_s: float, now: float) -> None:
        self._emit, self._stats, self._interval_s = emit, stats, interval_s
        self._last, self._last_at = stats.packets, now

    def tick(self, now: float) -> None:
        if now - self._last_at < self._interval_s:
            return
        s = self._stats
        fps = (s.packets - self._last) / (now - self._last_at)
        self._last, self._last_at = s.packets, now
        self._emit(
            "info",
            "stats",
            packets=s.packets,
            fps=round(fps, 1),
            keyframes=s.keyframes,
            kbytes=s.bytes // 1024,
            dropped=s.dropped,
            injected_parameter_sets=s.injected_parameter_sets,
        )


def nal_types(data: bytes) -> set[int]:
    """NAL unit types in an Annex-B buffer (headers only; the payload is not touched)."""
    found: set[int] = set()
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        found.add(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return found


def starts_idr(data: bytes) -> bool | None:
    """Whether the access unit's first slice is an IDR slice; None when none starts in ``data``."""
    _, first_slice = leading_nal_units(data)
    if first_slice is None:
        return None
    return first_slice[0] & 0x1F == NAL_IDR


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
        if rate is not None and 0 < rate <= MAX_PLAUSIBLE_FPS:  # FFmpeg may guess 90000
            return round(float(rate), 3)
    return None


def open_camera(config: PusherConfig) -> tuple[InputContainer, StreamInfo]:
    """Connect and describe the stream (blocking); :class:`CameraFailure` if it is unusable."""
    options = {
        "rtsp_transport": "tcp",  # interleaved on the RTSP connection: no UDP to firewall
        "timeout": str(round(config.rtsp_read_timeout_s * 1_000_000)),  # socket I/O, in µs
        "user_agent": "cctv-pusher",
        # Probe briefly: SPS/PPS usually come with the SDP, and every probed 100 ms is
        # 100 ms more before the first frame reaches a viewer.
        "analyzeduration": "200000",
        "probesize": "500000",
        "fpsprobesize": "0",
    }
    try:
        container = av.open(
            config.rtsp_url,
            format="rtsp",
            options=options,
            timeout=(config.rtsp_open_timeout_s, None),
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraFailure(f"cannot open the camera stream: {exc}") from None
    if not container.streams.video:
        container.close()
        raise CameraFailure("the camera stream has no video")
    ctx = container.streams.video[0].codec_context
    info = StreamInfo(ctx.name, ctx.width, ctx.height, ctx.profile, ctx.has_b_frames > 0)
    if info.codec != "h264":
        container.close()
        raise CameraFailure(f"camera sends {info.codec}, not H.264; the pusher never transcodes")
    return container, info


def access_units(
    container: InputContainer,
    emit: Emit,
    stats: SourceStats,
    closing: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[Packet, bytes]]:
    """Each access unit of the camera's video as ``(packet, bytes)``, keyframes flagged: all
    of a keyframe's bytes, the first :data:`HEAD_BYTES` of any other access unit (all that the
    codec watch reads of it: the first slice header).

    Ends quietly once ``closing()`` is true; raises :class:`CameraFailure` when the camera
    ends the stream or a read fails (which includes the read timeout). ``emit`` gets the
    codec report; ``stats`` is counted here (its ``packets`` tell a watchdog the camera is
    alive)."""
    stream = container.streams.video[0]
    codec = CodecWatch(emit, stream.codec_context.extradata, stream_fps(stream))
    last_pts = -1
    try:
        for packet in container.demux(stream):
            if closing():
                return
            if packet.size == 0:
                continue
            if packet.pts is None:
                # FFmpeg gives the first packet after probing no pts; it plays right before
                # the next one, so it gets the tick after the last known one.
                packet.pts = packet.dts if packet.dts is not None else last_pts + 1
            if packet.dts is None:
                packet.dts = packet.pts
            last_pts = packet.pts
            head = bytes(memoryview(packet)[:HEAD_BYTES])
            idr = starts_idr(head)
            if idr is None and packet.size > HEAD_BYTES:  # a huge SEI first: read it all
                idr = NAL_IDR in nal_types(bytes(packet))
            keyframe = packet.is_keyframe or bool(idr)
            data = bytes(packet) if keyframe else head
            codec.feed(data, packet.pts, keyframe)
            if keyframe:
                packet.is_keyframe = True
                stats.keyframes += 1
            stats.packets += 1
            stats.bytes += packet.size
            yield packet, data
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraFailure(f"camera read failed: {exc}") from None
    if not closing():
        raise CameraFailure("camera ended the stream")


class MuxerCamera(Protocol):
    """An open camera as the FFmpeg engine uses it, whichever reader reads it."""

    info: StreamInfo

    def template(self) -> Any:
        """The video stream the muxer's output stream is made from."""

    def access_units(
        self, emit: Emit, stats: SourceStats, closing: Callable[[], bool]
    ) -> Iterator[tuple[Packet, bytes]]:
        """As :func:`access_units`."""

    def close(self) -> None: ...


class DemuxedCamera:
    """A camera read by FFmpeg's RTSP demuxer (:func:`open_camera`), as a :class:`MuxerCamera`."""

    def __init__(self, container: InputContainer, info: StreamInfo) -> None:
        self._container, self.info = container, info

    def template(self) -> Any:
        return self._container.streams.video[0]

    def access_units(
        self, emit: Emit, stats: SourceStats, closing: Callable[[], bool]
    ) -> Iterator[tuple[Packet, bytes]]:
        return access_units(self._container, emit, stats, closing)

    def close(self) -> None:
        self._container.close()
