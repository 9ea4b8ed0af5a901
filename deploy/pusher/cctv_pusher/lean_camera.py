"""The FFmpeg engine's camera through the lean RTSP reader (:mod:`.rtsp_client`).

It hands the engine what FFmpeg's demuxer would: a stream to build the muxer's output stream
from, what the camera encodes, and ``av.Packet`` access units with their pts (90 kHz) and
keyframe flags. The stream template is a raw H.264 stream holding just the camera's SPS and PPS
(from the SDP, else from the first keyframe that carries them), so the muxer reads the real
profile-level-id and prepends the parameter sets to IDRs, as with FFmpeg's demuxer.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import av.error
from av.container import InputContainer

from .camera import (
    HEAD_BYTES,
    NAL_PPS,
    NAL_SPS,
    CameraFailure,
    Packet,
    SourceStats,
    StreamInfo,
)
from .codec_watch import CodecWatch, Emit
from .config import PusherConfig
from .h264info import H264Error, parse_sps
from .rtp_h264 import START_CODE, AccessUnit
from .rtsp_client import RtspError, RtspSession

TIME_BASE = Fraction(1, 90000)  # RTP's clock for video


class BFramesSeen(Exception):
    """The camera's slices turned out to be B slices, which the WHIP muxer cannot send."""


class LeanCamera:
    """One open camera session (made by :func:`open_lean`). :meth:`close` ends it (TEARDOWN)."""

    def __init__(
        self,
        session: RtspSession,
        info: StreamInfo,
        extradata: bytes,
        template: InputContainer | None,
        *,
        fps: float | None = None,
        pending: list[AccessUnit] | None = None,
    ) -> None:
        """``extradata``: SPS and PPS, Annex-B; ``template``: a container holding them as a
        stream; ``fps``: the SDP's frame rate; ``pending``: access units already read."""
        self._session = session
        self.info, self.extradata, self._template = info, extradata, template
        self._fps = fps
        self._pending = pending or []

    def template(self) -> Any:
        """The video stream to pass to ``add_stream_from_template``, valid until
        :meth:`access_units` starts (its container, with the decoder FFmpeg probed it with,
        is freed then)."""
        assert self._template is not None, "the template is gone once reading started"
        return self._template.streams.video[0]

    def close(self) -> None:
        self._session.close()
        self._free_template()

    def _free_template(self) -> None:
        if self._template is not None:
            self._template.close()
            self._template = None

    def access_units(
        self, emit: Emit, stats: SourceStats, closing: Callable[[], bool] = lambda: False
    ) -> Iterator[tuple[Packet, bytes]]:
        """Like :func:`.camera.access_units`: ``(packet, bytes)``, all of a keyframe's bytes
        and the first :data:`HEAD_BYTES` of others. Raises :class:`CameraFailure` when the
        camera fails or ends, :class:`BFramesSeen` when B slices turn up."""
        self._free_template()
        codec = CodecWatch(emit, self.extradata, self._fps)
        ready = self._session.depacketizer.ready
        ready.extendleft(reversed(self._pending))
        self._pending = []
        origin: int | None = None
        last = -1
        while not closing():
            if not ready:
                try:
                    self._session.read()
                except RtspError as exc:
                    raise CameraFailure(str(exc)) from None
                continue
            unit = ready.popleft()
            if origin is None:
                origin = unit.timestamp
            pts = unit.timestamp - origin
            data = unit.data if unit.keyframe else unit.data[:HEAD_BYTES]
            codec.feed(data, pts, unit.keyframe)
            if codec.b_frames:
                raise BFramesSeen
            if pts <= last:  # no B-frames: the camera's clock went back (its encoder restarted)
                origin, pts = unit.timestamp - last - 1, last + 1  # the muxer needs it to rise
            last = pts
            packet = av.Packet(unit.data)
            packet.pts = packet.dts = pts
            packet.time_base = TIME_BASE
            if unit.keyframe:
                packet.is_keyframe = True
                stats.keyframes += 1
            stats.packets += 1
            stats.bytes += len(unit.data)
            yield packet, data


def _described(sps: bytes, pps: bytes) -> tuple[StreamInfo, bytes, InputContainer]:
    """What the SPS says, the parameter sets as extradata, and FFmpeg's stream of them (the
    muxer's template: it reads the real profile-level-id from it)."""
    try:
        parsed = parse_sps(sps)
    except H264Error as exc:
        raise CameraFailure(f"the camera's SPS is unreadable: {exc}") from None
    reorder = parsed.max_num_reorder_frames
    info = StreamInfo("h264", parsed.width, parsed.height, parsed.profile, bool(reorder))
    extradata = START_CODE + sps + START_CODE + pps
    try:
        template = av.open(
            io.BytesIO(extradata),
            "r",
            format="h264",
            options={"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"},
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraFailure(f"FFmpeg refused the camera's parameter sets: {exc}") from None
    if not template.streams.video:
        template.close()
        raise CameraFailure("FFmpeg found no video in the camera's parameter sets")
    return info, extradata, template


def open_lean(config: PusherConfig) -> LeanCamera:
    """Connect and describe the stream (blocking); :class:`CameraFailure` if it is unusable."""
    deadline = time.monotonic() + config.rtsp_open_timeout_s
    session = RtspSession(config.rtsp_url, config.rtsp_open_timeout_s, config.rtsp_read_timeout_s)
    try:
        video = session.open()
    except RtspError as exc:
        raise CameraFailure(f"cannot open the camera stream: {exc}") from None
    try:
        sps, pps = _parameter_sets(video.parameter_sets)
        pending: list[AccessUnit] = []
        while sps is None or pps is None:  # not in the SDP: the first keyframe that has them
            if time.monotonic() > deadline:
                raise CameraFailure("cannot open the camera stream: no SPS/PPS in time")
            sps, pps, pending = _from_stream(session)
        info, extradata, template = _described(sps, pps)
    except RtspError as exc:
        session.abort()
        raise CameraFailure(f"cannot open the camera stream: {exc}") from None
    except CameraFailure:
        session.abort()
        raise
    return LeanCamera(session, info, extradata, template, fps=video.fps, pending=pending)


def _parameter_sets(nals: tuple[bytes, ...]) -> tuple[bytes | None, bytes | None]:
    sps = next((n for n in nals if n and n[0] & 0x1F == NAL_SPS), None)
    pps = next((n for n in nals if n and n[0] & 0x1F == NAL_PPS), None)
    return sps, pps


def _from_stream(session: RtspSession) -> tuple[bytes | None, bytes | None, list[AccessUnit]]:
    """Read once: the parameter sets of the first keyframe carrying both, and the access units
    from that keyframe on. What comes before such a keyframe is of no use to a viewer."""
    session.read()
    ready = session.depacketizer.ready
    while ready:
        unit = ready.popleft()
        if unit.keyframe:
            sps, pps = _parameter_sets(tuple(unit.data.split(START_CODE)))
            if sps is not None and pps is not None:
                pending = [unit, *ready]
                ready.clear()
                return sps, pps, pending
    return None, None, []
