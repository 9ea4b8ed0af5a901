"""The camera simulator's encodings: the default Constrained Baseline loop, and High profile
with B-frames, whose access units go out in decode order with pts-based RTP timestamps.

Checked with the pusher's own H.264 reader, in-process (RTSP on 127.0.0.1, no Docker).
"""

from __future__ import annotations

import asyncio
import itertools
import struct

import av
import pytest
from cctv_pusher.h264info import leading_nal_units, parse_sps, slice_type

from tests.media.camera import CameraSimulator, main
from tests.media.encoded_loop import AccessUnit, EncodedLoop, encode_loop
from tests.media.h264 import IDR
from tests.media.rtp_pacer import Pacer, RtpSink
from tests.media.rtsp_server import build_sdp

SC = b"\x00\x00\x00\x01"


def first_slice_types(units: tuple[AccessUnit, ...]) -> str:
    out = ""
    for unit in units:
        _, head = leading_nal_units(b"".join(SC + nal for nal in unit.nals))
        assert head is not None
        out += "PBI"[slice_type(head)]
    return out


LOOP_SECONDS = 2  # of ``baseline_loop`` and ``high_b_loop``: 50 frames, two GOPs


def test_the_default_loop_is_constrained_baseline_without_b_frames(
    baseline_loop: EncodedLoop,
) -> None:
    info = parse_sps(baseline_loop.sps)
    assert (info.profile, info.width, info.height, info.fps) == (
        "Constrained Baseline",
        320,
        180,
        25.0,
    )
    assert baseline_loop.profile_level_id.startswith("42c0")
    assert first_slice_types(baseline_loop.access_units) == ("I" + "P" * 24) * 2
    assert [unit.pts for unit in baseline_loop.access_units] == list(range(50))


def test_the_high_loop_has_b_frames_in_closed_gops(high_b_loop: EncodedLoop) -> None:
    info = parse_sps(high_b_loop.sps)
    assert (info.profile, info.profile_idc, info.width, info.height) == ("High", 100, 320, 180)
    assert high_b_loop.profile_level_id.startswith("6400")
    kinds = first_slice_types(high_b_loop.access_units)
    assert kinds[:7] == "IPBBPBB" and kinds.count("B") >= 14 and kinds[25] == "I"
    pts = [unit.pts for unit in high_b_loop.access_units]
    assert pts[:7] == [0, 3, 1, 2, 6, 4, 5]  # decode order, each B after its references
    assert sorted(pts[:25]) == list(range(25)) and sorted(pts[25:]) == list(range(25, 50))
    sdp = build_sdp(high_b_loop, "1").decode()
    assert f"profile-level-id={high_b_loop.sps[1:4].hex()};" in sdp


def test_main_profile_without_b_frames() -> None:
    loop = encode_loop(320, 180, 25, 25, 1, profile="main")
    assert parse_sps(loop.sps).profile == "Main"
    assert "B" not in first_slice_types(loop.access_units)


@pytest.mark.parametrize(
    ("profile", "b_frames"), [("baseline", 2), ("high", 4), ("high", -1), ("extended", 0)]
)
def test_encodings_the_simulator_does_not_make_are_refused(profile: str, b_frames: int) -> None:
    with pytest.raises(ValueError, match=r"profile|b_frames"):
        encode_loop(320, 180, 25, 25, 1, profile=profile, b_frames=b_frames)
    with pytest.raises(ValueError, match=r"profile|b_frames"):
        CameraSimulator(profile=profile, b_frames=b_frames)


def test_the_cli_refuses_b_frames_with_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--b-frames", "2"])
    assert exited.value.code == 2
    assert "--b-frames needs --profile main or high" in capsys.readouterr().err


class Wire(asyncio.WriteTransport):
    """A transport that keeps what the sink wrote: RTSP-interleaved RTP packets."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def access_units(self) -> list[tuple[int, bool]]:
        """(RTP timestamp, carries an IDR) per access unit (marker bit), in arrival order."""
        units: list[tuple[int, bool]] = []
        offset, idr = 0, False
        while offset < len(self.data):
            magic, _, length = struct.unpack_from("!cBH", self.data, offset)
            assert magic == b"$"
            packet = bytes(self.data[offset + 4 : offset + 4 + length])
            offset += 4 + length
            marker, timestamp = packet[1] & 0x80, struct.unpack_from("!I", packet, 4)[0]
            idr = idr or packet[12] & 0x1F == IDR or packet[13] & 0x1F == IDR  # FU-A too
            if marker:
                units.append((timestamp, idr))
                idr = False
        return units


async def test_the_pacer_stamps_b_frames_with_their_presentation_time() -> None:
    # 250 fps so two passes of the 50-frame loop take 0.4 s of the real pacer's clock
    loop = encode_loop(160, 90, 250, 25, 0.2, profile="high", b_frames=2)
    pacer = Pacer(loop)
    wire = Wire()
    sink = RtpSink(wire, 0, loop.fps)
    pacer.start()
    try:
        await asyncio.sleep(0.05)  # join mid-loop: playback starts at the next IDR
        pacer.play(sink)
        while len(wire.access_units()) < 2 * len(loop.access_units):
            await asyncio.sleep(0.02)
    finally:
        await pacer.stop()
    units = wire.access_units()[: 2 * len(loop.access_units)]
    step = 90_000 // loop.fps
    frames = [((stamp - sink.timestamp(0)) % 2**32) // step for stamp, _ in units]
    first = frames[0]
    assert units[0][1] and first == sink.start_index  # an IDR, at its own presentation time
    assert frames[:4] == [first, first + 3, first + 1, first + 2]  # pts, not arrival order
    assert sorted(frames) == list(range(first, first + len(frames)))  # each frame once
    assert all(b - a in (-2, -1, 1, 2, 3, 4) for a, b in itertools.pairwise(frames))


def pull(url: str, count: int) -> tuple[str, str, list[int]]:
    """Profile (by the pusher's parser), first-slice types and decoded pts of ``count`` frames."""
    kinds, decoded, profile = "", [], ""
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata or b""
        sps, _ = leading_nal_units(extradata)
        assert sps is not None
        profile = parse_sps(sps).profile
        for packet in container.demux(stream):
            _, head = leading_nal_units(bytes(packet))
            if head is not None:
                kinds += "PBI"[slice_type(head)]
            decoded += [frame.pts or 0 for frame in packet.decode()]
            if len(decoded) >= count:
                break
    return profile, kinds, decoded


@pytest.mark.parametrize(
    ("encoding", "b_frames", "profile"),
    [("baseline", 0, "Constrained Baseline"), ("high", 2, "High")],
)
async def test_the_simulated_camera_serves_its_encoding(
    encoding: str, b_frames: int, profile: str
) -> None:
    camera = CameraSimulator(
        port=0, size=(320, 180), loop_seconds=1, profile=encoding, b_frames=b_frames
    )
    async with camera:
        seen_profile, kinds, decoded = await asyncio.to_thread(pull, camera.url, 30)
    assert camera.errors == []
    assert seen_profile == profile
    assert kinds[0] == "I" and set(kinds) == set("IPB" if b_frames else "IP"), kinds
    # RTP timestamps are presentation times, so decoded pictures come out 1/25 s apart
    assert len(decoded) >= 30
    assert all(b - a == 3600 for a, b in itertools.pairwise(decoded)), decoded
