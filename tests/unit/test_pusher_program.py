"""The pusher program's pure parts: settings, redaction, H.264 parameter sets, WHIP replies."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import httpx
import pytest
from cctv_pusher import ExitCode
from cctv_pusher.__main__ import main
from cctv_pusher.config import ConfigError, PusherConfig
from cctv_pusher.logs import Log, Redactor, safe_url, url_secrets
from cctv_pusher.source import nal_types, with_parameter_sets
from cctv_pusher.whip import WhipClient, WhipError

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
    assert safe_url(CAMERA) == "rtsp://10.1.2.3:554/Streaming/101"


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
