"""The lean RTSP reader's pure parts: SDP reading, authentication headers, responses."""

from __future__ import annotations

import base64
import secrets

import pytest
from cctv_pusher.rtsp_auth import AuthError, Credentials
from cctv_pusher.rtsp_client import RtspError, parse_head
from cctv_pusher.rtsp_sdp import SdpError, parse_video

SDP = """v=0
o=- 1 1 IN IP4 10.0.0.9
s=cam
t=0 0
a=control:*
m=audio 0 RTP/AVP 0
a=control:trackID=1
m=video 0 RTP/AVP 97 96
a=rtpmap:97 H265/90000
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKA==,aO48gA==
a=framerate:25
a=control:trackID=0
"""


def test_the_h264_video_with_its_parameter_sets_and_urls() -> None:
    video = parse_video(SDP, "rtsp://10.0.0.9/live/")
    assert video.payload_type == 96
    assert video.control == "rtsp://10.0.0.9/live/trackID=0"
    assert video.aggregate == "rtsp://10.0.0.9/live/"
    assert video.parameter_sets == (bytes.fromhex("67640028"), bytes.fromhex("68ee3c80"))
    assert video.fps == 25.0


@pytest.mark.parametrize(
    ("base", "control", "expected"),
    [
        ("rtsp://h/cam", "trackID=0", "rtsp://h/cam/trackID=0"),  # no slash: one is added
        ("rtsp://h/cam/", "rtsp://h:554/other/track1", "rtsp://h:554/other/track1"),
        ("rtsp://h/cam", "*", "rtsp://h/cam"),
    ],
)
def test_controls_resolve_against_the_base(base: str, control: str, expected: str) -> None:
    sdp = SDP.replace("a=control:trackID=0", f"a=control:{control}")
    assert parse_video(sdp, base).control == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("a=rtpmap:96 H264/90000", "a=rtpmap:96 MP4V-ES/90000"), "not H.264"),
        (("m=video", "m=text"), "no video"),
        (("packetization-mode=1", "packetization-mode=2"), "interleaved"),
        (("Z2QAKA==", "Z2Q!KA=="), "unreadable sprop"),
    ],
)
def test_descriptions_it_cannot_take_are_refused_clearly(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(SdpError, match=message):
        parse_video(SDP.replace(*change), "rtsp://h/cam")


def test_digest_matches_rfc_2617s_worked_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda _: "0a4f113b")
    creds = Credentials("Mufasa", "Circle Of Life")
    creds.challenge(
        [
            'Basic realm="testrealm@host.com"',
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
        ]
    )
    header = creds.header("GET", "/dir/index.html")
    assert header is not None and header.startswith("Digest ")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "nc=00000002" in (creds.header("GET", "/dir/index.html") or "")  # counts on


def test_basic_when_that_is_all_the_camera_offers() -> None:
    creds = Credentials("op", "p@ss:word")
    assert creds.header("DESCRIBE", "rtsp://h/cam") is None  # nothing before a challenge
    creds.challenge(['Basic realm="cam"'])
    header = creds.header("DESCRIBE", "rtsp://h/cam") or ""
    assert base64.b64decode(header.removeprefix("Basic ")) == b"op:p@ss:word"
    assert "p@ss" not in repr(creds)


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(AuthError, match="unsupported"):
        Credentials("u", "p").challenge(['Negotiate realm="x"'])
    with pytest.raises(AuthError, match="SHA-256"):
        Credentials("u", "p").challenge(['Digest realm="x", nonce="n", algorithm=SHA-256'])


def test_response_heads_are_parsed_and_non_rtsp_refused() -> None:
    response = parse_head(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: ab;timeout=30\r\nPublic: A")
    assert (response.status, response.reason, response.header("session")) == (
        200,
        "OK",
        "ab;timeout=30",
    )
    with pytest.raises(RtspError, match="not an RTSP response"):
        parse_head(b"HTTP/1.1 200 OK")
