"""RTSP/1.0 message framing (RFC 2326 §4) on a TCP stream shared with RTP.

With TCP-interleaved transport the client sends RTCP receiver reports as ``$``-framed binary
blocks on the very connection that carries its RTSP requests, at any moment between them, so
the reader has to tell the two apart by the first byte and skip the binary ones.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

INTERLEAVED_MAGIC = 0x24  # "$"
MAX_HEADER_BYTES = 16 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    461: "Unsupported Transport",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
}


class BadRequest(Exception):
    """A request the simulator cannot parse (answered with 400, then the connection closes)."""


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    version: str
    headers: dict[str, str]  # lower-cased names; repeated headers keep the last value
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("cseq")


@dataclass
class InterleavedCounter:
    """How many ``$`` frames (and bytes) a connection skipped, for tests to look at."""

    frames: int = 0
    bytes: int = 0
    channels: set[int] = field(default_factory=set)


async def read_request(reader: asyncio.StreamReader, skipped: InterleavedCounter) -> Request | None:
    """The next RTSP request, discarding interleaved binary frames; None at end of stream."""
    try:
        while True:
            first = await reader.readexactly(1)
            if first[0] == INTERLEAVED_MAGIC:
                channel, length = struct.unpack("!BH", await reader.readexactly(3))
                await reader.readexactly(length)
                skipped.frames += 1
                skipped.bytes += length
                skipped.channels.add(channel)
                continue
            if first in b"\r\n":  # stray line ends between messages are legal and ignored
                continue
            head = first + await reader.readuntil(b"\r\n\r\n")
            break
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request header too large") from exc
    request = parse_head(head)
    length = request.headers.get("content-length", "0")
    if not length.isdigit():
        raise BadRequest(f"bad Content-Length {length!r}")
    if int(length):
        try:
            body = await reader.readexactly(int(length))
        except asyncio.IncompleteReadError:
            return None
        request = Request(request.method, request.url, request.version, request.headers, body)
    return request


def parse_head(head: bytes) -> Request:
    """Request line and headers of one RTSP request (CRLF-separated, UTF-8)."""
    if len(head) > MAX_HEADER_BYTES:
        raise BadRequest("request header too large")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request header is not UTF-8") from exc
    lines = text.strip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(f"bad request line {lines[0]!r}")
    method, url, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return Request(method, url, version, headers)


def format_response(
    status: int, cseq: str | None, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A complete response; CSeq is echoed first, Content-Length added for a body."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append("Server: cctv-sim")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def interleaved_frame(channel: int, payload: bytes) -> bytes:
    """``$``, channel, 16-bit length, payload (RFC 2326 §10.12)."""
    return struct.pack("!BBH", INTERLEAVED_MAGIC, channel, len(payload)) + payload
