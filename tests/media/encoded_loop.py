"""Pre-encode the camera's picture loop once, so serving it costs no CPU per client.

A real camera encodes live; a simulator that did so per client would measure its own
encoder instead of the system under test. So the loop is encoded once at start and replayed:
it is a whole number of closed GOPs, each opening with SPS, PPS and an IDR (libx264 repeats
the parameter sets in-band because the global-header flag is not set), which makes the jump
from the last frame back to the first as clean as any other GOP boundary.

The colour bars compress to almost nothing (about 44 kbit/s at 640x360 whatever the target),
which would let an ingest path pass bandwidth-sensitive tests it should not. So the encoder
runs CBR with HRD signalling (``nal-hrd=cbr``), which pads every frame with filler-data NAL
units up to the target bitrate, as a camera configured for CBR does; decoders discard them.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from fractions import Fraction

import av

from tests.media.h264 import IDR, PPS, SPS, nal_digest, nal_type, profile_level_id, split_annexb
from tests.media.pattern import make_frame

REFERENCE_PIXELS = 640 * 360
REFERENCE_BITRATE = 1_000_000


def default_bitrate(width: int, height: int) -> int:
    """1 Mbit/s at 640x360, growing sub-linearly with area (about 4 Mbit/s at 1080p)."""
    return int(REFERENCE_BITRATE * (width * height / REFERENCE_PIXELS) ** 0.63)


@dataclass(frozen=True)
class AccessUnit:
    """One encoded picture: its NAL units (no start codes) and whether it is an IDR."""

    nals: tuple[bytes, ...]
    is_idr: bool


@dataclass(frozen=True)
class EncodedLoop:
    """The replayable loop and what an SDP needs to describe it."""

    width: int
    height: int
    fps: int
    gop: int
    access_units: tuple[AccessUnit, ...]
    encode_seconds: float
    sps: bytes = field(init=False)
    pps: bytes = field(init=False)

    def __post_init__(self) -> None:
        first = self.access_units[0].nals
        types = [nal_type(nal) for nal in first]
        if SPS not in types or PPS not in types:
            raise ValueError("the loop's first access unit carries no SPS/PPS")
        object.__setattr__(self, "sps", first[types.index(SPS)])
        object.__setattr__(self, "pps", first[types.index(PPS)])

    @property
    def profile_level_id(self) -> str:
        return profile_level_id(self.sps)

    @property
    def sprop_parameter_sets(self) -> str:
        return ",".join(base64.b64encode(nal).decode("ascii") for nal in (self.sps, self.pps))

    @property
    def nal_digests(self) -> frozenset[str]:
        return frozenset(nal_digest(nal) for unit in self.access_units for nal in unit.nals)


def _encoder(width: int, height: int, fps: int, gop: int) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.gop_size = gop
    codec.max_b_frames = 0
    kbps = default_bitrate(width, height) // 1000
    codec.bit_rate = kbps * 1000
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        # fixed GOPs (no scene-cut IDRs) and CBR with filler data: see the module docstring
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:"
        f"nal-hrd=cbr:vbv-maxrate={kbps}:vbv-bufsize={kbps}",
    }
    return codec


def _access_unit(data: bytes) -> AccessUnit:
    nals = tuple(split_annexb(data))
    return AccessUnit(nals, any(nal_type(nal) == IDR for nal in nals))


def _check_gops(units: list[AccessUnit], gop: int) -> None:
    for index, unit in enumerate(units):
        if unit.is_idr != (index % gop == 0):
            raise RuntimeError(f"frame {index}: IDR={unit.is_idr}, expected a GOP of {gop}")
        if unit.is_idr:
            types = [nal_type(nal) for nal in unit.nals]
            if SPS not in types or PPS not in types:
                raise RuntimeError(f"IDR frame {index} lacks in-band SPS/PPS")


def encode_loop(
    width: int = 640, height: int = 360, fps: int = 25, gop: int = 25, loop_seconds: float = 4.0
) -> EncodedLoop:
    """Encode ``loop_seconds`` (rounded up to whole GOPs) of the pattern with libx264."""
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs an even width and height")
    if fps <= 0 or gop <= 0 or loop_seconds <= 0:
        raise ValueError("fps, gop and loop_seconds must be positive")
    gops = max(1, -(-round(loop_seconds * fps) // gop))
    started = time.perf_counter()
    codec = _encoder(width, height, fps, gop)
    units: list[AccessUnit] = []
    for index in range(gops * gop):
        frame = make_frame(width, height, index).reformat(format="yuv420p")
        frame.pts = index
        units.extend(_access_unit(bytes(packet)) for packet in codec.encode(frame))
    units.extend(_access_unit(bytes(packet)) for packet in codec.encode(None))
    _check_gops(units, gop)
    if len(units) != gops * gop:
        raise RuntimeError(f"encoder returned {len(units)} access units for {gops * gop} frames")
    return EncodedLoop(width, height, fps, gop, tuple(units), time.perf_counter() - started)
