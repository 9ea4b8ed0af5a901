"""The camera simulator against real clients: FFmpeg's RTSP client (via PyAV) and raw RTSP.

Nothing is mocked: each test starts a real simulator on 127.0.0.1 (port 0: a free one), and
PyAV pulls over TCP exactly as an ingest pusher would. PyAV blocks, so it runs in a thread.
The NAL-unit digests prove the client received the camera's own bytes, and ``pattern_matches``
proves it decoded the camera's picture, not merely some H.264.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import itertools
import json
import signal
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from tests.media.camera import CameraSimulator
from tests.media.h264 import FU_A, IDR, PPS, SPS, nal_digest, nal_type, packetize, split_annexb
from tests.media.pattern import BARS, make_frame, pattern_matches

SIZE = (640, 360)
FPS = 25


@dataclass
class Pull:
    """What one RTSP client saw."""

    codec: str = ""
    width: int = 0
    height: int = 0
    frames: int = 0
    pattern_frames: int = 0
    keyframes: int = 0
    digests: set[str] = field(default_factory=set)


def pull(url: str, frames: int, transport: str = "tcp", timeout: float = 10) -> Pull:
    """Open ``url`` with FFmpeg's RTSP client and decode ``frames`` frames (blocking)."""
    seen = Pull()
    with av.open(url, options={"rtsp_transport": transport}, timeout=timeout) as container:
        stream = container.streams.video[0]
        seen.codec = stream.codec_context.name
        for packet in container.demux(stream):
            seen.digests |= {nal_digest(nal) for nal in split_annexb(bytes(packet))}
            seen.keyframes += packet.is_keyframe
            for frame in packet.decode():
                seen.frames += 1
                seen.pattern_frames += pattern_matches(frame)
                seen.width, seen.height = frame.width, frame.height
            if seen.frames >= frames:
                break
    return seen


def open_error(url: str, transport: str = "tcp") -> av.FFmpegError:
    """The error FFmpeg raises opening ``url`` or reading its first packet (fails if none)."""
    try:
        with av.open(url, options={"rtsp_transport": transport}, timeout=10) as container:
            next(container.demux(container.streams.video[0]))
    except av.FFmpegError as exc:
        return exc
    raise AssertionError(f"{url} over {transport} opened and delivered a packet")


def assert_camera_picture(seen: Pull, camera: CameraSimulator, frames: int) -> None:
    assert seen.codec == "h264"
    assert (seen.width, seen.height) == camera.size
    assert seen.frames >= frames
    assert seen.pattern_frames == seen.frames, f"{seen.pattern_frames}/{seen.frames} show bars"
    assert seen.keyframes >= 1
    assert seen.digests, "no NAL units received"
    foreign = seen.digests - camera.nal_digests
    assert not foreign, f"{len(foreign)} received NAL units are not in the camera's loop"


@pytest.fixture
async def camera() -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(port=0, size=SIZE, fps=FPS, loop_seconds=2) as sim:
        yield sim
    assert sim.errors == []


async def test_pulls_and_decodes_the_pattern_over_tcp(camera: CameraSimulator) -> None:
    seen = await asyncio.to_thread(pull, camera.url, 50)

    assert_camera_picture(seen, camera, 50)
    assert camera.clients_seen == 1
    assert camera.transports_seen == ("RTP/AVP/TCP;unicast;interleaved=0-1",)


async def test_udp_transport_is_refused(camera: CameraSimulator) -> None:
    error = await asyncio.to_thread(open_error, camera.url, "udp")

    assert error.errno == errno.EPROTONOSUPPORT  # FFmpeg's rendering of 461
    assert len(camera.transports_seen) == 1
    assert camera.transports_seen[0].startswith("RTP/AVP/UDP;unicast;client_port=")


async def test_credentials_are_required_and_checked() -> None:
    async with CameraSimulator(port=0, loop_seconds=1, user="op", password="s3cret:/@") as sim:
        wrong = sim.url.replace("rtsp://", "rtsp://op:wrong@")
        for url in (sim.url, wrong):
            error = await asyncio.to_thread(open_error, url)
            assert isinstance(error, av.HTTPUnauthorizedError), error
        assert sim.transports_seen == ()  # nobody got as far as SETUP

        seen = await asyncio.to_thread(pull, sim.credentials_url, 10)
        assert_camera_picture(seen, sim, 10)
    assert sim.errors == []


def read_until_gone(url: str, playing: threading.Event) -> float:
    """Read until the stream ends or errors; the moment it did (monotonic clock).

    The read timeout is far longer than the test's bound, so ending in time means FFmpeg
    noticed the dropped connection, not that it gave up waiting.
    """
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 60)) as container:
        try:
            for packet in container.demux(container.streams.video[0]):
                if packet.decode():
                    playing.set()
        except av.FFmpegError:
            pass
        return time.monotonic()


async def test_stop_drops_a_reading_client_promptly(camera: CameraSimulator) -> None:
    playing = threading.Event()
    reader = asyncio.create_task(asyncio.to_thread(read_until_gone, camera.url, playing))
    assert await asyncio.to_thread(playing.wait, 15), "the client never decoded a frame"

    stopped = time.monotonic()
    await camera.stop()
    ended = await asyncio.wait_for(reader, timeout=30)

    assert ended - stopped < 15
    assert camera.clients_seen == 1


async def test_a_new_camera_reuses_the_port_after_stop(camera: CameraSimulator) -> None:
    await asyncio.to_thread(pull, camera.url, 5)
    await camera.stop()

    async with CameraSimulator(port=camera.port, size=SIZE, fps=FPS, loop_seconds=1) as again:
        assert again.port == camera.port
        seen = await asyncio.to_thread(pull, again.url, 10)
        assert_camera_picture(seen, again, 10)
        assert again.clients_seen == 1
    assert again.errors == []


async def test_cli_serves_until_sigterm(tmp_path: Path, repo_root: Path) -> None:
    digests_file = tmp_path / "digests.json"
    password = "pw-secret-123"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.media.camera", "--host", "127.0.0.1", "--port", "0",
        "--path", "/lobby", "--size", "320x180", "--loop-seconds", "1",
        "--user", "op", "--password", password, "--digests", str(digests_file),
        cwd=repo_root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert password not in line
        ready = json.loads(line)
        assert ready["event"] == "ready"
        url = ready["url"]
        assert url.startswith("rtsp://127.0.0.1:") and url.endswith("/lobby")
        digests = set(json.loads(digests_file.read_text()))

        seen = await asyncio.to_thread(pull, url.replace("rtsp://", f"rtsp://op:{password}@"), 5)
        assert seen.codec == "h264" and (seen.width, seen.height) == (320, 180)
        assert seen.frames >= 5 and seen.pattern_frames == seen.frames
        assert seen.digests and seen.digests <= digests

        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, err.decode()
        assert out == b""  # the ready line is the only stdout
        assert b"encoded 25 frames at 320x180" in err
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


class RawRtsp:
    """A bare RTSP client for what FFmpeg does not show: status codes, headers, RTP packets."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.cseq = 0
        self.rtp: list[bytes] = []  # channel-0 packets that arrived while awaiting a response

    async def request(
        self, method: str, url: str, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        while (await self.reader.readexactly(1)) == b"$":
            self.rtp.append(await self._interleaved())
        head = b"R" + await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode().strip().split("\r\n")
        got = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        assert got["cseq"] == str(self.cseq)
        body = await self.reader.readexactly(int(got.get("content-length", "0")))
        return int(status_line.split(" ")[1]), got, body

    async def _interleaved(self) -> bytes:
        channel, length = struct.unpack("!BH", await self.reader.readexactly(3))
        assert channel == 0
        return await self.reader.readexactly(length)

    async def next_rtp(self) -> bytes:
        if self.rtp:
            return self.rtp.pop(0)
        assert await self.reader.readexactly(1) == b"$"
        return await self._interleaved()


def reassemble(payloads: list[bytes]) -> list[bytes]:
    """NAL units from single-NAL and FU-A RTP payloads of one access unit."""
    nals: list[bytes] = []
    fragment = bytearray()
    for payload in payloads:
        if nal_type(payload) != FU_A:
            nals.append(payload)
            continue
        if payload[1] & 0x80:
            fragment = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
        fragment += payload[2:]
        if payload[1] & 0x40:
            nals.append(bytes(fragment))
    return nals


async def test_raw_rtsp_dialogue_and_rtp_stream() -> None:
    # a 10-frame loop of 5-frame GOPs: 30 frames cross the loop seam twice
    async with CameraSimulator(port=0, size=(320, 180), fps=FPS, gop=5, loop_seconds=0.4) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        rtsp = RawRtsp(reader, writer)
        url = sim.url
        status, headers, _ = await rtsp.request("OPTIONS", "*")
        assert status == 200 and "GET_PARAMETER" in headers["public"]

        writer.write(b"$\x01\x00\x08" + bytes(8))  # an RTCP-sized interleaved block first
        assert (await rtsp.request("DESCRIBE", url.replace("/cam", "/nope")))[0] == 404

        status, headers, body = await rtsp.request("DESCRIBE", url, Accept="application/sdp")
        assert status == 200 and headers["content-type"] == "application/sdp"
        assert headers["content-base"] == url + "/"
        sdp = body.decode()
        sps, pps = sim.encoded.sps, sim.encoded.pps
        sprop = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
        assert "a=rtpmap:96 H264/90000" in sdp and "a=control:trackID=0" in sdp
        assert f"profile-level-id={sps[1:4].hex()};sprop-parameter-sets={sprop}" in sdp
        assert "packetization-mode=1" in sdp

        track = url + "/trackID=0"
        udp = "RTP/AVP;unicast;client_port=5000-5001"
        assert (await rtsp.request("SETUP", track, Transport=udp))[0] == 461
        tcp = "RTP/AVP/TCP;unicast;interleaved=0-1"
        status, headers, _ = await rtsp.request("SETUP", track, Transport=tcp)
        assert status == 200 and "interleaved=0-1" in headers["transport"]
        session, _, timeout = headers["session"].partition(";")
        assert timeout == "timeout=60"
        assert (await rtsp.request("GET_PARAMETER", url, Session=session))[0] == 200
        assert (await rtsp.request("SET_PARAMETER", url, Session=session))[0] == 200
        assert (await rtsp.request("GET_PARAMETER", url, Session="bogus"))[0] == 454

        status, headers, _ = await rtsp.request("PLAY", url + "/", Session=session, Range="npt=0-")
        assert status == 200 and headers["range"] == "npt=0.000-"
        info = dict(part.split("=", 1) for part in headers["rtp-info"].split(";"))
        assert info["url"] == track
        seq, rtptime = int(info["seq"]), int(info["rtptime"])

        started = time.monotonic()
        units: list[tuple[int, list[bytes]]] = []  # (timestamp, payloads) per access unit
        payloads: list[bytes] = []
        ssrcs: set[int] = set()
        while len(units) < 30:
            packet = await asyncio.wait_for(rtsp.next_rtp(), timeout=5)
            first, marker_pt, number, timestamp, ssrc = struct.unpack("!BBHII", packet[:12])
            assert first == 0x80 and marker_pt & 0x7F == 96 and len(packet) <= 12 + 1200
            assert number == seq & 0xFFFF
            seq += 1
            ssrcs.add(ssrc)
            payloads.append(packet[12:])
            if marker_pt & 0x80:
                units.append((timestamp, payloads))
                payloads = []
        elapsed = time.monotonic() - started

        assert len(ssrcs) == 1
        assert units[0][0] == rtptime
        steps = {(b[0] - a[0]) % 2**32 for a, b in itertools.pairwise(units)}
        assert steps == {90_000 // FPS}  # continuous across the loop seam
        assert elapsed > 0.8, f"30 frames in {elapsed:.2f} s: not paced at {FPS} fps"
        assert any(nal_type(p) == FU_A for _, ps in units for p in ps), "no FU-A fragments"
        for index, (_, unit_payloads) in enumerate(units):
            nals = reassemble(unit_payloads)
            types = [nal_type(nal) for nal in nals]
            if index % 5 == 0:  # playback starts at an IDR, and every GOP opens with SPS/PPS
                assert types[:2] == [SPS, PPS] and IDR in types
            else:
                assert IDR not in types
            assert {nal_digest(nal) for nal in nals} <= sim.nal_digests

        assert (await rtsp.request("TEARDOWN", url, Session=session))[0] == 200
        writer.close()
        await writer.wait_closed()
        assert sim.clients_seen == 1
    assert sim.stats.interleaved_frames_skipped == 1
    assert sim.errors == []


def test_packetize_fragments_big_nal_units_with_fu_a() -> None:
    big = bytes([0x65]) + bytes(range(256)) * 20  # an IDR slice of 5121 bytes
    small = bytes([0x41, 1, 2, 3])
    packets = packetize([big, small], payload_type=96, sequence_number=65534, timestamp=7, ssrc=9)

    assert len(packets) == 6  # ceil(5120 / 1198) FU-A fragments + one single-NAL packet
    numbers = [struct.unpack("!H", p[2:4])[0] for p in packets]
    assert numbers == [65534, 65535, 0, 1, 2, 3]
    assert [p[1] & 0x80 for p in packets] == [0, 0, 0, 0, 0, 0x80]
    assert all(len(p) <= 12 + 1200 for p in packets)
    assert reassemble([p[12:] for p in packets]) == [big, small]
    assert split_annexb(b"\x00\x00\x00\x01" + big + b"\x00\x00\x01" + small + b"\x00") == [
        big,
        small,
    ]


def solid_bars(colours: tuple[tuple[int, int, int], ...], width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "rgb24")
    step = width // len(colours)
    row = b"".join(bytes(colour) * step for colour in colours)
    row += bytes(frame.planes[0].line_size - len(row))
    frame.planes[0].update(row * height)
    return frame


def test_pattern_check_accepts_the_pattern_only() -> None:
    frame = make_frame(640, 360, 17)
    assert pattern_matches(frame)
    assert pattern_matches(frame.reformat(format="yuv420p"))  # the encoder's input
    assert pattern_matches(solid_bars(BARS, 640, 360))

    assert not pattern_matches(solid_bars(((0, 0, 0),), 640, 360))  # a black picture
    assert not pattern_matches(solid_bars(tuple(reversed(BARS)), 640, 360))
    grey = ((128, 128, 128),) * len(BARS)
    assert not pattern_matches(solid_bars(grey, 640, 360))
