"""What an H.264 stream is, read from its bitstream: SPS fields and slice types (ITU-T H.264).

Pure and small on purpose: no FFmpeg, no decoding. :func:`parse_sps` reads a sequence
parameter set NAL unit (profile, level, picture size, frame rate when the SPS carries VUI
timing), :func:`slice_type` the type of a coded slice from the first bytes of its header. Both
take a NAL unit without start code but with its one-byte header, and raise
:class:`H264Error` (never anything else) on input that is not what they expect or ends early.
"""

from __future__ import annotations

from dataclasses import dataclass

NAL_SLICE, NAL_PARTITION_A, NAL_IDR, NAL_SPS = 1, 2, 5, 7
VCL_TYPES = frozenset(range(1, 6))  # coded slices (and data partitions): the picture itself
SLICE_P, SLICE_B, SLICE_I, SLICE_SP, SLICE_SI = range(5)
# Profiles whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1).
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
SLICE_HEADER_BYTES = 16  # first_mb_in_slice + slice_type: at most 42 bits, even at level 6.2
MAX_EXP_GOLOMB_ZEROS = 31  # a longer prefix would code a value beyond 32 bits: not H.264
START_CODE = b"\x00\x00\x01"
MAX_PLAUSIBLE_FPS = 240  # above this a "frame rate" is a clock rate (90000) or a mistake
_SPS_TYPES = frozenset({NAL_SPS})
_SLICE_TYPES = frozenset({NAL_SLICE, NAL_PARTITION_A, NAL_IDR})  # they open with slice_header

_PROFILES = {
    44: "CAVLC 4:4:4 Intra",
    66: "Baseline",
    77: "Main",
    83: "Scalable Baseline",
    86: "Scalable High",
    88: "Extended",
    100: "High",
    110: "High 10",
    118: "Multiview High",
    122: "High 4:2:2",
    128: "Stereo High",
    134: "MFC High",
    135: "MFC Depth High",
    138: "Multiview Depth High",
    139: "Enhanced Multiview Depth High",
    244: "High 4:4:4 Predictive",
}
_INTRA_PROFILES = {110: "High 10 Intra", 122: "High 4:2:2 Intra", 244: "High 4:4:4 Intra"}


class H264Error(ValueError):
    """The bytes are not the NAL unit expected, or end before its fields do."""


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """The fields of a sequence parameter set that say what a camera sends."""

    profile: str  # e.g. "Constrained Baseline", "Main", "High"
    profile_idc: int
    constraint_flags: int  # constraint_set0_flag is the top bit (0x80) ... set5 is 0x04
    level: str  # e.g. "3.1", "1b"
    level_idc: int
    width: int  # after frame cropping
    height: int
    fps: float | None  # from VUI timing_info; None when the SPS carries none
    chroma_format_idc: int
    bit_depth: int  # luma
    frame_mbs_only: bool  # False: the stream may be interlaced (fields or MBAFF)
    max_num_reorder_frames: int | None = None  # VUI bitstream_restriction; None when absent

    @property
    def profile_level_id(self) -> str:
        """The SDP ``profile-level-id`` (RFC 6184) of this SPS, e.g. ``42c01f``."""
        return f"{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


def constraint_set(flags: int, index: int) -> bool:
    """``constraint_set<index>_flag`` (0-5) of the constraint byte."""
    return bool(flags & (0x80 >> index))


def profile_name(profile_idc: int, flags: int) -> str:
    """The profile's name (Annex A), constrained and intra variants told apart by their flags."""
    if profile_idc == 66 and constraint_set(flags, 1):
        return "Constrained Baseline"
    if profile_idc == 77 and constraint_set(flags, 0):
        return "Constrained Baseline"  # a Main stream that also conforms to Baseline
    if profile_idc == 88 and constraint_set(flags, 0) and constraint_set(flags, 1):
        return "Constrained Baseline"
    if profile_idc == 100 and constraint_set(flags, 4):
        return "Constrained High" if constraint_set(flags, 5) else "Progressive High"
    if profile_idc in _INTRA_PROFILES and constraint_set(flags, 3):
        return _INTRA_PROFILES[profile_idc]
    if profile_idc == 110 and constraint_set(flags, 4):
        return "Progressive High 10"
    if profile_idc == 86 and constraint_set(flags, 3):
        return "Scalable High Intra"
    return _PROFILES.get(profile_idc, f"unknown ({profile_idc})")


def level_name(level_idc: int, profile_idc: int, flags: int) -> str:
    """``"3.1"`` for level_idc 31; ``"1b"`` for level_idc 9, or 11 with constraint_set3 in the
    Baseline, Main and Extended profiles (A.3.1, A.3.2)."""
    if level_idc == 9 or (
        level_idc == 11 and profile_idc in (66, 77, 88) and constraint_set(flags, 3)
    ):
        return "1b"
    return f"{level_idc // 10}.{level_idc % 10}"


def rbsp(nal: bytes) -> bytes:
    """The NAL unit's payload without its emulation-prevention bytes (``00 00 03`` -> ``00 00``).

    ``bytes.replace`` scans left to right without overlap, which is exactly the rule: the byte
    after an emulation-prevention ``03`` never starts another ``00 00 03``."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class BitReader:
    """Big-endian bits of an RBSP, with the unsigned and signed exp-Golomb codes (9.1)."""

    def __init__(self, data: bytes, what: str) -> None:
        self._value = int.from_bytes(data, "big")
        self._size = len(data) * 8
        self._pos = 0
        self._what = what

    def _need(self, bits: int) -> None:
        if self._pos + bits > self._size:
            raise H264Error(f"{self._what} ends early (truncated at bit {self._pos})")

    def u(self, bits: int) -> int:
        self._need(bits)
        self._pos += bits
        return (self._value >> (self._size - self._pos)) & ((1 << bits) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_ZEROS:
                raise H264Error(f"{self._what}: exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _check_header(nal: bytes, types: frozenset[int], what: str) -> None:
    if not nal:
        raise H264Error(f"{what}: empty NAL unit")
    if nal[0] & 0x80:
        raise H264Error(f"{what}: forbidden_zero_bit is set")
    if nal[0] & 0x1F not in types:
        raise H264Error(f"{what}: NAL unit type {nal[0] & 0x1F}")


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            delta = bits.se()
            if not -128 <= delta <= 127:
                raise H264Error(f"SPS: delta_scale {delta} out of range")
            next_scale = (last + delta + 256) % 256
        last = last if next_scale == 0 else next_scale


def _expect(value: int, limit: int, name: str) -> int:
    if not 0 <= value <= limit:
        raise H264Error(f"SPS: {name} {value} out of range (0..{limit})")
    return value


def parse_sps(nal: bytes) -> SpsInfo:
    """Read a sequence parameter set NAL unit (type 7, header byte included)."""
    _check_header(nal, _SPS_TYPES, "SPS")
    bits = BitReader(rbsp(nal[1:]), "SPS")
    profile_idc, flags, level_idc = bits.u(8), bits.u(8), bits.u(8)
    _expect(bits.ue(), 31, "seq_parameter_set_id")
    chroma_format_idc, separate_planes, bit_depth = 1, False, 8
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = _expect(bits.ue(), 3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_planes = bits.flag()
        bit_depth = 8 + _expect(bits.ue(), 6, "bit_depth_luma_minus8")
        _expect(bits.ue(), 6, "bit_depth_chroma_minus8")
        bits.flag()  # qpprime_y_zero_transform_bypass_flag
        if bits.flag():  # seq_scaling_matrix_present_flag
            for index in range(12 if chroma_format_idc == 3 else 8):
                if bits.flag():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    _expect(bits.ue(), 12, "log2_max_frame_num_minus4")
    poc_type = _expect(bits.ue(), 2, "pic_order_cnt_type")
    if poc_type == 0:
        _expect(bits.ue(), 12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        bits.flag()  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(_expect(bits.ue(), 255, "num_ref_frames_in_pic_order_cnt_cycle")):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.flag()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.flag()
    if not frame_mbs_only:
        bits.flag()  # mb_adaptive_frame_field_flag
    bits.flag()  # direct_8x8_inference_flag
    crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.flag() else (0, 0, 0, 0)
    fps, reorder = _vui(bits) if bits.flag() else (None, None)
    width, height = _cropped_size(
        width_mbs, height_units, frame_mbs_only, 0 if separate_planes else chroma_format_idc, crop
    )
    return SpsInfo(
        profile=profile_name(profile_idc, flags),
        profile_idc=profile_idc,
        constraint_flags=flags,
        level=level_name(level_idc, profile_idc, flags),
        level_idc=level_idc,
        width=width,
        height=height,
        fps=fps,
        chroma_format_idc=chroma_format_idc,
        bit_depth=bit_depth,
        frame_mbs_only=frame_mbs_only,
        max_num_reorder_frames=reorder,
    )


def _cropped_size(
    width_mbs: int,
    height_units: int,
    frame_mbs_only: bool,
    chroma_array_type: int,
    crop: tuple[int, int, int, int],
) -> tuple[int, int]:
    """Picture size after the frame cropping rectangle (7.4.2.1.1, equations 7-19 to 7-22)."""
    field_factor = 1 if frame_mbs_only else 2
    sub_width, sub_height = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma_array_type]
    unit_x = sub_width if chroma_array_type else 1
    unit_y = (sub_height if chroma_array_type else 1) * field_factor
    left, right, top, bottom = crop
    width = width_mbs * 16 - unit_x * (left + right)
    height = field_factor * height_units * 16 - unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise H264Error(f"SPS: frame cropping leaves {width}x{height}")
    return width, height


def _vui(bits: BitReader) -> tuple[float | None, int | None]:
    """``(fps, max_num_reorder_frames)`` from the VUI (E.1.1), each None when absent.

    The frame rate is from timing_info: time_scale counts ticks of ``num_units_in_tick``, and a
    frame lasts two ticks (E.2.1, fields). The reorder depth is from bitstream_restriction: above
    0, frames come out of decode order, which is what B-frames need."""
    if bits.flag() and bits.u(8) == 255:  # aspect_ratio_info_present_flag; Extended_SAR
        bits.u(32)  # sar_width, sar_height
    if bits.flag():  # overscan_info_present_flag
        bits.flag()
    if bits.flag():  # video_signal_type_present_flag
        bits.u(4)  # video_format, video_full_range_flag
        if bits.flag():  # colour_description_present_flag
            bits.u(24)
    if bits.flag():  # chroma_loc_info_present_flag
        bits.ue()
        bits.ue()
    fps = None
    if bits.flag():  # timing_info_present_flag
        units, scale = bits.u(32), bits.u(32)
        bits.flag()  # fixed_frame_rate_flag
        if units and scale:  # both "shall be greater than 0"; 0 tells us nothing
            fps = round(scale / (2 * units), 3)
    try:
        hrd = [bits.flag() and _skip_hrd(bits) for _ in range(2)]  # NAL, then VCL
        if any(hrd):
            bits.flag()  # low_delay_hrd_flag
        bits.flag()  # pic_struct_present_flag
        if not bits.flag():  # bitstream_restriction_flag
            return fps, None
        bits.flag()  # motion_vectors_over_pic_boundaries_flag
        for _ in range(4):  # max_bytes_per_pic_denom ... log2_max_mv_length_vertical
            bits.ue()
        return fps, _expect(bits.ue(), 16, "max_num_reorder_frames")
    except H264Error:
        return fps, None  # a truncated tail: what came before it still holds


def _skip_hrd(bits: BitReader) -> bool:
    """Read past hrd_parameters() (E.1.2); True (it was present)."""
    count = _expect(bits.ue(), 31, "cpb_cnt_minus1") + 1
    bits.u(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(count):
        bits.ue()  # bit_rate_value_minus1
        bits.ue()  # cpb_size_value_minus1
        bits.flag()  # cbr_flag
    bits.u(20)  # four 5-bit lengths
    return True


def slice_type(nal: bytes) -> int:
    """``slice_type % 5`` of a coded slice (NAL type 1, 5, or 2: data partition A):
    :data:`SLICE_P`, :data:`SLICE_B`, :data:`SLICE_I`, :data:`SLICE_SP` or :data:`SLICE_SI`.

    Only the first bytes are read (first_mb_in_slice, slice_type), so a caller may pass just
    the start of the NAL unit."""
    _check_header(nal, _SLICE_TYPES, "slice")
    bits = BitReader(rbsp(nal[1 : 1 + SLICE_HEADER_BYTES]), "slice header")
    bits.ue()  # first_mb_in_slice
    kind = bits.ue()
    if kind > 9:
        raise H264Error(f"slice header: slice_type {kind} out of range (0..9)")
    return kind % 5


def leading_nal_units(data: bytes) -> tuple[bytes | None, bytes | None]:
    """``(first SPS, start of the first coded slice)`` of an Annex-B access unit, each None when
    absent. Parameter sets precede the slices of an access unit (7.4.1.2.3), so the scan stops
    at the first slice: a large picture's slice data is never walked. The slice comes back cut
    to :data:`SLICE_HEADER_BYTES` + 1, which is all :func:`slice_type` reads."""
    sps: bytes | None = None
    start = data.find(START_CODE)
    while start != -1:
        begin = start + len(START_CODE)
        if begin >= len(data):
            break
        kind = data[begin] & 0x1F
        if kind in _SLICE_TYPES:
            return sps, data[begin : begin + 1 + SLICE_HEADER_BYTES]
        if kind in VCL_TYPES:  # data partitions B and C carry no slice header
            return sps, None
        nxt = data.find(START_CODE, begin)
        if kind == NAL_SPS and sps is None:
            sps = data[begin : len(data) if nxt == -1 else nxt].rstrip(b"\x00")
        start = nxt
    return sps, None
