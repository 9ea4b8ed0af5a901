"""A WHIP endpoint that decodes what it receives: the far end of the media path in tests.

It answers WHIP like LiveKit's ingress does (``POST /w`` with ``Authorization: Bearer <stream
key>``, ``201`` + ``Location: /w/<key>/<session>``, ``DELETE`` of that URL) and decodes every
received frame with aiortc. It records, per session, the bearer token, the codecs offered and
answered, decoded frame counts (and how many show the camera simulator's test pattern), the
time of the first decoded frame and of the DELETE. Process-wide it records which decoder ran
(``get_decoder`` of aiortc's receiver is wrapped) and the digest of every NAL unit that
reached the decoder: compared with the camera's own digests, that proves the bytes passed
through unchanged.

It negotiates video codecs like LiveKit's ingress (``tests/media/livekit_codecs.py``): an offer
whose video section LiveKit would refuse gets ``400`` and no session; the H.264 variants LiveKit
accepts (High, Main, any level, packetization mode 0) are accepted even where aiortc's own
profile check would refuse them, and answered with the offer's payload type and fmtp. aiortc's
``find_common_codecs`` is wrapped for that, only while this receiver handles an offer.

Liveness is Pion's by default (``tests/media/ice_liveness.py``): any inbound packet keeps a
session, as in LiveKit's ingress; ``--liveness consent`` keeps aioice's strict RFC 7675 checks.
The answer lists its candidates as Pion's does, highest priority (host UDP) first: FFmpeg's WHIP
muxer uses only the first host UDP candidate it reads.

It runs inside a test's network namespace, which the test process cannot reach over TCP, so
its statistics are served on a unix socket (``--control``): ``GET /stats`` returns JSON.
``python -m tests.media.receiver --help`` describes the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import copy
import json
import re
import secrets
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import httpx
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame
from av.video.frame import VideoFrame

from tests.media import ice_liveness, livekit_codecs
from tests.media.h264 import nal_digest, split_annexb
from tests.media.pattern import pattern_matches

_RTPMAP = re.compile(r"^a=rtpmap:\d+ ([A-Za-z0-9-]+)/", re.MULTILINE)
_PROFILE = re.compile(r"profile-level-id=([0-9A-Fa-f]{6})")


class DecoderLog:
    """What aiortc's receivers decoded, across sessions (decoders run in their own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decoded_by: Counter[str] = Counter()
        self.nal_digests: set[str] = set()
        # False (``--no-decode``): count frames without decoding them or digesting their NAL
        # units, so one receiver keeps up with many 1080p streams in a benchmark.
        self.decode = True

    def wrap(self, decoder: Decoder, mime_type: str) -> Decoder:
        log = self

        class Recording(Decoder):
            def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
                if not log.decode:
                    return [VideoFrame(2, 2, "yuv420p")]  # a frame was complete: counted
                digests = {nal_digest(nal) for nal in split_annexb(encoded_frame.data)}
                with log._lock:
                    log.decoded_by[mime_type] += 1
                    log.nal_digests |= digests
                return decoder.decode(encoded_frame)

        return Recording()


DECODERS = DecoderLog()


def _recording_get_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    return DECODERS.wrap(get_decoder(codec), codec.mimeType)


# The receiver module looks the name up at each new codec, so this wraps every decoder it makes.
setattr(aiortc.rtcrtpreceiver, "get_decoder", _recording_get_decoder)  # noqa: B010

_aiortc_find_common_codecs = aiortc.rtcpeerconnection.find_common_codecs
_LIVEKIT_RULE = contextvars.ContextVar("livekit_rule", default=False)


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.name.lower() == "rtx"


def _as_livekit(codec: RTCRtpCodecParameters) -> livekit_codecs.Codec:
    params = {k: "" if v is None else str(v) for k, v in codec.parameters.items()}
    return livekit_codecs.Codec(
        codec.mimeType, codec.clockRate, params, codec.payloadType, codec.channels
    )


def livekit_video_codecs(codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    """The offered video codecs (RTX aside) LiveKit's ingress would keep; [] = it refuses."""
    offered = [(c, _as_livekit(c)) for c in codecs if not _is_rtx(c)]
    kept = {id(k) for k in livekit_codecs.select(k for _, k in offered)}
    return [c for c, k in offered if id(k) in kept]


def _livekit_find_common_codecs(
    local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """aiortc's codec negotiation, with LiveKit's rule for video while the receiver answers.

    Each kept codec is the offer's own (payload type and fmtp, so the answer echoes them), with
    the RTCP feedback aiortc supports for that MIME type; RTX follows its base codec as in aiortc.
    """
    video = any(c.mimeType.lower().startswith("video/") for c in local_codecs)
    if not (_LIVEKIT_RULE.get() and video):
        return _aiortc_find_common_codecs(local_codecs, remote_codecs)
    kept = livekit_video_codecs(remote_codecs)
    common: list[RTCRtpCodecParameters] = []
    for c in remote_codecs:
        if _is_rtx(c):
            apt = c.parameters.get("apt")
            base = next((b for b in common if b.payloadType == apt), None)
            if base is not None and c.clockRate == base.clockRate:
                common.append(copy.deepcopy(c))
        elif any(c is k for k in kept):
            codec = copy.deepcopy(c)
            supported = {
                (f.type, f.parameter)
                for local in local_codecs
                if local.mimeType.lower() == c.mimeType.lower()
                for f in local.rtcpFeedback
            }
            codec.rtcpFeedback = [f for f in c.rtcpFeedback if (f.type, f.parameter) in supported]
            common.append(codec)
    return common


# setRemoteDescription looks the name up at each call; outside the receiver it is aiortc's own.
setattr(aiortc.rtcpeerconnection, "find_common_codecs", _livekit_find_common_codecs)  # noqa: B010


def refusal(offer: str) -> str | None:
    """Why LiveKit's ingress would refuse this offer (its SDP or a video section), else None."""
    try:
        description = sdp.SessionDescription.parse(offer)
    except Exception as exc:  # any parse failure is a bad offer
        return f"unparsable SDP offer: {exc}"
    for media in description.media:
        if media.kind == "video" and not livekit_video_codecs(media.rtp.codecs):
            offered = ", ".join(str(c) for c in media.rtp.codecs) or "none"
            return (
                f"unsupported video codecs in section {media.rtp.muxId or '?'}: {offered} "
                "(LiveKit's ingress takes H264/90000 or VP8/90000)"
            )
    return None


_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ (\d+) ")


def _priority(candidate: str) -> int:
    match = _CANDIDATE.match(candidate)
    return int(match.group(1)) if match else 0


def by_priority(answer: str) -> str:
    """``answer`` with each run of candidates in descending priority, as Pion writes them."""
    out: list[str] = []
    run: list[str] = []
    for line in answer.split("\r\n"):
        if _CANDIDATE.match(line):
            run.append(line)
            continue
        out += sorted(run, key=_priority, reverse=True)
        run = []
        out.append(line)
    out += sorted(run, key=_priority, reverse=True)
    return "\r\n".join(out)


@dataclass
class SessionRecord:
    id: str
    token: str
    offer_codecs: list[str]
    answer_codecs: list[str]
    offer_profiles: list[str]  # each H.264 profile-level-id of the offer
    created_at: float
    connected_at: float | None = None
    first_frame_at: float | None = None
    frames: int = 0
    checked_frames: int = 0
    pattern_frames: int = 0
    width: int = 0
    height: int = 0
    track_ended_at: float | None = None
    deleted_at: float | None = None
    pc: RTCPeerConnection | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pc"}


class WhipReceiver:
    def __init__(self, host: str, port: int, check_every: int = 5) -> None:
        self.host, self.port = host, port
        self.check_every = check_every
        self.sessions: dict[str, SessionRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runners: list[web.AppRunner] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/w"

    async def start(self, control_path: str | None = None) -> None:
        app = web.Application()
        app.router.add_post("/w", self._post)
        app.router.add_post("/w/{key}", self._post)
        app.router.add_delete("/w/{key}/{sid}", self._delete)
        await self._serve(app, lambda r: web.TCPSite(r, self.host, self.port))
        if self.port == 0:  # an ephemeral port (in-process tests): the one the OS picked
            self.port = self._runners[-1].addresses[0][1]
        if control_path:
            control = web.Application()
            control.router.add_get("/stats", self._stats)
            await self._serve(control, lambda r: web.UnixSite(r, control_path))

    async def _serve(self, app: web.Application, site: Any) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await site(runner).start()
        self._runners.append(runner)

    async def stop(self) -> None:
        for record in self.sessions.values():
            if record.pc is not None:
                await record.pc.close()
        for task in self._tasks:  # a track that never received anything never ends by itself
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self._runners:
            await runner.cleanup()

    def stats(self) -> dict[str, Any]:
        return {
            "sessions": [s.public() for s in self.sessions.values()],
            "decoded_by": dict(DECODERS.decoded_by),
            "nal_digests": sorted(DECODERS.nal_digests),
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _post(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = request.match_info.get("key") or auth.removeprefix("Bearer ").strip()
        if not token:
            return web.Response(status=401, text="missing bearer token")
        if request.content_type != "application/sdp":
            return web.Response(status=415, text="expected application/sdp")
        offer = await request.text()
        refused = refusal(offer)
        if refused is not None:
            return web.Response(status=400, text=refused)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: stay on this host
        sid = "WH_" + secrets.token_hex(6)
        record = SessionRecord(
            sid, token, _RTPMAP.findall(offer), [], _PROFILE.findall(offer), time.time(), pc=pc
        )
        self.sessions[sid] = record
        pc.on("track", lambda track: self._spawn(self._consume(track, record)))
        pc.on("connectionstatechange", lambda: self._state(pc, record))
        rule = _LIVEKIT_RULE.set(True)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        finally:
            _LIVEKIT_RULE.reset(rule)
        await pc.setLocalDescription(await pc.createAnswer())
        answer = by_priority(pc.localDescription.sdp)
        record.answer_codecs = _RTPMAP.findall(answer)
        location = f"/w/{request.match_info.get('key', 'bearer')}/{sid}"
        return web.Response(
            status=201, text=answer, content_type="application/sdp", headers={"Location": location}
        )

    async def _delete(self, request: web.Request) -> web.Response:
        record = self.sessions.get(request.match_info["sid"])
        if record is None or record.deleted_at is not None:
            return web.Response(status=404, text="no such session")
        record.deleted_at = time.time()
        if record.pc is not None:
            await record.pc.close()
        return web.Response(status=200)

    def _state(self, pc: RTCPeerConnection, record: SessionRecord) -> None:
        if pc.connectionState == "connected" and record.connected_at is None:
            record.connected_at = time.time()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, track: MediaStreamTrack, record: SessionRecord) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                record.track_ended_at = time.time()
                return
            if not isinstance(frame, VideoFrame):
                continue
            if record.first_frame_at is None:
                record.first_frame_at = time.time()
            record.frames += 1
            record.width, record.height = frame.width, frame.height
            if record.frames % self.check_every == 1:
                record.checked_frames += 1
                record.pattern_frames += pattern_matches(frame)


class ReceiverControl:
    """The test side: reads a receiver's statistics over its unix socket."""

    def __init__(self, control_path: str) -> None:
        self._transport = httpx.AsyncHTTPTransport(uds=control_path)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(transport=self._transport, timeout=5) as http:
            resp = await http.get("http://receiver/stats")
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

    async def session(self) -> dict[str, Any] | None:
        """The most recent session, or None before the first offer."""
        sessions = (await self.stats())["sessions"]
        return sessions[-1] if sessions else None


async def _serve(args: argparse.Namespace) -> None:
    ice_liveness.use(args.liveness, args.liveness_scale)
    DECODERS.decode = not args.no_decode
    receiver = WhipReceiver(args.host, args.port, check_every=args.check_every)
    await receiver.start(args.control)
    print(json.dumps({"event": "ready", "url": receiver.url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.media.receiver",
        description="A WHIP endpoint (LiveKit ingress shaped) that decodes what it receives.",
    )
    parser.add_argument("--host", default="127.0.0.2", help="listen address (default 127.0.0.2)")
    parser.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    parser.add_argument("--control", required=True, help="unix socket for GET /stats")
    parser.add_argument(
        "--check-every", type=int, default=5, help="compare every Nth frame with the test pattern"
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="count complete frames without decoding them (for many streams at once)",
    )
    parser.add_argument(
        "--liveness",
        choices=ice_liveness.MODES,
        default="pion",
        help="pion: any inbound packet keeps a session (LiveKit's ingress); consent: aioice's "
        "strict RFC 7675 checks (default: pion)",
    )
    parser.add_argument(
        "--liveness-scale",
        type=float,
        default=1.0,
        help="multiply every liveness interval by this, in (0, 1] (default: 1)",
    )
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
