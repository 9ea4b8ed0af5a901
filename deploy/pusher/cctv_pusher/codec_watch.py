"""What the camera really sends, reported as one ``codec`` log line (and again when it changes).

A browser gets the camera's H.264 as it is, whatever the SDP says, so operators need the real
profile, level, size, frame rate and whether there are B-frames. :class:`CodecWatch` sees every
access unit the camera sends (in the demux thread, before the send queue) and keeps the cost per
packet near zero:

* **SPS**: looked for on keyframes only (parameter sets take effect at an IDR), in band or else
  the one from the SDP (the stream's extradata, which the pusher also injects). Each keyframe
  costs a scan of the NAL headers before its first slice and one bytes comparison; the SPS is
  parsed only when its bytes differ from the last one.
* **Slice headers** (a few bytes each): read for every non-keyframe during an *observation
  window* until a B slice is seen. The window opens at the first keyframe and again whenever
  the SPS bytes change, and closes after :data:`WINDOW_FRAMES` access units or
  :data:`WINDOW_SECONDS`, whichever comes first. Outside a window a slice header is read only
  when a packet's pts goes backwards (reordering: how B-frames show up in decode order, one
  integer comparison per packet), and not at all once B-frames are known.

The first report is made when the first window closes; later ones when a window closes with
different values, or at once when the first B slice turns up after ``b_frames: false``. Values
that are unknown are ``None`` (``null``); the frame rate falls back to the container's when the
SPS carries no timing. Nothing here raises on bad input: an unreadable SPS is reported once
(``codec_unreadable``), unreadable slice headers are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .h264info import SLICE_B, H264Error, SpsInfo, leading_nal_units, parse_sps, slice_type

WINDOW_SECONDS = 2.0
WINDOW_FRAMES = 60
# Called as ``emit(level, event, **fields)``, i.e. like :class:`cctv_pusher.logs.Log`.
Emit = Callable[..., None]


@dataclass(frozen=True, slots=True)
class CodecReport:
    """The ``codec`` event's fields (``h264_level``: e.g. ``"4.0"``; the line's ``level`` stays
    its severity). The orchestrator reads the line under these names."""

    profile: str | None
    profile_idc: int | None
    h264_level: str | None
    width: int | None
    height: int | None
    fps: float | None
    b_frames: bool


def parameter_set_sps(extradata: bytes | None) -> bytes | None:
    """The SPS in a stream's Annex-B extradata (from the SDP); None for none or for AVCC."""
    if not extradata or not extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        return None
    return leading_nal_units(extradata)[0]


class CodecWatch:
    """Fed every access unit in decode order, from one thread (see the module docstring)."""

    def __init__(
        self,
        emit: Emit,
        extradata: bytes | None = None,
        fallback_fps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._sdp_sps = parameter_set_sps(extradata)
        self._fallback_fps = fallback_fps
        self._clock = clock
        self._synced = False  # a keyframe has been seen
        self._sps_bytes: bytes | None = None
        self._sps: SpsInfo | None = None
        self._window_start: float | None = None  # None: no observation window open
        self._window_frames = 0
        self._b_frames = False
        self._last_pts: int | None = None
        self.reported: CodecReport | None = None
        self.slices_read = 0  # slice headers parsed: what the watch costs, for tests

    @property
    def b_frames(self) -> bool:
        """Whether a B slice has been seen since the parameter sets last changed."""
        return self._b_frames

    def feed(self, data: bytes, pts: int | None, keyframe: bool) -> None:
        """One access unit (Annex-B) as demuxed, with its pts and keyframe flag."""
        reordered = pts is not None and self._last_pts is not None and pts < self._last_pts
        if pts is not None:
            self._last_pts = pts
        if keyframe:
            sps, _ = leading_nal_units(data)  # the keyframe's own slices are I/SI: not read
            self._sps_seen(sps or self._sdp_sps)
        elif not self._synced:
            return
        elif not self._b_frames and (self._window_start is not None or reordered):
            self._b_frames = self._is_b_slice(data)
            if self._b_frames and self._window_start is None:
                self._report()  # B-frames turned up after the window closed
        if self._window_start is not None:
            self._window_frames += 1
            elapsed = self._clock() - self._window_start
            if self._window_frames >= WINDOW_FRAMES or elapsed >= WINDOW_SECONDS:
                self._window_start = None
                self._report()

    def _sps_seen(self, sps: bytes | None) -> None:
        if self._synced and sps == self._sps_bytes:
            return  # the usual keyframe: same parameter sets
        self._synced = True
        self._sps_bytes, self._sps = sps, None
        if sps is not None:
            try:
                self._sps = parse_sps(sps)
            except H264Error as exc:
                self._emit("error", "codec_unreadable", reason=str(exc), sps=sps[:32].hex())
        self._window_start, self._window_frames, self._b_frames = self._clock(), 0, False

    def _is_b_slice(self, data: bytes) -> bool:
        """Whether the access unit's first slice is a B slice (the others are alike)."""
        _, head = leading_nal_units(data)
        if head is None:
            return False
        self.slices_read += 1
        try:
            return slice_type(head) == SLICE_B
        except H264Error:
            return False  # a damaged header says nothing; the next packet will

    def _report(self) -> None:
        sps = self._sps
        fps = sps.fps if sps is not None and sps.fps else self._fallback_fps
        report = CodecReport(
            profile=sps.profile if sps else None,
            profile_idc=sps.profile_idc if sps else None,
            h264_level=sps.level if sps else None,
            width=sps.width if sps else None,
            height=sps.height if sps else None,
            fps=fps,
            b_frames=self._b_frames,
        )
        if report != self.reported:
            self.reported = report
            self._emit("info", "codec", **asdict(report))
