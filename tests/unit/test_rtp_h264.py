"""The lean reader's RTP → access unit step (RFC 6184), against the camera simulator's own
packetizer and hand-built packets for what it never sends (STAP-A, padding, extensions); then
the timestamps the lean camera gives the muxer."""

from __future__ import annotations

import struct

import pytest
from cctv_pusher.camera import CameraFailure, SourceStats, StreamInfo
from cctv_pusher.lean_camera import LeanCamera
from cctv_pusher.rtp_h264 import START_CODE, AccessUnit, H264Depacketizer
from cctv_pusher.rtsp_client import RtspError
from hypothesis import given
from hypothesis import strategies as st

from tests.media.h264 import packetize, rtp_header

SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88]) + bytes(range(256)) * 20  # fragmented at any payload size
P_SLICE = bytes([0x41, 0x9A]) + bytes(300)


def annex_b(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def feed(packets: list[bytes], depacketizer: H264Depacketizer | None = None) -> list[AccessUnit]:
    d = depacketizer or H264Depacketizer()
    for packet in packets:
        d.push(memoryview(packet))
    return list(d.ready)


def frames(units: list[list[bytes]], seq: int = 65530, ts: int = 2**32 - 7200) -> list[bytes]:
    """RTP packets of ``units`` (lists of NAL units), 25 fps, sequence numbers from ``seq``."""
    packets: list[bytes] = []
    for index, nals in enumerate(units):
        timestamp = (ts + index * 3600) & 0xFFFFFFFF
        part = packetize(nals, payload_type=96, sequence_number=seq, timestamp=timestamp, ssrc=7)
        packets += part
        seq = (seq + len(part)) & 0xFFFF
    return packets


def test_access_units_come_back_byte_identical_with_keyframes_flagged() -> None:
    units = [[SPS, PPS, IDR], [P_SLICE], [P_SLICE], [SPS, PPS, IDR]]
    packets = frames(units)  # sequence numbers from 65530: they wrap in the first IDR
    d = H264Depacketizer()
    got = feed(packets, d)
    assert [u.data for u in got] == [annex_b(nals) for nals in units]
    assert [u.keyframe for u in got] == [True, False, False, True]
    assert d.highest_seq == 65530 + len(packets) - 1 and d.ssrc == 7  # for receiver reports


def test_timestamps_run_on_across_the_32_bit_wrap() -> None:
    got = feed(frames([[SPS, PPS, IDR]] + [[P_SLICE]] * 3, ts=2**32 - 3600))
    assert [u.timestamp - got[0].timestamp for u in got] == [0, 3600, 7200, 10800]


def test_without_marker_bits_a_unit_ends_when_the_timestamp_changes() -> None:
    packets = [bytearray(p) for p in frames([[SPS, PPS, IDR], [P_SLICE], [P_SLICE]])]
    for packet in packets:
        packet[1] &= 0x7F
    got = feed([bytes(p) for p in packets])
    assert [u.data for u in got] == [annex_b([SPS, PPS, IDR]), annex_b([P_SLICE])]


def test_stap_a_padding_and_header_extensions_are_read() -> None:
    stap = bytes([0x18]) + b"".join(struct.pack(">H", len(n)) + n for n in (SPS, PPS))
    first = rtp_header(payload_type=96, sequence_number=1, timestamp=0, ssrc=7, marker=False)
    extension = struct.pack(">HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    with_ext = bytes([first[0] | 0x10]) + first[1:] + extension + stap
    last = rtp_header(payload_type=96, sequence_number=2, timestamp=0, ssrc=7, marker=True)
    padded = bytes([last[0] | 0x20]) + last[1:] + IDR[:100] + b"\x00\x00\x03"
    (unit,) = feed([with_ext, padded])
    assert unit.data == annex_b([SPS, PPS, IDR[:100]]) and unit.keyframe


def test_a_lost_packet_drops_frames_until_the_next_idr() -> None:
    units = [[SPS, PPS, IDR], [P_SLICE], [P_SLICE], [P_SLICE], [SPS, PPS, IDR], [P_SLICE]]
    packets = frames(units)
    lost_at = next(i for i, p in enumerate(packets) if p[12] & 0x1F == 1)  # the first P's
    d = H264Depacketizer()
    got = feed(packets[:lost_at] + packets[lost_at + 1 :], d)
    assert [u.data for u in got] == [annex_b(n) for n in (units[0], units[4], units[5])]
    assert d.lost == 1 and d.spoiled == 2  # the lost P was a whole unit: two more dropped


def test_a_fragment_without_its_start_spoils_frames_until_the_next_idr() -> None:
    units = [[P_SLICE], [SPS, PPS, IDR], [P_SLICE], [SPS, PPS, IDR]]
    packets = frames(units)
    d = H264Depacketizer()
    d.push(memoryview(packets[0]))
    d._next_seq = None  # as if the reader joined mid-fragment: no gap seen, no start either
    got = feed(packets[4:], d)  # past P, SPS, PPS and the IDR's first fragment
    assert [u.data for u in got] == [annex_b([P_SLICE]), annex_b([SPS, PPS, IDR])]
    assert d.spoiled == 2 and d.lost == 0


def test_late_and_repeated_packets_are_dropped_without_counting_a_loss() -> None:
    packets = frames([[SPS, PPS, IDR], [P_SLICE]])
    d = H264Depacketizer()
    got = feed([*packets[:3], packets[1], *packets[3:]], d)
    assert [u.data for u in got] == [annex_b([SPS, PPS, IDR]), annex_b([P_SLICE])]
    assert d.lost == 0


@given(st.binary(max_size=64))
def test_garbage_never_raises(data: bytes) -> None:
    d = H264Depacketizer()
    d.push(memoryview(bytes([0x80, 0xE0]) + data))
    d.push(memoryview(data))


class _EndedSession:
    """What :class:`LeanCamera` reads from: access units already depacketized, then the end."""

    def __init__(self, units: list[AccessUnit]) -> None:
        self.depacketizer = H264Depacketizer()
        self.depacketizer.ready.extend(units)

    def read(self) -> None:
        raise RtspError("camera ended the stream")

    def close(self) -> None:
        pass


def test_a_camera_clock_that_goes_back_keeps_the_muxers_timestamps_rising() -> None:
    idr, p = START_CODE + IDR, START_CODE + P_SLICE  # P_SLICE's header reads as a P slice
    stamps = [1000, 4600, 8200, 50, 3650]  # the encoder restarted after the third frame
    units = [AccessUnit(idr if i == 0 else p, ts, i == 0) for i, ts in enumerate(stamps)]
    info = StreamInfo("h264", 640, 360, "High", b_frames=False)
    camera = LeanCamera(_EndedSession(units), info, b"", None)  # type: ignore[arg-type]
    got: list[int] = []
    with pytest.raises(CameraFailure, match="camera ended the stream"):
        for packet, _ in camera.access_units(lambda *_, **__: None, SourceStats()):
            assert packet.pts is not None and packet.pts == packet.dts
            got.append(packet.pts)
    assert got == [0, 3600, 7200, 7201, 10801]
