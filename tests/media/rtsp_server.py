"""One RTSP client connection: the RFC 2326 subset a CCTV camera answers, TCP-interleaved only.

Real cameras differ in the details; this one is deliberately plain and strict where the
ingest path must cope with strictness: it refuses UDP transport with ``461`` (so a client
that does not ask for TCP fails loudly instead of silently receiving nothing through NAT),
and with credentials configured it demands them on every request, OPTIONS included: HTTP Basic,
or Digest (RFC 2617, MD5, ``qop=auth``) when configured so.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tests.media.encoded_loop import EncodedLoop
from tests.media.rtp_pacer import PAYLOAD_TYPE, Pacer, RtpSink
from tests.media.rtsp_messages import (
    BadRequest,
    InterleavedCounter,
    Request,
    format_response,
    read_request,
)

SESSION_TIMEOUT = 60
TRACK = "trackID=0"
METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER", "SET_PARAMETER", "TEARDOWN")
REALM = "cctv-sim"
_DIGEST_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True)
class StreamConfig:
    """What every connection serves: one path, one encoded loop, optional credentials."""

    path: str  # normalised: leading "/", no trailing "/"
    loop: EncodedLoop
    user: str | None = None
    password: str | None = None
    auth: str = "basic"  # or "digest"


@dataclass
class ServerStats:
    """Shared, append-only observations for tests: who connected and what they asked for."""

    clients_seen: int = 0
    transports_seen: list[str] = field(default_factory=list)
    interleaved_frames_skipped: int = 0  # frames clients sent (RTCP receiver reports)
    methods_seen: list[str] = field(default_factory=list)


def parse_transport(value: str) -> tuple[int, int] | None:
    """Interleaved channels of the first TCP alternative in a Transport header, else None."""
    for alternative in value.split(","):
        params = [param.strip() for param in alternative.split(";")]
        if params[0].upper() != "RTP/AVP/TCP":
            continue
        channels = (0, 1)
        for param in params[1:]:
            name, _, number = param.partition("=")
            if name.lower() == "interleaved":
                first, _, second = number.partition("-")
                try:
                    channels = (int(first), int(second) if second else int(first) + 1)
                except ValueError as exc:
                    raise BadRequest(f"bad interleaved channels {number!r}") from exc
        if not all(0 <= channel <= 255 for channel in channels):
            raise BadRequest(f"interleaved channels out of range: {channels}")
        return channels
    return None


def build_sdp(loop: EncodedLoop, session_id: str) -> bytes:
    """Session description with one H.264 track; parameter sets ride along for the decoder."""
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN IP4 0.0.0.0",
        "s=cctv-sim",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"a=rtpmap:{PAYLOAD_TYPE} H264/90000",
        f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={loop.profile_level_id};"
        f"sprop-parameter-sets={loop.sprop_parameter_sets}",
        f"a=framerate:{loop.fps}",
        f"a=control:{TRACK}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class RtspConnection:
    """Serves requests on one TCP connection until the client leaves or the camera stops."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: StreamConfig,
        pacer: Pacer,
        stats: ServerStats,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.config = config
        self.pacer = pacer
        self.stats = stats
        self.skipped = InterleavedCounter()
        self.session: str | None = None
        self.sink: RtpSink | None = None
        self.playing = False
        self.nonce = secrets.token_hex(16)

    async def serve(self) -> None:
        try:
            while True:
                try:
                    request = await read_request(self.reader, self.skipped)
                except BadRequest:
                    self.writer.write(format_response(400, None))
                    return
                if request is None:
                    return
                self.writer.write(self.respond(request))
        finally:
            self.stats.interleaved_frames_skipped += self.skipped.frames
            self._stop_sending()

    def _stop_sending(self) -> None:
        if self.sink is not None:
            self.pacer.remove(self.sink)
        self.sink = None
        self.playing = False

    def respond(self, request: Request) -> bytes:
        """The complete response to one request (state changes happen here, synchronously)."""
        cseq = request.cseq
        self.stats.methods_seen.append(request.method)
        if request.version != "RTSP/1.0":
            return format_response(505, cseq)
        if not self._authorised(request):
            return format_response(401, cseq, {"WWW-Authenticate": self._challenge()})
        if request.method not in METHODS:
            return format_response(501, cseq, {"Public": ", ".join(METHODS)})
        if request.method == "OPTIONS" and request.url == "*":
            return format_response(200, cseq, {"Public": ", ".join(METHODS)})
        if not self._our_path(request.url):
            return format_response(404, cseq)
        claimed = request.headers.get("session", "").split(";")[0].strip()
        if claimed and claimed != self.session:
            return format_response(454, cseq)
        try:
            status, headers, body = self._dispatch(request)
        except BadRequest:
            return format_response(400, cseq)
        if self.session is not None:
            headers["Session"] = f"{self.session};timeout={SESSION_TIMEOUT}"
        return format_response(status, cseq, headers, body)

    def _dispatch(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        method = request.method
        if method == "OPTIONS":
            return 200, {"Public": ", ".join(METHODS)}, b""
        if method == "DESCRIBE":
            base = self._base_url(request.url) + "/"
            headers = {"Content-Base": base, "Content-Type": "application/sdp"}
            return 200, headers, build_sdp(self.config.loop, secrets.token_hex(4))
        if method == "SETUP":
            return self._setup(request)
        if method == "PLAY":
            return self._play(request)
        if method == "TEARDOWN":
            self._stop_sending()
            self.session = None
            return 200, {}, b""
        return 200, {}, b""  # GET_PARAMETER / SET_PARAMETER: keep-alive

    def _setup(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        transport = request.headers.get("transport", "")
        self.stats.transports_seen.append(transport)
        channels = parse_transport(transport)
        if channels is None:
            return 461, {}, b""
        self._stop_sending()
        transport_out = self.writer.transport
        assert isinstance(transport_out, asyncio.WriteTransport)
        self.sink = RtpSink(transport_out, channels[0], self.config.loop.fps)
        self.session = self.session or secrets.token_hex(8)
        reply = (
            f"RTP/AVP/TCP;unicast;interleaved={channels[0]}-{channels[1]};"
            f"ssrc={self.sink.ssrc:08X};mode=play"
        )
        return 200, {"Transport": reply}, b""

    def _play(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if self.sink is None:
            return 455, {}, b""
        headers = {"Range": "npt=0.000-"}
        if not self.playing:
            self.pacer.play(self.sink)  # the response is written before the next tick
            self.playing = True
            track = f"{self._base_url(request.url)}/{TRACK}"
            rtptime = self.sink.timestamp(self.pacer.presentation_index(self.sink.start_index))
            headers["RTP-Info"] = f"url={track};seq={self.sink.first_sequence};rtptime={rtptime}"
        return 200, headers, b""

    def _challenge(self) -> str:
        if self.config.auth == "digest":
            return f'Digest realm="{REALM}", nonce="{self.nonce}", qop="auth", algorithm=MD5'
        return f'Basic realm="{REALM}"'

    def _authorised(self, request: Request) -> bool:
        if self.config.user is None:
            return True
        if self.config.auth == "digest":
            return self._digest_ok(request)
        expected = f"{self.config.user}:{self.config.password or ''}".encode()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, expected)

    def _digest_ok(self, request: Request) -> bool:
        """RFC 2617 3.2.2 with ``qop=auth``, over this connection's nonce."""
        scheme, _, rest = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "digest":
            return False
        given = {m[0].lower(): m[1] or m[2] for m in _DIGEST_PARAM.findall(rest)}
        needed = ("username", "nonce", "uri", "nc", "cnonce", "qop", "response")
        if any(k not in given for k in needed) or given["nonce"] != self.nonce:
            return False
        if given["username"] != self.config.user or given["qop"] != "auth":
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self.config.user}:{REALM}:{self.config.password or ''}")
        ha2 = md5(f"{request.method}:{given['uri']}")
        parts = (ha1, self.nonce, given["nc"], given["cnonce"], "auth", ha2)
        return hmac.compare_digest(md5(":".join(parts)), given["response"])

    def _our_path(self, url: str) -> bool:
        """The stream's path, or below it (control URLs such as ``/cam/trackID=0``)."""
        path = urlsplit(url).path.strip("/")
        base = self.config.path.strip("/")
        return not base or path == base or path.startswith(base + "/")

    def _base_url(self, url: str) -> str:
        """The request URL without userinfo, query, track or trailing slash: the stream's URL.

        Clients resolve the SDP's ``a=control`` against it, and FFmpeg sends it back as is.
        """
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, self.config.path.rstrip("/"), "", ""))
