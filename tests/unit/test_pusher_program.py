"""The pusher program's parts: settings, redaction, H.264 parameter sets, WHIP replies, the
codec report, and the camera side of the media path against the camera simulator in-process
(RTSP on 127.0.0.1; no WHIP peer and no Docker needed)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import av
import httpx
import pytest
from cctv_pusher import ExitCode, codec_watch
from cctv_pusher.__main__ import main
from cctv_pusher.codec_watch import WINDOW_FRAMES, CodecWatch
from cctv_pusher.config import ConfigError, PusherConfig
from cctv_pusher.h264info import SpsInfo, parse_sps
from cctv_pusher.logs import Log, Redactor, safe_url, url_secrets
from cctv_pusher.source import RtspSource, nal_types, with_parameter_sets
from cctv_pusher.whip import WhipClient, WhipError
from hypothesis import given
from hypothesis import strategies as st

from tests.media.camera import CameraSimulator
from tests.media.encoded_loop import AccessUnit, EncodedLoop
from tests.media.h264 import PPS as NAL_PPS
from tests.media.h264 import SPS as NAL_SPS
from tests.media.h264 import nal_type

CAMERA = "rtsp://admin:s3cr3t-pw@10.1.2.3:554/Streaming/101?token=q-s3cr3t"
ENV = {"RTSP_URL": CAMERA, "WHIP_URL": "http://lk:8080/w", "WHIP_TOKEN": "key-s3cr3t"}
SPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e\xda"
PPS = b"\x00\x00\x00\x01\x68\xce\x3c\x80"
IDR = b"\x00\x00\x00\x01\x65\x88\x84\x00\x33"


def test_settings_come_from_the_environment_with_defaults() -> None:
    config = PusherConfig.from_env({**ENV, "PUSHER_RTSP_READ_TIMEOUT_SECONDS": "2.5"})
    assert (config.rtsp_read_timeout_s, config.rtsp_open_timeout_s) == (2.5, 10.0)
    assert config.ice_servers == ()  # never aiortc's default public STUN server
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"RTSP_URL": ""}, "RTSP_URL is required"),
        ({"RTSP_URL": "http://cam/x"}, "rtsp://"),
        ({"WHIP_URL": "ftp://x"}, "WHIP_URL must be"),
        ({"PUSHER_WHIP_TIMEOUT_SECONDS": "soon"}, "number of seconds"),
        ({"PUSHER_ICE_TIMEOUT_SECONDS": "0"}, "between 0 and 3600"),
    ],
)
def test_bad_settings_are_refused_without_echoing_secrets(
    override: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        PusherConfig.from_env({**ENV, **override})
    assert "s3cr3t" not in str(caught.value)


def test_bad_settings_exit_with_the_config_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RTSP_URL", raising=False)
    assert main([]) == ExitCode.CONFIG
    record = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert record["event"] == "bad_config"


def test_log_lines_are_json_and_mask_every_form_of_the_camera_secret() -> None:
    out = io.StringIO()
    log = Log(Redactor([*url_secrets(CAMERA), "key-s3cr3t"]), "cam-1", stream=out)
    ffmpeg_error = f"[Errno 1094995529] Invalid data found when processing input: '{CAMERA}'"
    log.error("camera_failed", reason=ffmpeg_error, token="key-s3cr3t", parts=["admin:s3cr3t-pw"])
    line = out.getvalue()
    record = json.loads(line)
    assert record["camera_id"] == "cam-1" and record["level"] == "error"
    assert "s3cr3t" not in line and "admin" not in line
    assert safe_url(CAMERA) == "rtsp://***@10.1.2.3:554/Streaming/101"  # as the API shows it


def test_nal_types_reads_headers_of_both_start_code_lengths() -> None:
    assert nal_types(SPS + PPS + b"\x00\x00\x01\x65\x11") == {7, 8, 5}


def test_parameter_sets_are_put_in_band_only_when_the_keyframe_lacks_them() -> None:
    bare = av.Packet(IDR)
    bare.pts, bare.time_base = 9000, Fraction(1, 90000)
    joined = with_parameter_sets(bare, SPS + PPS)
    assert bytes(joined) == SPS + PPS + IDR and joined.pts == 9000 and joined.is_keyframe
    complete = av.Packet(SPS + PPS + IDR)
    assert with_parameter_sets(complete, SPS + PPS) is complete
    avcc = b"\x01\x42\xc0\x1e\xff\xe1"  # MP4-style extradata: not Annex-B, left alone
    assert with_parameter_sets(bare, avcc) is bare


async def test_whip_client_follows_rfc_9725_replies() -> None:
    seen: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST" and request.url.path == "/w":
            return httpx.Response(307, headers={"Location": "/edge/w"})
        if request.method == "POST":
            headers = {"Location": "session/WH_1", "Content-Type": "application/sdp", "ETag": "x"}
            return httpx.Response(201, text="v=0\r\n", headers=headers)
        return httpx.Response(200)

    client = WhipClient("http://lk/w", "key-1", 5, httpx.MockTransport(endpoint))
    session = await client.publish("v=0\r\n")
    assert session.location == "http://lk/edge/session/WH_1" and session.etag == "x"
    assert await client.delete(session) == 200
    post = seen[1]
    assert post.headers["Authorization"] == "Bearer key-1"
    assert post.headers["Content-Type"] == "application/sdp" and post.content == b"v=0\r\n"
    assert seen[2].method == "DELETE" and seen[2].headers["Authorization"] == "Bearer key-1"


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (401, {"Content-Type": "text/plain"}, "answered 401"),
        (201, {"Content-Type": "application/sdp"}, "no Location"),
        (201, {"Location": "/w/1", "Content-Type": "text/html"}, "not application/sdp"),
    ],
)
async def test_whip_client_refuses_replies_that_are_not_a_session(
    status: int, headers: dict[str, str], message: str
) -> None:
    reply = httpx.Response(status, text="denied", headers=headers)
    client = WhipClient("http://lk/w", "key-1", 5, httpx.MockTransport(lambda _: reply))
    with pytest.raises(WhipError, match=message):
        await client.publish("v=0\r\n")


# --- the codec report: what the camera really sends ----------------------------------------

MAIN_720P_NO_VUI = bytes.fromhex("674d401feca02802dc80")  # an SPS without timing info


class Recorder:
    """Stands in for :class:`Log`: keeps ``(level, event, fields)``."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def __call__(self, level: str, event: str, /, **fields: object) -> None:
        self.lines.append((level, event, fields))

    def codec(self) -> list[dict[str, object]]:
        return [fields for _, event, fields in self.lines if event == "codec"]


class Clock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        return self.now


def annexb(unit: AccessUnit, drop: Iterable[int] = ()) -> bytes:
    skip = set(drop)
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in unit.nals if nal_type(nal) not in skip)


Frame = tuple[AccessUnit, int]  # an access unit and its absolute presentation index


def frames(loop: EncodedLoop, count: int, start: int = 0) -> list[Frame]:
    """``count`` access units of the looping camera from tick ``start``, in decode order."""
    size = len(loop.access_units)
    return [
        (loop.access_units[i % size], i - i % size + loop.access_units[i % size].pts)
        for i in range(start, start + count)
    ]


def feed(
    watch: CodecWatch, units: Iterable[Frame], clock: Clock, *, drop: Iterable[int] = ()
) -> None:
    """Access units as the pusher forwards them: pts in 90 kHz ticks, one clock step each."""
    for unit, presented in units:
        watch.feed(annexb(unit, drop), presented * 3600, unit.is_idr)
        clock.now += clock.step


def test_codec_is_reported_once_after_the_observation_window(baseline_loop: EncodedLoop) -> None:
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, clock=clock)
    feed(watch, frames(baseline_loop, 20, start=5), clock)  # joined mid-GOP: nothing until IDR
    assert watch.slices_read == 0
    feed(watch, frames(baseline_loop, WINDOW_FRAMES - 1, start=25), clock)
    assert log.lines == []
    feed(watch, frames(baseline_loop, 1, start=25 + WINDOW_FRAMES - 1), clock)
    assert log.codec() == [
        {
            "profile": "Constrained Baseline",
            "profile_idc": 66,
            "h264_level": "1.3",
            "width": 320,
            "height": 180,
            "fps": 25.0,
            "b_frames": False,
        }
    ]
    read = watch.slices_read
    assert read == WINDOW_FRAMES - 3  # every non-keyframe in the window, no keyframe
    feed(watch, frames(baseline_loop, 300, start=25 + WINDOW_FRAMES), clock)
    assert len(log.lines) == 1
    assert watch.slices_read == read  # after the window: no slice header read at all


def test_b_frames_end_slice_reading_and_are_reported(high_b_loop: EncodedLoop) -> None:
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, clock=clock)
    feed(watch, frames(high_b_loop, 300), clock)
    [report] = log.codec()
    assert report["profile"] == "High" and report["profile_idc"] == 100
    assert report["b_frames"] is True and report["fps"] == 25.0
    assert watch.slices_read == 2  # the first P, then the first B: enough


def test_the_window_also_closes_after_two_seconds(high_b_loop: EncodedLoop) -> None:
    log, clock = Recorder(), Clock(0.125)
    watch = CodecWatch(log, clock=clock)
    feed(watch, frames(high_b_loop, 16), clock)
    assert log.codec() == []
    feed(watch, frames(high_b_loop, 1, start=16), clock)
    assert len(log.codec()) == 1


def test_b_frames_seen_after_the_report_are_reported_at_once(high_b_loop: EncodedLoop) -> None:
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, clock=clock)
    stream = frames(high_b_loop, 300)
    references = [(u, p) for u, p in stream if p % high_b_loop.gop % 3 == 0]  # I and P
    feed(watch, references[:70], clock)  # pts never go back
    assert [r["b_frames"] for r in log.codec()] == [False]
    read = watch.slices_read
    feed(watch, references[70:72], clock)
    assert watch.slices_read == read  # pts move forward: nothing read
    after = stream.index(references[71])
    b_frame = next((u, p) for u, p in stream[after:] if p < references[71][1])
    feed(watch, [b_frame], clock)  # pts go back: its header is read, and it is a B
    assert watch.slices_read == read + 1
    assert [r["b_frames"] for r in log.codec()] == [False, True]


def test_a_new_sps_opens_a_new_window_and_a_changed_report(
    baseline_loop: EncodedLoop, high_b_loop: EncodedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []

    def counting_parse(nal: bytes) -> SpsInfo:
        parsed.append(nal)
        return parse_sps(nal)

    monkeypatch.setattr(codec_watch, "parse_sps", counting_parse)
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, clock=clock)
    feed(watch, frames(baseline_loop, 100), clock)  # 4 keyframes, 1 SPS
    assert parsed == [baseline_loop.sps]
    feed(watch, frames(high_b_loop, 100, start=1000), clock)
    feed(watch, frames(baseline_loop, 100, start=2000), clock)
    assert [(r["profile"], r["b_frames"]) for r in log.codec()] == [
        ("Constrained Baseline", False),
        ("High", True),
        ("Constrained Baseline", False),
    ]
    assert parsed == [baseline_loop.sps, high_b_loop.sps, baseline_loop.sps]


def test_sps_only_in_the_sdp_is_read_from_the_extradata(baseline_loop: EncodedLoop) -> None:
    log, clock = Recorder(), Clock(1 / 64)
    extradata = b"\x00\x00\x00\x01" + baseline_loop.sps + b"\x00\x00\x00\x01" + baseline_loop.pps
    watch = CodecWatch(log, extradata, clock=clock)
    feed(watch, frames(baseline_loop, WINDOW_FRAMES), clock, drop=(NAL_SPS, NAL_PPS))
    assert [r["profile"] for r in log.codec()] == ["Constrained Baseline"]


def test_frame_rate_falls_back_to_the_container_when_the_sps_has_no_timing() -> None:
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, fallback_fps=29.97, clock=clock)
    idr = b"\x00\x00\x00\x01" + MAIN_720P_NO_VUI + b"\x00\x00\x01\x65\x88\x80"
    watch.feed(idr, 0, True)
    for index in range(1, WINDOW_FRAMES):
        watch.feed(b"\x00\x00\x01\x41\x9a\x00", index, False)  # P slices
    [report] = log.codec()
    assert (report["profile"], report["width"], report["height"]) == ("Main", 1280, 720)
    assert report["fps"] == 29.97 and report["h264_level"] == "3.1"


def test_an_unreadable_sps_is_reported_and_the_rest_still_is() -> None:
    log, clock = Recorder(), Clock(1 / 64)
    watch = CodecWatch(log, b"\x01\x42\xc0\x1e", 25.0, clock=clock)  # AVCC: not used
    watch.feed(b"\x00\x00\x01\x67\x42\x00\x00\x01\x65\x88", 0, True)
    for index in range(1, WINDOW_FRAMES):
        watch.feed(b"\x00\x00\x01\x01\x9e", index, False)  # B slices (slice_type 1)
    level, event, fields = log.lines[0]
    assert (level, event) == ("error", "codec_unreadable")
    assert "ends early" in str(fields["reason"])
    assert log.codec() == [
        {
            "profile": None,
            "profile_idc": None,
            "h264_level": None,
            "width": None,
            "height": None,
            "fps": 25.0,
            "b_frames": True,
        }
    ]


packets = st.tuples(
    st.binary(max_size=40).map(lambda b: b"\x00\x00\x01" + b),
    st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    st.booleans(),
)


@given(st.lists(packets, max_size=80))
def test_garbage_never_breaks_the_watch(stream: list[tuple[bytes, int | None, bool]]) -> None:
    watch = CodecWatch(lambda *_, **__: None, b"\x00\x00\x01\x67", clock=lambda: 0.0)
    for data, pts, keyframe in stream:
        watch.feed(data, pts, keyframe)


async def codec_lines(camera: CameraSimulator, timeout_s: float = 15) -> list[dict[str, Any]]:
    """Run the pusher's camera side against ``camera`` until it logged a codec line."""
    out = io.StringIO()
    config = PusherConfig(
        rtsp_url=camera.credentials_url,
        whip_url="http://127.0.0.1:9/w",
        whip_token="",
        camera_id="cam-7",
    )
    source = RtspSource(config, Log(Redactor(url_secrets(config.rtsp_url)), "cam-7", out))
    await source.open()
    source.start()
    try:
        deadline = time.monotonic() + timeout_s
        while '"event":"codec"' not in out.getvalue() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await source.aclose()
    text = out.getvalue()
    assert camera.password is not None and camera.password not in text
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("encoding", "profile", "b_frames"),
    [({}, "Constrained Baseline", False), ({"profile": "high", "b_frames": 2}, "High", True)],
)
async def test_the_pusher_logs_what_the_simulated_camera_sends(
    encoding: dict[str, Any], profile: str, b_frames: bool
) -> None:
    camera = CameraSimulator(
        port=0, size=(320, 180), loop_seconds=1, user="op", password="pw-s3cr3t", **encoding
    )
    async with camera:
        lines = await codec_lines(camera)
    assert camera.errors == []
    codec = [line for line in lines if line["event"] == "codec"]
    assert len(codec) == 1, lines
    assert codec[0] == {
        "ts": codec[0]["ts"],
        "level": "info",
        "event": "codec",
        "camera_id": "cam-7",
        "profile": profile,
        "profile_idc": 66 if profile == "Constrained Baseline" else 100,
        "h264_level": f"{camera.encoded.sps[3] // 10}.{camera.encoded.sps[3] % 10}",
        "width": 320,
        "height": 180,
        "fps": 25.0,
        "b_frames": b_frames,
    }
