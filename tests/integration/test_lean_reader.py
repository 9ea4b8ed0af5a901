"""The FFmpeg engine's lean RTSP reader against the real camera simulator (no mocks).

The simulator runs on this event loop; the reader blocks, so it runs in a thread. NAL-unit
digests prove the reader hands on the camera's own bytes; the simulator's record of methods
and client frames proves the keep-alive, the RTCP receiver reports and the TEARDOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from typing import Any

import pytest
from cctv_pusher.camera import CameraFailure, SourceStats
from cctv_pusher.config import PusherConfig
from cctv_pusher.lean_camera import BFramesSeen, LeanCamera, open_lean

from tests.media import rtsp_server
from tests.media.camera import CameraSimulator
from tests.media.h264 import nal_digest, split_annexb

SIZE = (640, 360)


def config(url: str, read_timeout_s: float = 5.0) -> PusherConfig:
    return PusherConfig(
        rtsp_url=url,
        whip_url="http://127.0.0.1:9/w",
        whip_token="",
        rtsp_open_timeout_s=5.0,
        rtsp_read_timeout_s=read_timeout_s,
    )


def read(url: str, count: int) -> tuple[LeanCamera, list[tuple[bytes, bool, int]]]:
    """Open and read ``count`` access units as (bytes, keyframe, pts); the camera is closed."""
    camera = open_lean(config(url))
    units: list[tuple[bytes, bool, int]] = []
    try:
        for packet, _ in camera.access_units(noop, SourceStats(), never):
            assert packet.pts is not None
            units.append((bytes(packet), packet.is_keyframe, packet.pts))
            if len(units) == count:
                break
    finally:
        camera.close()
    return camera, units


def noop(*_: object, **__: object) -> None:
    pass


def never() -> bool:
    return False


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_the_cameras_own_access_units_with_either_kind_of_credentials(auth: str) -> None:
    sim = CameraSimulator(port=0, size=SIZE, loop_seconds=1, user="op", password="s3:/@", auth=auth)
    async with sim:
        camera, units = await asyncio.to_thread(read, sim.credentials_url, 30)
        await asyncio.sleep(0.2)  # the TEARDOWN reaches the simulator
    assert (camera.info.width, camera.info.height, camera.info.b_frames) == (*SIZE, False)
    assert units[0][1], "the first access unit handed on is a keyframe"
    digests = {nal_digest(nal) for data, _, _ in units for nal in split_annexb(data)}
    assert digests <= sim.nal_digests and len(digests) > 20
    assert [pts for _, _, pts in units] == [i * 3600 for i in range(30)]  # 90 kHz, from 0
    methods = sim.stats.methods_seen
    assert methods[-1] == "TEARDOWN" and "PLAY" in methods
    assert methods.count("DESCRIBE") == 1 and methods.count("OPTIONS") == 2  # one 401 first
    assert sim.errors == []


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_wrong_or_missing_credentials_fail_the_open_clearly(auth: str) -> None:
    sim = CameraSimulator(port=0, size=SIZE, loop_seconds=1, user="op", password="right", auth=auth)
    async with sim:
        wrong = sim.url.replace("rtsp://", "rtsp://op:wrong@")
        for url, reason in ((wrong, "refused the credentials (401)"), (sim.url, "wants")):
            with pytest.raises(CameraFailure, match="cannot open the camera stream") as failed:
                await asyncio.to_thread(open_lean, config(url))
            assert reason in str(failed.value) and "wrong" not in str(failed.value)
        assert sim.transports_seen == ()  # nobody got as far as SETUP


async def test_keep_alives_and_receiver_reports_hold_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rtsp_server, "SESSION_TIMEOUT", 2)  # a keep-alive each second
    async with CameraSimulator(port=0, size=SIZE, loop_seconds=1) as sim:
        _, units = await asyncio.to_thread(read, sim.url, 25 * 7)  # 7 s: one report at least
        await asyncio.sleep(0.2)
    assert len(units) == 25 * 7
    assert sim.stats.methods_seen.count("GET_PARAMETER") >= 4
    assert sim.stats.interleaved_frames_skipped >= 1, "no RTCP receiver report reached it"


async def test_a_camera_that_goes_away_fails_the_read() -> None:
    sim = CameraSimulator(port=0, size=SIZE, loop_seconds=1)
    async with sim:
        camera = await asyncio.to_thread(open_lean, config(sim.url))
    try:
        with pytest.raises(CameraFailure, match=r"camera ended the stream|camera read failed"):
            await asyncio.to_thread(
                lambda: [None for _ in camera.access_units(noop, SourceStats(), never)]
            )
    finally:
        camera.close()


async def test_b_frames_announced_by_the_sps_are_known_at_open() -> None:
    sim = CameraSimulator(port=0, size=SIZE, loop_seconds=1, profile="high", b_frames=2)
    async with sim:
        camera = await asyncio.to_thread(open_lean, config(sim.url))
        camera.close()
    assert camera.info.b_frames and camera.info.profile == "High"


async def test_b_slices_stop_the_reading_even_when_the_sps_says_nothing() -> None:
    """The engine publishes when the SPS announces no reordering; the first B slice then ends
    the pump with :class:`BFramesSeen`, and the engine hands the camera to aiortc."""
    sim = CameraSimulator(port=0, size=SIZE, loop_seconds=1, profile="high", b_frames=2)
    async with sim:
        camera = await asyncio.to_thread(open_lean, config(sim.url))
        units = camera.access_units(noop, SourceStats(), never)
        try:
            with pytest.raises(BFramesSeen):
                await asyncio.to_thread(lambda: list(itertools.islice(units, 50)))
        finally:
            camera.close()


async def test_a_redirect_to_another_host_and_port_is_followed() -> None:
    """A front door that answers DESCRIBE with 302 to the camera (as some NVRs do)."""
    async with CameraSimulator(port=0, size=SIZE, loop_seconds=1) as sim:

        async def front_door(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while head := await reader.readuntil(b"\r\n\r\n"):
                    cseq = next(h for h in head.decode().split("\r\n") if h.startswith("CSeq"))
                    if head.startswith(b"OPTIONS"):
                        reply = f"RTSP/1.0 200 OK\r\n{cseq}\r\nPublic: DESCRIBE\r\n\r\n"
                    else:
                        location = sim.url.replace("127.0.0.1", "localhost")
                        reply = f"RTSP/1.0 302 Moved\r\n{cseq}\r\nLocation: {location}\r\n\r\n"
                    writer.write(reply.encode())
                    await writer.drain()
            writer.close()

        door = await asyncio.start_server(front_door, "127.0.0.1", 0)
        port = door.sockets[0].getsockname()[1]
        async with door:
            _, units = await asyncio.to_thread(read, f"rtsp://127.0.0.1:{port}/door", 10)
    assert len(units) == 10 and units[0][1]


async def test_parameter_sets_missing_from_the_sdp_come_from_the_first_keyframe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some cameras send SPS and PPS only in band: the reader takes them from the stream."""
    described = rtsp_server.build_sdp

    def without_sprop(*args: Any) -> bytes:
        return re.sub(rb";sprop-parameter-sets=[^;\r\n]*", b"", described(*args))

    monkeypatch.setattr(rtsp_server, "build_sdp", without_sprop)
    async with CameraSimulator(port=0, size=SIZE, loop_seconds=1) as sim:
        camera, units = await asyncio.to_thread(read, sim.url, 10)
    assert (camera.info.width, camera.info.height) == SIZE
    assert camera.extradata.count(b"\x00\x00\x00\x01") == 2  # SPS and PPS from the keyframe
    assert units[0][1] and units[0][0].startswith(camera.extradata[:8])
