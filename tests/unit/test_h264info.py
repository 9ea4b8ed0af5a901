"""The pusher's H.264 bitstream reader: SPS fields and slice types, from libx264's own output
(encoded here through PyAV) and from hand-built SPSs for what libx264 never writes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from fractions import Fraction

import av
import pytest
from cctv_pusher.h264info import (
    SLICE_B,
    SLICE_I,
    SLICE_P,
    H264Error,
    SpsInfo,
    leading_nal_units,
    level_name,
    parse_sps,
    profile_name,
    rbsp,
    slice_type,
)
from hypothesis import given
from hypothesis import strategies as st

SC = b"\x00\x00\x00\x01"


@dataclass
class Encoded:
    sps: bytes
    units: list[bytes]  # Annex-B access units in decode order
    pts: list[int] = field(default_factory=list)


def x264(width: int, height: int, frames: int, options: dict[str, str], b_frames: int) -> Encoded:
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, 25), Fraction(25, 1)
    codec.gop_size, codec.max_b_frames = 25, b_frames
    codec.options = options
    units: list[bytes] = []
    pts: list[int] = []
    for index in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(index * 7 + plane.line_size) % 251]) * plane.buffer_size)
        frame.pts = index
        for packet in codec.encode(frame):
            units.append(bytes(packet))
            pts.append(packet.pts or 0)
    for packet in codec.encode(None):
        units.append(bytes(packet))
        pts.append(packet.pts or 0)
    sps, _ = leading_nal_units(units[0])
    assert sps is not None
    return Encoded(sps, units, pts)


@pytest.fixture(scope="module")
def baseline() -> Encoded:
    options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    return x264(640, 360, 30, options, 0)


@pytest.fixture(scope="module")
def high_with_b_frames() -> Encoded:
    options = {"preset": "superfast", "profile": "high", "x264-params": "bframes=2:b-adapt=0"}
    return x264(1920, 1080, 30, options, 2)


def kinds(encoded: Encoded) -> str:
    out = ""
    for unit in encoded.units:
        _, head = leading_nal_units(unit)
        assert head is not None
        out += "PBI"[slice_type(head)]
    return out


def test_libx264_baseline_sps(baseline: Encoded) -> None:
    info = parse_sps(baseline.sps)
    assert info == SpsInfo(
        profile="Constrained Baseline",
        profile_idc=66,
        constraint_flags=0xC0,
        level="3.0",
        level_idc=30,
        width=640,
        height=360,  # 23 macroblock rows (368) cropped by 8
        fps=25.0,
        chroma_format_idc=1,
        bit_depth=8,
        frame_mbs_only=True,
        max_num_reorder_frames=0,  # libx264 writes its VUI bitstream_restriction
    )
    assert info.profile_level_id == baseline.sps[1:4].hex() == "42c01e"
    assert kinds(baseline) == "I" + "P" * 24 + "I" + "P" * 4


def test_libx264_high_profile_with_b_frames(high_with_b_frames: Encoded) -> None:
    info = parse_sps(high_with_b_frames.sps)
    assert (info.profile, info.profile_idc, info.level) == ("High", 100, "4.0")
    assert (info.width, info.height, info.fps) == (1920, 1080, 25.0)  # 1088 cropped to 1080
    assert info.frame_mbs_only and info.chroma_format_idc == 1 and info.bit_depth == 8
    assert info.max_num_reorder_frames is not None and info.max_num_reorder_frames >= 1
    assert kinds(high_with_b_frames).startswith("IPBBPBB")
    assert high_with_b_frames.pts[:4] == [0, 3, 1, 2]  # decode order is not presentation order


def test_emulation_prevention_bytes_are_removed() -> None:
    assert rbsp(b"\x00\x00\x03\x01\x00\x00\x03\x00\x00\x03") == b"\x00\x00\x01\x00\x00\x00\x00"
    assert rbsp(b"\x00\x00\x03\x03\x01") == b"\x00\x00\x03\x01"  # the 2nd 03 is data


class Bits:
    """An RBSP writer for hand-built SPSs, with the escaping an encoder applies."""

    def __init__(self) -> None:
        self.bits = ""

    def u(self, bits: int, value: int) -> Bits:
        self.bits += format(value, f"0{bits}b") if bits else ""
        return self

    def ue(self, value: int) -> Bits:
        code = format(value + 1, "b")
        self.bits += "0" * (len(code) - 1) + code
        return self

    def se(self, value: int) -> Bits:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header: int = 0x67) -> bytes:
        bits = self.bits + "1"  # rbsp_stop_one_bit, then alignment zeros
        bits += "0" * (-len(bits) % 8)
        payload = int(bits, 2).to_bytes(len(bits) // 8, "big")
        escaped = bytearray()
        zeros = 0
        for byte in payload:
            if zeros >= 2 and byte <= 3:
                escaped.append(3)
                zeros = 0
            escaped.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes([header]) + bytes(escaped)


def sps_bits(
    profile_idc: int = 100,
    flags: int = 0,
    level_idc: int = 40,
    *,
    chroma: int = 1,
    bit_depth: int = 8,
    scaling: bool = False,
    poc_type: int = 0,
    width_mbs: int = 120,
    height_units: int = 68,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = (0, 0, 0, 4),
) -> Bits:
    bits = Bits().u(8, profile_idc).u(8, flags).u(8, level_idc).ue(0)
    if profile_idc in (100, 110, 122, 244):
        bits.ue(chroma)
        if chroma == 3:
            bits.u(1, 0)  # separate_colour_plane_flag
        bits.ue(bit_depth - 8).ue(bit_depth - 8).u(1, 0).u(1, int(scaling))
        if scaling:
            for index in range(12 if chroma == 3 else 8):
                present = index in (0, 6)
                bits.u(1, int(present))
                if present:  # a flat list but for one step, then "use the default" (0)
                    bits.se(5).se(-13)
    bits.ue(0).ue(poc_type)  # log2_max_frame_num_minus4, pic_order_cnt_type
    if poc_type == 0:
        bits.ue(2)
    elif poc_type == 1:
        bits.u(1, 0).se(-2).se(1).ue(2).se(4).se(-4)
    bits.ue(4).u(1, 0).ue(width_mbs - 1).ue(height_units - 1).u(1, int(frame_mbs_only))
    if not frame_mbs_only:
        bits.u(1, 1)
    bits.u(1, 1)  # direct_8x8_inference_flag
    bits.u(1, crop is not None)
    for offset in crop or ():
        bits.ue(offset)
    return bits


def vui(bits: Bits, *, units: int = 1001, scale: int = 60000, timing: bool = True) -> Bits:
    bits.u(1, 1)  # vui_parameters_present_flag
    bits.u(1, 1).u(8, 255).u(16, 4).u(16, 3)  # Extended_SAR 4:3
    bits.u(1, 1).u(1, 0)  # overscan
    bits.u(1, 1).u(3, 5).u(1, 1).u(1, 1).u(8, 1).u(8, 1).u(8, 1)  # BT.709
    bits.u(1, 1).ue(0).ue(0)  # chroma_loc
    bits.u(1, int(timing))
    if timing:
        bits.u(32, units).u(32, scale).u(1, 1)
    return bits


def test_hand_built_high_sps_with_vui_timing_and_scaling_lists() -> None:
    info = parse_sps(vui(sps_bits(scaling=True, poc_type=1)).nal())
    assert (info.profile, info.width, info.height) == ("High", 1920, 1080)
    assert info.fps == 29.97


@pytest.mark.parametrize(
    ("chroma", "crop", "size"),
    [
        (1, (2, 2, 1, 1), (1920 - 8, 1088 - 4)),  # 4:2:0 crops in units of 2 both ways
        (2, (2, 2, 1, 1), (1920 - 8, 1088 - 2)),  # 4:2:2: 2 across, 1 down
        (3, (2, 2, 1, 1), (1920 - 4, 1088 - 2)),  # 4:4:4: 1 both ways
    ],
)
def test_cropping_follows_the_chroma_format(
    chroma: int, crop: tuple[int, int, int, int], size: tuple[int, int]
) -> None:
    profile = {1: 100, 2: 122, 3: 244}[chroma]
    info = parse_sps(sps_bits(profile, chroma=chroma, bit_depth=10, crop=crop).u(1, 0).nal())
    assert (info.width, info.height) == size
    assert info.chroma_format_idc == chroma and info.bit_depth == 10 and info.fps is None


def test_interlaced_sps_counts_field_pairs() -> None:
    bits = sps_bits(77, 0x40, 30, width_mbs=45, height_units=18, frame_mbs_only=False, crop=None)
    info = parse_sps(bits.u(1, 0).nal())
    assert (info.profile, info.width, info.height, info.frame_mbs_only) == ("Main", 720, 576, False)


def test_sps_without_timing_info_has_no_frame_rate() -> None:
    assert parse_sps(vui(sps_bits(), timing=False).nal()).fps is None
    assert parse_sps(vui(sps_bits(), units=0).nal()).fps is None  # 0 means nothing


def test_escaped_sps_parses_like_the_unescaped_one() -> None:
    # a long exp-Golomb code (width 2**18 macroblocks) is runs of zero bits: the encoder
    # escapes them, and the reader must take the 03 bytes out again
    nal = sps_bits(66, 0xC0, 30, width_mbs=2**18, height_units=68, crop=None).u(1, 0).nal()
    assert nal.count(b"\x00\x00\x03") == 1
    assert (parse_sps(nal).width, parse_sps(nal).height) == (2**18 * 16, 1088)


@pytest.mark.parametrize(
    ("profile_idc", "flags", "name"),
    [
        (66, 0x40, "Constrained Baseline"),
        (66, 0xC0, "Constrained Baseline"),
        (66, 0x00, "Baseline"),
        (77, 0x40, "Main"),
        (77, 0x80, "Constrained Baseline"),
        (88, 0xC0, "Constrained Baseline"),
        (88, 0x00, "Extended"),
        (100, 0x00, "High"),
        (100, 0x08, "Progressive High"),
        (100, 0x0C, "Constrained High"),
        (110, 0x00, "High 10"),
        (110, 0x10, "High 10 Intra"),
        (122, 0x00, "High 4:2:2"),
        (244, 0x10, "High 4:4:4 Intra"),
        (44, 0x00, "CAVLC 4:4:4 Intra"),
        (118, 0x00, "Multiview High"),
        (7, 0x00, "unknown (7)"),
    ],
)
def test_profile_names(profile_idc: int, flags: int, name: str) -> None:
    assert profile_name(profile_idc, flags) == name


def test_level_names() -> None:
    assert level_name(31, 100, 0) == "3.1"
    assert level_name(40, 100, 0) == "4.0"
    assert level_name(9, 100, 0) == "1b"
    assert level_name(11, 66, 0x10) == "1b"  # constraint_set3 in Baseline
    assert level_name(11, 100, 0x10) == "1.1"  # ...but not in High


def slice_nal(first_mb: int, kind: int, header: int = 0x41) -> bytes:
    return Bits().ue(first_mb).ue(kind).ue(0).nal(header)


@pytest.mark.parametrize(("kind", "expected"), [(0, SLICE_P), (1, SLICE_B), (7, SLICE_I), (6, 1)])
def test_slice_type_reads_the_header(kind: int, expected: int) -> None:
    assert slice_type(slice_nal(8159, kind)) == expected
    assert slice_type(slice_nal(8159, kind)[:5]) == expected  # a prefix is enough


@pytest.mark.parametrize(
    ("nal", "message"),
    [
        (b"", "empty"),
        (b"\xe7\x42", "forbidden_zero_bit"),
        (b"\x68\xce\x3c\x80", "NAL unit type 8"),
        (b"\x67\x42\xc0", "ends early"),
        (b"\x67" + bytes(12), "longer than 32 bits"),
        (sps_bits(poc_type=3).nal(), "pic_order_cnt_type 3"),
        (sps_bits(chroma=4).nal(), "chroma_format_idc 4"),
        (sps_bits(crop=(0, 0, 0, 2000)).u(1, 0).nal(), "cropping leaves"),
    ],
)
def test_malformed_sps_is_refused_clearly(nal: bytes, message: str) -> None:
    with pytest.raises(H264Error, match=message):
        parse_sps(nal)


def test_every_truncation_of_a_real_sps_is_refused_or_read_alike(baseline: Encoded) -> None:
    whole = parse_sps(baseline.sps)
    for end in range(len(baseline.sps)):
        try:
            part = parse_sps(baseline.sps[:end])
        except H264Error as exc:
            assert end < 5 or "ends early" in str(exc), (end, exc)
        else:  # cut inside the VUI's tail: all before it reads alike
            assert part.max_num_reorder_frames in (None, whole.max_num_reorder_frames), end
            assert replace(part, max_num_reorder_frames=whole.max_num_reorder_frames) == whole


def test_malformed_slice_headers_are_refused_clearly() -> None:
    with pytest.raises(H264Error, match="slice_type 12"):
        slice_type(slice_nal(0, 12))
    with pytest.raises(H264Error, match="NAL unit type 7"):
        slice_type(b"\x67\x88")
    with pytest.raises(H264Error, match="ends early"):
        slice_type(b"\x41\x00")


def au(*nals: bytes) -> bytes:
    return b"".join(SC + nal for nal in nals)


def test_leading_nal_units_stop_at_the_first_slice(baseline: Encoded) -> None:
    sps, pps, slice_ = baseline.sps, b"\x68\xce\x3c\x80", slice_nal(0, 7, 0x65) + bytes(500)
    aud, sei = b"\x09\xf0", b"\x06\x05\x01\x80"
    assert leading_nal_units(au(aud, sps, pps, sei, slice_)) == (sps, slice_[:17])
    assert leading_nal_units(b"\x00\x00\x01" + sps + b"\x00\x00\x01" + slice_) == (sps, slice_[:17])
    assert leading_nal_units(au(slice_, sps)) == (None, slice_[:17])  # nothing after a slice
    assert leading_nal_units(au(b"\x23\x00", sps)) == (None, None)  # data partition B
    assert leading_nal_units(au(aud, b"\x0c\xff\xff")) == (None, None)
    assert leading_nal_units(b"") == (None, None)
    assert leading_nal_units(b"\x00\x00\x01") == (None, None)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_ever_raise_h264_error(body: bytes) -> None:
    with contextlib.suppress(H264Error):
        parse_sps(b"\x67" + body)
    with contextlib.suppress(H264Error):
        slice_type(b"\x41" + body)


@given(st.lists(st.sampled_from([b"\x00", b"\x00\x00\x01", b"\x67", b"\x65", b"\x21", b"\xff"])))
def test_leading_nal_units_never_fail(parts: list[bytes]) -> None:
    sps, head = leading_nal_units(b"".join(parts))
    assert sps is None or sps[0] & 0x1F == 7
    assert head is None or len(head) <= 17
