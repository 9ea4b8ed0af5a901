"""The test WHIP receiver keeps the video codecs LiveKit's ingress (bypass mode) keeps.

The rule itself (``tests/media/livekit_codecs.py``) as a table, then the receiver in-process on
127.0.0.1 answering real aiortc offers whose H.264 fmtp (or codec) is rewritten in the SDP text.
No ICE candidates are passed on, so nothing is sent anywhere.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

from tests.media.livekit_codecs import (
    Codec,
    Match,
    h264_fmtp_matches,
    match,
    parse_fmtp,
    select,
)
from tests.media.receiver import WhipReceiver

REGISTERED = parse_fmtp("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f")


def h264(fmtp: str, pt: int = 102) -> Codec:
    return Codec("video/H264", 90000, parse_fmtp(fmtp), pt)


@pytest.mark.parametrize(
    ("fmtp", "exact"),
    [
        ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", True),
        ("packetization-mode=1;profile-level-id=42001f", True),
        ("packetization-mode=1;profile-level-id=420028", True),  # the level byte is ignored
        ("packetization-mode=1;profile-level-id=42001F", True),  # hex, not text
        ("Packetization-Mode=1;Profile-Level-Id=42001f", True),  # keys lower-cased
        ("packetization-mode=1;profile-level-id=42e01f", False),  # constraint byte differs
        ("packetization-mode=1;profile-level-id=424028", False),
        ("packetization-mode=1;profile-level-id=4d0028", False),
        ("packetization-mode=1;profile-level-id=640028", False),
        ("packetization-mode=0;profile-level-id=42001f", False),
        ("profile-level-id=42001f", False),  # no packetization-mode is not mode 0
        ("packetization-mode=1", False),  # no profile-level-id
        ("packetization-mode=1;profile-level-id=42", False),  # one byte
        ("packetization-mode=1;profile-level-id=zz001f", False),
    ],
)
def test_h264_fmtp_match(fmtp: str, exact: bool) -> None:
    assert h264_fmtp_matches(parse_fmtp(fmtp), REGISTERED) is exact
    assert h264_fmtp_matches(REGISTERED, parse_fmtp(fmtp)) is exact
    assert match(h264(fmtp)) is (Match.EXACT if exact else Match.PARTIAL)


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        # a single H.264 of any profile or packetization mode is accepted (partially)
        *(
            ([h264(f"packetization-mode=1;profile-level-id={p}")], [0])
            for p in ("42e01f", "42001f", "424028", "4d0028", "640028")
        ),
        ([h264("packetization-mode=0;profile-level-id=42e01f")], [0]),
        ([h264("")], [0]),
        # an exact match wins over partial ones
        (
            [
                h264("packetization-mode=1;profile-level-id=640028", 96),
                h264("packetization-mode=1;profile-level-id=42001f", 97),
                h264("packetization-mode=1;profile-level-id=42e01f", 98),
            ],
            [1],
        ),
        # several partial ones are all kept, in offer order
        (
            [
                h264("packetization-mode=1;profile-level-id=640028", 96),
                h264("packetization-mode=1;profile-level-id=4d0028", 97),
            ],
            [0, 1],
        ),
        # VP8 matches exactly, so a partial H.264 beside it is dropped
        ([h264("packetization-mode=1;profile-level-id=640028"), Codec("video/VP8", 90000)], [1]),
        ([Codec("video/vp8", 90000)], [0]),
        # what LiveKit does not register: refused
        ([Codec("video/AV1", 90000)], []),
        ([Codec("video/VP9", 90000, {"profile-id": "0"})], []),
        ([Codec("video/H264", 48000, parse_fmtp("packetization-mode=1"))], []),
        ([], []),
    ],
)
def test_select(offered: list[Codec], kept: list[int]) -> None:
    assert select(offered) == [offered[i] for i in kept]


# --- the receiver, in-process -------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[WhipReceiver]:
    started = WhipReceiver("127.0.0.1", 0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def aiortc_offer(profile_level_ids: list[str] | None = None) -> str:
    """An H.264-only offer like the pusher's (aiortc, sendonly), without ICE candidates; with
    ``profile_level_ids``, one H.264 payload type (and its RTX) per entry, rewritten to it."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        h264_caps = [c for c in codecs if c.mimeType.lower() == "video/h264"]
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        count = len(profile_level_ids) if profile_level_ids else len(h264_caps)
        transceiver.setCodecPreferences(h264_caps[:count] + rtx)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    sdp = "".join(line for line in sdp.splitlines(True) if not line.startswith("a=candidate:"))
    if profile_level_ids:
        replacements = iter(profile_level_ids)
        sdp = re.sub(
            r"profile-level-id=[0-9a-fA-F]{6}",
            lambda _: f"profile-level-id={next(replacements)}",
            sdp,
        )
    return sdp


async def post(receiver: WhipReceiver, offer: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            receiver.url,
            content=offer,
            headers={"Authorization": "Bearer sk-test", "Content-Type": "application/sdp"},
        )


def fmtp_lines(sdp: str) -> dict[int, str]:
    return {int(pt): v for pt, v in re.findall(r"^a=fmtp:(\d+) (.*?)\r?$", sdp, re.MULTILINE)}


def h264_payload_types(sdp: str) -> list[int]:
    return [int(pt) for pt in re.findall(r"^a=rtpmap:(\d+) H264/90000", sdp, re.MULTILINE)]


@pytest.mark.parametrize(
    "profile_level_id", ["640028", "424028", "42e01f", "4d0028", "42001f", "42001F"]
)
async def test_any_h264_profile_is_answered_with_the_offers_fmtp(
    receiver: WhipReceiver, profile_level_id: str
) -> None:
    offer = await aiortc_offer([profile_level_id])
    resp = await post(receiver, offer)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"].startswith("/w/bearer/WH_")
    answer = resp.text
    [pt] = h264_payload_types(offer)
    assert h264_payload_types(answer) == [pt]
    assert fmtp_lines(answer)[pt] == fmtp_lines(offer)[pt]
    assert f"profile-level-id={profile_level_id}" in fmtp_lines(answer)[pt]
    assert f"apt={pt}" in answer  # its retransmission stays
    [session] = receiver.sessions.values()
    assert session.answer_codecs == ["H264", "rtx"]


async def test_packetization_mode_0_is_accepted(receiver: WhipReceiver) -> None:
    offer = (await aiortc_offer(["42e01f"])).replace("packetization-mode=1", "packetization-mode=0")
    resp = await post(receiver, offer)
    assert resp.status_code == 201, resp.text
    assert "packetization-mode=0" in resp.text


async def test_only_the_exact_h264_is_kept_when_one_is_offered(receiver: WhipReceiver) -> None:
    offer = await aiortc_offer(["640028", "42001f"])
    high, baseline = h264_payload_types(offer)
    resp = await post(receiver, offer)
    assert resp.status_code == 201, resp.text
    assert h264_payload_types(resp.text) == [baseline]
    assert f"apt={baseline}" in resp.text and f"apt={high}" not in resp.text


async def test_the_pushers_own_offer_keeps_the_exact_h264(receiver: WhipReceiver) -> None:
    offer = await aiortc_offer()  # aiortc's two H.264 entries: 42001f and 42e01f
    resp = await post(receiver, offer)
    assert resp.status_code == 201, resp.text
    [pt] = h264_payload_types(resp.text)
    assert "profile-level-id=42001f" in fmtp_lines(resp.text)[pt]


@pytest.mark.parametrize("codec", ["AV1", "VP9"])
async def test_a_video_codec_livekit_does_not_register_is_refused(
    receiver: WhipReceiver, codec: str
) -> None:
    offer = re.sub(r"H264/90000", f"{codec}/90000", await aiortc_offer(["42e01f"]))
    resp = await post(receiver, offer)
    assert resp.status_code == 400
    assert "unsupported video codecs" in resp.text and codec in resp.text
    assert receiver.sessions == {}


async def test_an_unparsable_offer_is_refused(receiver: WhipReceiver) -> None:
    resp = await post(receiver, "v=0\r\nm=video x\r\n")
    assert resp.status_code == 400
    assert receiver.sessions == {}
