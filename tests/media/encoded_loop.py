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

The default loop is what most CCTV cameras are set to and what browsers play: Constrained
Baseline, no B-frames. ``profile="main"``/``"high"`` and ``b_frames`` make the other kind a
camera may be configured for (High profile with B-frames is common on NVR-grade cameras): the
GOPs stay closed and fixed (``b-adapt=0``: ``I P B B P B B ...`` in presentation order), so the
loop seam stays clean, and every access unit keeps its presentation index for RTP timestamps
(B-frames are sent in decode order, so pts != decode order).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from tests.media.h264 import IDR, PPS, SPS, nal_digest, nal_type, profile_level_id, split_annexb
from tests.media.pattern import make_frame

REFERENCE_PIXELS = 640 * 360
REFERENCE_BITRATE = 1_000_000
PROFILES = ("baseline", "main", "high")


def default_bitrate(width: int, height: int) -> int:
    """1 Mbit/s at 640x360, growing sub-linearly with area (about 4 Mbit/s at 1080p)."""
    return int(REFERENCE_BITRATE * (width * height / REFERENCE_PIXELS) ** 0.63)


@dataclass(frozen=True)
class AccessUnit:
    """One encoded picture: its NAL units (no start codes), whether it is an IDR, and its
    presentation index in the loop (its pts in frames; the decode index without B-frames)."""

    nals: tuple[bytes, ...]
    is_idr: bool
    pts: int


@dataclass(frozen=True)
class EncodedLoop:
    """The replayable loop and what an SDP needs to describe it."""

    width: int
    height: int
    fps: int
    gop: int
    access_units: tuple[AccessUnit, ...]  # in decode order, as sent
    encode_seconds: float
    profile: str = "baseline"
    b_frames: int = 0
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


def check_encoding(profile: str, b_frames: int) -> None:
    """ValueError unless ``profile`` and ``b_frames`` are an encoding the simulator makes."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    if not 0 <= b_frames <= 3 or (b_frames and profile == "baseline"):
        raise ValueError("b_frames must be 0-3, and 0 for the baseline profile (no B slices)")


def _x264_options(profile: str, b_frames: int, gop: int, kbps: int) -> dict[str, str]:
    # fixed GOPs (no scene-cut IDRs) and CBR with filler data: see the module docstring
    params = (
        f"keyint={gop}:min-keyint={gop}:scenecut=0:"
        f"nal-hrd=cbr:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
    )
    if profile == "baseline":
        return {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": profile,
            "x264-params": params,
        }
    # superfast keeps CABAC and the 8x8 transform, which make x264 write Main and High SPSs
    options = {"preset": "superfast", "profile": profile}
    if b_frames:  # zerolatency would turn B-frames off; a fixed pattern, no B-pyramid
        params += f":bframes={b_frames}:b-adapt=0:b-pyramid=none:open-gop=0"
    else:
        options["tune"] = "zerolatency"
    options["x264-params"] = params
    return options


def _encoder(
    width: int, height: int, fps: int, gop: int, profile: str, b_frames: int
) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.gop_size = gop
    codec.max_b_frames = b_frames
    kbps = default_bitrate(width, height) // 1000
    codec.bit_rate = kbps * 1000
    codec.options = _x264_options(profile, b_frames, gop, kbps)
    return codec


def _access_unit(packet: av.Packet[Any]) -> AccessUnit:
    nals = tuple(split_annexb(bytes(packet)))
    if packet.pts is None:
        raise RuntimeError("the encoder returned a packet without pts")
    return AccessUnit(nals, any(nal_type(nal) == IDR for nal in nals), packet.pts)


def _check_gops(units: list[AccessUnit], gop: int) -> None:
    """Closed GOPs of ``gop`` frames in decode order, each opening with SPS, PPS and an IDR and
    presenting exactly its own frames (B-frames never reach across an IDR or the loop seam)."""
    for index, unit in enumerate(units):
        if unit.is_idr != (index % gop == 0):
            raise RuntimeError(f"frame {index}: IDR={unit.is_idr}, expected a GOP of {gop}")
        if unit.is_idr:
            types = [nal_type(nal) for nal in unit.nals]
            if SPS not in types or PPS not in types:
                raise RuntimeError(f"IDR frame {index} lacks in-band SPS/PPS")
            presented = sorted(u.pts for u in units[index : index + gop])
            if unit.pts != index or presented != list(range(index, index + len(presented))):
                raise RuntimeError(f"the GOP at frame {index} is not closed: pts {presented}")


def encode_loop(
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    gop: int = 25,
    loop_seconds: float = 4.0,
    profile: str = "baseline",
    b_frames: int = 0,
) -> EncodedLoop:
    """Encode ``loop_seconds`` (rounded up to whole GOPs) of the pattern with libx264.

    ``profile``: ``baseline`` (Constrained Baseline, the default), ``main`` or ``high``;
    ``b_frames``: consecutive B-frames between references (Main and High only).
    """
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs an even width and height")
    if fps <= 0 or gop <= 0 or loop_seconds <= 0:
        raise ValueError("fps, gop and loop_seconds must be positive")
    check_encoding(profile, b_frames)
    if b_frames >= gop:
        raise ValueError("a GOP needs more frames than b_frames")
    gops = max(1, -(-round(loop_seconds * fps) // gop))
    started = time.perf_counter()
    codec = _encoder(width, height, fps, gop, profile, b_frames)
    units: list[AccessUnit] = []
    for index in range(gops * gop):
        frame = make_frame(width, height, index).reformat(format="yuv420p")
        frame.pts = index
        units.extend(_access_unit(packet) for packet in codec.encode(frame))
    units.extend(_access_unit(packet) for packet in codec.encode(None))
    if len(units) != gops * gop:
        raise RuntimeError(f"encoder returned {len(units)} access units for {gops * gop} frames")
    _check_gops(units, gop)
    seconds = time.perf_counter() - started
    return EncodedLoop(width, height, fps, gop, tuple(units), seconds, profile, b_frames)
