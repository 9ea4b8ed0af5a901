"""The lean RTSP reader: one camera's H.264 over RTSP/TCP (RFC 2326), read in large batches.

FFmpeg's RTSP demuxer polls and reads three or four times per interleaved RTP packet, about
3,000 system calls a second for a 1080p camera, and probes the stream for about 350 ms before
the first packet. This reader takes whatever the socket holds in one ``recv`` into one buffer
(a frame's packets usually arrive together), splits the interleaved frames in Python, and
opens a camera in milliseconds: about 10 % less CPU for the FFmpeg engine, and a first frame
about 350 ms sooner (``docs/benchmarks.md``).

It speaks what cameras need and no more: OPTIONS, DESCRIBE (Basic or Digest, redirects),
SETUP of the video track interleaved on the RTSP connection, PLAY; then a keep-alive every
half session timeout (GET_PARAMETER when the camera lists it, else OPTIONS) and an RTCP
receiver report every :data:`REPORT_INTERVAL_S`, as FFmpeg sends; TEARDOWN when it closes.
``rtsps://`` is left to FFmpeg's demuxer (the engine picks it).

Every step is bounded: the open by one deadline, each read by the read timeout. Errors are
:class:`RtspError` with texts that carry no URL and no credentials.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from .rtp_h264 import H264Depacketizer
from .rtsp_auth import AuthError, Credentials
from .rtsp_sdp import SdpError, VideoMedia, parse_video

DEFAULT_PORT = 554
RECV_BYTES = 256 * 1024
MAX_HEAD_BYTES = 16 * 1024  # an RTSP response head longer than this is not one
MAX_REDIRECTS = 3
DEFAULT_SESSION_TIMEOUT_S = 60
REPORT_INTERVAL_S = 5.0
# While an access unit is arriving, wait this long before reading again, so that one read takes
# the rest of it. Without the wait every TCP segment (1,448 bytes on Ethernet) wakes the reader,
# and the wake-ups, not the reads, are what costs: at most this much latency per frame.
COALESCE_S = 0.003
_FRAME = struct.Struct(">BH")  # channel, length (after the '$')
_REPORT = struct.Struct(">BBHIIIIIII")


class RtspError(Exception):
    """The camera could not be opened or read; the text names no URL and no secret."""


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse_head(head: bytes) -> Response:
    """A response's status line and headers (``head`` ends before the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("RTSP/") or not code.isdigit():
        raise RtspError(f"not an RTSP response: {lines[0][:60]!r}")
    response = Response(int(code), reason.strip())
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            response.headers.setdefault(name.strip().lower(), []).append(value.strip())
    return response


class RtspSession:
    """Open with :meth:`open`, then call :meth:`read` in a loop; :meth:`close` at the end."""

    def __init__(self, url: str, open_timeout_s: float, read_timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise RtspError("the lean reader takes rtsp://host[:port]/path URLs")
        self._host, self._port = parts.hostname, parts.port or DEFAULT_PORT
        self._url = _without_userinfo(url)
        self._credentials = (
            Credentials(unquote(parts.username or ""), unquote(parts.password or ""))
            if parts.username is not None
            else None
        )
        self._open_timeout_s, self._read_timeout_s = open_timeout_s, read_timeout_s
        self._sock: socket.socket | None = None
        self._rest = b""  # read past the last response while opening
        # Streaming reads land here, after the unparsed rest of the last one (under 64 KiB).
        self._buf = bytearray(2 * RECV_BYTES)
        self._view = memoryview(self._buf)
        self._held = 0  # unparsed bytes at the start of the buffer
        self._cseq = 0
        self._session: str | None = None
        self._aggregate = self._url
        self._keepalive_method = "OPTIONS"
        self._keepalive_s = DEFAULT_SESSION_TIMEOUT_S / 2
        self._channel = 0
        self._next_keepalive = self._next_report = 0.0
        self._our_ssrc = secrets.randbits(32)
        self._last_sr = 0  # middle 32 bits of the camera's last sender report's NTP time
        self._last_sr_at = 0.0
        self.depacketizer = H264Depacketizer()

    # -- opening ------------------------------------------------------------------------------

    def open(self) -> VideoMedia:
        """Connect, describe, set up and play; the video it plays. Bounded by the open timeout."""
        deadline = time.monotonic() + self._open_timeout_s
        try:
            return self._open(deadline)
        except (OSError, SdpError, AuthError) as exc:
            self.abort()
            raise RtspError(_describe(exc)) from None
        except RtspError:
            self.abort()
            raise

    def _open(self, deadline: float) -> VideoMedia:
        self._connect(deadline)
        options = self._request("OPTIONS", self._url, {}, deadline)
        public = ",".join(options.headers.get("public", [])).upper()
        if "GET_PARAMETER" in public:
            self._keepalive_method = "GET_PARAMETER"
        described, base = self._describe(deadline)
        video = parse_video(described.body.decode("utf-8", "replace"), base)
        transport = f"RTP/AVP/TCP;unicast;interleaved={self._channel}-{self._channel + 1}"
        setup = self._request("SETUP", video.control, {"Transport": transport}, deadline)
        self._take_setup(setup)
        self._aggregate = video.aggregate
        self._request("PLAY", self._aggregate, {"Range": "npt=0.000-"}, deadline)
        now = time.monotonic()
        self._next_keepalive, self._next_report = now + self._keepalive_s, now + 1.0
        assert self._sock is not None
        self._sock.settimeout(self._read_timeout_s)
        return video

    def _connect(self, deadline: float) -> None:
        try:
            self._sock = socket.create_connection(
                (self._host, self._port), timeout=_remaining(deadline)
            )
        except OSError as exc:
            raise RtspError(f"cannot connect to the camera: {_describe(exc)}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _describe(self, deadline: float) -> tuple[Response, str]:
        url = self._url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request("DESCRIBE", url, {"Accept": "application/sdp"}, deadline)
            if response.status in (301, 302, 303, 305, 307):
                location = response.header("location")
                if not location:
                    raise RtspError(f"DESCRIBE: redirect {response.status} without a Location")
                self._url = url = _without_userinfo(urljoin(url, location))
                self._follow(url, deadline)
                continue
            base = response.header("content-base") or response.header("content-location") or url
            return response, base
        raise RtspError(f"DESCRIBE: more than {MAX_REDIRECTS} redirects")

    def _follow(self, url: str, deadline: float) -> None:
        """After a redirect: connect to the new host when it is another one."""
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise RtspError("DESCRIBE: redirected to a URL that is not rtsp://")
        target = (parts.hostname, parts.port or DEFAULT_PORT)
        if target != (self._host, self._port):
            self.abort()
            self._host, self._port = target
            self._rest = b""
            self._connect(deadline)

    def _take_setup(self, response: Response) -> None:
        session = response.header("session")
        if not session:
            raise RtspError("SETUP: the camera gave no Session")
        ident, *params = (p.strip() for p in session.split(";"))
        self._session = ident
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "timeout" and value.strip().isdigit():
                self._keepalive_s = max(1.0, int(value) / 2)
        for item in (response.header("transport") or "").split(";"):
            key, _, value = item.partition("=")
            if key.strip().lower() == "interleaved" and value.split("-")[0].isdigit():
                self._channel = int(value.split("-")[0])

    def _request(self, method: str, url: str, headers: dict[str, str], deadline: float) -> Response:
        """Send, read the response; answer one 401 with the URL's credentials."""
        for attempt in range(2):
            self._send(method, url, headers)
            response = self._response(deadline)
            if response.status != 401:
                break
            if self._credentials is None:
                raise RtspError(f"{method}: the camera wants credentials (401)")
            stale = "stale=true" in ",".join(response.headers.get("www-authenticate", [])).lower()
            if attempt == 1 or (self._credentials.challenged and not stale):
                raise RtspError(f"{method}: the camera refused the credentials (401)")
            self._credentials.challenge(response.headers.get("www-authenticate", []))
        if response.status >= 300 and not (method == "DESCRIBE" and response.status < 400):
            raise RtspError(f"{method}: the camera answered {response.status} {response.reason}")
        return response

    def _send(self, method: str, url: str, headers: dict[str, str]) -> None:
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", "User-Agent: cctv-pusher"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self._session is not None:
            lines.append(f"Session: {self._session}")
        authorization = self._credentials.header(method, url) if self._credentials else None
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        assert self._sock is not None
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _response(self, deadline: float) -> Response:
        """The next response on the connection (interleaved frames before it are skipped)."""
        while True:
            if self._rest[:1] == b"$":
                if len(self._rest) >= 4:
                    size = 4 + _FRAME.unpack_from(self._rest, 1)[1]
                    if len(self._rest) >= size:
                        self._rest = self._rest[size:]
                        continue
            else:
                end = self._rest.find(b"\r\n\r\n")
                if end >= 0:
                    response = parse_head(self._rest[:end])
                    size = end + 4 + int(response.header("content-length") or 0)
                    if len(self._rest) >= size:
                        response.body = self._rest[end + 4 : size]
                        self._rest = self._rest[size:]
                        return response
                elif len(self._rest) > MAX_HEAD_BYTES:
                    raise RtspError("the camera's response head is too long")
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        assert self._sock is not None
        self._sock.settimeout(_remaining(deadline))
        chunk = self._sock.recv(RECV_BYTES)
        if not chunk:
            raise RtspError("the camera closed the connection")
        self._rest += chunk

    # -- streaming ------------------------------------------------------------------------------

    def read(self) -> None:
        """Read what the camera sent (waiting up to the read timeout for some), and push its RTP
        into :attr:`depacketizer`. Raises :class:`RtspError` when the camera fails or ends.

        Reads land in one buffer allocated once: a fresh ``recv`` buffer per read (256 KiB,
        mmapped and unmapped by the C library each time) cost more than the parsing."""
        sock = self._sock
        assert sock is not None, "open() first"
        if self._rest:  # what came right after the PLAY response, handled as a read
            self._held = len(self._rest)
            self._buf[: self._held] = self._rest
            self._rest = b""
            self._consume(self._held)
        if self.depacketizer.partial:
            time.sleep(COALESCE_S)
        try:
            got = sock.recv_into(self._view[self._held : self._held + RECV_BYTES])
        except TimeoutError:
            raise RtspError(f"camera read failed: nothing for {self._read_timeout_s:g} s") from None
        except OSError as exc:
            raise RtspError(f"camera read failed: {_describe(exc)}") from None
        if not got:
            raise RtspError("camera ended the stream")
        self._consume(self._held + got)
        now = time.monotonic()
        if now >= self._next_report:
            self._send_report(now)
        if now >= self._next_keepalive:
            self._next_keepalive = now + self._keepalive_s
            try:
                self._send(self._keepalive_method, self._aggregate, {})
            except OSError as exc:
                raise RtspError(f"camera write failed: {_describe(exc)}") from None

    def _consume(self, end: int) -> None:
        """Split the buffer's first ``end`` bytes; keep the incomplete rest at its front."""
        pos = self._split(end)
        self.depacketizer.detach()
        self._held = end - pos
        if self._held:  # an interleaved frame's start (under 64 KiB)
            self._buf[: self._held] = bytes(self._view[pos:end])

    def _split(self, end: int) -> int:
        """Hand each complete interleaved frame in the buffer's first ``end`` bytes on; where
        the incomplete rest starts."""
        data, view = self._buf, self._view
        push = self.depacketizer.push
        rtp, rtcp = self._channel, self._channel + 1
        pos = 0
        while end - pos >= 4:
            if data[pos] != 0x24:  # '$'; else an RTSP response (a keep-alive's) or a request
                head_end = data.find(b"\r\n\r\n", pos, end)
                if head_end < 0:
                    if end - pos > MAX_HEAD_BYTES:
                        raise RtspError("camera read failed: lost the interleaved framing")
                    break
                size = head_end + 4 - pos + _content_length(bytes(data[pos:head_end]))
                if size > RECV_BYTES:
                    raise RtspError("camera read failed: an RTSP message over 256 KiB")
                if end - pos < size:
                    break
                self._check_reply(bytes(data[pos:head_end]))
                pos += size
                continue
            channel, size = _FRAME.unpack_from(data, pos + 1)
            if end - pos - 4 < size:
                break
            if channel == rtp:
                push(view[pos + 4 : pos + 4 + size])
            elif channel == rtcp:
                self._take_rtcp(bytes(data[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return pos

    def _check_reply(self, head: bytes) -> None:
        """A keep-alive's response. 454: the session is gone. 401: the camera's nonce went
        stale; the next keep-alive (in a second) answers the new challenge."""
        if not head.startswith(b"RTSP/"):
            return  # a request from the camera (ANNOUNCE, SET_PARAMETER...): not answered
        response = parse_head(head)
        if response.status == 454:
            raise RtspError("camera read failed: the camera dropped the session (454)")
        if response.status == 401 and self._credentials is not None:
            try:
                self._credentials.challenge(response.headers.get("www-authenticate", []))
            except AuthError as exc:
                raise RtspError(f"camera read failed: {exc}") from None
            self._next_keepalive = min(self._next_keepalive, time.monotonic() + 1.0)

    def _take_rtcp(self, packet: bytes) -> None:
        if len(packet) >= 20 and packet[1] == 200:  # a sender report: its NTP time, for LSR
            self._last_sr = int.from_bytes(packet[10:14], "big")
            self._last_sr_at = time.monotonic()

    def _send_report(self, now: float) -> None:
        """An RTCP receiver report (RFC 3550 6.4.2) on the RTCP channel, as FFmpeg sends."""
        self._next_report = now + REPORT_INTERVAL_S
        d = self.depacketizer
        if d.ssrc is None or d.highest_seq < 0:
            return
        dlsr = int((now - self._last_sr_at) * 65536) if self._last_sr else 0
        body = _REPORT.pack(
            0x81, 201, 7, self._our_ssrc, d.ssrc,
            min(d.lost, 0x7FFFFF), d.highest_seq & 0xFFFFFFFF, 0, self._last_sr, dlsr,
        )  # fmt: skip
        frame = b"$" + _FRAME.pack(self._channel + 1, len(body)) + body
        assert self._sock is not None
        try:
            self._sock.sendall(frame)
        except OSError as exc:
            raise RtspError(f"camera write failed: {_describe(exc)}") from None

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """TEARDOWN (not waited for), then close the connection. Never raises."""
        if self._sock is not None and self._session is not None:
            try:
                self._sock.settimeout(1.0)
                self._send("TEARDOWN", self._aggregate, {})
            except OSError:
                pass
        self.abort()

    def abort(self) -> None:
        """Close the connection at once."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _without_userinfo(url: str) -> str:
    """``url`` as it goes on a request line: no user, no password, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"content-length:")
    if at < 0:
        return 0
    value = head[at + 15 :].split(b"\r\n", 1)[0].strip()
    return int(value) if value.isdigit() else 0


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
